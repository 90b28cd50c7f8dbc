"""The workflow end to end on datasets laid out as real ones are, not as the demo writes them: sessions,
a participant labelled on the T1 grid only, unlabelled and T1-only participants, labels numbered in the
dataset's own order (GP as one label, an extra structure to ignore), MEGRE echoes; the same labels
numbered two ways; a dataset with no labels at all. The images are tiny demo subjects, renamed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from deepnuclei.io import read_json, read_volume, save_volume
from deepnuclei.labels import STRUCTURE_BY_NAME, STRUCTURES, dseg_tsv
from helpers import TINY
from helpers.runs import snakemake

pytestmark = pytest.mark.slow

# Another group's numbering: FreeSurfer-like names, sides grouped, GP merged or kept apart, and a structure
# deepnuclei does not segment (listed, never drawn: ignored through the config).
MERGED = ["Caudate", "Pallidum", "Putamen", "Thalamus", "Substantia-Nigra", "Red-Nucleus", "Dentate",
          "Subthalamic-Nucleus"]
SEPARATE = ["Caudate", "GPe", "GPi", "Putamen", "Thalamus", "Substantia-Nigra", "Red-Nucleus", "Dentate",
            "Subthalamic-Nucleus"]
PACKAGE_PARTS = {"Caudate": ["CN"], "Pallidum": ["GPe", "GPi"], "GPe": ["GPe"], "GPi": ["GPi"], "Putamen": ["PUT"],
                 "Thalamus": ["THA"], "Substantia-Nigra": ["SN"], "Red-Nucleus": ["RN"], "Dentate": ["DN"],
                 "Subthalamic-Nucleus": ["STN"]}


def renumber(source: Path, target: Path, names: list[str]) -> None:
    """A package-numbered label map (and its dseg.tsv beside the dataset) in another numbering: sides
    grouped (all left structures first, from 101), names as FreeSurfer writes them."""
    labels, affine = read_volume(source, dtype=np.uint8)
    renumbered = np.zeros_like(labels)
    for side_index, side in enumerate(("Left", "Right")):
        for index, name in enumerate(names):
            for part in PACKAGE_PARTS[name]:
                renumbered[labels == STRUCTURE_BY_NAME[f"{part}_{side[0]}"].label] = 101 + 20 * side_index + index
    save_volume(target, renumbered, affine, np.uint8)


def dataset_lookup(names: list[str]) -> str:
    rows = ["index\tname"] + [f"{101 + 20 * side_index + index}\t{side}-{name}" for side_index, side in
                              enumerate(("Left", "Right")) for index, name in enumerate(names)]
    return "\n".join(rows + ["99\tLeft-Accumbens-area"]) + "\n"


def copy_session(cohort: dict, subject: str, bids: Path, participant: str, session: str | None, swi: bool = True) -> Path:
    """A tiny demo subject's images under another name (MEGRE echoes); returns the new anat folder."""
    source = cohort["bids"] / f"sub-{subject}" / "anat"
    prefix = f"sub-{participant}" + (f"_ses-{session}" if session else "")
    anat = bids / f"sub-{participant}" / (f"ses-{session}" if session else "") / "anat"
    anat.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if "T2starw" in path.name and not swi:
            continue
        shutil.copy(path, anat / path.name.replace(f"sub-{subject}", prefix).replace("T2starw", "MEGRE"))
    return anat


def labels_of(cohort: dict, subject: str, space: str) -> Path:
    return cohort["bids"] / "derivatives" / "labels" / f"sub-{subject}" / "anat" / f"sub-{subject}_space-{space}_dseg.nii.gz"


def write_config(path: Path, **settings) -> Path:
    path.write_text(yaml.safe_dump({"demo": {"enabled": False}, "cohorts": {}, "bids_validator": False, **settings,
                                    "linus_experiments": {"resolution": [], "targets": [], "optimizers": [],
                                                          "slices": []}}))
    return path


def run(tmp_path: Path, config: Path, *arguments: str) -> None:
    finished = snakemake("--cores", "2", "--configfile", str(TINY), str(config), *arguments, cwd=tmp_path)
    assert finished.returncode == 0, finished.stderr[-3000:]


