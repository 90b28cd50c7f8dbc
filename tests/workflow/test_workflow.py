"""The Snakemake workflow: config validation, dry run, and an end-to-end run on a tiny demo cohort."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml

from deepnuclei.atlas import AtlasParams
from deepnuclei.bundle import load_bundle
from deepnuclei.infer import WINDOW_OVERLAP
from deepnuclei.io import read_json, read_volume
from deepnuclei.labels import STRUCTURE_BY_NAME
from deepnuclei.models import get_spec
from deepnuclei.preprocess import T1_CLIP_UNIT
from deepnuclei.train import TrainConfig
from helpers import ROOT, TINY, TINY_REPRODUCE
from helpers.runs import merged, snakemake



@pytest.mark.parametrize("overlay", [None, "config/paper.yaml", "config/reproduce.yaml", "config/apply.yaml",
                                     "tests/config/tiny.yaml"])
def test_shipped_configs_satisfy_the_schema(overlay):
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    if overlay:
        config = merged(config, yaml.safe_load((ROOT / overlay).read_text()))
    jsonschema.validate(config, schema)


def test_a_bad_config_stops_at_once_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("demo:\n  n_subjects: many\n")
    run = snakemake("-n", "--configfile", str(bad), cwd=tmp_path)
    assert run.returncode != 0
    assert "n_subjects" in run.stderr + run.stdout
    assert "many" in run.stderr + run.stdout


def test_lint_finds_nothing(tmp_path):
    """`snakemake --lint` (`make lint`) stays clean: it exits 1 on any finding, and prints them."""
    run = snakemake("--lint", "--configfile", str(TINY), cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr


def test_dry_run_plans_the_demo(tmp_path):
    run = snakemake("-n", "--configfile", str(TINY), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "demo_subject" in run.stdout


def test_dry_run_plans_reproduce(tmp_path):
    """`reproduce`'s wiring on the tiny cohort, every paper table's job planned (tests/workflow/test_reproduce_run.py
    runs it, with `make test-reproduce`)."""
    run = snakemake("-n", "--configfile", *TINY_REPRODUCE, "--", "reproduce", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    for rule in ("linus_experiment_tables", "train", "evaluation_tables", "qsm_metrics"):
        assert re.search(rf"^{rule}\s+\d+$", run.stdout, re.MULTILINE), rule


@pytest.mark.slow
def test_end_to_end_on_two_tiny_subjects(tmp_path):
    run = snakemake("--cores", "2", "--configfile", str(TINY), "--logger", "deepnuclei", cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    # the deepnuclei logger's progress line instead of a block per job: its last one counts every job done
    last_line = [line for line in run.stderr.splitlines() if re.match(r"\[\d+:\d\d\] \d+/\d+ jobs", line)][-1]
    done, total = map(int, re.search(r"(\d+)/(\d+) jobs", last_line).groups())
    assert done == total > 50 and re.search(r"training (\d+)/\1\b", last_line) and "rule " not in run.stderr
    check_headline(tmp_path / "results")
    for subject in ("01", "02"):
        anat = tmp_path / "resources" / "demo" / "bids" / f"sub-{subject}" / "anat"
        t1, affine = read_volume(anat / f"sub-{subject}_T1w.nii.gz")
        assert t1.shape == (80, 96, 80)
        np.testing.assert_allclose(np.abs(np.diag(affine))[:3], 2.0, atol=1e-5)
        assert len(list(anat.glob("*_T2starw.nii.gz"))) == 6
        record = read_json(tmp_path / "resources" / "demo" / "truth" / f"sub-{subject}" / f"sub-{subject}_truth.json")
        assert all(volume > 0 for volume in record["volume_mm3_swi"].values())
        assert (tmp_path / "results" / "qc" / "demo" / f"sub-{subject}_demo.png").stat().st_size > 20_000
        benchmark = (tmp_path / "results" / "benchmarks" / "demo_subject" / f"sub-{subject}" / f"sub-{subject}.tsv").read_text()
        assert benchmark.startswith("s\t")
    assert (tmp_path / "resources" / "demo" / "bids" / "derivatives" / "labels" / "dseg.tsv").exists()
    qsm = pd.read_csv(tmp_path / "results" / "qsm" / "qsm_metrics.csv")
    assert set(qsm["method"]) == {"sharptv", "vsharptv", "tkd"} and len(qsm) == 6
    assert qsm[qsm["method"] == "sharptv"]["max_abs_error_ppb"].max() < 30  # tiny grids: a wide bar
    for subject in ("01", "02"):
        padded, _ = read_volume(tmp_path / "results" / "preprocess" / f"sub-{subject}" /
                                f"sub-{subject}_space-SWI_desc-model_Chimap.nii.gz")
        assert padded.shape == (80, 96, 32) and 0 <= padded.min() and padded.max() <= 1
    tre = pd.read_csv(tmp_path / "results" / "registration" / "tre.csv")
    assert tre["tre_mm"].max() < 1.0
    overlap = pd.read_csv(tmp_path / "results" / "evaluation" / "overlap.csv", dtype={"subject": str})
    models = {"linus", "linus-t1", "dbresunet", "dbresunet-rate1x1x1", "dbresunet-in-Chimap"}  # the last two: ablations
    assert set(overlap["method"]) == {"atlas", "atlas-jlf", *models}
    large = overlap[overlap["structure"].str.match(r"(PUT|THA|CN)_") & overlap["method"].str.startswith("atlas")]
    assert large.groupby("method")["dice"].mean().min() > 0.5
    for model in ("linus", "linus-t1", "dbresunet"):  # eight iterations: the chain runs and the loss falls, no Dice bar
        log = pd.read_csv(tmp_path / "results" / "models" / model / "log.csv")
        assert list(log["epoch"]) == [1, 2] and log["train_loss"].iloc[-1] < log["train_loss"].iloc[0]
        segmentations = tmp_path / "results" / "segmentations" / model / "sub-02"
        swi_labels, swi_affine = read_volume(segmentations / "sub-02_space-SWI_dseg.nii.gz")
        assert swi_labels.shape == (72, 88, 26)  # on the SWI grid, padding removed (linus-t1: moved there)
        assert read_volume(segmentations / "sub-02_space-T1w_dseg.nii.gz")[0].shape == (80, 96, 80)
        assert read_json(segmentations / "sub-02_inference.json")["inference_seconds"] > 0
    check_evaluation(tmp_path / "results", overlap, models)
    check_bundles_applied(tmp_path, snakemake)
    check_measures(tmp_path / "results", models)
    check_derivatives(tmp_path / "results", models)


def check_bundles_applied(root: Path, snakemake) -> None:
    """After the tiny demo's end-to-end run in `root` (tests/workflow/test_workflow.py): its bundles, applied with
    config/apply.yaml to the same images without any labels, give the training run's label maps bit for
    bit, and the measures equal a direct computation from those maps and the QSM."""
    bids, unlabelled = root / "resources" / "demo" / "bids", root / "unlabelled"
    shutil.copytree(bids, unlabelled, ignore=shutil.ignore_patterns("derivatives"))
    for model in ("linus", "linus-t1", "dbresunet"):
        assert load_bundle(root / "results" / "bundles" / f"{model}.zip").manifest["name"] == model
    this_runs_bundles = root / "this_runs_bundles.yaml"  # instead of the package's, apply.yaml's default
    this_runs_bundles.write_text("inference: {flip: false, drop_misplaced: false}\n"  # the training run's inference
                                 "models:\n" + "".join(f"  {model}: {{bundle: results/bundles/{model}.zip}}\n"
                                                       for model in ("linus", "dbresunet")))
    run = snakemake("--cores", "2", "--configfile", str(ROOT / "tests" / "config" / "tiny.yaml"),
                    str(ROOT / "config" / "apply.yaml"), str(this_runs_bundles), "--config", f"bids_dir={unlabelled}",
                    cwd=root)
    assert run.returncode == 0, run.stderr[-3000:]
    applied, trained_run = root / "results-apply", root / "results"
    assert not (applied / "models").exists() and not (applied / "evaluation" / "overlap.csv").exists()
    for model in ("linus", "dbresunet"):
        for space in ("SWI", "T1w"):
            name = Path("segmentations") / model / "sub-02" / f"sub-02_space-{space}_dseg.nii.gz"
            assert np.array_equal(read_volume(applied / name)[0], read_volume(trained_run / name)[0]), name
        assert (applied / "segmentations" / model / "sub-01" / "sub-01_space-SWI_dseg.nii.gz").exists()  # unlabelled too
    labels, _ = read_volume(applied / "segmentations" / "dbresunet" / "sub-02" / "sub-02_space-SWI_dseg.nii.gz")
    t1_labels, t1_affine = read_volume(applied / "segmentations" / "dbresunet" / "sub-02" / "sub-02_space-T1w_dseg.nii.gz")
    chi, _ = read_volume(applied / "qsm" / "sub-02" / "sub-02_space-SWI_desc-sharptv_Chimap.nii.gz")
    measured = pd.read_csv(applied / "measures" / "sub-02" / "sub-02_desc-dbresunet_nuclei.tsv", sep="\t",
                           na_values="n/a").set_index("structure")
    checked = 0
    for structure, row in measured.iterrows():
        inside = labels == STRUCTURE_BY_NAME[structure].label
        if inside.sum() == 0 or structure.startswith("GP"):  # GP: the union of its parts, checked in test_measures
            continue
        assert row.chi_mean_ppb == pytest.approx(1000 * chi[inside].mean(), abs=1e-3)
        assert row.chi_median_ppb == pytest.approx(1000 * np.median(chi[inside]), abs=1e-3)
        in_t1 = t1_labels == STRUCTURE_BY_NAME[structure].label
        assert row.volume_mm3 == pytest.approx(in_t1.sum() * abs(np.linalg.det(t1_affine[:3, :3])), rel=1e-4)
        checked += 1
    assert checked >= 3
    group = pd.read_csv(applied / "measures" / "nuclei.tsv", sep="\t", dtype={"participant_id": str})
    assert {"atlas", "linus", "dbresunet"} <= set(group["method"]) and "reference" not in set(group["method"])


def check_derivatives(results: Path, models: set[str]) -> None:
    """Every results folder that is a BIDS-Derivatives dataset: no validator error (where it is installed),
    and bids2table reads its maps back; the QSMxT table holds every session x method's structures."""
    from bids2table import index_dataset

    from deepnuclei.bids_check import run_bids_validator, validator_command

    roots = ["qsm", "registration", "measures", *(f"segmentations/{method}" for method in {"atlas", "atlas-jlf", *models})]
    for root in roots:
        assert (results / root / "dataset_description.json").exists(), root
        if validator_command():
            record = run_bids_validator(results / root, results / "v.json", results / "v.txt")
            assert record["ran"] and record["errors"] == 0, (root, record["codes"])
    assert len(index_dataset(results / "segmentations" / "linus")) == 2  # sub-02 in SWI and T1w space
    qsmxt = pd.read_csv(results / "measures" / "nuclei_qsmxt.csv")
    long = pd.read_csv(results / "measures" / "nuclei.tsv", sep="\t")
    assert list(qsmxt["roi"]) == list(long["structure"]) and list(qsmxt["method"]) == list(long["method"])


