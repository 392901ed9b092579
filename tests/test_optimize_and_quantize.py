"""In-process tests of optimize_and_quantize.py: each step's function, with a small network.

The script's network is 64-256-256-10; these tests train 64-32-10 (the same code, a quarter of a
second) and run the timing functions with a handful of repeats. No test asserts a speed.
"""

import errno
import io
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

import optimize_and_quantize as oq

ROOT = Path(__file__).resolve().parent.parent
SMALL = (32,)
# What ONNX Runtime 1.32 logs when it saves a graph optimized beyond "extended" (docs quote it).
LEVEL_WARNING = (
    "Serializing optimized model with Graph Optimization level greater than ORT_ENABLE_EXTENDED "
    "and the NchwcTransformer enabled. The generated model may contain hardware specific "
    "optimizations, and should only be used in the same environment the model was optimized in."
)


Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
Trained = tuple[Any, onnx.ModelProto, Path]  # classifier, converted model, saved file


@pytest.fixture(scope="module")
def data() -> Split:
    return oq.load_digits_split(seed=0)


@pytest.fixture(scope="module")
def trained(data: Split, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A small network trained, converted and saved once: (classifier, model, path)."""
    x_train, _, y_train, _ = data
    classifier = oq.train_classifier(x_train, y_train, seed=0, hidden=SMALL)
    model = oq.convert(classifier)
    path = tmp_path_factory.mktemp("model") / oq.FLOAT_FILE
    oq.write_atomically(model.SerializeToString(), path)
    return classifier, model, path


@pytest.fixture(scope="module")
def quantized(
    trained: Trained, data: Split, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The small model's int8 versions: {name: path} with the float32 file as "float32"."""
    _, _, path = trained
    folder = tmp_path_factory.mktemp("quantized")
    preprocessed = oq.preprocess(path, folder)
    return {"float32": path} | oq.quantize_models(preprocessed, data[0], seed=0, folder=folder)


def small_main(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> int:
    """Run main() with the small network and two repeats per timing."""
    monkeypatch.setattr(oq, "HIDDEN_LAYERS", SMALL)
    monkeypatch.setattr(oq, "QUICK_REPEATS", (2, 2))
    return oq.main(argv)


# --- 0. The model --------------------------------------------------------------------------------


def test_split_is_seeded_stratified_raw_pixels(data: Split) -> None:
    x_train, x_test, y_train, y_test = data
    assert x_train.dtype == np.float32 and x_train.shape == (1257, 64)
    assert x_test.shape == (540, 64)
    # Raw pixels, unscaled: whole numbers 0 to 16.
    assert x_train.min() == 0 and x_train.max() == 16
    np.testing.assert_array_equal(x_train, np.round(x_train))
    # Stratified: each class's share of the test split matches the whole data set's within a row.
    counts = np.bincount(np.concatenate([y_train, y_test]))
    np.testing.assert_allclose(np.bincount(y_test), counts * oq.TEST_SIZE, atol=1)
    np.testing.assert_array_equal(oq.load_digits_split(seed=0)[1], x_test)  # the same seed
    other = oq.load_digits_split(seed=1)
    assert not np.array_equal(other[1], x_test)


def test_converted_model_takes_raw_pixels_and_scales_them_inside(trained: Trained) -> None:
    _, model, _ = trained
    onnx.checker.check_model(model, full_check=True)
    (x_info,) = model.graph.input
    assert x_info.name == "X" and x_info.type.tensor_type.elem_type == TensorProto.FLOAT
    batch, features = x_info.type.tensor_type.shape.dim
    assert not batch.HasField("dim_value") and features.dim_value == 64
    outputs = {o.name: o.type.tensor_type for o in model.graph.output}
    assert outputs["label"].elem_type == TensorProto.INT64 and len(outputs["label"].shape.dim) == 1
    assert outputs["probabilities"].elem_type == TensorProto.FLOAT
    assert outputs["probabilities"].shape.dim[1].dim_value == 10
    first = model.graph.node[0]
    assert (first.op_type, first.input[0]) == ("Mul", "X")
    scale = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}[first.input[1]]
    assert scale == np.float32(1 / 16)
    assert model.ir_version == oq.IR_VERSION
    domains = [o.domain for o in model.opset_import]
    assert len(domains) == len(set(domains))
    assert {o.domain: o.version for o in model.opset_import}[""] == oq.TARGET_OPSET[""]


def test_float_model_agrees_with_scikit_learn_and_the_reference_evaluator(
    trained: Trained, data: Split, capsys: pytest.CaptureFixture[str]
) -> None:
    classifier, _, path = trained
    x_test = data[1]
    session = oq.load_session(path)
    labels, probabilities = oq.run(session, x_test)
    assert labels.dtype == np.int64 and probabilities.shape == (540, 10)
    np.testing.assert_array_equal(labels, classifier.predict(x_test))
    np.testing.assert_allclose(
        probabilities, classifier.predict_proba(x_test), rtol=oq.RTOL, atol=oq.ATOL
    )
    oq.verify_float_model(classifier, onnx.load(path), session, x_test)
    assert "labels equal predict" in capsys.readouterr().out


def test_verification_rejects_a_model_with_a_wrong_weight(trained: Trained, data: Split) -> None:
    classifier, model, _ = trained
    broken = onnx.ModelProto()
    broken.CopyFrom(model)
    for tensor in broken.graph.initializer:
        if tensor.name == "pixel_scale":
            tensor.CopyFrom(numpy_helper.from_array(np.array(1 / 15, np.float32), tensor.name))
    session = oq.load_session(broken.SerializeToString())
    with pytest.raises(AssertionError, match="ONNX Runtime vs scikit-learn"):
        oq.verify_float_model(classifier, broken, session, data[1])


def test_compare_outputs_allows_near_ties_only() -> None:
    probabilities = np.array([[0.5, 0.5 - 1e-6, 0.0], [0.1, 0.7, 0.2]])
    as_float32 = probabilities.astype(np.float32)
    expected_labels = np.array([0, 1])
    difference, ties = oq.compare_outputs(
        "tie", np.array([1, 1]), as_float32, expected_labels, probabilities
    )
    assert ties == 1 and difference < 1e-7
    with pytest.raises(AssertionError, match="1 of 2 labels differ"):
        oq.compare_outputs(
            "wrong",
            np.array([0, 2]),
            probabilities.astype(np.float32),
            expected_labels,
            probabilities,
        )
    with pytest.raises(AssertionError, match=r"probabilities differ by up to 0\.01"):
        oq.compare_outputs(
            "far", expected_labels, probabilities + 0.01, expected_labels, probabilities
        )


def test_write_atomically_writes_the_bytes_with_the_usual_mode(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    assert oq.write_atomically(b"onnx bytes", path) == 10
    assert path.read_bytes() == b"onnx bytes"
    if os.name == "posix":
        umask = os.umask(0)
        os.umask(umask)
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_write_atomically_leaves_nothing_behind_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(source: object, target: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(oq.os, "replace", fail)
    with pytest.raises(KeyboardInterrupt):
        oq.write_atomically(b"never", tmp_path / "model.onnx")
    assert list(tmp_path.iterdir()) == []


# --- 1. Session cost -----------------------------------------------------------------------------


def test_session_cost_measures_three_separate_phases(
    trained: Trained, data: Split, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, path = trained
    figures = oq.session_cost(path, data[1][:1], repeats=3)
    assert len(figures) == 3 and all(np.isfinite(f) and f > 0 for f in figures)
    oq.print_session_cost(path, data[1][:1], repeats=3)
    out = capsys.readouterr().out
    for label in ("create the session", "first run", "later runs, 1 row, median"):
        assert label in out


# --- 2. Graph optimizations ----------------------------------------------------------------------


def test_each_level_saves_the_graph_it_runs_and_fuses_as_documented(
    trained: Trained, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    _, model, path = trained
    graphs = oq.optimized_graphs(path, tmp_path)
    assert list(graphs) == ["disabled", "basic", "extended", "layout", "all"]
    sequences = {name: oq.node_sequence(graph) for name, graph in graphs.items()}
    assert sequences["disabled"] == oq.node_sequence(model)
    assert "MatMul" in sequences["disabled"] and "Gemm" not in sequences["disabled"]
    # basic: MatMul + Add -> Gemm, and the float-to-float Cast is gone.
    assert "MatMul" not in sequences["basic"] and "Add" not in sequences["basic"]
    assert sequences["basic"].count("Gemm") == 2 and sequences["basic"].count("Cast") == 1
    # extended: Gemm + Relu -> com.microsoft:FusedGemm (the last Gemm has no Relu).
    assert sequences["extended"].count("com.microsoft:FusedGemm") == 1
    assert "Relu" not in sequences["extended"]
    assert sequences["all"] == sequences["extended"]
    # The warning ONNX Runtime logs for "layout" and "all" is silenced: stderr stays clean.
    assert capfd.readouterr().err == ""


def test_saving_a_fully_optimized_graph_logs_the_documented_warning(
    trained: Trained, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    _, _, path = trained
    options = oq.ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "all.onnx")
    oq.ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    assert LEVEL_WARNING in capfd.readouterr().err


def test_every_level_gives_the_same_outputs(trained: Trained, data: Split) -> None:
    _, _, path = trained
    differences = oq.check_levels_agree(path, data[1])
    assert list(differences) == list(oq.LEVELS)
    assert differences["disabled"] == 0 and max(differences.values()) <= oq.ATOL


# --- 3. Threads ----------------------------------------------------------------------------------


def test_thread_timings_cover_each_batch_with_both_settings(
    trained: Trained, data: Split, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, path = trained
    batches = {1: data[1][:1], 64: data[1][:64]}
    results = oq.thread_timings(path, batches, {1: 3, 64: 3})
    assert list(results) == [1, 64]
    assert all(len(pair) == 2 and min(pair) > 0 for pair in results.values())
    oq.print_threads(path, batches, {1: 3, 64: 3})
    assert "1 thread / default" in capsys.readouterr().out


def test_interleaved_medians_take_turns() -> None:
    order = []
    medians = oq.interleaved_medians(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")}, repeats=3, warmup=0
    )
    assert order == ["a", "b"] * 3 and set(medians) == {"a", "b"}


# --- 4. Profiling --------------------------------------------------------------------------------


def test_profile_trace_covers_every_node_and_sums_per_operator(
    trained: Trained, data: Split, tmp_path: Path
) -> None:
    _, _, path = trained
    graph = oq.optimized_graphs(path, tmp_path)["all"]
    events = oq.profile(path, data[1][:64], runs=3, folder=tmp_path)
    assert oq.check_trace_covers_graph(events, graph) == len(graph.graph.node)
    totals = oq.time_per_operator(events)
    assert set(totals) == {node.op_type for node in graph.graph.node}
    assert list(totals.values()) == sorted(totals.values(), reverse=True)
    # A node missing from the trace is reported by name.
    fused = next(n.name for n in graph.graph.node if n.op_type == "FusedGemm")
    partial = [e for e in events if e.get("name") != f"{fused}_kernel_time"]
    with pytest.raises(AssertionError, match="1 node"):
        oq.check_trace_covers_graph(partial, graph)


def test_profile_writes_its_trace_in_the_given_folder_only(
    trained: Trained, data: Split, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, path = trained
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "work"
    folder.mkdir()
    oq.profile(path, data[1][:4], runs=1, folder=folder)
    assert [p.name for p in tmp_path.iterdir()] == ["work"]
    assert [p.suffix for p in folder.iterdir()] == [".json"]


# --- 5. Quantization -----------------------------------------------------------------------------


def test_quantized_models_store_int8_weights(quantized: dict[str, Path]) -> None:
    def operators(path: Path) -> set[str]:
        return {node.op_type for node in onnx.load(path).graph.node}

    def weight_types(path: Path) -> set[int]:
        # skl2onnx names the weight matrices coefficient, coefficient1, ...; the quantizer keeps
        # the name as a prefix (coefficient_quantized).
        initializers = onnx.load(path).graph.initializer
        return {t.data_type for t in initializers if t.name.startswith("coefficient") and t.dims}

    assert "DynamicQuantizeLinear" in operators(quantized["dynamic int8"])
    assert {"QuantizeLinear", "DequantizeLinear"} <= operators(quantized["static int8"])
    assert weight_types(quantized["float32"]) == {TensorProto.FLOAT}
    for name in ("dynamic int8", "static int8"):
        assert weight_types(quantized[name]) == {TensorProto.INT8}


def test_onnx_runtime_runs_int8_kernels_for_the_quantized_files(
    quantized: dict[str, Path], tmp_path: Path
) -> None:
    def executed(name: str) -> list[str]:
        graph = oq.executed_graph(quantized[name], oq.LEVELS["all"], tmp_path / "executed.onnx")
        return oq.node_sequence(graph)

    assert executed("dynamic int8").count("com.microsoft:DynamicQuantizeMatMul") == 2
    static = executed("static int8")
    assert static.count("com.microsoft:QGemm") == 2 and "Relu" not in static


def test_int8_models_keep_accuracy_and_agree_with_float32(
    quantized: dict[str, Path], data: Split
) -> None:
    results = oq.compare_models(quantized, data, repeats=(2, 2), seed=0)
    assert list(results) == ["float32", "dynamic int8", "static int8"]
    base = results["float32"]
    assert base["agreement"] == 1 and base["difference"] == 0 and base["accuracy"] > 0.9
    for name in ("dynamic int8", "static int8"):
        oq.check_int8(name, results[name]["accuracy"], base["accuracy"], results[name]["agreement"])
        assert 0 < results[name]["difference"] < 0.2
        assert results[name]["bytes"] < base["bytes"]


def test_check_int8_names_the_figures_that_fail() -> None:
    oq.check_int8("fine", accuracy=0.975, float_accuracy=0.98, agreement=0.995)
    with pytest.raises(
        AssertionError, match=r"accuracy 0\.9600 is more than 1 point\(s\) below float32's 0\.9800"
    ):
        oq.check_int8("lossy", accuracy=0.96, float_accuracy=0.98, agreement=1.0)
    with pytest.raises(AssertionError, match=r"98\.00% of the test rows"):
        oq.check_int8("disagrees", accuracy=0.98, float_accuracy=0.98, agreement=0.98)


def test_calibration_rows_are_seeded_training_rows(data: Split) -> None:
    x_train = data[0]
    rows = oq.calibration_rows(x_train, 16, seed=3)
    np.testing.assert_array_equal(rows, oq.calibration_rows(x_train, 16, seed=3))
    assert not np.array_equal(rows, oq.calibration_rows(x_train, 16, seed=4))
    assert all((x_train == row).all(axis=1).any() for row in rows)
    # Distinct rows: asked for as many rows as there are, each comes exactly once.
    distinct = np.arange(80, dtype=np.float32).reshape(40, 2)
    every = oq.calibration_rows(distinct, 40, seed=0)
    np.testing.assert_array_equal(np.sort(every[:, 0]), distinct[:, 0])


def test_calibrating_on_noise_below_the_pixel_range_ruins_the_static_model(
    trained: Trained, quantized: dict[str, Path], data: Split, tmp_path: Path
) -> None:
    _, x_test, _, y_test = data
    float_labels, float_probabilities = oq.run(oq.load_session(quantized["float32"]), x_test)
    noise = oq.noise_rows(oq.CALIBRATION_ROWS, seed=0)["noise in [0, 1)"]
    assert noise.min() >= 0 and noise.max() < 1
    preprocessed = oq.preprocess(quantized["float32"], tmp_path)
    on_noise = oq.quantize_static_int8(preprocessed, noise, tmp_path, "noise")
    _, agreement, difference = oq.fidelity(
        oq.load_session(on_noise), x_test, y_test, float_labels, float_probabilities
    )
    _, real_agreement, real_difference = oq.fidelity(
        oq.load_session(quantized["static int8"]), x_test, y_test, float_labels, float_probabilities
    )
    assert agreement < 0.9 < real_agreement and difference > 3 * real_difference


# --- The command line ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "valid"), [("0", True), (str(2**32 - 1), True), ("-1", False), (str(2**32), False)]
)
def test_seed_range(text: str, valid: bool) -> None:
    if valid:
        assert oq.seed_int(text) == int(text)
    else:
        with pytest.raises(oq.argparse.ArgumentTypeError, match="2\\*\\*32 - 1"):
            oq.seed_int(text)


def test_main_runs_every_step_and_writes_the_three_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    assert small_main(monkeypatch, ["--output-dir", str(tmp_path / "out"), "--seed", "7"]) == 0
    captured = capfd.readouterr()
    assert captured.err == ""
    for heading in ("\n0. ", "\n1. ", "\n2. ", "\n3. ", "\n4. ", "\n5. ", "Verified", "Versions:"):
        assert heading in captured.out
    assert "com.microsoft:QGemm" in captured.out and "noise in [0, 1)" in captured.out
    files = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert files == sorted([oq.FLOAT_FILE, oq.DYNAMIC_FILE, oq.STATIC_FILE])
    for name in files:
        onnx.checker.check_model(onnx.load(tmp_path / "out" / name), full_check=True)

    # The same arguments in a fresh process with another PYTHONHASHSEED: the same bytes.
    program = textwrap.dedent(
        """
        import sys
        import optimize_and_quantize as oq
        oq.HIDDEN_LAYERS = (32,)
        oq.QUICK_REPEATS = (2, 2)
        sys.exit(oq.main(sys.argv[1:]))
        """
    )
    hash_seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    result = subprocess.run(
        [sys.executable, "-c", program, "--output-dir", "again", "--seed", "7"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for name in files:
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "out" / name).read_bytes()


def test_wrong_reference_exits_1_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def shifted(classifier: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return classifier.predict(x), classifier.predict_proba(x) + 0.05

    monkeypatch.setattr(oq, "sklearn_reference", shifted)
    assert small_main(monkeypatch, ["--output-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(
        "error: verification failed: ONNX Runtime vs scikit-learn: probabilities differ by up to"
    )
    assert captured.err.count("\n") == 1 and "Verified" not in captured.out


def test_int8_check_failure_exits_1_with_the_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(oq, "MIN_AGREEMENT", 1.01)  # no model can agree on 101% of the labels
    assert small_main(monkeypatch, ["--output-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: verification failed: dynamic int8: labels agree")
    assert "fewer than 101%" in captured.err and "Verified" not in captured.out


def test_output_dir_that_is_a_file_fails_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("not a folder")
    assert oq.main(["--output-dir", str(tmp_path / "file")]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: the output folder is not a folder: ")
    assert captured.err.count("\n") == 1 and captured.out == ""


def test_benchmark_goals_say_reached_or_not_with_the_figures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def model(size: int, seconds: float) -> dict[str, float]:
        return {"bytes": size, "batch large": seconds}

    oq.print_goals(
        {
            "float32": model(350_000, 1.0e-3),
            "dynamic int8": model(90_000, 0.6e-3),
            "static int8": model(110_000, 0.4e-3),
        }
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("2.50x, reached")
    assert lines[1].endswith("3.89x, reached")
    assert lines[2].endswith("3.18x, NOT reached")


# --- Added for mutation testing (docs/mutation_testing.md, run E) --------------------------------


def test_training_interrupted_inside_fit_stops_instead_of_returning_a_half_model(
    data: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.neural_network import MLPClassifier

    def interrupted_fit(self: Any, x: np.ndarray, y: np.ndarray) -> Any:
        # What MLPClassifier does on Ctrl-C: warn, and return the model as far as it got.
        oq.warnings.warn("Training interrupted by user.", UserWarning, stacklevel=1)
        return self

    monkeypatch.setattr(MLPClassifier, "fit", interrupted_fit)
    x_train, _, y_train, _ = data
    for _ in range(2):  # a warning seen once before must still stop the second training
        with pytest.raises(KeyboardInterrupt):
            oq.train_classifier(x_train[:50], y_train[:50], seed=0, hidden=SMALL)


def test_training_that_converges_trains_the_network_asked_for(data: Split) -> None:
    x_train, x_test, y_train, y_test = data
    classifier = oq.train_classifier(x_train, y_train, seed=0, hidden=(16,))
    mlp = classifier.steps[-1][1]
    assert [c.shape for c in mlp.coefs_] == [(64, 16), (16, 10)]
    assert mlp.max_iter == 300 and classifier.score(x_test, y_test) > 0.9
    # The pipeline scales the raw pixels to 0..1 before the network sees them.
    np.testing.assert_array_equal(classifier[:-1].transform(x_test), x_test / 16)
    again = oq.train_classifier(x_train, y_train, seed=0, hidden=(16,))
    np.testing.assert_array_equal(again.steps[-1][1].coefs_[0], mlp.coefs_[0])


def test_converted_model_computes_what_scikit_learn_computes(trained: Trained, data: Split) -> None:
    classifier, _, _ = trained
    model = oq.convert(classifier)  # converted here, so that mutation testing runs it
    x_test = data[1]
    assert [o.name for o in model.graph.output] == ["label", "probabilities"]
    assert {o.domain: o.version for o in model.opset_import} == {"": 22, "ai.onnx.ml": 1}
    assert model.ir_version == 10
    labels, probabilities = oq.run(oq.load_session(model.SerializeToString()), x_test)
    np.testing.assert_array_equal(labels, classifier.predict(x_test))
    np.testing.assert_allclose(
        probabilities, classifier.predict_proba(x_test), rtol=oq.RTOL, atol=oq.ATOL
    )
    # Only the Mul reads the raw input; every other node reads the scaled pixels or later tensors.
    readers = [n.op_type for n in model.graph.node if "X" in n.input]
    assert readers == ["Mul"]


def test_compare_outputs_refuses_probabilities_of_another_shape() -> None:
    expected = np.full((3, 10), 0.1)
    with pytest.raises(AssertionError, match=r"^short: probabilities shape \(2, 10\) != \(3, 10\)"):
        oq.compare_outputs(
            "short", np.zeros(2), expected[:2].astype(np.float32), np.zeros(3), expected
        )


def test_verification_rejects_a_reference_evaluator_that_disagrees(
    trained: Trained, data: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    classifier, model, path = trained
    real = oq.ReferenceEvaluator

    class Shifted:
        def __init__(self, model: onnx.ModelProto) -> None:
            self.evaluator = real(model)

        def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            labels, probabilities = self.evaluator.run(names, feeds)
            return [np.asarray(labels), np.asarray(probabilities) + 0.001]

    monkeypatch.setattr(oq, "ReferenceEvaluator", Shifted)
    with pytest.raises(AssertionError, match=r"^ONNX Runtime vs reference evaluator: .* 0\.001"):
        oq.verify_float_model(classifier, model, oq.load_session(path), data[1])


def test_verification_report_names_rows_differences_and_tolerance(
    trained: Trained, data: Split, capsys: pytest.CaptureFixture[str]
) -> None:
    classifier, model, path = trained
    oq.verify_float_model(classifier, model, oq.load_session(path), data[1])
    line = capsys.readouterr().out
    assert line.startswith("   verified on the 540 test rows: labels equal predict; largest ")
    assert line.rstrip().endswith("(rtol=0.0001, atol=1e-05)")
    assert "vs predict_proba " in line and ", vs the reference evaluator " in line


def test_sessions_use_the_threads_and_level_asked_for(trained: Trained) -> None:
    _, _, path = trained
    options = oq.load_session(path, threads=1, level=oq.LEVELS["basic"]).get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.graph_optimization_level == oq.ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    default = oq.load_session(path).get_session_options()
    assert default.graph_optimization_level == oq.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert oq.load_session(path).get_providers() == ["CPUExecutionProvider"]


def test_a_level_that_changes_the_outputs_fails_the_level_check(
    trained: Trained, data: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, _, path = trained
    real_load, real_run = oq.load_session, oq.run
    broken = set()

    def load(source: Path, threads: int = 0, level: Any = oq.LEVELS["all"]) -> Any:
        session = real_load(source, threads, level)
        if level == oq.LEVELS["extended"]:
            broken.add(id(session))
        return session

    def run(session: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        labels, probabilities = real_run(session, x)
        return labels, probabilities + (0.01 if id(session) in broken else 0.0)

    monkeypatch.setattr(oq, "load_session", load)
    monkeypatch.setattr(oq, "run", run)
    with pytest.raises(AssertionError, match=r"^level extended vs disabled: .* 0\.01 "):
        oq.check_levels_agree(path, data[1][:32])


def test_check_int8_accepts_exactly_the_limits() -> None:
    # A drop of exactly one point (0.02 - 0.01 is 0.01 in floating point) and 99% agreement pass.
    oq.check_int8("at the limits", accuracy=0.01, float_accuracy=0.02, agreement=0.99)
    oq.check_int8("better than float32", accuracy=0.99, float_accuracy=0.98, agreement=1.0)


def test_calibration_reader_feeds_every_row_once_in_batches() -> None:
    rows = np.arange(150 * 64, dtype=np.float32).reshape(150, 64)
    reader = oq.calibration_reader(rows)
    batches = []
    while (feed := reader.get_next()) is not None:
        assert list(feed) == ["X"]
        batches.append(feed["X"])
    assert [len(b) for b in batches] == [64, 64, 22]
    np.testing.assert_array_equal(np.concatenate(batches), rows)
    assert reader.get_next() is None


def test_quantizing_gives_int8_files_that_pass_the_checks(
    trained: Trained, data: Split, tmp_path: Path
) -> None:
    # Preprocess and quantize here (not in a fixture), so that mutation testing runs these steps.
    _, _, path = trained
    x_train, x_test, _, y_test = data
    preprocessed = oq.preprocess(path, tmp_path)
    assert preprocessed.parent == tmp_path and preprocessed.name != path.name
    assert "Gemm" in oq.node_sequence(onnx.load(preprocessed))
    paths = oq.quantize_models(preprocessed, x_train, seed=0, folder=tmp_path)
    assert list(paths) == ["dynamic int8", "static int8"]
    assert all(p.parent == tmp_path for p in paths.values())
    float_labels, float_probabilities = oq.run(oq.load_session(path), x_test)
    float_accuracy = float(np.mean(float_labels == y_test))
    for name, quantized_path in paths.items():
        model = onnx.load(quantized_path)
        onnx.checker.check_model(model, full_check=True)
        weights = [t for t in model.graph.initializer if t.name.startswith("coefficient")]
        assert {t.data_type for t in weights if t.dims} == {TensorProto.INT8}
        accuracy, agreement, difference = oq.fidelity(
            oq.load_session(quantized_path), x_test, y_test, float_labels, float_probabilities
        )
        oq.check_int8(name, accuracy, float_accuracy, agreement)
        assert 0 < difference < 0.2
    # Static: the activations are int8 too, starting with the input (biases stay int32).
    static = onnx.load(paths["static int8"])
    zero_points = {t.name: t.data_type for t in static.graph.initializer}
    assert zero_points["X_zero_point"] == TensorProto.INT8
    assert "QuantizeLinear" in oq.node_sequence(static)


def test_write_atomically_writes_beside_the_target_and_replaces_an_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"an older, longer model")
    real_replace = os.replace
    sources = []

    def replace(source: str, target: Path) -> None:
        # Beside the target (one file system: a rename), hidden, and already complete.
        sources.append(Path(source))
        assert Path(source).read_bytes() == b"new"
        real_replace(source, target)

    monkeypatch.setattr(oq.os, "replace", replace)
    assert oq.write_atomically(b"new", path) == 3
    assert path.read_bytes() == b"new"
    (source,) = sources
    assert source.parent == tmp_path and source.name.startswith(".model.onnx.")
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_output_dir_is_created_with_its_parents(tmp_path: Path) -> None:
    folder = tmp_path / "a" / "b"
    oq.prepare_output_dir(folder)
    assert folder.is_dir() and list(folder.iterdir()) == []
    oq.prepare_output_dir(folder)  # an existing folder is fine


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_unwritable_output_dir_fails_with_one_line_naming_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # /proc exists and is a folder, but no file can be created there, not even by root.
    with pytest.raises(OSError) as error:
        oq.prepare_output_dir(Path("/proc"))
    assert error.value.errno is not None and error.value.filename == "/proc"
    assert str(error.value.strerror).startswith("the output folder is not writable (")
    assert oq.main(["--output-dir", "/proc"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert re.fullmatch(r"error: the output folder is not writable \(.+\): /proc\n", captured.err)


def test_output_dir_that_is_a_file_is_named_in_the_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(NotADirectoryError) as error:
        oq.prepare_output_dir(blocker)
    assert error.value.errno == errno.ENOTDIR and error.value.filename == str(blocker)


def test_interrupt_exits_130_without_verified_or_leftovers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(*args: object) -> NoReturn:
        raise KeyboardInterrupt

    monkeypatch.setattr(oq, "load_digits_split", interrupted)
    assert oq.main(["--output-dir", str(tmp_path)]) == 130
    captured = capsys.readouterr()
    assert captured.err == "error: interrupted\n" and "Verified" not in captured.out
    assert list(tmp_path.iterdir()) == []


def test_closed_pipe_exits_141_and_silences_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def closed_pipe() -> None:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(oq, "lesson", lambda args, work: None)
    monkeypatch.setattr(oq, "print_versions", closed_pipe)
    with open(tmp_path / "stdout.txt", "w", encoding="utf-8") as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)
        assert oq.main(["--output-dir", str(tmp_path / "out")]) == 141
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
        (
            FileNotFoundError(errno.ENOENT, "No such file or directory", "x.onnx"),
            "error: No such file or directory: x.onnx\n",
        ),
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

    monkeypatch.setattr(oq, "load_digits_split", fail)
    assert oq.main(["--output-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == line


def test_any_terminal_encoding_prints_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", terminal)
    monkeypatch.setattr(oq, "lesson", lambda args, work: print("profile: 12.0 µs per run"))
    assert oq.main(["--output-dir", str(tmp_path)]) == 0
    terminal.flush()
    report = terminal.buffer.getvalue().decode("ascii")
    assert "12.0 \\xb5s per run" in report and "\nVersions: Python " in report


def test_lesson_work_files_go_to_a_temporary_folder_that_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folders = []

    def lesson(args: Any, work: Path) -> None:
        assert work.is_dir() and work.parent != args.output_dir
        (work / "profile.json").write_text("[]")
        folders.append(work)

    monkeypatch.setattr(oq, "lesson", lesson)
    assert oq.main(["--output-dir", str(tmp_path / "out"), "--seed", "5"]) == 0
    (work,) = folders
    assert not work.exists() and list((tmp_path / "out").iterdir()) == []


def test_noise_rows_are_seeded_and_cover_the_two_ranges() -> None:
    noise = oq.noise_rows(32, seed=0)
    assert list(noise) == ["noise in [0, 1)", "noise in [0, 16]"]
    for rows in noise.values():
        assert rows.shape == (32, 64) and rows.dtype == np.float32
    low, full = noise.values()
    assert low.min() >= 0 and low.max() < 1
    assert full.min() >= 0 and full.max() <= 16
    assert full.min() < 1 and full.max() > 15  # the whole pixel range, from 0 to 16
    again = oq.noise_rows(32, seed=0)
    np.testing.assert_array_equal(again["noise in [0, 16]"], full)
    assert not np.array_equal(oq.noise_rows(32, seed=1)["noise in [0, 1)"], low)


def test_command_line_defaults_and_one_line_usage_errors(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = oq.parse_args([])
    assert (args.benchmark, args.output_dir, args.seed) == (False, Path("models"), 0)
    assert oq.parse_args(["--benchmark", "--seed", "9"]).benchmark is True
    with pytest.raises(SystemExit) as exit_info:
        oq.parse_args(["--seed", "x"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err == (
        "optimize_and_quantize.py: error: argument --seed: expected a whole number, got 'x' "
        "(see --help)\n"
    )
    with pytest.raises(SystemExit):
        oq.parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "(default: models)" in help_text and "(default: 0)" in help_text
    assert "2000/200 repeats instead of 50/10" in help_text


def test_benchmark_run_reports_the_goals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(oq, "BENCHMARK_REPEATS", (3, 2))
    assert small_main(monkeypatch, ["--benchmark", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "(3/2 interleaved repeats, 1 thread)" in out and "rough" not in out
    assert "\n1. Session cost\n" in out and "(3 runs)" in out
    assert out.count("   goal: ") == 3 and "x smaller: " in out
    assert f"\nVerified: {tmp_path / oq.FLOAT_FILE} and its int8 versions in {tmp_path}\n" in out


def test_default_run_prints_the_report_the_docs_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The docs' sample comes from the full-size network; this run trains the small one. Every
    # figure becomes "#" and every list of graph nodes "...", then each line of the sample must
    # appear, in order, except timings (which differ between runs, also in their unit) and the
    # lines that state the layers and the training (which depend on the network's size).
    page = (ROOT / "docs" / "optimize_and_quantize.md").read_text(encoding="utf-8")
    sample = page.split("<!-- sample: python optimize_and_quantize.py -->\n```text\n")[1]
    sample = sample.split("```")[0]

    def figures_hidden(line: str) -> str:
        line = re.sub(r"(nodes: |run: |as Mul: ).*", r"\1...", line)
        return re.sub(r"\d+(\.\d+)?(e-\d+)?", "#", " ".join(line.split()))

    network_size = ("MLPClassifier", "trained in")
    expected = [
        figures_hidden(line)
        for line in sample.splitlines()
        if not any(word in line for word in (" µs", " ms", *network_size))
    ]
    monkeypatch.chdir(tmp_path)
    assert small_main(monkeypatch, []) == 0
    out = capsys.readouterr().out.replace(os.sep, "/")  # Windows prints models\\digits_mlp.onnx
    report = [figures_hidden(line) for line in out.splitlines()]
    position = 0
    for line in expected:
        assert line in report[position:], f"missing or out of order: {line!r}"
        position = report.index(line, position) + 1


def test_benchmark_goals_not_reached_below_them_and_reached_at_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def model(size: int, seconds: float) -> dict[str, float]:
        return {"bytes": size, "batch large": seconds}

    oq.print_goals(
        {
            "float32": model(350, 2.0),
            "dynamic int8": model(100, 1.0),
            "static int8": model(175, 2.0),
        }
    )
    oq.print_goals(
        {
            "float32": model(350, 2.0),
            "dynamic int8": model(350, 1.0),
            "static int8": model(350, 1.0),
        }
    )
    lines = capsys.readouterr().out.splitlines()
    assert [line.rsplit(", ", 1)[1] for line in lines] == [
        "NOT reached",  # 1.00x faster
        "reached",  # 3.50x smaller: exactly the goal
        "NOT reached",  # 2.00x smaller
        "reached",  # 2.00x faster: exactly the goal
        "NOT reached",
        "NOT reached",
    ]


def test_noise_calibration_report_is_the_same_on_every_run_with_the_seed(
    trained: Trained, data: Split, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The docs promise: every figure but the timings is the same on every run with the same seed.
    _, _, path = trained
    preprocessed = oq.preprocess(path, tmp_path)
    reports = []
    for _ in range(2):
        oq.print_noise_calibration(preprocessed, path, data, seed=3, folder=tmp_path)
        reports.append(capsys.readouterr().out)
    assert reports[0] == reports[1]
    assert "noise in [0, 1)   accuracy " in reports[0]


def test_quantizing_twice_with_the_seed_gives_the_same_bytes(
    trained: Trained, data: Split, tmp_path: Path
) -> None:
    # Same arguments, same files: also for the int8 models (calibration rows chosen by the seed).
    _, _, path = trained
    files = []
    for run_index in range(2):
        folder = tmp_path / str(run_index)
        folder.mkdir()
        paths = oq.quantize_models(oq.preprocess(path, folder), data[0], seed=0, folder=folder)
        files.append({name: p.read_bytes() for name, p in paths.items()})
    assert files[0] == files[1]


def test_sessions_of_every_step_open_on_the_cpu_without_a_warning(
    trained: Trained, data: Split, tmp_path: Path
) -> None:
    # ONNX Runtime warns (a Python warning, not on stderr) about a provider name it does not know.
    _, _, path = trained
    with oq.warnings.catch_warnings():
        oq.warnings.simplefilter("error")
        oq.executed_graph(path, oq.LEVELS["all"], tmp_path / "all.onnx")
        oq.profile(path, data[1][:4], runs=1, folder=tmp_path)
        assert oq.load_session(path).get_providers() == ["CPUExecutionProvider"]


def test_same_seed_gives_the_same_files_and_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # In process (the PYTHONHASHSEED check above starts a process, which mutation testing skips).
    reports = []
    for name in ("first", "second"):
        assert small_main(monkeypatch, ["--output-dir", str(tmp_path / name), "--seed", "7"]) == 0
        reports.append(capsys.readouterr().out)
    for file_name in (oq.FLOAT_FILE, oq.DYNAMIC_FILE, oq.STATIC_FILE):
        first, second = (tmp_path / name / file_name for name in ("first", "second"))
        assert first.read_bytes() == second.read_bytes()
    # The calibration pitfall's figures (no timing in those lines) are the same too.
    noise_lines = [
        [line for line in text.splitlines() if line.startswith(("   training rows", "   noise in"))]
        for text in reports
    ]
    assert len(noise_lines[0]) == 3 and noise_lines[0] == noise_lines[1]
    report = reports[0]
    assert "(stratified, seed 7)" in report
    assert (
        "\n0. Train an MLPClassifier 64-32-10, convert it, save it, load it back and verify\n"
        in report
    )
    # The small network stops at the epoch limit, and the report says so.
    assert (
        "\n   trained in 300 epochs (the limit: not converged, verified all the same)\n" in report
    )
    assert "\n1. Session cost (rough: few repeats; --benchmark for steadier figures)\n" in report
    assert "median:" in report and "(2 runs)" in report  # the quick repeats, not the benchmark's
    assert (
        "\n   checked: both int8 models within 1 point of float32's accuracy and agreeing on at "
        "least 99% of the labels\n"
    ) in report
    assert (
        "pixel scaling as Mul: Mul Cast MatMul Add Relu MatMul Add Softmax Identity ArgMax "
        "ai.onnx.ml:ArrayFeatureExtractor Reshape Cast\n"
    ) in report


def test_write_atomically_ctrl_c_just_after_the_rename_stays_an_interrupt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace

    def replace_then_interrupt(source: str, target: Path) -> NoReturn:
        real_replace(source, target)
        raise KeyboardInterrupt  # Ctrl-C lands after the rename: the cleanup finds no file

    monkeypatch.setattr(oq.os, "replace", replace_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        oq.write_atomically(b"complete", tmp_path / "model.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_compare_outputs_tolerance_is_relative_plus_absolute() -> None:
    labels = np.array([0, 0])
    expected = np.array([[0.5, 0.0], [0.9, 0.0]])
    # 3e-5 on 0.5 is beyond atol (1e-5) alone but within atol + rtol * 0.5 (6e-5): accepted.
    relative = expected + np.array([[3e-5, 0.0], [0.0, 0.0]])
    assert oq.compare_outputs("relative", labels, relative, labels, expected)[0] == pytest.approx(
        3e-5
    )
    # 5e-6 on a probability of 0 is beyond any relative tolerance but within atol: accepted.
    absolute = expected + np.array([[0.0, 5e-6], [0.0, 0.0]])
    assert oq.compare_outputs("absolute", labels, absolute, labels, expected)[0] == pytest.approx(
        5e-6
    )


def test_compare_outputs_counts_only_the_differences_that_are_not_near_ties() -> None:
    expected = np.array([[0.5, 0.5 - 1e-6, 0.0], [0.5, 0.5 - 2.5e-5, 0.0], [0.1, 0.7, 0.2]])
    # Row 0 is a near-tie (gap 1e-6 <= 2 * atol); row 1's gap, 2.5e-5, is not; row 2 is plain wrong.
    with pytest.raises(AssertionError, match=r"^mixed: 2 of 3 labels differ where the top two"):
        oq.compare_outputs("mixed", np.array([1, 1, 0]), expected, np.array([0, 0, 1]), expected)
    with pytest.raises(AssertionError, match=r"^gap: 1 of 3 labels differ where the top two"):
        oq.compare_outputs("gap", np.array([1, 1, 1]), expected, np.array([0, 0, 1]), expected)


def test_noise_calibration_report_shows_the_pitfall_in_its_figures(
    trained: Trained, data: Split, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, _, path = trained
    oq.print_noise_calibration(oq.preprocess(path, tmp_path), path, data, seed=0, folder=tmp_path)
    figures = {
        match[1].strip(): (float(match[2]), float(match[3]))
        for match in re.finditer(
            r"^   (.{17}) accuracy (\S+), agreement +(\S+)%", capsys.readouterr().out, re.M
        )
    }
    assert list(figures) == ["training rows", "noise in [0, 1)", "noise in [0, 16]"]
    accuracy, agreement = figures["training rows"]
    assert accuracy > 0.9 and 99 <= agreement <= 100
    assert figures["noise in [0, 1)"][1] < 90  # calibrated on the wrong range: labels change


def test_quantization_table_rows_look_as_the_docs_show(capsys: pytest.CaptureFixture[str]) -> None:
    # The figures of the docs' sample, timings included, give back the sample's rows.
    def row(size: int, one: float, large: float, agreement: float, difference: float) -> dict:
        return {
            "bytes": size,
            "batch 1": one,
            "batch large": large,
            "accuracy": 0.9815,
            "agreement": agreement,
            "difference": difference,
        }

    oq.print_quantization(
        {
            "float32": row(341373, 10e-6, 1.01e-3, 1.0, 0.0),
            "dynamic int8": row(91300, 9e-6, 519e-6, 0.995, 0.0311),
        },
        test_rows=540,
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == (
        "   float32        341.4 KB      10 µs    1.01 ms     0.9815     100.00%          0.0000"
    )
    assert lines[2] == (
        "   dynamic int8    91.3 KB       9 µs     519 µs     0.9815      99.50%          0.0311"
    )


def test_time_per_operator_sums_kernel_times_only() -> None:
    def event(category: str, name: str, operator: str, microseconds: int) -> dict:
        return {"cat": category, "name": name, "args": {"op_name": operator}, "dur": microseconds}

    events = [
        event("Node", "fc1_kernel_time", "Gemm", 5),
        event("Node", "fc2_kernel_time", "Gemm", 7),
        event("Node", "fc1_fence_before", "Gemm", 100),  # bookkeeping, not the kernel
        event("Node", "relu_kernel_time", "Relu", 3),
        event("Session", "model_run", "", 1000),
    ]
    assert oq.time_per_operator(events) == {"Gemm": 12, "Relu": 3}
