"""The viewer's web app (Flask): one page and a small JSON API, served on 127.0.0.1 only.

    GET  /              the page (static/index.html, NiiVue vendored in static/niivue/)
    GET  /api/models    trained models under the results folder, with their task, inputs and classes
    GET  /api/files     NIfTI files under the data folder, and the size limit
    GET  /api/image     ?path=: one of those files, for the page to show
    POST /api/segment   form: model, and path (under the data folder) or file (an upload) ->
                        labels (gzipped NIfTI, base64), volume and centre of mass of each structure,
                        inference seconds

Bad input (not NIfTI, not 3D, over the size limit, outside the data folder, unknown model) is answered
with status 400 or 413 and {"error": message}, which the page shows.
"""

from __future__ import annotations

import base64
import logging
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from flask import Flask, Request, request, send_file
from werkzeug.exceptions import InternalServerError, RequestEntityTooLarge
from werkzeug.serving import make_server
from werkzeug.utils import secure_filename

from ..io import InputError, load_nifti
from .files import DataFolder, channel_paths, check_nifti_file, is_nifti_name, model_input
from .segment import LoadedModel, ModelCatalogue, segment

log = logging.getLogger(__name__)

HOST = "127.0.0.1"  # a local tool: never reachable from another machine


@contextmanager
def shown_as(name: str) -> Iterator[None]:
    """Input errors name the file as the page knows it, not by its path on the server."""
    try:
        yield
    except InputError as error:
        raise InputError(name, error.problem) from error


def request_files(form_request: Request, folder: DataFolder, loaded: LoadedModel,
                  upload_dir: Path) -> tuple[list[Path], str]:
    """The channel files of a segment request and the name to show for them: the upload saved into
    `upload_dir`, or the data-folder file and its sibling channels."""
    upload = form_request.files.get("file")
    if upload is not None and upload.filename:
        shown, name = upload.filename, secure_filename(upload.filename)
        if not is_nifti_name(name):
            raise InputError(shown, "not a NIfTI file (.nii or .nii.gz)")
        if len(loaded.inputs) > 1:
            raise InputError(shown, f"{loaded.name} reads {' + '.join(loaded.inputs)}: choose a file from the "
                                    "data folder, with its other channels beside it")
        path = upload_dir / name
        upload.save(path)
        check_nifti_file(path, shown, folder.max_bytes)
        return [path], shown
    relative = form_request.form.get("path", "")
    if not relative:
        raise InputError("request", "choose a file from the data folder, or upload one")
    return [folder.resolve(str(path)) for path in channel_paths(Path(relative), loaded.inputs)], relative


def preprocess_settings(config: Mapping[str, Any], loaded: LoadedModel) -> dict[str, Any]:
    """The intensity windows a model was trained with: its bundle's; else the config's, `preprocess_t1w` over
    `preprocess` for T1w-space models."""
    if loaded.preprocess is not None:
        return loaded.preprocess
    if config.get("models", {}).get(loaded.name, {}).get("space") == "T1w":
        return {**config["preprocess"], **config.get("preprocess_t1w", {})}
    return config["preprocess"]


def viewer_inference(config: dict[str, Any]) -> dict[str, Any]:
    """The config's inference settings, cleaning up as its evaluation does."""
    cleanup = config.get("evaluation", {}).get("largest_component", False)
    return {**config.get("inference", {}), "largest_component": cleanup}


def create_app(data_dir: str | Path, results_dir: str | Path, config: Mapping[str, Any],
               max_upload_mb: float) -> Flask:
    """The app over a data folder and the models in `results_dir`/models and `results_dir`/bundles; `config` is the workflow
    config (its preprocess, inference and models sections)."""
    folder = DataFolder.at(data_dir, int(max_upload_mb * 2**20))
    catalogue = ModelCatalogue(Path(results_dir) / "models", config.get("models", {}), Path(results_dir) / "bundles")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = folder.max_bytes + 2**16  # the file and the form's few other fields

    @app.get("/")
    def page() -> Any:
        return app.send_static_file("index.html")

    @app.get("/api/models")
    def models() -> dict[str, Any]:
        return {"models": catalogue.describe()}

    @app.get("/api/files")
    def files() -> dict[str, Any]:
        return {"data_dir": str(folder.root), "files": folder.files(), "max_upload_mb": max_upload_mb}

    @app.get("/api/image")
    def image() -> Any:
        relative = request.args.get("path", "")
        path = folder.resolve(relative)
        with shown_as(relative):  # the header only: a clear message here rather than a parse error in the page
            load_nifti(path)
        return send_file(path, mimetype="application/octet-stream", download_name=path.name)

    @app.post("/api/segment")
    def segment_request() -> dict[str, Any]:
        started = time.perf_counter()
        with catalogue.lock, tempfile.TemporaryDirectory(prefix="deepnuclei-upload-") as upload_dir:
            loaded = catalogue.get(request.form.get("model", ""))
            paths, shown = request_files(request, folder, loaded, Path(upload_dir))
            with shown_as(shown):
                subject = model_input(paths, loaded.inputs, loaded.info.task, preprocess_settings(config, loaded))
            result = segment(loaded, subject, viewer_inference(config))
        log.info("%s on %s: %.3f s inference", loaded.name, shown, result.inference_seconds)
        return {"model": loaded.name, "task": loaded.info.task, "file": shown,
                "shape": list(result.labels.shape), "structures": result.structures,
                "labels_nii_gz_base64": base64.b64encode(result.nifti_gz()).decode(),
                "inference_seconds": result.inference_seconds, "cleanup_seconds": result.cleanup_seconds,
                "server_seconds": time.perf_counter() - started, "device": str(loaded.device),
                "threads": torch.get_num_threads()}

    @app.errorhandler(InputError)
    def bad_input(error: InputError) -> tuple[dict[str, str], int]:
        return {"error": str(error)}, 400

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_: RequestEntityTooLarge) -> tuple[dict[str, str], int]:
        return {"error": f"the upload is over the viewer's limit of {max_upload_mb:g} MiB"}, 413

    @app.errorhandler(InternalServerError)
    def internal_error(error: InternalServerError) -> tuple[dict[str, str], int]:
        log.error("viewer request failed", exc_info=error.original_exception)
        return {"error": f"internal error: {error.original_exception or error}"}, 500

    return app


def serve(app: Flask, port: int) -> None:
    """Serve until interrupted; threaded, so the page stays responsive while a model runs."""
    server = make_server(HOST, port, app, threaded=True)
    log.info("viewer on http://%s:%d", HOST, server.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # Ctrl-C: the usual way to stop it
        log.info("viewer stopped")
