"""The bad-input corpus. Each case spoils one file of a small valid subject; `deepnuclei validate-inputs`
(what the workflow's validate_inputs rule runs, before QSM and registration) must then fail with exit
code 2 and one line, "bad input: <that file>: <the problem>". Then the workflow itself: a bad file or a
missing one stops Snakemake before any heavy rule, and a config value of the wrong type stops it at
once, naming the key."""

from __future__ import annotations

import json
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import nibabel as nib
import numpy as np
import pytest
import yaml

from deepnuclei.cli import main
from deepnuclei.io import InputError, read_json, read_volume, save_volume
from deepnuclei.labels import STRUCTURE_BY_NAME, STRUCTURES
from deepnuclei.qsm.inputs import phase_in_radians
from deepnuclei.validate import validate_subject
from helpers.datasets import ECHO_TIMES, SWI_AFFINE, T1_SHAPE, write_subject
from helpers.runs import snakemake


def validate(files: dict[str, Path], record: Path, with_labels: bool = True) -> int:
    """`deepnuclei validate-inputs` on a subject; without labels, their options are passed empty, as the
    workflow passes them for a dataset that has none."""
    labels = {"--swi-labels": files["labels_SWI"], "--t1-labels": files["labels_T1w"], "--lookup": files["lookup"]}
    options = [part for option, path in labels.items() for part in (option, *([str(path)] if with_labels else []))]
    return main(["validate-inputs", "--t1", str(files["t1"]), "--magnitudes", str(files["mag1"]), str(files["mag2"]),
                 "--phases", str(files["phase1"]), str(files["phase2"]), "--sidecars", str(files["json1"]),
                 str(files["json2"]), *options, "--out", str(record)])


# ---- ways to spoil a file

def voxels(path: Path) -> np.ndarray:
    return read_volume(path, allow_nan=True)[0]


def resave(path: Path, data: np.ndarray | None = None, affine: np.ndarray | None = None, dtype: type = np.float32) -> None:
    image = nib.load(path)
    save_volume(path, voxels(path) if data is None else data, image.affine if affine is None else affine, dtype)


def set_voxels(path: Path, index: tuple, value: float, dtype: type = np.float32) -> None:
    data = voxels(path)
    data[index] = value
    resave(path, data, dtype=dtype)


def edit_sidecar(path: Path, **changes) -> None:
    sidecar = {**json.loads(path.read_text()), **changes}
    path.write_text(json.dumps({key: value for key, value in sidecar.items() if value is not None}))


def as_4d(path: Path) -> None:
    nib.save(nib.Nifti1Image(np.stack([voxels(path)] * 2, axis=-1), nib.load(path).affine), path)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def as_real_part(path: Path) -> None:
    """A magnitude replaced by the real part of its complex signal: about half the voxels negative."""
    magnitude = voxels(path)
    resave(path, magnitude * np.cos(np.arange(magnitude.size).reshape(magnitude.shape)))


def to_16_bit(path: Path) -> None:
    """Phase as unsigned 16-bit scanner integers: no range the pipeline knows how to rescale."""
    resave(path, np.round((voxels(path) + np.pi) / (2 * np.pi) * 65535), dtype=np.uint16)


STN_L = STRUCTURE_BY_NAME["STN_L"].label


@dataclass(frozen=True)
class Case:
    name: str
    file: str  # the role of the file spoilt, which the message must name
    spoil: Callable[[Path], None]
    problem: str  # regular expression the message must match after the file name


