"""Workflows that run algorithms and stages for a user: the quickstart (record, train,
evaluate), hyperparameter search over training runs (:mod:`.tune`) and the report of any
run's folder (:mod:`.report`). Only the commands import them."""
