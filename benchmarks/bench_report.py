"""``pipeline report`` on a quickstart run: generation time, file size, and the picture of the
rendered page that the README shows.

    .venv/bin/python benchmarks/bench_report.py [--run QUICKSTART_DIR] [--repeats 3]

Without ``--run`` it runs ``pipeline quickstart`` (defaults, about 3 minutes on 2 cores) into
a temporary folder first. Times ``pipeline report`` as a whole command (import included)
``--repeats`` times, then opens the page in Debian's headless Chromium (Playwright), checks
that every picture decodes and every video has a duration, and writes the top of the page to
``docs/images/report.png``. Prints a table and writes ``benchmarks/results/bench_report.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
PIPELINE = Path(sys.executable).parent / "pipeline"
RESULTS = ROOT / "benchmarks" / "results" / "bench_report.json"
PICTURE = ROOT / "docs" / "images" / "report.png"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip


def render(page_path: Path) -> dict:
    """Open the page in Chromium; picture of its top; what loaded."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1150, "height": 1330})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            start = time.perf_counter()
            page.goto(page_path.as_uri(), wait_until="load")
            page.wait_for_function(
                "[...document.querySelectorAll('video')].every(v => v.readyState >= 1)"
            )
            load_s = time.perf_counter() - start
            images = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
            durations = page.eval_on_selector_all("video", "els => els.map(e => e.duration)")
            shot = Path(tempfile.mkstemp(suffix=".png")[1])
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    picture = Image.open(shot).convert("RGB")
    picture.resize((920, 1064), Image.LANCZOS).save(PICTURE, optimize=True)
    shot.unlink()
    return {"load_s": load_s, "images": len(images), "images_decoded": sum(w > 0 for w in images),
            "video_durations_s": durations, "console_errors": errors}  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", type=Path, default=None, help="a quickstart run folder")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    report: dict = {
        "machine": platform.node(),
        "cpus": os.cpu_count(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        run = args.run
        if run is None:
            start = time.perf_counter()
            subprocess.run([str(PIPELINE), "quickstart", "--out", str(Path(tmp) / "qs"),
                            "--no-track"], check=True, capture_output=True)  # fmt: skip
            report["quickstart_s"] = time.perf_counter() - start
            run = next((Path(tmp) / "qs").iterdir())
        page_path = Path(tmp) / "report.html"
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            subprocess.run(
                [
                    str(PIPELINE),
                    "report",
                    str(run),
                    "--out",
                    str(page_path),
                    "--overwrite",
                    "--no-track",
                ],
                check=True,
                capture_output=True,
            )
            times.append(time.perf_counter() - start)
        videos = sorted(run.glob("*.mp4"))
        report.update({"command_s": times, "size_bytes": page_path.stat().st_size,
                       "video_bytes": sum(v.stat().st_size for v in videos)})  # fmt: skip
        if CHROMIUM.is_file():
            report["browser"] = render(page_path)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    table = Table(title="pipeline report on a quickstart run")
    for column in ("command s (min/median/max)", "MB", "of which videos MB", "opens in s"):
        table.add_column(column, justify="right")
    times = sorted(report["command_s"])
    browser = report.get("browser", {})
    table.add_row(f"{times[0]:.2f} / {times[len(times) // 2]:.2f} / {times[-1]:.2f}",
                  f"{report['size_bytes'] / 1e6:.2f}", f"{report['video_bytes'] / 1e6:.2f}",
                  f"{browser['load_s']:.2f}" if browser else "-")  # fmt: skip
    Console().print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
