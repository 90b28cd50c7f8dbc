"""Time the workflow's planning at cohort scale: `snakemake -n` with config/paper.yaml on a fake BIDS dataset
of empty files (the plan reads names only), beside the same dry run on a tenth of the participants, so the
cost per session shows (the baseline is the small cohort on the same machine, in the same run).

    .venv/bin/python benchmarks/bench_plan.py                           # 500 participants x 2 sessions vs 50 x 2
    .venv/bin/python benchmarks/bench_plan.py --participants 200 --sessions 1

Prints, per cohort: sessions, jobs, the plan alone (deepnuclei.plan: index, roles, plan files) and the whole
`snakemake -n` process, in seconds of wall-clock and of CPU time; then `snakemake -n -p`, which also formats
every job's shell command (about a fifth more time), for the longest shell command of any job.
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from snakemake.utils import update_config

from deepnuclei.labels import dseg_tsv
from deepnuclei.plan import make_plan, plan_files

ROOT = Path(__file__).resolve().parents[1]
ECHOES = 4
LABELLED = 43  # the DB-ResUNet paper's 20 + 4 + 19


def fake_dataset(root: Path, participants: int, sessions: int) -> Path:
    """Empty files laid out as a real multi-session dataset: T1, 4 SWI echoes with sidecars, SWI labels."""
    bids = root / "bids"
    for number in range(1, participants + 1):
        for session in range(1, sessions + 1):
            prefix = f"sub-{number:03d}_ses-{session}"
            anat = bids / f"sub-{number:03d}" / f"ses-{session}" / "anat"
            anat.mkdir(parents=True)
            (anat / f"{prefix}_T1w.nii.gz").touch()
            for echo in range(1, ECHOES + 1):
                for part in ("mag", "phase"):
                    for extension in ("nii.gz", "json"):
                        (anat / f"{prefix}_echo-{echo}_part-{part}_T2starw.{extension}").touch()
            if number <= LABELLED:
                labels = bids / "derivatives" / "labels" / f"sub-{number:03d}" / f"ses-{session}" / "anat"
                labels.mkdir(parents=True)
                (labels / f"{prefix}_space-SWI_dseg.nii.gz").touch()
    (bids / "derivatives" / "labels" / "dseg.tsv").write_text(dseg_tsv())
    return bids


def cpu_seconds() -> float:
    """CPU time (user + system) of the finished child processes: on a shared machine, what waiting adds to the
    wall-clock time is not in it."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(participants: int, sessions: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        bids = fake_dataset(root, participants, sessions)
        overlay = root / "dataset.yaml"
        overlay.write_text(yaml.safe_dump({"bids_dir": str(bids), "results_dir": str(root / "results")}))
        config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
        for layer in (ROOT / "config" / "paper.yaml", overlay):  # as Snakemake merges --configfile layers
            update_config(config, yaml.safe_load(layer.read_text()))
        started = time.perf_counter()
        plan_files(make_plan(config))
        plan_seconds = time.perf_counter() - started
        command = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "-n", "--configfile",
                   str(ROOT / "config" / "paper.yaml"), str(overlay)]
        timed = {}
        for printed in ([], ["-p"]):
            started, cpu_before = time.perf_counter(), cpu_seconds()
            run = subprocess.run(command + printed, cwd=root, capture_output=True, text=True)
            timed[bool(printed)] = (time.perf_counter() - started, cpu_seconds() - cpu_before)
            if run.returncode:
                raise SystemExit(run.stderr[-2000:])
        jobs = int(re.search(r"^total\s+(\d+)", run.stdout, re.MULTILINE).group(1))
        commands = [line.removeprefix("Shell command: ") for line in run.stdout.splitlines()
                    if line.startswith("Shell command: ")]
        return {"participants": participants, "sessions": participants * sessions, "jobs": jobs,
                "plan_s": round(plan_seconds, 2), "dry_run_s": round(timed[False][0], 1),
                "dry_run_cpu_s": round(timed[False][1], 1), "printed_dry_run_s": round(timed[True][0], 1),
                "longest_command_bytes": max(len(line.encode()) for line in commands)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--participants", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=2)
    args = parser.parse_args()
    for participants in (max(args.participants // 10, LABELLED + 1), args.participants):
        print(measure(participants, args.sessions), flush=True)


if __name__ == "__main__":
    main()
