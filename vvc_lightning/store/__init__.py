"""The model store: shipped and user models (zoo) and their records (record), loading checkpoints and
records (loader), exporting runs as models (export); pretrained is a deprecated alias module."""
