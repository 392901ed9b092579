"""Tests of neural_network.py: the custom operators, the network and its trained export, the
verification, inlining, publishing only a verified model, and the sizes that cannot work.

The external-data tests moved with that topic to tests/test_large_models.py."""

from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnx.inliner
import pytest
from onnx.reference import ReferenceEvaluator

import neural_network as nn

SCRIPT = str(Path(nn.__file__).resolve())


def model_for(widths, seed=0):
    """Return He-initialised weights, biases and the built model for the given widths."""
    weights, biases = nn.he_initialise(widths, seed)
    return weights, biases, nn.build_model(weights, biases)


def saved(tmp_path: Path, model: onnx.ModelProto) -> Path:
    """Save a model with onnx.save_model into tmp_path; return its path."""
    path = tmp_path / nn.MODEL_FILE
    onnx.save_model(model, path)
    return path


def run(folder: Path, *args: str) -> int:
    """Run the lesson in process into folder; return its exit status."""
    return nn.main([*args, "--output-dir", str(folder)])


def rows(count: int, width: int, seed: int = 7) -> np.ndarray:
    """Seeded float32 rows."""
    return np.random.default_rng(seed).normal(size=(count, width)).astype(np.float32)


# --- The operators and the network ---------------------------------------------------------------


def test_operators_are_functions_in_the_custom_domain():
    dense, dense_relu = nn.make_layer_functions()
    assert nn.DOMAIN not in ("", "ai.onnx", "ai.onnx.ml")
    for function in (dense, dense_relu):
        assert function.domain == nn.DOMAIN
        assert list(function.input) == ["X", "W", "B"] and list(function.output) == ["Y"]
    assert (dense.name, [n.op_type for n in dense.node]) == ("Dense", ["MatMul", "Add"])
    assert {(o.domain, o.version) for o in dense.opset_import} == {("", nn.OPSET)}
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
    initializers = {t.name: tuple(t.dims) for t in model.graph.initializer}
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(widths)):
        assert initializers[f"W{index}"] == (fan_in, fan_out)
        assert initializers[f"B{index}"] == (fan_out,)


def test_he_initialisation_scale_seed_and_biases():
    weights, biases = nn.he_initialise([400, 300, 2], seed=3)
    assert all(w.dtype == np.float32 for w in weights + biases)
    np.testing.assert_allclose(weights[0].std(), np.sqrt(2 / 400), rtol=0.02)
    np.testing.assert_allclose(weights[1].std(), np.sqrt(2 / 300), rtol=0.1)
    again, _ = nn.he_initialise([400, 300, 2], seed=3)
    other, _ = nn.he_initialise([400, 300, 2], seed=4)
    np.testing.assert_array_equal(weights[0], again[0])
    assert not np.array_equal(weights[0], other[0])
    # Small, so the He scale sets the activations; not zero, so a lost Add would show.
    values = np.concatenate(biases)
    assert np.all(np.abs(values) <= 0.1) and values.min() < -0.09 and values.max() > 0.09


@pytest.mark.parametrize("widths", [[4, 3], [4, 16, 16, 3], [8, 32, 32, 32, 32, 2]])
@pytest.mark.parametrize("count", [1, 5, 200])
def test_onnxruntime_reference_evaluator_and_numpy_agree(tmp_path, widths, count):
    weights, biases, model = model_for(widths)
    path = saved(tmp_path, model)
    x = rows(count, widths[0])
    probabilities, labels = nn.run_onnxruntime(nn.load_session(path), x)
    expected = nn.numpy_forward(x, weights, biases)
    assert probabilities.shape == (count, widths[-1]) and labels.shape == (count,)
    np.testing.assert_allclose(probabilities, expected, rtol=nn.RTOL, atol=nn.ATOL)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(labels, expected.argmax(axis=1))
    reference_probabilities, reference_labels = ReferenceEvaluator(str(path)).run(None, {"X": x})
    np.testing.assert_allclose(reference_probabilities, expected, rtol=nn.RTOL, atol=nn.ATOL)
    np.testing.assert_array_equal(reference_labels, labels)


