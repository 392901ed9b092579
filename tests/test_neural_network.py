"""In-process tests of neural_network.py: the custom operators, the network, its verification."""

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnx.inliner
import pytest

import neural_network as nn


def model_for(widths, seed=0):
    """Return He-initialised weights, biases and the built model for the given widths."""
    weights, biases = nn.he_initialise(widths, seed)
    return weights, biases, nn.build_model(weights, biases)


def test_operators_are_functions_in_the_custom_domain():
    dense, dense_relu = nn.make_layer_functions()
    assert nn.DOMAIN not in ("", "ai.onnx", "ai.onnx.ml")
    for function in (dense, dense_relu):
        assert function.domain == nn.DOMAIN
        assert list(function.input) == ["X", "W", "B"]
        assert list(function.output) == ["Y"]
    assert (dense.name, [n.op_type for n in dense.node]) == ("Dense", ["MatMul", "Add"])
    assert dense_relu.name == "DenseRelu"
    assert [(n.domain, n.op_type) for n in dense_relu.node] == [(nn.DOMAIN, "Dense"), ("", "Relu")]
    assert {(o.domain, o.version) for o in dense_relu.opset_import} == {
        ("", nn.OPSET),
        (nn.DOMAIN, nn.DOMAIN_VERSION),
    }


def test_model_stores_the_functions_and_imports_the_domain():
    _, _, model = model_for([4, 16, 16, 3])
    assert [(f.domain, f.name) for f in model.functions] == [
        (nn.DOMAIN, "Dense"),
        (nn.DOMAIN, "DenseRelu"),
    ]
    assert {(o.domain, o.version) for o in model.opset_import} == {
        ("", nn.OPSET),
        (nn.DOMAIN, nn.DOMAIN_VERSION),
    }
    assert model.ir_version == nn.IR_VERSION
    nn.check_model(model)


@pytest.mark.parametrize(
    "widths", [[4, 3], [4, 16, 3], [4, 16, 16, 3], [8, 32, 32, 32, 32, 2], [3, 5, 5, 5, 5, 5, 5, 4]]
)
def test_one_custom_op_node_per_layer(widths):
    _, _, model = model_for(widths)
    custom = [n for n in model.graph.node if n.domain == nn.DOMAIN]
    layers = len(widths) - 1
    assert [n.op_type for n in custom] == ["DenseRelu"] * (layers - 1) + ["Dense"]
    assert [n.op_type for n in model.graph.node if n.domain == ""] == ["Softmax", "ArgMax"]
    # Each layer reads its own weights, of the right shape.
    initializers = {t.name: tuple(t.dims) for t in model.graph.initializer}
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
        assert initializers[f"W{index}"] == (fan_in, fan_out)
        assert initializers[f"B{index}"] == (fan_out,)


def test_he_initialisation_scale_and_seed():
    weights, biases = nn.he_initialise([400, 300, 2], seed=3)
    assert all(w.dtype == np.float32 for w in weights + biases)
    np.testing.assert_allclose(weights[0].std(), np.sqrt(2 / 400), rtol=0.02)
    np.testing.assert_allclose(weights[1].std(), np.sqrt(2 / 300), rtol=0.1)
    again, _ = nn.he_initialise([400, 300, 2], seed=3)
    other, _ = nn.he_initialise([400, 300, 2], seed=4)
    np.testing.assert_array_equal(weights[0], again[0])
    assert not np.array_equal(weights[0], other[0])


@pytest.mark.parametrize("widths", [[4, 3], [4, 16, 16, 3], [8, 32, 32, 32, 32, 2]])
@pytest.mark.parametrize("rows", [1, 5, 200])
def test_onnxruntime_reference_evaluator_and_numpy_agree(tmp_path, widths, rows):
    weights, biases, model = model_for(widths)
    path = tmp_path / nn.MODEL_FILE
    nn.save_model(model, path)
    session = nn.load_session(path)
    x = np.random.default_rng(7).normal(size=(rows, widths[0])).astype(np.float32)

    probabilities, labels = nn.run_onnxruntime(session, x)
    expected = nn.numpy_forward(x, weights, biases)
    assert probabilities.shape == (rows, widths[-1]) and labels.shape == (rows,)
    np.testing.assert_allclose(probabilities, expected, rtol=nn.RTOL, atol=nn.ATOL)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))

    reference_probabilities, reference_labels = nn.run_reference_evaluator(onnx.load(path), x)
    np.testing.assert_allclose(reference_probabilities, expected, rtol=nn.RTOL, atol=nn.ATOL)
    np.testing.assert_array_equal(reference_labels, labels)


def test_numpy_forward_is_an_independent_reference():
    # A hand-computed two-layer case: the ReLU clips the negative hidden unit.
    weights = [np.array([[1.0, -1.0]], np.float32), np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)]
    biases = [np.zeros(2, np.float32), np.array([0.0, np.log(3.0)], np.float32)]
    probabilities = nn.numpy_forward(np.array([[2.0]], np.float32), weights, biases)
    # Hidden (2, 0); logits (2, log 3); softmax = (e^2, 3) / (e^2 + 3).
    np.testing.assert_allclose(probabilities, [[np.e**2 / (np.e**2 + 3), 3 / (np.e**2 + 3)]])


