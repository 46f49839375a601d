"""Names of what a training run directory holds (``runs/<name>/``): written by the train
algorithm, read by resuming, evaluation and anything that looks a policy up by its run."""

CONFIG_FILE = "config.yaml"
"""The run's full, validated training config (``--resume`` reads it back)."""
RUN_START_FILE = "run_start.json"
"""The MLflow run and tracking URI of the run, so ``--resume`` reopens the same run."""
CHECKPOINT_DIR = "checkpoint"
"""The last epoch's weights, optimizer and RNG state, for a bit-identical ``--resume``."""
POLICY_DIR = "policy"
"""The saved policy (``models.save_policy``): reloads alone."""
TRAINING_RUN_FILE = "training_run.json"
"""What the run produced: epochs, losses, MLflow ids, dataset digest."""
UNSELECTED_POLICY_DIR = "policy_without_selection"
"""When closed-loop selection chose other weights: the policy the run would have saved
without it (last epoch, or best validation epoch with ``training.restore_best``), to compare
(``pipeline compare --policy RUN/policy --policy RUN/policy_without_selection``)."""
