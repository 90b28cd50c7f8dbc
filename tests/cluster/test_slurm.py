"""The workflow through a real single-node SLURM (tests/cluster/run_slurm.sh). Opt-in, `pytest -m cluster`:
it needs root, installs Debian's SLURM packages and takes minutes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("run_slurm.sh")


@pytest.mark.cluster
@pytest.mark.skipif(os.geteuid() != 0, reason="starts SLURM and munge daemons: needs root")
def test_the_tiny_cohort_runs_through_slurm_and_its_jobs_are_accounted(tmp_path):
    run = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "work")], capture_output=True, text=True, timeout=1800)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert "all checks passed" in run.stdout
    print(run.stdout[run.stdout.index("snakemake finished"):])  # the checks and the summary, under pytest -s
