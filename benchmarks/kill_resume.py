"""Crash safety of ``rosenblatt train``: kill -9 at random moments, resume, compare with a clean run.

    python benchmarks/kill_resume.py                  # >= 60 kills, about five minutes on 2 cores
    python benchmarks/kill_resume.py --kills 10       # a shorter run

A reference run trains without interruption. Then, over and over, the same command is started in
a fresh folder and killed with SIGKILL a random time after its first epoch began (so kills land
in training steps, in checkpoint writes and in CSV writes), then resumed with ``--resume`` and
killed again, until a run is allowed to finish. After every kill the checkpoint (if one was
written yet) must load with ``rb.io.load_checkpoint`` (its schema checked) and ``config.json``
must parse. Every finished run must be bit-identical to the reference: ``model.safetensors``,
``checkpoint.safetensors`` and ``history.csv`` byte for byte. This is not a test (it takes
minutes); the numbers it prints are quoted in docs/training.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
sys.path.insert(0, str(SRC))
COMPARED = ("model.safetensors", "checkpoint.safetensors", "history.csv")


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(SRC), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg")
    env.pop("ROSENBLATT_DEBUG", None)
    return env


def _command(out: Path, epochs: int, resume: bool) -> list[str]:
    base = [sys.executable, "-m", "rosenblatt", "train"]
    if resume:
        return [*base, "--resume", str(out), "--epochs", str(epochs)]
    return [*base, "--model", "mlp", "--epochs", str(epochs), "--limit", "600", "--batch-size", "16",
            "--seed", "3", "--out", str(out)]


def _start(out: Path, epochs: int) -> tuple[list[str], int]:
    """The command that continues the run in ``out``, and the epochs it has left."""
    from rosenblatt.io import load_checkpoint

    checkpoint = out / "checkpoint.safetensors"
    if not checkpoint.exists():
        return _command(out, epochs, resume=False), epochs
    return _command(out, epochs, resume=True), epochs - load_checkpoint(checkpoint)["epoch"]


def _run_killed(command: list[str], max_delay: float, rng: random.Random) -> bool:
    """Start ``command``; SIGKILL it a random time after its first epoch starts. True if it was killed."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=_env(), text=True)
    for line in process.stdout:  # the "training ..." line comes just before the first epoch
        if line.startswith("training "):
            break
    time.sleep(rng.uniform(0.0, max_delay))
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stdout.close()
        return True
    process.stdout.read()
    process.wait()
    process.stdout.close()
    return False


def _check_after_kill(out: Path) -> str | None:
    """None if every file that exists in ``out`` is whole; else what is wrong."""
    from rosenblatt.io import load_checkpoint

    checkpoint = out / "checkpoint.safetensors"
    try:
        if checkpoint.exists():
            load_checkpoint(checkpoint)
        if (out / "config.json").exists():
            json.loads((out / "config.json").read_text())
    except ValueError as exc:
        return str(exc)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=60, help="stop after this many kills (default 60)")
    parser.add_argument("--kills-per-run", type=int, default=3, help="kills before a run may finish (default 3)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="rosenblatt-kill-"))
    try:
        reference = work / "reference"
        process = subprocess.Popen(_command(reference, args.epochs, resume=False), stdout=subprocess.PIPE, env=_env(),
                                   text=True)
        for line in process.stdout:
            if line.startswith("training "):
                start = time.perf_counter()
        process.stdout.close()
        if process.wait() != 0:
            raise SystemExit("the reference run failed")
        seconds_per_epoch = (time.perf_counter() - start) / args.epochs
        expected = {name: (reference / name).read_bytes() for name in COMPARED}
        kills = corrupt = runs = identical = resumes = stale = 0
        problems = []
        while kills < args.kills:
            out = work / f"run{runs}"
            runs += 1
            finished = False
            for _ in range(args.kills_per_run):
                command, left = _start(out, args.epochs)
                resumes += "--resume" in command
                if not _run_killed(command, max_delay=seconds_per_epoch * (left + 1), rng=rng):
                    finished = True
                    break
                kills += 1
                stale += len(list(out.glob(".tmp-*")))
                problem = _check_after_kill(out)
                if problem:
                    corrupt += 1
                    problems.append(problem)
            if not finished:  # let it finish (a run killed before its first checkpoint starts over)
                command, _ = _start(out, args.epochs)
                resumes += "--resume" in command
                done = subprocess.run(command, env=_env(), capture_output=True, text=True)
                if done.returncode != 0:
                    problems.append(f"{out.name}: the last resume failed: {done.stderr.strip()}")
            differ = [name for name in COMPARED
                      if not (out / name).exists() or (out / name).read_bytes() != expected[name]]
            same = not differ
            identical += same
            if differ:
                problems.append(f"{out.name}: {', '.join(differ)} differ from the reference")
            shutil.rmtree(out)
            print(f"run {runs}: {kills} kills so far, identical: {same}", flush=True)
        print(f"\n{kills} kills (SIGKILL) in {runs} runs, {resumes} resumes; {stale} temporary files left by killed "
              f"writes (removed on resume); {corrupt} corrupt checkpoints; {identical}/{runs} finished runs "
              "bit-identical to the uninterrupted run")
        for problem in problems:
            print("problem:", problem)
        return 0 if corrupt == 0 and identical == runs and not problems else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
