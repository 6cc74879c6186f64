"""Training: the automatic recipe, optimizers and schedules, the step and the epoch loop, runs and folds, several processes."""
