"""The viewer (`deepnuclei view`): its API segments a file of the data folder or an upload and refuses
bad input with a clear message, reading nothing outside the data folder; in headless Chromium the page
segments a demo-like subject with a tiny trained LiNUS and shows the masks, and the centre of mass that
`evaluate.centre_of_mass` gives for the returned mask."""

from __future__ import annotations

import base64
import gzip
import io
import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

from deepnuclei.cli import main
from deepnuclei.cli.options import mixed_precision
from deepnuclei.data import Subject
from deepnuclei.evaluate import centre_of_mass
from deepnuclei.infer import segment_files
from deepnuclei.io import save_volume
from deepnuclei.preprocess import qsm_window_ppm
from deepnuclei.train import train
from deepnuclei.viewer import create_app
from helpers import ROOT
from helpers.page import CHROMIUM, browser_page, open_page, pixels_of_colour, running, segment_on_page, wait_for_state

CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
CONFIG["models"]["linus"]["inputs"] = ["Chimap"]  # the tiny LiNUS `site` trains reads QSM alone (the demo's: QSM and T1)
AFFINE = np.array([[0.8, 0, 0, -16.0], [0, 0.8, 0, -19.0], [0, 0, 2.0, -10.0], [0, 0, 0, 1]])  # RAS, mm
MODEL_FILE = "sub-demo/sub-demo_space-SWI_desc-model_Chimap.nii.gz"  # on the model's scale, [0, 1]
RAW_FILE = "sub-demo/sub-demo_Chimap.nii.gz"  # the same in ppm
LIMIT_MB = 1.0
TINY_LINUS = {"widths": (4, 8, 16, 32, 32)}
# every sample a slice through a nucleus, no augmentation: the tiny LiNUS finds both in 120 steps
TINY_TRAINING = dict(task="stn", max_epochs=12, iterations_per_epoch=10, batch_size=8, lr=1e-2, min_lr=1e-2,
                     foreground_fraction=1.0, augmentation={"probability": 0.0})
SHAPE = (40, 48, 10)  # of the demo volume


def ellipsoid(centre: tuple[float, ...], radii: tuple[float, ...]) -> np.ndarray:
    """The voxels of the `SHAPE` grid inside the axis-aligned ellipsoid."""
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")).astype(float)
    return (((grid - np.reshape(centre, (3, 1, 1, 1))) / np.reshape(radii, (3, 1, 1, 1))) ** 2).sum(0) <= 1


def demo_volume() -> tuple[np.ndarray, np.ndarray]:
    """A QSM slab on the model's scale and its STN labels (1 left, 2 right): a brain ellipsoid with a
    brighter left and a less bright right nucleus."""
    left, right = ellipsoid((12, 24, 5), (5, 6, 2.5)), ellipsoid((28, 24, 5), (5, 6, 2.5))
    noise = np.random.default_rng(0).normal(0, 0.02, SHAPE)
    image = 0.4 * ellipsoid((20, 24, 5), (18, 22, 7)) + 0.5 * left + 0.3 * right + noise
    return image.astype(np.float32), np.where(left, 1, np.where(right, 2, 0)).astype(np.uint8)


