"""Model bundles (deepnuclei.bundle): what export writes, what load checks and refuses; a bundled model in
the plan; the models' grid (resampling to the voxel size and orientation a model was trained at) and the
scale-free T1 window that let a bundle read another site's images."""

from __future__ import annotations

import base64
import gzip
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from deepnuclei.bundle import FORMAT_VERSION, export_model, load_bundle, summary
from deepnuclei.infer import ModelInfo, load_model, predict
from deepnuclei.io import InputError, read_volume, save_volume, write_json
from deepnuclei.layout import Layout
from deepnuclei.plan import PlanError, make_plan, plan_files
from deepnuclei.plan_files import QsmSource
from deepnuclei.preprocess import apply_padding, model_grid, prepare_inputs, resample_to, t1_window
from helpers import ROOT
from helpers.datasets import config_for, write_session


SETTINGS = {"matrix": [24, 24, 12], "qsm_clip_ppb": [-150, 250], "t1_clip": [0, 1.6], "t1_clip_unit": "median",
            "voxel_mm": None}
SWI_AFFINE = np.array([[1.25, 0, 0, -12], [0, 1.25, 0, -12], [0, 0, 2.0, -10], [0, 0, 0, 1]])


def head(shape=(20, 20, 10), scale: float = 1.0, seed: int = 0) -> np.ndarray:
    """A bright ellipsoid in dark noise: a head for the T1 window."""
    grid = np.indices(shape).astype(float)
    inside = sum(((axis - (n - 1) / 2) / (0.4 * n)) ** 2 for axis, n in zip(grid, shape)) < 1
    rng = np.random.default_rng(seed)
    return (scale * (np.where(inside, 500, 10) + rng.normal(0, 5, shape))).astype(np.float32)


@pytest.fixture
def trained(tmp_path) -> Path:
    """A trained model's folder as a run leaves it: checkpoint, summary, training plan, the space's settings,
    the training images' preprocess records, an evaluation."""
    layout = Layout.of(tmp_path / "results")
    info = ModelInfo("linus", "stn", 1, (32, 32), {"widths": (4, 8, 8, 8, 8)})
    torch.manual_seed(0)
    model = info.build()
    model_dir = Path(layout.model_file("linus", ""))
    model_dir.mkdir(parents=True)
    torch.save({"info": info.as_dict(), "model": model.state_dict(), "optimizer": {}, "fingerprint": "abc"},
               model_dir / "checkpoint_best.pt")
    write_json(model_dir / "summary.json", {"best_val_dice": 0.61, "best_epoch": 3, "epochs": 5})
    entry = {"architecture": "linus", "inputs": ["Chimap"], "task": "stn", "options": {"widths": [4, 8, 8, 8, 8]}}
    cases = {role: [{"subject": key, "channels": [layout.preprocessed(key, "Chimap.nii.gz")],
                     "labels": layout.preprocessed(key, "dseg.nii.gz")} for key in keys]
             for role, keys in (("train", ["01", "02"]), ("validation", ["03"]))}
    write_json(layout.plan_file("train_linus"), {"model": entry, "cases": cases})
    write_json(layout.preprocess_plan("SWI"), {**SETTINGS, "qsm": {"method": "sharptv", "settings": {}}})
    for key in ("01", "02", "03"):
        qsm = save_volume(tmp_path / f"{key}_qsm.nii.gz", np.zeros((20, 20, 10), np.float32), SWI_AFFINE)
        t1 = save_volume(tmp_path / f"{key}_t1.nii.gz", head(), SWI_AFFINE)
        prepare_inputs(qsm, t1, SETTINGS, layout.preprocessed(key, "Chimap.nii.gz"),
                       layout.preprocessed(key, "T1w.nii.gz"), layout.preprocessed(key, "padding.json"))
    (tmp_path / "results" / "evaluation").mkdir()
    (tmp_path / "results" / "evaluation" / "overlap.csv").write_text(
        "method,subject,structure,dice\nlinus,04,STN_L,0.5\nlinus,04,STN_R,0.7\natlas,04,STN_L,0.3\n")
    return model_dir


