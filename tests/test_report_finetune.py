"""``pipeline report DIR`` for a fine-tuning run: a real walk policy fine-tuned for six small
updates (as tests/test_finetune.py runs it), reported, and the page read as a reader reads
it: the run's own figures in its selection table, the published policy marked, the curve
embedded, every update's metrics, and a command that gives back the run's config."""

from __future__ import annotations

import base64
import html
import json
import re
import shlex
import shutil
from pathlib import Path

import pytest
from finetune_small import SMALL, WALK, tiny_walk_policy

from pipeline.algorithms.finetune import CURVE_FILE, FINETUNE_FILE, FinetuneRequest, finetune
from pipeline.algorithms.finetune_config import resolve_finetune_config
from pipeline.cli import main
from pipeline.workflows.finetune_report import update_rows

EXTRA = ["ppo.policy_lr=3e-05", "critic.hidden_sizes=[32,32]", "ppo.target_kl=null"]
"""Overrides whose values the reproduce command must write back so that YAML reads them as
they were: a float in exponent notation, a list, a null."""


@pytest.fixture(scope="module")
def finetune_run(tmp_path_factory) -> Path:
    """A tiny walk MLP trained for one epoch on three one-second demonstrations, then
    fine-tuned for six updates into ``ft/`` (no tracking)."""
    root = tmp_path_factory.mktemp("report-finetune")
    policy = tiny_walk_policy(root)
    out = root / "ft"
    ft_config = resolve_finetune_config(None, [*SMALL, *EXTRA], env_id=WALK)
    finetune(FinetuneRequest(policy=str(policy), out=out, config=ft_config))
    return out


