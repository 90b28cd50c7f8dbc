"""An existing QSM map as input (config qsm.input): its unit found from the sidecar or the values, a map in
another unit refused in one line naming it, and the plan that uses it instead of the phase."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from deepnuclei.cli import main
from deepnuclei.io import InputError, read_json, read_volume, save_volume
from deepnuclei.plan import PlanError, make_plan
from deepnuclei.qsm.existing import UNSTATED_REFERENCE, existing_qsm_unit, import_existing_qsm
from helpers.datasets import SWI_AFFINE, SWI_SHAPE, config_for, touch, write_session, write_subject


def brain_chi_ppm(shape=SWI_SHAPE, seed: int = 0) -> np.ndarray:
    """A susceptibility map as QSM tools write it: zero outside a ball, about 0.05 ppm spread inside."""
    grid = np.indices(shape) - (np.asarray(shape) / 2 - 0.5)[:, None, None, None]
    inside = np.sum((grid / (np.asarray(shape)[:, None, None, None] / 2.5)) ** 2, axis=0) < 1
    return np.where(inside, np.random.default_rng(seed).normal(0.02, 0.05, shape), 0).astype(np.float32)


def write_chimap(path: Path, chi: np.ndarray, **sidecar) -> Path:
    save_volume(path, chi, SWI_AFFINE, np.float32)
    if sidecar:
        path.with_name(path.name.replace(".nii.gz", ".json")).write_text(json.dumps(sidecar))
    return path


@pytest.mark.parametrize("scale, unit", [(1.0, "ppm"), (1000.0, "ppb")])
def test_the_unit_is_read_from_the_values_without_a_sidecar(tmp_path, scale, unit):
    path = write_chimap(tmp_path / "sub-01_Chimap.nii.gz", brain_chi_ppm() * scale)
    found = existing_qsm_unit(path, read_volume(path)[0])
    assert found["unit"] == unit and found["unit_from"] == "the values' range (no Units in a sidecar)"
    assert found["reference"] == UNSTATED_REFERENCE and 0.02 < found["abs_p99"] / scale < 2


def test_the_sidecar_states_the_unit_and_the_reference(tmp_path):
    path = write_chimap(tmp_path / "sub-01_Chimap.nii.gz", brain_chi_ppm() * 1000, Units="ppb", Reference="CSF")
    found = existing_qsm_unit(path, read_volume(path)[0])
    assert (found["unit"], found["reference"]) == ("ppb", "CSF") and found["unit_from"].startswith("sidecar Units")


def test_a_map_in_another_unit_is_refused_naming_it(tmp_path):
    path = write_chimap(tmp_path / "sub-01_Chimap.nii.gz", brain_chi_ppm() * 20)  # e.g. a field map in Hz
    with pytest.raises(InputError, match=r"Chimap.nii.gz: the 99th percentile of \|chi\| over the brain is [\d.]+: "
                                         r"neither ppm nor ppb \(0.02-2 in ppm or 20-2000 in ppb expected\); convert it"):
        existing_qsm_unit(path, read_volume(path)[0])
    write_chimap(path, brain_chi_ppm(), Units="ppb")  # ppm values, the sidecar says ppb
    with pytest.raises(InputError, match=r"Chimap.nii.gz: its sidecar states Units ppb, but the 99th percentile"):
        existing_qsm_unit(path, read_volume(path)[0])
    write_chimap(path, brain_chi_ppm(), Units="rad")
    with pytest.raises(InputError, match=r"sub-01_Chimap.json: Units 'rad': a QSM map is read in ppm or ppb"):
        existing_qsm_unit(path, read_volume(path)[0])


def test_validation_checks_the_map_and_the_workflow_reads_it_in_ppm(tmp_path, caplog):
    """`deepnuclei validate-inputs --chimap` (no phases): one line naming a wrong map; a good one is recorded,
    and `deepnuclei existing-qsm` writes it in ppm with NaN (outside the brain, as some tools write) as 0."""
    files = write_subject(tmp_path / "bids", "01")
    chimap = tmp_path / "bids" / "sub-01" / "anat" / "sub-01_Chimap.nii.gz"
    chi = brain_chi_ppm()

    def validate() -> int:
        return main(["validate-inputs", "--t1", str(files["t1"]), "--magnitudes", str(files["mag1"]), str(files["mag2"]),
                     "--chimap", str(chimap), "--out", str(tmp_path / "record.json")])

    write_chimap(chimap, chi * 40)  # p99 about 6: neither unit
    with caplog.at_level(logging.ERROR, logger="deepnuclei"):
        assert validate() == 2
    [message] = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert message.startswith(f"bad input: {chimap}: the 99th percentile of |chi| over the brain is ") and "\n" not in message
    write_chimap(chimap, np.where(chi == 0, np.nan, chi * 1000))
    assert validate() == 0
    checked = read_json(tmp_path / "record.json")["existing_qsm"]
    assert checked["unit"] == "ppb" and checked["non_finite_voxels"] == int(np.sum(chi == 0))
    out = tmp_path / "qsm"
    record = import_existing_qsm(checked, [files["mag1"], files["mag2"]], out / "chi.nii.gz", out / "chi.json", out / "qc.png",
                                 ["bids:raw:derivatives/qsmxt/sub-01/anat/sub-01_Chimap.nii.gz"])
    np.testing.assert_allclose(read_volume(out / "chi.nii.gz")[0], chi, atol=1e-6)
    assert record["Units"] == "ppm" and record["SourceUnits"] == "ppb" and (out / "qc.png").stat().st_size > 10_000
    assert read_json(out / "chi.json")["Sources"] == ["bids:raw:derivatives/qsmxt/sub-01/anat/sub-01_Chimap.nii.gz"]


def test_the_plan_uses_existing_maps_instead_of_the_phase(tmp_path):
    bids = tmp_path / "bids"
    for participant in ("01", "02", "03"):
        write_session(bids, participant, labels=("SWI",))
    qsmxt = bids / "derivatives" / "qsmxt"
    for participant in ("01", "02"):
        touch(qsmxt / f"sub-{participant}" / "anat" / f"sub-{participant}_run-1_Chimap.nii.gz")
    (bids / "sub-02" / "anat" / "sub-02_echo-3_part-phase_T2starw.nii.gz").unlink()  # its phase is not needed
    auto = make_plan(config_for(bids, tmp_path, qsm={"input": "auto", "existing_dir": str(qsmxt)}, methods=["atlas"]))
    first, third = auto.sessions["01"], auto.sessions["03"]
    assert first.chimap.endswith("derivatives/qsmxt/sub-01/anat/sub-01_run-1_Chimap.nii.gz") and first.phases == []
    assert len(first.magnitudes) == 3 and third.chimap is None and len(third.phases) == 3
    assert auto.qsm_map("01").endswith("sub-01_space-SWI_desc-existing_Chimap.nii.gz")
    assert auto.qsm_map("03").endswith("sub-03_space-SWI_desc-sharptv_Chimap.nii.gz")
    assert auto.measures_case("atlas", "01").qsm == auto.qsm_map("01")
    assert auto.qsm_reference() == "existing"  # the test session 02 reads its own map: the figures say so
    with pytest.raises(PlanError, match=r"sub-03: no existing QSM map \(_Chimap\) in .*qsmxt and qsm.input is existing"):
        make_plan(config_for(bids, tmp_path, qsm={"input": "existing", "existing_dir": str(qsmxt)}, methods=["atlas"]))
    for name in ("T2starw.nii.gz", "T2starw.json"):  # a map without its magnitude: no grid to register the T1 to
        for path in (bids / "sub-01" / "anat").glob(f"*{name}"):
            path.unlink()
    with pytest.raises(PlanError, match=r"sub-01_run-1_Chimap.nii.gz: an existing QSM map needs the SWI magnitude"):
        make_plan(config_for(bids, tmp_path, qsm={"input": "auto", "existing_dir": str(qsmxt)}, methods=["atlas"]))


def test_maps_in_the_dataset_are_noted_when_reconstructing(tmp_path):
    bids = tmp_path / "bids"
    for participant in ("01", "02"):
        write_session(bids, participant, labels=("SWI",))
    touch(bids / "sub-01" / "anat" / "sub-01_Chimap.nii.gz")
    plan = make_plan(config_for(bids, tmp_path, methods=["atlas"]))
    assert plan.sessions["01"].chimap is None
    assert plan.notes == [f"1 existing QSM maps (_Chimap, e.g. {bids / 'sub-01' / 'anat' / 'sub-01_Chimap.nii.gz'}) are "
                          f"not used: qsm.input is reconstruct (auto or existing uses them)"]
    auto = make_plan(config_for(bids, tmp_path, qsm={"input": "auto"}, methods=["atlas"]))
    assert auto.sessions["01"].chimap.endswith("sub-01_Chimap.nii.gz") and auto.notes == []


def test_a_bundled_model_reading_existing_maps_is_noted(tmp_path):
    bids = tmp_path / "bids"
    for participant in ("01", "02"):
        write_session(bids, participant)
    touch(bids / "sub-01" / "anat" / "sub-01_Chimap.nii.gz")
    plan = make_plan(config_for(bids, tmp_path, qsm={"input": "auto"}, models={"dbresunet": {"bundle": "pretrained:dbresunet"}},
                                methods=["dbresunet"], splits={"train": 0, "validation": 0, "test": "all"},
                                ablations={"rates": [], "inputs": []}))
    assert [note.split(": ", 1)[1] for note in plan.notes] == [
        "model dbresunet was trained on this workflow's QSM and reads existing maps (qsm.input) in 1 of its sessions: "
        "another reconstruction can shift its input"]
