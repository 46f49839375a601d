"""The README's commands run, in order, on a fresh folder (scaled down), so it cannot drift.

Every ``bash`` block after "Two commands" and every ``python`` block is taken from
README.md as written. Each command runs in one temporary working directory holding a copy
of ``configs/``, with episode counts and epochs scaled down (the rules below; nothing else
is changed), and must exit 0 without a traceback. The two commands of "Two commands"
(``tasks.py``) are what CI itself runs; ``mlflow ui`` starts a server and is only checked to
exist; ``source`` is the shell's.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent

NOT_RUN = ("python3 tasks.py", "make ", "source ", "mlflow ui")
"""Commands the test does not run (see the module docstring)."""

SCALE = [
    # (pattern, replacement): fewer episodes and demonstrations, shorter walk episodes.
    (r"--episodes \d+", "--episodes 2"),
    (r"--demos \d+", "--demos 2"),
    (r"--eval-episodes \d+", "--eval-episodes 2"),
    (r"--episodes-per-iteration \d+", "--episodes-per-iteration 1"),
    (r"--workers \d+", "--workers 1"),
    (r"training.rollout_episodes=\d+", "training.rollout_episodes=2"),
    (r"--trials \d+", "--trials 2"),
    (r"--fine-trials \d+", "--fine-trials 1"),
    (r"--rollout-episodes \d+", "--rollout-episodes 1"),
]
FINETUNE_SMALL = (
    "steps=512 steps_per_update=256 segments=2 ppo.minibatch=128 critic.warmup_updates=1 "
    "selection.episodes=1 curriculum.episode_seconds=1"
)
"""Two updates of 256 steps (one warming the critic up), one selection episode."""
WALK_SECONDS = "--episode-seconds 1"
"""Walk rollouts, recordings and evaluations run 1 simulated second instead of 20."""


def blocks(language: str, text: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def readme_commands(text: str) -> list[str]:
    """Shell commands of the README after its "Two commands" section, one per line
    (continuations joined, comments dropped)."""
    body = text.split("## The command line", 1)[1]
    commands = []
    for block in blocks("bash", body):
        joined = re.sub(r"\\\n\s*", "", block)
        for line in joined.splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def scaled(command: str) -> str:
    for pattern, replacement in SCALE:
        command = re.sub(pattern, replacement, command)
    words = command.split()
    if words[:2] in (["pipeline", "train"], ["pipeline", "dagger"], ["pipeline", "tune"]) and (
        "--overfit-batch" not in words
    ):
        command += " training.epochs=1"
    if words[:2] == ["pipeline", "quickstart"]:
        command += " --epochs 1"
    if words[:3] == ["pipeline", "motion", "fit"]:
        command += " steps=300"
    if words[:2] == ["pipeline", "finetune"]:
        command += f" {FINETUNE_SMALL}"
    walk = "HumanoidRun" not in command and "run" not in Path(_policy_arg(words)).name
    if words[:2] in (["pipeline", "rollout"], ["pipeline", "record"],
                     ["pipeline", "evaluate"]) and walk:  # fmt: skip
        command += f" {WALK_SECONDS}"
    return command


def _policy_arg(words: list[str]) -> str:
    for flag in ("--policy", "--data"):
        if flag in words:
            return words[words.index(flag) + 1]
    return ""


def test_readme_commands_are_found():
    commands = readme_commands(README.read_text())
    verbs = {c.split()[1] for c in commands if c.startswith("pipeline ") and len(c.split()) > 1}
    # Each command of the product appears at least once in the README.
    assert {"rollout", "record", "inspect", "export", "import", "train", "evaluate",
            "quickstart", "envs", "dagger", "compare", "tune", "motion",
            "visualize", "finetune", "report"} <= verbs  # fmt: skip
    assert any(c.startswith("mlflow ui") for c in commands)


def test_scaling_rules():
    assert scaled("pipeline record --env sim/HumanoidWalk-v0 --episodes 100 --out d.h5") == (
        "pipeline record --env sim/HumanoidWalk-v0 --episodes 2 --out d.h5 --episode-seconds 1"
    )
    assert scaled("pipeline train --data data/walk.h5 --out r").endswith("training.epochs=1")
    assert scaled("pipeline rollout --env sim/HumanoidRun-v0 --episodes 20") == (
        "pipeline rollout --env sim/HumanoidRun-v0 --episodes 2"
    )
    assert scaled("pipeline motion fit --skill walk --out m").endswith(" steps=300")


def _run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(shlex.split(command), cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip


# Every README command in one test: about 5 minutes alone on 2 cores, twice that when the
# machine is shared, so it gets more than the suite's 600-s per-test limit.
@pytest.mark.timeout(1500)
@pytest.mark.xdist_group("ray")  # its `ray stop` stops every Ray cluster on the machine
def test_readme_runs_in_order(tmp_path):
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    assert shutil.which("mlflow", path=env["PATH"]), "the README's `mlflow ui` needs mlflow"
    ran = []
    for command in readme_commands(README.read_text()):
        if command.startswith(NOT_RUN):
            continue
        command = scaled(command)
        done = _run(command, tmp_path, env)
        output = done.stdout + done.stderr
        assert done.returncode == 0, f"README command failed: {command}\n{output[-3000:]}"
        assert "Traceback" not in output, f"{command}\n{output[-3000:]}"
        ran.append(command)
    assert len(ran) >= 12, ran


@pytest.mark.parametrize("index", range(len(blocks("python", README.read_text()))))
def test_readme_python_blocks_run(tmp_path, index):
    code = blocks("python", README.read_text())[index]
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
