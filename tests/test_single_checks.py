"""One check per input: following ``pipeline train`` and ``pipeline evaluate`` from the
command line down to the work, the output-folder, resume and request checks run once each,
wherever they are imported from."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main

TINY = ["model.hidden_sizes=[8]", "training.epochs=1", "data.batch_size=256"]


@pytest.fixture
def count_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Counter[str]]]:
    """``count_calls(module, name, ...)``: every reference to those functions in our loaded
    modules is replaced by a counting wrapper; the returned Counter fills as they run."""
    calls: Counter[str] = Counter()

    def install(*targets: tuple[str, str]) -> Counter[str]:
        for module_name, name in targets:
            __import__(module_name)
            original = getattr(sys.modules[module_name], name)

            def counted(*args: Any, _name: str = name, _f: Any = original, **kw: Any) -> Any:
                calls[_name] += 1
                return _f(*args, **kw)

            for module in list(sys.modules.values()):
                if getattr(module, "__name__", "").split(".")[0] != "pipeline":
                    continue
                for attr, value in list(vars(module).items()):
                    if value is original:
                        monkeypatch.setattr(module, attr, counted)
        return calls

    yield install


def test_train_checks_its_run_directory_and_resume_once(run_data, tmp_path, count_calls,
                                                          capsys):  # fmt: skip
    import pipeline.cli.train  # noqa: F401  (the command's imports, before patching)

    calls = count_calls(("pipeline.algorithms.behaviour_cloning", "prepare_out_dir"),
                        ("pipeline.training.resume", "check_resume_config"),
                        ("pipeline.core.outputs", "check_output_dir"))  # fmt: skip
    out = tmp_path / "run"
    args = ["train", "--data", str(run_data), "--out", str(out), "--no-track", *TINY]
    assert main(args) == 0, capsys.readouterr().err
    assert calls == Counter({"prepare_out_dir": 1, "check_output_dir": 1})
    calls.clear()
    assert main([*args, "--resume"]) == 0, capsys.readouterr().err
    assert calls == Counter({"prepare_out_dir": 1, "check_resume_config": 1})


def test_evaluate_checks_its_request_once(run_data, tmp_path, count_calls, capsys):
    from pipeline.algorithms.behaviour_cloning import train_from_file
    from pipeline.training.config import load_config

    policy = tmp_path / "run"
    train_from_file(run_data, load_config(None, TINY), policy)
    import pipeline.cli.evaluate
    import pipeline.stages.evaluate.run  # noqa: F401

    calls = count_calls(("pipeline.stages.evaluate.request", "check_request"),
                        ("pipeline.core.outputs", "check_output_dir"),
                        ("pipeline.tracking.store", "prepare"))  # fmt: skip
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = main(["evaluate", "--policy", str(policy), "--episodes", "1", "--workers", "1",
                 "--episode-seconds", "0.2", "--out", str(tmp_path / "eval"),
                 "--tracking-uri", store])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert calls == Counter({"check_request": 1, "check_output_dir": 1, "prepare": 1})
    assert (tmp_path / "eval").is_dir() and Path(tmp_path / "mlflow.db").is_file()