def check_headline(results: Path) -> None:
    """The screen `make demo` ends on gives the report's place and each model's mean Dice over the 7 nuclei."""
    shown = subprocess.run([str(Path(sys.executable).parent / "deepnuclei"), "headline", "--results", str(results),
                            "--report", str(results / "report.html")], capture_output=True, text=True, check=True).stdout
    assert shown.startswith(f"Report: {results / 'report.html'}")
    dice = pd.read_csv(results / "evaluation" / "dice_nuclei.csv").set_index("method")
    mean = dice.loc["dbresunet", ["CN", "GP", "PUT", "THA", "SN", "RN", "DN"]].mean()
    assert re.search(rf"^  dbresunet +{mean:.3f} ", shown, re.MULTILINE), shown
    assert re.search(r"^STN Dice: linus \d\.\d{3}, ", shown, re.MULTILINE), shown


def check_measures(results: Path, models: set[str]) -> None:
    """The group measures: every method on the subject it segments, the reference on both labelled subjects;
    values recomputed from the label maps (volume on the T1 grid, susceptibility on the SWI grid) and the QSM."""
    table = pd.read_csv(results / "measures" / "nuclei.tsv", sep="\t", na_values=["n/a"], keep_default_na=False)
    assert set(table["method"]) == {"reference", "atlas", "atlas-jlf", *models}
    assert set(table.loc[table["method"] == "reference", "participant_id"]) == {"sub-01", "sub-02"}
    assert set(table.loc[table["method"] != "reference", "participant_id"]) == {"sub-02"}
    assert table["session_id"].isna().all()
    qsm_method = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["qsm"]["method"]
    chi, _ = read_volume(results / "qsm" / "sub-02" / f"sub-02_space-SWI_desc-{qsm_method}_Chimap.nii.gz")
    wide = pd.read_csv(results / "measures" / "nuclei_wide.csv")
    for method, t1_labels, swi_labels in [
            ("reference", results / "labels" / "sub-02" / "sub-02_space-T1w_dseg.nii.gz",
             results / "labels" / "sub-02" / "sub-02_space-SWI_dseg.nii.gz"),
            ("atlas", results / "segmentations" / "atlas" / "sub-02" / "sub-02_space-T1w_dseg.nii.gz",
             results / "segmentations" / "atlas" / "sub-02" / "sub-02_space-SWI_dseg.nii.gz")]:
        row = table[(table["participant_id"] == "sub-02") & (table["method"] == method) & (table["structure"] == "THA_L")]
        labels, affine = read_volume(t1_labels)
        inside = labels == STRUCTURE_BY_NAME["THA_L"].label
        assert row["voxels"].iloc[0] == inside.sum() > 0
        assert row["volume_mm3"].iloc[0] == pytest.approx(inside.sum() * abs(np.linalg.det(affine[:3, :3])), abs=1e-3)
        mean_ppb = 1000 * chi[read_volume(swi_labels)[0] == STRUCTURE_BY_NAME["THA_L"].label].astype(float).mean()
        assert row["chi_mean_ppb"].iloc[0] == pytest.approx(mean_ppb, abs=1e-3)
        same = wide[(wide["participant_id"] == "sub-02") & (wide["method"] == method)]
        assert same["THA_L_chi_mean_ppb"].iloc[0] == pytest.approx(row["chi_mean_ppb"].iloc[0])
    assert (results / "qc" / "measures" / "sub-02_segmentations_qc.png").stat().st_size > 20_000


