"""Training Keras policies: the typed config, the measured recipes, optimizers and
schedules, the fit loop every algorithm calls, its callbacks, resuming, and the
one-batch overfit check."""