def test_a_longitudinal_dataset_with_unlabelled_and_t1_only_participants(tiny_cohort, tmp_path):
    bids = tmp_path / "clinic"
    labels = tmp_path / "clinic-labels"
    for subject, participant, session, space in (("01", "p01", "pre", "T1w"), ("02", "p01", "post", "T1w"),
                                                 ("03", "p02", "pre", "SWI")):
        copy_session(tiny_cohort, subject, bids, participant, session)
        folder = labels / f"sub-{participant}" / f"ses-{session}" / "anat"
        folder.mkdir(parents=True, exist_ok=True)
        renumber(labels_of(tiny_cohort, subject, space), folder / f"sub-{participant}_ses-{session}_space-{space}_dseg.nii.gz",
                 MERGED)
    (labels / "dseg.tsv").write_text(dataset_lookup(MERGED))
    copy_session(tiny_cohort, "04", bids, "p03", "pre")  # unlabelled
    copy_session(tiny_cohort, "04", bids, "p04", "pre", swi=False)  # a T1 only
    config = write_config(tmp_path / "clinic.yaml", bids_dir=str(bids), labels_dir=str(labels),
                          labels={"ignore": ["Left-Accumbens-area"]}, methods=["atlas", "linus", "linus-t1", "dbresunet"])
    run(tmp_path, config)

    plan = read_json(tmp_path / "results" / "plan" / "dataset.json")
    subjects = plan["subjects"]
    assert {key: subjects[key]["role"] for key in subjects} == {
        "p01_ses-pre": "train", "p01_ses-post": "train", "p02_ses-pre": "test", "p03_ses-pre": "apply",
        "p04_ses-pre": "apply"}
    assert subjects["p01_ses-pre"]["reference_labels"] == {"SWI": "moved from T1w", "T1w": "dataset"}
    assert subjects["p03_ses-pre"]["segmented_by"] == ["atlas", "linus", "linus-t1", "dbresunet"]
    assert subjects["p04_ses-pre"]["segmented_by"] == ["atlas", "linus-t1"] and subjects["p04_ses-pre"]["magnitudes"] == []
    segmentations = tmp_path / "results" / "segmentations"
    for method in ("atlas", "linus", "linus-t1", "dbresunet"):
        for space in ("SWI", "T1w"):  # the unlabelled participant: segmented by every method, on both grids
            assert (segmentations / method / "sub-p03" / "ses-pre" / f"sub-p03_ses-pre_space-{space}_dseg.nii.gz").exists()
    t1_only = sorted(path.name for path in segmentations.glob("*/sub-p04/ses-pre/*_dseg.nii.gz"))
    assert t1_only == ["sub-p04_ses-pre_space-T1w_dseg.nii.gz"] * 2

    # the dataset's labels, matched by name, in the package's numbering; GP is one label there
    lookup = pd.read_csv(tmp_path / "results" / "labels" / "dseg.tsv", sep="\t")
    assert "GP_L" in set(lookup["abbreviation"]) and not {"GPe_L", "GPi_L"} & set(lookup["abbreviation"])
    moved, _ = read_volume(tmp_path / "results" / "labels" / "sub-p01" / "ses-pre" /
                           "sub-p01_ses-pre_space-SWI_desc-moved_dseg.nii.gz", dtype=np.uint8)
    assert set(np.unique(moved)) <= {0, *lookup["index"]}
    truth, _ = read_volume(tiny_cohort["truth"] / "sub-01" / "sub-01_space-SWI_dseg.nii.gz", dtype=np.uint8)
    for name in ("PUT_L", "THA_R"):  # T1-grid labels moved through the registration onto the SWI grid
        mine, theirs = moved == STRUCTURE_BY_NAME[name].label, truth == STRUCTURE_BY_NAME[name].label
        assert 2 * (mine & theirs).sum() / (mine.sum() + theirs.sum()) > 0.8

    overlap = pd.read_csv(tmp_path / "results" / "evaluation" / "overlap.csv", dtype={"subject": str})
    assert set(overlap["subject"]) == {"p02_ses-pre"}  # scored: the test participant only
    atlas = overlap[overlap["method"] == "atlas"].set_index("structure")
    assert "GP_L" in atlas.index and "GPe_L" not in atlas.index
    assert atlas.loc[["PUT_L", "PUT_R", "THA_L", "THA_R", "CN_L", "CN_R", "GP_L", "GP_R"], "dice"].mean() > 0.5
    assert set(overlap.loc[overlap["method"] == "linus-t1", "structure"]) == {"STN_L", "STN_R"}
    dice = pd.read_csv(tmp_path / "results" / "evaluation" / "dice_nuclei.csv").set_index("method")
    assert dice.loc["atlas", "GP"] == pytest.approx(atlas.loc[["GP_L", "GP_R"], "dice"].mean())


