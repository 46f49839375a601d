"""``--backend ray`` against real Ray clusters started here, on loopback only
(``tests/ray_cluster.py``): a head for the module (``ray start --head``), and a two-node
cluster (``ray.cluster_utils.Cluster``).
Episodes and recordings on Ray equal the local ones; a killed worker is replaced and its
episodes run again, counted once; trials of ``tune`` run as Ray tasks with their MLflow runs
nested; bad addresses and a SQLite store on several nodes are one line each."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from ray_cluster import free_port, start_head, start_two_nodes

import sim
from datasets import open_dataset
from pipeline.cli import main
from pipeline.core.errors import PipelineError
from pipeline.rollout import ray_pool
from pipeline.rollout.cluster import Backend, parse_backend
from pipeline.rollout.policies import ExpertPolicy
from pipeline.rollout.workers import EpisodeTask, rollout_pool

ray = pytest.importorskip("ray", reason="the Ray extra is not installed (pip install '.[ray]')")

# One xdist worker runs every test that starts Ray: the README's `ray stop` stops every
# cluster on the machine.
pytestmark = pytest.mark.xdist_group("ray")

RUN = "sim/HumanoidRun-v0"


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """A one-node Ray cluster on this machine's loopback for these tests: ``HOST:PORT`` of
    its head."""
    with start_head() as (address, _process):
        yield address


@pytest.fixture(scope="module")
def policy(run_data, tmp_path_factory) -> Path:
    """A small MLP trained on the session's run demonstrations."""
    from pipeline.algorithms.behaviour_cloning import train_from_file
    from pipeline.training.config import load_config

    out = tmp_path_factory.mktemp("ray-policy") / "run"
    train_from_file(
        run_data, load_config(None, ["model.hidden_sizes=[32,32]", "training.epochs=2"]), out
    )
    return out


def _without_times(episodes: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "wall_s"} for e in episodes]


def _episodes(path: Path) -> list[tuple]:
    with open_dataset(path) as ds:
        return [(info.seed, ds.episode(i).observations, ds.episode(i).actions)
                for i, info in zip(ds.episode_ids(), ds.episode_infos(), strict=True)]  # fmt: skip


def _assert_same_recording(a: Path, b: Path) -> None:
    first, second = _episodes(a), _episodes(b)
    assert len(first) == len(second) > 0
    for (seed_a, obs_a, act_a), (seed_b, obs_b, act_b) in zip(first, second, strict=True):
        assert seed_a == seed_b
        np.testing.assert_array_equal(obs_a, obs_b)
        np.testing.assert_array_equal(act_a, act_b)


# -- one node --------------------------------------------------------------------------------


def test_evaluate_on_ray_gives_the_local_episodes(ray_head, policy, tmp_path, capsys):
    reports = {}
    for backend in ("local", "ray"):
        path = tmp_path / f"{backend}.json"
        extra = ["--ray-address", ray_head] if backend == "ray" else []
        code, _, err = cli(capsys, "evaluate", "--policy", str(policy), "--episodes", "3",
                           "--workers", "2", "--compare-expert", "--no-track", "--json",
                           str(path), "--backend", backend, *extra)  # fmt: skip
        assert code == 0, err
        reports[backend] = json.loads(path.read_text())
    assert not ray.is_initialized()  # the command's connection was closed
    local, remote = reports["local"]["episodes"], reports["ray"]["episodes"]
    assert set(local) == set(remote) == {"learner", "expert", "random"}
    for name in local:
        assert _without_times(remote[name]) == _without_times(local[name])


def test_record_on_ray_writes_the_local_episodes(ray_head, tmp_path, capsys):
    for backend in ("local", "ray"):
        extra = ["--ray-address", ray_head] if backend == "ray" else []
        code, _, err = cli(capsys, "record", "--env", RUN, "--episodes", "3", "--workers", "2",
                           "--seed", "5", "--noise", "0.1", "--out",
                           str(tmp_path / f"{backend}.h5"), "--backend", backend,
                           *extra)  # fmt: skip
        assert code == 0, err
    _assert_same_recording(tmp_path / "local.h5", tmp_path / "ray.h5")


