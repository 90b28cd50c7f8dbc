"""This workflow through Snakemake's Python API, for tests that inspect it without running it: its rules,
and the jobs a run would make, with their resources evaluated as under a profile's default resources.
Rules and jobs are reachable only through the API's private `_workflow`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from snakemake.api import SnakemakeApi, WorkflowApi
from snakemake.jobs import Job
from snakemake.resources import Resources
from snakemake.rules import Rule
from snakemake.settings.types import (
    ConfigSettings,
    DAGSettings,
    OutputSettings,
    Quietness,
    ResourceSettings,
    StorageSettings,
)

from . import ROOT, TINY



@contextmanager
def workflow_api(workdir: Path, configfiles: Iterable[Path] = (TINY,),
                 default_resources: Mapping[str, object] | None = None) -> Iterator[WorkflowApi]:
    """The workflow on `configfiles`, run from `workdir`; `default_resources` as a profile's section."""
    resources = None
    if default_resources is not None:
        expressions = [f"{name}={value}" for name, value in default_resources.items()]
        resources = Resources.parse(expressions, allow_expressions=True, defaults="full")
    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        yield api.workflow(resource_settings=ResourceSettings(nodes=1, default_resources=resources),
                           config_settings=ConfigSettings(configfiles=list(configfiles)),
                           storage_settings=StorageSettings(), workdir=workdir, snakefile=ROOT / "Snakefile")


def rules(api: WorkflowApi) -> list[Rule]:
    return list(api._workflow.rules)


def planned_jobs(api: WorkflowApi, targets: Iterable[str]) -> list[Job]:
    """The jobs a run for `targets` would make (as a dry run plans them)."""
    workflow = api.dag(DAGSettings(targets=set(targets))).workflow_api._workflow
    workflow._prepare_dag(forceall=False, ignore_incomplete=True, lock_warn_only=True, nolock=True)
    workflow._build_dag()
    return list(workflow.dag.jobs)
