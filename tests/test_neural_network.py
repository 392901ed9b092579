"""Tests of neural_network.py: the custom operators, the network, its verification, external data,
and the command-line manners a process shows (Ctrl-C, a closed pipe, output encodings)."""

import argparse
import errno
import io
import itertools
import os
import platform
import re
import signal
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

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
    onnx.checker.check_model(model, full_check=True)


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
    nn.save(model, path, external_data=False)
    session = nn.load_session(path)
    x = np.random.default_rng(7).normal(size=(rows, widths[0])).astype(np.float32)

    probabilities, labels = nn.run_onnxruntime(session, x)
    expected = nn.numpy_forward(x, weights, biases)
    assert probabilities.shape == (rows, widths[-1]) and labels.shape == (rows,)
    np.testing.assert_allclose(probabilities, expected, rtol=nn.RTOL, atol=nn.ATOL)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))

    evaluator = nn.load_reference_evaluator(path)
    reference_probabilities, reference_labels = nn.run_reference_evaluator(evaluator, x)
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


@pytest.mark.parametrize("layers", ["4,1", "1,1", "4,8,1"])
def test_one_output_class_is_a_usage_error(layers, capsys, tmp_path):
    # A softmax over one class is 1.0 and its argmax 0 whatever the weights: nothing to verify.
    with pytest.raises(SystemExit) as exit_info:
        nn.main(["--layers", layers, "--output-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "the output width is the number of classes and must be 2 or more, got 1" in err
    assert err.count("\n") == 1 and not list(tmp_path.iterdir())


def test_one_input_and_two_classes_work(tmp_path, capsys):
    assert nn.main(["--layers", "1,1,2", "--output-dir", str(tmp_path)]) == 0
    assert "Verified" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("layers", "allowed"),
    [("8,150", True), ("8,151", False), ("2,4", True), ("2,5", False), ("1,2", True)],
)
def test_train_limits_are_the_data_sets_real_limits(layers, allowed):
    widths = [int(w) for w in layers.split(",")]
    problem = nn.training_problem(widths)
    assert (problem is None) == allowed
    if allowed:
        _, x_test, _, y_test = nn.synthetic_split(widths, seed=0)
        assert len(x_test) == nn.TEST_ROWS and len(set(y_test)) == widths[-1]
    else:
        # The limit is scikit-learn's own, not one the script invents.
        with pytest.raises(ValueError, match=r"test_size = 150 should be|2\*\*n_informative"):
            nn.synthetic_split(widths, seed=0)


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        ("10,400", "at most 150 classes, not 400: the synthetic set has 600 rows"),
        ("1,3", "1 input feature(s) can separate at most 2 classes"),
    ],
)
def test_train_settings_that_cannot_work_are_usage_errors(layers, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        nn.main(["--train", "--layers", layers, "--output-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("neural_network.py: error: argument --train: ")
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("seed", ["-1", "4294967296", "1e3"])
def test_seed_outside_the_range_is_a_usage_error(seed, capsys):
    with pytest.raises(SystemExit) as exit_info:
        nn.main([f"--seed={seed}", "--train"])
    assert exit_info.value.code == 2
    assert "argument --seed: " in capsys.readouterr().err


def test_largest_seed_works_with_train_and_help_states_the_range(tmp_path, capsys):
    args = ["--train", "--layers", "3,4", "--seed", str(nn.SEED_MAX)]
    assert nn.main([*args, "--output-dir", str(tmp_path)]) == 0
    with pytest.raises(SystemExit):
        nn.main(["--help"])
    assert "random seed, 0 to 2**32 - 1" in capsys.readouterr().out


def test_output_folder_that_is_a_file_is_one_error_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert nn.main(["--output-dir", str(blocker)]) == 1
    err = capsys.readouterr().err
    assert err == f"error: the output folder is not a folder: {blocker}\n"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_output_folder_in_proc_is_one_error_line(capsys):
    assert nn.main(["--output-dir", "/proc"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: the output folder is not writable (")
    assert captured.err.endswith(": /proc\n") and captured.err.count("\n") == 1
    assert captured.out == ""  # checked before the lesson's work


def test_verification_failure_exits_1(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(nn, "numpy_forward", lambda x, w, b: np.full((len(x), 3), 1 / 3))
    assert nn.main(["--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: verification failed: batch 1, ONNX Runtime vs NumPy")
    assert err.count("\n") == 1


def test_compare_labels_fails_on_a_clear_disagreement_and_allows_only_a_near_tie() -> None:
    # Row 0 is clear (0.9 against 0.05), row 1 too, row 2 a near-tie of its top two.
    probabilities = np.array(
        [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.5, 0.5 - nn.ATOL / 2, nn.ATOL / 2]]
    )
    expected = np.array([0, 1, 0])
    assert nn.compare_labels("agree", expected.copy(), expected, probabilities) == 0
    assert nn.compare_labels("near-tie", np.array([0, 1, 1]), expected, probabilities) == 1
    for name, actual in (("clear", [0, 2, 0]), ("clear and near-tie", [0, 2, 1])):
        try:
            nn.compare_labels(name, np.array(actual), expected, probabilities)
        except AssertionError as error:
            assert str(error) == (
                f"{name}: 1 of 3 labels differ where the top two probabilities are not tied"
            )
        else:
            pytest.fail(f"compare_labels accepted labels {actual} against {expected.tolist()}")


def test_reference_labels_that_disagree_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The NumPy reference's probabilities are right but its labels name another class: the labels
    # are checked on their own, not only through the probabilities.
    real_random_network = nn.random_network

    def labels_off_by_one(widths: list[int], seed: int) -> Any:
        *network, (name, reference) = real_random_network(widths, seed)

        def shifted(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            probabilities, labels = reference(x)
            return probabilities, (labels + 1) % widths[-1]

        return (*network, (name, shifted))

    monkeypatch.setattr(nn, "random_network", labels_off_by_one)
    status = nn.main(["--output-dir", str(tmp_path)])
    assert status == 1, f"labels that disagree with NumPy's passed verification (exit {status})"
    assert capsys.readouterr().err == (
        "error: verification failed: batch 1, ONNX Runtime labels vs NumPy: 1 of 1 labels differ "
        "where the top two probabilities are not tied\n"
    )


class WrongEvaluator:
    """A reference evaluator whose answers are wrong: probabilities rolled, or labels shifted."""

    def __init__(self, evaluator: Any, wrong: str) -> None:
        self.evaluator, self.wrong = evaluator, wrong

    def run(self, output_names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        probabilities, labels = self.evaluator.run(output_names, feeds)
        if self.wrong == "probabilities":
            return [np.roll(probabilities, 1, axis=1), labels]
        return [probabilities, (labels + 1) % probabilities.shape[1]]


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        ("probabilities", "batch 1, ONNX Runtime vs reference evaluator: largest difference "),
        ("labels", "batch 1, ONNX Runtime labels vs reference evaluator: 1 of 1 labels differ "),
    ],
)
def test_a_reference_evaluator_that_disagrees_exits_1_naming_it(
    wrong: str,
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The second reference is onnx's evaluator: ONNX Runtime must really be compared with it.
    real_load = nn.load_reference_evaluator
    monkeypatch.setattr(
        nn, "load_reference_evaluator", lambda path: WrongEvaluator(real_load(path), wrong)
    )
    status = nn.main(["--output-dir", str(tmp_path)])
    assert status == 1, (
        f"a reference evaluator with wrong {wrong} passed verification (exit {status}): "
        "ONNX Runtime is not compared with the evaluator"
    )
    captured = capsys.readouterr()
    assert captured.err.startswith("error: verification failed: " + message), captured.err
    assert captured.err.count("\n") == 1 and "Verified" not in captured.out


def test_an_inlined_model_that_computes_something_else_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The inlined twin takes its weights from the NumPy arrays (inlined_session), so the way to
    # make it differ is its graph: the first layer's Add becomes Sub (X·W - B instead of X·W + B).
    real_inline = onnx.inliner.inline_local_functions

    def inline_with_a_wrong_node(model: onnx.ModelProto) -> onnx.ModelProto:
        inlined = real_inline(model)
        next(node for node in inlined.graph.node if node.op_type == "Add").op_type = "Sub"
        return inlined

    monkeypatch.setattr(onnx.inliner, "inline_local_functions", inline_with_a_wrong_node)
    status = nn.main(["--output-dir", str(tmp_path)])
    assert status == 1, (
        f"an inlined model computing X·W - B passed verification (exit {status}): the inlined "
        "model is not compared with the original"
    )
    captured = capsys.readouterr()
    assert captured.err.startswith(
        "error: verification failed: inlined model vs original: largest difference "
    ), captured.err
    assert "MatMul Sub Relu" in captured.out  # the changed graph really ran
    assert "Verified" not in captured.out


def test_a_file_that_differs_from_the_built_model_fails_verification(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The script must run the file it wrote, reloaded from disk, not the model still in memory:
    # here the bytes written differ from the model built (the last bias of class 0 is +1), as a
    # faulty save or a disk would make them, and NumPy, which uses the built weights, must object.
    real_write = nn.write_atomically

    def write_a_changed_model(path: Path, data: bytes) -> None:
        model = onnx.ModelProto.FromString(data)
        bias = [t for t in model.graph.initializer if t.name.startswith("B")][-1]
        values = onnx.numpy_helper.to_array(bias).copy()
        values[0] += 1.0
        bias.CopyFrom(onnx.numpy_helper.from_array(values, bias.name))
        real_write(path, model.SerializeToString())

    monkeypatch.setattr(nn, "write_atomically", write_a_changed_model)
    status = nn.main(["--output-dir", str(tmp_path)])
    assert status == 1, (
        f"a file that differs from the built model passed verification (exit {status}): what ran "
        "was not the file reloaded from disk"
    )
    captured = capsys.readouterr()
    # ONNX Runtime runs the changed file, NumPy the built weights: that is the disagreement to
    # find first (the reference evaluator, which also reads the file, agrees with ONNX Runtime).
    assert captured.err.startswith(
        "error: verification failed: batch 1, ONNX Runtime vs NumPy: largest difference "
    ), f"expected ONNX Runtime, running the changed file, to disagree with NumPy; {captured.err}"
    assert "Verified" not in captured.out


# --- External data -------------------------------------------------------------------------------


def save_external(tmp_path, monkeypatch, widths=(4, 8, 3), seed=0):
    """Save a small model with external data, threshold 0: every tensor goes to the data file."""
    monkeypatch.setattr(nn, "EXTERNAL_DATA_THRESHOLD", 0)
    weights, biases, model = model_for(list(widths), seed)
    tmp_path.mkdir(exist_ok=True)
    path = tmp_path / nn.MODEL_FILE
    files = nn.save(model, path, external_data=True)
    return weights, biases, path, files


def test_external_data_files_and_entries(tmp_path, monkeypatch):
    weights, biases, path, files = save_external(tmp_path, monkeypatch)
    data = files[1]
    assert files[0] == path and data.parent == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, data.name])
    assert data.name.startswith("neural_network.") and data.suffix == ".data"
    model = onnx.load(path, load_external_data=False)
    offset = 0
    arrays = nn.initializer_values(weights, biases)
    for tensor in model.graph.initializer:
        entries = {entry.key: entry.value for entry in tensor.external_data}
        assert tensor.data_location == onnx.TensorProto.EXTERNAL and not tensor.raw_data
        # location is relative to the model's folder: a bare file name, no folder in it.
        size = arrays[tensor.name].nbytes
        assert entries == {"location": data.name, "offset": str(offset), "length": str(size)}
        offset += size
    assert data.stat().st_size == offset
    assert path.stat().st_size < 1500  # the graph and functions only


def test_external_data_model_loads_by_path_and_verifies(tmp_path, monkeypatch):
    weights, biases, path, _ = save_external(tmp_path, monkeypatch)
    onnx.checker.check_model(path, full_check=True)
    x = np.random.default_rng(3).normal(size=(20, 4)).astype(np.float32)
    expected = nn.numpy_forward(x, weights, biases)
    probabilities, labels = nn.run_onnxruntime(nn.load_session(path), x)
    np.testing.assert_allclose(probabilities, expected, rtol=nn.RTOL, atol=nn.ATOL)
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))
    evaluator = nn.load_reference_evaluator(path)
    np.testing.assert_allclose(
        nn.run_reference_evaluator(evaluator, x)[0], expected, rtol=nn.RTOL, atol=nn.ATOL
    )
    loaded = onnx.load(path)  # onnx.load reads the data file too: the tensors come back inline
    np.testing.assert_array_equal(
        onnx.numpy_helper.to_array(loaded.graph.initializer[0]), weights[0]
    )


def test_external_data_moved_away_fails_and_moving_it_back_fixes(tmp_path, monkeypatch):
    _, _, path, files = save_external(tmp_path, monkeypatch)
    elsewhere = tmp_path / "elsewhere.bin"
    files[1].rename(elsewhere)
    with pytest.raises(onnx.checker.ValidationError, match=r"\.data, but it is not regular file"):
        onnx.load(path)
    with pytest.raises(Exception, match="External data path does not exist"):
        nn.load_session(path)
    elsewhere.rename(files[1])
    assert nn.load_session(path).get_inputs()[0].name == "X"


def test_external_data_model_from_bytes_needs_its_folder(tmp_path, monkeypatch):
    # microsoft/onnxruntime#6696: bytes carry no folder to resolve `location` against.
    _, _, path, _ = save_external(tmp_path / "model", monkeypatch)
    # From bytes, ONNX Runtime looks for the data file in the working directory...
    monkeypatch.chdir(tmp_path)
    with pytest.raises(Exception, match="loaded from bytes escapes working directory"):
        nn.load_session(path.read_bytes())
    # ...and even when it is there, it cannot read it without the model's path.
    monkeypatch.chdir(path.parent)
    with pytest.raises(Exception, match="model_path must not be empty"):
        nn.load_session(path.read_bytes())
    # The fixes: open it by path, or name the folder for the bytes.
    monkeypatch.chdir(tmp_path)
    session = nn.load_session(path.read_bytes(), data_folder=path.parent)
    by_path = nn.load_session(path)
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(session.run(None, {"X": x})[0], by_path.run(None, {"X": x})[0])


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink"])
def test_location_outside_the_models_folder_is_refused(tmp_path, monkeypatch, where):
    _, _, path, files = save_external(tmp_path / "model", monkeypatch)
    outside = tmp_path / "outside.data"
    files[1].rename(outside)
    if where == "parent":
        location = "../outside.data"
    elif where == "absolute":
        location = str(outside)
    else:
        if not hasattr(os, "symlink") or os.name != "posix":
            pytest.skip("symbolic links need POSIX")
        (tmp_path / "model" / "link.data").symlink_to(outside)
        location = "link.data"
    model = onnx.load(path, load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    path.write_bytes(model.SerializeToString())
    onnx_message = {
        "parent": "points outside the directory",
        "absolute": "should be a relative path, but it is an absolute path",
        "symlink": "but it is a symbolic link",
    }[where]
    with pytest.raises(onnx.checker.ValidationError, match=onnx_message):
        onnx.load(path)
    with pytest.raises(onnx.checker.ValidationError, match=onnx_message):
        onnx.checker.check_model(path)
    ort_message = {
        "parent": "External data path escapes model directory",
        "absolute": "Absolute path not allowed for external data location",
        "symlink": "External data path escapes model directory",
    }[where]
    with pytest.raises(Exception, match=ort_message):
        nn.load_session(path)


def test_automatic_switch_to_external_data_is_decided_by_size():
    limit = nn.PROTOBUF_LIMIT
    assert limit == 2**31 - 1
    assert not nn.needs_external_data(limit - nn.GRAPH_BYTES_ALLOWANCE)
    assert nn.needs_external_data(limit - nn.GRAPH_BYTES_ALLOWANCE + 1)

    def layers_bytes(widths):
        return sum(4 * (i * o + o) for i, o in itertools.pairwise(widths))

    assert nn.needs_external_data(layers_bytes([26000, 26000, 3]))  # 2.7 GB
    assert not nn.needs_external_data(layers_bytes([20000, 20000, 3]))  # 1.6 GB
    # The allowance covers everything but the weights: here it is a few KB of a MiB.
    _, _, model = model_for([4, 16, 16, 3])
    assert len(model.SerializeToString()) - nn.weight_bytes(model) < nn.GRAPH_BYTES_ALLOWANCE / 100


def test_too_big_for_protobuf_saves_external_data_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(nn, "needs_external_data", lambda size: True)
    assert nn.main(["--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "do not fit in one protobuf message (at most 2147483647 bytes)" in out
    assert len(list(tmp_path.glob("neural_network.*.data"))) == 1
    assert "Verified: " in out and ".data agree with NumPy" in out


def test_external_data_runs_are_byte_identical_and_stale_data_is_removed(tmp_path):
    for name in ("first", "second"):
        assert nn.main(["--external-data", "--output-dir", str(tmp_path / name)]) == 0
    first, second = (sorted((tmp_path / n).iterdir()) for n in ("first", "second"))
    assert [p.name for p in first] == [p.name for p in second] and len(first) == 2
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second, strict=True))
    folder = tmp_path / "first"
    assert nn.main(["--external-data", "--seed", "1", "--output-dir", str(folder)]) == 0
    data = list(folder.glob("*.data"))
    assert len(data) == 1 and data[0].name != first[0].name  # the old run's data is gone
    nn.load_session(folder / nn.MODEL_FILE)  # and the model finds its own
    assert nn.main(["--output-dir", str(folder)]) == 0
    assert [p.name for p in folder.iterdir()] == [nn.MODEL_FILE]


def test_interrupted_save_leaves_no_file(tmp_path, monkeypatch, capsys):
    def interrupted(path, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(nn, "write_atomically", interrupted)
    assert nn.main(["--external-data", "--output-dir", str(tmp_path)]) == 130
    captured = capsys.readouterr()
    assert captured.err == "error: interrupted\n" and "Verified" not in captured.out
    assert list(tmp_path.iterdir()) == []


def test_printed_text_elides_every_weight(capsys):
    weights, biases = nn.he_initialise([4, 300, 3], seed=0)
    model, skeleton = nn.build(weights, biases)
    out = capsys.readouterr().out
    assert "float[4,300] W0 = {...}" in out and "float[300,3] W1 = {...}" in out
    assert f"{weights[0][0, 0]:.6}"[:6] not in out and len(out) < 2500
    assert all(not t.HasField("raw_data") for t in skeleton.graph.initializer)
    assert [n.op_type for n in skeleton.graph.node] == [n.op_type for n in model.graph.node]


def test_chunked_generation_and_reference_equal_one_call(monkeypatch):
    weights, biases = nn.he_initialise([5, 7, 3], seed=4)
    monkeypatch.setattr(nn, "CHUNK_ELEMENTS", 8)  # one or two rows per slice
    chunked_weights, chunked_biases = nn.he_initialise([5, 7, 3], seed=4)
    for a, b in zip(weights + biases, chunked_weights + chunked_biases, strict=True):
        np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(4)
    np.testing.assert_array_equal(
        weights[0], rng.normal(0, np.sqrt(2 / 5), (5, 7)).astype(np.float32)
    )
    x = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    monkeypatch.setattr(nn, "CHUNK_ELEMENTS", 2**22)
    whole = nn.numpy_forward(x, weights, biases)
    monkeypatch.setattr(nn, "CHUNK_ELEMENTS", 8)
    np.testing.assert_allclose(nn.numpy_forward(x, weights, biases), whole, rtol=1e-12)


# --- Manners a process shows ---------------------------------------------------------------------


SCRIPT = str(Path(nn.__file__).resolve())


def test_interrupted_training_exits_130_and_writes_nothing(tmp_path):
    # Ctrl-C arrives during MLPClassifier.fit, which catches it, warns and returns a half-trained
    # model; the script must treat it as the interruption it was.
    code = (
        "import os, signal, sys\n"
        "from sklearn.neural_network import MLPClassifier\n"
        "calls = []\n"
        "def epoch_end(self, *args):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 3:\n"
        "        signal.raise_signal(signal.SIGINT)\n"
        "MLPClassifier._update_no_improvement_count = epoch_end\n"
        f"sys.path.insert(0, {str(Path(SCRIPT).parent)!r})\n"
        "import neural_network\n"
        "sys.exit(neural_network.main(['--train', '--layers', '4,8,3', '--output-dir', 'out']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    assert (result.returncode, result.stderr) == (130, "error: interrupted\n")
    assert "Verified" not in result.stdout and "trained an MLP" not in result.stdout
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("encoding", ["ascii", "cp932"])
def test_any_output_encoding_works(tmp_path, encoding):
    result = subprocess.run(
        [sys.executable, SCRIPT, "--benchmark", "--layers", "4,3"],
        cwd=tmp_path,
        capture_output=True,
        env={**os.environ, "PYTHONIOENCODING": encoding},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert b"\\xb5s" in result.stdout and b"Verified" in result.stdout


def test_sigint_handler_is_installed_at_startup():
    # The guard before the heavy imports: Ctrl-C while importing is one line and status 130.
    source = Path(SCRIPT).read_text(encoding="utf-8")
    assert source.index("signal.signal(signal.SIGINT, _interrupted_at_startup)") < source.index(
        "import numpy"
    )
    assert signal.getsignal(signal.SIGINT) is not None


# --- The reports the docs show, in process (mutation testing cannot follow a new process) ------


ROOT = Path(nn.__file__).resolve().parent


def docs_sample(command: str) -> str:
    """Return the output sample docs/neural_network.md shows for a command (its first line)."""
    text = (ROOT / "docs" / "neural_network.md").read_text(encoding="utf-8")
    match = re.search(
        rf"<!-- sample: {re.escape(command)}( \|[^>]*)? -->\n```text\n(.*?)```", text, re.S
    )
    assert match is not None, f"docs/neural_network.md has no sample of `{command}`"
    return match[2]


def steady(report: str) -> str:
    """The report without what varies between machines: the Python version."""
    return re.sub(r"Python \S+,", "Python ...,", report)


LINUX_X86_64 = pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() != "x86_64",
    reason="the samples were made on Linux x86_64; other BLAS libraries round differently",
)


@LINUX_X86_64
def test_default_run_prints_the_report_the_docs_show(tmp_path, capsys, monkeypatch):
    # The page's sample is of --benchmark; without it the report is the same, step 7 left out.
    monkeypatch.chdir(tmp_path)
    assert nn.main([]) == 0
    shown = docs_sample("python neural_network.py --benchmark")
    shown = re.sub(r"\n7\. Benchmark.*?\n\n", "\n", shown, flags=re.S)
    assert steady(capsys.readouterr().out) == steady(shown)
    assert [p.name for p in (tmp_path / "models").iterdir()] == [nn.MODEL_FILE]


@LINUX_X86_64
def test_external_data_run_prints_the_save_step_the_docs_show(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert nn.main(["--external-data"]) == 0
    out = capsys.readouterr().out
    shown = docs_sample("python neural_network.py --external-data")
    start = out.index("2. Save")
    end = out.index("load the model by its path", start)
    assert out[start : out.index("\n", end) + 1] == shown
    written = re.findall(r"wrote models/(\S+) ", shown)
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == sorted(written)
    assert (
        f"\nVerified: models/{written[0]} and models/{written[1]} agree with NumPy and the "
        "reference evaluator.\n" in out
    )


@LINUX_X86_64
def test_train_run_prints_the_verification_the_docs_show(tmp_path, capsys):
    args = ["--train", "--layers", "8,32,32,32,32,2", "--output-dir", str(tmp_path)]
    assert nn.main(args) == 0
    out = capsys.readouterr().out
    shown = docs_sample("python neural_network.py --train --layers 8,32,32,32,32,2")
    assert out.startswith(
        "MLP with layers 8,32,32,32,32,2 (5 dense layers) from a trained scikit-learn "
        "MLPClassifier, seed 0\n"
    )
    # This one converges: no note that it did not.
    assert "\n   trained an MLPClassifier: 120 iterations\n" in out
    start = out.index("5. Run")
    end = out.index("test accuracy", start)
    assert out[start : out.index("\n", end) + 1] == shown
    # The verdict names scikit-learn, and so does the versions line, after the others.
    import sklearn

    *_, verdict, versions = out.splitlines()
    path = tmp_path / nn.MODEL_FILE
    assert verdict == f"Verified: {path} agrees with scikit-learn and the reference evaluator."
    assert versions.startswith("Versions: Python ") and ", onnxruntime " in versions
    assert versions.endswith(f", scikit-learn {sklearn.__version__}")


def test_training_interrupted_in_process_exits_130_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As test_interrupted_training_exits_130_and_writes_nothing, in process so that mutation
    # testing sees it: Ctrl-C during fit, which MLPClassifier catches, turns into a warning and a
    # half-trained model; the script must not export it.
    from sklearn.neural_network import MLPClassifier

    calls = []

    def interrupted_at_epoch_3(self: Any, *args: Any) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(MLPClassifier, "_update_no_improvement_count", interrupted_at_epoch_3)
    status = nn.main(["--train", "--layers", "4,8,3", "--output-dir", str(tmp_path)])
    captured = capsys.readouterr()
    assert (status, captured.err) == (130, "error: interrupted\n")
    assert "trained an MLP" not in captured.out and "Verified" not in captured.out
    assert list(tmp_path.iterdir()) == []


def test_a_training_that_stops_early_is_exported_and_says_it_did_not_converge(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Too few iterations: scikit-learn warns that it did not converge, the export is still exact.
    monkeypatch.setattr(nn, "TRAIN_ITERATIONS", 3)
    assert nn.main(["--train", "--layers", "4,8,3", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "trained an MLPClassifier: 3 iterations (not converged; the export is verified" in out
    assert "Verified" in out
    _, _, _, converged = nn.train_mlp([4, 8, 3], seed=0)
    assert not converged


# --- Each step on its own, called by the test itself (a fixture's calls count for one test) -----


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_saved_files_get_the_usual_mode_not_mkstemps_private_one(tmp_path, monkeypatch):
    # Another user (a model server) must be able to read the model, as any file the user writes.
    monkeypatch.setattr(nn, "EXTERNAL_DATA_THRESHOLD", 0)
    _, _, model = model_for([4, 8, 3])
    original = current_umask()
    for umask in (0o022, 0o077, 0o002):
        os.umask(umask)
        try:
            folder = tmp_path / f"umask{umask:o}"
            folder.mkdir()
            files = nn.save(model, folder / nn.MODEL_FILE, external_data=umask != 0o002)
            for file in files:
                assert file.stat().st_mode & 0o777 == 0o666 & ~umask, (file.name, oct(umask))
            assert current_umask() == umask  # and the umask is left as it was
        finally:
            os.umask(original)


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_write_that_fails_leaves_no_temporary_file_and_the_old_model(
    tmp_path, monkeypatch, failing
):
    _, _, model = model_for([4, 8, 3])
    path = tmp_path / nn.MODEL_FILE
    nn.save(model, path, external_data=False)
    before = path.read_bytes()
    _, _, other = model_for([4, 8, 3], seed=1)

    def fail(*args: object) -> None:
        raise OSError(errno.EIO, "simulated failure")

    monkeypatch.setattr(nn.os, failing, fail)
    with pytest.raises(OSError, match="simulated failure"):
        nn.write_atomically(path, other.SerializeToString())
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == [nn.MODEL_FILE]
    assert path.read_bytes() == before


def test_a_failed_data_file_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    monkeypatch.setattr(nn, "EXTERNAL_DATA_THRESHOLD", 0)
    _, _, model = model_for([4, 8, 3])

    def fail(*args: object) -> None:
        raise OSError(errno.ENOSPC, "simulated full disk")

    monkeypatch.setattr(nn.external_data_helper, "write_external_data_tensors", fail)
    with pytest.raises(OSError, match="simulated full disk"):
        nn.save(model, tmp_path / nn.MODEL_FILE, external_data=True)
    assert list(tmp_path.iterdir()) == []


def test_an_interrupted_save_keeps_the_previous_models_data_file(tmp_path, monkeypatch, capsys):
    # The same bytes saved again: the data file of that name already exists and belongs to the
    # model on disk. An interruption while writing the .onnx must leave both working.
    assert nn.main(["--external-data", "--output-dir", str(tmp_path)]) == 0
    before = sorted(tmp_path.iterdir())

    def interrupted(path: Path, data: bytes) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(nn, "write_atomically", interrupted)
    assert nn.main(["--external-data", "--output-dir", str(tmp_path)]) == 130
    assert sorted(tmp_path.iterdir()) == before
    nn.check(tmp_path / nn.MODEL_FILE)
    x = np.ones((2, 4), np.float32)
    nn.run_onnxruntime(nn.load_session(tmp_path / nn.MODEL_FILE), x)


def test_check_refuses_a_file_whose_types_do_not_add_up(tmp_path, capsys):
    # The plain checker accepts an Add of a float and an int64; full_check's type inference not.
    inputs = [
        onnx.helper.make_tensor_value_info("a", onnx.TensorProto.FLOAT, ["N"]),
        onnx.helper.make_tensor_value_info("b", onnx.TensorProto.INT64, ["N"]),
    ]
    output = onnx.helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, ["N"])
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Add", ["a", "b"], ["c"])], "mixed", inputs, [output]
    )
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", nn.OPSET)], ir_version=nn.IR_VERSION
    )
    path = tmp_path / "mixed.onnx"
    path.write_bytes(model.SerializeToString())
    onnx.checker.check_model(path)  # the plain checker does not notice
    with pytest.raises(onnx.shape_inference.InferenceError):
        nn.check(path)


def test_weight_bytes_is_the_size_of_the_arrays():
    weights, biases, model = model_for([4, 16, 16, 3])
    assert nn.weight_bytes(model) == sum(a.nbytes for a in weights + biases) == 1612


def test_too_big_a_model_says_how_many_bytes_of_weights(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(nn, "needs_external_data", lambda size: size == 1612)
    _, _, model = model_for([4, 16, 16, 3])
    files = nn.save(model, tmp_path / nn.MODEL_FILE, external_data=False)
    out = capsys.readouterr().out
    assert "   1612 bytes of weights do not fit in one protobuf message" in out
    assert len(files) == 2 and files[1].suffix == ".data"


def test_compare_accepts_within_the_tolerance_and_names_what_is_outside():
    expected = np.array([[0.25, 0.75], [0.5, 0.5]])
    inside = expected * (1 + nn.RTOL / 2)
    assert nn.compare("inside", inside.astype(np.float32), expected) == pytest.approx(
        0.75 * nn.RTOL / 2, rel=1e-3
    )
    assert nn.compare("equal", expected.copy(), expected) == 0.0
    outside = expected + np.array([[0.0, 0.0], [0.0, 0.001]])
    with pytest.raises(AssertionError) as error:
        nn.compare("outside", outside, expected)
    assert str(error.value) == "outside: largest difference 0.001 exceeds rtol=0.0001, atol=1e-05"
    with pytest.raises(AssertionError) as error:
        nn.compare("shape", expected[:1], expected)
    assert str(error.value) == "shape: shape (1, 2) differs from (2, 2)"


def test_a_label_gap_of_exactly_the_tolerance_is_a_tie():
    probabilities = np.array([[nn.ATOL, 0.0, 0.0]])
    assert nn.compare_labels("edge", np.array([1]), np.array([0]), probabilities) == 1


def test_reference_softmax_stays_finite_for_large_logits():
    # exp(1000) overflows: a stable softmax subtracts each row's largest logit first.
    weights = [np.array([[1.0, 0.0]], np.float32)]
    biases = [np.array([0.0, -2.0], np.float32)]
    probabilities = nn.numpy_forward(np.array([[1000.0], [0.0]], np.float32), weights, biases)
    small = np.exp(-2.0)
    np.testing.assert_allclose(probabilities, [[1.0, 0.0], [1 / (1 + small), small / (1 + small)]])


@pytest.mark.parametrize("widths", [[5, 16, 16, 3], [5, 6, 6, 2]])
def test_trained_export_has_the_layers_asked_for_and_matches(widths, capsys):
    # Binary and multi-class, with more than one hidden layer: every layer has the asked widths,
    # the input is W0 wide, and the exported network computes scikit-learn's probabilities.
    weights, biases, rows, true_labels, (name, reference) = nn.trained_network(widths, seed=0)
    assert [w.shape for w in weights] == list(itertools.pairwise(widths))
    assert [b.shape for b in biases] == [(width,) for width in widths[1:]]
    assert rows.shape == (nn.TEST_ROWS, widths[0]) and rows.dtype == np.float32
    assert true_labels is not None and sorted(set(true_labels)) == list(range(widths[-1]))
    model = nn.build_model(weights, biases)
    probabilities, labels = nn.run_onnxruntime(nn.load_session(model.SerializeToString()), rows)
    expected, expected_labels = reference(rows)
    nn.compare(name, probabilities, expected)
    np.testing.assert_array_equal(labels, expected_labels)
    assert name == "scikit-learn" and np.mean(labels == true_labels) > 0.7


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed", "-1"], "argument --seed: must be from 0 to 2**32 - 1 (4294967295), got -1"),
        (["--seed", "1e3"], "argument --seed: expected a whole number, got '1e3'"),
        (
            ["--layers", "4,1"],
            "argument --layers: the output width is the number of classes and must be 2 or more, "
            "got 1 (a softmax over one class is always 1.0, whatever the weights)",
        ),
        (
            ["--train", "--layers", "3,16,9"],
            "argument --train: 3 input feature(s) can separate at most 8 classes in the synthetic "
            "data set, not 9",
        ),
    ],
)
def test_usage_errors_say_what_is_wrong(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        nn.parse_args(args)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"neural_network.py: error: {message} (see --help)\n"


def test_biases_are_small_but_not_zero_and_of_both_signs():
    # Small, so the He scale sets the activations; not zero, so a lost Add would show.
    _, biases = nn.he_initialise([4, 300, 300, 2], seed=0)
    values = np.concatenate(biases)
    assert np.all(np.abs(values) <= 0.1)
    assert values.min() < -0.09 and values.max() > 0.09


def test_a_near_tie_between_labels_is_reported_not_hidden(tmp_path, capsys):
    # Zero weights: every class has probability 1/3, an exact tie. A reference that breaks the tie
    # the other way disagrees on every label, which is allowed, and the report says so.
    weights, biases = [np.zeros((4, 3), np.float32)], [np.zeros(3, np.float32)]
    path = tmp_path / nn.MODEL_FILE
    nn.save(nn.build_model(weights, biases), path, external_data=False)

    def other_tie_break(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities = nn.numpy_forward(x, weights, biases)
        return probabilities, np.full(len(x), 2)

    x = np.ones((5, 4), np.float32)
    evaluator = nn.load_reference_evaluator(path)
    nn.verify_batch(nn.load_session(path), evaluator, ("NumPy", other_tie_break), x)
    out = capsys.readouterr().out
    assert out.endswith("; labels agree except 5 near-tie(s) of the top two\n"), out


def test_an_ascii_terminal_gets_escapes_not_an_error(tmp_path, monkeypatch):
    # The benchmark prints "µs": a terminal that cannot show it gets "\\xb5s", and the run succeeds.
    monkeypatch.setattr(nn, "BENCHMARK_BATCHES", (1,))
    raw = io.BytesIO()
    stdout = io.TextIOWrapper(raw, encoding="ascii", errors="strict")
    monkeypatch.setattr(sys, "stdout", stdout)
    status = nn.main(["--benchmark", "--layers", "4,3", "--output-dir", str(tmp_path)])
    stdout.flush()
    assert status == 0 and b"\\xb5s" in raw.getvalue() and b"Verified" in raw.getvalue()


def test_the_output_folder_is_created_with_its_parents(tmp_path):
    folder = tmp_path / "a" / "b" / "c"
    nn.prepare_output_dir(folder)
    assert folder.is_dir() and list(folder.iterdir()) == []


def test_output_folder_errors_carry_their_errno(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(NotADirectoryError) as error:
        nn.prepare_output_dir(blocker)
    assert error.value.errno == errno.ENOTDIR and error.value.filename == str(blocker)
    with pytest.raises(OSError) as error:
        nn.prepare_output_dir(blocker / "inside")  # mkdir fails: the parent is a file
    assert error.value.errno == errno.ENOTDIR
    assert error.value.strerror == "the output folder is not writable (Not a directory)"


def test_the_inlined_twin_opens_on_the_cpu_without_a_warning_and_matches():
    weights, biases, model = model_for([4, 8, 3])
    inlined = onnx.inliner.inline_local_functions(nn.skeleton_of(model))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a misspelt provider is a warning and a fallback
        session = nn.inlined_session(inlined, weights, biases)
    assert session.get_providers() == ["CPUExecutionProvider"]
    x = np.random.default_rng(5).normal(size=(7, 4)).astype(np.float32)
    probabilities, labels = nn.run_onnxruntime(session, x)
    expected = nn.numpy_forward(x, weights, biases)
    nn.compare("inlined twin vs NumPy", probabilities, expected)
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))


def test_files_are_written_under_hidden_temporary_names_in_the_models_folder(tmp_path, monkeypatch):
    # In the same folder, so os.replace is an atomic rename on one file system; hidden, and not
    # ending in .onnx or .data, so no glob of models or data files (the stale-data cleanup
    # included) ever picks up a half-written file.
    monkeypatch.setattr(nn, "EXTERNAL_DATA_THRESHOLD", 0)
    _, _, model = model_for([4, 8, 3])
    seen: list[str] = []
    real_fsync = os.fsync

    def fsync_and_look(fd: int) -> None:
        real_fsync(fd)
        seen.extend(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp"))

    monkeypatch.setattr(nn.os, "fsync", fsync_and_look)
    nn.save(model, tmp_path / nn.MODEL_FILE, external_data=True)
    monkeypatch.undo()
    assert len(seen) >= 2, seen
    assert any(re.fullmatch(r"\.neural_network\.\w+\.data\.tmp", name) for name in seen), seen
    assert any(re.fullmatch(r"\.neural_network\.onnx\.\w+\.tmp", name) for name in seen), seen
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_closed_pipe_exits_141_and_silences_stdout(tmp_path, capsys, monkeypatch):
    # A reader that closed the pipe (`| head`): the next write fails. Afterwards stdout must lead
    # nowhere, so that Python's own flush at exit has nothing to complain about.
    def closed_pipe(*args: object) -> None:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(nn, "check", closed_pipe)
    with open(tmp_path / "stdout.txt", "w", encoding="utf-8") as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)
        assert nn.main(["--layers", "4,3", "--output-dir", str(tmp_path / "out")]) == 141
        print("written after the pipe closed")
        stdout.flush()
    assert "after the pipe closed" not in (tmp_path / "stdout.txt").read_text(encoding="utf-8")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (ValueError("first line\nsecond line"), "error: ValueError: first line\n"),
        (ValueError(), "error: ValueError\n"),
        (OSError(errno.EIO, "Input/output error"), "error: Input/output error\n"),
    ],
)
def test_an_unexpected_failure_is_one_line_and_exit_1(tmp_path, capsys, monkeypatch, error, line):
    def failing(*args: object) -> None:
        raise error

    monkeypatch.setattr(nn, "check", failing)
    assert nn.main(["--layers", "4,3", "--output-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.err == line and "Verified" not in captured.out
    assert captured.out.startswith(
        "MLP with layers 4,3 (1 dense layer) from He-initialised weights"
    )


def test_help_shows_the_defaults_and_the_layers_format(capsys):
    with pytest.raises(SystemExit) as exit_info:
        nn.parse_args(["--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines at the terminal width
    assert "[--layers W0,...,Wk]" in out
    assert "(default: 4,16,16,3)" in out and "(default: models)" in out
    assert "(default: 0)" in out and "(default: False)" in out


@pytest.mark.parametrize(
    ("layers", "shown"), [([4, 3], "1 dense layer"), ([4, 8, 3], "2 dense layers")]
)
def test_the_first_line_counts_the_dense_layers(layers, shown, capsys):
    nn.introduce(argparse.Namespace(layers=layers, train=False, seed=7))
    first = capsys.readouterr().out.splitlines()[0]
    text = ",".join(map(str, layers))
    assert first == f"MLP with layers {text} ({shown}) from He-initialised weights, seed 7"
