"""The versions docs/concepts.md states, checked against the files the lessons really write.

The page promises opset 22 and IR version 10 in every lesson, ai.onnx.ml 3 as the converters'
target, and limits of the pinned onnxruntime. The scripts' own tests compare a model with the
script's constant, so a constant changed to 21 would pass them: here the expected numbers are read
from the page with a regular expression, and each lesson's model (its file where the run is quick,
its convert step with small settings otherwise) is compared with what the page says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import linear_regression
import neural_network
import optimize_and_quantize
import sklearn_converter
import tabular_pipeline

ROOT = Path(__file__).resolve().parent.parent
CONCEPTS = ROOT / "docs" / "concepts.md"


@dataclass(frozen=True)
class Stated:
    """The versions docs/concepts.md states."""

    opset: int  # default domain, every lesson
    ir_version: int  # every lesson
    ml_target: int  # ai.onnx.ml target of the scikit-learn conversions
    iris_ml: int  # ai.onnx.ml the Iris models declare
    custom_domain: str
    custom_version: int
    runtime: str  # the onnxruntime version the limits are stated for
    max_opset: int
    max_ir_version: int
    max_ml: int
    refused_opset: int
    refused_ir_version: int


def find(pattern: str, text: str) -> tuple[str, ...]:
    """Return the groups of pattern in the page's text, or fail naming the sentence not found."""
    match = re.search(pattern, text)
    if match is None:
        pytest.fail(f"docs/concepts.md no longer matches {pattern!r}: update this test with it")
    return match.groups()


@pytest.fixture(scope="module")
def stated() -> Stated:
    # One line of prose may wrap anywhere: compare with the whitespace collapsed.
    text = " ".join(CONCEPTS.read_text(encoding="utf-8").split())
    opset, ir_version = find(
        r"pins \*\*opset (\d+)\*\* of the default domain and \*\*IR version (\d+)\*\*", text
    )
    runtime, max_opset, max_ir = find(
        r"onnxruntime (\d+\.\d+\.\d+) loads models up to opset (\d+) and IR version (\d+)", text
    )
    refused_opset, refused_ir = find(r"opset (\d+) and IR version (\d+) are refused", text)
    (domain, domain_version) = find(r"adds its own domain, `([\w.]+)` version (\d+)", text)
    ml_target, max_ml = find(
        r"targets `ai\.onnx\.ml` (\d+) \(onnxruntime [\d.]+ accepts up to (\d+)\)", text
    )
    (iris_ml,) = find(r"the Iris models declare `ai\.onnx\.ml` (\d+)", text)
    return Stated(
        opset=int(opset),
        ir_version=int(ir_version),
        ml_target=int(ml_target),
        iris_ml=int(iris_ml),
        custom_domain=domain,
        custom_version=int(domain_version),
        runtime=runtime,
        max_opset=int(max_opset),
        max_ir_version=int(max_ir),
        max_ml=int(max_ml),
        refused_opset=int(refused_opset),
        refused_ir_version=int(refused_ir),
    )


@pytest.fixture
def skl2onnx_with_another_ir_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make skl2onnx pick another IR version than 10 for opset 22, as another release might.

    skl2onnx 1.20.0 writes IR version 10 for opset 22 from its own table, so a script that forgot
    to set the IR version would still write 10 today. Without a table entry skl2onnx falls back on
    the newest IR version the installed onnx knows (14 here): the file must still declare the
    version the docs state, because the script sets it.
    """
    from skl2onnx.common import _topology

    monkeypatch.setattr(_topology, "OPSET_TO_IR_VERSION", {})


def opsets(model: onnx.ModelProto) -> dict[str, int]:
    """Return the model's opset imports as {domain: version}, "" for the default domain."""
    return {o.domain if o.domain != "ai.onnx" else "": o.version for o in model.opset_import}


def check_declared(
    name: str, model: onnx.ModelProto, stated: Stated, expected_opsets: dict[str, int]
) -> None:
    """Fail naming the file and the docs' figure when the model declares other versions."""
    declared = opsets(model)
    assert declared.get("") == stated.opset, (
        f"{name} declares default-domain opset {declared.get('')}; docs/concepts.md states "
        f"opset {stated.opset}"
    )
    assert model.ir_version == stated.ir_version, (
        f"{name} declares IR version {model.ir_version}; docs/concepts.md states "
        f"IR version {stated.ir_version}"
    )
    assert declared == expected_opsets, (
        f"{name} imports {declared}; from docs/concepts.md expected {expected_opsets}"
    )


def check_converted(name: str, model: onnx.ModelProto, stated: Stated) -> None:
    """A scikit-learn conversion: opset and IR as stated, ai.onnx.ml at most the stated target."""
    ml = opsets(model).get("ai.onnx.ml")
    assert ml is not None and 1 <= ml <= stated.ml_target, (
        f"{name} imports ai.onnx.ml {ml}; docs/concepts.md states the target {stated.ml_target}"
    )
    check_declared(name, model, stated, {"": stated.opset, "ai.onnx.ml": ml})


# --- Each lesson's model ------------------------------------------------------------------------


