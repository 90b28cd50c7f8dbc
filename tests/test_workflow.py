"""The Snakemake workflow: config validation, dry run, and an end-to-end run on a tiny demo cohort."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from dataclasses import fields

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml

from deepnuclei.io import read_json, read_volume
from deepnuclei.labels import STRUCTURE_BY_NAME
from deepnuclei.models import get_spec
from deepnuclei.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile")]
TINY = ROOT / "tests" / "config" / "tiny.yaml"
# `reproduce` on the tiny cohort: every method of the papers' tables, tiny.yaml's cohort over reproduce.yaml's
TINY_REPRODUCE = [str(ROOT / "config" / "reproduce.yaml"), str(TINY), str(ROOT / "tests" / "config" / "tiny_reproduce.yaml")]


def merged(base: dict, overlay: dict) -> dict:
    result = dict(base)
    for key, value in overlay.items():
        result[key] = merged(base[key], value) if isinstance(value, dict) and key in base else value
    return result


def snakemake(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run([*SNAKEMAKE, *arguments], cwd=cwd, env=environment, capture_output=True, text=True)


@pytest.mark.parametrize("overlay", [None, "config/paper.yaml", "config/reproduce.yaml", "tests/config/tiny.yaml"])
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


def test_dry_run_plans_the_demo(tmp_path):
    run = snakemake("-n", "--configfile", str(TINY), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "demo_subject" in run.stdout


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
        benchmark = (tmp_path / "results" / "benchmarks" / "demo_subject" / f"sub-{subject}.tsv").read_text()
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
    from test_bundle import check_bundles_applied  # here: test_bundle imports this module's helpers

    check_bundles_applied(tmp_path, snakemake)
    check_measures(tmp_path / "results", models)
    reproduce = snakemake("--cores", "2", "--configfile", *TINY_REPRODUCE, "--", "reproduce", cwd=tmp_path)
    assert reproduce.returncode == 0, reproduce.stderr[-3000:]
    check_linus_experiments(tmp_path / "results" / "evaluation")
    check_every_paper_row(tmp_path / "results")
    hires_qsm = pd.read_csv(tmp_path / "results" / "qsm" / "qsm_metrics_hires.csv", dtype={"subject": str})
    assert set(hires_qsm["subject"]) == {"hr01", "hr02"} and len(hires_qsm) == 6  # a slab inside the head
    sharptv = hires_qsm[hires_qsm["method"] == "sharptv"]
    assert sharptv[["error_ppb_STN_L", "error_ppb_STN_R"]].abs().max().max() < 15
    # nuclei at the slab's edges lose part of their field with the background: up to 52 ppb low (GPe)
    assert sharptv["max_abs_error_ppb"].max() < 65
    report = snakemake("--configfile", *TINY_REPRODUCE, "--report", "results/report.html", "--", "reproduce",
                       cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    html = (tmp_path / "results" / "report.html").read_text()
    assert all(name in html for name in ("dice_nuclei.md", "efficiency.md", "scatter_volume_dbresunet.png",
                                         "linus_resolution.md", "linus_2d_vs_25d.md", "nuclei_wide.csv",
                                         "sub-02_desc-segmentations_qc.png"))
    again = snakemake("-n", "--configfile", *TINY_REPRODUCE, "--", "reproduce", cwd=tmp_path)
    assert "Nothing to be done" in again.stdout + again.stderr


PAPER_TABLES = {  # our table file -> the paper tables whose every row it must hold
    "dice_nuclei": ["DB-ResUNet Table I"], "efficiency": ["DB-ResUNet Table II", "LiNUS Table II", "LiNUS Table III"],
    "ablation_rate": ["DB-ResUNet Table III"], "ablation_inputs": ["DB-ResUNet Table IV"],
    "dice_stn": ["LiNUS Table II"], "stn_methods": ["LiNUS Table II", "LiNUS Table III"],
    "linus_resolution": ["LiNUS Table VII"], "linus_targets": ["LiNUS Table VIII"], "linus_optimizers": ["LiNUS Table IX"]}


def check_headline(results: Path) -> None:
    """The screen `make demo` ends on gives the report's place and each model's mean Dice over the 7 nuclei."""
    shown = subprocess.run([str(Path(sys.executable).parent / "deepnuclei"), "headline", "--results", str(results),
                            "--report", str(results / "report.html")], capture_output=True, text=True, check=True).stdout
    assert shown.startswith(f"Report: {results / 'report.html'}")
    dice = pd.read_csv(results / "evaluation" / "dice_nuclei.csv").set_index("method")
    mean = dice.loc["dbresunet", ["CN", "GP", "PUT", "THA", "SN", "RN", "DN"]].mean()
    assert re.search(rf"^  dbresunet +{mean:.3f} ", shown, re.MULTILINE), shown
    assert re.search(r"^STN Dice: linus \d\.\d{3}, ", shown, re.MULTILINE), shown


def check_every_paper_row(results: Path) -> None:
    """`reproduce`: each table holds every row of the papers' tables it regenerates (their methods and
    conditions as the papers name them), each with a row of ours beside it (one atlas row stands for both
    papers' registration methods where a table has both); LiNUS Tables IV and V in their voxel form for the
    T1-grid model, the reference centres those of the T1-grid labels."""
    from deepnuclei.tables import REGISTRATION_METHODS, paper_results

    evaluation, reported = results / "evaluation", paper_results()

    def pairs(methods, conditions) -> set[tuple[str, str]]:
        return {("registration" if method in REGISTRATION_METHODS else method, condition)
                for method, condition in zip(methods, conditions)}

    for name, sources in PAPER_TABLES.items():
        table = pd.read_csv(evaluation / f"{name}.csv", keep_default_na=False)
        theirs = table["method"].str.startswith("paper: ")
        expected = reported[reported["source"].isin(sources)]
        assert set(zip(table.loc[theirs, "paper_method"], table.loc[theirs, "condition"])) == set(
            zip(expected["method"], expected["condition"])), name
        missing = pairs(expected["method"], expected["condition"]) - pairs(table.loc[~theirs, "paper_method"],
                                                                            table.loc[~theirs, "condition"])
        assert not missing, (name, missing)
    voxels = pd.read_csv(evaluation / "localization_stn_voxels.csv", dtype={"subject": str})
    assert set(voxels["method"]) == {"linus-t1", "paper: LiNUS"}
    labels = read_volume(results / "labels" / "sub-02" / "sub-02_space-T1w_dseg.nii.gz")[0]
    for structure, row in voxels[voxels["method"] == "linus-t1"].set_index("structure").iterrows():
        centre = np.argwhere(labels == STRUCTURE_BY_NAME[structure].label).mean(axis=0)
        assert row[["reference_i", "reference_j", "reference_k"]].tolist() == np.round(centre).tolist()


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
    assert (results / "qc" / "sub-02" / "sub-02_desc-segmentations_qc.png").stat().st_size > 20_000


def check_linus_experiments(evaluation: Path) -> None:
    """The tiny run's experiment tables: each model on its cohort's test subject, values from the
    per-subject overlap table, the cohorts' geometry read from their files."""
    overlap = pd.read_csv(evaluation / "linus_experiments_overlap.csv", dtype={"subject": str})
    assert set(zip(overlap["method"], overlap["subject"])) == {
        ("linus", "02"), ("linus25d", "02"), ("linus-hr", "hr02"), ("linus-hr-gpi", "hr02"), ("linus-hr-gpi-mist", "hr02")}
    assert set(overlap.loc[overlap["method"] == "linus-hr-gpi", "structure"]) == {"GPi_L", "GPi_R"}
    targets = pd.read_csv(evaluation / "linus_targets.csv").set_index("method")
    gpi = overlap[overlap["method"] == "linus-hr-gpi"]
    assert targets.loc["linus-hr-gpi", "dice"] == pytest.approx(gpi["dice"].mean())
    cohorts = pd.read_csv(evaluation / "linus_cohorts.csv").set_index("cohort")
    assert cohorts.loc["hires", "model_input_dimensions"] == "64*64*32" and cohorts.loc["main", "subjects"] == 2
    slices = pd.read_csv(evaluation / "linus_2d_vs_25d.csv").set_index("method")
    assert {"linus", "linus25d", "reference labels"} <= set(slices.index)
    assert slices.loc["reference labels", "slice_dice"] > 0.5


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
    assert (results / "qc" / "segmentations" / "sub-02_segmentations.png").stat().st_size > 20_000


def test_paper_config_restores_the_papers_models():
    config = merged(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()),
                    yaml.safe_load((ROOT / "config" / "paper.yaml").read_text()))
    models = config["models"]
    assert {"linus", "unet2d", "fcn", "deeplabv3", "lraspp", "vnet", "unet3d_linus", "unet3d", "resunet",
            "dbresunet"} <= set(models)
    assert models["linus"]["inputs"] == ["T1w"]  # the LiNUS paper's input
    assert models["dbresunet"]["options"]["fc_width"] == 512 and models["dbresunet"]["training"]["patch_size"] is None
    for name, model in models.items():  # every demo shortcut undone: exactly the paper's recipe
        spec = get_spec(model["architecture"])
        assert TrainConfig.from_dict(spec, model.get("training", {})) == TrainConfig.from_dict(spec, {}), name


def test_schema_lists_every_training_setting():
    schema = yaml.safe_load((ROOT / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert schema["properties"]["models"]["additionalProperties"] == {"$ref": "#/definitions/model"}
    model = schema["definitions"]["model"]["properties"]
    assert set(model["training"]["propertyNames"]["enum"]) == {f.name for f in fields(TrainConfig)} | {"recipe"}
