"""The classic ONNX failures, each reproduced with the pinned versions and then fixed.

Every test first triggers the failure and checks the exception type and a stable part of its
message, then applies the fix from docs/troubleshooting.md and checks that it works.
"""

import os
import pickle
import re

import numpy as np
import onnx
import pytest
from google.protobuf.message import DecodeError
from onnx import helper, version_converter
from onnxruntime.capi.onnxruntime_pybind11_state import (
    Fail,
    InvalidArgument,
    InvalidGraph,
    InvalidProtobuf,
)

import linear_regression as lr
import neural_network as nn
import sklearn_converter as sc

FEATURES = 3


@pytest.fixture(scope="module")
def linear_model() -> onnx.ModelProto:
    """The linear regression model from linear_regression.py: X float32 [N, 3] -> Y [N, 1]."""
    x, y, _, _ = lr.make_dataset(FEATURES, 50, seed=0)
    return lr.build_model(*lr.fit_least_squares(x, y))


@pytest.fixture
def session(linear_model, tmp_path):
    path = tmp_path / "model.onnx"
    onnx.save_model(linear_model, path)
    return lr.load_session(path)


def rows(count: int, features: int = FEATURES, dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(count, features)).astype(dtype)


# 1. float64 input to a float32 model ------------------------------------------------------------


def test_1_float64_input(session):
    message = "Unexpected input data type. Actual: (tensor(double)) , expected: (tensor(float))"
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        session.run(None, {"X": rows(4, dtype=np.float64)})
    # Fix: cast to the declared type (NumPy creates float64 by default).
    (y,) = session.run(None, {"X": rows(4, dtype=np.float64).astype(np.float32)})
    assert y.shape == (4, 1)


# 2. Wrong input name, rank, or feature count ----------------------------------------------------


def test_2_wrong_input_name(session):
    message = "Required inputs (['X']) are missing from input feed (['x'])"
    with pytest.raises(ValueError, match=re.escape(message)):
        session.run(None, {"x": rows(2)})
    # Fix: ask the session for its input names instead of guessing them.
    name = session.get_inputs()[0].name
    assert session.run(None, {name: rows(2)})[0].shape == (2, 1)


def test_2_wrong_rank(session):
    one_row = rows(1)[0]  # shape (3,): a vector, not a batch
    with pytest.raises(InvalidArgument, match="Invalid rank for input: X Got: 1 Expected: 2"):
        session.run(None, {"X": one_row})
    # Fix: a single row is a batch of one, shape (1, features).
    assert session.run(None, {"X": one_row.reshape(1, -1)})[0].shape == (1, 1)


def test_2_wrong_feature_count(session):
    message = r"Got invalid dimensions for input: X for the following indices\s+index: 1 Got: 4"
    with pytest.raises(InvalidArgument, match=message + " Expected: 3"):
        session.run(None, {"X": rows(2, features=4)})
    # Fix: check the declared shape before feeding, and give the features the model was built on.
    declared = session.get_inputs()[0].shape
    assert declared == ["N", FEATURES]
    assert session.run(None, {"X": rows(2, features=declared[1])})[0].shape == (2, 1)


# 3. A fixed batch dimension ---------------------------------------------------------------------