def test_export_holds_what_a_new_dataset_needs_and_loads_the_same_model(trained, tmp_path):
    path = export_model(trained, tmp_path / "linus.zip")
    bundle = load_bundle(path)
    manifest = bundle.manifest
    assert manifest["format_version"] == FORMAT_VERSION and manifest["name"] == "linus"
    assert manifest["model"]["inputs"] == ["Chimap"] and manifest["model"]["task"] == "stn"
    assert manifest["preprocess"]["voxel_mm"] == [1.25, 1.25, 2.0] and manifest["preprocess"]["orientation"] == "RAS"
    assert manifest["preprocess"]["t1_clip_unit"] == "median" and manifest["preprocess"]["matrix"] == [24, 24, 12]
    assert [label["name"] for label in manifest["labels"]] == ["STN_L", "STN_R"]
    assert manifest["fingerprint"]["train_sessions"] == ["01", "02"]
    assert manifest["fingerprint"]["validation_sessions"] == ["03"] and manifest["fingerprint"]["training"] == "abc"
    assert manifest["scores"]["validation"]["best_val_dice"] == 0.61
    assert manifest["scores"]["test"] == {"sessions": 1, "dice": {"STN_L": 0.5, "STN_R": 0.7}, "mean_dice": 0.6}
    assert "optimizer" not in bundle.state()  # weights only
    assert manifest["training_range"] is None  # its checkpoint predates the record: inference checks nothing
    image = torch.rand(1, 20, 20, 6)
    from_checkpoint, _ = load_model(trained / "checkpoint_best.pt", torch.device("cpu"))
    from_bundle, info = load_model(path, torch.device("cpu"))
    assert np.array_equal(predict(from_checkpoint, info, image).labels, predict(from_bundle, info, image).labels)
    assert "linus: linus (stn)" in summary(path)


def rewritten(source: Path, target: Path, manifest_change=None, weights: bytes | None = None) -> Path:
    with zipfile.ZipFile(source) as bundle:
        manifest, stored = json.loads(bundle.read("manifest.json")), bundle.read("weights.pt")
    if manifest_change:
        manifest_change(manifest)
    with zipfile.ZipFile(target, "w") as bundle:
        bundle.writestr("manifest.json", json.dumps(manifest))
        bundle.writestr("weights.pt", stored if weights is None else weights)
    return target


def test_bad_bundles_stop_with_one_line_naming_the_file(trained, tmp_path):
    path = export_model(trained, tmp_path / "linus.zip")
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    tampered = rewritten(path, tmp_path / "tampered.zip", weights=path.read_bytes()[:100])
    newer = rewritten(path, tmp_path / "newer.zip", lambda manifest: manifest.update(format_version=FORMAT_VERSION + 1))
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as bundle:
        bundle.writestr("plans.json", "{}")
    for bad, problem in ((truncated, "truncated or damaged"), (tampered, "checksum mismatch"),
                         (newer, "newer than this deepnuclei"), (foreign, "incomplete bundle, missing: There is no item named 'manifest.json'"),
                         (tmp_path / "absent.zip", "no such model bundle")):
        with pytest.raises(InputError) as error:
            load_bundle(bad)
        assert str(error.value).startswith(str(bad)) and problem in str(error.value) and "\n" not in str(error.value)


def test_a_bundled_model_is_applied_not_trained_and_brings_its_preprocessing(trained, tmp_path):
    path = export_model(trained, tmp_path / "linus.zip")
    bids = tmp_path / "bids"
    for participant in ("01", "02"):
        write_session(bids, participant)  # no labels at all
    config = config_for(bids, tmp_path, splits={"train": 0, "validation": 0, "test": 10}, methods=["atlas", "linus"],
                        atlas={"methods": ["atlas"]}, ablations={"rates": [], "inputs": []})
    config["models"]["linus"] = {**config["models"]["linus"], "bundle": str(path)}
    plan = make_plan(config)
    assert not plan.trained("linus") and plan.models["linus"]["inputs"] == ["Chimap"]  # the bundle's, not tiny.yaml's
    assert plan.segmented("linus") == ["01", "02"]
    files = plan_files(plan)
    assert "train_linus" not in files
    assert files["preprocess_SWI"].voxel_mm == [1.25, 1.25, 2.0] and files["preprocess_SWI"].matrix == [24, 24, 12]
    assert files["preprocess_T1w"].to_json() == config["preprocess_t1w"]  # no bundled model reads that space
    assert files["preprocess_SWI"].qsm == QsmSource("sharptv", {}) and not plan.notes
    other_qsm = make_plan({**config, "qsm": {**config["qsm"], "method": "tkd"}})
    assert other_qsm.notes == [f"{path}: model linus was trained on QSM {{'method': 'sharptv', 'settings': {{}}}}, this run "
                               "makes {'method': 'tkd', 'settings': {'inversion': 'tkd'}}: set qsm.method and "
                               "qsm.methods alike for the inputs it knows"]

    t1_only = tmp_path / "t1_only"
    write_session(t1_only, "01", echoes=0)
    with pytest.raises(PlanError, match=f"{path}: model linus needs both SWI echoes and a T1w"):
        make_plan({**config, "bids_dir": str(t1_only)})