def test_numpy_forward_is_an_independent_reference():
    # A hand-computed two-layer case: the ReLU clips the negative hidden unit.
    weights = [np.array([[1.0, -1.0]], np.float32), np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)]
    biases = [np.zeros(2, np.float32), np.array([0.0, np.log(3.0)], np.float32)]
    probabilities = nn.numpy_forward(np.array([[2.0]], np.float32), weights, biases)
    np.testing.assert_allclose(probabilities, [[np.e**2 / (np.e**2 + 3), 3 / (np.e**2 + 3)]])
    # exp(1000) overflows: a stable softmax subtracts each row's largest logit first.
    weights, biases = [np.array([[1.0, 0.0]], np.float32)], [np.array([0.0, -2.0], np.float32)]
    large = nn.numpy_forward(np.array([[1000.0], [0.0]], np.float32), weights, biases)
    small = np.exp(-2.0)
    np.testing.assert_allclose(large, [[1.0, 0.0], [1 / (1 + small), small / (1 + small)]])


def test_printed_text_elides_every_weight(tmp_path, capsys):
    assert run(tmp_path, "--layers", "4,300,3") == 0
    out = capsys.readouterr().out
    assert "float[4,300] W0 = {...}" in out and "float[300,3] W1 = {...}" in out
    weights, _ = nn.he_initialise([4, 300, 3], seed=0)
    assert f"{weights[0][0, 0]:.6}"[:6] not in out and len(out) < 4000
    model = onnx.load(tmp_path / nn.MODEL_FILE)  # the file has them all
    np.testing.assert_array_equal(
        onnx.numpy_helper.to_array(model.graph.initializer[0]), weights[0]
    )


def test_inlined_model_is_flat_and_equivalent(capsys):
    *_, model = model_for([4, 16, 16, 3])
    x = rows(50, 4, seed=1)
    original = nn.run_onnxruntime(nn.load_session(model.SerializeToString()), x)
    inlined = nn.inline(model, x, original[0].astype(np.float64))
    assert len(inlined.functions) == 0
    assert [n.op_type for n in inlined.graph.node] == [
        *["MatMul", "Add", "Relu"] * 2,
        *["MatMul", "Add", "Softmax", "ArgMax"],
    ]
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
    broken.functions.extend(nn.make_layer_functions())  # the fix: ship the operator's definition
    probabilities, _ = nn.run_onnxruntime(nn.load_session(broken.SerializeToString()), rows(2, 4))
    assert probabilities.shape == (2, 3)


# --- --train: the export of a trained MLPClassifier ----------------------------------------------


@pytest.mark.parametrize("widths", [[6, 8, 2], [3, 4], [5, 6, 6, 3]])
def test_trained_export_matches_scikit_learn(widths, capsys):
    weights, biases, x_test, y_test, (name, reference) = nn.trained_network(widths, seed=0)
    assert [w.shape for w in weights] == list(itertools.pairwise(widths))
    assert x_test.shape == (nn.TEST_ROWS, widths[0]) and x_test.dtype == np.float32
    assert y_test is not None and sorted(set(y_test)) == list(range(widths[-1]))
    model = nn.build_model(weights, biases)
    probabilities, labels = nn.run_onnxruntime(nn.load_session(model.SerializeToString()), x_test)
    expected, expected_labels = reference(x_test)
    nn.compare(name, probabilities, expected)
    np.testing.assert_array_equal(labels, expected_labels)
    assert name == "scikit-learn" and np.mean(labels == y_test) > 0.7  # a real model


def test_main_train_publishes_the_trained_model(tmp_path, capsys):
    assert run(tmp_path, "--train", "--layers", "4,8,3") == 0
    versions = capsys.readouterr().out.splitlines()[-1]
    assert versions.startswith("Versions: ") and "scikit-learn 1." in versions
    _, _, x_test, _, (_, reference) = nn.trained_network([4, 8, 3], seed=0)
    probabilities, _ = nn.run_onnxruntime(nn.load_session(tmp_path / nn.MODEL_FILE), x_test)
    nn.compare("published vs scikit-learn", probabilities, reference(x_test)[0])


