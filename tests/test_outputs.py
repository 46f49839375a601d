"""What every command writes: nothing existing is replaced without ``--overwrite``, missing
folders are created (only once every check passed), relative paths work, and every option
is checked before TensorFlow loads or a tracking store is touched."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datasets import DatasetMetadata, Episode, EpisodeWriter, SpaceSpec, open_dataset
from datasets.interchange import EXECUTED_ACTIONS_INFO
from pipeline.cli import main
from pipeline.core.errors import PipelineError
from pipeline.core.outputs import check_output_dir, check_output_path

WALK_SHORT = ["--episodes", "1", "--episode-seconds", "0.2"]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(capsys, *args: str) -> str:
    code, out, err = cli(capsys, *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (code, err)
    assert "Traceback" not in err + out
    return lines[0]


def tiny_file(path: Path, clash: bool = False, episodes: int = 2) -> Path:
    """A small valid demonstration file of an unregistered 2-d env; ``clash`` gives its
    episodes an info named like the export's executed-actions slot, so exports fail."""
    space = SpaceSpec.unbounded((2,))
    meta = DatasetMetadata(env_id="test/Nothing-v0", observation_space=space, action_space=space)
    rng = np.random.default_rng(0)
    with EpisodeWriter.create(path, meta, durable=False) as writer:
        for seed in range(episodes):
            writer.commit(Episode(
                observations=rng.normal(size=(11, 2)), actions=rng.normal(size=(10, 2)),
                executed_actions=rng.normal(size=(10, 2)), rewards=np.zeros(10),
                terminations=np.zeros(10, bool), truncations=np.arange(10) == 9,
                infos={EXECUTED_ACTIONS_INFO: np.zeros(10)} if clash else {}, seed=seed,
            ))  # fmt: skip
    return path


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def checksums(path: Path) -> list[str]:
    with open_dataset(path) as ds:
        return [info.checksum for info in ds.episode_infos()]


# --- the one check ------------------------------------------------------------------------


def test_check_output_path(tmp_path):
    existing = tmp_path / "r.json"
    existing.write_text("keep")
    with pytest.raises(PipelineError, match=r"--json .*r.json: already exists; .*--overwrite"):
        check_output_path(existing, "--json", (".json",))
    assert check_output_path(existing, "--json", (".json",), overwrite=True) == existing
    assert check_output_path(tmp_path / "new" / "deeper" / "r.json", "--json")  # created later
    with pytest.raises(PipelineError, match="is a directory"):
        check_output_path(tmp_path, "--json", overwrite=True)
    with pytest.raises(PipelineError, match=r"r.json is not a directory"):
        check_output_path(existing / "sub" / "x.json", "--json")
    with pytest.raises(PipelineError, match="exists and is not a directory"):
        check_output_dir(existing, "--out")
    assert not (tmp_path / "new").exists()


def test_unwritable_folder_is_one_clear_error(tmp_path, capsys, mounted_tmpfs):
    with mounted_tmpfs(tmp_path / "ro", "ro,size=1m") as directory:
        message = one_error_line(capsys, "rollout", "--json", str(directory / "a" / "r.json"))
        assert "--json" in message and f"directory {directory} is not writable" in message


# --- Minari interchange with relative paths --------------------------------------------


