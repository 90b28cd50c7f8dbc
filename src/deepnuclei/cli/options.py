"""What the commands share: how each is registered with its handler, the log they write to, the options
that mean the same in several of them (`--settings FILE`, `--threads`, `--interpolation`, NAME=DSEG),
and the config settings that several of them read (`mixed_precision`)."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("deepnuclei")

Handler = Callable[[argparse.Namespace], None]


def add_command(subparsers: argparse._SubParsersAction, name: str, handler: Handler,
                help_text: str) -> argparse.ArgumentParser:
    """The subcommand `name`, run by `handler` on its parsed options."""
    parser = subparsers.add_parser(name, help=help_text)
    parser.set_defaults(function=handler)
    return parser


def settings_file(path: str) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise argparse.ArgumentTypeError(f"{path}: not a readable JSON file ({error})") from None


def add_settings(parser: argparse.ArgumentParser, what: str) -> None:
    """`--settings FILE`: a config section as the plan wrote it (`deepnuclei.plan.settings_files`), read."""
    parser.add_argument("--settings", required=True, type=settings_file, metavar="FILE",
                        help=f"JSON file of {what} (results/plan/settings_*.json)")


def mixed_precision(inference: Mapping[str, Any]) -> bool | None:
    """The config's `inference.mixed_precision` as `infer.predict` takes it: None for "auto" (16-bit where the
    device has it natively), or absent."""
    setting = inference.get("mixed_precision", "auto")
    return None if setting == "auto" else setting


def add_sources(parser: argparse.ArgumentParser, option: str = "--sources", what: str = "the map") -> None:
    """The files a map is made from, as BIDS URIs (deepnuclei.derivatives.bids_uris): its sidecar's Sources."""
    parser.add_argument(option, nargs="*", default=[], help=f"BIDS URIs of the files {what} is made from")


def add_threads(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=2)


def add_interpolation(parser: argparse.ArgumentParser) -> None:
    """How a label map moves between the T1 and SWI grids."""
    parser.add_argument("--interpolation", default="label_aware", choices=["nearest", "label_aware"])


def name_and_path(text: str) -> tuple[str, str]:
    """A NAME=DSEG pair: a method's name and its label map."""
    name, equals, path = text.partition("=")
    if not equals:
        raise argparse.ArgumentTypeError(f"{text!r} is no NAME=DSEG pair")
    return name, path