def nifti_bytes(data: np.ndarray) -> bytes:
    return gzip.compress(nib.Nifti1Image(data, AFFINE).to_bytes())


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A data folder (the demo-like subject, bad files, a symlink out of it) beside a results folder
    holding a tiny LiNUS trained on that subject."""
    root = tmp_path_factory.mktemp("viewer")
    data = root / "data"
    image, labels = demo_volume()
    save_volume(data / MODEL_FILE, image, AFFINE)
    low, high = qsm_window_ppm(CONFIG["preprocess"]["qsm_clip_ppb"])
    save_volume(data / RAW_FILE, low + image * (high - low), AFFINE)
    save_volume(data / "flat.nii.gz", image[..., 5], AFFINE)
    save_volume(data / "big.nii", np.zeros((80, 80, 80), np.float32), AFFINE)  # 2 MB, over the limit
    (data / "notes.nii.gz").write_text("not an image")
    (data / "readme.txt").write_text("not an image either")
    save_volume(root / "secret.nii.gz", image, AFFINE)  # outside the data folder
    (data / "link.nii.gz").symlink_to(root / "secret.nii.gz")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the test machine's cores are shared: waiting OpenMP threads stall there
    try:
        train("linus", TINY_LINUS, [Subject("demo", torch.from_numpy(image[None]), torch.from_numpy(labels), AFFINE)],
              [], root / "results" / "models" / "linus", TINY_TRAINING)
    finally:
        torch.set_num_threads(threads)
    return root


@pytest.fixture(scope="module")
def app(site):
    return create_app(site / "data", site / "results", CONFIG, LIMIT_MB)


@pytest.fixture
def client(app):
    return app.test_client()


def segment(client, **form) -> dict:
    response = client.post("/api/segment", data={"model": "linus", **form})
    assert response.status_code == 200, response.json
    return response.json


def labels_of(result: dict) -> nib.Nifti1Image:
    return nib.Nifti1Image.from_bytes(gzip.decompress(base64.b64decode(result["labels_nii_gz_base64"])))


def test_lists_the_trained_models_and_the_data_folders_nifti_files(client) -> None:
    (model,) = client.get("/api/models").json["models"]
    assert model | {"inputs": ["Chimap"], "task": "stn", "classes": ["STN_L", "STN_R"]} == model
    files = client.get("/api/files").json
    assert files["files"] == sorted(["big.nii", "flat.nii.gz", "notes.nii.gz", MODEL_FILE, RAW_FILE])  # no link out
    assert files["max_upload_mb"] == LIMIT_MB


def test_segment_returns_labels_volumes_and_world_centres_of_mass(client) -> None:
    result = segment(client, path=MODEL_FILE)
    labels = labels_of(result)
    assert labels.shape == (40, 48, 10) and np.allclose(labels.affine, AFFINE)
    data = np.asarray(labels.dataobj)
    assert [(s["name"], s["value"]) for s in result["structures"]] == [("STN_L", 17), ("STN_R", 18)]
    for structure in result["structures"]:
        mask = data == structure["value"]
        assert mask.sum() > 50, f"{structure['name']} not found"  # each nucleus has 315 voxels
        assert structure["volume_mm3"] == pytest.approx(mask.sum() * 0.8 * 0.8 * 2.0)
        assert np.allclose(structure["com_mm"], centre_of_mass(mask, labels.affine), rtol=0, atol=1e-6)
    left, right = (structure["com_mm"][0] for structure in result["structures"])
    assert left < 0 < right  # RAS: the left nucleus at negative x
    assert 0 < result["inference_seconds"] < 10


def test_raw_files_and_uploads_are_scaled_and_segmented_like_the_model_input(client, site) -> None:
    expected = np.asarray(labels_of(segment(client, path=MODEL_FILE)).dataobj)
    raw = np.asarray(labels_of(segment(client, path=RAW_FILE)).dataobj)
    upload = (site / "data" / MODEL_FILE).read_bytes()
    uploaded = segment(client, file=(io.BytesIO(upload), "sub-demo_space-SWI_desc-model_Chimap.nii.gz"))
    assert np.array_equal(np.asarray(labels_of(uploaded).dataobj), expected)
    assert (raw != expected).mean() < 1e-3  # the float32 round trip through ppm moves a voxel or two


def test_inference_flip_and_drop_misplaced_as_the_workflow_does(site, tmp_path) -> None:
    """With `inference.flip` and `inference.drop_misplaced` the viewer's labels are those `deepnuclei infer`
    writes with them."""
    settings = dict(flip=True, drop_misplaced=True)
    assert np.array_equal(viewer_labels(site / "data", site, MODEL_FILE, **settings),
                          workflow_labels(site, site / "data" / MODEL_FILE, tmp_path, **settings))


def workflow_labels(site: Path, image: Path, out_dir: Path, **settings) -> np.ndarray:
    """The labels `deepnuclei infer` writes for `image` with the tiny LiNUS and the config's inference settings,
    `settings` over them."""
    inference = {**CONFIG["inference"], **settings}
    out = out_dir / "dseg.nii.gz"
    segment_files(site / "results" / "models" / "linus" / "checkpoint_best.pt", [image], out, out_dir / "infer.json",
                  overlap=inference["overlap"], batch_size=inference["batch_size"], flip=inference["flip"],
                  drop_misplaced=inference["drop_misplaced"], mixed_precision=mixed_precision(inference))
    return np.asarray(nib.load(out).dataobj)


def viewer_labels(data: Path, site: Path, path: str, **settings) -> np.ndarray:
    """The labels the viewer returns for `path` under `data` with the config's inference settings, `settings` over them."""
    config = {**CONFIG, "inference": {**CONFIG["inference"], **settings}}
    return np.asarray(labels_of(segment(create_app(data, site / "results", config, LIMIT_MB).test_client(),
                                        path=path)).dataobj)