def test_a_model_fine_tuned_from_a_bundle_is_trained_on_the_bundles_network_and_preprocessing(trained, tmp_path):
    path = export_model(trained, tmp_path / "linus.zip")
    bids = tmp_path / "bids"
    for participant in ("01", "02", "03"):
        write_session(bids, participant, labels=("SWI", "T1w"))
    config = config_for(bids, tmp_path, methods=["atlas", "linus"], atlas={"methods": ["atlas"]},
                        ablations={"rates": [], "inputs": []})
    config["models"]["linus"] = {"init": str(path), "training": {"max_epochs": 2}}
    plan = make_plan(config)
    assert plan.trained("linus") and plan.models["linus"]["inputs"] == ["Chimap"]  # the bundle's network
    entry = plan_files(plan)["train_linus"].model
    assert entry["init"] == str(path) and entry["options"] == {"widths": [4, 8, 8, 8, 8]}
    assert entry["training"]["max_epochs"] == 2  # the run's training keys over the bundle's recipe
    assert plan_files(plan)["preprocess_SWI"].matrix == [24, 24, 12]  # the inputs it was trained on
    with pytest.raises(PlanError, match=f"ablations.model 'linus' is fine-tuned from {path}, and ablation variants"):
        make_plan({**config, "ablations": {"model": "linus", "rates": [[1, 1, 1]], "inputs": []}})
    config["models"]["linus"]["inputs"] = ["T1w"]
    with pytest.raises(PlanError, match=f"models.linus: init bundle {path} was trained with other \\['inputs'\\]"):
        make_plan(config)


def test_images_at_the_trained_voxel_size_are_read_as_they_are_others_resampled_and_labels_back():
    assert model_grid((20, 20, 10), SWI_AFFINE, [1.25, 1.25, 2.0], "RAS") is None
    assert model_grid((20, 20, 10), SWI_AFFINE, [1.2501, 1.25, 2.0], "RAS") is None  # within the tolerance
    fine = SWI_AFFINE.copy()
    fine[:2, :2] = np.diag([0.8, 0.8])
    grid = model_grid((50, 40, 10), fine, [1.25, 1.25, 2.0], "RAS")
    assert grid.shape == (32, 26, 10)
    np.testing.assert_allclose(np.abs(np.diag(grid.affine))[:3], [1.25, 1.25, 2.0])
    # the field of view's corner stays: the first voxel's outer edge at the same world position
    np.testing.assert_allclose(grid.affine[:3, :3] @ [-0.5, -0.5, -0.5] + grid.affine[:3, 3],
                               fine[:3, :3] @ [-0.5, -0.5, -0.5] + fine[:3, 3])
    flipped = fine @ np.array([[-1, 0, 0, 49], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])  # LAS, same voxels in space
    labels = np.zeros((50, 40, 10), np.uint8)
    labels[10:30, 10:25, 3:7] = 5
    las = model_grid((50, 40, 10), flipped, [0.8, 0.8, 2.0], "RAS")
    assert las.shape == (50, 40, 10)
    np.testing.assert_array_equal(resample_to(labels[::-1], flipped, las, labels=True), labels)