def test_3_fixed_batch_dimension(linear_model):
    fixed = onnx.ModelProto()
    fixed.CopyFrom(linear_model)
    for value in (*fixed.graph.input, *fixed.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1  # replaces the symbolic "N"
    session = nn.load_session(fixed.SerializeToString())
    assert session.run(None, {"X": rows(1)})[0].shape == (1, 1)  # one row works...
    with pytest.raises(InvalidArgument, match=r"index: 0 Got: 5 Expected: 1"):
        session.run(None, {"X": rows(5)})  # ...many rows do not
    # Fix: declare the batch dimension symbolic (a name such as "N"), as build_model does.
    dynamic = nn.load_session(linear_model.SerializeToString())
    assert dynamic.get_inputs()[0].shape[0] == "N"
    assert dynamic.run(None, {"X": rows(5)})[0].shape == (5, 1)


# 4. skl2onnx's default ZipMap output ------------------------------------------------------------


def test_4_zipmap_returns_a_list_of_dicts():
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    x_train, x_test, y_train, _ = sc.load_iris_split(seed=0)
    classifier = sc.make_classifier("logistic_regression", seed=0).fit(x_train, y_train)
    default = to_onnx(
        classifier,
        initial_types=[("X", FloatTensorType([None, 4]))],
        target_opset=sc.TARGET_OPSET,
    )
    session = nn.load_session(default.SerializeToString())
    assert [o.name for o in session.get_outputs()] == ["output_label", "output_probability"]
    assert session.get_outputs()[1].type == "seq(map(int64,tensor(float)))"
    _, probabilities = session.run(None, {"X": x_test})
    assert isinstance(probabilities, list) and isinstance(probabilities[0], dict)
    with pytest.raises(TypeError, match="list indices must be integers or slices, not tuple"):
        probabilities[:, 1]  # what NumPy code expects to do
    # Fix: options={id(classifier): {"zipmap": False}}, as sklearn_converter.convert does.
    session = nn.load_session(sc.convert(classifier, 4).SerializeToString())
    _, probabilities = session.run(None, {"X": x_test})
    assert isinstance(probabilities, np.ndarray) and probabilities.shape == (45, 3)
    np.testing.assert_allclose(
        probabilities, classifier.predict_proba(x_test), rtol=sc.RTOL, atol=sc.ATOL
    )


# 5. A custom-domain operator used without its definition or its domain import -----------------


def test_5_custom_operator_without_its_function():
    model = nn.build_model(*nn.he_initialise([4, 8, 3], seed=0))
    missing_function = onnx.ModelProto()
    missing_function.CopyFrom(model)
    del missing_function.functions[:]
    onnx.checker.check_model(missing_function, full_check=True)  # the checker does not notice
    message = "com.example.mlp:DenseRelu(-1) is not a registered function/op"
    with pytest.raises(Fail, match=re.escape(message)):
        nn.load_session(missing_function.SerializeToString())


def test_5_custom_operator_without_its_domain_import():
    model = nn.build_model(*nn.he_initialise([4, 8, 3], seed=0))
    missing_import = onnx.ModelProto()
    missing_import.CopyFrom(model)
    kept = [o for o in missing_import.opset_import if o.domain != nn.DOMAIN]
    del missing_import.opset_import[:]
    missing_import.opset_import.extend(kept)
    message = re.escape("No opset import for domain 'com.example.mlp'")
    with pytest.raises(onnx.checker.ValidationError, match=message):
        onnx.checker.check_model(missing_import)
    with pytest.raises(InvalidGraph, match=message):
        nn.load_session(missing_import.SerializeToString())


def test_5_fix_is_a_model_local_function_and_a_domain_import():
    model = nn.build_model(*nn.he_initialise([4, 8, 3], seed=0))
    assert {f.name for f in model.functions} == {"Dense", "DenseRelu"}
    assert (nn.DOMAIN, nn.DOMAIN_VERSION) in {(o.domain, o.version) for o in model.opset_import}
    probabilities, _ = nn.run_onnxruntime(nn.load_session(model.SerializeToString()), rows(2, 4))
    assert probabilities.shape == (2, 3)


# 6. An opset or IR version newer than the runtime supports --------------------------------------


def test_6_versions_newer_than_the_runtime(linear_model):
    # The pinned onnxruntime accepts exactly what the pinned onnx writes by default (opset 28,
    # IR version 14), so go one past that.
    default = helper.make_model(linear_model.graph)
    assert (default.opset_import[0].version, default.ir_version) == (
        onnx.defs.onnx_opset_version(),
        onnx.IR_VERSION,
    )
    nn.load_session(default.SerializeToString())

    too_new_opset = onnx.ModelProto()
    too_new_opset.CopyFrom(default)
    too_new = onnx.defs.onnx_opset_version() + 1
    too_new_opset.opset_import[0].version = too_new
    message = f"Current official support for domain ai.onnx is till opset {too_new - 1}"
    with pytest.raises(Fail, match=re.escape(message)):
        nn.load_session(too_new_opset.SerializeToString())

    too_new_ir = onnx.ModelProto()
    too_new_ir.CopyFrom(default)
    too_new_ir.ir_version = onnx.IR_VERSION + 1
    message = f"Unsupported model IR version: {too_new_ir.ir_version}, max supported IR version: "
    with pytest.raises(Fail, match=re.escape(message + str(onnx.IR_VERSION))):
        nn.load_session(too_new_ir.SerializeToString())

    # Fix 1: state the versions when building, as every script here does.
    explicit = helper.make_model(
        linear_model.graph, opset_imports=[helper.make_opsetid("", 22)], ir_version=10
    )
    assert nn.load_session(explicit.SerializeToString()).run(None, {"X": rows(2)})[0].shape == (
        2,
        1,
    )
    # Fix 2: convert an existing model's opset with onnx.version_converter. It changes the opset
    # only: set the IR version yourself.
    converted = version_converter.convert_version(default, 22)
    assert converted.opset_import[0].version == 22 and converted.ir_version == onnx.IR_VERSION
    converted.ir_version = 10
    onnx.checker.check_model(converted, full_check=True)
    assert nn.load_session(converted.SerializeToString()).run(None, {"X": rows(2)})[0].shape == (
        2,
        1,
    )


# 7. A corrupt or truncated .onnx file -----------------------------------------------------------


def test_7_truncated_file(linear_model, tmp_path):
    data = linear_model.SerializeToString()
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DecodeError, match="Error parsing message"):
        onnx.load(truncated)
    with pytest.raises(InvalidProtobuf, match="Protobuf parsing failed"):
        nn.load_session(truncated)


