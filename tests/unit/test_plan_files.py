"""The plan files' contracts (deepnuclei.plan_files): every file the plan writes reads back through its
dataclass unchanged and validates against the JSON schema under workflow/schemas/plan/, which matches
the dataclasses."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from deepnuclei.plan import make_plan, plan_files, write_plan_files
from deepnuclei.plan_files import KINDS, TrainPlan, decode, encode, kind_of, schema_file, schema_text
from helpers import ROOT
from helpers.datasets import config_for
from helpers.runs import merged

SCHEMAS = ROOT / "workflow" / "schemas" / "plan"


def test_the_schemas_beside_the_workflow_are_the_dataclasses():
    assert sorted(path.name for path in SCHEMAS.iterdir()) == sorted(schema_file(SCHEMAS, kind).name for kind in KINDS)
    for kind in KINDS:
        assert schema_file(SCHEMAS, kind).read_text() == schema_text(kind), f"{kind}: stale, run `make plan-schemas`"


def demo_config(tmp_path: Path) -> dict:
    config = merged(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()),
                    yaml.safe_load((ROOT / "tests" / "config" / "tiny.yaml").read_text()))
    return {**config, "results_dir": str(tmp_path / "results")}


@pytest.mark.parametrize("dataset", ["demo", "longitudinal"])
def test_every_plan_file_validates_and_reads_back_unchanged(dataset, request, tmp_path):
    config = demo_config(tmp_path) if dataset == "demo" else config_for(request.getfixturevalue("longitudinal"), tmp_path)
    plan = make_plan(config)
    written = write_plan_files(plan, plan_files(plan))
    kinds = set()
    for name, path in written.items():
        kinds.add(kind_of(name))
        content = json.loads(Path(path).read_text())
        jsonschema.validate(content, json.loads(schema_file(SCHEMAS, kind_of(name)).read_text()))
        assert encode(decode(KINDS[kind_of(name)], content)) == content, name
    assert {"dataset", "train", "preprocess", "overlap", "measures", "evaluation", "atlas_jlf"} <= kinds
    if dataset == "demo":
        assert {"tre", "qsm_metrics", "linus_experiments", "linus_experiments_overlap"} <= kinds


def test_a_plan_file_with_an_unknown_or_missing_key_is_refused(tmp_path):
    path = tmp_path / "train_linus.json"
    path.write_text(json.dumps({"model": {}, "cases": {"train": [], "validation": []}, "extra": 1}))
    with pytest.raises(ValueError, match=r"TrainPlan: unknown keys \['extra'\]"):
        TrainPlan.read(path)
    path.write_text(json.dumps({"model": {}}))
    with pytest.raises(TypeError, match="cases"):
        TrainPlan.read(path)
