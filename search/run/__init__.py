"""Running trials: the objective, the worker loop, the study's data, trial folders and checkpoints,
and the progress line."""
