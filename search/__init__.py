"""Hyperparameter search: study files, storage, sampling, workers, the command line and reports."""
