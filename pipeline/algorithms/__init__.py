"""Learning algorithms, one module each, every one with one typed config and one entry
that checks its inputs once:

- :mod:`.behaviour_cloning`: demonstrations -> a Keras policy (``pipeline train``), and
  :mod:`.train_config`, the one place a training config is resolved (recipe, config file,
  overrides, command-line options);
- :mod:`.fit_selection`: fit an aggregate several times and keep whichever walks best;
- :mod:`.dagger`: the learner's own states labelled by the expert (``pipeline dagger``);
- :mod:`.finetune`: reward fine-tuning of a learned policy (``pipeline finetune``) on the
  PPO engine of :mod:`.ppo`, configured by :mod:`.finetune_config`.

Adversarial imitation (on the PPO engine) and sequence training come here next. They are
built from the building blocks below them (rollout workers, the fit loop, the store, the
tracker, closed-loop selection) and may call the stages of :mod:`pipeline.stages`; they never
import a command or a workflow.
"""
