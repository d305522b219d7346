"""Region prefixes: protocol stripping, header parsing and region splitting."""

from reg2rg.evaluation.text import has_region_prefix, region_areas, split_regions, strip_region_prefixes, word_count

REPORT = (
    "The region 0 is lung: Emphysema in both lungs.  Nodule in the right lobe. "
    "The region 1 is trachea and bronchie: Trachea is open. The region 2 is Heart: "
    "The region 3 is lung: Minimal atelectasis."
)


def test_strip_region_prefixes_removes_every_prefix_and_collapses_whitespace():
    assert strip_region_prefixes(REPORT) == (
        "Emphysema in both lungs. Nodule in the right lobe. Trachea is open. Minimal atelectasis."
    )


def test_strip_keeps_text_without_prefixes():
    assert strip_region_prefixes("  No   effusion.\n") == "No effusion."


def test_region_areas_reads_full_area_names_by_index():
    assert region_areas(REPORT) == {0: "lung", 1: "trachea and bronchie", 2: "heart", 3: "lung"}


def test_split_regions_joins_segments_and_drops_empty_and_unknown():
    text = REPORT + " The region 4 is spleen: Normal spleen."
    assert split_regions(text) == {
        "lung": "Emphysema in both lungs. Nodule in the right lobe. Minimal atelectasis.",
        "trachea and bronchie": "Trachea is open.",
    }


def test_prefix_detection_and_word_count():
    assert has_region_prefix(REPORT)
    assert not has_region_prefix("Heart is normal. The region is clear.")
    assert word_count(" a  b\nc ") == 3