def test_export_and_import_with_relative_paths(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tiny_file(Path("walk.h5"))
    code, out, err = cli(capsys, "export", "walk.h5", "--format", "minari", "--out",
                         "minari_datasets")  # fmt: skip
    assert code == 0 and "minari_datasets/nothing/demos-v0" in out, err
    data = tmp_path / "minari_datasets" / "nothing" / "demos-v0" / "data"
    assert (data / "main_data.hdf5").is_file() and (data / "metadata.json").is_file()
    assert not [p for p in tree(tmp_path / "minari_datasets") if ".partial" in p]
    code, _, err = cli(capsys, "import", "nothing/demos-v0", "--datasets-root", "minari_datasets",
                       "--out", "back/again/walk.h5")  # fmt: skip
    assert code == 0, err
    assert checksums(tmp_path / "back" / "again" / "walk.h5") == checksums(tmp_path / "walk.h5")


def test_failed_export_leaves_nothing_new(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    tiny_file(Path("clash.h5"), clash=True)
    before = tree(tmp_path)
    message = one_error_line(capsys, "export", "clash.h5", "--out", "new/minari_datasets")
    assert EXECUTED_ACTIONS_INFO in message
    assert tree(tmp_path) == before


# --- missing folders --------------------------------------------------------------------


def test_missing_folders_are_created_for_new_outputs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "rollout", *WALK_SHORT, "--video", "videos/walk/w.gif",
                       "--json", "reports/rollout/w.json")  # fmt: skip
    assert code == 0, err
    assert Path("videos/walk/w.gif").stat().st_size > 0
    assert json.loads(Path("reports/rollout/w.json").read_text())["command"] == "rollout"
    code, _, err = cli(capsys, "record", *WALK_SHORT, "--keep-failed", "--out", "data/walk.h5",
                       "--json", "reports/record/r.json")  # fmt: skip
    assert code == 0, err
    assert len(checksums(Path("data/walk.h5"))) == 1
    assert Path("reports/record/r.json").is_file()
    code, _, err = cli(capsys, "inspect", "data/walk.h5", "--json", "reports/inspect/i.json")
    assert code == 0 and Path("reports/inspect/i.json").is_file(), err
    code, _, err = cli(capsys, "envs", "--json", "reports/envs/e.json")
    assert code == 0 and Path("reports/envs/e.json").is_file(), err


def test_train_creates_missing_folders_and_replaces_its_json_only_with_overwrite(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    tiny_file(Path("tiny.h5"), episodes=4)
    Path("t.json").write_text("precious")
    args = ["train", "--data", "tiny.h5", "--no-track", "--json", "t.json", "training.epochs=1"]
    message = one_error_line(capsys, *args, "--out", "runs/a/run")
    assert "--json t.json: already exists" in message and "--overwrite" in message
    assert Path("t.json").read_text() == "precious" and not Path("runs").exists()
    code, _, err = cli(capsys, *args, "--out", "runs/a/run", "--overwrite")
    assert code == 0, err
    assert json.loads(Path("t.json").read_text())["out_dir"] == "runs/a/run"
    assert (tmp_path / "runs" / "a" / "run" / "policy" / "manifest.json").is_file()


def test_bad_input_creates_no_folders(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for args in (
        ["rollout", "--episodes", "0", "--video", "v/w.mp4", "--json", "j/w.json"],
        ["record", "--out", "data/x.h5", "--json", "j/x.json", "--compression", "bogus"],
        ["record", "--out", "data/x.h5", "--json", "j/x.json", "--episodes", "0"],
        ["train", "--data", "nope.h5", "--out", "runs/x", "--no-track", "--json", "j/t.json"],
        ["import", "nowhere", "--out", "data/x.h5"],
        ["export", "nope.h5", "--out", "minari/root"],
    ):
        one_error_line(capsys, *args)
    assert tree(tmp_path) == []


@pytest.mark.parametrize(
    "args",
    [
        ["rollout", "--json", "{f}/r.json"],
        ["rollout", "--video", "{f}/sub/v.mp4"],
        ["record", "--out", "{f}/x.h5"],
        ["record", "--out", "x.h5", "--json", "{f}/r.json"],
        ["train", "--data", "{h5}", "--out", "{f}/run", "--no-track"],
        ["train", "--data", "{h5}", "--json", "{f}/t.json"],
        ["evaluate", "--policy", "p", "--out", "{f}/eval"],
        ["evaluate", "--policy", "p", "--json", "{f}/e.json"],
        ["evaluate", "--policy", "p", "--video", "{f}/v.mp4"],
        ["inspect", "{h5}", "--json", "{f}/i.json"],
        ["envs", "--json", "{f}/e.json"],
        ["export", "{h5}", "--out", "{f}/root"],
        ["quickstart", "--out", "{f}/qs"],
    ],
)
def test_a_file_in_the_way_is_one_clear_error(tmp_path, monkeypatch, capsys, args):
    monkeypatch.chdir(tmp_path)
    blocker = tmp_path / "file"
    blocker.write_text("keep")
    h5 = tiny_file(tmp_path / "tiny.h5")
    (tmp_path / "p").mkdir()  # a policy directory (its outputs are checked before loading)
    before = tree(tmp_path)
    filled = [a.format(f=blocker, h5=h5) for a in args]
    message = one_error_line(capsys, *filled)
    assert f"{blocker} is not a directory" in message or "exists and is not a dir" in message
    assert blocker.read_text() == "keep" and tree(tmp_path) == before


# --- nothing existing is replaced without --overwrite ----------------------------------


@pytest.mark.parametrize(
    "args, option",
    [
        (["rollout", "--json", "{x}.json"], "--json"),
        (["rollout", "--video", "{x}.mp4"], "--video"),
        (["rollout", "--video", "v.gif"], "--video v_first_fall.gif"),
        (["record", "--out", "{x}.h5"], "--out"),
        (["record", "--out", "new.h5", "--json", "{x}.json"], "--json"),
        (["train", "--data", "{h5}", "--json", "{x}.json"], "--json"),
        (["train", "--data", "{h5}", "--overfit-batch", "--json", "{x}.json"], "--json"),
        (["evaluate", "--policy", "p", "--json", "{x}.json"], "--json"),
        (["evaluate", "--policy", "p", "--video", "{x}.mp4"], "--video"),
        (["evaluate", "--policy", "p", "--video", "v.mp4", "--compare-expert"], "--video"),
        (["evaluate", "--policy", "p", "--video", "v.gif"], "--video"),
        (["inspect", "{h5}", "--json", "{x}.json"], "--json"),
        (["envs", "--json", "{x}.json"], "--json"),
        (["import", "{minari}", "--out", "{x}.h5"], ""),
    ],
)
def test_existing_outputs_are_refused(tmp_path, monkeypatch, capsys, args, option):
    monkeypatch.chdir(tmp_path)
    h5 = tiny_file(tmp_path / "tiny.h5")
    (tmp_path / "p").mkdir()
    for name in ("x.json", "x.mp4", "x.h5", "v_vs_expert.mp4", "v_first_fall.gif"):
        (tmp_path / name).write_bytes(b"precious")
    minari = tmp_path / "minari"
    if "{minari}" in args:
        from datasets.interchange import export_minari

        export_minari(h5, minari, "nothing/demos-v0")
    filled = [a.format(x="x", h5=h5, minari=minari / "nothing" / "demos-v0") for a in args]
    message = one_error_line(capsys, *filled)
    assert "already exists; not overwriting it" in message and option in message
    for name in ("x.json", "x.mp4", "x.h5", "v_vs_expert.mp4", "v_first_fall.gif"):
        assert (tmp_path / name).read_bytes() == b"precious"


def test_record_json_with_append_says_to_name_a_new_file(tmp_path, capsys):
    tiny = tiny_file(tmp_path / "tiny.h5")
    (tmp_path / "r.json").write_text("keep")
    message = one_error_line(capsys, "record", "--out", str(tiny), "--append", "--json",
                             str(tmp_path / "r.json"))  # fmt: skip
    assert "name a new file" in message and (tmp_path / "r.json").read_text() == "keep"


def test_overwrite_replaces_existing_outputs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for name in ("w.json", "w.gif", "e.json", "i.json", "r.json", "walk.h5"):
        Path(name).write_bytes(b"old")
    code, _, err = cli(capsys, "rollout", *WALK_SHORT, "--video", "w.gif", "--json", "w.json",
                       "--overwrite")  # fmt: skip
    assert code == 0, err
    assert json.loads(Path("w.json").read_text())["command"] == "rollout"
    assert Path("w.gif").read_bytes()[:3] == b"GIF"
    code, _, err = cli(capsys, "envs", "--json", "e.json", "--overwrite")
    assert code == 0 and json.loads(Path("e.json").read_text())["command"] == "envs", err
    code, _, err = cli(capsys, "record", *WALK_SHORT, "--keep-failed", "--out", "walk.h5",
                       "--json", "r.json", "--overwrite")  # fmt: skip
    assert code == 0, err
    assert len(checksums(Path("walk.h5"))) == 1
    assert json.loads(Path("r.json").read_text())["command"] == "record"
    code, _, err = cli(capsys, "inspect", "walk.h5", "--json", "i.json", "--overwrite")
    assert code == 0 and json.loads(Path("i.json").read_text())["command"] == "inspect", err


# --- every option before heavy work -------------------------------------------------------


def _in_fresh_process(cwd: Path, *args: str) -> tuple[int, str, bool]:
    """Run the CLI in a new interpreter; returns (exit code, stderr, TensorFlow imported)."""
    code = (
        "import sys; from pipeline.cli import main; code = main(sys.argv[1:]); "
        "print('tensorflow' in sys.modules, 'keras' in sys.modules); sys.exit(code)"
    )
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          cwd=cwd, timeout=300)  # fmt: skip
    return done.returncode, done.stderr, done.stdout.strip() != "False False"


def test_record_bad_compression_fails_before_tensorflow(tmp_path):
    code, err, heavy = _in_fresh_process(tmp_path, "record", "--out", "x.h5", "--compression",
                                         "bogus")  # fmt: skip
    assert code == 2 and not heavy, err
    assert err.startswith("error: --compression: unknown compression 'bogus'")
    assert err.count("\n") == 1 and list(tmp_path.iterdir()) == []


def _policy_dir(path: Path, env_id: str) -> Path:
    """Enough of a policy directory to say which env it is for (its spec file)."""
    path.mkdir()
    (path / "manifest.json").write_text("{}")
    (path / "spec.json").write_text(json.dumps({"env_id": env_id}))
    return path


@pytest.mark.parametrize(
    "args, words",
    [
        (["--env", "sim/Nope-v0"], "--env: unknown environment 'sim/Nope-v0'"),
        (["--start-phase", "random"], "--start-phase: applies only to the motion-imitation"),
        (["--env", "sim/HumanoidWalk-v0", "--start-phase", "1.5"], "--start-phase: 1.5 is out"),
        (["--episode-seconds", "0"], "--episode-seconds: 0.0 must be > 0"),
        (["--env", "sim/HumanoidWalk-v0", "--episode-seconds", "-1"], "--episode-seconds"),
    ],
)
def test_evaluate_checks_env_options_before_the_policy_and_mlflow(tmp_path, args, words):
    policy = _policy_dir(tmp_path / "policy", "sim/HumanoidRun-v0")
    store = tmp_path / "mlflow.db"
    code, err, heavy = _in_fresh_process(tmp_path, "evaluate", "--policy", str(policy),
                                         "--tracking-uri", f"sqlite:///{store}", *args)  # fmt: skip
    assert code == 2 and not heavy, err
    assert err.startswith(f"error: {words}") and err.count("\n") == 1, err
    assert not store.exists() and not (tmp_path / "mlruns").exists()


def test_evaluate_missing_policy_is_refused_before_mlflow(tmp_path):
    store = tmp_path / "mlflow.db"
    code, err, heavy = _in_fresh_process(tmp_path, "evaluate", "--policy", "nope",
                                         "--tracking-uri", f"sqlite:///{store}")  # fmt: skip
    assert code == 2 and not heavy and "--policy nope: policy directory not found" in err, err
    assert not store.exists()


def test_evaluate_mlflow_policy_start_phase_checked_before_mlflow(tmp_path):
    store = tmp_path / "mlflow.db"
    code, err, heavy = _in_fresh_process(tmp_path, "evaluate", "--policy", "runs:/abc/policy",
                                         "--tracking-uri", f"sqlite:///{store}",
                                         "--start-phase", "sometimes")  # fmt: skip
    assert code == 2 and not heavy and "--start-phase: 'sometimes' is not" in err, err
    assert not store.exists()
