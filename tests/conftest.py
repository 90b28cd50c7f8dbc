"""Shared fixtures: the prepared demo template and tiny demo subjects (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deepnuclei.demo.cohort import generate_subject
from deepnuclei.demo.template import Template, prepare_template

ROOT = Path(__file__).resolve().parents[1]


def tiny_demo_settings(**changes) -> dict:
    """The default demo settings with the tiny test cohort's grids, plus any changes."""
    settings = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["demo"]
    settings.update(yaml.safe_load((ROOT / "tests" / "config" / "tiny.yaml").read_text())["demo"])
    settings.update(changes)
    return settings


@pytest.fixture(scope="session")
def tiny_settings():
    return tiny_demo_settings


@pytest.fixture(scope="session")
def template() -> Template:
    return prepare_template()


@pytest.fixture(scope="session")
def demo_subject(template, tmp_path_factory) -> dict:
    """One tiny subject written to disk: its truth record and folders."""
    root = tmp_path_factory.mktemp("demo")
    settings = tiny_demo_settings()
    record = generate_subject(template, "01", settings, root / "bids", root / "truth", root / "qc.png")
    return {"record": record, "bids": root / "bids", "truth": root / "truth", "settings": settings, "qc": root / "qc.png"}
