"""Tests of tabular_pipeline.py: each step in-process, small settings; then what a process shows."""

import argparse
import contextlib
import errno
import io
import json
import os
import platform
import re
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import onnx
import onnxruntime as ort
import pandas as pd
import pytest
import skl2onnx._supported_operators
from onnx import TensorProto
from skl2onnx import to_onnx
from skl2onnx.common.exceptions import MissingShapeCalculator
from sklearn.pipeline import Pipeline

import tabular_pipeline as tp

ROOT = Path(__file__).resolve().parent.parent
ROWS = 400

Table = tuple[pd.DataFrame, np.ndarray, np.ndarray]  # frame, target, the rule's probability
Trained = tuple[Any, pd.DataFrame, pd.DataFrame, onnx.ModelProto]  # pipeline, splits, model
Saved = tuple[Path, Any]  # the model's path and an ONNX Runtime session

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


@pytest.fixture(scope="module")
def table() -> Table:
    return tp.make_table(ROWS, seed=0)


@pytest.fixture(scope="module")
def trained(table: Table) -> Trained:
    """Train, convert and save once for the tests below: pipeline, splits, model and session."""
    pipeline, train_frame, test_frame = tp.train(*table, seed=0)
    tp.register_debt_to_income()
    model = tp.convert(pipeline, tp.fill_missing_categories(train_frame[:1]))
    return pipeline, train_frame, test_frame, model


