"""Serving a study to people and workers: optuna-dashboard, study notes and artifacts,
and Optuna's gRPC storage proxy."""
