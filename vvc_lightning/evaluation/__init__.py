"""Evaluation: the harness, its inputs, classic baselines, BD-rate, the report and the metrics."""