@pytest.fixture(scope="module")
def saved(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Saved:
    path = tmp_path_factory.mktemp("models") / tp.MODEL_FILE
    tp.save_model(trained[3], path)
    return path, tp.load_session(path)


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
    assert {c for c in frame.columns if frame[c].isna().any()} == {
        "age",
        "income",
        "region",
        "housing",
    }
    assert frame["region"].isna().any() and not frame["region"].dropna().eq("").any()
    shares = frame["channel"].value_counts(normalize=True)
    assert shares["partner"] < 0.05 and shares["fax"] < 0.05 and shares["web"] > 0.5
    assert set(np.unique(target)) == {0, 1}
    # The labels follow the rule: about as many defaults as the rule's probabilities predict.
    assert abs(target.mean() - probability.mean()) < 0.05


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
    assert rows.iloc[0].isna().all()
    assert list(rows.dtypes) == list(table[0].dtypes)
    for column, value in tp.UNSEEN.items():
        assert value in set(rows[column]) and value not in set(table[0][column])


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
    target = table[1]
    accuracy = np.mean(
        pipeline.predict(tp.fill_missing_categories(test_frame)) == target[test_frame.index]
    )
    assert accuracy > 0.7


def test_train_reports_steps_accuracy_and_coefficients(
    table: Table, capsys: pytest.CaptureFixture[str]
) -> None:
    tp.train(*table, seed=0)
    out = capsys.readouterr().out
    assert "ratio    [debt, income]" in out and "DebtToIncome -> StandardScaler" in out
    assert "held-out accuracy 0." in out and "largest coefficients: debt_to_income +" in out


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


def test_custom_converter_alone_gives_numpy_quotient_bit_for_bit(saved: Saved) -> None:
    x = np.array([[10.0, 40.0], [3.0, 7.0], [1.0, 3.0], [0.1, 0.7]], dtype=np.float32)
    step = tp.DebtToIncome().fit(x)
    model = to_onnx(step, x[:1], target_opset=tp.TARGET_OPSET)
    assert [node.op_type for node in model.graph.node] == ["Split", "Div"]
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (ratio,) = session.run(None, {model.graph.input[0].name: x})
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
        assert not rows.HasField("dim_value") and width.dim_value == 1
    outputs = {v.name: v.type.tensor_type.elem_type for v in model.graph.output}
    assert outputs == {"label": TensorProto.INT64, "probabilities": TensorProto.FLOAT}
    operators = {node.op_type for node in model.graph.node}
    assert {"Split", "Div", "Imputer", "OneHotEncoder", "LinearClassifier"} <= operators
    assert "ZipMap" not in operators
    assert model.ir_version == tp.IR_VERSION
    domains = [opset.domain for opset in model.opset_import]
    assert domains == sorted(set(domains)) and "" in domains
    for opset in model.opset_import:
        assert opset.version <= tp.TARGET_OPSET[opset.domain]


def test_check_prints_the_input_list(trained: Trained, capsys: pytest.CaptureFixture[str]) -> None:
    tp.check(trained[3])
    out = capsys.readouterr().out
    assert (
        "inputs, one per column: age: float [N, 1], income: float [N, 1], debt: float [N, 1], "
        "region: string [N, 1], housing: string [N, 1], channel: string [N, 1]"
    ) in out
    assert "outputs: label: int64 [N], probabilities: float [N, 2]" in out


# --- 5. Save, 6. Load, 7. Run --------------------------------------------------------------------


def test_saved_file_is_the_model_with_usual_permissions(trained: Trained, saved: Saved) -> None:
    path, _ = saved
    assert path.read_bytes() == trained[3].SerializeToString()
    assert [p.name for p in path.parent.iterdir()] == [tp.MODEL_FILE]
    if os.name == "posix":
        umask = os.umask(0)
        os.umask(umask)
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_frame_to_feed_gives_one_typed_column_per_input(saved: Saved) -> None:
    _, session = saved
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


def test_frame_to_feed_names_a_missing_column_and_a_non_string_category(saved: Saved) -> None:
    _, session = saved
    with pytest.raises(KeyError, match="the model needs column 'income'"):
        tp.frame_to_feed(session, tp.edge_rows().drop(columns="income"))
    rows = tp.edge_rows()
    rows["channel"] = [1.5, 2.5, 3.5]
    with pytest.raises(TypeError, match=r"column 'channel' must hold strings, found 1\.5"):
        tp.frame_to_feed(session, rows)


def test_predictions_equal_scikit_learn_on_held_out_and_new_rows(
    trained: Trained, saved: Saved
) -> None:
    pipeline, _, test_frame, _ = trained
    _, session = saved
    for rows in (test_frame, tp.edge_rows()):
        labels, probabilities = tp.predict_frame(session, rows)
        filled = tp.fill_missing_categories(rows)
        np.testing.assert_array_equal(labels, pipeline.predict(filled))
        np.testing.assert_allclose(probabilities, pipeline.predict_proba(filled), atol=tp.ATOL)
        assert tp.verify("rows", pipeline, rows, labels, probabilities) <= tp.ATOL


def test_verify_names_what_disagreed(trained: Trained, saved: Saved) -> None:
    pipeline, _, test_frame, _ = trained
    labels, probabilities = tp.predict_frame(saved[1], test_frame)
    with pytest.raises(AssertionError, match=r"held: probabilities differ .* up to 0\.002"):
        tp.verify("held", pipeline, test_frame, labels, probabilities + 0.002)
    flipped = labels.copy()
    flipped[3] = 1 - flipped[3]
    with pytest.raises(AssertionError, match=f"held: 1 of {len(labels)} labels differ"):
        tp.verify("held", pipeline, test_frame, flipped, probabilities)
    with pytest.raises(AssertionError, match="shape"):
        tp.verify("held", pipeline, test_frame, labels, probabilities[:, :1])


def test_one_hot_of_an_unseen_category_is_all_zeros_in_both(trained: Trained) -> None:
    lines = tp.compare_one_hot(trained[0], tp.edge_rows())
    assert [line.split()[0] for line in lines] == tp.CATEGORY_COLUMNS
    blocks = [re.findall(r"\[([01 ]+)\]", line) for line in lines]
    # Row 2 is a renter from the north; row 3 has a category never seen in every column: zeros.
    assert blocks[0][1] == "0 0 1 0 0" and blocks[1][1] == "0 0 0 1"
    assert [row[2] for row in blocks] == ["0 0 0 0 0", "0 0 0 0", "0 0 0 0 0"]


# --- main() --------------------------------------------------------------------------------------


def test_main_reports_each_step_and_verifies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tp.main(["--rows", str(ROWS), "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for step in range(1, 8):
        assert f"\n{step}. " in out
    assert "before registering DebtToIncome: MissingShapeCalculator" in out or (
        "already registered" in out
    )
    assert "labels equal predict, largest probability difference" in out
    assert (
        "3 new rows (2 with a missing number, 1 with a missing category, 2 with a category never "
        "seen in training): labels equal predict"
    ) in out
    assert re.search(r"\n     1\. 0\.\d{4}  every value missing\n", out)
    assert "\nVerified: " in out and "pandas 3." in out
    assert (tmp_path / tp.MODEL_FILE).is_file()


def test_wrong_reference_exits_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real = Pipeline.predict_proba
    monkeypatch.setattr(Pipeline, "predict_proba", lambda self, x: real(self, x) + 0.01)
    assert tp.main(["--rows", str(ROWS), "--output-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(
        "error: verification failed: held-out rows: probabilities differ from predict_proba "
        "by up to 0.01"
    )
    assert captured.err.count("\n") == 1 and "Verified" not in captured.out


def test_interrupt_exits_130_without_verified(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object) -> NoReturn:
        raise KeyboardInterrupt

    monkeypatch.setattr(tp, "predict_frame", interrupted)
    assert tp.main(["--rows", str(ROWS), "--output-dir", str(tmp_path)]) == 130
    captured = capsys.readouterr()
    assert captured.err == "error: interrupted\n" and "Verified" not in captured.out
    assert [p.name for p in tmp_path.iterdir()] == [tp.MODEL_FILE]  # no temporary file left


def test_output_dir_that_is_a_file_fails_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert tp.main(["--output-dir", str(blocker)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: the output folder is not a folder: ")
    assert captured.err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rows", "99"], "argument --rows: must be at least 100, got 99"),
        (["--rows", "many"], "argument --rows: expected a whole number, got 'many'"),
        (["--seed", "-1"], "argument --seed: must be from 0 to 2**32 - 1"),
        (["--seed", str(2**32)], "argument --seed: must be from 0 to 2**32 - 1"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        tp.main([*args, "--output-dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"tabular_pipeline.py: error: {message}") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


# --- What only a process shows -------------------------------------------------------------------


def test_same_arguments_give_the_same_bytes_and_another_seed_another_model(tmp_path: Path) -> None:
    # Across processes with other hash seeds (which put skl2onnx's opsets in other orders),
    # tests/test_scripts.py compares the default run's bytes under PYTHONHASHSEED 0 and 1.
    args = ["--rows", "200", "--seed", "3"]
    assert tp.main([*args, "--output-dir", str(tmp_path / "first")]) == 0
    assert tp.main([*args, "--output-dir", str(tmp_path / "second")]) == 0
    first = (tmp_path / "first" / tp.MODEL_FILE).read_bytes()
    assert first == (tmp_path / "second" / tp.MODEL_FILE).read_bytes()
    assert tp.main(["--rows", "200", "--seed", "4", "--output-dir", str(tmp_path / "other")]) == 0
    assert (tmp_path / "other" / tp.MODEL_FILE).read_bytes() != first


def test_deployment_needs_only_pandas_numpy_and_onnxruntime(
    trained: Trained, saved: Saved, tmp_path: Path
) -> None:
    pipeline, _, test_frame, _ = trained
    path, _ = saved
    rows = pd.concat([test_frame[:20], tp.edge_rows()], ignore_index=True)
    # A CSV file, as a serving host might receive: floats come back as float64 and missing
    # categories as NaN; predict_frame casts and fills them.
    rows.to_csv(tmp_path / "rows.csv", index=False)
    script = BLOCK_TRAINING_LIBRARIES + textwrap.dedent(
        f"""
        import pandas as pd
        import tabular_pipeline as tp

        assert not hasattr(tp, "DebtToIncome")  # defined only where scikit-learn imports
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


def test_every_seed_from_0_to_20_verifies_with_the_smallest_table() -> None:
    # The fragile case: 100 rows, so rare categories are often absent from training.
    tp.register_debt_to_income()
    for seed in range(21):
        frame, target, _ = tp.make_table(tp.MIN_ROWS, seed)
        filled = tp.fill_missing_categories(frame)
        pipeline = tp.make_pipeline().fit(filled[:75], target[:75])
        model = tp.convert(pipeline, filled[:1])
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        rows = pd.concat([frame[75:], tp.edge_rows()])  # held-out rows and the new ones
        labels, probabilities = tp.predict_frame(session, rows)
        assert tp.verify(f"seed {seed}", pipeline, rows, labels, probabilities) <= tp.ATOL


# --- What the docs show, in process (mutation testing, docs/mutation_testing.md) ----------------

LINUX_X86_64 = pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() != "x86_64",
    reason="the sample was made on Linux x86_64; other platforms may round differently",
)


def docs_sample(command: str) -> str:
    """Return the output sample docs/tabular_pipeline.md shows for a command."""
    text = (ROOT / "docs" / "tabular_pipeline.md").read_text(encoding="utf-8")
    match = re.search(rf"<!-- sample: {re.escape(command)} -->\n```text\n(.*?)```", text, re.S)
    assert match is not None, f"docs/tabular_pipeline.md has no sample of `{command}`"
    return match[1]


@LINUX_X86_64
def test_default_run_prints_the_report_the_docs_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No flags at all, from an empty folder, as the page's sample. In process, unlike
    # tests/test_docs.py, so that mutmut sees it: the table, the training, the model's inputs,
    # opsets, nodes and size, the verdicts and the new rows' probabilities must all stay the same.
    # Forget an earlier registration, so that step 3 shows skl2onnx refusing, as in a new process.
    operators = skl2onnx._supported_operators.sklearn_operator_name_map
    monkeypatch.delitem(operators, tp.DebtToIncome, raising=False)
    monkeypatch.chdir(tmp_path)
    assert tp.main([]) == 0
    # The sample ran the script as __main__; in process the class lives in module tabular_pipeline.
    shown = docs_sample("python tabular_pipeline.py").replace("'__main__.", "'tabular_pipeline.")
    out = capsys.readouterr().out
    assert re.sub(r"Python \S+,", "Python ...,", out) == re.sub(
        r"Python \S+,", "Python ...,", shown
    )
    assert [p.name for p in (tmp_path / "models").iterdir()] == [tp.MODEL_FILE]


# --- Each step on its own, called by the test itself (mutation testing: a module fixture's calls
# --- count for the first test that uses it, docs/mutation_testing.md) ---------------------------


def test_check_refuses_a_model_whose_types_do_not_add_up() -> None:
    # The plain checker accepts a Div of a float by an int64; full_check's type inference does not.
    inputs = [
        onnx.helper.make_tensor_value_info("a", TensorProto.FLOAT, ["N", 1]),
        onnx.helper.make_tensor_value_info("b", TensorProto.INT64, ["N", 1]),
    ]
    output = onnx.helper.make_tensor_value_info("c", TensorProto.FLOAT, ["N", 1])
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Div", ["a", "b"], ["c"])], "mixed", inputs, [output]
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 22)])
    model.ir_version = tp.IR_VERSION
    with pytest.raises(onnx.shape_inference.InferenceError, match="inconsistent type"):
        tp.check(model)


def test_converted_model_lists_each_opset_once_in_sorted_order(trained: Trained) -> None:
    pipeline, train_frame, _, _ = trained
    tp.register_debt_to_income()
    model = tp.convert(pipeline, tp.fill_missing_categories(train_frame[:1]))
    assert model.ir_version == 10  # docs/tabular_pipeline.md's sample: IR version 10
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 22), ("ai.onnx.ml", 2)]
    assert {o.name for o in model.graph.output} == {"label", "probabilities"}  # no ZipMap
    onnx.checker.check_model(model, full_check=True)


def test_save_model_writes_a_hidden_temporary_beside_the_file_then_renames_it(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = trained[3]
    path = tmp_path / tp.MODEL_FILE
    seen: list[list[str]] = []
    real_fsync = os.fsync

    def watching_fsync(fd: int) -> None:
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", watching_fsync)
    size = tp.save_model(model, path)
    # While writing: only a hidden file named after the model (what a crash could leave behind),
    # in the same folder, so that os.replace is a rename within one file system.
    assert len(seen) == 1 and len(seen[0]) == 1
    assert re.fullmatch(r"\.tabular_pipeline\.onnx\..+\.tmp", seen[0][0])
    assert [p.name for p in tmp_path.iterdir()] == [tp.MODEL_FILE]
    assert size == path.stat().st_size and path.read_bytes() == model.SerializeToString()


@pytest.mark.skipif(os.name != "posix", reason="file modes and umask are POSIX")
@pytest.mark.parametrize("umask", [0o002, 0o077])
def test_save_model_gives_the_mode_the_umask_asks_for(
    umask: int, trained: Trained, tmp_path: Path
) -> None:
    previous = os.umask(umask)
    try:
        tp.save_model(trained[3], tmp_path / tp.MODEL_FILE)
    finally:
        os.umask(previous)
    assert (tmp_path / tp.MODEL_FILE).stat().st_mode & 0o777 == 0o666 & ~umask


def test_save_model_failure_leaves_the_old_file_and_no_temporary(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / tp.MODEL_FILE
    path.write_bytes(b"the previous model")

    def disk_full(fd: int) -> NoReturn:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        tp.save_model(trained[3], path)
    assert path.read_bytes() == b"the previous model"
    assert [p.name for p in tmp_path.iterdir()] == [tp.MODEL_FILE]


def test_save_model_ctrl_c_just_after_the_rename_stays_an_interrupt(
    trained: Trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The temporary file is gone once renamed: the cleanup must not turn Ctrl-C into an error.
    real_replace = os.replace

    def replace_then_interrupt(source: str, target: Path) -> NoReturn:
        real_replace(source, target)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        tp.save_model(trained[3], tmp_path / tp.MODEL_FILE)
    assert [p.name for p in tmp_path.iterdir()] == [tp.MODEL_FILE]


def test_loading_runs_on_the_cpu_without_a_warning(trained: Trained, tmp_path: Path) -> None:
    path = tmp_path / tp.MODEL_FILE
    tp.save_model(trained[3], path)
    with warnings.catch_warnings():
        # onnxruntime only warns (and falls back) when a provider name is misspelt.
        warnings.simplefilter("error")
        session = tp.load_session(path)
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert [i.name for i in session.get_inputs()] == tp.NUMBER_COLUMNS + tp.CATEGORY_COLUMNS


def test_output_dir_is_created_with_its_parents(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b" / "models"
    tp.prepare_output_dir(folder)
    assert folder.is_dir()
    tp.prepare_output_dir(folder)  # an existing folder is fine
    assert list(folder.iterdir()) == []  # the write probe leaves nothing behind


def test_output_dir_that_is_a_file_names_it(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(NotADirectoryError) as error:
        tp.prepare_output_dir(blocker)
    assert error.value.errno == errno.ENOTDIR and error.value.filename == str(blocker)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_unwritable_output_dir_fails_with_one_line_naming_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # /proc exists and is a folder, but no file can be created there, not even by root.
    with pytest.raises(OSError) as error:
        tp.prepare_output_dir(Path("/proc"))
    assert error.value.errno is not None and error.value.filename == "/proc"
    assert str(error.value.strerror).startswith("the output folder is not writable (")
    assert tp.main(["--output-dir", "/proc"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert re.fullmatch(r"error: the output folder is not writable \(.+\): /proc\n", captured.err)


def test_seed_range_accepts_both_ends_and_names_a_non_number() -> None:
    assert tp.parse_args(["--seed", "0"]).seed == 0
    assert tp.parse_args(["--seed", str(2**32 - 1)]).seed == 2**32 - 1
    assert tp.parse_args(["--rows", "100"]).rows == 100
    with pytest.raises(argparse.ArgumentTypeError, match=r"expected a whole number, got '1\.5'"):
        tp.seed_int("1.5")


def test_verify_accepts_a_difference_equal_to_the_tolerance() -> None:
    class Reference:
        """Stands in for the pipeline: fixed probabilities and labels."""

        def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
            return np.array([[0.0, 1.0]])

        def predict(self, frame: pd.DataFrame) -> np.ndarray:
            return np.array([1])

    rows = tp.edge_rows()[:1]
    at_tolerance = np.array([[tp.ATOL, 1.0]])  # "within atol" includes atol itself
    assert tp.verify("rows", Reference(), rows, np.array([1]), at_tolerance) == tp.ATOL
    with pytest.raises(AssertionError, match="differ"):
        tp.verify("rows", Reference(), rows, np.array([1]), np.array([[np.nan, 1.0]]))


def test_help_shows_each_default_and_range() -> None:
    parser_help = io.StringIO()
    with pytest.raises(SystemExit) as exit_info, contextlib.redirect_stdout(parser_help):
        tp.parse_args(["--help"])
    assert exit_info.value.code == 0
    text = " ".join(parser_help.getvalue().split())  # argparse wraps to the terminal's width
    assert text.startswith("usage: tabular_pipeline.py [-h]")
    assert "--rows ROWS rows in the table, 100 or more (default: 2000)" in text
    assert "--output-dir OUTPUT_DIR folder for the .onnx file, created when missing" in text
    assert "(default: models)" in text
    assert "--seed SEED random seed, 0 to 2**32 - 1 (default: 0)" in text


def test_frame_to_feed_names_an_input_type_it_does_not_handle() -> None:
    # A model with an int64 input, which the lesson's tables never need.
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["count"], ["same"])],
        "counts",
        [onnx.helper.make_tensor_value_info("count", TensorProto.INT64, ["N", 1])],
        [onnx.helper.make_tensor_value_info("same", TensorProto.INT64, ["N", 1])],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 22)])
    model.ir_version = tp.IR_VERSION
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    with pytest.raises(TypeError, match=r"input 'count' has type tensor\(int64\), not handled"):
        tp.frame_to_feed(session, pd.DataFrame({"count": [1, 2]}))


def test_gap_counts_find_an_unseen_category_in_any_column(table: Table) -> None:
    train_frame = table[0]
    rows = pd.concat([train_frame[:4]] * 2, ignore_index=True)
    rows.loc[0, "region"] = tp.UNSEEN["region"]  # unseen in the first category column only
    rows.loc[1, "housing"] = tp.UNSEEN["housing"]
    rows.loc[2, "channel"] = tp.UNSEEN["channel"]
    rows.loc[3, tp.CATEGORY_COLUMNS] = np.nan  # missing is not unseen
    assert tp.describe_gaps(rows, train_frame).endswith("3 with a category never seen in training")


# --- The manners a process shows, in process (mutation testing) ----------------------------------


def test_any_terminal_encoding_prints_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", terminal)
    assert tp.main(["--rows", str(ROWS), "--output-dir", str(tmp_path)]) == 0
    terminal.flush()
    report = terminal.buffer.getvalue().decode("ascii")
    # The rule's "·" does not exist in ASCII: an escape instead of an error.
    assert "log-odds = -1 + 4\\xb7(debt/income - 0.4)" in report and "\nVerified: " in report


def test_closed_pipe_exits_141_and_silences_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reader that closed the pipe: the last write fails. Afterwards stdout must lead nowhere,
    # so that Python's own flush at exit has nothing to complain about.
    def closed_pipe() -> None:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(tp, "print_versions", closed_pipe)
    with open(tmp_path / "stdout.txt", "w", encoding="utf-8") as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)
        assert tp.main(["--rows", str(ROWS), "--output-dir", str(tmp_path / "out")]) == 141
        print("written after the pipe closed")
        stdout.flush()
    assert "after the pipe closed" not in (tmp_path / "stdout.txt").read_text(encoding="utf-8")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (ValueError("first line\nsecond line"), "error: ValueError: first line\n"),
        (ValueError(), "error: ValueError\n"),
        (OSError(errno.ENOSPC, "No space left on device"), "error: No space left on device\n"),
    ],
)
def test_an_unexpected_failure_is_one_line_and_exit_1(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    line: str,
) -> None:
    def fail(*args: object) -> NoReturn:
        raise error

    monkeypatch.setattr(tp, "save_model", fail)
    assert tp.main(["--rows", str(ROWS), "--output-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == line


def test_debt_to_income_alone_converts_to_float_n_by_1() -> None:
    # What the shape calculator declares is what a reader sees in the converted step's file.
    x = np.array([[10.0, 40.0], [3.0, 7.0]], dtype=np.float32)
    tp.register_debt_to_income()
    model = to_onnx(tp.DebtToIncome().fit(x), x[:1], target_opset=tp.TARGET_OPSET)
    (output,) = model.graph.output
    assert output.type.tensor_type.elem_type == TensorProto.FLOAT
    rows, width = output.type.tensor_type.shape.dim
    assert not rows.HasField("dim_value") and width.dim_value == 1


def test_one_hot_comparison_names_the_column_that_differs(
    trained: Trained, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.compose import ColumnTransformer

    real = ColumnTransformer.transform

    def shifted(self: Any, x: pd.DataFrame) -> np.ndarray:
        return np.asarray(real(self, x)) + 1.0  # scikit-learn's features, all moved by one

    monkeypatch.setattr(ColumnTransformer, "transform", shifted)
    with pytest.raises(AssertionError, match=r"^region: one-hot block differs: ONNX \[\["):
        tp.compare_one_hot(trained[0], tp.edge_rows())