def test_7_empty_file_loads_silently_in_onnx(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    model = onnx.load(empty)  # no error: an empty protobuf is a valid, empty message
    assert model.ByteSize() == 0
    with pytest.raises(onnx.checker.ValidationError, match="does not have an ir_version set"):
        onnx.checker.check_model(model)
    with pytest.raises(InvalidArgument, match="No graph was found in the protobuf"):
        nn.load_session(empty)


def test_7_fix_atomic_write_keeps_the_old_file_whole(linear_model, tmp_path, monkeypatch):
    path = tmp_path / "model.onnx"
    onnx.save_model(linear_model, path)
    before = path.read_bytes()

    def crash(source, destination):
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"), lr.publish(path) as draft:
        onnx.save_model(helper.make_model(linear_model.graph), draft)
    # The reader still sees the complete old model, and no temporary file is left behind.
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]
    onnx.checker.check_model(onnx.load(path), full_check=True)


# 8. Float32 and trees ---------------------------------------------------------------------------


def iris_grid(x: np.ndarray) -> np.ndarray:
    """Every Iris row with one feature swept over its range in steps of 0.05 (43,500 rows)."""
    blocks = []
    for feature in range(x.shape[1]):
        values = np.round(np.arange(x[:, feature].min(), x[:, feature].max() + 1e-9, 0.05), 2)
        block = np.repeat(x, len(values), axis=0)
        block[:, feature] = np.tile(values, len(x))
        blocks.append(block)
    return np.vstack(blocks)


def label_disagreements(classifier, x: np.ndarray) -> int:
    """Count rows where ONNX Runtime's label differs from scikit-learn's predict on x."""
    session = nn.load_session(sc.convert(classifier, x.shape[1]).SerializeToString())
    labels, _ = session.run(None, {"X": x.astype(np.float32)})
    return int(np.sum(labels != classifier.predict(x)))


