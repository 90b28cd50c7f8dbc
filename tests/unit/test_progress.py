"""The progress line of the `deepnuclei` Snakemake logger (`snakemake --logger deepnuclei`), fed the log
records Snakemake sends it. The end-to-end test runs it inside a real Snakemake run."""

import json
import logging

from snakemake_interface_logger_plugins.common import LogEvent
from snakemake_interface_logger_plugins.registry import LoggerPluginRegistry

from deepnuclei.progress import RunProgress, stage_of


class Settings:
    printshellcmds = nocolor = debug_dag = verbose = show_failed_logs = stdout = dryrun = False
    quiet = ()


def record(event, message="", **fields):
    entry = logging.LogRecord("snakemake", logging.INFO, __file__, 0, message, None, None)
    entry.__dict__.update(event=event, **fields)
    return entry


def test_rules_fall_into_the_stages_a_person_reads():
    assert [stage_of(rule) for rule in ("demo_subject", "qsm", "qsm_metrics", "register_t1_to_swi", "atlas_jlf",
                                        "train", "infer", "overlap_session", "evaluation_tables")] == [
        "simulation", "QSM", "evaluation", "registration", "atlas", "training", "inference", "evaluation", "evaluation"]


def test_the_line_counts_each_stage_and_shows_a_training_jobs_epoch(tmp_path):
    model_dir = tmp_path / "models" / "dbresunet"
    model_dir.mkdir(parents=True)
    progress = RunProgress()
    progress.planned({"qsm": 2, "train": 1, "overlap_session": 3, "total": 6})
    progress.job_started(1, "qsm", ["results/qsm/sub-01.nii.gz"])
    progress.job_started(2, "train", [str(model_dir / "summary.json"), str(model_dir / "log.csv")])
    progress.job_finished(1)
    assert progress.line().endswith("] 1/6 jobs | QSM 1/2 · training 0/1 · evaluation 0/3")  # before its first epoch
    (model_dir / "progress.json").write_text(json.dumps(
        {"model": "dbresunet", "epoch": 12, "max_epochs": 30, "seconds_left": 250.0}))
    assert progress.line().endswith("| training dbresunet epoch 12/30, ~4 min left")
    progress.job_finished(2)
    assert progress.line().endswith("] 2/6 jobs | QSM 1/2 · training 1/1 · evaluation 0/3")


def test_the_plugin_replaces_the_job_blocks_and_passes_errors_on(capsys):
    handler = LoggerPluginRegistry().get_plugin("deepnuclei").log_handler(Settings(), None)
    try:
        handler.emit(record(LogEvent.RUN_INFO, "Job stats: ...", stats={"qsm": 1, "total": 1}))
        handler.emit(record(LogEvent.JOB_INFO, "rule qsm", jobid=7, rule_name="qsm", output=["qsm.nii.gz"]))
        handler.emit(record(None, "Select jobs to execute..."))
        handler.emit(record(LogEvent.JOB_FINISHED, job_id=7))
        handler.emit(record(LogEvent.ERROR, "Error in rule qsm: sub-01_echo-2 is missing"))
    finally:
        handler.close()
    lines = capsys.readouterr().err.splitlines()
    assert any(line.endswith("] 1/1 jobs | QSM 1/1") for line in lines)
    assert any("Error in rule qsm: sub-01_echo-2 is missing" in line for line in lines)
    assert not any("Select jobs" in line or "rule qsm" == line for line in lines)
