"""`deepnuclei plan`: the workflow's plan without Snakemake. The config is read as the Snakefile reads it
(config/config.yaml, then each `--config` file merged over it as `snakemake --configfile` does, then
validated against workflow/schemas/config.schema.yaml, which also fills its defaults), the plan made and
written as Snakemake would write it, and summed up for a reader: who is in which role, how each model
comes to be, what each method segments and scores, and the plan's notes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .layout import MAIN_COHORT
from .plan import ROLES, Plan

WORKFLOW_DIR = Path(__file__).resolve().parents[2]  # the checkout: Snakefile, config/, workflow/


def load_config(overlays: Sequence[str | os.PathLike], workflow_dir: Path = WORKFLOW_DIR) -> dict[str, Any]:
    """config/config.yaml with `overlays` merged over it in turn, validated: Snakemake's own functions, so
    that the plan is the one `snakemake --configfile ...` makes."""
    from snakemake.common.configfile import load_configfile
    from snakemake.utils import update_config, validate

    config = load_configfile(workflow_dir / "config" / "config.yaml")
    for overlay in overlays:
        update_config(config, load_configfile(overlay))
    validate(config, str(workflow_dir / "workflow" / "schemas" / "config.schema.yaml"))
    return config


def table(rows: Sequence[Sequence[Any]]) -> list[str]:
    """Rows as left-aligned columns, indented under a heading."""
    widths = [max(len(str(row[column])) for row in rows) for column in range(len(rows[0]))]
    return ["  " + "  ".join(f"{cell!s:{width}}" for cell, width in zip(row, widths)).rstrip() for row in rows]


def model_origin(plan: Plan, name: str) -> str:
    model = plan.models[name]
    if not plan.trained(name):
        return f"bundled: {model['bundle']}"
    trained = (f"trained on {len(plan.training_sessions(name, 'train'))}, "
               f"validated on {len(plan.training_sessions(name, 'validation'))} sessions")
    return f"{trained}, fine-tuned from {model['init']}" if model.get("init") else f"{trained}, from scratch"


def describe(plan: Plan) -> str:
    """The plan in a few lines: sessions per cohort and role, models, methods, notes."""
    cohorts = list(dict.fromkeys(session.cohort for session in plan.sessions.values()))
    participants = len({session.participant for session in plan.sessions.values()})
    lines = [f"Dataset {plan.config['bids_dir']}{' (the simulated demo)' if plan.config['demo']['enabled'] else ''}: "
             f"{len(plan.sessions)} sessions of {participants} participants", "", "Sessions by cohort and role:"]
    lines += table([("cohort", *ROLES), *((cohort, *(len(plan.role_sessions(role, cohort)) for role in ROLES))
                                         for cohort in cohorts)])
    lines += ["", "Models:"]
    lines += table([(name, f"cohort {plan.method_cohort(name)}", f"{plan.native_space(name)} grid", model_origin(plan, name))
                    for name in plan.models])
    lines += ["", f"Methods of the main tables (cohort {MAIN_COHORT}), in sessions:"]
    lines += table([("method", "segments", "scored on"),
                    *((method, len(plan.segmented(method)), len(plan.scored(method)))
                      for method in plan.evaluated_methods())])
    lines += ["", "Notes:", *(f"  - {note}" for note in plan.notes)] if plan.notes else ["", "Notes: none"]
    return "\n".join(lines)