def test_8_float64_scaling_before_a_tree_disagrees_near_thresholds():
    from sklearn.datasets import load_iris
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    x, y = load_iris(return_X_y=True)  # float64, as most data arrives
    grid = iris_grid(x)
    assert grid.shape == (43_500, 4)

    # The failure: scaled in float64 by scikit-learn, in float32 by ONNX Runtime's Scaler, so rows
    # close to a split threshold fall on different sides.
    float64_pipeline = make_pipeline(StandardScaler(), DecisionTreeClassifier(random_state=0))
    float64_pipeline.fit(x, y)
    disagreements = label_disagreements(float64_pipeline, grid)
    assert disagreements > 100, disagreements

    # Recent skl2onnx already adjusts a bare tree's thresholds, so a bare float64 tree agrees: the
    # float64 scaling is what breaks it.
    bare_float64 = DecisionTreeClassifier(random_state=0).fit(x, y)
    assert label_disagreements(bare_float64, grid) == 0

    # Fix: train and predict on float32 data, as sklearn_converter.py does.
    x32, grid32 = x.astype(np.float32), grid.astype(np.float32)
    float32_pipeline = make_pipeline(StandardScaler(), DecisionTreeClassifier(random_state=0))
    float32_pipeline.fit(x32, y)
    assert label_disagreements(float32_pipeline, grid32) == 0

    # A scaler in front of a tree still rounds differently (scikit-learn divides by the scale,
    # ONNX multiplies by its float32 inverse), so other seeds leave a few rows; trees need no
    # scaling at all, and a bare float32 tree agrees everywhere.
    for seed in range(5):
        bare_float32 = DecisionTreeClassifier(random_state=seed).fit(x32, y)
        assert label_disagreements(bare_float32, grid32) == 0


# 9. k-nearest neighbours: a tie for the k-th neighbour -------------------------------------------


def test_9_knn_tie_for_the_kth_neighbour():
    import onnxruntime as ort

    # seed: the test row on which ONNX Runtime and scikit-learn disagree, with the pinned versions.
    for seed, row in {6: 38, 8: 22}.items():
        x_train, x_test, y_train, _ = sc.load_iris_split(seed)
        classifier = sc.make_classifier("knn", seed).fit(x_train, y_train)
        model = sc.convert(classifier, x_train.shape[1]).SerializeToString()
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        labels, probabilities = sc.predict(session, x_test)
        # The failure: one row, one different label (0.6 and 0.4 swapped between two classes).
        assert np.flatnonzero(labels != classifier.predict(x_test)).tolist() == [row]
        np.testing.assert_allclose(
            np.abs(probabilities[row] - classifier.predict_proba(x_test)[row]),
            [0, 0.2, 0.2],
            atol=1e-6,
        )
        with pytest.raises(AssertionError, match=r"^knn: 1 of 45 labels differ from predict$"):
            sc.compare_with_scikit_learn(
                "knn", classifier, x_test, labels, probabilities, np.zeros(45, dtype=bool)
            )

        # The cause: the 5th and 6th nearest training rows are equally far and of different
        # classes, so keeping one or the other changes the vote.
        distances, indices = classifier.kneighbors(x_test[row : row + 1], n_neighbors=6)
        fifth, sixth = distances[0, 4], distances[0, 5]
        assert y_train[indices[0, 4]] != y_train[indices[0, 5]]
        # In float32, the precision ONNX Runtime computes in, they are the same number.
        assert np.float32(fifth) == np.float32(sixth)
        if seed == 8:
            # In float64 they are not: an exact comparison of scikit-learn's distances misses it.
            assert (sixth - fifth) / sixth == pytest.approx(4.4e-8, rel=0.05)

        # The fix: leave out the rows where such a tie decides, say how many, verify the rest.
        tied = sc.tied_rows(classifier, x_test, y_train)
        assert tied[row] and tied.sum() == 2
        assert (
            sc.compare_with_scikit_learn("knn", classifier, x_test, labels, probabilities, tied)
            <= sc.ATOL
        )


# Security: a pickle runs code when loaded; an .onnx file is data -------------------------------


class _RunsOnLoad:
    """A pickled object whose loading calls a function of the pickle's choosing."""

    def __reduce__(self):
        return (print, ("this line was printed by pickle.loads: it ran code from the file",))


def test_security_pickle_runs_code_on_load_and_onnx_does_not(linear_model, capsys, tmp_path):
    pickle.loads(pickle.dumps(_RunsOnLoad()))
    assert "printed by pickle.loads" in capsys.readouterr().out
    # Loading an .onnx file parses a protobuf: it calls no function named in the file.
    path = tmp_path / "model.onnx"
    onnx.save_model(linear_model, path)
    loaded = onnx.load(path)
    assert capsys.readouterr().out == ""
    assert [n.op_type for n in loaded.graph.node] == ["MatMul", "Add"]
