"""Video and data I/O: readers, writers, colour conversion and webdataset sharding."""