def _page(run: Path, capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    page = run / "report.html"
    code = main(["report", str(run), "--out", str(page), "--no-track", "--overwrite"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    return page.read_text(), printed.out


@pytest.fixture(scope="module")
def page(finetune_run) -> str:
    out = finetune_run / "report.html"
    assert main(["report", str(finetune_run), "--no-track"]) == 0
    return out.read_text()


def _section(text: str, title: str) -> str:
    """The HTML of the page's section titled ``title``, up to the next section."""
    assert f"<h2>{html.escape(title)}</h2>" in text, title
    return text.split(f"<h2>{html.escape(title)}</h2>", 1)[1].split("<h2>", 1)[0]


def _tables(section: str) -> list[list[list[str]]]:
    """The tables of ``section``: rows of cell texts, header first."""
    return [[[html.unescape(c) for c in re.findall(r"<t[hd]>(.*?)</t[hd]>", row)]
             for row in re.findall(r"<tr>(.*?)</tr>", table)]
            for table in re.findall(r"<table>(.*?)</table>", section)]  # fmt: skip


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _opening(text: str) -> str:
    found = re.search(r'<p class="opening">(.*?)</p>', text)
    assert found, "the page has no opening sentence"
    return html.unescape(found.group(1))


def test_the_selection_table_holds_the_runs_figures_and_marks_the_published(page, finetune_run):
    result = json.loads((finetune_run / FINETUNE_FILE).read_text())
    selections, expert = result["selections"], result["expert"]
    assert [s["update"] for s in selections] == [-1, 3, 5, 6]
    [table] = _tables(_section(page, "Selections against the expert"))
    header, reference, *rows = table
    assert header == ["policy", "env steps", "survival", "norm. distance",
                      "norm. pose reward", "distance m", "published"]  # fmt: skip
    assert reference[:6] == ["expert (reference)", "-", _percent(expert["survival"]), "1", "1",
                             f"{expert['distance']:.3g}"]  # fmt: skip
    assert len(rows) == len(selections)
    for row, selection in zip(rows, selections, strict=True):
        name = (
            "starting policy" if selection["update"] < 0 else f"after update {selection['update']}"
        )
        pose = selection["normalized_pose_reward"]
        assert row[:6] == [name, str(selection["env_steps"]), _percent(selection["survival"]),
                           f"{selection['normalized_distance']:.3g}",
                           "-" if pose is None else f"{pose:.3g}",
                           f"{selection['distance']:.3g}"]  # fmt: skip
    # Exactly one row is published: the last selection marked so (it replaced any before).
    published = [s for s in selections if s["published"]][-1]
    assert [row[-1] for row in rows] == ["yes" if s is published else "" for s in selections]
    name = "starting policy" if published["update"] < 0 else f"after update {published['update']}"
    assert f", and the policy it published ({name}); " in _opening(page)


def test_the_page_says_what_the_run_is_and_shows_its_curve_and_updates(page, finetune_run):
    result = json.loads((finetune_run / FINETUNE_FILE).read_text())
    assert _opening(page).startswith(
        "This fine-tuning run holds the closed-loop selections of its starting policy and "
        "of 3 fine-tuned checkpoints on the same 2 selection episodes (seeds 7000-7001), "
        "beside the expert's, the training metrics of its 6 updates (1536 environment steps)"
    )
    assert _opening(page).endswith("; it holds no evaluation on held-out seeds.")
    [facts] = _tables(_section(page, "Fine-tuning run"))
    facts_by_name = dict(facts[1:])
    policy = finetune_run.parent / "run" / "policy"
    assert facts_by_name["starting policy"] == str(policy)
    assert facts_by_name["environment"] == WALK
    assert facts_by_name["environment steps"] == "1536 (asked: 1536)"
    assert facts_by_name["updates"] == "6 (1 critic warm-up, 5 PPO)"
    assert facts_by_name["MLflow run"] == "not tracked"
    # The curve is the run's own PNG, inline.
    curves = _section(page, "Learning curves")
    assert curves.count('src="data:image/png;base64,') == 1
    embedded = re.search(r'src="data:image/png;base64,([^"]+)"', curves).group(1)
    assert base64.b64decode(embedded) == (finetune_run / CURVE_FILE).read_bytes()
    # One row per update, each the run's own figures.
    [updates] = _tables(curves)
    assert updates[0][:5] == ["update", "env steps", "phase", "episodes", "train survival"]
    assert len(updates) == 1 + len(result["rows"])
    columns = updates[0]
    for cells, row in zip(updates[1:], result["rows"], strict=True):
        cell = dict(zip(columns, cells, strict=True))
        shown = (cell["update"], cell["env steps"], cell["phase"], cell["episodes"])
        assert shown == (str(row["update"]), str(row["env_steps"]), row["phase"],
                         str(row["episodes"]))  # fmt: skip
        assert cell["train survival"] == (
            "-" if row["survival"] is None else _percent(row["survival"])
        )
        assert cell["value loss"] == f"{row['value_loss']:.3g}"
        assert cell["anchor weight"] == f"{row['anchor_weight']:.3g}"
        kl = row["approx_kl"]
        assert cell["KL"] == ("-" if kl is None else f"{kl:.3g}")
    assert [cells[2] for cells in updates[1:]] == ["warmup"] + ["ppo"] * 5
    # The config, as the run recorded it.
    assert html.escape(json.dumps(result["config"], indent=2)) in _section(page, "Config")
    # Every survival cell of every table is a share in percent.
    for table in _tables(page):
        header, body = table[0], table[1:]
        cells = [row[i] for row in body for i, name in enumerate(header) if "survival" in name]
        assert all(re.match(r"^\d+(\.\d)?%$", c) for c in cells if c != "-"), cells


def test_the_reproduce_command_gives_back_the_runs_config(page, finetune_run, capsys):
    result = json.loads((finetune_run / FINETUNE_FILE).read_text())
    text = html.unescape(_section(page, "Commands that reproduce it"))
    [line] = [line for line in text.splitlines() if "pipeline finetune" in line]
    words = shlex.split(line.split("<pre>")[-1].split("</pre>")[0])
    assert words[:2] == ["pipeline", "finetune"]
    options = dict(zip(words[2:6:2], words[3:6:2], strict=True))
    assert options == {"--policy": str(finetune_run.parent / "run" / "policy"),
                       "--out": f"{finetune_run}-again"}  # fmt: skip
    overrides = words[6:]
    # Every key the run changed from the defaults, and no other.
    assert {o.split("=")[0] for o in overrides} == {o.split("=")[0] for o in [*SMALL, *EXTRA]}
    assert "ppo.target_kl=null" in overrides and "critic.hidden_sizes=[32,32]" in overrides
    config = resolve_finetune_config(None, overrides, env_id=WALK)
    assert config.model_dump(mode="json") == result["config"]
    # The command line accepts the command as written (--show-config: nothing runs).
    assert main([*words[1:], "--show-config"]) == 0, capsys.readouterr().err
    assert not Path(f"{finetune_run}-again").exists()


def test_a_run_with_an_evaluation_shows_the_held_out_results_too(finetune_run, tmp_path, capsys):
    run = tmp_path / "ft"
    shutil.copytree(finetune_run, run, ignore=shutil.ignore_patterns("report.html"))
    assert main(["evaluate", "--policy", str(run / "policy"), "--episodes", "2",
                 "--seed", "1000", "--episode-seconds", "0.5", "--compare-expert", "--out",
                 str(run / "evaluation"), "--no-track"]) == 0  # fmt: skip
    text, printed = _page(run, capsys)
    assert "finetune report" in printed
    assert _opening(text).endswith(
        "; its evaluation/ folder holds an evaluation of learner, expert and random on the "
        "same 2 episodes (seeds 1000-1001)."
    )
    [results] = _tables(_section(text, "Results against the expert and a random policy"))
    assert results[0] == ["metric", "learner", "expert", "random"]
    # The selections stay, without the hint to evaluate on held-out seeds.
    selections = _section(text, "Selections against the expert")
    assert "optimistic" not in selections
    assert f"pipeline evaluate --policy {run / 'policy'}" in text


def test_a_long_run_is_shown_as_spans_of_updates(finetune_run):
    """Past 24 updates each row is a span: its updates' means, survival weighted by the
    episodes that ended, the episodes summed."""
    rows = json.loads((finetune_run / FINETUNE_FILE).read_text())["rows"]
    many = [{**row, "update": k, "env_steps": 256 * (k + 1)}
            for k, row in enumerate(rows[1:] * 10)]  # fmt: skip
    shown = update_rows(many, limit=24)
    assert len(shown) == 24
    assert [row[0] for row in shown[:2]] == ["0-1", "2-3"]  # 50 updates in 24 spans
    span = many[:2]
    assert shown[0][1] == str(span[-1]["env_steps"])
    assert shown[0][3] == str(sum(r["episodes"] for r in span))
    kept = sum(r["survival"] * r["episodes"] for r in span if r["survival"] is not None)
    ended = sum(r["episodes"] for r in span if r["survival"] is not None)
    assert shown[0][4] == (_percent(kept / ended) if ended else "-")
    assert shown[0][6] == f"{(span[0]['value_loss'] + span[1]['value_loss']) / 2:.3g}"


def test_a_finetune_json_of_something_else_is_refused_in_one_line(tmp_path, capsys):
    run = tmp_path / "odd"
    run.mkdir()
    (run / FINETUNE_FILE).write_text(json.dumps({"command": "finetune", "rows": {}}))
    code = main(["report", str(run), "--no-track"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "not a run of pipeline finetune (no valid rows, selections, config)" in err
    assert not (run / "report.html").exists()
