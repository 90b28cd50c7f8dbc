"""The results folders as BIDS-Derivatives datasets (deepnuclei.derivatives): every file the workflow writes
there, named as it names them; the BIDS validator finds no error (where it is installed) and bids2table
reads the maps back with the sidecars they inherit."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from bids2table import index_dataset, load_bids_metadata

from deepnuclei.bids_check import run_bids_validator, validator_command
from deepnuclei.derivatives import bids_uris, dataset_links, derivative_files, write_derivative, write_sources
from deepnuclei.io import read_json, save_volume, write_json, write_text_atomic
from deepnuclei.labels import dseg_tsv
from deepnuclei.layout import Layout, sidecar

KEYS = ("01", "02")
SESSION_KEYS = ("01_ses-pre", "01_ses-post", "02_ses-pre")


def image(path: str, dtype: type = np.float32) -> None:
    save_volume(path, np.ones((4, 4, 4)), np.diag([1.0, 1.0, 2.0, 1.0]), dtype)


@pytest.fixture
def results(tmp_path) -> Path:
    """A results folder as a run with one QSM method, one registration and one model leaves it."""
    return results_of(tmp_path, KEYS)


def results_of(tmp_path: Path, keys: tuple[str, ...]) -> Path:
    """The maps with their own sidecars as the jobs write them: `Sources`, the files each is made from."""
    layout, bids = Layout.of(tmp_path / "results"), tmp_path / "bids"
    links = dataset_links(layout.results, bids)
    for key in keys:
        for suffix in ("Chimap.nii.gz", "mask.nii.gz", "localfield.nii.gz"):
            image(layout.qsm(key, suffix, "sharptv"), np.uint8 if "mask" in suffix else np.float32)
        raw = bids / f"sub-{key.split('_')[0]}" / "anat" / f"sub-{key}_T1w.nii.gz"
        write_json(layout.qsm(key, "Chimap.json", "sharptv"),
                   {"Units": "ppm", "Reference": "mean", "Sources": bids_uris([raw], links, layout.results / "qsm")})
        image(layout.t1_in_swi(key))
        write_text_atomic(layout.registration_transform(key, "simpleitk"), "#Insight Transform File V1.0\n")
        write_json(layout.registration_record(key, "simpleitk"), {"method": "simpleitk"})
        write_sources(layout.t1_in_swi(key), bids_uris([raw, layout.registration_transform(key, "simpleitk")], links,
                                                       layout.results / "registration"))
        for space in ("SWI", "T1w"):
            image(layout.segmentation("linus-t1", key, space), np.uint8)
            write_sources(layout.segmentation("linus-t1", key, space), bids_uris(
                [layout.preprocessed(key, "T1w.nii.gz", "T1w")], links, layout.results / "segmentations" / "linus-t1"))
        write_json(layout.inference_record("linus-t1", key), {"model": "linus-t1"})
        write_text_atomic(layout.measures("linus-t1", key), "structure\tvolume_mm3\nSTN_L\t80.0\n")
        write_text_atomic(layout.measures_qsmxt("linus-t1", key), "roi,num_voxels\nSTN_L,20\n")
    for table in (layout.measures_table(), layout.measures_wide(), layout.measures_qsmxt_table(),
                  layout.results / "qsm" / "qsm_metrics.csv", layout.results / "registration" / "tre.csv"):
        write_text_atomic(table, "a\n1\n")
    write_text_atomic(layout.segmentations_lookup(), dseg_tsv())
    write_text_atomic(tmp_path / "linus-t1.zip", "weights")
    for kind in ("qsm", "registration", "measures"):
        write_derivative(layout.results / kind, kind, bids, layout.results)
    write_derivative(layout.results / "segmentations" / "linus-t1", "segmentations", bids, layout.results, "linus-t1",
                     tmp_path / "linus-t1.zip", layout.segmentations_lookup())
    return layout.results


DATASETS = {"qsm": "qsm", "registration": "registration", "measures": "measures",
            "segmentations/linus-t1": "segmentations"}


def test_each_dataset_is_described_and_its_maps_inherit_their_sidecars(results, tmp_path):
    for root, kind in DATASETS.items():
        assert {path.name for path in (results / root).iterdir()} >= set(derivative_files(kind)), root
        description = read_json(results / root / "dataset_description.json")
        assert description["DatasetType"] == "derivative" and description["GeneratedBy"][0]["Name"] == "deepnuclei"
        assert description["SourceDatasets"] == [{"URL": (tmp_path / "bids").resolve().as_uri()}]
    chimap = load_bids_metadata(results / "qsm" / "sub-01" / "sub-01_space-SWI_desc-sharptv_Chimap.nii.gz")
    assert chimap["Units"] == "ppm" and chimap["Reference"] == "mean" and "SWI grid" in chimap["SpatialReference"]
    dseg = load_bids_metadata(results / "segmentations" / "linus-t1" / "sub-01" / "sub-01_space-T1w_dseg.nii.gz")
    assert dseg["ModelSHA256"] == hashlib.sha256(b"weights").hexdigest() and dseg["Model"].endswith("linus-t1.zip")
    assert "T1w" in dseg["SpatialReference"]
    assert dseg["Sources"] == ["bids:preprocess:sub-01/sub-01_space-T1w_desc-model_T1w.nii.gz"]


def test_each_map_cites_its_sources_beside_what_it_inherits(tmp_path):
    results = results_of(tmp_path, ("01_ses-pre",))
    session = Path("sub-01") / "ses-pre"
    chimap = load_bids_metadata(results / "qsm" / session / "sub-01_ses-pre_space-SWI_desc-sharptv_Chimap.nii.gz")
    assert chimap["Sources"] == ["bids:raw:sub-01/anat/sub-01_ses-pre_T1w.nii.gz"] and chimap["Units"] == "ppm"
    t1 = load_bids_metadata(results / "registration" / session / "sub-01_ses-pre_space-SWI_T1w.nii.gz")
    assert t1["Sources"] == ["bids:raw:sub-01/anat/sub-01_ses-pre_T1w.nii.gz",  # its own dataset's: no name
                             "bids::sub-01/ses-pre/sub-01_ses-pre_desc-simpleitk_from-T1w_to-SWI_mode-image_xfm.tfm"]
    assert "SWI grid" in t1["SpatialReference"]  # inherited from the top-level sidecar
    links = read_json(results / "registration" / "dataset_description.json")["DatasetLinks"]
    assert links["raw"] == (tmp_path / "bids").resolve().as_uri()
    assert links["preprocess"] == (results / "preprocess").resolve().as_uri()
    assert sidecar("a/sub-01_dseg.nii.gz") == "a/sub-01_dseg.json" == sidecar("a/sub-01_dseg.nii")
    assert bids_uris(["/elsewhere/x.nii.gz"], {}, results / "qsm") == ["file:///elsewhere/x.nii.gz"]
    assert (results / "segmentations" / "linus-t1" / "dseg.tsv").read_text() == dseg_tsv()


def test_bids2table_indexes_the_maps_with_their_entities(results):
    qsm = index_dataset(results / "qsm").to_pandas()
    chimaps = qsm[qsm["suffix"] == "Chimap"]
    assert sorted(chimaps["sub"]) == ["01", "02"] and set(chimaps["desc"]) == {"sharptv"}
    assert set(chimaps["space"]) == {"SWI"}
    labels = index_dataset(results / "segmentations" / "linus-t1").to_pandas()
    assert sorted(labels.loc[labels["ext"] == ".nii.gz", "space"]) == ["SWI", "SWI", "T1w", "T1w"]


@pytest.mark.skipif(validator_command() is None, reason="bids-validator-deno is not installed")
@pytest.mark.parametrize("keys", [KEYS, SESSION_KEYS], ids=["participants", "sessions"])
@pytest.mark.parametrize("root", list(DATASETS))
def test_the_bids_validator_finds_no_error(tmp_path, root, keys):
    record = run_bids_validator(results_of(tmp_path, keys) / root, tmp_path / "report.json", tmp_path / "report.txt")
    codes = json.dumps(record.get("codes"), indent=1)
    assert record["ran"] and record["errors"] == 0, codes


def test_sessions_are_read_as_sessions(tmp_path):
    qsm = index_dataset(results_of(tmp_path, SESSION_KEYS) / "qsm").to_pandas()
    chimaps = qsm[qsm["suffix"] == "Chimap"].sort_values(["sub", "ses"])
    assert list(zip(chimaps["sub"], chimaps["ses"])) == [("01", "post"), ("01", "pre"), ("02", "pre")]
