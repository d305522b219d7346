"""CE tables: per-label P/R/F1 as the official script defines them, micro/macro/weighted, labels.csv layout."""

import numpy as np
import pytest

from reg2rg.evaluation.ce import classification_table, labels_frame, table_metrics


def test_hand_computed_table():
    truth = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 1, 0]])
    predicted = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])
    table = classification_table(truth, predicted, ["a", "b", "c"])
    # a: TP 2, FP 0, FN 1 -> P 1, R 2/3; b: TP 1, FP 1, FN 1 -> 1/2, 1/2; c: TP 0, FP 1, FN 0 -> 0, 0 (undefined -> 0)
    np.testing.assert_allclose(table.loc["a", ["precision", "recall", "f1"]], [1, 2 / 3, 0.8])
    np.testing.assert_allclose(table.loc["b", ["precision", "recall", "f1"]], [0.5, 0.5, 0.5])
    np.testing.assert_allclose(table.loc["c", ["precision", "recall", "f1"]], [0, 0, 0])
    # micro: TP 3, FP 2, FN 2 -> 3/5, 3/5; macro: plain means; weighted by support 3, 2, 0
    np.testing.assert_allclose(table.loc["micro", ["precision", "recall", "f1"]], [0.6, 0.6, 0.6])
    np.testing.assert_allclose(table.loc["macro", ["precision", "recall", "f1"]], [0.5, (2 / 3 + 0.5) / 3, 1.3 / 3])
    np.testing.assert_allclose(table.loc["weighted", "f1"], (3 * 0.8 + 2 * 0.5) / 5)
    assert table["support"].tolist() == [3, 2, 0, 5, 5, 5]
    assert table_metrics(table)["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="do not fit 2 labels"):
        classification_table(np.zeros((2, 3)), np.zeros((2, 3)), ["a", "b"])


def test_labels_frame_has_the_official_columns():
    frame = labels_frame(["x", "y"], np.array([[1, 0], [0, 1]]), np.array([[0, 0], [1, 1]]), ["A b", "C"])
    assert list(frame.columns) == ["AccNum", "GT_A b", "GT_C", "Pred_A b", "Pred_C"]
    assert frame.loc[1].tolist() == ["y", 0, 1, 1, 1]
