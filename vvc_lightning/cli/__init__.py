"""The command line: one module per command (`python -m vvc_lightning COMMAND`)."""