def test_drop_misplaced_drops_a_stray_piece_as_the_workflow_does(site, tmp_path) -> None:
    """A bright ball far from the nuclei, which the tiny LiNUS labels as both STN: with `inference.drop_misplaced`
    the viewer drops it, as the workflow's `infer.kept_pieces` does, and still finds both nuclei."""
    image, _ = demo_volume()
    stray = ellipsoid((20, 8, 5), (4, 4, 2))
    name = "sub-stray_space-SWI_desc-model_Chimap.nii.gz"
    save_volume(tmp_path / "data" / name, image + 0.5 * stray, AFFINE)
    kept, dropped = (viewer_labels(tmp_path / "data", site, name, drop_misplaced=drop) for drop in (False, True))
    assert set(np.unique(kept[stray])) == {0, 17, 18} and not dropped[stray].any()
    assert (dropped == 17).sum() > 200 and (dropped == 18).sum() > 200  # each nucleus has 315 voxels
    assert np.array_equal(dropped, workflow_labels(site, tmp_path / "data" / name, tmp_path, drop_misplaced=True))


def test_mixed_precision_as_the_workflow_does(site, tmp_path) -> None:
    """`inference.mixed_precision` true runs the viewer's model in 16 bits (bfloat16 on a CPU) as the workflow's,
    false in float32: the labels are the workflow's for each, and differ between them by a few voxels."""
    labels = {setting: viewer_labels(site / "data", site, MODEL_FILE, mixed_precision=setting) for setting in (True, False)}
    for setting, viewed in labels.items():
        assert np.array_equal(viewed, workflow_labels(site, site / "data" / MODEL_FILE, tmp_path,
                                                      mixed_precision=setting)), setting
    assert 0 < (labels[True] != labels[False]).sum() < 50


def test_view_reads_its_config_files_over_config_yaml(monkeypatch) -> None:
    """`deepnuclei view --config config/apply.yaml` serves apply.yaml merged over config/config.yaml, as the
    workflow reads it: apply.yaml's inference settings beside config.yaml's, and config.yaml's preprocess windows."""
    import deepnuclei.viewer

    served = {}
    monkeypatch.setattr(deepnuclei.viewer, "create_app", lambda data, results, config, max_mb: config)
    monkeypatch.setattr(deepnuclei.viewer, "serve", lambda config, port: served.update(config=config, port=port))
    assert main(["view", "--config", str(ROOT / "config" / "apply.yaml"), "--threads", str(torch.get_num_threads())]) == 0
    config, base = served["config"], yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert config["preprocess"] == base["preprocess"] and served["port"] == 8765
    assert config["inference"] == {**base["inference"], "flip": True, "drop_misplaced": True}
    assert config["models"]["linus"] == {**base["models"]["linus"], "bundle": "pretrained:linus"}