def _kill_workers(limit: int | None = None) -> list[int]:
    """SIGKILL up to ``limit`` live Ray rollout workers (all when None) and return their
    pids; a pid that exits between pgrep and the kill (a worker of an earlier pool still
    shutting down) is skipped rather than failing the test."""
    pids = subprocess.run(["pgrep", "-f", "ray::_RayWorker"], capture_output=True,
                          text=True).stdout.split()  # fmt: skip
    killed: list[int] = []
    for pid in map(int, pids):
        if limit is not None and len(killed) == limit:
            break
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        killed.append(pid)
    assert killed, f"no live Ray rollout worker among {pids}"
    return killed


def test_a_worker_killed_during_evaluate_is_replaced_and_its_episodes_run_once(ray_head, policy):
    from pipeline.stages.evaluate import EvaluateRequest, evaluate

    def request(backend: Backend) -> EvaluateRequest:
        return EvaluateRequest(policy=str(policy), episodes=6, workers=2, backend=backend)

    local = evaluate(request(Backend()), None)
    killed: list[int] = []

    def kill_after_first(_name, _result) -> None:
        if not killed:
            killed.extend(_kill_workers(limit=1))

    remote = evaluate(request(Backend("ray", ray_head)), None, kill_after_first)
    assert killed
    assert [r.seed for r in remote.results["learner"]] == list(range(1000, 1006))
    assert _without_times([r.to_dict() for r in remote.results["learner"]]) == _without_times(
        [r.to_dict() for r in local.results["learner"]]
    )


# Two DAgger runs (about 30 s): with the slow tests (python3 tasks.py bench).
@pytest.mark.slow
def test_dagger_on_ray_aggregates_the_local_episodes(ray_head, run_data, tmp_path):
    from pipeline.algorithms.dagger import dagger
    from pipeline.algorithms.dagger_config import DaggerConfig
    from pipeline.training.config import load_config

    train_config = load_config(None, ["model.hidden_sizes=[16,16]", "data.batch_size=256",
                                      "training.epochs=1"])  # fmt: skip
    rows = {}
    for name, backend in (("local", Backend()), ("ray", Backend("ray", ray_head))):
        config = DaggerConfig(iterations=1, episodes_per_iteration=2, eval_episodes=2,
                              workers=2, backend=backend)  # fmt: skip
        rows[name] = dagger(run_data, tmp_path / name, config, train_config).rows
    _assert_same_recording(tmp_path / "local" / "aggregate.h5", tmp_path / "ray" / "aggregate.h5")
    assert [(r.labels, r.survival) for r in rows["ray"]] == [
        (r.labels, r.survival) for r in rows["local"]
    ]


def test_finetune_on_ray_trains_the_local_run(ray_head, policy, tmp_path):
    """A few fine-tuning updates with their segments on Ray actors end in the checkpoint
    the local pool gives: a segment is a function of its task, wherever it runs."""
    from pipeline.algorithms.finetune import CHECKPOINT_FILE, FinetuneRequest, finetune
    from pipeline.algorithms.finetune_config import resolve_finetune_config

    config = resolve_finetune_config(None, [
        "steps=768", "steps_per_update=256", "segments=4", "ppo.minibatch=128",
        "critic.warmup_updates=1", "selection.episodes=2", "curriculum.episode_seconds=0.5",
    ], env_id=RUN)  # fmt: skip
    checkpoints = {}
    for name, backend in (("local", Backend()), ("ray", parse_backend("ray", ray_head))):
        out = tmp_path / name
        finetune(FinetuneRequest(policy=str(policy), out=out, config=config, workers=2,
                                 backend=backend))  # fmt: skip
        with np.load(out / CHECKPOINT_FILE) as data:
            checkpoints[name] = {k: data[k] for k in data.files if k != "meta"}
    assert checkpoints["local"].keys() == checkpoints["ray"].keys()
    for key, value in checkpoints["local"].items():
        np.testing.assert_array_equal(value, checkpoints["ray"][key], err_msg=key)


def test_workers_that_keep_dying_fail_with_one_line(ray_head, monkeypatch):
    monkeypatch.setattr(ray_pool, "RESTARTS", 0)
    expert = ExpertPolicy(sim.load_expert(sim.EXPERT_FOR_ENV[RUN]))
    tasks = [EpisodeTask(seed) for seed in range(4)]
    backend = Backend("ray", ray_head)
    killed: list[int] = []
    # Every live worker dies at the first result, so this pool's are among them whatever
    # else pgrep sees; the pool gives up at the first death it meets (no restarts allowed).
    with (pytest.raises(PipelineError, match=r"^--backend ray: 1 workers died, giving up"),
          rollout_pool(RUN, {}, expert, 2, backend=backend) as pool):  # fmt: skip
        pool.run(tasks, lambda _result: killed or killed.extend(_kill_workers()))
    assert not ray.is_initialized()


