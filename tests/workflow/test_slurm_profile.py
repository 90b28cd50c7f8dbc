"""profiles/slurm without a cluster: the sbatch arguments snakemake-executor-plugin-slurm would submit each
job of the tiny cohort with, built by the plugin's own code from the planned jobs' resources (the rules'
own, over the profile's defaults). Training and inference ask for a GPU; CPU-only rules do not.
(tests/cluster/run_slurm.sh submits to a real SLURM.) `pytest -s` prints the sbatch lines."""

from __future__ import annotations

import re
import shlex

import yaml
from snakemake.jobs import Job
from snakemake_executor_plugin_slurm.submit_string import get_submit_command
from snakemake_executor_plugin_slurm.utils import set_gres_string

from helpers import ROOT, TINY
from helpers.api import planned_jobs, workflow_api

PROFILE = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
# inference of a test subject: every stage from the demo's generation to training and inference
TARGET = "results/segmentations/linus/sub-02/sub-02_space-SWI_dseg.nii.gz"
GPU_RULES = {"train", "infer_swi"}


def sbatch_arguments(job: Job) -> str:
    """The sbatch line of a job as the plugin's run_job builds it, with partition and account taken from
    the resources as given (the plugin checks them with sinfo/sacctmgr first)."""
    account, partition = job.resources.get("slurm_account"), job.resources.get("slurm_partition")
    params = {"run_uuid": "RUN", "slurm_logfile": "LOG", "comment_str": f"rule_{job.name}", "workdir": ".",
              "account": f" -A {shlex.quote(account)}" if account else "",
              "partition": f" -p {shlex.quote(partition)}" if partition else ""}
    return get_submit_command(job, params) + set_gres_string(job)


def submissions(tmp_path, *configfiles) -> dict[str, str]:
    """Rule -> sbatch arguments, one job per rule (its first)."""
    with workflow_api(tmp_path, (TINY, *configfiles), PROFILE["default-resources"]) as api:
        return {job.name: sbatch_arguments(job) for job in reversed(planned_jobs(api, [TARGET]))}


def test_gpu_rules_ask_for_a_gpu_and_cpu_rules_for_none(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPNUCLEI_SLURM_PARTITION", "short")
    monkeypatch.setenv("DEEPNUCLEI_SLURM_ACCOUNT", "lab")
    threads = tmp_path / "threads.yaml"
    threads.write_text("training: {threads: 3}\nqsm: {threads: 4}\n")
    lines = submissions(tmp_path, threads)
    for rule, line in sorted(lines.items()):
        print(f"{rule}: {line}")
    assert {"validate_inputs", "qsm", "register_t1_to_swi", "preprocess_swi", "train", "infer_swi"} <= set(lines)
    for rule, line in lines.items():
        assert " -p short " in line and " -A lab " in line, line
        assert re.search(r" -t \d+ ", line) and re.search(r" --mem \d+ ", line), line
        asks_gpu = "--gpus=" in line or "--gres=gpu" in line
        assert asks_gpu == (rule in GPU_RULES), line
    assert lines["train"].endswith(" --gpus=1") and lines["infer_swi"].endswith(" --gpus=1")
    assert "--cpus-per-task=3" in lines["train"] and "--cpus-per-task=4" in lines["qsm"]  # the config's threads
    assert "--mem 16000" in lines["qsm"]


def test_without_partition_and_account_the_plugin_chooses(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPNUCLEI_SLURM_PARTITION", raising=False)
    monkeypatch.delenv("DEEPNUCLEI_SLURM_ACCOUNT", raising=False)
    for line in submissions(tmp_path).values():
        assert " -p " not in line and " -A " not in line, line


def test_no_gpu_is_asked_for_when_the_config_has_none(tmp_path):
    no_gpus = tmp_path / "no_gpus.yaml"
    no_gpus.write_text("training: {gpus: 0}\n")
    assert not any("--gpus" in line or "--gres" in line for line in submissions(tmp_path, no_gpus).values())


def test_a_retried_job_asks_for_twice_the_memory_and_time(tmp_path):
    with workflow_api(tmp_path, (TINY,), PROFILE["default-resources"]) as api:
        job = next(job for job in planned_jobs(api, [TARGET]) if job.name == "qsm")
        first = (job.resources["mem_mb"], job.resources["runtime"])
        job.attempt = 2
        assert (job.resources["mem_mb"], job.resources["runtime"]) == (2 * first[0], 2 * first[1])

