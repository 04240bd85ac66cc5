"""A study in its storage: opening the storage (and surviving its outages), creating or loading a
study and checking it (opening.py), what it recorded (recorded.py), the sampling space, pruning
and promotion, retries, and Optuna's private names in one module (optuna_compat.py)."""