def test_tune_on_ray_runs_its_trials_as_ray_tasks(ray_head, run_data, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    space = tmp_path / "space.yaml"
    space.write_text("optimizer.learning_rate: {log_uniform: [1.0e-4, 1.0e-2]}\n")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "study"
    code, stdout, err = cli(capsys, "tune", "--data", str(run_data), "--space", str(space),
                            "--out", str(out), "--trials", "2", "--workers", "2",
                            "--tracking-uri", uri, "--backend", "ray", "--ray-address",
                            ray_head, "training.epochs=1", "model.hidden_sizes=[16,16]",
                            "data.batch_size=256")  # fmt: skip
    assert code == 0, err
    assert f"on ray at {ray_head}" in stdout
    result = json.loads((out / "tune.json").read_text())
    assert len(result["trials"]) == 2
    client = MlflowClient(uri)
    parent = client.get_run(result["run_id"])
    children = client.search_runs([parent.info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{result['run_id']}'")  # fmt: skip
    assert {r.info.run_id for r in children} == {t["run_id"] for t in result["trials"]}


# -- two nodes -------------------------------------------------------------------------------


@pytest.fixture
def two_nodes() -> Iterator[str]:
    """A head and a worker node (one CPU each), both on this machine's loopback."""
    with start_two_nodes() as address:
        yield address


def test_two_nodes_record_the_local_episodes_and_refuse_a_sqlite_store(
    two_nodes, policy, tmp_path, capsys
):
    for backend in ("local", "ray"):
        extra = ["--ray-address", two_nodes] if backend == "ray" else []
        code, _, err = cli(capsys, "record", "--env", RUN, "--episodes", "2", "--workers", "2",
                           "--out", str(tmp_path / f"{backend}.h5"), "--backend", backend,
                           *extra)  # fmt: skip
        assert code == 0, err
    _assert_same_recording(tmp_path / "local.h5", tmp_path / "ray.h5")
    db = tmp_path / "mlflow.db"
    code, _, err = cli(capsys, "evaluate", "--policy", str(policy), "--episodes", "2",
                       "--tracking-uri", f"sqlite:///{db}", "--json", str(tmp_path / "e.json"),
                       "--backend", "ray", "--ray-address", two_nodes)  # fmt: skip
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "cannot serve the 2 nodes of the Ray cluster" in err and "mlflow server" in err
    assert not (tmp_path / "e.json").exists()
    assert not ray.is_initialized()


# -- bad input, no cluster -------------------------------------------------------------------


@pytest.mark.parametrize("command", [
    ["rollout"],
    ["record", "--out", "{tmp}/r.h5"],
    ["evaluate", "--policy", "{policy}", "--no-track"],
    ["dagger", "--init-data", "{data}", "--out", "{tmp}/d", "--no-track"],
    ["tune", "--data", "{data}", "--space", "{space}", "--out", "{tmp}/t", "--no-track"],
])  # fmt: skip
def test_an_unreachable_address_fails_in_seconds(command, run_data, policy, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("optimizer.learning_rate: {log_uniform: [1.0e-4, 1.0e-2]}\n")
    args = [a.format(tmp=tmp_path, policy=policy, data=run_data, space=space) for a in command]
    start = time.monotonic()
    code, _, err = cli(capsys, *args, "--backend", "ray", "--ray-address",
                       f"127.0.0.1:{free_port()}")  # fmt: skip
    assert time.monotonic() - start < 15
    assert code == 2
    assert err.count("\n") == 1 and "not reachable (connection refused)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml"]


@pytest.mark.parametrize(("kind", "address", "message"), [
    ("local", "127.0.0.1:6379", "--ray-address: only with --backend ray"),
    ("spark", None, "--backend: 'spark' is not one of local, ray"),
    ("ray", "http://head:8265", "--ray-address http://head:8265: expected HOST:PORT"),
    ("ray", "head", "--ray-address head: expected HOST:PORT"),
])  # fmt: skip
def test_bad_backend_options_are_one_line(kind, address, message, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(PipelineError, match=f"^{message}"):
        parse_backend(kind, address)


def test_ray_without_an_address_names_the_option(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(PipelineError, match=r"^--backend ray: needs --ray-address"):
        parse_backend("ray", None)
