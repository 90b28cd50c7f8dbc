"""The BIDS reference validator (PyPI `bids-validator-deno`) as an optional first look at a dataset.

Its report is written for people to read; it never stops the workflow: datasets that the workflow reads
well often break a BIDS rule (no README, a missing recommended sidecar key), and the workflow's own checks
(`deepnuclei.validate`) stop what it cannot serve. So every outcome, a validator that could not run
included, ends in a written report.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from .io import write_json, write_text_atomic

log = logging.getLogger(__name__)

VALIDATOR = "bids-validator-deno"
TIMEOUT_S = 600


def validator_command() -> str | None:
    """The validator's console script: beside this Python (the project's venv), else on the PATH."""
    beside = Path(sys.executable).parent / VALIDATOR
    return str(beside) if beside.exists() else shutil.which(VALIDATOR)


def run_bids_validator(bids_dir: str | os.PathLike, out_json: str | os.PathLike, out_text: str | os.PathLike,
                       command: str | None = None, timeout_s: float = TIMEOUT_S) -> dict[str, Any]:
    """Validate `bids_dir`; write the validator's JSON report (or why there is none) and a short summary:
    errors and warnings counted by code. Returns the summary record; never raises for the dataset's sake."""
    command = command or validator_command()
    record: dict[str, Any] = {"bids_dir": str(bids_dir), "ran": False}
    try:
        if command is None:
            raise FileNotFoundError(f"{VALIDATOR} is not installed")
        printed = subprocess.run([command, "--version"], capture_output=True, text=True, timeout=60).stdout
        version = re.sub(r"\x1b\[[0-9;]*m", "", printed).strip()  # it colours its output even into a pipe
        run = subprocess.run([command, "--format", "json", str(bids_dir)], capture_output=True, text=True,
                             timeout=timeout_s)
        report = json.loads(run.stdout)
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as error:
        record["problem"] = f"the validator could not run: {error}"
        write_json(out_json, record)
    else:
        issues = report.get("issues", {}).get("issues", [])
        counts = Counter((issue.get("severity", "?"), issue.get("code", "?")) for issue in issues)
        record.update(ran=True, version=version, exit_code=run.returncode,
                      errors=sum(n for (severity, _), n in counts.items() if severity == "error"),
                      warnings=sum(n for (severity, _), n in counts.items() if severity == "warning"),
                      codes={f"{severity} {code}": n for (severity, code), n in sorted(counts.items())})
        write_json(out_json, report)
    write_text_atomic(out_text, summary_text(record))
    log.info("%s", summary_text(record).splitlines()[0])
    return record


def summary_text(record: dict[str, Any]) -> str:
    if not record["ran"]:
        return (f"BIDS validator on {record['bids_dir']}: not run ({record['problem']}). The workflow goes on: "
                f"its own input checks stop what it cannot read.\n")
    lines = [f"BIDS validator {record['version']} on {record['bids_dir']}: {record['errors']} errors, "
             f"{record['warnings']} warnings (never blocking: the workflow's own input checks decide)."]
    lines += [f"  {count:6d}  {code}" for code, count in record["codes"].items()]
    return "\n".join(lines) + "\n"
