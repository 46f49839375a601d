"""The reference of every config key, generated from the typed configs themselves:
``python -m pipeline.cli.config_reference`` writes ``docs/config-reference.md`` (a test
fails when the page and the configs drift apart)."""

from __future__ import annotations

import sys
from pathlib import Path

PAGE = Path("docs") / "config-reference.md"
"""The page, relative to the repository root."""


def reference() -> str:
    """The page's Markdown."""
    from pipeline.algorithms.dagger_config import DaggerConfig
    from pipeline.algorithms.finetune_config import FinetuneConfig
    from pipeline.core.config_docs import reference_markdown
    from pipeline.stages.motion.config import MotionFitConfig
    from pipeline.training.config import TrainConfig

    intro = ("Generated from the typed configs by `python -m pipeline.cli.config_reference`; "
             "do not edit by hand. Every key is set in a YAML file (`--config`) or as an "
             "override `key=value` after the command; `--show-config` prints the resolved "
             "config of a run with these docstrings.")  # fmt: skip
    sections = [
        ("`pipeline train`: behaviour cloning", TrainConfig,
         "The training config: `pipeline train`, and every fit of `pipeline dagger`, "
         "`pipeline tune`'s trials and the quickstart. Without `--config` the measured "
         "recipe of the data's environment is the base (`pipeline/training/recipes.py`)."),
        ("`pipeline dagger`", DaggerConfig,
         "How DAgger gathers labels; each key is also the option `--key-name` (underscores "
         "as dashes). The refits use the training config above."),
        ("`pipeline finetune`: reward fine-tuning", FinetuneConfig,
         "PPO from a learned policy with a demonstration anchor. Without `--config` the "
         "environment's measured recipe is the base (`FINETUNE_RECIPES` in "
         "`pipeline/algorithms/finetune_config.py`; the defaults are the walk's); "
         "`--steps`, `--seed`, `--eval-every`, `--eval-episodes` and `--eval-seed` set "
         "`steps`, `seed` and `selection.*`."),
        ("`pipeline motion fit`", MotionFitConfig,
         "The motion-imitation lab's fit of a clip (phase -> joint angles)."),
    ]  # fmt: skip
    return reference_markdown("Config reference", intro, sections)


def main() -> int:
    """Write the page under the current directory (the repository root)."""
    PAGE.parent.mkdir(parents=True, exist_ok=True)
    PAGE.write_text(reference())
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
