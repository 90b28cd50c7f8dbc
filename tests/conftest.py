"""Shared fixtures: the prepared demo template and tiny demo subjects (built once per session); the
opt-in `cluster` marker."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

from deepnuclei.demo.cohort import generate_subject
from deepnuclei.demo.template import Template, prepare_template
from deepnuclei.labels import dseg_tsv
from helpers import ROOT
from helpers.datasets import write_session



def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cluster: runs on a SLURM the test starts (root, minutes); only with -m cluster")
    config.addinivalue_line("markers", "reproduce: the `reproduce` target end to end (8 minutes); only with -m reproduce")


OPT_IN = {"cluster": "starts a SLURM cluster: run with -m cluster",
          "reproduce": "the tiny `reproduce` run: make test-reproduce (pytest -m reproduce)"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Cluster and reproduce tests run only when asked for (`pytest -m cluster`, `-m reproduce`), never in a
    plain run such as `make test`. Slow tests go first, so that with `--no-loadscope-reorder` the
    end-to-end runs start at once, one per worker, and the unit tests fill in beside them."""
    for marker, reason in OPT_IN.items():
        if marker not in (config.option.markexpr or ""):
            for item in items:
                if marker in item.keywords:
                    item.add_marker(pytest.mark.skip(reason=reason))
    items.sort(key=lambda item: "slow" not in item.keywords)  # stable: file order otherwise kept


def tiny_demo_settings(**changes) -> dict:
    """The default demo settings with the tiny test cohort's grids, plus any changes."""
    settings = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["demo"]
    settings.update(yaml.safe_load((ROOT / "tests" / "config" / "tiny.yaml").read_text())["demo"])
    settings.update(changes)
    return settings


@pytest.fixture(scope="session")
def tiny_settings():
    return tiny_demo_settings


@pytest.fixture
def seeded_single_thread():
    """One torch thread and a fixed seed for the test, the thread count restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def template() -> Template:
    return prepare_template()


@pytest.fixture(scope="session")
def demo_subject(template, tmp_path_factory) -> dict:
    """One tiny subject written to disk: its truth record and folders."""
    root = tmp_path_factory.mktemp("demo")
    settings = tiny_demo_settings()
    record = generate_subject(template, "01", settings, root / "bids", root / "truth", root / "qc.png")
    return {"record": record, "bids": root / "bids", "truth": root / "truth", "settings": settings, "qc": root / "qc.png"}


@pytest.fixture(scope="session")
def tiny_cohort(template, tmp_path_factory) -> dict:
    """Four tiny subjects on disk (atlas and registration tests), with the prepared template images."""
    from deepnuclei.demo.template import export_template_images

    root = tmp_path_factory.mktemp("cohort")
    settings = tiny_demo_settings()
    subjects = ["01", "02", "03", "04"]
    for subject in subjects:
        generate_subject(template, subject, settings, root / "bids", root / "truth")
    export_template_images(template, root / "template")
    return {"root": root, "bids": root / "bids", "truth": root / "truth", "template": root / "template",
            "subjects": subjects, "settings": settings}


@pytest.fixture(scope="session")
def with_trailing_axis():
    """Writes a copy of a NIfTI file shaped (X, Y, Z, 1[, 1...]), as dcm2niix may store a 3D image."""
    def copy(path: Path, out_dir: Path, axes: int = 1) -> Path:
        image = nib.load(path)
        data = np.asarray(image.dataobj).reshape(image.shape + (1,) * axes)
        copied = nib.Nifti1Image(data, image.affine, image.header)
        copied.set_data_dtype(data.dtype)  # the scaled values exactly, not scaled again to the stored type
        out = out_dir / f"trailing{axes}_{Path(path).name}"
        nib.save(copied, out)
        assert nib.load(out).shape == data.shape
        return out

    return copy


@pytest.fixture
def longitudinal(tmp_path) -> Path:
    """Participant 01 with two labelled sessions (T1-grid labels only), 02 labelled on the SWI grid, 03
    unlabelled, 04 with a T1 only, 05 with SWI only; the dataset's own dseg.tsv."""
    bids = tmp_path / "bids"
    write_session(bids, "01", "pre", labels=("T1w",))
    write_session(bids, "01", "post", labels=("T1w",))
    write_session(bids, "02", "pre", labels=("SWI",))
    write_session(bids, "03", "pre")
    write_session(bids, "04", "pre", echoes=0)
    write_session(bids, "05", "pre", t1=False)
    (bids / "derivatives" / "labels" / "dseg.tsv").write_text(dseg_tsv())
    return bids


@pytest.fixture
def one_thread():
    """One torch thread: the test machine's cores are shared, and waiting OpenMP threads stall there."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