@pytest.mark.parametrize("path, problem", [
    ("../secret.nii.gz", "outside the data folder"),
    ("sub-demo/../../secret.nii.gz", "outside the data folder"),
    ("/etc/passwd", "outside the data folder"),
    ("link.nii.gz", "outside the data folder"),  # a symlink in the folder to a file outside it
    ("readme.txt", "not a NIfTI file"),
    ("notes.nii.gz", "not a readable NIfTI file"),
    ("flat.nii.gz", "expected a 3D image"),
    ("big.nii", "over the viewer's limit of 1 MiB"),
    ("missing.nii.gz", "no such file"),
])
def test_bad_paths_get_a_clear_message_and_no_data(client, path, problem) -> None:
    for response in (client.post("/api/segment", data={"model": "linus", "path": path}),
                     client.get("/api/image", query_string={"path": path})):
        assert response.status_code == 400 and problem in response.json["error"], response.json
        assert path in response.json["error"]


def test_an_absolute_path_inside_the_data_folder_is_served(client, site) -> None:
    response = client.get("/api/image", query_string={"path": str(site / "data" / MODEL_FILE)})
    assert response.status_code == 200 and response.data == (site / "data" / MODEL_FILE).read_bytes()


@pytest.mark.parametrize("name, content, problem", [
    ("image.txt", b"plain text", "not a NIfTI file"),
    ("image.nii.gz", b"plain text", "not a readable NIfTI file"),
    ("slice.nii.gz", nifti_bytes(np.zeros((40, 48), np.float32)), "expected a 3D image"),
])
def test_bad_uploads_get_a_clear_message_naming_the_file(client, name, content, problem) -> None:
    response = client.post("/api/segment", data={"model": "linus", "file": (io.BytesIO(content), name)})
    assert response.status_code == 400 and response.json["error"].startswith(f"{name}: {problem}"), response.json


def test_uploads_over_the_limit_and_unknown_models_are_refused(client) -> None:
    huge = io.BytesIO(bytes(int(1.5 * 2**20)))
    response = client.post("/api/segment", data={"model": "linus", "file": (huge, "huge.nii")})
    assert response.status_code == 413 and "over the viewer's limit of 1 MiB" in response.json["error"]
    response = client.post("/api/segment", data={"model": "../../models/linus", "path": MODEL_FILE})
    assert response.status_code == 400 and "no trained model" in response.json["error"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no Chromium at {CHROMIUM} (Debian package chromium)")
def test_page_segments_and_shows_the_masks_and_centres_of_mass(app, tmp_path) -> None:
    pytest.importorskip("playwright", reason="the dev extra's playwright drives Chromium")
    with running(app) as base_url, browser_page() as page:
        open_page(page, base_url)
        page.select_option("#file", "flat.nii.gz")  # bad input: a message, and the page stays usable
        assert wait_for_state(page, "image") == "error"
        assert "flat.nii.gz: expected a 3D image" in page.inner_text("#message")
        page.set_input_files("#upload", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"notes"}])
        page.wait_for_function("document.querySelector('#message').textContent.includes('notes.txt')")
        assert "notes.txt: not a NIfTI file" in page.inner_text("#message")
        run = segment_on_page(page, MODEL_FILE, "linus", opacity=1.0)
    (tmp_path / "viewer.png").write_bytes(run.page_after)
    labels = labels_of(run.response)
    for structure in run.response["structures"]:
        colour = tuple(structure["colour"])
        assert pixels_of_colour(run.views_before, colour) == 0
        assert pixels_of_colour(run.views_after, colour) > 20, f"{structure['name']} not drawn"
        expected = centre_of_mass(labels.get_fdata() == structure["value"], labels.affine)
        assert np.allclose(run.com_mm[structure["name"]], expected, rtol=0, atol=0.01)
    timing = {"click_to_mask_s": run.click_to_mask_seconds, "playwright_s": run.waited_seconds,
              "inference_s": run.response["inference_seconds"], "screenshot": str(tmp_path / "viewer.png")}
    (tmp_path / "timing.json").write_text(json.dumps(timing))
    print(f"viewer: {timing}")
    assert run.click_to_mask_seconds < 30
