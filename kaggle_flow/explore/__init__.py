"""Looking at the table before training: eda, the validation folds, label shuffling, their plots."""
