"""A progress line a person can read during a run: `snakemake --logger deepnuclei` (`make demo` uses it).

Snakemake prints a block of a dozen lines per job; the `deepnuclei` logger (the package
`snakemake_logger_plugin_deepnuclei`) prints instead, each time a job finishes and every half minute while a
network trains, one line: the jobs done, each stage's jobs done of its total, and for each training
job running its epoch and the time it has left (`training_status`, from the `progress.json` that
`training_log.TrainingLog` rewrites every epoch). Errors, warnings and Snakemake's other messages are printed as
Snakemake prints them.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# Rule-name prefixes in the order they are tried; a rule matching none is part of the evaluation.
STAGES = (
    ("demo_", "simulation"), ("validate_", "checks"), ("bids_validator", "checks"), ("qsm_metrics", "evaluation"),
    ("qsm", "QSM"), ("register_", "registration"), ("t1_to_swi", "registration"), ("registration_", "registration"),
    ("preprocess_", "preprocessing"), ("relabel_", "preprocessing"), ("move_reference", "preprocessing"),
    ("atlas_", "atlas"), ("train", "training"), ("export_model", "training"),
    ("infer", "inference"),
)
STAGE_ORDER = ("simulation", "checks", "QSM", "registration", "preprocessing", "atlas", "training", "inference",
               "evaluation")
PROGRESS_FILE = "progress.json"


def stage_of(rule: str) -> str:
    return next((stage for prefix, stage in STAGES if rule.startswith(prefix)), "evaluation")


def minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def training_status(model_dir: Path) -> str | None:
    """'dbresunet epoch 12/30, ~4 min left' from the model's progress.json, None before its first epoch."""
    try:
        record = json.loads((model_dir / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return (f"{record['model']} epoch {record['epoch']}/{record['max_epochs']}, "
            f"~{minutes(record['seconds_left'])} left")


@dataclass
class RunProgress:
    """What the line says: jobs per stage (from Snakemake's job statistics), those finished, the running ones."""

    total: Counter = field(default_factory=Counter)
    done: Counter = field(default_factory=Counter)
    running: dict[int, tuple[str, Path | None]] = field(default_factory=dict)  # job id: rule, model folder
    started: float = field(default_factory=time.monotonic)

    def planned(self, stats: dict[str, int]) -> None:
        self.total = Counter()
        for rule, count in stats.items():
            if rule != "total":
                self.total[stage_of(rule)] += count

    def job_started(self, job_id: int, rule: str, outputs: list[str]) -> None:
        summary = next((Path(path) for path in outputs if Path(path).name == "summary.json"), None)
        self.running[job_id] = (rule, summary.parent if rule == "train" and summary else None)

    def job_finished(self, job_id: int) -> None:
        rule, _ = self.running.pop(job_id, ("", None))
        if rule:
            self.done[stage_of(rule)] += 1

    def trainings(self) -> list[str]:
        return [status for _, folder in list(self.running.values()) if folder
                and (status := training_status(folder)) is not None]

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        stages = [f"{stage} {self.done[stage]}/{self.total[stage]}" for stage in STAGE_ORDER if self.total[stage]]
        text = (f"[{int(elapsed // 60)}:{int(elapsed % 60):02d}] {sum(self.done.values())}/{sum(self.total.values())} jobs"
                f" | {' · '.join(stages)}")
        trainings = self.trainings()
        return text + (f" | training {'; '.join(trainings)}" if trainings else "")