def check_evaluation(results: Path, overlap: pd.DataFrame, models: set[str]) -> None:
    """The evaluation tables and figures exist and hold the overlap table's values."""
    evaluation = results / "evaluation"
    dice = pd.read_csv(evaluation / "dice_nuclei.csv").set_index("method")
    assert list(dice.columns[:4]) == ["CN", "CN_ci95", "GP", "GP_ci95"]
    ours = overlap[overlap["structure"].isin(["PUT_L", "PUT_R"])].groupby("method")["dice"].mean()
    for method, value in ours.items():  # one test subject: the table's PUT is the mean of its two sides
        assert dice.loc[method, "PUT"] == pytest.approx(value)
    assert dice.loc["paper: DB-ResUNet (QSM+T1 WI)", "GP"] == pytest.approx(0.840)
    efficiency = pd.read_csv(evaluation / "efficiency.csv").set_index("method")
    assert (efficiency.loc[sorted(models), "parameters"] > 0).all()
    assert (efficiency.loc[sorted(models | {"atlas", "atlas-jlf"}), "job_seconds"] > 0).all()
    localization = pd.read_csv(evaluation / "localization_stn.csv")
    linus = localization[(localization["method"] == "linus") & (localization["subject"] == "02")]
    stn = overlap[(overlap["method"] == "linus") & (overlap["structure"] == "STN_L")]
    assert linus["STN_L"].iloc[0] == pytest.approx(stn["com_error_mm"].iloc[0], nan_ok=True)
    for kind in ("rate", "inputs"):
        assert "dbresunet" in set(pd.read_csv(evaluation / f"ablation_{kind}.csv")["method"])
    for name in ("dice_boxplot", "scatter_susceptibility_dbresunet", "bland_altman_volume_linus"):
        assert (evaluation / "figures" / f"{name}.png").stat().st_size > 10_000
        assert (evaluation / "figures" / f"{name}.svg").exists()
    assert (results / "qc" / "segmentations" / "sub-02" / "sub-02_segmentations.png").stat().st_size > 20_000


