"""Tests of tabular_pipeline.py: each step in process, with small settings, against references.

The command-line plumbing (signals, pipes, the output folder, publishing) is the block every lesson
shares; tests/test_plumbing.py tests it. Here: the lesson's numbers and files, its own flag, a
planted mismatch, and the deployment side in a process where the training libraries cannot load.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import skl2onnx._supported_operators
from onnx import TensorProto, helper
from skl2onnx import to_onnx
from skl2onnx.common.exceptions import MissingShapeCalculator
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

import tabular_pipeline as tp

ROOT = Path(__file__).resolve().parent.parent
ROWS = 400

Table = tuple[pd.DataFrame, np.ndarray, np.ndarray]  # frame, target, the rule's probability
Trained = tuple[Any, pd.DataFrame, pd.DataFrame, onnx.ModelProto]  # pipeline, splits, model

# Python run first in a fresh process: the training-side libraries cannot be imported there.
BLOCK_TRAINING_LIBRARIES = textwrap.dedent(
    """
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"sklearn", "skl2onnx", "onnx", "joblib", "scipy"}:
                raise ImportError(f"{name} is blocked in this test")

    sys.meta_path.insert(0, Block())
    """
)


def session_of(model: onnx.ModelProto) -> ort.InferenceSession:
    """A CPU session on a model held in memory."""
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def table() -> Table:
    return tp.make_table(ROWS, seed=0)


@pytest.fixture(scope="module")
def trained(table: Table) -> Trained:
    """Train and convert once for the tests below: pipeline, splits and model."""
    pipeline, train_frame, test_frame = tp.train(*table, seed=0)
    tp.register_debt_to_income()
    model = tp.convert(pipeline, tp.fill_missing_categories(train_frame[:1]))
    return pipeline, train_frame, test_frame, model


@pytest.fixture(scope="module")
def session(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> ort.InferenceSession:
    """The model saved with onnx.save_model and loaded back with load_session."""
    path = tmp_path_factory.mktemp("models") / tp.MODEL_FILE
    onnx.save_model(trained[3], path)
    return tp.load_session(path)


# --- 1. Build ------------------------------------------------------------------------------------


def test_table_has_float32_numbers_string_categories_gaps_and_rare_values(table: Table) -> None:
    frame, target, probability = table
    assert list(frame.columns) == tp.NUMBER_COLUMNS + tp.CATEGORY_COLUMNS
    assert len(frame) == ROWS and target.shape == probability.shape == (ROWS,)
    for column in tp.NUMBER_COLUMNS:
        assert frame[column].dtype == np.float32
    for column in tp.CATEGORY_COLUMNS:
        assert pd.api.types.is_string_dtype(frame[column])
    # Gaps where the lesson promises them, NaN as pandas 3 marks them, and none elsewhere.
    gaps = {column for column in frame.columns if frame[column].isna().any()}
    assert gaps == {"age", "income", "region", "housing"}
    assert not frame["region"].dropna().eq("").any()
    shares = frame["channel"].value_counts(normalize=True)
    assert shares["partner"] < 0.05 and shares["fax"] < 0.05 and shares["web"] > 0.5
    assert set(np.unique(target)) == {0, 1}
    # The labels follow the rule: about as many defaults as the rule's probabilities predict.
    assert abs(target.mean() - probability.mean()) < 0.05


def test_table_follows_the_stated_rule(table: Table) -> None:
    frame, _, probability = table
    # Recompute the rule from the printed formula on rows where nothing is missing.
    rows = frame.dropna()
    ratio = rows["debt"].to_numpy(np.float64) / rows["income"].to_numpy(np.float64)
    log_odds = (
        -1
        + 4 * (ratio - 0.4)
        - 0.03 * (rows["age"].to_numpy(np.float64) - 45)
        + 0.8 * (rows["housing"] == "rent").to_numpy()
        - 0.6 * (rows["housing"] == "own").to_numpy()
        + 1.0 * (rows["channel"] == "partner").to_numpy()
    )
    # float32 columns: the rule's probability is known to about 1e-6.
    np.testing.assert_allclose(1 / (1 + np.exp(-log_odds)), probability[rows.index], atol=1e-5)


def test_table_is_seeded(table: Table) -> None:
    frame, target, _ = table
    again, target_again, _ = tp.make_table(ROWS, seed=0)
    pd.testing.assert_frame_equal(frame, again)
    np.testing.assert_array_equal(target, target_again)
    assert not frame.equals(tp.make_table(ROWS, seed=1)[0])


def test_fill_missing_categories_touches_only_missing_categories(table: Table) -> None:
    frame = table[0]
    filled = tp.fill_missing_categories(frame)
    for column in tp.CATEGORY_COLUMNS:
        gaps = frame[column].isna()
        assert (filled.loc[gaps, column] == tp.MISSING_CATEGORY).all()
        assert filled.loc[~gaps, column].equals(frame.loc[~gaps, column])
    pd.testing.assert_frame_equal(filled[tp.NUMBER_COLUMNS], frame[tp.NUMBER_COLUMNS])
    assert frame["region"].isna().any()  # the caller's frame is left alone


def test_edge_rows_bring_gaps_and_categories_the_table_never_has(table: Table) -> None:
    rows = tp.edge_rows()
    assert rows.iloc[0].isna().all() and not rows.iloc[1].isna().any()
    assert list(rows.columns) == list(table[0].columns)
    assert list(rows.dtypes) == list(table[0].dtypes)
    assert rows[tp.NUMBER_COLUMNS].iloc[1].tolist() == [35, 40, 20]
    assert rows["channel"].tolist()[1:] == [tp.UNSEEN["channel"]] * 2
    for column, value in tp.UNSEEN.items():
        assert rows[column].iloc[2] == value and value not in set(table[0][column])


# --- 2. Train ------------------------------------------------------------------------------------


def test_debt_to_income_divides_in_float32() -> None:
    x = np.array([[10.0, 40.0], [3.0, 7.0], [1.0, 3.0]])
    ratio = tp.DebtToIncome().fit(x).transform(x)
    assert ratio.dtype == np.float32 and ratio.shape == (3, 1)
    expected = x.astype(np.float32)[:, [0]] / x.astype(np.float32)[:, [1]]
    np.testing.assert_array_equal(ratio, expected)
    assert tp.DebtToIncome().get_feature_names_out().tolist() == ["debt_to_income"]
    with pytest.raises(ValueError, match="expects 2 columns"):
        tp.DebtToIncome().transform(np.ones((2, 3)))


def test_pipeline_learns_the_rule(trained: Trained, table: Table) -> None:
    pipeline, _, test_frame, _ = trained
    names = [n.split("__")[1] for n in pipeline[:-1].get_feature_names_out()]
    coefficients = dict(zip(names, pipeline[-1].coef_[0], strict=True))
    # The ratio drives the rule: the strongest feature, with the rule's sign.
    assert max(coefficients, key=lambda n: abs(coefficients[n])) == "debt_to_income"
    assert coefficients["debt_to_income"] > 0 and coefficients["age"] < 0
    assert coefficients["housing_rent"] > coefficients["housing_own"]
    assert len(test_frame) == ROWS * tp.TEST_SIZE
    target = table[1]
    predicted = pipeline.predict(tp.fill_missing_categories(test_frame))
    assert np.mean(predicted == target[test_frame.index]) > 0.7


# --- 3. Convert ----------------------------------------------------------------------------------


def test_conversion_fails_before_the_converter_is_registered(
    trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    pipeline, train_frame, _, _ = trained
    # Forget the registration for this test only (monkeypatch restores it afterwards).
    monkeypatch.delitem(skl2onnx._supported_operators.sklearn_operator_name_map, tp.DebtToIncome)
    example = tp.fill_missing_categories(train_frame[:1])
    with pytest.raises(MissingShapeCalculator, match="Unable to find a shape calculator for type"):
        to_onnx(pipeline, example, target_opset=tp.TARGET_OPSET)
    message = tp.show_missing_converter(pipeline, example)
    assert message.startswith("MissingShapeCalculator: Unable to find a shape calculator for type")
    assert "DebtToIncome" in message and "\n" not in message
    tp.register_debt_to_income()
    assert tp.show_missing_converter(pipeline, example).startswith("it converted")


def test_custom_converter_alone_gives_numpy_quotient_bit_for_bit() -> None:
    x = np.array([[10.0, 40.0], [3.0, 7.0], [1.0, 3.0], [0.1, 0.7]], dtype=np.float32)
    step = tp.DebtToIncome().fit(x)
    tp.register_debt_to_income()
    model = to_onnx(step, x[:1], target_opset=tp.TARGET_OPSET)
    assert [node.op_type for node in model.graph.node] == ["Split", "Div"]
    (output,) = model.graph.output
    rows, width = output.type.tensor_type.shape.dim  # what the shape calculator declared
    assert output.type.tensor_type.elem_type == TensorProto.FLOAT
    assert not rows.HasField("dim_value") and width.dim_value == 1
    (ratio,) = session_of(model).run(None, {model.graph.input[0].name: x})
    np.testing.assert_array_equal(ratio, step.transform(x))


def test_shape_calculator_refuses_double_columns(trained: Trained) -> None:
    pipeline, train_frame, _, _ = trained
    example = tp.fill_missing_categories(train_frame[:1])
    example = example.astype({column: np.float64 for column in tp.NUMBER_COLUMNS})
    with pytest.raises(RuntimeError, match=r"got an input .* wrong type .*DoubleTensorType"):
        tp.convert(pipeline, example)


def test_model_has_one_input_per_column_named_and_typed_after_it(trained: Trained) -> None:
    model = trained[3]
    onnx.checker.check_model(model, full_check=True)
    inputs = [(v.name, v.type.tensor_type.elem_type) for v in model.graph.input]
    assert inputs == [(name, TensorProto.FLOAT) for name in tp.NUMBER_COLUMNS] + [
        (name, TensorProto.STRING) for name in tp.CATEGORY_COLUMNS
    ]
    for value in model.graph.input:
        rows, width = value.type.tensor_type.shape.dim
        assert rows.WhichOneof("value") is None and width.dim_value == 1  # rows: no name, no size
    outputs = {v.name: v.type.tensor_type.elem_type for v in model.graph.output}
    assert outputs == {"label": TensorProto.INT64, "probabilities": TensorProto.FLOAT}
    operators = {node.op_type for node in model.graph.node}
    assert {"Split", "Div", "Imputer", "OneHotEncoder", "LinearClassifier"} <= operators
    assert "ZipMap" not in operators
    assert model.ir_version == tp.IR_VERSION == 10
    # One entry per domain, sorted (skl2onnx's own order follows PYTHONHASHSEED).
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 22), ("ai.onnx.ml", 2)]


def test_describe_model_prints_each_kind_of_dimension_its_own_way(
    trained: Trained, capsys: pytest.CaptureFixture[str]
) -> None:
    # The convention of every lesson: a name, a number, or ? for a dimension with neither.
    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, None])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [value], [value])
    graph.output[0].name = "y"
    tp.describe_model(helper.make_model(graph))
    out = capsys.readouterr().out
    assert "inputs, one per column: x: float [N, 3, ?]\n" in out
    assert "1 nodes: Identity x1\n" in out
    tp.describe_model(trained[3])
    out = capsys.readouterr().out
    assert "age: float [?, 1]" in out and "channel: string [?, 1]\n" in out
    assert "outputs: label: int64 [?], probabilities: float [?, 2]\n" in out
    assert "opsets: ai.onnx 22, ai.onnx.ml 2\n" in out
    # ONNX Runtime says None where the file has neither a name nor a size.
    assert session_of(trained[3]).get_inputs()[0].shape == [None, 1]


# --- 6. Load and 7. Run --------------------------------------------------------------------------


def test_load_session_runs_on_the_cpu(session: ort.InferenceSession) -> None:
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert [i.name for i in session.get_inputs()] == tp.NUMBER_COLUMNS + tp.CATEGORY_COLUMNS


def test_frame_to_feed_gives_one_typed_column_per_input(session: ort.InferenceSession) -> None:
    rows = tp.edge_rows()
    rows["age"] = rows["age"].astype(np.float64)  # cast back to the declared float32
    rows["debt"] = np.array([1, 2, 3], dtype=np.int64)
    feed = tp.frame_to_feed(session, rows[list(reversed(rows.columns))])
    assert list(feed) == tp.NUMBER_COLUMNS + tp.CATEGORY_COLUMNS  # the model's order
    for name in tp.NUMBER_COLUMNS:
        assert feed[name].dtype == np.float32 and feed[name].shape == (3, 1)
    assert np.isnan(feed["age"][0, 0]) and feed["debt"][:, 0].tolist() == [1.0, 2.0, 3.0]
    assert feed["region"].dtype == object and feed["region"].shape == (3, 1)
    assert feed["region"][:, 0].tolist() == [tp.MISSING_CATEGORY, "north", "overseas"]


def test_frame_to_feed_names_a_missing_column_and_a_wrong_type(
    session: ort.InferenceSession,
) -> None:
    with pytest.raises(KeyError, match="the model needs column 'income'"):
        tp.frame_to_feed(session, tp.edge_rows().drop(columns="income"))
    rows = tp.edge_rows()
    rows["channel"] = [1.5, 2.5, 3.5]
    with pytest.raises(TypeError, match=r"column 'channel' must hold strings, found 1\.5"):
        tp.frame_to_feed(session, rows)
    graph = helper.make_graph(
        [helper.make_node("Identity", ["count"], ["same"])],
        "counts",
        [helper.make_tensor_value_info("count", TensorProto.INT64, [None, 1])],
        [helper.make_tensor_value_info("same", TensorProto.INT64, [None, 1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)], ir_version=10)
    with pytest.raises(TypeError, match=r"input 'count' has type tensor\(int64\), not handled"):
        tp.frame_to_feed(session_of(model), pd.DataFrame({"count": [1, 2]}))


def test_predictions_equal_scikit_learn_on_held_out_and_new_rows(
    trained: Trained, session: ort.InferenceSession
) -> None:
    pipeline, _, test_frame, _ = trained
    for rows in (test_frame, tp.edge_rows()):
        labels, probabilities = tp.predict_frame(session, rows)
        filled = tp.fill_missing_categories(rows)
        np.testing.assert_array_equal(labels, pipeline.predict(filled))
        expected = pipeline.predict_proba(filled)
        np.testing.assert_allclose(probabilities, expected, atol=tp.ATOL)
        difference = tp.compare("rows", probabilities, expected)
        assert difference == np.max(np.abs(probabilities - expected)) <= tp.ATOL


# --- 7. Verify -----------------------------------------------------------------------------------


def test_compare_returns_the_largest_difference_and_names_what_disagreed() -> None:
    expected = np.array([[0.0, 1.0], [0.5, 0.5]])
    moved = np.array([[0.0, 1.0], [0.5 + 3e-6, 0.5 - 3e-6]])
    assert tp.compare("held", moved, expected) == pytest.approx(3e-6)
    with pytest.raises(AssertionError, match=r"^held: probabilities differ .* by 0\.002$"):
        tp.compare("held", expected + 0.002, expected)
    with pytest.raises(AssertionError, match=r"held: probabilities \(2, 1\), not \(2, 2\)"):
        tp.compare("held", expected[:, :1], expected)
    at_tolerance = np.array([[tp.ATOL, 1.0], [0.5, 0.5]])  # "within atol" includes atol itself
    assert tp.compare("held", at_tolerance, expected) == tp.ATOL
    with pytest.raises(AssertionError, match="differ"):
        tp.compare("held", np.array([[np.nan, 1.0], [0.5, 0.5]]), expected)


def test_verify_refuses_a_label_that_differs_from_predict(
    trained: Trained, session: ort.InferenceSession
) -> None:
    pipeline, _, test_frame, _ = trained

    class Flipped:
        """The pipeline, with its fourth label flipped."""

        def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
            return pipeline.predict_proba(frame)

        def predict(self, frame: pd.DataFrame) -> np.ndarray:
            labels = pipeline.predict(frame)
            labels[3] = 1 - labels[3]
            return labels

    with pytest.raises(AssertionError, match="held: 1 of 100 labels differ from predict"):
        tp.verify(session, Flipped(), "held", test_frame, test_frame)


def test_verify_counts_gaps_and_unseen_categories_in_any_column(
    trained: Trained, session: ort.InferenceSession, capsys: pytest.CaptureFixture[str]
) -> None:
    pipeline, train_frame, _, _ = trained
    rows = pd.concat([train_frame[:4]] * 2, ignore_index=True)
    rows.loc[0, "region"] = tp.UNSEEN["region"]  # unseen in the first category column only
    rows.loc[1, "housing"] = tp.UNSEEN["housing"]
    rows.loc[2, "channel"] = tp.UNSEEN["channel"]
    rows.loc[3, tp.CATEGORY_COLUMNS] = np.nan  # missing is not unseen
    rows.loc[4, "age"] = np.nan
    expected = int(rows[tp.NUMBER_COLUMNS].isna().any(axis=1).sum())
    probabilities = tp.verify(session, pipeline, "rows", rows, train_frame)
    np.testing.assert_allclose(
        probabilities, pipeline.predict_proba(tp.fill_missing_categories(rows)), atol=tp.ATOL
    )
    out = capsys.readouterr().out
    missing = int(rows[tp.CATEGORY_COLUMNS].isna().any(axis=1).sum())
    assert f"8 rows ({expected} with a missing number, {missing} with a missing category, 3 " in out


def test_one_hot_of_an_unseen_category_is_all_zeros_in_both(trained: Trained) -> None:
    lines = tp.compare_one_hot(trained[0], tp.edge_rows())
    assert [line.split()[0] for line in lines] == tp.CATEGORY_COLUMNS
    blocks = [line.split(":", 1)[1].split("]") for line in lines]
    blocks = [[block.strip(" [") for block in row if block.strip()] for row in blocks]
    # Row 2 is a renter from the north; row 3 has a category never seen in every column: zeros.
    assert blocks[0][1] == "0 0 1 0 0" and blocks[1][1] == "0 0 0 1"
    assert [row[2] for row in blocks] == ["0 0 0 0 0", "0 0 0 0", "0 0 0 0 0"]


def test_one_hot_comparison_names_the_column_that_differs(
    trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = ColumnTransformer.transform

    def shifted(self: Any, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(real(self, x)) + 1.0  # scikit-learn's features, all moved by one

    monkeypatch.setattr(ColumnTransformer, "transform", shifted)
    with pytest.raises(AssertionError, match=r"^region: one-hot block differs: ONNX \[\["):
        tp.compare_one_hot(trained[0], tp.edge_rows())


def test_every_seed_from_0_to_20_verifies_with_the_smallest_table() -> None:
    # The fragile case: 100 rows, so rare categories are often absent from training.
    tp.register_debt_to_income()
    for seed in range(21):
        frame, target, _ = tp.make_table(tp.MIN_ROWS, seed)
        filled = tp.fill_missing_categories(frame)
        pipeline = tp.make_pipeline().fit(filled[:75], target[:75])
        session = session_of(tp.convert(pipeline, filled[:1]))
        rows = pd.concat([frame[75:], tp.edge_rows()])  # held-out rows and the new ones
        labels, probabilities = tp.predict_frame(session, rows)
        filled = tp.fill_missing_categories(rows)
        np.testing.assert_array_equal(labels, pipeline.predict(filled), f"seed {seed}")
        assert tp.compare(f"seed {seed}", probabilities, pipeline.predict_proba(filled)) <= tp.ATOL


# --- The whole lesson, in process ----------------------------------------------------------------


def test_main_publishes_the_verified_model_the_same_bytes_each_time(tmp_path: Path) -> None:
    args = ["--rows", "200", "--seed", "3"]
    assert tp.main([*args, "--output-dir", str(tmp_path / "first")]) == 0
    assert tp.main([*args, "--output-dir", str(tmp_path / "second")]) == 0
    first = (tmp_path / "first" / tp.MODEL_FILE).read_bytes()
    assert [p.name for p in (tmp_path / "first").iterdir()] == [tp.MODEL_FILE]  # no draft left
    assert first == (tmp_path / "second" / tp.MODEL_FILE).read_bytes()
    # The file is the model the steps build, as onnx.save_model writes it.
    frame, target, probability = tp.make_table(200, 3)
    pipeline, train_frame, _ = tp.train(frame, target, probability, seed=3)
    model = tp.convert(pipeline, tp.fill_missing_categories(train_frame[:1]))
    assert first == model.SerializeToString()
    assert tp.main(["--rows", "200", "--seed", "4", "--output-dir", str(tmp_path / "other")]) == 0
    assert (tmp_path / "other" / tp.MODEL_FILE).read_bytes() != first


@pytest.mark.parametrize("plant", ["probabilities", "labels of the new rows"])
def test_a_mismatch_exits_1_and_publishes_nothing(
    plant: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if plant == "probabilities":  # scikit-learn's reference moved: every row disagrees
        real = Pipeline.predict_proba
        monkeypatch.setattr(Pipeline, "predict_proba", lambda self, x: real(self, x) + 0.01)
        message = "held-out rows: probabilities differ from predict_proba by 0.01"
    else:  # only the three new rows, after the held-out ones have passed
        real = Pipeline.predict
        monkeypatch.setattr(Pipeline, "predict", lambda s, x: real(s, x) ^ (len(x) == 3))
        message = "new rows: 3 of 3 labels differ from predict"
    (tmp_path / tp.MODEL_FILE).write_bytes(b"the previous verified model")
    assert tp.main(["--rows", "200", "--output-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(f"error: verification failed: {message}")
    assert captured.err.count("\n") == 1 and "Verified" not in captured.out
    assert [p.name for p in tmp_path.iterdir()] == [tp.MODEL_FILE]  # no draft left behind
    assert (tmp_path / tp.MODEL_FILE).read_bytes() == b"the previous verified model"


# --- The lesson's flag ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("99", "must be from 100 to 10000000, got 99"),
        (str(tp.MAX_ROWS + 1), "must be from 100 to 10000000, got 10000001"),
        ("9223372036854775808", "must be from 100 to 10000000, got 9223372036854775808"),
        ("many", "expected a whole number (digits 0-9), got 'many'"),
        ("1e6", "expected a whole number (digits 0-9), got '1e6'"),
    ],
)
def test_impossible_row_counts_are_usage_errors_before_any_work(
    rows: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tp.main(["--rows", rows, "--output-dir", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"tabular_pipeline.py: error: argument --rows: {message} (see --help)\n"
    assert captured.out == "" and not (tmp_path / "out").exists()


def test_row_range_ends_are_accepted_and_stated_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert tp.parse_arguments(["--rows", str(tp.MIN_ROWS)]).rows == tp.MIN_ROWS == 100
    assert tp.parse_arguments(["--rows", str(tp.MAX_ROWS)]).rows == tp.MAX_ROWS
    assert tp.parse_arguments([]).rows == 2000
    assert tp.usage_problem(tp.parse_arguments([])) is None
    assert tp.main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal's width
    assert text.startswith("usage: tabular_pipeline.py [-h] [--rows ROWS]")
    assert (tp.__doc__ or "").partition("\n")[0] in text
    assert f"--rows ROWS rows in the table, 100 to {tp.MAX_ROWS}" in text
    assert "0.6 KB of memory a row: 6 GB at most" in text and "(default: 2000)" in text


# --- The deployment side, without the training libraries: only a new process shows it ----------


def test_deployment_needs_only_pandas_numpy_and_onnxruntime(
    trained: Trained, session: ort.InferenceSession, tmp_path: Path
) -> None:
    pipeline, _, test_frame, model = trained
    path = tmp_path / tp.MODEL_FILE
    onnx.save_model(model, path)
    rows = pd.concat([test_frame[:20], tp.edge_rows()], ignore_index=True)
    # A CSV file, as a serving host might receive: floats come back as float64 and missing
    # categories as NaN; predict_frame casts and fills them.
    rows.to_csv(tmp_path / "rows.csv", index=False)
    script = BLOCK_TRAINING_LIBRARIES + textwrap.dedent(
        f"""
        import pandas as pd
        import tabular_pipeline as tp

        assert not hasattr(tp, "DebtToIncome")  # defined only where the training side imports
        try:
            tp.make_pipeline()
        except ImportError as error:
            print("training side:", error)
        session = tp.load_session(tp.Path({str(path)!r}))
        rows = pd.read_csv({str(tmp_path / "rows.csv")!r})
        labels, probabilities = tp.predict_frame(session, rows)
        print(labels.tolist())
        print(probabilities[:, 1].tolist())
        training = {{"sklearn", "skl2onnx", "onnx", "scipy"}}
        print(sorted(m for m in sys.modules if m.split(".")[0] in training))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    blocked, labels, probabilities, imported = result.stdout.splitlines()
    assert blocked.startswith("training side: sklearn") and blocked.endswith(
        "is blocked in this test"
    )
    filled = tp.fill_missing_categories(rows)
    assert labels == str(pipeline.predict(filled).tolist())
    np.testing.assert_allclose(
        json.loads(probabilities), pipeline.predict_proba(filled)[:, 1], atol=tp.ATOL
    )
    assert imported == "[]"
