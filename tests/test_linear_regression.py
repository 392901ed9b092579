"""In-process tests of linear_regression.py: each lifecycle step, called directly."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto

import linear_regression as lr


def fitted(features: int = 3, samples: int = 100, seed: int = 0):
    """Fit the script's model on its synthetic data set; return x, y, true_a, true_b, a, b."""
    x, y, true_a, true_b = lr.make_dataset(features, samples, seed)
    a, b = lr.fit_least_squares(x, y)
    return x, y, true_a, true_b, a, b


@pytest.mark.parametrize("features", [1, 3, 8])
def test_fit_recovers_true_coefficients(features):
    _, _, true_a, true_b, a, b = fitted(features, samples=400)
    assert a.shape == (features, 1) and a.dtype == np.float32
    assert b.shape == (1,) and b.dtype == np.float32
    # With noise 0.1 and 400 rows, the standard error of each coefficient is about 0.005.
    np.testing.assert_allclose(a[:, 0], true_a, atol=0.03)
    np.testing.assert_allclose(b[0], true_b, atol=0.03)


def test_graph_has_expected_inputs_outputs_operators_and_initializers():
    *_, a, b = fitted(features=4, samples=50)
    model = lr.build_model(a, b)

    (x_info,) = model.graph.input
    assert x_info.name == "X"
    assert x_info.type.tensor_type.elem_type == TensorProto.FLOAT
    x_dims = x_info.type.tensor_type.shape.dim
    assert [x_dims[0].dim_param, x_dims[1].dim_value] == ["N", 4]

    (y_info,) = model.graph.output
    assert y_info.name == "Y"
    y_dims = y_info.type.tensor_type.shape.dim
    assert [y_dims[0].dim_param, y_dims[1].dim_value] == ["N", 1]

    assert [node.op_type for node in model.graph.node] == ["MatMul", "Add"]
    initializers = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert set(initializers) == {"A", "B"}
    np.testing.assert_array_equal(initializers["A"], a)
    np.testing.assert_array_equal(initializers["B"], b)

    assert model.ir_version == lr.IR_VERSION
    assert [(o.domain, o.version) for o in model.opset_import] == [("", lr.OPSET)]
    assert model.producer_name and model.doc_string and model.graph.name


def test_check_model_infers_intermediate_shape():
    *_, a, b = fitted()
    inferred = lr.check_model(lr.build_model(a, b))
    (xa,) = inferred.graph.value_info
    assert xa.name == "XA"
    assert [d.dim_param or d.dim_value for d in xa.type.tensor_type.shape.dim] == ["N", 1]


def test_check_model_rejects_mismatched_shapes():
    *_, a, b = fitted(features=3)
    model = lr.build_model(a, b)
    # Declare X with 2 features while A has 3 rows: MatMul cannot work, and the full check says so.
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 2
    with pytest.raises(onnx.shape_inference.InferenceError):
        lr.check_model(model)


@pytest.mark.parametrize("features", [1, 3, 10])
@pytest.mark.parametrize("rows", [1, 7, 256])
def test_onnxruntime_reference_evaluator_and_numpy_agree(tmp_path, features, rows):
    *_, a, b = fitted(features, samples=features + 20)
    path = tmp_path / lr.MODEL_FILE
    lr.save_model(lr.build_model(a, b), path)
    session = lr.load_session(path)
    x = np.random.default_rng(42).normal(size=(rows, features)).astype(np.float32)

    y_onnxruntime = lr.run_onnxruntime(session, x)
    assert y_onnxruntime.shape == (rows, 1) and y_onnxruntime.dtype == np.float32
    expected = x.astype(np.float64) @ a.astype(np.float64) + b.astype(np.float64)
    np.testing.assert_allclose(y_onnxruntime, expected, rtol=lr.RTOL, atol=lr.ATOL)
    np.testing.assert_allclose(
        lr.run_reference_evaluator(onnx.load(path), x), expected, rtol=lr.RTOL, atol=lr.ATOL
    )
    assert lr.compare("check", y_onnxruntime, lr.numpy_reference(x, a, b)) <= lr.ATOL


def test_compare_rejects_a_wrong_result():
    expected = np.zeros((4, 1))
    with pytest.raises(AssertionError, match=r"largest difference 0\.001"):
        lr.compare("wrong", np.full((4, 1), 1e-3, dtype=np.float32), expected)
    with pytest.raises(AssertionError, match="shape"):
        lr.compare("wrong shape", np.zeros((4,), dtype=np.float32), expected)


def test_same_seed_writes_byte_identical_files(tmp_path, capsys):
    first, second, other = tmp_path / "first", tmp_path / "second", tmp_path / "other"
    assert lr.main(["--output-dir", str(first)]) == 0
    assert lr.main(["--output-dir", str(second)]) == 0
    assert lr.main(["--output-dir", str(other), "--seed", "1"]) == 0
    data = (first / lr.MODEL_FILE).read_bytes()
    assert data == (second / lr.MODEL_FILE).read_bytes()
    assert data != (other / lr.MODEL_FILE).read_bytes()


def test_main_reports_each_step_and_the_differences(tmp_path, capsys):
    assert lr.main(["--output-dir", str(tmp_path), "--features", "2", "--samples", "3"]) == 0
    out = capsys.readouterr().out
    for step in ("1. Fit", "2. Build", "3. Check", "4. Save", "5. Load", "6. Run and verify"):
        assert step in out
    assert f"wrote {tmp_path / lr.MODEL_FILE}" in out
    assert "batch of   1" in out and f"batch of  {lr.NEW_ROWS}" in out
    assert "Verified" in out and f"onnxruntime {lr.ort.__version__}" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--features", "0"], "argument --features: must be at least 1, got 0"),
        (["--features", "-3"], "argument --features: must be at least 1, got -3"),
        (["--features", "three"], "argument --features: expected a whole number, got 'three'"),
        (["--samples", "3"], "argument --samples: 3 rows cannot determine 3 coefficients"),
        (["--features", "5", "--samples", "5"], "use at least 6"),
        (["--seed", "-1"], "argument --seed: must be 0 or more, got -1"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_flags_are_usage_errors(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        lr.main([*argv, "--output-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line, no usage block, no traceback
    assert err.startswith("linear_regression.py: error: ")
    assert message in err
    assert not list(tmp_path.iterdir())  # nothing was written


def test_verification_failure_exits_1(tmp_path, capsys, monkeypatch):
    # Break the NumPy reference: the script must notice and fail, not print and carry on.
    monkeypatch.setattr(lr, "numpy_reference", lambda x, a, b: x[:, :1].astype(np.float64) + 1)
    assert lr.main(["--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: verification failed: batch 1, ONNX Runtime vs NumPy")
    assert err.count("\n") == 1


def test_unwritable_output_exits_1_and_leaves_no_temporary_file(tmp_path, capsys):
    # A folder where the file should go makes os.replace fail after the data was written.
    (tmp_path / lr.MODEL_FILE).mkdir()
    assert lr.main(["--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [lr.MODEL_FILE]


def test_output_dir_that_is_a_file_exits_1(tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    assert lr.main(["--output-dir", str(blocker)]) == 1
    assert capsys.readouterr().err.startswith("error: ")
