"""The claims of docs/concepts.md, checked with the pinned versions."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

DOMAIN = "com.example.concepts"


def model_with_a_function(domain_version: int) -> onnx.ModelProto:
    """A one-node model calling Double, a model-local function of DOMAIN: Y = X + X."""
    double = helper.make_function(
        DOMAIN,
        "Double",
        ["X"],
        ["Y"],
        [helper.make_node("Add", ["X", "X"], ["Y"])],
        opset_imports=[helper.make_opsetid("", 22)],
    )
    graph = helper.make_graph(
        [helper.make_node("Double", ["X"], ["Y"], domain=DOMAIN)],
        "concepts",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 2])],
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 22), helper.make_opsetid(DOMAIN, domain_version)],
        ir_version=10,
        functions=[double],
    )


@pytest.mark.parametrize("version", [1, 2, 99])
def test_a_custom_domain_version_is_only_a_label(version):
    model = model_with_a_function(version)
    onnx.checker.check_model(model, full_check=True)
    x = np.array([[1.0, 2.0]], dtype=np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(session.run(None, {"X": x})[0], 2 * x)
    np.testing.assert_array_equal(ReferenceEvaluator(model).run(None, {"X": x})[0], 2 * x)


def test_save_load_and_to_array_round_trip(tmp_path):
    weights = np.arange(6, dtype=np.float32).reshape(3, 2)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])],
        "round_trip",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 2])],
        initializer=[numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)], ir_version=10)
    onnx.save(model, tmp_path / "model.onnx")
    loaded = onnx.load(tmp_path / "model.onnx")
    assert loaded == model
    np.testing.assert_array_equal(numpy_helper.to_array(loaded.graph.initializer[0]), weights)


def test_onnx_save_writes_into_the_target_path_itself():
    # What the concepts page says of onnx.save, read from the pinned onnx's own code: it opens the
    # target for writing (which empties it at once) and writes there; no temporary file, no rename.
    source = inspect.getsource(onnx._save_bytes)
    assert 'open(f, "wb")' in source and "replace" not in source and "rename" not in source


def test_the_cpu_execution_provider_is_always_there():
    assert "CPUExecutionProvider" in ort.get_available_providers()


def test_onnx_runtime_reports_an_unset_dimension_as_none_and_a_named_one_by_name():
    # The convention the lessons print (a name, a number, or ? for an unset dimension) starts from
    # what ONNX Runtime reports: None for a dimension with neither dim_param nor dim_value.
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, "N", 3])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["X"], ["Y"])], "dims", [x], [onnx.ValueInfoProto(name="Y")]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)], ir_version=10)
    (dimension,) = model.graph.input[0].type.tensor_type.shape.dim[:1]
    assert not dimension.HasField("dim_param") and not dimension.HasField("dim_value")
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [None, "N", 3]


def test_the_oldest_onnxruntime_stated_is_the_oldest_the_measured_table_shows():
    # docs/concepts.md states it; docs/other_runtimes.md holds the table that
    # tools/oldest_onnxruntime.py printed. The two must agree: the oldest version that loads every
    # file, with every older version measured loading none.
    root = Path(__file__).resolve().parent.parent
    concepts = (root / "docs" / "concepts.md").read_text(encoding="utf-8")
    stated = re.search(
        r"The oldest onnxruntime that loads every file the lessons write is \*\*([\d.]+)\*\*",
        concepts,
    )
    assert stated is not None
    table = (root / "docs" / "other_runtimes.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| (\d+\.\d+\.\d+)[^|]* \| (\d+) of (\d+) \|", table, flags=re.M)
    assert rows, "docs/other_runtimes.md has no measured table"
    versions = [(tuple(map(int, v.split("."))), int(ok) == int(total)) for v, ok, total in rows]
    oldest = min(version for version, all_load in versions if all_load)
    assert ".".join(map(str, oldest)) == stated[1]
    assert all(not all_load for version, all_load in versions if version < oldest)
