"""hpsearch: hyperparameter search for image classifiers with Optuna.

One folder per concern, every import pointing down this list (tests/test_layout.py checks it):
cli -> launch, results, serve -> run -> study -> studyfile -> errors, attrs, locations -> trainer.
docs/development.md says what each holds.
"""