def test_paper_config_restores_the_papers_models():
    config = merged(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()),
                    yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))
    models = config["models"]
    assert {"linus", "unet2d", "fcn", "deeplabv3", "lraspp", "vnet", "unet3d_linus", "unet3d", "resunet",
            "dbresunet"} <= set(models)
    assert models["linus"]["inputs"] == ["T1w"]  # the LiNUS paper's input
    assert models["dbresunet"]["options"]["fc_width"] == 512 and models["dbresunet"]["training"]["patch_size"] is None
    for name, model in models.items():  # every demo shortcut undone: exactly the recipe of its task's paper
        spec, task = get_spec(model["architecture"]), {"task": model["task"]}
        assert TrainConfig.from_dict(spec, {**task, **model.get("training", {})}) == TrainConfig.from_dict(spec, task), name


def test_code_defaults_are_config_yaml_values():
    """A setting the code falls back on is config.yaml's: a run that leaves it out runs as the demo does."""
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert AtlasParams.from_config(config["atlas"]) == AtlasParams()
    assert config["preprocess"]["t1_clip_unit"] == config["preprocess_t1w"]["t1_clip_unit"] == T1_CLIP_UNIT
    assert config["inference"]["overlap"] == WINDOW_OVERLAP


def test_schema_lists_every_training_setting():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["properties"]["models"]["additionalProperties"] == {"$ref": "#/definitions/model"}
    model = schema["definitions"]["model"]["properties"]
    assert set(model["training"]["propertyNames"]["enum"]) == {f.name for f in fields(TrainConfig)} | {"recipe"}