def test_the_same_labels_numbered_two_ways_give_the_same_tables(tiny_cohort, tmp_path):
    bids = tmp_path / "bids"
    for subject in ("01", "02"):
        copy_session(tiny_cohort, subject, bids, subject, None)
    numberings = {"package": None, "other": SEPARATE, "merged": MERGED}
    for name, names in numberings.items():
        for subject in ("01", "02"):
            folder = tmp_path / name / f"sub-{subject}" / "anat"
            folder.mkdir(parents=True)
            for space in ("SWI", "T1w"):
                target = folder / f"sub-{subject}_space-{space}_dseg.nii.gz"
                shutil.copy(labels_of(tiny_cohort, subject, space), target) if names is None else \
                    renumber(labels_of(tiny_cohort, subject, space), target, names)
        (tmp_path / name / "dseg.tsv").write_text(dseg_tsv() if names is None else dataset_lookup(names))
    preprocessed = "results/preprocess/sub-02/sub-02_space-SWI_desc-model_dseg.nii.gz"
    results = {}
    for name in numberings:
        config = write_config(tmp_path / f"{name}.yaml", bids_dir=str(bids), labels_dir=str(tmp_path / name),
                              labels={"ignore": ["Left-Accumbens-area"]}, methods=["atlas"])
        run(tmp_path, config, "--", "all", preprocessed)
        overlap = pd.read_csv(tmp_path / "results" / "evaluation" / "overlap.csv", dtype={"subject": str})
        results[name] = {"overlap": overlap.set_index("structure").drop(columns=["subject", "method"]),
                         "labels": read_volume(tmp_path / preprocessed, dtype=np.uint8)[0],
                         "dice": pd.read_csv(tmp_path / "results" / "evaluation" / "dice_nuclei.csv")}
    package, other, merged = results["package"], results["other"], results["merged"]
    np.testing.assert_array_equal(package["labels"], other["labels"])
    pd.testing.assert_frame_equal(package["overlap"], other["overlap"])
    pd.testing.assert_frame_equal(package["dice"], other["dice"])
    # GP merged: the same voxels under one label; every structure but GPe and GPi scores the same
    gp = np.isin(package["labels"], [STRUCTURE_BY_NAME[f"{part}_L"].label for part in ("GPe", "GPi")])
    np.testing.assert_array_equal(merged["labels"] == STRUCTURE_BY_NAME["GP_L"].label, gp)
    assert not {"GPe_L", "GPi_R"} & set(merged["overlap"].index)
    pd.testing.assert_frame_equal(merged["overlap"], package["overlap"].drop(index=[f"{part}_{side}" for part in
                                                                                    ("GPe", "GPi") for side in "LR"]))
    pd.testing.assert_frame_equal(package["dice"], merged["dice"])
    assert package["overlap"].loc[["PUT_L", "THA_L"], "dice"].min() > 0.5


def test_a_dataset_with_no_labels_runs_its_atlas_and_refuses_to_train(tiny_cohort, tmp_path):
    bids = tmp_path / "bids"
    for subject in ("01", "02", "03"):
        copy_session(tiny_cohort, subject, bids, f"s{subject}", "1", swi=subject != "03")
    config = write_config(tmp_path / "unlabelled.yaml", bids_dir=str(bids))
    refused = snakemake("-n", "--configfile", str(TINY), str(config), cwd=tmp_path)
    assert refused.returncode != 0
    assert "models.linus: no training session with reference labels" in refused.stdout + refused.stderr
    run(tmp_path, write_config(tmp_path / "atlas.yaml", bids_dir=str(bids), methods=["atlas"], bids_validator=True))
    report = (tmp_path / "results" / "validation" / "bids_validator.txt").read_text()
    assert report.startswith("BIDS validator") and "errors" in report  # a report, whatever it says
    plan = read_json(tmp_path / "results" / "plan" / "dataset.json")
    assert plan["roles"] == {"train": 0, "validation": 0, "test": 0, "apply": 3}
    for participant in ("s01", "s02", "s03"):
        labels, _ = read_volume(tmp_path / "results" / "segmentations" / "atlas" / f"sub-{participant}" / "ses-1" /
                                f"sub-{participant}_ses-1_space-T1w_dseg.nii.gz", dtype=np.uint8)
        assert {structure.label for structure in STRUCTURES} <= set(np.unique(labels))
    assert not (tmp_path / "results" / "evaluation").exists()