CORPUS = [
    Case("missing-file", "t1", Path.unlink, "file does not exist"),
    Case("mag-phase-shape-mismatch", "phase2", lambda p: resave(p, voxels(p)[:, :, :-1]),
         r"shape \(16, 16, 7\) differs from \(16, 16, 8\)"),
    Case("affine-mismatch", "mag2", lambda p: resave(p, affine=np.diag([2.5, 2.5, 2.0, 1.0])), "affine differs"),
    Case("phase-in-scanner-integers", "phase1", to_16_bit,
         r"phase values span \[\d+, 6\.55\de\+04\]: expected radians in \[-pi, pi\] or integer scanner units"),
    Case("missing-echo-time", "json2", lambda p: edit_sidecar(p, EchoTime=None), "missing EchoTime"),
    Case("zero-echo-time", "json1", lambda p: edit_sidecar(p, EchoTime=0), r"EchoTime must be .* got 0$"),
    Case("echo-time-in-milliseconds", "json2", lambda p: edit_sidecar(p, EchoTime=20), r"EchoTime must be .* got 20$"),
    Case("sidecar-not-json", "json1", lambda p: p.write_text("{EchoTime: 0.01"), "not valid JSON"),
    Case("nan-voxels", "mag1", lambda p: set_voxels(p, (0, 0, slice(0, 3)), np.nan), "3 voxels are NaN or infinite"),
    Case("all-zero-image", "t1", lambda p: resave(p, np.zeros(T1_SHAPE)), "all voxels are zero$"),
    Case("4d-where-3d-expected", "phase2", as_4d, r"expected a 3D image, got shape \(16, 16, 8, 2\)"),
    Case("truncated-gzip", "mag2", truncate, "image data cannot be read"),
    Case("real-part-as-magnitude", "mag1", as_real_part,
         r"^\d+ voxels are negative \(min -[\d.]+\): a magnitude image has none \(a real or imaginary part given "
         r"as magnitude\?\)$"),
    Case("label-outside-lookup", "labels_SWI", lambda p: set_voxels(p, (-1, -1, -1), 99, np.uint8),
         r"label values \[99\] are not in the lookup table .*dseg\.tsv$"),
    Case("empty-structure", "labels_T1w", lambda p: resave(p, np.where(voxels(p) == STN_L, 0, voxels(p)), dtype=np.uint8),
         rf"no voxels labelled STN_L \({STN_L}\), listed in .*dseg\.tsv$"),
    Case("unknown-structure-name", "lookup", lambda p: p.write_text(p.read_text() + "28\tLeft-VentralDC\n"),
         r"label 28 'Left-VentralDC' names no structure deepnuclei knows: expected one of CN_L, .*labels\.ignore$"),
    Case("fractional-labels", "labels_SWI", lambda p: set_voxels(p, (-1, -1, -1), 0.5), "label values are not integers$"),
    Case("labels-on-another-grid", "labels_SWI", lambda p: resave(p, affine=SWI_AFFINE * 2, dtype=np.uint8),
         "affine differs from that of .*echo-1_part-mag"),
]


@pytest.fixture
def subject(tmp_path) -> dict[str, Path]:
    return write_subject(tmp_path / "bids", "01")


def test_the_corpus_subject_is_valid_and_recorded(subject, tmp_path):
    assert validate(subject, tmp_path / "record.json") == 0
    record = read_json(tmp_path / "record.json")
    assert record["echo_times_s"] == list(ECHO_TIMES) and record["b0_tesla"] == 3.0
    assert record["label_voxels"]["SWI"] == {structure.name: 10 for structure in STRUCTURES}
    assert record["notes"] == []


def test_12_bit_scanner_phase_passes_with_a_note(subject, tmp_path):
    phase = subject["phase1"]
    resave(phase, np.round((voxels(phase) + np.pi) / (2 * np.pi) * 4095), dtype=np.uint16)
    assert validate(subject, tmp_path / "record.json") == 0
    [note] = read_json(tmp_path / "record.json")["notes"]
    assert note.startswith(f"{phase}: phase in scanner units [0, 4095]")


def test_a_dataset_without_labels_is_checked_without_them(subject, tmp_path):
    assert validate(subject, tmp_path / "record.json", with_labels=False) == 0
    assert read_json(tmp_path / "record.json")["label_voxels"] == {}


