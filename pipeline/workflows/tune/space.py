"""The search space of ``pipeline tune``: a YAML file mapping config keys to distributions,
checked against the training config before any trial runs, and its coarse-to-fine narrowing.

::

    optimizer.learning_rate: {log_uniform: [1.0e-4, 1.0e-2]}
    model.dropout: {uniform: [0.0, 0.3]}
    data.batch_size: {choice: [64, 128, 256]}
    training.epochs: {int: [20, 60]}

Each key is a dotted ``pipeline train`` config key; each value names one distribution:
``log_uniform`` and ``uniform`` (floats between two bounds), ``int`` (integers, both bounds
included), ``choice`` (a list of values). Every bound and choice is tried against the
config the trials start from, so a key or value that ``pipeline train`` would refuse is
refused here, naming the key.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.core.errors import PipelineError

KINDS = ("log_uniform", "uniform", "int", "choice")


@dataclass(frozen=True)
class Param:
    """One searched config key and its distribution."""

    key: str
    """Dotted config key, e.g. ``optimizer.learning_rate``."""
    kind: str
    """``log_uniform``, ``uniform``, ``int`` or ``choice``."""
    low: float = math.nan
    high: float = math.nan
    choices: tuple[Any, ...] = ()

    @property
    def log(self) -> bool:
        return self.kind == "log_uniform"

    def distribution(self) -> Any:
        """The Optuna distribution sampling this parameter."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "choice":
            # As JSON text: Optuna's categorical values must be scalars, a choice may be a
            # list (hidden sizes); :meth:`decode` turns a sampled text back into the value.
            return CategoricalDistribution([self.encode(c) for c in self.choices])
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high))
        return FloatDistribution(self.low, self.high, log=self.log)

    @staticmethod
    def encode(choice: Any) -> str:
        return json.dumps(choice)

    def decode(self, sampled: Any) -> Any:
        """A value as the config takes it, from what Optuna sampled."""
        if self.kind == "choice":
            return json.loads(sampled)
        return int(sampled) if self.kind == "int" else float(sampled)

    def describe(self) -> str:
        if self.kind == "choice":
            return f"choice {list(self.choices)}"
        return f"{self.kind} [{self.low:g}, {self.high:g}]"

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "choice":
            return {self.kind: list(self.choices)}
        return {self.kind: [self.low, self.high]}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_param(key: str, spec: Any, where: str) -> Param:
    """One entry of a space file; one line naming the file and the key if it is wrong."""
    if not isinstance(spec, dict) or len(spec) != 1:
        raise PipelineError(f"{where}: '{key}': give one distribution, one of {', '.join(KINDS)}")
    kind, args = next(iter(spec.items()))
    if kind not in KINDS:
        raise PipelineError(f"{where}: '{key}': unknown distribution '{kind}' (one of "
                            f"{', '.join(KINDS)})")  # fmt: skip
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise PipelineError(f"{where}: '{key}': choice needs a non-empty list of values")
        return Param(key, kind, choices=tuple(args))
    if not (isinstance(args, list) and len(args) == 2 and all(_number(v) for v in args)):
        raise PipelineError(f"{where}: '{key}': {kind} needs [low, high], two numbers")
    low, high = float(args[0]), float(args[1])
    if not low < high:
        raise PipelineError(f"{where}: '{key}': {kind} bounds [{low:g}, {high:g}] need low < high")
    if kind == "log_uniform" and low <= 0:
        raise PipelineError(f"{where}: '{key}': log_uniform bounds must be > 0, got {low:g}")
    if kind == "int" and not (float(low).is_integer() and float(high).is_integer()):
        raise PipelineError(f"{where}: '{key}': int bounds must be whole numbers")
    return Param(key, kind, low, high)


def _check_against_config(params: list[Param], base: Path | None, overrides: list[str],
                          env_id: str | None, where: str) -> None:  # fmt: skip
    """Every bound and choice must make a config ``pipeline train`` accepts."""
    from pipeline.algorithms.train_config import resolve_train_config

    for param in params:
        values = list(param.choices) if param.kind == "choice" else [param.low, param.high]
        if param.kind == "int":
            values = [int(v) for v in values]
        for value in values:
            text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...")
            try:
                resolve_train_config(
                    base, [*overrides, f"{param.key}={text.strip()}"], env_id=env_id
                )
            except PipelineError as exc:
                detail = str(exc).split(": ", 1)[-1]
                raise PipelineError(f"{where}: '{param.key}' = {value!r}: {detail}") from None


def load_space(
    path: Path,
    base: Path | None = None,
    overrides: list[str] | None = None,
    env_id: str | None = None,
) -> list[Param]:
    """Read and check ``--space``; one line naming the file (and key) for anything wrong."""
    from pipeline.training.config import read_yaml_mapping

    where = f"--space {path}"
    what = "config keys to distributions"
    raw = read_yaml_mapping(path, "--space", what)
    if not raw:
        raise PipelineError(f"{where}: expected a mapping of {what}")
    params = [parse_param(str(key), spec, where) for key, spec in raw.items()]
    _check_against_config(params, base, overrides or [], env_id, where)
    return params


def narrow(params: list[Param], trials: list[tuple[dict[str, Any], float]], maximize: bool,
           fraction: float = 0.25) -> list[Param]:  # fmt: skip
    """The fine stage's space: each numeric range shrunk to the span of the best
    ``fraction`` of ``trials`` ((params, objective) pairs), measured on a log scale where
    the coarse range was; a choice keeps the values those trials used. A span of one
    point is widened to a tenth of the coarse range around it."""
    ranked = sorted(trials, key=lambda t: t[1], reverse=maximize)
    best = ranked[: max(1, math.ceil(fraction * len(ranked)))]
    out = []
    for param in params:
        values = [t[0][param.key] for t in best if param.key in t[0]]
        if not values:
            out.append(param)
            continue
        if param.kind == "choice":
            kept = tuple(c for c in param.choices if c in values)
            out.append(Param(param.key, "choice", choices=kept))
            continue
        scale = (math.log, math.exp) if param.log else (float, float)
        lo, hi = scale[0](param.low), scale[0](param.high)
        vals = [scale[0](v) for v in values]
        new_lo, new_hi = min(vals), max(vals)
        if new_hi - new_lo < 0.1 * (hi - lo):
            middle, half = (new_lo + new_hi) / 2, 0.05 * (hi - lo)
            new_lo, new_hi = max(lo, middle - half), min(hi, middle + half)
        low, high = scale[1](new_lo), scale[1](new_hi)
        if param.kind == "int":
            low, high = math.floor(low), math.ceil(high)
            if low == high:
                low, high = max(param.low, low - 1), min(param.high, high + 1)
        out.append(Param(param.key, param.kind, float(low), float(high)))
    return out
