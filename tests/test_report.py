"""``pipeline report``: a real walk policy trained, evaluated beside the expert with videos,
reported as one self-contained HTML page, and that page opened in a real headless Chromium
(Debian's ``chromium``, driven by Playwright): no console error, every picture decodes, the
video has a duration and plays; a screenshot is kept in ``test-artifacts/``."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from pipeline.algorithms.behaviour_cloning import train_from_file
from pipeline.cli import main
from pipeline.stages.record import RecordConfig, record
from pipeline.training.config import load_config

WALK = "sim/HumanoidWalk-v0"
CHROMIUM = Path(os.environ.get("PIPELINE_TEST_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
# As the machine's notes say: without these, Chromium dials out at start and is refused.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--autoplay-policy=no-user-gesture-required"]  # fmt: skip


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def walk_run(tmp_path_factory) -> Path:
    """Two short walk demonstrations, a tiny MLP trained on them, and an evaluation of six
    2-second episodes beside the expert and a random policy, with videos, in ``run/``."""
    root = tmp_path_factory.mktemp("report")
    data = root / "walk.h5"
    record(RecordConfig(out=data, env_id=WALK, episodes=2, seed=0, workers=1,
                        episode_seconds=2.0))  # fmt: skip
    run = root / "run"
    config = load_config(None, ["model.hidden_sizes=[32,32]", "training.epochs=2"])
    train_from_file(data, config, run)
    assert main(["evaluate", "--policy", str(run), "--episodes", "6", "--workers", "2",
                 "--episode-seconds", "2", "--compare-expert", "--video",
                 str(run / "walk.mp4"), "--out", str(run / "evaluation"),
                 "--no-track"]) == 0  # fmt: skip
    return run


@pytest.fixture(scope="module")
def report_page(walk_run) -> Path:
    out = walk_run.parent / "walk-report.html"
    assert main(["report", str(walk_run), "--out", str(out), "--no-track"]) == 0
    return out


def test_the_page_holds_every_part_and_fetches_nothing(report_page, walk_run):
    text = report_page.read_text()
    for title in ("Results against the expert and a random policy", "By start phase of the gait",
                  "Videos", "Learning curves", "Trajectories and action error", "Config",
                  "Demonstrations", "Commands that reproduce it"):  # fmt: skip
        assert f"<h2>{title}</h2>" in text, title
    # Self-contained: every picture and video is inline; no address to fetch.
    sources = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert sources and all(s.startswith("data:") for s in sources)
    evaluation = json.loads((walk_run / "evaluation" / "evaluation.json").read_text())
    assert text.count('src="data:video/mp4;base64,') == len(evaluation["filmed"]) >= 2
    pngs = len(list((walk_run / "plots").glob("*.png")))
    pngs += len(list((walk_run / "evaluation" / "plots").glob("*.png")))
    assert text.count('src="data:image/png;base64,') == pngs + 1  # + the phase chart
    # The numbers are the evaluation's episodes: the survival row holds, per policy, the
    # share of its episodes that did not fall (cell by cell, so "100%" cannot pass for "0%").
    episodes = evaluation["episodes"]
    names = list(evaluation["summary"])
    assert names == ["learner", "expert", "random"]
    assert any(e["fell"] for e in episodes["random"])  # falls to count: the check can bite
    survival = []
    for name in names:
        kept = sum(not e["fell"] for e in episodes[name])
        low, high = evaluation["summary"][name]["survival_ci95"]
        survival.append(
            f"{round(100 * kept / len(episodes[name]))}% [{100 * low:.0f}-{100 * high:.0f}]"
        )
    results = _rows(_section(text, "Results against the expert and a random policy"))
    assert ["survival [95% CI]", *survival] in results
    # The six episodes sorted into five phase bins by the start phase each one recorded;
    # per bin and policy the episodes that did not fall, of those that started there.
    phases = [e["start_phase"] for e in episodes["learner"]]
    assert len(phases) == 6 and all(0.0 <= p < 1.0 for p in phases)
    header, *rows = _rows(_section(text, "By start phase of the gait"))
    assert header == ["start phase", "episodes"] + [
        f"{name} {what}" for name in names for what in ("survived", "distance m")]  # fmt: skip
    assert len(rows) == 5
    for k, row in enumerate(rows):
        chosen = {name: [e for e in episodes[name] if k / 5 <= e["start_phase"] < (k + 1) / 5]
                  for name in names}  # fmt: skip
        count = len(chosen["learner"])
        assert row[:2] == [f"{k / 5:.1f}-{(k + 1) / 5:.1f}", str(count)]
        for name, (survived, distance) in zip(
            names, zip(row[2::2], row[3::2], strict=True), strict=True
        ):
            if not count:
                assert (survived, distance) == ("-", "-")
                continue
            assert survived == f"{sum(not e['fell'] for e in chosen[name])}/{count}", (name, k)
            mean = sum(e["distance"] for e in chosen[name]) / count
            assert float(distance) == pytest.approx(mean, abs=0.051), (name, k)
    assert f"pipeline evaluate --policy {walk_run}" in text
    assert f"pipeline train --data {walk_run.parent / 'walk.h5'}" in text
    assert "pipeline record --env sim/HumanoidWalk-v0 --episodes 2 --seed 0" in text


def _section(text: str, title: str) -> str:
    """The HTML of the page's section titled ``title``, up to the next section."""
    return text.split(f"<h2>{html.escape(title)}</h2>", 1)[1].split("<h2>", 1)[0]