def test_structures_outside_a_partial_field_of_view_may_be_absent(subject, tmp_path):
    resave(subject["labels_T1w"], np.where(voxels(subject["labels_T1w"]) == STN_L, 0, voxels(subject["labels_T1w"])),
           dtype=np.uint8)
    assert validate(subject, tmp_path / "spoilt.json") == 2
    files = {"SWI": subject["labels_SWI"], "T1w": subject["labels_T1w"]}
    record = validate_subject(subject["t1"], [subject["mag1"], subject["mag2"]], [subject["phase1"], subject["phase2"]],
                              [subject["json1"], subject["json2"]], files, subject["lookup"], outside_view=["STN_L"])
    assert "STN_L" not in record["label_voxels"]["T1w"] and record["label_voxels"]["SWI"]["STN_L"] > 0


def test_without_a_dseg_tsv_the_packages_table_applies(subject):
    set_voxels(subject["labels_SWI"], (-1, -1, -1), 99, np.uint8)
    with pytest.raises(InputError, match=r"label values \[99\] are not in the lookup table deepnuclei.labels$"):
        validate_subject(subject["t1"], [subject["mag1"], subject["mag2"]], [subject["phase1"], subject["phase2"]],
                         [subject["json1"], subject["json2"]], {"SWI": subject["labels_SWI"]})


def test_structures_deepnuclei_does_not_segment_are_ignored_by_name(subject):
    subject["lookup"].write_text(subject["lookup"].read_text() + "28\tLeft-VentralDC\n29\tLeft-Hippocampus\n")
    set_voxels(subject["labels_SWI"], (-1, -1, -1), 28, np.uint8)  # the hippocampus may then be absent too
    record = validate_subject(subject["t1"], [subject["mag1"], subject["mag2"]], [subject["phase1"], subject["phase2"]],
                              [subject["json1"], subject["json2"]], {"SWI": subject["labels_SWI"]}, subject["lookup"],
                              ignore=["Left-VentralDC", "left hippocampus"])
    assert record["structures"] == [structure.name for structure in STRUCTURES]
    assert record["label_voxels"]["SWI"]["Left-VentralDC"] == 1


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_bad_input_fails_with_one_line_naming_the_file(case, subject, tmp_path, caplog):
    case.spoil(subject[case.file])
    with caplog.at_level(logging.ERROR, logger="deepnuclei"):
        assert validate(subject, tmp_path / "record.json") == 2
    [message] = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    prefix = f"bad input: {subject[case.file]}: "
    assert message.startswith(prefix), message
    assert re.search(case.problem, message[len(prefix):]), message
    assert "\n" not in message
    assert not (tmp_path / "record.json").exists()


# ---- the workflow: bad input stops it before any heavy rule

@pytest.fixture
def dataset(tmp_path) -> tuple[Path, dict[str, Path]]:
    """Two subjects on disk and a config that reads them (no demo); returns the config and sub-02's files."""
    bids = tmp_path / "bids"
    write_subject(bids, "01")
    files = write_subject(bids, "02")
    config = tmp_path / "dataset.yaml"
    config.write_text(yaml.safe_dump({"bids_dir": str(bids), "demo": {"enabled": False}, "bids_validator": False,
                                      "splits": {"train": 1, "validation": 0, "test": 1}}))
    return config, files


HEAVY_TARGETS = ["results/registration/sub-02/sub-02_space-SWI_T1w.nii.gz", "results/qc/qsm/sub-02/sub-02_desc-sharptv_qsm.png"]


@pytest.mark.slow  # a Snakemake run (its validation jobs)
def test_a_bad_file_stops_the_workflow_before_qsm_and_registration(dataset, tmp_path):
    config, files = dataset
    to_16_bit(files["phase1"])
    run = snakemake("--cores", "2", "--configfile", str(config), "--", *HEAVY_TARGETS, cwd=tmp_path)
    assert run.returncode != 0
    log = (tmp_path / "results" / "logs" / "validate_inputs" / "sub-02" / "sub-02.log").read_text()
    assert f"bad input: {files['phase1']}: phase values span" in log
    started = {path.parts[-3] for path in (tmp_path / "results" / "logs").glob("*/*/*.log")}
    assert started <= {"validate_inputs", "validate_labels"}


