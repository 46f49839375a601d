"""A recorder of synthetic episodes, for the crash and memory tests of the episode store.

It commits episodes of the walk's sizes (observations 197, actions 36, 300-541 steps)
in a loop and prints one line, flushed, after each call returns, so a test that kills it
knows what was committed before the kill::

    ready <next_attempt> <episode_count>
    commit <attempt> <episode_id> | drop <attempt> | reject <attempt>
    merge-begin / merge-end
    done <json stats>

Every attempt's outcome and arrays are a pure function of ``(seed, attempt)``
(:func:`planned_episode`), so a test can regenerate what each stored episode must hold.

    python tests/store_driver.py FILE --create --episodes 20 [--step-ms 2] [--crash-at POINT]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import sys
import time

import numpy as np

from datasets import DatasetMetadata, Episode, EpisodeWriter, SpaceSpec
from datasets.store import journal

OBS_DIM, ACT_DIM = 197, 36
ENV_ID = "sim/HumanoidWalk-v0"


def metadata(seed: int) -> DatasetMetadata:
    """Metadata of the synthetic recording."""
    return DatasetMetadata(
        env_id=ENV_ID,
        observation_space=SpaceSpec.unbounded((OBS_DIM,)),
        action_space=SpaceSpec.unbounded((ACT_DIM,), "float32"),
        env_kwargs={"start_phase": "random"},
        expert_id="synthetic",
        recording_args={"seed": seed, "driver": "tests/store_driver.py"},
    )


def planned_episode(seed: int, attempt: int) -> tuple[str, Episode]:
    """What attempt ``attempt`` produces: ``("ok" | "drop" | "nan", episode)``."""
    rng = np.random.default_rng([seed, attempt])
    steps = int(rng.integers(300, 542))
    fell = bool(rng.random() < 0.3)
    terminations = np.zeros(steps, dtype=bool)
    truncations = np.zeros(steps, dtype=bool)
    (terminations if fell else truncations)[-1] = True
    episode = Episode(
        observations=rng.standard_normal((steps + 1, OBS_DIM), dtype=np.float32),
        actions=rng.standard_normal((steps, ACT_DIM), dtype=np.float32),
        executed_actions=rng.standard_normal((steps, ACT_DIM), dtype=np.float32),
        rewards=rng.random(steps),
        terminations=terminations,
        truncations=truncations,
        seed=1000 + attempt,
        infos={"reward_pose": rng.random(steps).astype(np.float32)},
        attempt=attempt,
        distance=float(rng.uniform(0, 20)),
    )
    if attempt % 7 == 3:
        return "drop", episode
    if attempt % 11 == 5:
        episode.actions[steps // 2, 0] = np.nan
        return "nan", episode
    return "ok", episode


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _kill_at(point: str, after: int) -> None:
    hits = {"n": 0}

    def hook(name: str) -> None:
        if name == point:
            hits["n"] += 1
            if hits["n"] >= after:
                os.kill(os.getpid(), signal.SIGKILL)

    journal.fault_hook = hook


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--episodes", type=int, required=True, help="stop at this many")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--create", action="store_true", help="create instead of resume")
    parser.add_argument("--compression", default="gzip")
    parser.add_argument("--merge-overhead", type=float, default=0.02)
    parser.add_argument("--max-pending", type=int, default=64)
    parser.add_argument("--step-ms", type=float, default=0.0, help="simulated time per step")
    parser.add_argument("--crash-at", help="SIGKILL this process at a journal.fault point")
    parser.add_argument("--crash-after", type=int, default=1, help="... at its n-th hit")
    args = parser.parse_args(argv)
    if args.crash_at:
        _kill_at(args.crash_at, args.crash_after)

    start = time.perf_counter()
    policy = {"merge_overhead": args.merge_overhead, "max_pending": args.max_pending}
    if args.create:
        meta = metadata(args.seed)
        writer = EpisodeWriter.create(args.path, meta, compression=args.compression, **policy)
    else:
        writer = EpisodeWriter.resume(args.path, **policy)
    merge = writer._merge

    def announced_merge() -> None:
        _say("merge-begin")
        merge()
        _say("merge-end")

    writer._merge = announced_merge  # type: ignore[method-assign]
    _say(f"ready {writer.next_attempt} {writer.episode_count}")
    simulated = 0.0
    while writer.episode_count < args.episodes:
        attempt = writer.next_attempt
        kind, episode = planned_episode(args.seed, attempt)
        if args.step_ms:
            pause = episode.total_steps * args.step_ms / 1000
            time.sleep(pause)
            simulated += pause
        if kind == "drop":
            writer.drop(episode.seed, "fell", attempt=attempt)
            _say(f"drop {attempt}")
            continue
        result = writer.commit(episode)
        _say(f"commit {attempt} {result.episode_id}" if result.committed else f"reject {attempt}")
    writer.close()
    stats = {
        "wall_s": time.perf_counter() - start,
        "simulated_s": simulated,
        "episodes": writer.episode_count,
        "file_bytes": os.path.getsize(args.path),
        "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        **vars(writer.stats),
    }
    _say("done " + json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