def test_a_finer_dataset_is_resampled_to_the_models_grid_and_its_labels_come_back(tmp_path):
    fine = SWI_AFFINE.copy()
    fine[:2, :2] = np.diag([0.8, 0.8])
    qsm = save_volume(tmp_path / "qsm.nii.gz", np.zeros((30, 30, 10), np.float32), fine)
    t1 = save_volume(tmp_path / "t1.nii.gz", head((30, 30, 10)), fine)
    settings = {**SETTINGS, "voxel_mm": [1.25, 1.25, 2.0], "orientation": "RAS"}
    record = prepare_inputs(qsm, t1, settings, tmp_path / "m_qsm.nii.gz", tmp_path / "m_t1.nii.gz", tmp_path / "p.json")
    model_t1, model_affine = read_volume(tmp_path / "m_t1.nii.gz")
    assert model_t1.shape == (24, 24, 12) and record["padding"]["shape"] == [19, 19, 10]
    np.testing.assert_allclose(np.abs(np.diag(model_affine))[:3], [1.25, 1.25, 2.0])
    box = np.zeros((30, 30, 10), np.uint8)
    box[8:22, 6:20, 2:8] = 3  # 11.2 x 11.2 x 12 mm
    save_volume(tmp_path / "box.nii.gz", box, fine, np.uint8)
    apply_padding(tmp_path / "p.json", tmp_path / "box.nii.gz", tmp_path / "box_model.nii.gz")
    apply_padding(tmp_path / "p.json", tmp_path / "box_model.nii.gz", tmp_path / "box_back.nii.gz", inverse=True)
    back, back_affine = read_volume(tmp_path / "box_back.nii.gz", dtype=np.uint8)
    np.testing.assert_allclose(back_affine, fine)
    dice = 2 * np.sum((back == 3) & (box == 3)) / (np.sum(back == 3) + np.sum(box == 3))
    assert dice > 0.85  # two resamplings across 1.25 / 0.8 mm voxels


def test_the_median_t1_window_does_not_depend_on_the_t1s_scale():
    t1 = head((30, 30, 20))
    low, high = t1_window(t1, (0, 1.6), "median")
    assert high == pytest.approx(1.6 * np.median(t1[t1 > 100]), rel=1e-3)
    scaled = t1_window(t1 * 7.3, (0, 1.6), "median")
    assert scaled[1] == pytest.approx(7.3 * high, rel=1e-5)


def test_the_viewer_opens_bundles_beside_trained_models(trained, tmp_path):
    from deepnuclei.viewer import create_app

    results = trained.parent.parent
    export_model(trained, results / "bundles" / "linus.zip")
    save_volume(tmp_path / "data" / "sub-x_space-SWI_desc-model_Chimap.nii.gz", np.random.rand(20, 20, 6), SWI_AFFINE)
    client = create_app(tmp_path / "data", results, {"preprocess": SETTINGS, "inference": {}}, 1.0).test_client()
    listed = {model["name"]: model for model in client.get("/api/models").json["models"]}
    assert listed["linus.zip"]["inputs"] == ["Chimap"] and listed["linus.zip"]["best_val_dice"] == 0.61
    assert listed["linus"]["task"] == listed["linus.zip"]["task"] == "stn"
    results_by_model = [client.post("/api/segment", data={"model": name, "path": "sub-x_space-SWI_desc-model_Chimap.nii.gz"})
                        for name in ("linus", "linus.zip")]
    assert all(result.status_code == 200 for result in results_by_model)
    labels = [gzip.decompress(base64.b64decode(result.json["labels_nii_gz_base64"])) for result in results_by_model]
    assert labels[0] == labels[1]  # the same NIfTI bytes (gzip's header holds a time)


def test_apply_uses_the_models_that_ship_in_the_package_and_they_know_what_they_were_trained_on():
    """config/apply.yaml names `pretrained:<model>`: bundles inside the package, checked, with their training range
    and the voxel every input is resampled to."""
    import yaml

    from deepnuclei.bundle import PRETRAINED_DIR, bundle_path

    apply = yaml.safe_load((ROOT / "config" / "apply.yaml").read_text())
    for name, entry in apply["models"].items():
        assert entry["bundle"] == f"pretrained:{name}"
        path = bundle_path(entry["bundle"])
        assert path == PRETRAINED_DIR / f"{name}.zip" and path.is_file()
        bundle = load_bundle(entry["bundle"])
        assert bundle.preprocess["voxel_mm"] == [1.0, 1.0, 2.0]
        assert len(bundle.manifest["training_range"]["inputs"]) == len(bundle.model["inputs"])  # per channel
    assert load_bundle("pretrained:linus").model["inputs"] == ["Chimap", "T1w"]


def test_the_pretrained_run_writes_nothing_where_the_demo_lives():
    """config/pretrained.yaml simulates its own cohort: its dataset, template and truth under its own root, its
    results in its own folder, so `make pretrained` and `make demo` never overwrite each other."""
    import yaml

    demo = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    pretrained = yaml.safe_load((ROOT / "config" / "pretrained.yaml").read_text())
    root = Path(pretrained["demo"]["root"])
    assert root != Path(demo["demo"]["root"])
    assert Path(pretrained["bids_dir"]).is_relative_to(root)
    assert pretrained["results_dir"] != demo["results_dir"]