@pytest.mark.parametrize(
    ("layers", "allowed"),
    [("8,150", True), ("8,151", False), ("2,4", True), ("2,5", False), ("1,2", True)],
)
def test_train_limits_are_the_data_sets_real_limits(layers, allowed):
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    widths = [int(w) for w in layers.split(",")]
    flags = argparse.Namespace(layers=widths, train=True, external_data=False, benchmark=False)
    assert (nn.usage_problem(flags) is None) == allowed

    def split() -> list:
        x, y = make_classification(
            nn.TRAIN_SAMPLES, widths[0], n_informative=widths[0], n_redundant=0,
            n_classes=widths[-1], n_clusters_per_class=1, flip_y=0.0, random_state=0,
        )  # fmt: skip
        return train_test_split(x, y, test_size=nn.TEST_ROWS, stratify=y, random_state=0)

    if allowed:
        _, x_test, _, y_test = split()
        assert len(x_test) == nn.TEST_ROWS and len(set(y_test)) == widths[-1]
    else:  # the limit is scikit-learn's own, not one the script invents
        with pytest.raises(ValueError, match=r"test_size = 150 should be|2\*\*n_informative"):
            split()


def test_interrupted_training_exits_130_and_publishes_nothing(tmp_path, capsys, monkeypatch):
    # MLPClassifier catches Ctrl-C itself, warns and returns a half-trained model.
    from sklearn.neural_network import MLPClassifier

    def interrupted_fit(self, x, y):
        warnings.warn("Training interrupted by user.", stacklevel=1)
        return self

    monkeypatch.setattr(MLPClassifier, "fit", interrupted_fit)
    assert run(tmp_path, "--train", "--layers", "4,8,3") == 130
    captured = capsys.readouterr()
    assert captured.err == "error: interrupted\n" and "trained an MLP" not in captured.out
    assert list(tmp_path.iterdir()) == []


def test_a_training_that_stops_early_is_exported_and_says_so(tmp_path, capsys, monkeypatch):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    real_fit = MLPClassifier.fit

    def unconverged_fit(self, x, y):
        real_fit(self, x, y)
        warnings.warn("Stochastic Optimizer: Maximum iterations", ConvergenceWarning, stacklevel=1)
        return self

    monkeypatch.setattr(MLPClassifier, "fit", unconverged_fit)
    assert run(tmp_path, "--train", "--layers", "4,8,3") == 0
    assert "(not converged; the export is verified all the same)" in capsys.readouterr().out


# --- Verification, and publishing only what was verified ----------------------------------------


def test_compare_accepts_within_the_tolerance_and_names_what_is_outside():
    expected = np.array([[0.25, 0.75], [0.5, 0.5]])
    inside = expected * (1 + nn.RTOL / 2)
    assert nn.compare("inside", inside.astype(np.float32), expected) == pytest.approx(
        0.75 * nn.RTOL / 2, rel=1e-3
    )
    assert nn.compare("equal", expected.copy(), expected) == 0.0
    with pytest.raises(AssertionError, match=r"^outside: largest difference 0.001 exceeds rtol"):
        nn.compare("outside", expected + np.array([[0.0, 0.0], [0.0, 0.001]]), expected)
    with pytest.raises(AssertionError, match=r"^shape: shape \(1, 2\) differs from \(2, 2\)"):
        nn.compare("shape", expected[:1], expected)


def test_compare_labels_allows_only_a_near_tie():
    probabilities = np.array(
        [[0.9, 0.05, 0.05], [0.1, 0.8, 0.1], [0.5, 0.5 - nn.ATOL / 2, nn.ATOL / 2]]
    )
    expected = np.array([0, 1, 0])
    assert nn.compare_labels("agree", expected.copy(), expected, probabilities) == 0
    assert nn.compare_labels("near-tie", np.array([0, 1, 1]), expected, probabilities) == 1
    for actual in ([0, 2, 0], [0, 2, 1]):
        with pytest.raises(AssertionError, match="1 of 3 labels differ where the top two"):
            nn.compare_labels("clear", np.array(actual), expected, probabilities)
    edge = np.array([[nn.ATOL, 0.0, 0.0]])  # a gap of exactly the tolerance is a tie
    assert nn.compare_labels("edge", np.array([1]), np.array([0]), edge) == 1