def test_a_missing_file_stops_the_workflow_before_any_job(dataset, tmp_path):
    config, files = dataset
    sidecar = files["phase1"].with_name(files["phase1"].name.replace(".nii.gz", ".json"))
    sidecar.unlink()
    run = snakemake("--cores", "2", "--configfile", str(config), "--", *HEAVY_TARGETS, cwd=tmp_path)
    assert run.returncode != 0
    assert "Missing input files for rule validate_inputs" in run.stderr
    assert str(sidecar) in run.stderr
    assert not (tmp_path / "results" / "logs").exists()


def test_a_config_value_of_the_wrong_type_stops_snakemake_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text('registration:\n  iterations: "100"\n')
    run = snakemake("-n", "--configfile", str(bad), cwd=tmp_path)
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "'100' is not of type 'integer'" in output
    assert "['registration']['iterations']" in output


# ---- a magnitude image given as phase (two files of one echo swapped) is refused; real phases pass

def demo_echo(demo_subject, part: str, echo: int = 2) -> np.ndarray:
    return voxels(demo_subject["bids"] / "sub-01" / "anat" / f"sub-01_echo-{echo}_part-{part}_T2starw.nii.gz")


def scaled(data: np.ndarray, low: float, high: float) -> np.ndarray:
    return low + (data - data.min()) / (data.max() - data.min()) * (high - low)


@pytest.mark.parametrize("stored", ["as stored", "radians", "scanner"])
def test_a_magnitude_given_as_phase_is_refused(demo_subject, stored):
    """As the demo stores it (integers up to about 2100), scaled into [0, 3] (radians) and to fill 0..4095."""
    magnitude = demo_echo(demo_subject, "mag")
    as_phase = {"as stored": magnitude, "radians": scaled(magnitude, 0, 3.0),
                "scanner": np.round(scaled(magnitude, 0, 4095))}[stored]
    refused = r"m.nii.gz: looks like a magnitude image, not a phase: values in \[0, [\d.]+\] \(all >= 0\)"
    with pytest.raises(InputError, match=refused):
        phase_in_radians(as_phase, "m.nii.gz")


def test_a_magnitude_given_as_phase_stops_validation_naming_the_file(subject, demo_subject, tmp_path, caplog):
    magnitude = demo_echo(demo_subject, "mag")[:16, :16, :8]
    resave(subject["phase2"], np.round(scaled(magnitude, 0, 4095)), dtype=np.uint16)
    with caplog.at_level(logging.ERROR, logger="deepnuclei"):
        assert validate(subject, tmp_path / "record.json") == 2
    assert f"bad input: {subject['phase2']}: looks like a magnitude image" in caplog.text


@pytest.mark.parametrize("masked", [False, True], ids=["whole", "masked"])
@pytest.mark.parametrize("units", ["radians", "0..4095", "-4096..4095"])
@pytest.mark.parametrize("echo", [1, 2])
def test_real_phases_pass(demo_subject, echo, units, masked):
    """Zeros outside the brain mask are left out; the first echo masked, little wrapped, leaves both ends of
    the range nearly empty, yet passes."""
    phase = demo_echo(demo_subject, "phase", echo)
    mask = voxels(demo_subject["truth"] / "sub-01" / "sub-01_space-SWI_mask.nii.gz") > 0
    low, high = {"radians": (-np.pi, np.pi), "0..4095": (0, 4095), "-4096..4095": (-4096, 4095)}[units]
    stored = phase if units == "radians" else np.round((phase + np.pi) / (2 * np.pi) * (high - low) + low)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the note on scanner units
        radians = phase_in_radians(np.where(mask, stored, 0) if masked else stored, "p.nii.gz")
    step = 0 if units == "radians" else 2 * np.pi / 4096  # scanner units: within two steps of 12 bits
    assert np.abs(np.angle(np.exp(1j * (radians - phase)))[mask]).max() <= 2 * step + 1e-6
