"""Drive the viewer page in headless Chromium (Playwright with Debian's /usr/bin/chromium): open an image,
segment it, read back the screenshots, the timing and the legend. Used by tests/unit/viewer/test_viewer.py.

Run by hand, it does the same on a real demo subject with a trained model of the workflow and keeps the
screenshot:

    .venv/bin/python tests/helpers/page.py --subject 07 --model linus --out results/viewer/linus_sub-07.png
"""

from __future__ import annotations

import argparse
import io
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flask import Flask
from PIL import Image
from werkzeug.serving import make_server

CHROMIUM = Path("/usr/bin/chromium")
# what Chromium needs on these machines: no sandbox as root, no GPU, and no calls home on a closed network
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextmanager
def running(app: Flask) -> Iterator[str]:
    """The app served on a free port of 127.0.0.1 in a thread; yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.shutdown()
        thread.join()


@contextmanager
def browser_page(width: int = 1400, height: int = 560) -> Iterator:
    """A page of a fresh headless Chromium profile."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True,
            viewport={"width": width, "height": height})
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


@dataclass(frozen=True)
class PageRun:
    views_before: bytes  # PNG of the three views before segmenting
    views_after: bytes  # and once the mask is shown
    page_after: bytes  # PNG of the whole page, legend included
    click_to_mask_seconds: float  # the page's own performance.now() timing
    waited_seconds: float  # Playwright's: from the click until the page says it is done
    response: dict  # what /api/segment answered: labels, structures, inference seconds
    com_mm: dict[str, list[float] | None]  # as shown in the legend
    message: str


def wait_for_state(page, *states: str, timeout_s: float = 120) -> str:
    """Wait until the page's body[data-state] is one of `states` or "error"; returns it."""
    selector = ", ".join(f"body[data-state={state}]" for state in (*states, "error"))
    page.wait_for_selector(selector, timeout=timeout_s * 1000)
    return page.evaluate("document.body.dataset.state")


def message(page) -> str:
    return page.inner_text("#message")


def open_page(page, base_url: str) -> None:
    page.goto(base_url)
    assert wait_for_state(page, "ready") == "ready", message(page)


def legend_coms(page) -> dict[str, list[float] | None]:
    coms = {}
    for row in page.locator("#legend tbody tr").all():
        cells = [row.locator(f".com-{axis}").inner_text() for axis in "xyz"]
        coms[row.get_attribute("data-structure")] = None if "–" in cells else [float(cell) for cell in cells]
    return coms


def segment_on_page(page, path: str, model: str, opacity: float = 1.0) -> PageRun:
    """On the open page: choose `path` of the data folder and `model`, segment, set the mask opacity;
    screenshots of the views before and after."""
    page.select_option("#file", path)
    assert wait_for_state(page, "image") == "image", message(page)
    page.select_option("#model", model)
    page.wait_for_timeout(300)  # NiiVue draws on the next frames
    before = page.locator("#views").screenshot()
    clicked = time.perf_counter()
    with page.expect_response("**/api/segment") as answer:
        page.click("#segment")
    state = wait_for_state(page, "segmented")
    waited = time.perf_counter() - clicked
    assert state == "segmented", message(page)
    page.locator("#opacity").fill(str(opacity))
    page.wait_for_timeout(300)
    return PageRun(before, page.locator("#views").screenshot(), page.screenshot(),
                   page.evaluate("window.viewerTiming.clickToMaskSeconds"), waited, answer.value.json(),
                   legend_coms(page), message(page))


def pixels_of_colour(png: bytes, rgb: tuple[int, int, int], tolerance: int = 12) -> int:
    """How many pixels of a screenshot are within `tolerance` of a colour in every channel."""
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=int)
    return int((np.abs(image - np.asarray(rgb)).max(axis=-1) <= tolerance).sum())


def main() -> None:
    """Screenshot of a real demo subject segmented by a workflow model, with its timings."""
    import pandas as pd
    import torch

    from deepnuclei.plan_command import load_config
    from deepnuclei.viewer import create_app

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subject", default="07")
    parser.add_argument("--model", default="linus")
    parser.add_argument("--results", default="results")
    parser.add_argument("--config", action="append", default=[], metavar="FILE",
                        help="a config file merged over config/config.yaml, as `deepnuclei view --config`")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="screenshot PNG (default results/viewer/<model>_sub-<subject>.png)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = Path(args.results)
    config = load_config(args.config)
    inputs = config["models"][args.model]["inputs"]
    path = f"sub-{args.subject}/sub-{args.subject}_space-SWI_desc-model_{inputs[0]}.nii.gz"
    app = create_app(results / "preprocess", results, config, 256)
    with running(app) as base_url, browser_page() as page:
        open_page(page, base_url)
        run = segment_on_page(page, path, args.model, opacity=0.7)
    out = Path(args.out or results / "viewer" / f"{args.model}_sub-{args.subject}.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(run.page_after)
    print(f"{out}: {run.message}; click to mask {run.click_to_mask_seconds:.2f} s (page), "
          f"{run.waited_seconds:.2f} s (Playwright), inference {run.response['inference_seconds']:.3f} s")
    for name, com in run.com_mm.items():
        print(f"{name}: centre of mass {com} mm (page)")
    overlap = results / "evaluation" / "overlap.csv"
    if overlap.exists():  # the evaluation's centre of the same prediction, from the workflow's outputs
        table = pd.read_csv(overlap, dtype={"subject": str})
        rows = table[(table.method == args.model) & (table.subject == args.subject)]
        print(rows[["structure", "com_x_mm", "com_y_mm", "com_z_mm"]].to_string(index=False))


if __name__ == "__main__":
    main()