def test_default_run_publishes_one_verified_model(tmp_path, capsys):
    assert run(tmp_path) == 0
    assert [p.name for p in tmp_path.iterdir()] == [nn.MODEL_FILE]
    weights, biases = nn.he_initialise([4, 16, 16, 3], 0)
    x = rows(9, 4)
    probabilities, _ = nn.run_onnxruntime(nn.load_session(tmp_path / nn.MODEL_FILE), x)
    nn.compare("published", probabilities, nn.numpy_forward(x, weights, biases))
    out = capsys.readouterr().out
    assert out.splitlines()[-2].startswith("Verified: ") and "scikit-learn" not in out


def planted(monkeypatch, what: str) -> None:
    """Make one check disagree: NumPy, the reference evaluator, the inlined twin, or the file."""
    if what == "numpy":
        monkeypatch.setattr(nn, "numpy_forward", lambda x, w, b: np.full((len(x), 3), 1 / 3))
    elif what in ("evaluator", "evaluator labels"):
        real = nn.ReferenceEvaluator

        class Wrong:  # the reference evaluator, its probabilities rolled or its labels shifted
            def __init__(self, path):
                self.evaluator = real(path)

            def run(self, names, feeds):
                probabilities, labels = self.evaluator.run(names, feeds)
                if what == "evaluator":
                    return [np.roll(probabilities, 1, axis=1), labels]
                return [probabilities, (labels + 1) % probabilities.shape[1]]

        monkeypatch.setattr(nn, "ReferenceEvaluator", Wrong)
    elif what == "inlined":
        real_inline = onnx.inliner.inline_local_functions

        def wrong_node(model):  # the first layer's Add becomes Sub: X·W - B
            inlined = real_inline(model)
            next(n for n in inlined.graph.node if n.op_type == "Add").op_type = "Sub"
            return inlined

        monkeypatch.setattr(onnx.inliner, "inline_local_functions", wrong_node)
    else:  # the bytes written differ from the model built: the last bias of class 0 is +1
        real_save = onnx.save_model

        def changed(model, path, *args, **kwargs):
            changed = onnx.ModelProto()
            changed.CopyFrom(model)
            bias = changed.graph.initializer[-1]
            values = onnx.numpy_helper.to_array(bias).copy()
            values[0] += 1.0
            bias.CopyFrom(onnx.numpy_helper.from_array(values, bias.name))
            real_save(changed, path, *args, **kwargs)

        monkeypatch.setattr(onnx, "save_model", changed)


@pytest.mark.parametrize(
    ("what", "message"),
    [
        ("numpy", "batch 1, ONNX Runtime vs NumPy: largest difference "),
        ("evaluator", "batch 1, ONNX Runtime vs reference evaluator: largest difference "),
        ("evaluator labels", "batch 1, ONNX Runtime labels vs reference evaluator: 1 of 1 labels"),
        ("inlined", "inlined model vs original: largest difference "),
        ("file", "batch 1, ONNX Runtime vs NumPy: largest difference "),
    ],
)
def test_a_planted_mismatch_exits_1_and_keeps_the_previous_model(
    tmp_path, capsys, monkeypatch, what, message
):
    assert run(tmp_path, "--seed", "5") == 0
    before = (tmp_path / nn.MODEL_FILE).read_bytes()
    capsys.readouterr()
    planted(monkeypatch, what)
    assert run(tmp_path) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: verification failed: " + message), captured.err
    assert captured.err.count("\n") == 1 and "Verified" not in captured.out
    assert [p.name for p in tmp_path.iterdir()] == [nn.MODEL_FILE]  # no draft left
    assert (tmp_path / nn.MODEL_FILE).read_bytes() == before


def test_an_interruption_while_saving_leaves_no_file(tmp_path, capsys, monkeypatch):
    # SIGTERM and SIGHUP become KeyboardInterrupt in the plumbing block, as Ctrl-C does.
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(nn.os, "fsync", interrupted)
    assert run(tmp_path) == 130
    assert capsys.readouterr().err == "error: interrupted\n"
    assert list(tmp_path.iterdir()) == []


def test_same_seed_writes_byte_identical_files(tmp_path, capsys):
    for name, seed in (("first", "0"), ("second", "0"), ("other", "1")):
        assert run(tmp_path / name, "--seed", seed) == 0
    data = (tmp_path / "first" / nn.MODEL_FILE).read_bytes()
    assert data == (tmp_path / "second" / nn.MODEL_FILE).read_bytes()
    assert data != (tmp_path / "other" / nn.MODEL_FILE).read_bytes()


