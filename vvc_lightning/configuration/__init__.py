"""The configuration: loading and validating configs (config), the ranges of its numbers (ranges) and
its typed sections (types)."""