def test_existing_qsm_maps_in_ppm_and_ppb_run_without_phase(tiny_cohort, tmp_path):
    """QSMxT's layout: the maps in <bids_dir>/derivatives/qsmxt, one in ppm (no sidecar: the unit read from its
    values), one in ppb (its sidecar says so); no phase anywhere. The QSM the workflow reads is the given map in
    ppm, and the measures read it. A map in another unit stops the run at its validation, naming it."""
    bids = tmp_path / "bids"
    qsmxt = bids / "derivatives" / "qsmxt"
    truths = {}
    for subject, unit in (("01", "ppm"), ("02", "ppb")):
        for phase in copy_session(tiny_cohort, subject, bids, subject, None).glob("*_part-phase_*"):
            phase.unlink()
        truths[subject], affine = read_volume(tiny_cohort["truth"] / f"sub-{subject}" / f"sub-{subject}_space-SWI_Chimap.nii.gz")
        chimap = save_volume(qsmxt / f"sub-{subject}" / "anat" / f"sub-{subject}_Chimap.nii.gz",
                             truths[subject] * (1000 if unit == "ppb" else 1), affine, np.float32)
        if unit == "ppb":
            chimap.with_name(f"sub-{subject}_Chimap.json").write_text(json.dumps({"Units": "ppb"}))
    config = write_config(tmp_path / "existing.yaml", bids_dir=str(bids), methods=["atlas"],
                          qsm={"input": "existing", "existing_dir": str(qsmxt)})
    run(tmp_path, config)

    results = tmp_path / "results"
    for subject, unit in (("01", "ppm"), ("02", "ppb")):
        stem = results / "qsm" / f"sub-{subject}" / f"sub-{subject}_space-SWI_desc-existing_Chimap"
        np.testing.assert_allclose(read_volume(f"{stem}.nii.gz")[0], truths[subject], rtol=1e-6, atol=1e-9)
        record = read_json(f"{stem}.json")
        assert (record["Units"], record["SourceUnits"]) == ("ppm", unit)
        assert (results / "qc" / "qsm" / f"sub-{subject}" / f"sub-{subject}_desc-existing_qsm.png").exists()
    assert not (results / "logs" / "qsm_sharptv").exists()  # nothing reconstructed
    table = pd.read_csv(results / "measures" / "nuclei.tsv", sep="\t", na_values=["n/a"], keep_default_na=False)
    row = table[(table["participant_id"] == "sub-02") & (table["method"] == "atlas") & (table["structure"] == "THA_L")]
    labels, _ = read_volume(results / "segmentations" / "atlas" / "sub-02" / "sub-02_space-SWI_dseg.nii.gz")
    thalamus = truths["02"][labels == STRUCTURE_BY_NAME["THA_L"].label].astype(float)
    assert row["chi_mean_ppb"].iloc[0] == pytest.approx(1000 * thalamus.mean(), abs=1e-3)

    # a map in neither unit (its 99th percentile of |chi| made 5): refused before anything else starts
    wrong = tmp_path / "wrong"
    chimap = qsmxt / "sub-02" / "anat" / "sub-02_Chimap.nii.gz"
    chimap.with_name("sub-02_Chimap.json").unlink()
    inside = truths["02"][truths["02"] != 0]
    save_volume(chimap, truths["02"] * 5 / np.percentile(np.abs(inside), 99), affine, np.float32)
    wrong.mkdir()
    refused = snakemake("--cores", "2", "--configfile", str(TINY), str(config), "--",
                        "results/qsm/sub-02/sub-02_space-SWI_desc-existing_Chimap.nii.gz", cwd=wrong)
    assert refused.returncode != 0
    log = (wrong / "results" / "logs" / "validate_inputs" / "sub-02" / "sub-02.log").read_text()
    assert f"bad input: {chimap}: the 99th percentile of |chi| over the brain is 5: neither ppm nor ppb" in log
    assert {path.parts[-3] for path in (wrong / "results" / "logs").glob("*/*/*.log")} == {"validate_inputs"}
