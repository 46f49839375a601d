"""``pipeline quickstart`` end to end at small scale, and its defaults."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.training.config import config_to_dict, load_config
from pipeline.workflows.quickstart import QuickstartConfig, run_directory, train_config

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart_trains_with_the_shipped_walk_config():
    shipped = load_config(ROOT / "configs" / "walk_mlp.yaml", ["training.epochs=40", "seed=0"])
    assert config_to_dict(train_config(QuickstartConfig())) == config_to_dict(shipped)


def test_every_run_gets_a_new_directory(tmp_path):
    first, second = run_directory(tmp_path), run_directory(tmp_path)
    assert first != second and first.is_dir() and second.is_dir()


def test_quickstart_small_end_to_end(tmp_path, capsys):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = main(["quickstart", "--out", str(tmp_path / "qs"), "--demos", "3", "--epochs", "1",
                 "--eval-episodes", "1", "--workers", "1", "--tracking-uri", store])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    (run,) = (tmp_path / "qs").iterdir()
    summary = json.loads((run / "quickstart.json").read_text())
    assert summary["train"]["train_episodes"] + summary["train"]["val_episodes"] == 3
    evaluation = summary["evaluation"]
    assert set(evaluation["episodes"]) == {"learner", "expert", "random"}
    assert (run / "walk.mp4").stat().st_size > 0 and (run / "walk_vs_expert.mp4").exists()
    assert (run / "evaluation" / "evaluation.json").exists()
    assert (run / "train" / "policy" / "manifest.json").exists()
    for words in ("survival", "expert-normalized", "video:", "mlflow ui --backend-store-uri"):
        assert words in out


@pytest.mark.parametrize(
    "args, words",
    [(["--demos", "1"], "--demos"), (["--noise", "-1"], "--noise"),
     (["--eval-episodes", "0"], "--eval-episodes"), (["--workers", "0"], "--workers")],
)  # fmt: skip
def test_bad_options(tmp_path, capsys, args, words):
    code = main(["quickstart", "--out", str(tmp_path / "qs"), "--no-track", *args])
    err = capsys.readouterr().err
    assert code == 2 and words in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "qs").exists()
