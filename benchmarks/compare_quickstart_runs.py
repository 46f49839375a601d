"""Are two quickstart runs the same run? Demonstration arrays, policy weights, the training
history and every evaluation episode, compared exactly; only what measures time (throughput,
wall seconds, the file's creation stamp and uuid) may differ.

    python benchmarks/compare_quickstart_runs.py outputs/quickstart/A outputs/quickstart/B
        [--json results/quickstart_identity.json]

Used to show that a restructure changed nothing that is learned (same machine and build:
float results differ between OpenBLAS kernels, so two machines need not agree).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

TIMING = ("samples_per_s", "wall_s")
"""Keys that measure time, not what was learned."""


def _demos_equal(a: Path, b: Path) -> bool:
    import h5py
    import numpy as np

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        if sorted(fa) != sorted(fb):
            return False
        for name in fa:
            if isinstance(fa[name], h5py.Group):
                for key, item in fa[name].items():
                    if isinstance(item, h5py.Dataset) and not np.array_equal(
                        item[()], fb[name][key][()]
                    ):
                        return False
    return True


def _weights_equal(a: Path, b: Path) -> bool:
    import numpy as np

    from models import load_policy

    wa = load_policy(a).model.get_weights()
    wb = load_policy(b).model.get_weights()
    return len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb, strict=True))


def _without_timing(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if k not in TIMING}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def compare(a: Path, b: Path) -> dict[str, bool]:
    """Each part: equal or not."""
    qa = json.loads((a / "quickstart.json").read_text())
    qb = json.loads((b / "quickstart.json").read_text())
    ea = json.loads((a / "evaluation" / "evaluation.json").read_text())
    eb = json.loads((b / "evaluation" / "evaluation.json").read_text())
    return {
        "demonstration arrays": _demos_equal(a / "walk-demos.h5", b / "walk-demos.h5"),
        "policy weights": _weights_equal(a / "train" / "policy", b / "train" / "policy"),
        "training history": _without_timing(qa["train"]["history"])
        == _without_timing(qb["train"]["history"]),
        "evaluation episodes": _without_timing(ea["episodes"]) == _without_timing(eb["episodes"]),
        "headline scores": qa["scores"] == qb["scores"]
        and qa["survival_rate"] == qb["survival_rate"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    result = compare(args.a, args.b)
    width = max(map(len, result))
    for part, same in result.items():
        print(f"{part:<{width}}  {'identical' if same else 'DIFFERENT'}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"a": str(args.a), "b": str(args.b), **result},
                                        indent=2) + "\n")  # fmt: skip
    return 0 if all(result.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
