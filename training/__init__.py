"""Pipelines: training datasets from history, fitting, off-policy evaluation, registry and promotion."""
