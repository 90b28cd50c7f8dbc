"""Nothing is lost to a kill -9. The tiny cohort's run toward a trained model is killed (snakemake and its
jobs, the whole process group) while the model trains; after `snakemake --unlock` (the kill leaves the lock),
the rerun runs only the unfinished training, which resumes from its last checkpoint, and leaves every
finished output untouched; a third run has nothing to do."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from helpers import TINY
from helpers.runs import SNAKEMAKE, snakemake

TARGET = "results/models/linus/summary.json"
EPOCHS = 5
# longer than the tiny config's two epochs, so that the kill lands between checkpoints
LONGER_TRAINING = {"models": {"linus": {"training": {"max_epochs": EPOCHS, "iterations_per_epoch": 8}}}}
TRAINING_FILES = ("models/linus", "logs/train_linus", "benchmarks/train_linus")


def start(arguments: list[str], cwd: Path) -> subprocess.Popen:
    """snakemake in a process group of its own (its jobs inherit it), as a shell starts a command."""
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.Popen([*SNAKEMAKE, *arguments], cwd=cwd, env=environment, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_when(path: Path, run: subprocess.Popen, timeout_s: float = 900) -> None:
    """kill -9 the run's process group as soon as `path` appears."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        assert run.poll() is None, "the run ended before the file to wait for appeared"
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout_s} s"
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()


def finished_outputs(root: Path) -> dict[Path, int]:
    """Modification times of every file the stages before training wrote."""
    return {path: path.stat().st_mtime_ns for folder in ("resources", "results") for path in (root / folder).rglob("*")
            if path.is_file() and not any(part in path.as_posix() for part in TRAINING_FILES)}


def jobs_run(output: str) -> set[str]:
    """The rules of the 'Job stats' table snakemake prints before running."""
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return set(re.findall(r"^(\w+)\s+\d+$", table, flags=re.MULTILINE))


@pytest.mark.slow
def test_a_killed_run_redoes_only_the_unfinished_training_and_resumes_it(tmp_path):
    overlay = tmp_path / "longer_training.yaml"
    overlay.write_text(yaml.safe_dump(LONGER_TRAINING))
    arguments = ["--cores", "2", "--configfile", str(TINY), str(overlay), "--", TARGET]
    models = tmp_path / "results" / "models" / "linus"

    kill_when(models / "checkpoint_last.pt", start(arguments, tmp_path))
    assert not (tmp_path / TARGET).exists()
    before = finished_outputs(tmp_path)

    locked = snakemake(*arguments, cwd=tmp_path)  # a kill -9 leaves snakemake's lock behind
    assert locked.returncode != 0 and "--unlock" in locked.stderr
    assert snakemake("--unlock", *arguments, cwd=tmp_path).returncode == 0
    rerun = snakemake(*arguments, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert jobs_run(rerun.stdout + rerun.stderr) == {"train"}
    assert finished_outputs(tmp_path) == before
    assert re.search(r"resuming linus after epoch \d", (tmp_path / "results" / "logs" / "train_linus" / "sub-all.log").read_text())
    assert list(pd.read_csv(models / "log.csv")["epoch"]) == list(range(1, EPOCHS + 1))

    again = snakemake("-n", *arguments, cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr
