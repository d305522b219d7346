"""Grounded report pictures: panels, colours, flags, orientation, layout, PNG and self-contained HTML."""

from __future__ import annotations

import base64
import itertools
import re
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex, to_rgb
from test_model_helpers import VOLUME

from reg2rg.constants import REGIONS
from reg2rg.text.parse import RegionReport
from reg2rg.visualize import (
    PALETTE,
    WARNING,
    ground_reports,
    grounded_figure,
    grounded_html,
    open_study,
    region_colour,
    render_study,
    save_grounded_report,
)

VIEW_NAMES = ("axial", "coronal", "sagittal")


def synthetic_cache(root: Path, n_valid: int = 2) -> Path:
    """A tiny synthetic RadGenome dataset and its cache (valid split) at the tiny model's VOLUME."""
    from reg2rg.data.build import build_cache
    from reg2rg.data.preprocessing import PreprocessConfig
    from reg2rg.data.readers import RadGenomeReader
    from reg2rg.data.synthetic import SyntheticConfig, write_dataset

    write_dataset(root, SyntheticConfig(n_train=1, n_valid=n_valid, shape=(40, 40, 20), seed=1))
    records = RadGenomeReader(root).read("valid").records
    build_cache(records, root / "cache", "valid", PreprocessConfig(target_size=VOLUME))
    return root / "cache"


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return synthetic_cache(tmp_path_factory.mktemp("visualize"))


@pytest.fixture
def opened(cache):
    study, sample = open_study(cache, 0)
    yield study, sample
    study.close()


def _mismatched(sample, wrong: int) -> list[RegionReport]:
    """The reference region reports, with region ``wrong`` given another area's name."""
    regions = sample["regions"]
    reports = [RegionReport(i, area, text) for i, (area, text) in enumerate(zip(regions, sample["region_reports"]))]
    other = next(r for r in REGIONS if r != regions[wrong])
    reports[wrong] = RegionReport(wrong, other, reports[wrong].report)
    return reports


def _texts(figure, prefix: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for text in [*figure.texts, *(t for ax in figure.axes for t in ax.texts)]:
        gid = text.get_gid() or ""
        if gid.startswith(prefix):
            found.setdefault(gid, []).append(text.get_text())
    return found


# ----------------------------------------------------------------------------- grounding


def test_ground_reports_flags_exactly_the_wrong_areas():
    truth = ["lung", "heart", "trachea and bronchie", "bone"]
    text = (
        "The region 0 is lung: Clear. The region 1 is lung: Enlarged heart. "
        "The region 2 is Trachea_and_Bronchie: Patent. The region 7 is thyroid: Nodule."
    )
    entries = ground_reports(text, truth)
    by_index = {e.index: e for e in entries}
    assert [e.index for e in entries] == [0, 1, 2, 3, 7]
    assert not by_index[0].mismatch and by_index[0].region == "lung"
    assert by_index[1].mismatch and by_index[1].flag == "predicted lung, true heart" and by_index[1].region == "heart"
    assert not by_index[2].mismatch  # another spelling of the same area is no mismatch
    assert by_index[3].missing and not by_index[3].mismatch and by_index[3].region == "bone"
    assert by_index[7].mismatch and by_index[7].region is None and "no input region 7" in by_index[7].flag
    assert by_index[1].header() == f"{WARNING} Region 1 - predicted lung, true heart"
    assert by_index[0].header() == "Region 0 - lung"
    assert by_index[1].colour == PALETTE["heart"]  # a report takes the colour of the mask it was written for
    assert by_index[7].colour == region_colour(None)


def test_ground_reports_inputs():
    # without the true areas nothing can be flagged; the named areas are the regions
    assert not any(e.mismatch for e in ground_reports("The region 0 is heart: ok. The region 1 is lung: ok."))
    # text without region prefixes (RRA off) is one ungrounded report
    [entry] = ground_reports("No prefixes at all.", ["lung"])
    assert entry.index is None and not entry.mismatch and "not grounded" in entry.header()
    assert ground_reports("", ["lung"]) == []
    # a mapping {area: report} follows the given region order, skipping empty reports
    entries = ground_reports({"lung": "Clear.", "heart": "", "bone": "Intact."}, ["bone", "lung", "heart"])
    assert [(e.index, e.region, e.predicted) for e in entries] == [
        (0, "bone", "bone"),
        (1, "lung", "lung"),
        (2, "heart", None),
    ]
    # numbering from first_index
    entries = ground_reports("The region 1 is lung: a. The region 2 is lung: b.", ["lung", "heart"], first_index=1)
    assert [e.mismatch for e in entries] == [False, True]
    with pytest.raises(TypeError):
        ground_reports([1, 2], ["lung"])


def test_palette_is_fixed_distinct_and_complete():
    assert tuple(PALETTE) == REGIONS
    assert len({to_hex(c) for c in PALETTE.values()}) == len(REGIONS)
    assert region_colour("Trachea_and_Bronchie") == PALETTE["trachea and bronchie"]


# ----------------------------------------------------------------------------- the figure


def test_figure_has_three_views_legend_and_palette_colours(opened):
    study, sample = opened
    figure = grounded_figure(study, _mismatched(sample, 1), truth_regions=sample["regions"])
    axes = {ax.get_label(): ax for ax in figure.axes}
    assert set(axes) == {*VIEW_NAMES, "legend"}
    grounding = figure.grounding
    assert grounding.regions == sample["regions"]
    assert set(grounding.slices) == set(VIEW_NAMES)
    palette_rgb = {to_hex(c) for c in PALETTE.values()}
    shown = set()
    for view in VIEW_NAMES:
        ax = axes[view]
        assert ax.get_title().startswith(view.capitalize())
        assert len(ax.images) == 2  # the CT slice and the mask fills
        contour_colours = {to_hex(c[:3]) for artist in ax.collections for c in artist.get_edgecolor()}
        assert contour_colours and contour_colours <= palette_rgb
        shown |= {r for r in grounding.regions if to_hex(PALETTE[r]) in contour_colours}
    assert shown == set(grounding.regions) - set(grounding.hidden)
    legend = axes["legend"].get_legend()
    labels = [t.get_text().replace(" (not in these slices)", "") for t in legend.get_texts()]
    assert labels == grounding.regions
    for handle, region in zip(legend.legend_handles, labels):
        assert to_hex(handle.get_edgecolor()) == PALETTE[region]
    # the reports sit beside the images in their region's colour swatch
    swatches = {
        p.get_gid(): to_hex(p.get_facecolor()) for p in figure.artists if (p.get_gid() or "").startswith("swatch")
    }
    assert swatches == {f"swatch-{i}": PALETTE[r] for i, r in enumerate(sample["regions"])}


def test_mismatch_flag_only_on_mismatched_regions(opened):
    study, sample = opened
    figure = grounded_figure(study, _mismatched(sample, 2), truth_regions=sample["regions"])
    headers = _texts(figure, "header-")
    assert len(headers) == len(sample["regions"])
    for i, region in enumerate(sample["regions"]):
        header = " ".join(headers[f"header-{i}"])
        assert (WARNING in header) == (i == 2), header
        assert region in header
    flagged = " ".join(headers["header-2"])
    assert "predicted" in flagged and f"true {sample['regions'][2]}" in flagged
    boxes = [p.get_gid() for p in figure.artists if (p.get_gid() or "").startswith("flag-box")]
    assert boxes == ["flag-box-2"]
    assert WARNING in " ".join(_texts(figure, "legend-note")["legend-note"])
    # no mismatch: no flag anywhere
    reference = dict(zip(sample["regions"], sample["region_reports"]))
    clean = grounded_figure(study, reference, truth_regions=sample["regions"])
    assert not any(WARNING in t.get_text() for t in clean.texts)
    assert not any(WARNING in t.get_text() for ax in clean.axes for t in ax.texts)


def test_text_is_wrapped_inside_the_figure_without_overlaps(opened):
    study, sample = opened
    long = "Multiple millimetric nonspecific nodules are seen in both lungs, the largest in the right lower lobe. " * 6
    reports = [RegionReport(i, a, long + "x" * 300) for i, a in enumerate(sample["regions"])]
    short = grounded_figure(study, reports[:1], truth_regions=sample["regions"][:1])
    figure = grounded_figure(study, reports, truth_regions=sample["regions"], caption="long reports")
    assert figure.get_figheight() > short.get_figheight()  # the page grows instead of cramming
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    inside = figure.bbox.padded(-1)
    for text in figure.texts:
        box = text.get_window_extent(renderer)
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1, text
    report_lines = [
        t.get_window_extent(renderer) for t in figure.texts if (t.get_gid() or "").startswith(("header-", "body-"))
    ]
    assert len(report_lines) > 10 * len(reports)  # wrapped
    images_right = max(ax.get_window_extent(renderer).x1 for ax in figure.axes)
    assert min(box.x0 for box in report_lines) > images_right  # beside the images, not over them
    report_lines.sort(key=lambda box: -box.y1)
    for upper, lower in itertools.pairwise(report_lines):
        assert lower.y1 <= upper.y0 + 0.5, "report lines overlap"


class _FakeStudy:
    """The part of CachedStudy the figure reads, for a volume stored in any orientation."""

    def __init__(self, volume: np.ndarray, masks: dict[str, np.ndarray], affine: np.ndarray):
        self.volume = volume
        self.crop_shape = volume.shape
        self.path = Path("fake.npz")
        self._masks = {}
        regions = {}
        for region, mask in masks.items():
            where = np.nonzero(mask)
            box = [(int(w.min()), int(w.max()) + 1) for w in where]
            regions[region] = {"mask_box": box}
            self._masks[region] = mask[tuple(slice(lo, hi) for lo, hi in box)]
        self.meta = {"study_id": "fake", "affine": affine.tolist(), "regions": regions}

    @property
    def regions(self):
        return list(self.meta["regions"])

    def mask(self, region):
        return self._masks[region]


def _marker_study(flip_xy: bool) -> _FakeStudy:
    """A box body with a 'heart' block at patient left-anterior-superior; stored RAS or LPS (x, y flipped)."""
    shape = (20, 16, 12)
    volume = np.full(shape, -1000, dtype=np.int16)
    volume[2:18, 2:14, 1:11] = 40
    heart = np.zeros(shape, dtype=bool)
    heart[14:17, 10:13, 7:10] = True  # high x = Left, high y = Anterior, high z = Superior
    lung = np.zeros(shape, dtype=bool)
    lung[3:17, 3:13, 2:10] = True
    affine = np.diag([2.0, 2.5, 3.0, 1.0])
    if flip_xy:  # the same patient stored in LPS voxel order
        volume, heart, lung = (a[::-1, ::-1] for a in (volume, heart, lung))
        affine = np.diag([-2.0, -2.5, 3.0, 1.0])
    return _FakeStudy(np.ascontiguousarray(volume), {"heart": heart, "lung": lung}, affine)


def _fill_centre(figure, view: str, region: str) -> tuple[float, float]:
    """(row, column) centre of ``region``'s fill in ``view``, as fractions of the image size."""
    ax = next(a for a in figure.axes if a.get_label() == view)
    fill = np.asarray(ax.images[1].get_array())
    rows, cols = np.nonzero(np.all(np.isclose(fill[..., :3], to_rgb(PALETTE[region])), axis=-1) & (fill[..., 3] > 0))
    return rows.mean() / fill.shape[0], cols.mean() / fill.shape[1]


@pytest.mark.parametrize("flip_xy", [False, True])
def test_radiological_orientation_from_the_affine(flip_xy):
    study = _marker_study(flip_xy)
    figure = grounded_figure(study, "The region 0 is heart: a. The region 1 is lung: b.", ["heart", "lung"])
    row, col = _fill_centre(figure, "axial", "heart")
    assert row < 0.5 and col > 0.5  # anterior up, patient left on the image's right
    row, col = _fill_centre(figure, "coronal", "heart")
    assert row < 0.5 and col > 0.5  # superior up, patient left on the right
    row, col = _fill_centre(figure, "sagittal", "heart")
    assert row < 0.5 and col < 0.5  # superior up, anterior on the left
    letters = {t.get_gid(): t.get_text() for ax in figure.axes for t in ax.texts if t.get_gid()}
    assert [letters[f"axial-{edge}"] for edge in ("left", "right", "top", "bottom")] == ["R", "L", "A", "P"]
    assert [letters[f"coronal-{edge}"] for edge in ("left", "right", "top", "bottom")] == ["R", "L", "S", "I"]
    assert [letters[f"sagittal-{edge}"] for edge in ("left", "right", "top", "bottom")] == ["A", "P", "S", "I"]
    axial = next(a for a in figure.axes if a.get_label() == "axial")
    x0, x1 = axial.get_xlim()
    y0, y1 = axial.get_ylim()
    assert abs(x1 - x0) == pytest.approx(20 * 2.0) and abs(y0 - y1) == pytest.approx(16 * 2.5)  # mm: true aspect
    # both storage orders give the same slices and the same pictures
    other = grounded_figure(_marker_study(not flip_xy), "", ["heart", "lung"])
    assert figure.grounding.slices == other.grounding.slices
    for mine, theirs in zip(figure.axes, other.axes):
        for image, twin in zip(mine.images, theirs.images):
            np.testing.assert_array_equal(image.get_array(), twin.get_array())


def test_arguments_are_checked(opened):
    study, sample = opened
    with pytest.raises(ValueError, match="window"):
        grounded_figure(study, "", sample["regions"], window=(200, -1000))
    with pytest.raises(ValueError, match="unknown views"):
        grounded_figure(study, "", sample["regions"], slices={"oblique": 1})
    with pytest.raises(ValueError, match="outside"):
        grounded_figure(study, "", sample["regions"], slices={"axial": 10_000})
    with pytest.raises(TypeError, match="grounded figure"):
        from matplotlib.figure import Figure

        save_grounded_report(Figure(), "unused.png")


# ----------------------------------------------------------------------------- files


def test_png_and_self_contained_html(opened, tmp_path):
    study, sample = opened
    figure = grounded_figure(study, _mismatched(sample, 0), sample["regions"], caption="a <test> & caption")
    png, page = save_grounded_report(figure, tmp_path / "out" / "study.png", tmp_path / "out" / "study.html")
    data = png.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    text = page.read_text(encoding="utf-8")
    assert "http" not in text.lower() and "<link" not in text and "<script" not in text
    assert re.findall(r'src="([^"]*)"', text) == ["data:image/png;base64," + base64.b64encode(data).decode()]
    assert "a &lt;test&gt; &amp; caption" in text
    for report in sample["region_reports"]:
        assert report.replace("'", "&#x27;") in text
    assert text.count('class="region flagged"') == 1 and "predicted" in text
    for region in sample["regions"]:
        assert PALETTE[region] in text
    # a palette PNG is much smaller and keeps the region colours exact
    small, _ = save_grounded_report(figure, tmp_path / "small.png", colours=256)
    assert small.stat().st_size < len(data)
    from PIL import Image

    pixels = Image.open(small).convert("RGB").getcolors(maxcolors=1 << 16)
    colours = {to_hex(np.array(c) / 255) for _, c in pixels}
    assert {PALETTE[r] for r in sample["regions"]} <= colours  # the swatches
    assert grounded_html(figure).startswith("<!DOCTYPE html>")


def test_open_study_gives_the_model_sample(cache):
    study, sample = open_study(cache, 1)
    try:
        assert sample["image"].shape == (1, *VOLUME)  # the cache's own preprocessing
        assert sample["texture"].shape == (len(sample["regions"]), 1, *VOLUME)
        assert sample["regions"] == [r for r in REGIONS if r in sample["regions"]]  # canonical order
        same, again = open_study(cache, sample["study_id"])
        same.close()
        assert again["regions"] == sample["regions"] and again["study_id"] == sample["study_id"]
    finally:
        study.close()
    with pytest.raises(ValueError, match="out of range"):
        open_study(cache, 99)
    with pytest.raises(ValueError, match="not in"):
        open_study(cache, "no-such-study")


def test_render_study_and_its_script(cache, tmp_path, monkeypatch):
    import runpy
    import sys

    from test_model_helpers import tiny_model

    from reg2rg.models import save_checkpoint

    # without a checkpoint: the reference reports, said so in the caption
    out = tmp_path / "reference.png"
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "render_example.py",
            "--cache",
            str(cache),
            "--study",
            "0",
            "--out",
            str(out),
            "--html",
            str(tmp_path / "reference.html"),
        ],
    )
    runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "render_example.py"), run_name="__main__")
    assert out.read_bytes().startswith(b"\x89PNG") and "not model output" in (tmp_path / "reference.html").read_text()
    # without --out: outputs/grounded_<study>.png of the current folder, never the picture the docs show
    docs_picture = Path(__file__).resolve().parents[1] / "docs" / "images" / "grounded_example.png"
    before = docs_picture.read_bytes()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["render_example.py", "--cache", str(cache), "--study", "0"])
    runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "render_example.py"), run_name="__main__")
    assert (tmp_path / "outputs" / "grounded_0.png").read_bytes().startswith(b"\x89PNG")
    assert docs_picture.read_bytes() == before
    # with a checkpoint: the model's reports
    checkpoint = save_checkpoint(tiny_model(), tmp_path / "checkpoint")
    figure = render_study(cache, 0, checkpoint, max_new_tokens=4, png_path=tmp_path / "model.png")
    assert figure.grounding.caption.startswith("Model output") and (tmp_path / "model.png").is_file()
