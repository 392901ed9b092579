"""In-process tests of linear_regression.py: each lifecycle step, called directly."""

import os
import stat
from pathlib import Path

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
    bound = lr.float32_error_bound(x, a, b)
    assert np.all(np.abs(y_onnxruntime - expected) <= bound)
    assert np.all(np.abs(lr.run_reference_evaluator(onnx.load(path), x) - expected) <= bound)
    assert lr.compare("check", y_onnxruntime, lr.numpy_reference(x, a, b), bound) <= bound.max()


def test_float32_error_bound_holds_for_the_worst_summation_order_and_is_tight_enough():
    # Sum the terms one by one in float32, the order with the largest error growth, for many
    # features: the result stays within the bound...
    rng = np.random.default_rng(7)
    features = 4000
    a = rng.uniform(-2, 2, size=(features, 1)).astype(np.float32)
    b = np.array([0.5], dtype=np.float32)
    x = rng.normal(size=(32, features)).astype(np.float32)
    terms = np.concatenate([x * a[:, 0], np.broadcast_to(b, (32, 1))], axis=1)
    sequential = np.cumsum(terms, axis=1, dtype=np.float32)[:, -1:]
    exact = lr.numpy_reference(x, a, b)
    bound = lr.float32_error_bound(x, a, b)
    assert np.all(np.abs(sequential - exact) <= bound)
    # ...and the bound grows with the number of terms: 100 times more terms of the same size
    # make gamma_n 100 times larger and the sum of magnitudes too, so no fixed atol fits both.
    small = lr.float32_error_bound(x[:, :40], a[:40], b).mean()
    assert 5_000 < bound.mean() / small < 20_000
    # At the default size, the bound is far below what a real bug changes (a dropped bias).
    *_, a3, b3 = fitted()
    x3 = rng.normal(size=(64, 3)).astype(np.float32)
    assert lr.float32_error_bound(x3, a3, b3).max() < 1e-5 < abs(float(b3[0]))


@pytest.mark.parametrize("features", [1, 2, 50, 500])
def test_any_feature_count_verifies(tmp_path, capsys, features):
    argv = ["--features", str(features), "--samples", str(features + 1)]
    assert lr.main([*argv, "--output-dir", str(tmp_path)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "Verified" in out
    # Long weight lists are elided: no line of the report grows with the number of features.
    assert max(len(line) for line in out.splitlines()) < 150


@pytest.mark.parametrize("features", [1000, 2000, 5000])
def test_long_dot_products_stay_within_the_bound(tmp_path, features):
    # Up to thousands of features, without the least-squares fit: ONNX Runtime against NumPy and
    # against the reference evaluator, each within the derived float32 bound (a fixed atol=1e-5
    # failed here from 500 features on).
    rng = np.random.default_rng(features)
    a = rng.uniform(-2, 2, size=(features, 1)).astype(np.float32)
    b = rng.uniform(-1, 1, size=1).astype(np.float32)
    path = tmp_path / lr.MODEL_FILE
    lr.save_model(lr.build_model(a, b), path)
    x = rng.normal(size=(64, features)).astype(np.float32)
    y_onnxruntime = lr.run_onnxruntime(lr.load_session(path), x)
    bound = lr.float32_error_bound(x, a, b)
    lr.compare("vs NumPy", y_onnxruntime, lr.numpy_reference(x, a, b), bound)
    lr.compare(
        "vs reference", y_onnxruntime, lr.run_reference_evaluator(onnx.load(path), x), 2 * bound
    )


def test_text_form_elides_large_initializers_only():
    *_, a, b = fitted(features=3)
    small = lr.text_form(lr.build_model(a, b))
    assert f"{a[0, 0]:.6}"[:6] in small and "values..." not in small
    a = np.ones((500, 1), dtype=np.float32)
    large = lr.text_form(lr.build_model(a, b))
    assert "float[500,1] A = {...500 values...}" in large
    assert "[matmul] XA = MatMul (X, A)" in large and len(large) < 1000


def test_compare_rejects_a_wrong_result():
    expected = np.zeros((4, 1))
    bound = np.full((4, 1), 1e-4)
    with pytest.raises(AssertionError, match=r"4 of 4 values .*largest difference 0\.001"):
        lr.compare("wrong", np.full((4, 1), 1e-3, dtype=np.float32), expected, bound)
    with pytest.raises(AssertionError, match="shape"):
        lr.compare("wrong shape", np.zeros((4,), dtype=np.float32), expected, bound)


def test_the_model_that_runs_is_the_file_on_disk(tmp_path, capsys, monkeypatch):
    # Write a file whose bias differs from the fitted one: verification must see the file's
    # numbers, so the round trip through disk is what is proven, not the in-memory model.
    real_save = lr.save_model

    def save_a_different_model(model: onnx.ModelProto, path):
        changed = onnx.ModelProto()
        changed.CopyFrom(model)
        bias = onnx.numpy_helper.to_array(changed.graph.initializer[1]) + 0.5
        changed.graph.initializer[1].CopyFrom(onnx.numpy_helper.from_array(bias, "B"))
        return real_save(changed, path)

    monkeypatch.setattr(lr, "save_model", save_a_different_model)
    assert lr.main(["--output-dir", str(tmp_path)]) == 1
    assert "ONNX Runtime vs NumPy" in capsys.readouterr().err


def test_saved_file_has_the_usual_permissions(tmp_path):
    if os.name != "posix":
        pytest.skip("permission bits are POSIX")
    *_, a, b = fitted()
    path = tmp_path / lr.MODEL_FILE
    lr.save_model(lr.build_model(a, b), path)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


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
    assert "inferred intermediate XA: ['N', 1]" in out  # shape inference ran on the model
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
        (["--seed", "-1"], "argument --seed: must be from 0 to 2**32 - 1 (4294967295), got -1"),
        (["--seed", "4294967296"], "argument --seed: must be from 0 to 2**32 - 1"),
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


def test_largest_seed_verifies(tmp_path, capsys):
    assert lr.main(["--output-dir", str(tmp_path), "--seed", str(2**32 - 1)]) == 0


def test_output_dir_that_is_a_file_is_named_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    assert lr.main(["--output-dir", str(blocker)]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"error: the output folder is not a folder: {blocker}\n"
    assert captured.out == ""  # checked before the lesson printed or computed anything


def test_output_dir_that_cannot_be_written_is_named(tmp_path, capsys):
    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux's /proc, a folder where no file can be created")
    assert lr.main(["--output-dir", "/proc"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: the output folder is not writable (")
    assert captured.err.endswith(": /proc\n") and captured.out == ""
