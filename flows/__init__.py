"""The thin Prefect layer: one generic retraining flow, its tasks, and the funnel CLI."""