def test_linear_regression_file_declares_the_stated_versions(
    stated: Stated, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert linear_regression.main(["--output-dir", str(tmp_path)]) == 0, capsys.readouterr().err
    model = onnx.load(tmp_path / "linear_regression.onnx")
    check_declared("linear_regression.onnx", model, stated, {"": stated.opset})


def test_neural_network_file_declares_the_stated_versions(
    stated: Stated, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--layers", "4,8,3", "--output-dir", str(tmp_path)]
    assert neural_network.main(args) == 0, capsys.readouterr().err
    model = onnx.load(tmp_path / neural_network.MODEL_FILE)
    expected = {"": stated.opset, stated.custom_domain: stated.custom_version}
    check_declared("neural_network.onnx", model, stated, expected)
    # The functions' bodies run at the model's opset: a runtime rejects a function that imports
    # another version of the default domain than the model.
    for function in model.functions:
        assert {o.domain: o.version for o in function.opset_import}[""] == stated.opset, (
            f"function {function.name} imports another default-domain opset than the docs state"
        )


def test_sklearn_converter_file_declares_the_stated_versions(
    stated: Stated,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    skl2onnx_with_another_ir_table: None,
) -> None:
    args = ["--model", "decision_tree", "--output-dir", str(tmp_path)]
    assert sklearn_converter.main(args) == 0, capsys.readouterr().err
    model = onnx.load(tmp_path / "sklearn_decision_tree.onnx")
    check_converted("sklearn_decision_tree.onnx", model, stated)
    # The page is more precise for the Iris models: skl2onnx imports only what the graph needs.
    assert opsets(model)["ai.onnx.ml"] == stated.iris_ml, (
        f"sklearn_decision_tree.onnx imports ai.onnx.ml {opsets(model)['ai.onnx.ml']}; "
        f"docs/concepts.md says the Iris models declare {stated.iris_ml}"
    )


def test_tabular_pipeline_file_declares_the_stated_versions(
    stated: Stated,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    skl2onnx_with_another_ir_table: None,
) -> None:
    args = ["--rows", str(tabular_pipeline.MIN_ROWS), "--output-dir", str(tmp_path)]
    assert tabular_pipeline.main(args) == 0, capsys.readouterr().err
    model = onnx.load(tmp_path / tabular_pipeline.MODEL_FILE)
    check_converted(tabular_pipeline.MODEL_FILE, model, stated)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_optimize_and_quantize_file_declares_the_stated_versions(
    stated: Stated,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    skl2onnx_with_another_ir_table: None,
) -> None:
    # The lesson's first step with small settings: a narrow MLP trained for a few epochs (the
    # conversion writes the same opsets whatever the weights), converted and saved as the lesson
    # saves it, then read back.
    monkeypatch.setattr(optimize_and_quantize, "MAX_ITERATIONS", 5)
    x_train, _, y_train, _ = optimize_and_quantize.load_digits_split(0)
    classifier = optimize_and_quantize.train_classifier(x_train, y_train, 0, (8,))
    path = tmp_path / optimize_and_quantize.FLOAT_FILE
    model = optimize_and_quantize.convert(classifier)
    onnx.save_model(model, path)
    check_converted(optimize_and_quantize.FLOAT_FILE, onnx.load(path), stated)


# --- What the pinned onnxruntime accepts --------------------------------------------------------


def one_add_model(opset: int, ml: int, ir_version: int) -> bytes:
    """A one-node model (Y = X + X) that imports these versions."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "X"], ["Y"])],
        "versions",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 2])],
    )
    opset_imports = [helper.make_opsetid("", opset), helper.make_opsetid("ai.onnx.ml", ml)]
    model = helper.make_model(graph, opset_imports=opset_imports, ir_version=ir_version)
    return model.SerializeToString()


def test_the_stated_runtime_limits_are_the_pinned_runtimes(stated: Stated) -> None:
    assert ort.__version__ == stated.runtime, (
        f"docs/concepts.md states limits for onnxruntime {stated.runtime}; {ort.__version__} is "
        "installed"
    )
    # tests/test_pitfalls.py::test_6_versions_newer_than_the_runtime shows that onnxruntime loads a
    # model at the opset and IR version the pinned onnx writes by default and refuses one more of
    # either. Here: those are the numbers the page states.
    newest = (onnx.defs.onnx_opset_version(), onnx.IR_VERSION)
    assert (stated.max_opset, stated.max_ir_version) == newest, (
        f"docs/concepts.md says up to opset {stated.max_opset} and IR version "
        f"{stated.max_ir_version}; the pinned onnx writes {newest} (test_6 loads exactly that)"
    )
    assert (stated.refused_opset, stated.refused_ir_version) == (newest[0] + 1, newest[1] + 1), (
        "docs/concepts.md names other refused versions than the first ones past the limit"
    )
    # The stated versions are inside the limits.
    assert stated.opset <= stated.max_opset and stated.ir_version <= stated.max_ir_version
    assert stated.ml_target <= stated.max_ml


def test_ai_onnx_ml_up_to_the_stated_version_loads_and_one_more_is_refused(stated: Stated) -> None:
    # Not covered by test_6: the ai.onnx.ml limit (the default-domain and IR limits are there).
    limits = (stated.max_opset, stated.max_ml, stated.max_ir_version)
    session = ort.InferenceSession(one_add_model(*limits), providers=["CPUExecutionProvider"])
    x = np.ones((1, 2), np.float32)
    np.testing.assert_array_equal(session.run(None, {"X": x})[0], 2 * x)
    too_new = (stated.max_opset, stated.max_ml + 1, stated.max_ir_version)
    with pytest.raises(Exception, match=r"ai\.onnx\.ml is till opset " + str(stated.max_ml)):
        ort.InferenceSession(one_add_model(*too_new), providers=["CPUExecutionProvider"])
