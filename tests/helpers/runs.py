"""Snakemake as a user runs it, in a subprocess, and config files merged as Snakemake merges them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from . import ROOT


SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]


def merged(base: dict, overlay: dict) -> dict:
    result = dict(base)
    for key, value in overlay.items():
        result[key] = merged(base[key], value) if isinstance(value, dict) and key in base else value
    return result


def snakemake(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run([*SNAKEMAKE, *arguments], cwd=cwd, env=environment, capture_output=True, text=True)
