"""``pipeline tune``: random search on a log scale, coarse to fine, ranked by validation loss
or by closed-loop rollouts; every trial a real ``pipeline train`` run in its own process,
the study in SQLite (resumable), MLflow runs nested under the study's."""
