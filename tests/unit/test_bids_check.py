"""The BIDS reference validator's report: counted by code, and never an exception for the dataset's sake."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepnuclei.bids_check import run_bids_validator, validator_command
from deepnuclei.io import read_json, save_volume

pytestmark = pytest.mark.skipif(validator_command() is None, reason="bids-validator-deno is not installed")


def small_dataset(root: Path, described: bool = True) -> Path:
    if described:
        root.mkdir(parents=True)
        (root / "dataset_description.json").write_text(json.dumps({"Name": "small", "BIDSVersion": "1.9.0"}))
    anat = root / "sub-01" / "anat"
    save_volume(anat / "sub-01_T1w.nii.gz", np.random.default_rng(0).random((8, 8, 8)), np.diag([1, 1, 1, 1.0]))
    (anat / "sub-01_T1w.json").write_text("{}")
    return root


def test_a_valid_dataset_gets_its_warnings_counted(tmp_path):
    record = run_bids_validator(small_dataset(tmp_path / "bids"), tmp_path / "report.json", tmp_path / "report.txt")
    assert record["ran"] and record["errors"] == 0 and record["warnings"] > 0
    assert record["warnings"] == sum(n for code, n in record["codes"].items() if code.startswith("warning "))
    assert "issues" in read_json(tmp_path / "report.json")
    assert (tmp_path / "report.txt").read_text().startswith(f"BIDS validator {record['version']} on ")


def test_an_invalid_dataset_is_reported_not_raised(tmp_path):
    record = run_bids_validator(small_dataset(tmp_path / "bids", described=False), tmp_path / "r.json",
                                tmp_path / "r.txt")
    assert record["ran"] and record["errors"] > 0
    assert any("error" in code for code in record["codes"])


def test_a_validator_that_cannot_run_is_reported(tmp_path):
    record = run_bids_validator(small_dataset(tmp_path / "bids"), tmp_path / "r.json", tmp_path / "r.txt",
                                command=str(tmp_path / "no-such-validator"))
    assert not record["ran"] and "could not run" in record["problem"]
    assert "not run" in (tmp_path / "r.txt").read_text() and not read_json(tmp_path / "r.json")["ran"]
