"""The classic failures of tables in ONNX, reproduced with the pinned versions, then fixed.

Each test triggers the failure with tabular_pipeline.py's table and pipeline, checks the exception
type and its message (or, for the silent ones, the wrong numbers), then applies the fix from
docs/tabular_pipeline.md's troubleshooting section and checks that it works.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument
from skl2onnx import to_onnx, update_registered_converter
from skl2onnx.common.data_types import FloatTensorType

import tabular_pipeline as tp

ROWS = 300


def session_for(model: Any) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 4  # the tests check the exceptions; keep ONNX Runtime's log quiet
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """The lesson's table as pandas 3 holds it: NaN marks a missing number and a missing string."""
    return tp.make_table(ROWS, seed=0)[0]


@pytest.fixture(scope="module")
def fitted(frame: pd.DataFrame) -> tuple[Any, ort.InferenceSession]:
    """The lesson's pipeline, trained, converted and loaded: (pipeline, session)."""
    target = tp.make_table(ROWS, seed=0)[1]
    pipeline = tp.make_pipeline().fit(tp.fill_missing_categories(frame), target)
    tp.register_debt_to_income()
    return pipeline, session_for(tp.convert(pipeline, tp.fill_missing_categories(frame[:1])))


def raw_feed(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Feed each column as it is, [N, 1], without the casts and fills of tp.frame_to_feed."""
    return {name: frame[name].to_numpy().reshape(-1, 1) for name in frame.columns}


# 1. NaN as the missing marker of a string column -------------------------------------------------


def test_1_nan_marker_for_strings_is_refused_by_the_imputer_converter(frame: pd.DataFrame) -> None:
    target = tp.make_table(ROWS, seed=0)[1]
    pipeline = tp.make_pipeline()
    # The default marker, np.nan: scikit-learn is happy with pandas 3's NaN in a string column...
    pipeline.set_params(preprocess__category__impute__missing_values=np.nan).fit(frame, target)
    tp.register_debt_to_income()
    message = "The converter is implemented when the missing values are string not <class 'float'>."
    with pytest.raises(NotImplementedError, match=re.escape(message)):
        to_onnx(pipeline, frame[:1], target_opset=tp.TARGET_OPSET)  # ...the converter is not.
    # Fix: a string marker ('') on both sides: the imputer's missing_values, and the table's gaps.
    fixed = tp.make_pipeline().fit(tp.fill_missing_categories(frame), target)
    model = tp.convert(fixed, tp.fill_missing_categories(frame[:1]))
    assert any(node.op_type == "Where" for node in model.graph.node)  # the string imputer


# 2. NaN fed to a string input: no error, wrong numbers --------------------------------------------


def test_2_nan_in_a_string_input_silently_becomes_the_text_nan(
    frame: pd.DataFrame, fitted: tuple[Any, ort.InferenceSession]
) -> None:
    pipeline, session = fitted
    expected = pipeline.predict_proba(tp.fill_missing_categories(frame))
    # ONNX Runtime converts each object to text: NaN becomes "nan", a category training never saw.
    _, text = session.run(None, raw_feed(frame))
    difference = np.abs(text - expected).max(axis=1)
    gaps = frame[tp.CATEGORY_COLUMNS].isna().any(axis=1).to_numpy()
    assert difference[gaps].max() > 0.01  # silently wrong on every row with a missing category
    assert difference[~gaps].max() <= tp.ATOL
    # Fix: fill NaN with the marker before the feed, as frame_to_feed does.
    _, probabilities = tp.predict_frame(session, frame)
    np.testing.assert_allclose(probabilities, expected, atol=tp.ATOL)


# 3. The whole DataFrame as one array -------------------------------------------------------------


def test_3_the_whole_frame_as_one_array(
    frame: pd.DataFrame, fitted: tuple[Any, ort.InferenceSession]
) -> None:
    pipeline, session = fitted
    filled = tp.fill_missing_categories(frame)
    # At conversion: a single input X cannot serve a ColumnTransformer that selects columns by name.
    with pytest.raises(RuntimeError, match=re.escape("Unable to find column name 'age' among")):
        to_onnx(pipeline, filled[:1].to_numpy(), target_opset=tp.TARGET_OPSET)
    with pytest.raises(RuntimeError, match=re.escape("Unable to find column name 'age' among")):
        to_onnx(
            pipeline,
            initial_types=[("X", FloatTensorType([None, 6]))],
            target_opset=tp.TARGET_OPSET,
        )
    # At run time: the model has six inputs, one per column.
    message = (
        "Required inputs (['age', 'income', 'debt', 'region', 'housing', 'channel']) "
        "are missing from input feed (['X'])."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        session.run(None, {"X": filled.to_numpy()})
    # Fix: convert with the DataFrame (one input per column) and feed one [N, 1] array per column.
    labels, _ = tp.predict_frame(session, frame)
    np.testing.assert_array_equal(labels, pipeline.predict(filled))


# 4. A column missing from the feed ---------------------------------------------------------------


def test_4_a_column_missing_from_the_feed(
    frame: pd.DataFrame, fitted: tuple[Any, ort.InferenceSession]
) -> None:
    pipeline, session = fitted
    feed = tp.frame_to_feed(session, frame)
    del feed["income"]
    message = (
        "Required inputs (['income']) are missing from input feed "
        "(['age', 'debt', 'region', 'housing', 'channel'])."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        session.run(None, feed)
    with pytest.raises(KeyError, match="the model needs column 'income'"):
        tp.predict_frame(session, frame.drop(columns="income"))
    # Fix: send every column. An unknown value is a gap, NaN, which the imputer fills, exactly as
    # scikit-learn does.
    unknown = frame.assign(income=np.float32(np.nan))
    _, probabilities = tp.predict_frame(session, unknown)
    expected = pipeline.predict_proba(tp.fill_missing_categories(unknown))
    np.testing.assert_allclose(probabilities, expected, atol=tp.ATOL)


# 5. A float column given as float64 or int64 ----------------------------------------------------


@pytest.mark.parametrize(("dtype", "name"), [(np.float64, "double"), (np.int64, "int64")])
def test_5_a_float_column_given_as_float64_or_int64(
    dtype: type, name: str, frame: pd.DataFrame, fitted: tuple[Any, ort.InferenceSession]
) -> None:
    pipeline, session = fitted
    feed = tp.frame_to_feed(session, frame)
    feed["age"] = np.nan_to_num(feed["age"]).astype(dtype)
    message = f"Unexpected input data type. Actual: (tensor({name})) , expected: (tensor(float))"
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        session.run(None, feed)
    # Fix: cast to the declared type, as frame_to_feed does (float64 and int64 columns alike).
    changed = frame.assign(age=frame["age"].fillna(40).round().astype(dtype))
    _, probabilities = tp.predict_frame(session, changed)
    expected = pipeline.predict_proba(tp.fill_missing_categories(changed))
    np.testing.assert_allclose(probabilities, expected, atol=tp.ATOL)


def test_5_float64_columns_at_conversion(
    frame: pd.DataFrame, fitted: tuple[Any, ort.InferenceSession]
) -> None:
    pipeline, _ = fitted
    example = tp.fill_missing_categories(frame[:1]).astype(
        {column: np.float64 for column in tp.NUMBER_COLUMNS}
    )
    # Our shape calculator accepts float only, so conversion stops with a clear message...
    with pytest.raises(
        RuntimeError, match=r"got an input \w+ with a wrong type .*DoubleTensorType"
    ):
        tp.convert(pipeline, example)

    # ...where a shape calculator without that check lets through a model no runtime can load.
    def lax_shape(operator: Any) -> None:
        operator.outputs[0].type = FloatTensorType([operator.inputs[0].get_first_dimension(), 1])

    try:
        update_registered_converter(
            tp.DebtToIncome, "OnnxByExampleDebtToIncome", lax_shape, tp.debt_to_income_converter
        )
        model = tp.convert(pipeline, example)
    finally:
        tp.register_debt_to_income()
    with pytest.raises(Fail, match=re.escape("bound to different types (tensor(double) and ")):
        session_for(model)
    # Fix: keep float columns float32 from the start, as make_table does.
    assert session_for(tp.convert(pipeline, tp.fill_missing_categories(frame[:1])))


# 6. The columns in another order -----------------------------------------------------------------


def test_6_columns_in_another_order_change_nothing(
    frame: pd.DataFrame, fitted: tuple[Any, ort.InferenceSession]
) -> None:
    pipeline, session = fitted
    shuffled = frame[list(reversed(frame.columns))]
    # ONNX Runtime matches inputs by name, and the ColumnTransformer selects columns by name.
    _, probabilities = tp.predict_frame(session, shuffled)
    _, in_order = tp.predict_frame(session, frame)
    np.testing.assert_array_equal(probabilities, in_order)
    np.testing.assert_array_equal(
        pipeline.predict_proba(tp.fill_missing_categories(shuffled)),
        pipeline.predict_proba(tp.fill_missing_categories(frame)),
    )


# 7. A category never seen in training -------------------------------------------------------------


def test_7_unseen_category_with_handle_unknown_ignore(
    fitted: tuple[Any, ort.InferenceSession],
) -> None:
    pipeline, session = fitted
    rows = tp.edge_rows()
    # 'kiosk' is not a channel the table has: a row of zeros on both sides, the same probability.
    _, probabilities = tp.predict_frame(session, rows)
    expected = pipeline.predict_proba(tp.fill_missing_categories(rows))
    np.testing.assert_allclose(probabilities, expected, atol=tp.ATOL)
    assert all("[0 0 0 0 0]" in line for line in tp.compare_one_hot(pipeline, rows)[2:])


def test_7_unseen_category_without_handle_unknown_ignore(frame: pd.DataFrame) -> None:
    target = tp.make_table(ROWS, seed=0)[1]
    pipeline = tp.make_pipeline()
    pipeline.set_params(preprocess__category__onehot__handle_unknown="error")
    pipeline.fit(tp.fill_missing_categories(frame), target)
    tp.register_debt_to_income()
    session = session_for(tp.convert(pipeline, tp.fill_missing_categories(frame[:1])))
    rows = tp.edge_rows()[1:2]  # channel 'kiosk'
    # Both sides refuse the row, each in its own words.
    with pytest.raises(
        ValueError,
        match=re.escape("Found unknown categories ['kiosk'] in column 2 during transform"),
    ):
        pipeline.predict_proba(tp.fill_missing_categories(rows))
    with pytest.raises(Fail, match=re.escape("Unknown Category and zeros = 0.")):
        tp.predict_frame(session, rows)
    # Known categories pass; the fix for unknown ones is handle_unknown='ignore' (test_7 above).
    assert tp.predict_frame(session, frame[:5])[0].shape == (5,)