def test_benchmark_prints_positive_times(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(nn, "BENCHMARK_BATCHES", (1, 64))
    assert run(tmp_path, "--benchmark", "--layers", "4,8,3") == 0
    out = capsys.readouterr().out
    table = [line.split() for line in out.splitlines() if line.strip().startswith(("1 ", "64 "))]
    assert [row[0] for row in table] == ["1", "64"]
    assert all(float(row[1]) > 0 and float(row[3]) > 0 and float(row[5]) > 0 for row in table)


# --- The command line ----------------------------------------------------------------------------


def test_help_returns_0_and_states_the_defaults(capsys):
    assert nn.main(["--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines at the terminal width
    assert "(default: 4,16,16,3)" in out and "(default: models)" in out
    assert "--external-data" not in out  # moved to large_models.py


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layers", "4"], "argument --layers: expected two widths or more"),
        (["--layers", "4,0,3"], "argument --layers: must be from 1 to 1048576, got 0"),
        (["--layers", "a,b"], "argument --layers: expected a whole number (digits 0-9), got 'a'"),
        (["--layers", "4,,3"], "argument --layers: expected a whole number (digits 0-9), got ''"),
        (["--layers", "4,1"], "the output width is the number of classes: 2 or more"),
        (["--layers", "9223372036854775808,2"], "must be from 1 to 1048576"),
        (["--layers", "9223372036854775808,2", "--train"], "must be from 1 to 1048576"),
        (["--layers", "1048576,1048576,2", "--train"], "do not fit in one .onnx file"),
        (["--layers", "26000,26000,3"], "do not fit in one .onnx file (protobuf's limit is"),
        (["--external-data"], "--external-data moved to the next lesson: python large_models.py"),
        (
            ["--train", "--layers", "3,16,9"],
            "argument --train: 3 feature(s) separate at most 8 classes",
        ),
        (["--train", "--layers", "10,400"], "argument --train: at most 150 classes"),
        (["--seed", "-1"], "argument --seed"),
        (["--seed", "4294967296"], "argument --seed"),
    ],
)
def test_usage_errors_are_one_line_and_status_2_before_any_work(tmp_path, capsys, args, message):
    assert run(tmp_path / "out", *args) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("neural_network.py: error: ") and message in captured.err
    assert captured.err.count("\n") == 1 and captured.out == ""
    assert not (tmp_path / "out").exists()


def test_a_size_past_the_memory_limit_is_a_usage_error(tmp_path, capsys, monkeypatch):
    limit = (3_000_000 * 1024, "the address-space limit (ulimit -v)")
    monkeypatch.setattr(nn, "memory_limit", lambda: limit)
    assert run(tmp_path / "out", "--layers", "16000,16000,2") == 2
    err = capsys.readouterr().err
    assert "needs about 10.0 GiB of memory, more than the address-space limit" in err
    assert not (tmp_path / "out").exists()
    assert run(tmp_path / "out", "--layers", "4,8,3") == 0  # a small network fits


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is enforced on Linux")
def test_under_ulimit_v_a_large_size_is_one_line_not_a_segfault(tmp_path):
    # `ulimit -v 3000000; python neural_network.py --layers 16000,16000,2` crashed in protobuf.
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3_000_000 * 1024, resource.RLIM_INFINITY))

    result = subprocess.run(
        [sys.executable, SCRIPT, "--layers", "16000,16000,2"],
        cwd=tmp_path, capture_output=True, text=True, preexec_fn=limit, check=False, timeout=120,
    )  # fmt: skip
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "of memory, more than the address-space limit (ulimit -v)" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_output_folder_that_is_a_file_is_one_error_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert run(blocker) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("error: cannot create files in the output folder") and err.count("\n") == 1
    )


def test_default_run_does_not_import_scikit_learn(tmp_path):
    code = (
        "import sys, neural_network as nn; "
        f"assert nn.main(['--output-dir', {str(tmp_path)!r}]) == 0; "
        "sys.exit(1 if 'sklearn' in sys.modules else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=Path(SCRIPT).parent, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr
