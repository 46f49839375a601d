"""Trunk builders: one module per policy architecture, plus the blocks they share.

A builder is a plain function ``build_<name>(x, spec, config, blocks) -> features`` from
the normalized observation tensor to the last hidden features; ``models.registry`` names
each one together with its config class (``models.config``) and puts it into the frame that
adds normalization and the action layer. Builders import ``blocks``, ``models.config`` and
``models.spec``, never the registry. To add an architecture: a config class in
``models.config``, a module here, and one ``register_policy`` line in ``models.registry``.
"""