def _rows(section: str) -> list[list[str]]:
    """The cells (header and body) of the first table in ``section``, as text."""
    table = section.split("</table>", 1)[0]
    return [[html.unescape(c) for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", table)]  # fmt: skip


def test_a_training_run_without_evaluation_says_how_to_get_one(walk_run, tmp_path, capsys):
    run = tmp_path / "train-only"
    shutil.copytree(walk_run, run, ignore=shutil.ignore_patterns("evaluation", "*.mp4"))
    code, out, err = cli(capsys, "report", str(run), "--no-track")
    assert code == 0, err
    text = (run / "report.html").read_text()
    assert "holds no closed-loop evaluation" in text and "<h2>Learning curves</h2>" in text
    assert "<h2>Videos</h2>" not in text
    assert "training report" in out and str(run / "report.html") in out


def test_a_folder_of_quickstart_runs_reports_the_newest(walk_run, tmp_path, capsys):
    for stamp in ("20261201T000000Z", "20261202T000000Z"):
        run = tmp_path / "qs" / stamp
        shutil.copytree(walk_run, run / "train", ignore=shutil.ignore_patterns("evaluation"))
        shutil.copytree(walk_run / "evaluation", run / "evaluation")
        (run / "quickstart.json").write_text("{}")
    code, out, err = cli(capsys, "report", str(tmp_path / "qs"), "--no-track")
    assert code == 0, err
    assert (tmp_path / "qs" / "20261202T000000Z" / "report.html").is_file()
    assert not (tmp_path / "qs" / "20261201T000000Z" / "report.html").exists()
    assert "quickstart report" in out


def test_report_is_logged_to_the_runs_mlflow_run(walk_run, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run = tmp_path / "tracked"
    train_from_file(walk_run.parent / "walk.h5", load_config(None, ["model.hidden_sizes=[8]",
                                                          "training.epochs=1"]),
          run, tracking_uri=store)  # fmt: skip
    code, out, err = cli(capsys, "report", str(run), "--tracking-uri", store)
    assert code == 0, err
    run_id = json.loads((run / "training_run.json").read_text())["run_id"]
    names = [a.path for a in MlflowClient(store).list_artifacts(run_id, "reports")]
    assert names == ["reports/report.html"] and run_id in out


def test_bad_inputs_are_refused_in_one_line(walk_run, report_page, tmp_path, capsys):
    not_run = tmp_path / "notes"
    not_run.mkdir()
    (not_run / "readme.txt").write_text("hello")
    before = report_page.read_bytes()
    for args, words in (
        ([str(not_run)], "not a run folder"),
        ([str(tmp_path / "missing")], "no such folder"),
        ([str(walk_run), "--out", str(report_page)], "exists"),
        ([str(walk_run), "--out", str(tmp_path / "report.txt")], ".html"),
    ):
        code, out, err = cli(capsys, "report", *args, "--no-track")
        assert code == 2 and words in err and len(err.strip().splitlines()) == 1, err
        assert "Traceback" not in out + err
    assert report_page.read_bytes() == before
    assert sorted(p.name for p in not_run.iterdir()) == ["readme.txt"]


def test_the_page_renders_in_headless_chromium(report_page):
    playwright = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.is_file():
        if os.environ.get("PIPELINE_REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"no browser at {CHROMIUM} (apt-get install chromium)")
    errors: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: None if r.url.startswith(("file:", "data:"))
                    else errors.append(f"fetched {r.url}"))  # fmt: skip
            page.goto(report_page.as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => [e.complete, e.naturalWidth])"
            )
            assert images and all(done and width > 0 for done, width in images), images
            page.wait_for_function(
                "[...document.querySelectorAll('video')].every(v => v.readyState >= 1)",
                timeout=20_000)  # fmt: skip
            durations = page.eval_on_selector_all("video", "els => els.map(e => e.duration)")
            assert durations and all(d > 0.5 for d in durations), durations
            page.eval_on_selector("video", "v => v.play()")
            page.wait_for_function("document.querySelector('video').currentTime > 0.2",
                                   timeout=20_000)  # fmt: skip
            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "report-screenshot.png"
            page.screenshot(path=str(shot), full_page=False)
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()
    assert errors == []
