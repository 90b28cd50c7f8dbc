"""The QSM pipeline end to end on an analytic phantom, and `run_qsm` on files: outputs, and every bad
input failing with the file named before any heavy step."""

import json

import numpy as np
import pytest

from deepnuclei.io import InputError, read_volume, save_volume
from deepnuclei.qsm import pipeline
from deepnuclei.qsm.phantom import simulate_gre, sphere_phantom, voxel_centres_mm
from deepnuclei.qsm.inputs import phase_in_radians
from deepnuclei.qsm.pipeline import QSMParams, reconstruct, run_qsm

VOXEL = (1.25, 1.25, 1.75)
TILT = np.deg2rad(15)
ECHO_TIMES = (0.005, 0.010, 0.015)


def oblique_affine(voxel=VOXEL):
    """Slab angulated by 15 degrees about the first axis: B0 (world z) is oblique in voxel axes."""
    rotation = np.array([[1, 0, 0], [0, np.cos(TILT), -np.sin(TILT)], [0, np.sin(TILT), np.cos(TILT)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag(voxel)
    return affine


@pytest.fixture(scope="module")
def acquisition():
    phantom = sphere_phantom((48, 48, 36), VOXEL, b0_direction=(0.0, np.sin(TILT), np.cos(TILT)))
    magnitudes, phases = simulate_gre(phantom.total_field, phantom.brain_mask, ECHO_TIMES, 3.0, noise=0.01)
    return phantom, magnitudes, phases


def sphere_means(phantom, result):
    valid = result["mask"]
    chi = result["chi"] - result["chi"][valid & (phantom.labels == 0)].mean()
    return np.array([chi[(phantom.labels == label) & valid].mean() for label in range(1, 5)])


@pytest.mark.parametrize(("params", "relative_bar"), [(QSMParams(), 0.25), (QSMParams(inversion="tkd"), 0.4)])
def test_reconstruct_recovers_sphere_susceptibility(acquisition, params, relative_bar):
    phantom, magnitudes, phases = acquisition
    result = reconstruct(magnitudes, phases, ECHO_TIMES, 3.0, oblique_affine(), params)
    np.testing.assert_allclose(sphere_means(phantom, result), phantom.nuclei_chi_ppm, rtol=relative_bar)
    assert set(result["timings_s"]) == {"mask", "unwrap", "echo_fit", "background", "inversion"}
    assert not np.any(result["mask"] & ~result["brain_mask"])
    assert result["chi"][result["mask"]].mean() == pytest.approx(0.0, abs=1e-6)  # referenced to the mask


def test_a_field_of_view_inside_the_brain_needs_the_signal_mask():
    """A slab with no air around it (the hires cohort's): Otsu splits the bias-shaded tissue in two, the
    signal mask keeps all of it and the spheres' susceptibilities come back."""
    phantom = sphere_phantom((48, 48, 36), VOXEL, brain_fraction=0.8)  # the brain fills the box
    magnitudes, phases = simulate_gre(phantom.total_field, phantom.brain_mask, ECHO_TIMES, 3.0, noise=0.01)
    affine = np.diag([*VOXEL, 1.0])
    otsu = reconstruct(magnitudes, phases, ECHO_TIMES, 3.0, affine, QSMParams(mask="magnitude"))
    assert otsu["brain_mask"].sum() < 0.6 * phantom.brain_mask.sum()
    result = reconstruct(magnitudes, phases, ECHO_TIMES, 3.0, affine, QSMParams(mask="signal"))
    assert result["brain_mask"].sum() > 0.95 * phantom.brain_mask.sum()
    np.testing.assert_allclose(sphere_means(phantom, result), phantom.nuclei_chi_ppm, rtol=0.2, atol=0.01)


def test_reference_region_sets_the_zero(acquisition):
    phantom, magnitudes, phases = acquisition
    region = phantom.labels == 4
    result = reconstruct(magnitudes, phases, ECHO_TIMES, 3.0, oblique_affine(),
                         QSMParams(inversion="tkd", reference="region"), reference_region=region)
    assert result["chi"][region & result["mask"]].mean() == pytest.approx(0.0, abs=1e-6)


def test_params_reject_unknown_keys_and_methods():
    with pytest.raises(ValueError, match="tv_alfa"):
        QSMParams.from_config({"tv_alfa": 1e-4})
    with pytest.raises(ValueError, match="qsm.inversion"):
        QSMParams(inversion="medi")
    with pytest.raises(ValueError, match="qsm.mask"):
        QSMParams(mask="otsu")
    assert QSMParams.from_config({"vsharp_radii_mm": [8, 4]}).vsharp_radii_mm == (8.0, 4.0)


# ---- files ---------------------------------------------------------------------------------------


@pytest.fixture
def bids(tmp_path):
    """Two echoes of a small phantom as BIDS files; returns the path lists and the output paths."""
    phantom = sphere_phantom((32, 32, 24), (2.0, 2.0, 2.5))
    magnitudes, phases = simulate_gre(phantom.total_field, phantom.brain_mask, ECHO_TIMES[:2], 3.0)
    affine = np.diag([2.0, 2.0, 2.5, 1.0])
    paths = {"mag": [], "phase": [], "json": []}
    for echo, (magnitude, phase, echo_time) in enumerate(zip(magnitudes, phases, ECHO_TIMES), start=1):
        stem = tmp_path / f"sub-01_echo-{echo}_part-"
        paths["mag"].append(save_volume(f"{stem}mag_T2starw.nii.gz", 1000 * magnitude, affine, np.int16))
        paths["phase"].append(save_volume(f"{stem}phase_T2starw.nii.gz", phase, affine, np.float32))
        sidecar = tmp_path / f"sub-01_echo-{echo}_part-phase_T2starw.json"
        sidecar.write_text(json.dumps({"EchoTime": echo_time, "MagneticFieldStrength": 3.0}))
        paths["json"].append(sidecar)
    outputs = [tmp_path / "out" / name for name in ("chi.nii.gz", "mask.nii.gz", "field.nii.gz", "qc.png")]
    return paths, outputs, affine


def run(paths, outputs, **kwargs):
    return run_qsm(paths["mag"], paths["phase"], paths["json"], *outputs, QSMParams(inversion="tkd"), **kwargs)


def test_run_qsm_writes_the_maps_and_the_qc_figure(bids):
    paths, outputs, affine = bids
    result = run(paths, outputs)
    chi, chi_affine = read_volume(outputs[0])
    np.testing.assert_allclose(chi_affine, affine)
    assert np.array_equal(read_volume(outputs[1])[0] > 0, result["mask"])
    assert read_volume(outputs[2])[0].shape == chi.shape
    assert outputs[3].stat().st_size > 10_000


def test_qsm_record_holds_the_qc_measures_and_a_shaded_map_warns(bids, tmp_path, caplog, monkeypatch):
    paths, outputs, _ = bids
    record = tmp_path / "out" / "chi.json"
    result = run(paths, outputs, out_record=record)
    written = json.loads(record.read_text())
    assert written["Units"] == "ppm" and written["Settings"]["inversion"] == "tkd"
    assert written["QC"] == result["qc"] and written["QC"]["warnings"] == []
    assert 0.3 < written["QC"]["brain_kept_fraction"] <= 1.0
    # a quadratic shading of 50 ppb rms on top of the same map is measured and warned about
    chi, valid = result["chi"], result["mask"]
    x, y, z = np.moveaxis(voxel_centres_mm(chi.shape, (2.0, 2.0, 2.5)), -1, 0)
    shading = x**2 + y**2 - 2 * z**2
    shading = 0.05 * shading / shading[valid].std()
    shaded = pipeline.quality_control(chi + shading, valid, result["brain_mask"], (2.0, 2.0, 2.5))
    assert abs(shaded["shading_ppb"] - 50.0) <= result["qc"]["shading_ppb"] + 1.0
    assert len(shaded["warnings"]) == 1 and "shading" in shaded["warnings"][0]
    # run_qsm logs each warning with the map's path
    monkeypatch.setattr(pipeline, "MAX_SHADING_PPB", 0.0)
    run(paths, outputs, out_record=record)
    assert any(str(outputs[0]) in message and "shading" in message for message in caplog.messages)
    assert json.loads(record.read_text())["QC"]["warnings"]


@pytest.fixture
def no_heavy_work(monkeypatch):
    """Reaching the reconstruction means the input check came too late."""

    def refuse(*args, **kwargs):
        raise AssertionError("input checks must fail before reconstruction")

    monkeypatch.setattr(pipeline, "reconstruct", refuse)


def rewrite(path, data=None, affine=None, dtype=np.float32):
    volume, original_affine = read_volume(path, allow_nan=True)
    save_volume(path, volume if data is None else data, original_affine if affine is None else affine, dtype)


def edit_sidecar(path, **changes):
    sidecar = json.loads(path.read_text())
    sidecar.update(changes)
    path.write_text(json.dumps({key: value for key, value in sidecar.items() if value is not None}))


@pytest.mark.parametrize(
    ("corrupt", "file_kind", "problem"),
    [
        (lambda p: edit_sidecar(p["json"][1], EchoTime=None), "json", "missing EchoTime"),
        (lambda p: edit_sidecar(p["json"][0], MagneticFieldStrength=None), "json", "missing MagneticFieldStrength"),
        (lambda p: edit_sidecar(p["json"][1], EchoTime=10.0), "json", "EchoTime"),
        (lambda p: rewrite(p["phase"][1], 3 * read_volume(p["phase"][1])[0]), "phase", "expected radians"),
        (lambda p: rewrite(p["phase"][0], read_volume(p["phase"][0])[0][:, :, :-1]), "phase", "shape"),
        (lambda p: rewrite(p["mag"][1], affine=np.diag([2.0, 2.0, 2.0, 1.0]), dtype=np.int16), "mag", "affine"),
        (lambda p: rewrite(p["phase"][0], np.full((32, 32, 24), np.nan, np.float32)), "phase", "NaN"),
    ],
    ids=["no-echo-time", "no-field-strength", "echo-time-in-ms", "phase-units", "shape", "affine", "nan"],
)
def test_bad_input_names_the_file_before_heavy_work(bids, no_heavy_work, corrupt, file_kind, problem):
    paths, outputs, _ = bids
    corrupt(paths)
    with pytest.raises(InputError, match=problem) as raised:
        run(paths, outputs)
    assert raised.value.path in {str(path) for path in paths[file_kind]}
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize(("low", "high"), [(-4096, 4095), (0, 4095)])
def test_integer_scanner_phase_is_rescaled_with_a_warning(low, high):
    radians = np.linspace(-np.pi, np.pi, 101, endpoint=False)
    scanner = np.round((radians + np.pi) / (2 * np.pi) * (high - low + 1) + low)
    with pytest.warns(UserWarning, match="scanner units"):
        rescaled = phase_in_radians(scanner, "phase.nii.gz")
    np.testing.assert_allclose(np.exp(1j * rescaled), np.exp(1j * radians), atol=2e-3)
