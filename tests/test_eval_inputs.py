"""Bad input: clear errors for unusable files, and every bad row counted and named, never silent."""

import math

import pandas as pd
import pytest

from reg2rg.evaluation.inputs import read_predictions, validate_pairs

GOOD = "The region 0 is lung: No nodule."


def _csv(tmp_path, rows, columns=("AccNum", "GT_combined_report", "Pred_combined_report")):
    path = tmp_path / "predictions.csv"
    pd.DataFrame(rows, columns=list(columns)).to_csv(path, index=False)
    return path


def test_row_problems_are_counted_and_named(caplog):
    pairs = validate_pairs(
        [GOOD, "", GOOD, GOOD, None, "No prefix in the ground truth."],
        [GOOD, GOOD, math.nan, GOOD, GOOD, "Nor here."],
        ["a", "b", "c", "a", "e", "f"],
    )
    assert pairs.ids == ["a", "c", "f"] and pairs.predictions == [GOOD, "", "Nor here."]
    assert pairs.problems == {
        "empty_reference": ["b", "e"],
        "empty_prediction": ["c"],
        "duplicate_id": ["a"],
        "reference_without_region_prefix": ["f"],
        "prediction_without_region_prefix": ["f"],
    }
    assert pairs.metrics() == {
        "rows": 6,
        "evaluated": 3,
        "problems": {
            "empty_reference": 2,
            "empty_prediction": 1,
            "duplicate_id": 1,
            "reference_without_region_prefix": 1,
            "prediction_without_region_prefix": 1,
        },
    }
    assert any("empty_reference (2 rows)" in message and "ids b, e" in message for message in caplog.messages)


def test_nothing_to_evaluate_is_an_error():
    with pytest.raises(ValueError, match="no report pair can be evaluated: empty_reference"):
        validate_pairs(["", None], [GOOD, GOOD])
    with pytest.raises(ValueError, match="2 references, 1 predictions"):
        validate_pairs([GOOD, GOOD], [GOOD])


def test_missing_file_and_columns_say_how_to_fix(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_predictions(tmp_path / "nope.csv")
    path = _csv(tmp_path, [["1", GOOD, GOOD]], columns=("AccNum", "GT_whole_report", "Pred_whole_report"))
    with pytest.raises(ValueError, match=r"no column \['GT_combined_report', 'Pred_combined_report'\].*gt_column="):
        read_predictions(path)
    pairs = read_predictions(path, gt_column="GT_whole_report", pred_column="Pred_whole_report")
    assert pairs.ids == ["1"]


def test_non_utf8_rows_are_kept_and_counted(tmp_path):
    path = tmp_path / "latin1.csv"
    rows = f"AccNum,GT_combined_report,Pred_combined_report\n1,{GOOD} Opacit\u00e9.,{GOOD}\n2,{GOOD},{GOOD}\n"
    path.write_bytes(rows.encode("latin-1"))
    pairs = read_predictions(path)
    assert pairs.ids == ["1", "2"] and pairs.problems == {"non_utf8": ["1"]}
    assert "\ufffd" in pairs.references[0]


def test_missing_id_column_numbers_the_rows(tmp_path):
    path = _csv(tmp_path, [[GOOD, GOOD], [GOOD, GOOD]], columns=("GT_combined_report", "Pred_combined_report"))
    assert read_predictions(path).ids == ["0", "1"]


def test_unreadable_csv_is_an_error(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(ValueError, match="not a readable CSV"):
        read_predictions(path)


def test_an_empty_id_is_counted_and_named_by_its_row(tmp_path):
    pairs = read_predictions(_csv(tmp_path, [["a", GOOD, GOOD], ["", GOOD, GOOD], ["c", GOOD, GOOD]]))
    assert pairs.ids == ["a", "row 2", "c"] and pairs.problems == {"empty_id": ["row 2"]}


def test_utf16_files_are_read_and_named(tmp_path, caplog):
    utf8 = _csv(tmp_path, [["a", GOOD + " ±", GOOD], ["b", GOOD, GOOD]])
    utf16 = tmp_path / "utf16.csv"
    utf16.write_text(utf8.read_text(encoding="utf-8"), encoding="utf-16")  # with a byte-order mark
    pairs = read_predictions(utf16)
    assert pairs.references == read_predictions(utf8).references and "UTF-16" in caplog.text
    no_mark = tmp_path / "utf16le.csv"
    no_mark.write_bytes(utf8.read_text(encoding="utf-8").encode("utf-16-le"))
    with pytest.raises(ValueError, match="utf16le.csv looks UTF-16 or UTF-32 encoded"):
        read_predictions(no_mark)