def test_inlined_model_is_flat_and_equivalent():
    *_, model = model_for([4, 16, 16, 3])
    inlined = onnx.inliner.inline_local_functions(model)
    assert len(inlined.functions) == 0
    assert [n.op_type for n in inlined.graph.node] == [
        *["MatMul", "Add", "Relu"] * 2,
        *["MatMul", "Add", "Softmax", "ArgMax"],
    ]
    x = np.random.default_rng(1).normal(size=(50, 4)).astype(np.float32)
    original = nn.run_onnxruntime(nn.load_session(model.SerializeToString()), x)
    flat = nn.run_onnxruntime(nn.load_session(inlined.SerializeToString()), x)
    np.testing.assert_allclose(flat[0], original[0], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(flat[1], original[1])


def test_missing_function_is_refused_by_onnxruntime_and_fixed_by_adding_it():
    _, _, model = model_for([4, 8, 3])
    broken = onnx.ModelProto()
    broken.CopyFrom(model)
    del broken.functions[:]
    # The checker does not notice: it cannot see what a custom-domain operator should be.
    onnx.checker.check_model(broken, full_check=True)
    with pytest.raises(Exception, match=r"com\.example\.mlp:DenseRelu\(-1\) is not a registered"):
        nn.load_session(broken.SerializeToString())
    # The fix: ship the operator's definition in the model as a local function.
    broken.functions.extend(nn.make_layer_functions())
    probabilities, _ = nn.run_onnxruntime(
        nn.load_session(broken.SerializeToString()), np.ones((2, 4), np.float32)
    )
    assert probabilities.shape == (2, 3)


@pytest.mark.parametrize("widths", [[4, 16, 16, 3], [6, 8, 2], [3, 4]])
def test_trained_export_matches_scikit_learn(widths):
    classifier, x_test, y_test, _ = nn.train_mlp(widths, seed=0)
    weights, biases = nn.sklearn_weights(classifier)
    model = nn.build_model(weights, biases)
    probabilities, labels = nn.run_onnxruntime(nn.load_session(model.SerializeToString()), x_test)
    np.testing.assert_allclose(
        probabilities, classifier.predict_proba(x_test), rtol=nn.RTOL, atol=nn.ATOL
    )
    np.testing.assert_array_equal(labels, classifier.predict(x_test))
    assert np.mean(labels == y_test) > 0.7  # well above chance: the export is of a real model


def test_main_train_reports_agreement(tmp_path, capsys):
    assert nn.main(["--train", "--layers", "4,8,3", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "largest difference vs scikit-learn" in out and "test accuracy" in out
    assert "scikit-learn 1." in out  # the version line names scikit-learn on this path


def test_main_benchmark_prints_measured_figures(tmp_path, capsys):
    assert nn.main(["--benchmark", "--layers", "4,8,3", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(("1 ", "8192 "))]
    assert [row[0] for row in rows] == ["1", "8192"]
    assert all(float(row[1]) > 0 and float(row[3]) > 0 and float(row[5]) > 0 for row in rows)


def test_same_seed_writes_byte_identical_files(tmp_path):
    for name, seed in (("first", 0), ("second", 0), ("other", 1)):
        assert nn.main(["--output-dir", str(tmp_path / name), "--seed", str(seed)]) == 0
    data = (tmp_path / "first" / nn.MODEL_FILE).read_bytes()
    assert data == (tmp_path / "second" / nn.MODEL_FILE).read_bytes()
    assert data != (tmp_path / "other" / nn.MODEL_FILE).read_bytes()


def test_same_seed_train_writes_byte_identical_files(tmp_path):
    for name in ("first", "second"):
        args = ["--train", "--layers", "4,8,3", "--output-dir", str(tmp_path / name)]
        assert nn.main(args) == 0
    first = (tmp_path / "first" / nn.MODEL_FILE).read_bytes()
    assert first == (tmp_path / "second" / nn.MODEL_FILE).read_bytes()


def test_default_run_does_not_import_scikit_learn(tmp_path):
    code = (
        "import sys, neural_network as nn; "
        f"assert nn.main(['--output-dir', {str(tmp_path)!r}]) == 0; "
        "sys.exit(1 if 'sklearn' in sys.modules else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(nn.__file__).parent,
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("4", "expected at least two comma-separated widths"),
        ("", "expected at least two comma-separated widths"),
        ("4,0,3", "every width must be 1 or more, got 0"),
        ("4,-2,3", "every width must be 1 or more, got -2"),
        ("a,b", "widths must be whole numbers, got 'a'"),
        ("4,,3", "widths must be whole numbers, got ''"),
        ("4,2.5,3", "widths must be whole numbers, got '2.5'"),
    ],
)
def test_bad_layers_are_usage_errors(value, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        nn.main([f"--layers={value}", "--output-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("neural_network.py: error: argument --layers: ")
    assert message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("layers", "message"),
    [("4,1", "output width of 2 or more"), ("1,3", "at most 2 classes")],
)
def test_train_needs_a_classifiable_shape(layers, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        nn.main(["--train", "--layers", layers])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_verification_failure_exits_1(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(nn, "numpy_forward", lambda x, w, b: np.full((len(x), 3), 1 / 3))
    assert nn.main(["--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: verification failed: batch 1, ONNX Runtime vs NumPy")
    assert err.count("\n") == 1
