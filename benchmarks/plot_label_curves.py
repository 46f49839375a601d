"""Closed-loop quality against expert-labelled steps, with error bars across training seeds.

    .venv/bin/python benchmarks/plot_label_curves.py RESULTS.json [--dagger NAME=RESULTS.json]
        [--out benchmarks/results/label_curves_<task>.png]

Reads ``bench_dagger.py`` results: their BC and BC+DART curves (``--bc-curve``) and DAgger
rows (one point per iteration), and further DAgger runs given as ``--dagger NAME=FILE``
(e.g. ``DAgger+mirror``). A point is the mean over training seeds, its bars the 95% Student's
t interval over them (survival and normalized distance) and the spread of labels (DAgger's
iterations end at different label counts per seed). Prints the table behind the figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def curves(report: dict, dagger_name: str = "DAgger") -> dict[str, list[dict]]:
    """Method -> points, each with the per-seed values of labels, survival and distance."""
    grouped: dict[str, dict[object, dict[str, list[float]]]] = {}

    def add(method: str, key: object, row: dict) -> None:
        point = grouped.setdefault(method, {}).setdefault(
            key, {"labels": [], "survival": [], "normalized_distance": []}
        )
        for name in point:
            point[name].append(float(row[name]))

    for entry in report["seeds"].values():
        for row in entry.get("bc_curve", []):
            add(row["method"], row["demos"], row)
        for row in entry.get("dagger", []):
            add(dagger_name, row["iteration"], row)
        if "bc" in entry:  # BC on DART demonstrations, as many labels as DAgger used
            add("BC+DART at DAgger's labels", 0, entry["bc"])
    return {method: [points[key] for key in sorted(points)] for method, points in grouped.items()}


def expert_survival(entry: dict) -> float:
    """The expert's survival on the curve's evaluation seeds, from DAgger's or BC's rows."""
    if "expert" in entry:
        return float(entry["expert"]["survival_rate"])
    return float(entry["bc_curve"][0]["expert_survival"])


def summarize(values: list[float]) -> tuple[float, float]:
    from pipeline.core.intervals import mean_half_width

    return statistics.fmean(values), mean_half_width(values)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("results", type=Path)
    parser.add_argument("--dagger", action="append", default=[], help="NAME=RESULTS.json")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    report = json.loads(args.results.read_text())
    methods = curves(report)
    for spec in args.dagger:
        name, _, path = spec.partition("=")
        methods.update(curves(json.loads(Path(path).read_text()), name))
    task = report["task"].split("/")[-1].split("-")[0]
    out = args.out or ROOT / "benchmarks" / "results" / f"label_curves_{task}.png"
    expert = expert_survival(next(iter(report["seeds"].values())))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 5))
    table = Table(title=f"{report['task']}: mean over training seeds [+- 95% half-width]")
    for column in ("method", "labels", "seeds", "survival", "norm. distance"):
        table.add_column(column, justify="right")
    for method, points in methods.items():
        xs = [summarize(p["labels"]) for p in points]
        for axis, key in zip(axes, ("survival", "normalized_distance"), strict=True):
            ys = [summarize(p[key]) for p in points]
            axis.errorbar([x for x, _ in xs], [y for y, _ in ys], yerr=[e for _, e in ys],
                          xerr=[statistics.pstdev(p["labels"]) for p in points], marker="o",
                          capsize=3, label=method)  # fmt: skip
        for point, (labels, _) in zip(points, xs, strict=True):
            survival, s_err = summarize(point["survival"])
            distance, d_err = summarize(point["normalized_distance"])
            table.add_row(method, f"{labels:,.0f}", str(len(point["survival"])),
                          f"{survival:.0%} [+-{s_err:.0%}]",
                          f"{distance:.2f} [+-{d_err:.2f}]")  # fmt: skip
    axes[0].axhline(expert, color="grey", linestyle="--", label="expert")
    for axis, title in zip(axes, ("survival", "normalized distance"), strict=True):
        axis.set_xlabel("expert-labelled steps")
        axis.set_title(title)
        axis.grid(alpha=0.3)
    # Three seeds give wide t intervals: keep the axes on the possible range.
    axes[0].set_ylim(-0.02, 1.05)
    axes[1].set_ylim(-0.02, 1.3)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", ncol=4, frameon=False)
    figure.suptitle(report["task"])
    figure.tight_layout(rect=(0, 0.1, 1, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=120)
    Console(width=140).print(table)
    print(f"figure: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
