"""The `deepnuclei` command: one subcommand per workflow step, each a thin call into a stage module.

Snakemake rules call these; they also work by hand, e.g. `deepnuclei demo-template --out-dir t/`.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import time
from collections.abc import Sequence

from ..io import InputError
from . import demo, evaluation, inputs, measures, qsm, registration, segment, train, workflow
from .options import log

COMMAND_GROUPS = (workflow, demo, inputs, qsm, registration, train, evaluation, measures, segment)  # `--help`'s order


def build_parser() -> argparse.ArgumentParser:
    """Every group's commands, each with its handler as `function`."""
    parser = argparse.ArgumentParser(prog="deepnuclei", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for group in COMMAND_GROUPS:
        group.add_parser(subparsers)
    return parser


GLIBC_MALLOC_OPTIONS = {  # mallopt's option numbers (malloc.h) -> bytes
    -3: 32 << 20,  # M_MMAP_THRESHOLD: blocks up to 32 MiB from the heap, not each its own mapping
    -1: 1 << 30,  # M_TRIM_THRESHOLD: freed heap kept up to 1 GiB, not handed back to the system
    -2: 64 << 20,  # M_TOP_PAD: the heap grown 64 MiB at a time
}


def keep_freed_memory() -> None:
    """Have glibc's malloc reuse freed memory instead of returning it to the system: every training step
    frees and reallocates activations of megabytes, and numpy's volumes come and go alike; each returned
    block comes back as page faults. On one CPU thread of the demo machine a DB-ResUNet training step took
    687 ms instead of 796 to 813, the simulation of a subject 13.7 s instead of 15.1, a QSM 10.5 s instead of
    11.2, each with a half to a third of the system time. Nothing elsewhere than glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    for option, value in GLIBC_MALLOC_OPTIONS.items():
        libc.mallopt(option, value)


def main(argv: Sequence[str] | None = None) -> int:
    keep_freed_memory()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        args.function(args)
    except InputError as error:
        log.error("bad input: %s", error)
        return 2
    log.info("%s done in %.1f s", args.command, time.perf_counter() - started)
    return 0
