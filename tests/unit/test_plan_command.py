"""`deepnuclei plan`: the config merged and validated as Snakemake does, the plan files written as the
workflow writes them, and the summary printed, without Snakemake."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from deepnuclei.cli import main
from deepnuclei.plan import make_plan, plan_files
from deepnuclei.plan_command import load_config
from deepnuclei.plan_files import encode
from helpers import ROOT



def overlay(tmp_path: Path, **settings) -> str:
    path = tmp_path / "dataset.yaml"
    path.write_text(yaml.safe_dump(settings))
    return str(path)


def test_apply_on_a_dataset_prints_its_roles_bundled_models_and_methods(longitudinal, tmp_path, capsys):
    dataset = overlay(tmp_path, bids_dir=str(longitudinal), results_dir=str(tmp_path / "results"))
    assert main(["plan", "--config", str(ROOT / "config" / "apply.yaml"), "--config", dataset, "--print"]) == 0
    printed = capsys.readouterr().out
    assert f"Dataset {longitudinal}: 6 sessions of 5 participants" in printed
    assert "  main    0      0           3     3" in printed  # every labelled participant tests: 01 (2 sessions), 02
    assert "pretrained/linus.zip" in printed and "bundled" in printed
    assert "  atlas      5         3" in printed  # the T1 sessions; scored where labelled
    assert "  dbresunet  4         3" in printed  # SWI and T1 both
    assert "Notes: none" in printed
    # the files are the workflow's: what `snakemake --configfile config/apply.yaml dataset.yaml` writes
    config = load_config([ROOT / "config" / "apply.yaml", dataset])
    # merged key by key, as Snakemake merges: the bundle beside config.yaml's entry (the plan lets it replace them)
    assert config["models"]["linus"]["bundle"] == "pretrained:linus" and config["models"]["linus"]["task"] == "stn"
    for name, content in plan_files(make_plan(config)).items():
        written = json.loads((tmp_path / "results" / "plan" / f"{name}.json").read_text())
        assert written == encode(content), name


def test_the_demo_plan_prints_its_cohorts_and_fine_tuned_models(tmp_path, capsys):
    out = tmp_path / "plan"
    assert main(["plan", "--print", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "(the simulated demo): 16 sessions of 16 participants" in printed
    assert "  main    5      1           2     0" in printed and "  hires   5      1           2     0" in printed
    assert "fine-tuned from" in printed and "pretrained/dbresunet.zip" in printed
    assert "linus-hr           cohort hires" in printed and "from scratch" in printed
    assert (out / "dataset.json").is_file() and (out / "train_linus.json").is_file()


def test_a_config_the_schema_refuses_stops_with_its_reason(tmp_path):
    bad = overlay(tmp_path, splits={"train": "many"})
    with pytest.raises(SystemExit, match="deepnuclei plan: Error validating config file.\n.*'many' is not of type 'integer'"):
        main(["plan", "--config", bad, "--out", str(tmp_path / "plan")])
