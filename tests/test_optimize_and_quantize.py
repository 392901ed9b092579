"""In-process tests of optimize_and_quantize.py: each step's function, with a small network.

The script's network is 64-256-256-10; these tests train 64-32-10 (the same code, a quarter of a
second) and time with a call or two. No test asserts a speed. The shared plumbing (flags, exit
statuses, signals, publish) is tested once for every lesson in tests/test_plumbing.py; the
subprocess runs (other hash seeds, terminals) in tests/test_scripts.py.
"""

import contextlib
import io
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

import optimize_and_quantize as oq

ROOT = Path(__file__).resolve().parent.parent
SMALL = (32,)
FAST = {1: (1, 2), oq.LARGE_BATCH: (1, 1)}  # (turns, calls per turn): enough to run the code
FILES = [oq.FLOAT_FILE, oq.DYNAMIC_FILE, oq.STATIC_FILE]
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
    onnx.save_model(model, path)
    return classifier, model, path


@pytest.fixture(scope="module")
def quantized(trained: Trained, data: Split, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The small model's int8 versions: {name: path} with the float32 file as "float32"."""
    path = trained[2]
    folder = tmp_path_factory.mktemp("quantized")
    preprocessed = oq.preprocess(path, folder)
    rows = oq.calibration_rows(data[0], oq.CALIBRATION_ROWS, seed=0)
    return {
        "float32": path,
        "dynamic int8": oq.quantize_dynamic_int8(preprocessed, folder / "dynamic.onnx"),
        "static int8": oq.quantize_static_int8(preprocessed, rows, folder / "static.onnx"),
    }


def small_main(monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> int:
    """Run main() with the small network and one or two calls per timing."""
    monkeypatch.setattr(oq, "HIDDEN_LAYERS", SMALL)
    monkeypatch.setattr(oq, "QUICK_TIMING", FAST)
    return oq.main(argv)


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[int, str, Path]]:
    """Two default runs of the small network with seed 7: (status, stdout, folder) each."""
    runs = []
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in ("first", "second"):
            folder = tmp_path_factory.mktemp(name) / "models"
            with contextlib.redirect_stdout(io.StringIO()) as out:
                status = small_main(monkeypatch, ["--output-dir", str(folder), "--seed", "7"])
            runs.append((status, out.getvalue(), folder))
    return runs


# --- 0. The model --------------------------------------------------------------------------------


def test_split_is_seeded_stratified_raw_pixels(data: Split) -> None:
    x_train, x_test, y_train, y_test = data
    assert x_train.dtype == np.float32 and x_train.shape == (1257, 64)
    assert x_test.shape == (540, 64)
    assert x_train.min() == 0 and x_train.max() == 16  # raw pixels, unscaled
    np.testing.assert_array_equal(x_train, np.round(x_train))
    counts = np.bincount(np.concatenate([y_train, y_test]))
    np.testing.assert_allclose(np.bincount(y_test), counts * oq.TEST_SIZE, atol=1)
    np.testing.assert_array_equal(oq.load_digits_split(seed=0)[1], x_test)
    assert not np.array_equal(oq.load_digits_split(seed=1)[1], x_test)


def test_training_that_converges_trains_the_network_asked_for(data: Split) -> None:
    x_train, x_test, y_train, y_test = data
    classifier = oq.train_classifier(x_train, y_train, seed=0, hidden=(16,))
    mlp = classifier.steps[-1][1]
    assert [c.shape for c in mlp.coefs_] == [(64, 16), (16, 10)]
    assert mlp.max_iter == 300 and classifier.score(x_test, y_test) > 0.9
    np.testing.assert_array_equal(classifier[:-1].transform(x_test), x_test / 16)
    again = oq.train_classifier(x_train, y_train, seed=0, hidden=(16,))
    np.testing.assert_array_equal(again.steps[-1][1].coefs_[0], mlp.coefs_[0])


def test_training_interrupted_inside_fit_stops_instead_of_returning_a_half_model(
    data: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sklearn.neural_network import MLPClassifier

    def interrupted_fit(self: Any, x: np.ndarray, y: np.ndarray) -> Any:
        # What MLPClassifier does on Ctrl-C: warn, and return the model as far as it got.
        oq.warnings.warn("Training interrupted by user.", UserWarning, stacklevel=1)
        return self

    monkeypatch.setattr(MLPClassifier, "fit", interrupted_fit)
    for _ in range(2):  # a warning seen once before must still stop the second training
        with pytest.raises(KeyboardInterrupt):
            oq.train_classifier(data[0][:50], data[2][:50], seed=0, hidden=SMALL)


def test_converted_model_takes_raw_pixels_and_scales_them_inside(trained: Trained) -> None:
    model = trained[1]
    onnx.checker.check_model(model, full_check=True)
    (x_info,) = model.graph.input
    assert x_info.name == "X" and x_info.type.tensor_type.elem_type == TensorProto.FLOAT
    batch, features = x_info.type.tensor_type.shape.dim
    assert not batch.HasField("dim_value") and features.dim_value == 64
    outputs = {o.name: o.type.tensor_type for o in model.graph.output}
    assert list(outputs) == ["label", "probabilities"]
    assert outputs["label"].elem_type == TensorProto.INT64 and len(outputs["label"].shape.dim) == 1
    assert outputs["probabilities"].shape.dim[1].dim_value == 10
    first = model.graph.node[0]
    assert (first.op_type, first.input[0]) == ("Mul", "X")
    scale = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}[first.input[1]]
    assert scale == np.float32(1 / 16)
    assert [n.op_type for n in model.graph.node if "X" in n.input] == ["Mul"]  # only the Mul
    assert model.ir_version == 10
    assert {o.domain: o.version for o in model.opset_import} == {"": 22, "ai.onnx.ml": 1}


def test_float_model_agrees_with_scikit_learn_and_the_reference_evaluator(
    trained: Trained, data: Split
) -> None:
    classifier, model, path = trained
    x_test = data[1]
    session = oq.load_session(path)
    labels, probabilities = oq.run(session, x_test)
    assert labels.dtype == np.int64 and probabilities.shape == (540, 10)
    np.testing.assert_array_equal(labels, classifier.predict(x_test))
    np.testing.assert_allclose(
        probabilities, classifier.predict_proba(x_test), rtol=oq.RTOL, atol=oq.ATOL
    )
    oq.verify_float_model(classifier, model, session, x_test)


def test_verification_rejects_a_model_with_a_wrong_weight(
    trained: Trained, data: Split, tmp_path: Path
) -> None:
    classifier, model, _ = trained
    broken = onnx.ModelProto()
    broken.CopyFrom(model)
    (tensor,) = [t for t in broken.graph.initializer if t.name == "pixel_scale"]
    tensor.CopyFrom(numpy_helper.from_array(np.array(1 / 15, np.float32), tensor.name))
    onnx.save_model(broken, tmp_path / "broken.onnx")
    session = oq.load_session(tmp_path / "broken.onnx")
    with pytest.raises(AssertionError, match=r"^ONNX Runtime vs scikit-learn: largest difference"):
        oq.verify_float_model(classifier, broken, session, data[1])


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


def test_compare_returns_the_largest_difference_within_relative_plus_absolute_tolerance() -> None:
    expected = np.array([[0.5, 0.0], [0.9, 0.0]])
    # 3e-5 on 0.5 is beyond atol (1e-5) alone but within atol + rtol * 0.5 (6e-5): accepted.
    relative = expected + np.array([[3e-5, 0.0], [0.0, 0.0]])
    assert oq.compare("relative", relative, expected) == pytest.approx(3e-5)
    # 5e-6 on a probability of 0 is beyond any relative tolerance but within atol: accepted.
    absolute = expected + np.array([[0.0, 5e-6], [0.0, 0.0]])
    assert oq.compare("absolute", absolute, expected) == pytest.approx(5e-6)
    assert oq.compare("same", expected.astype(np.float32), expected) < 1e-7
    with pytest.raises(AssertionError, match=r"^far: largest difference 0\.01 exceeds rtol"):
        oq.compare("far", expected + 0.01, expected)
    with pytest.raises(AssertionError, match=r"^short: shape \(1, 2\) differs from \(2, 2\)"):
        oq.compare("short", expected[:1], expected)


def test_compare_labels_allows_near_ties_only() -> None:
    expected = np.array([[0.5, 0.5 - 1e-6, 0.0], [0.5, 0.5 - 2.5e-5, 0.0], [0.1, 0.7, 0.2]])
    truth = np.array([0, 0, 1])
    assert oq.compare_labels("tie", np.array([1, 0, 1]), truth, expected) == 1
    assert oq.compare_labels("equal", truth, truth, expected) == 0
    # Row 0 is a near-tie (gap 1e-6 <= 2 * atol); row 1's gap, 2.5e-5, is not; row 2 is wrong.
    with pytest.raises(AssertionError, match=r"^mixed: 2 of 3 labels differ, not tied"):
        oq.compare_labels("mixed", np.array([1, 1, 0]), truth, expected)
    with pytest.raises(AssertionError, match=r"^gap: 1 of 3 labels differ, not tied"):
        oq.compare_labels("gap", np.array([1, 1, 1]), truth, expected)


def test_sessions_open_on_the_cpu_with_the_threads_and_level_asked_for(trained: Trained) -> None:
    path = trained[2]
    session = oq.load_session(path, threads=1, level=oq.LEVELS["basic"])
    options = session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.graph_optimization_level == oq.ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    default = oq.load_session(path)
    assert default.get_providers() == ["CPUExecutionProvider"]
    assert default.get_session_options().intra_op_num_threads == 0
    level = default.get_session_options().graph_optimization_level
    assert level == oq.ort.GraphOptimizationLevel.ORT_ENABLE_ALL


# --- 1. Session cost, and timing -----------------------------------------------------------------


def test_session_cost_measures_three_separate_phases(trained: Trained, data: Split) -> None:
    figures = oq.session_cost(trained[2], data[1][:1], (1, 3))
    assert len(figures) == 3 and all(np.isfinite(f) and f > 0 for f in figures)


def test_time_runs_takes_turns_and_returns_the_median_per_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    order: list[str] = []

    class Session:  # what run() calls: session.run(names, feeds)
        def __init__(self, name: str) -> None:
            self.name = name

        def run(self, names: list[str], feeds: dict) -> list[np.ndarray]:
            order.append(self.name)
            return [np.zeros(1), np.zeros((1, 10))]

    x = np.zeros((1, 64), np.float32)
    medians = oq.time_runs({"a": Session("a"), "b": Session("b")}, x, (3, 2))
    assert order == ["a", "b"] + (["a", "a", "b", "b"] * 3)  # one warm-up run each, then turns
    assert list(medians) == ["a", "b"]
    # Seconds per run, the warm-up untimed: clock readings 0, 1, 3, 6, 10, 15 time runs of 1, 3
    # and 5 seconds, whose median is 3.
    clock = iter(np.cumsum(np.arange(100)).tolist())
    monkeypatch.setattr(oq.time, "perf_counter", lambda: next(clock))
    assert oq.time_runs({"only": Session("only")}, x, (1, 3)) == {"only": 3}


# --- 2. Graph optimizations ----------------------------------------------------------------------


def test_each_level_saves_the_graph_it_runs_and_fuses_as_documented(
    trained: Trained, data: Split, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    _, model, path = trained
    graphs = oq.print_optimizations(path, data[1][:64], tmp_path)
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
    assert sequences["all"] == sequences["layout"] == sequences["extended"]
    # The warning ONNX Runtime logs for "layout" and "all" is silenced: stderr stays clean.
    assert capfd.readouterr().err == ""


def test_saving_a_fully_optimized_graph_logs_the_documented_warning(
    trained: Trained, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    options = oq.ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "all.onnx")
    oq.ort.InferenceSession(str(trained[2]), options, providers=["CPUExecutionProvider"])
    assert LEVEL_WARNING in capfd.readouterr().err


def test_every_level_gives_the_same_outputs(
    trained: Trained, data: Split, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    oq.print_optimizations(trained[2], data[1], tmp_path)
    pairs = re.findall(r"vs disabled (\S+) <= (\S+):", capsys.readouterr().out)
    assert len(pairs) == len(oq.LEVELS) and float(pairs[0][0]) == 0  # disabled against itself
    # The bound printed is what compare() allows for a probability (at most 1): atol + rtol.
    assert all(float(bound) == pytest.approx(oq.ATOL + oq.RTOL) for _, bound in pairs)
    assert max(float(difference) for difference, _ in pairs) <= oq.ATOL


def test_a_level_that_changes_the_outputs_fails_the_level_check(
    trained: Trained, data: Split, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_load, real_run = oq.load_session, oq.run
    broken = set()

    def load(path: Path, **options: Any) -> Any:
        session = real_load(path, **options)
        if options.get("level") == oq.LEVELS["extended"]:
            broken.add(id(session))
        return session

    def run(session: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        labels, probabilities = real_run(session, x)
        return labels, probabilities + (0.01 if id(session) in broken else 0.0)

    monkeypatch.setattr(oq, "load_session", load)
    monkeypatch.setattr(oq, "run", run)
    with pytest.raises(AssertionError, match=r"^level extended vs disabled: .* 0\.01 "):
        oq.print_optimizations(trained[2], data[1][:32], tmp_path)


# --- 3. Threads ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("one", "default", "meaning"),
    [
        (3.65, 1.0, "threads shared the work"),  # the case: 3.65x is no "2x"
        (1.0, 1.0, "no clear gain"),
        (1.0, 2.0, "slower"),
    ],
)
def test_the_threads_words_follow_the_ratio_printed_beside_them(
    trained: Trained,
    data: Split,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    one: float,
    default: float,
    meaning: str,
) -> None:
    monkeypatch.setattr(oq, "time_runs", lambda *args: {"one": one, "default": default})
    batches = {1: data[1][:1], 64: data[1][:64]}
    results = oq.print_threads(trained[2], batches, {1: (1, 1), 64: (1, 1)})
    assert results == {1: (one, default), 64: (one, default)}
    out = capsys.readouterr().out
    rows = re.findall(r"^ +(\d+) .* (\d+\.\d\d)x  (.+)$", out, re.M)  # batch, ratio, the words
    assert [(batch, ratio) for batch, ratio, _ in rows] == [
        (b, f"{one / default:.2f}") for b in ("1", "64")
    ]
    assert all(meaning in words for _, _, words in rows)
    assert all(f"({os.cpu_count()} logical CPUs)" in words for _, _, words in rows)


def test_thread_timings_cover_each_batch_with_both_settings(trained: Trained, data: Split) -> None:
    batches = {1: data[1][:1], 64: data[1][:64]}
    with contextlib.redirect_stdout(io.StringIO()):
        results = oq.print_threads(trained[2], batches, {1: (1, 2), 64: (1, 2)})
    assert list(results) == [1, 64] and all(min(pair) > 0 for pair in results.values())


# --- 4. Profiling --------------------------------------------------------------------------------


def test_profile_trace_covers_every_node_and_sums_per_operator(
    trained: Trained,
    data: Split,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = trained[2]
    graph = oq.executed_graph(path, oq.LEVELS["all"], tmp_path / "all.onnx")
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "work"
    folder.mkdir()
    traces: list[list[dict]] = []
    real = oq.time_per_operator

    def recording(events: list[dict], graph: onnx.ModelProto) -> dict[str, float]:
        traces.append(events)
        return real(events, graph)

    monkeypatch.setattr(oq, "time_per_operator", recording)
    oq.print_profile(path, data[1][:64], (1, 3), graph, folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all.onnx", "work"]  # trace: in folder
    assert [p.suffix for p in folder.iterdir()] == [".json"]
    (events,) = traces
    totals = real(events, graph)
    assert set(totals) == {node.op_type for node in graph.graph.node}
    assert list(totals.values()) == sorted(totals.values(), reverse=True)
    printed = re.findall(r"^   (\w+) +[\d.]+ µs per run", capsys.readouterr().out, re.M)
    assert printed == list(totals)
    # A node missing from the trace is reported by name.
    fused = next(n.name for n in graph.graph.node if n.op_type == "FusedGemm")
    partial = [e for e in events if e.get("name") != f"{fused}_kernel_time"]
    with pytest.raises(AssertionError, match=f"^profile: 1 node.* not in the trace: .*{fused}"):
        real(partial, graph)


def test_time_per_operator_sums_kernel_times_only() -> None:
    def event(category: str, name: str, operator: str, microseconds: int) -> dict:
        return {"cat": category, "name": name, "args": {"op_name": operator}, "dur": microseconds}

    graph = onnx.helper.make_model(
        onnx.helper.make_graph(
            [
                onnx.helper.make_node(op, [], [], name=n)
                for op, n in (("Gemm", "fc1"), ("Relu", "r"))
            ],
            "g",
            [],
            [],
        )
    )
    events = [
        event("Node", "fc1_kernel_time", "Gemm", 5),
        event("Node", "fc2_kernel_time", "Gemm", 7),
        event("Node", "fc1_fence_before", "Gemm", 100),  # bookkeeping, not the kernel
        event("Node", "r_kernel_time", "Relu", 3),
        event("Session", "model_run", "", 1000),
    ]
    assert oq.time_per_operator(events, graph) == {"Gemm": 12, "Relu": 3}


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
        onnx.checker.check_model(onnx.load(quantized[name]), full_check=True)
        assert weight_types(quantized[name]) == {TensorProto.INT8}
    # Static: the activations are int8 too, starting with the input (biases stay int32).
    zero_points = {
        t.name: t.data_type for t in onnx.load(quantized["static int8"]).graph.initializer
    }
    assert zero_points["X_zero_point"] == TensorProto.INT8


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
    quantized: dict[str, Path], data: Split, tmp_path: Path
) -> None:
    batches = {1: data[1][:1], oq.LARGE_BATCH: data[1][:64]}
    with contextlib.redirect_stdout(io.StringIO()):
        results = oq.compare_models(quantized, data, batches, FAST, tmp_path)
    assert list(results) == ["float32", "dynamic int8", "static int8"]
    base = results["float32"]
    assert base["agreement"] == 1 and base["difference"] == 0 and base["accuracy"] > 0.9
    for name in ("dynamic int8", "static int8"):
        r = results[name]
        oq.check_int8(name, r["accuracy"], base["accuracy"], r["agreement"])
        assert 0 < r["difference"] < 0.2 and r["bytes"] == quantized[name].stat().st_size
        assert r["bytes"] < base["bytes"] and r["batch 1"] > 0 and r["batch large"] > 0


def test_check_int8_names_the_figures_that_fail_and_accepts_the_limits() -> None:
    oq.check_int8("fine", accuracy=0.975, float_accuracy=0.98, agreement=0.995)
    # A drop of exactly one point (0.02 - 0.01 is 0.01 in floating point) and 99% agreement pass.
    oq.check_int8("at the limits", accuracy=0.01, float_accuracy=0.02, agreement=0.99)
    figures = r"^lossy: accuracy 0\.9600, agreement 1\.0000 .* float32's 0\.9800 - 0\.01, 0\.99"
    with pytest.raises(AssertionError, match=figures):
        oq.check_int8("lossy", accuracy=0.96, float_accuracy=0.98, agreement=1.0)
    with pytest.raises(AssertionError, match=r"^disagrees: accuracy 0\.9800, agreement 0\.9800 "):
        oq.check_int8("disagrees", accuracy=0.98, float_accuracy=0.98, agreement=0.98)


def test_fidelity_leaves_near_ties_out_of_accuracy_and_agreement() -> None:
    class Session:  # returns fixed labels and probabilities, as run() reads them
        def __init__(self, labels: list[int], probabilities: np.ndarray) -> None:
            self.outputs = [np.array(labels), probabilities]

        def run(self, names: list[str], feeds: dict) -> list[np.ndarray]:
            return self.outputs

    # Float32's rows: decisive, a near tie (gap 0.02 < NEAR_TIE), decisive, decisive.
    assert 0.02 < oq.NEAR_TIE < 0.4
    probabilities = np.array([[0.9, 0.1], [0.51, 0.49], [0.2, 0.8], [0.7, 0.3]])
    labels, truth, x = np.array([0, 0, 1, 0]), np.array([0, 1, 1, 1]), np.zeros((4, 64))
    same = oq.fidelity(Session([0, 0, 1, 0], probabilities), x, truth, labels, probabilities)
    assert same == [pytest.approx(2 / 3), 1.0, 0.0, 3]  # row 1, the near tie, is left out
    # The int8 model swaps the near tie: nothing changes; it swaps a decisive row: both change.
    swapped = probabilities[:, ::-1]
    tie = oq.fidelity(Session([0, 1, 1, 0], probabilities), x, truth, labels, probabilities)
    assert tie[:2] == same[:2] and tie[3] == 3
    wrong = oq.fidelity(Session([1, 0, 1, 0], swapped), x, truth, labels, probabilities)
    assert wrong[:2] == [pytest.approx(1 / 3), pytest.approx(2 / 3)]
    assert wrong[2] == pytest.approx(0.8)  # the largest change of any probability, ties included


def test_calibration_rows_are_seeded_distinct_training_rows(data: Split) -> None:
    x_train = data[0]
    rows = oq.calibration_rows(x_train, 16, seed=3)
    np.testing.assert_array_equal(rows, oq.calibration_rows(x_train, 16, seed=3))
    assert not np.array_equal(rows, oq.calibration_rows(x_train, 16, seed=4))
    assert all((x_train == row).all(axis=1).any() for row in rows)
    distinct = np.arange(80, dtype=np.float32).reshape(40, 2)
    every = oq.calibration_rows(distinct, 50, seed=0)  # asked for more rows than there are
    np.testing.assert_array_equal(np.sort(every[:, 0]), distinct[:, 0])


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


def test_quantizing_twice_with_the_seed_gives_the_same_bytes(
    trained: Trained, data: Split, tmp_path: Path
) -> None:
    files = []
    for index in range(2):
        folder = tmp_path / str(index)
        folder.mkdir()
        preprocessed = oq.preprocess(trained[2], folder)
        rows = oq.calibration_rows(data[0], oq.CALIBRATION_ROWS, seed=0)
        dynamic = oq.quantize_dynamic_int8(preprocessed, folder / "d.onnx")
        static = oq.quantize_static_int8(preprocessed, rows, folder / "s.onnx")
        files.append((dynamic.read_bytes(), static.read_bytes()))
    assert files[0] == files[1]


def test_benchmark_goals_say_reached_or_not_with_the_figures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def model(size: int, seconds: float) -> dict[str, float]:
        return {"bytes": size, "batch large": seconds}

    oq.print_goals(
        {
            "float32": model(350, 2.0),
            "dynamic int8": model(100, 1.0),
            "static int8": model(175, 2.0),
        },
        oq.BENCHMARK_TIMING,
    )
    oq.print_goals(
        {
            "float32": model(350, 2.0),
            "dynamic int8": model(350, 1.0),
            "static int8": model(90, 0.8),
        },
        oq.BENCHMARK_TIMING,
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if "goal:" in line]
    assert [line.rsplit(": ", 1)[1] for line in lines] == [
        "1.00x, NOT reached",
        "3.50x, reached",  # exactly the goal
        "2.00x, NOT reached",
        "2.50x, reached",
        "1.00x, NOT reached",
        "3.89x, reached",
    ]


# --- The whole lesson, in process ----------------------------------------------------------------


def test_default_run_writes_three_verified_models_and_the_same_bytes_again(
    small_runs: list[tuple[int, str, Path]], data: Split
) -> None:
    (status, report, folder), (again_status, _, again) = small_runs
    assert status == again_status == 0
    assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)  # no draft left behind
    for name in FILES:
        onnx.checker.check_model(onnx.load(folder / name), full_check=True)
        assert (folder / name).read_bytes() == (again / name).read_bytes()
    labels, _ = oq.run(oq.load_session(folder / oq.FLOAT_FILE), oq.load_digits_split(7)[1])
    assert labels.shape == (540,)
    assert report.splitlines()[-1].startswith("Versions: Python ")
    assert (
        report.splitlines()[-2]
        == f"Verified: {folder / oq.FLOAT_FILE} and its int8 versions in {folder}"
    )


def test_default_run_reports_what_a_reader_relies_on(
    small_runs: list[tuple[int, str, Path]],
) -> None:
    # Figures, not wording: the steps in order, each difference within the tolerance it is
    # printed beside, the row counts, the file sizes, the int8 checks. Processor-independent.
    report, folder = small_runs[0][1], small_runs[0][2]
    headings = [line[:2] for line in report.splitlines() if re.match(r"\d\. ", line)]
    assert headings == ["0.", "1.", "2.", "3.", "4.", "5."]
    assert "verified on the 540 test rows" in report
    verified = re.findall(
        r"^   (scikit-learn|reference evaluator): labels equal, .* (\S+) <= ", report, re.M
    )
    assert [name for name, _ in verified] == ["scikit-learn", "reference evaluator"]
    within = re.findall(r" ([\d.e+-]+) <= ([\d.e+-]+)", report)  # step 0: two, step 2: five
    assert len(within) == 7 and all(0 <= float(value) <= oq.ATOL for value, _ in within)
    assert {bound for _, bound in within} == {f"{oq.ATOL + oq.RTOL:.2g}"}
    assert (
        f"wrote {folder / oq.FLOAT_FILE} ({(folder / oq.FLOAT_FILE).stat().st_size} bytes)"
        in report
    )
    rows = {
        m[1]: m.groups()[1:]
        for m in re.finditer(
            r"^   (\S+(?: int8)?) +(\S+) KB .* (\S+) +(\S+)% +(\S+)$", report, re.M
        )
    }
    assert list(rows) == ["float32", "dynamic int8", "static int8"]
    for name, file_name in zip(rows, FILES, strict=True):
        assert float(rows[name][0]) == pytest.approx(
            (folder / file_name).stat().st_size / 1000, abs=0.05
        )
        assert float(rows[name][2]) >= 99  # agreement with float32, in percent
    decisive, ties = map(int, re.findall(r"on the (\d+) decisive test rows: (\d+) near", report)[0])
    assert decisive + ties == 540 and decisive >= 500
    assert "(stratified, seed 7)" in report and "trained in 300 epochs (the limit" in report
    assert "\n1. Session cost (rough: few repeats" in report and "(2 runs)" in report


def test_benchmark_run_reports_the_goals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(oq, "BENCHMARK_TIMING", {1: (1, 3), oq.LARGE_BATCH: (1, 2)})
    assert small_main(monkeypatch, ["--benchmark", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "(3/2 interleaved repeats, 1 thread)" in out and "rough" not in out
    assert "(3 runs)" in out and out.count("   goal: ") == 3


def test_help_names_the_timings_of_both_modes(capsys: pytest.CaptureFixture[str]) -> None:
    assert oq.main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--benchmark time 2000/200 calls instead of 50/10 (batch 1/1024)" in text


def test_usage_error_and_a_file_as_output_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert oq.main(["--benchmark=yes"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    (tmp_path / "file").write_text("not a folder")
    assert oq.main(["--output-dir", str(tmp_path / "file")]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert captured.out == ""


def test_a_wrong_float_model_exits_1_and_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_convert = oq.convert

    def wrong_scale(classifier: Any) -> onnx.ModelProto:
        model = real_convert(classifier)
        (tensor,) = [t for t in model.graph.initializer if t.name == "pixel_scale"]
        tensor.CopyFrom(numpy_helper.from_array(np.array(1 / 15, np.float32), tensor.name))
        return model

    monkeypatch.setattr(oq, "convert", wrong_scale)
    (tmp_path / oq.FLOAT_FILE).write_bytes(b"the previous, verified model")
    assert small_main(monkeypatch, ["--output-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: verification failed: ONNX Runtime vs scikit-learn: ")
    assert captured.err.count("\n") == 1 and "Verified" not in captured.out
    assert [p.name for p in tmp_path.iterdir()] == [oq.FLOAT_FILE]  # no draft, no int8 file
    assert (tmp_path / oq.FLOAT_FILE).read_bytes() == b"the previous, verified model"


def test_an_int8_model_that_fails_its_check_is_not_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(oq, "MIN_AGREEMENT", 1.01)  # no model can agree on 101% of the labels
    (tmp_path / oq.DYNAMIC_FILE).write_bytes(b"the previous int8 model")
    assert small_main(monkeypatch, ["--output-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: verification failed: dynamic int8: accuracy ")
    assert ", 1.01)" in captured.err and "Verified" not in captured.out
    assert sorted(p.name for p in tmp_path.iterdir()) == [oq.FLOAT_FILE, oq.DYNAMIC_FILE]
    assert (tmp_path / oq.DYNAMIC_FILE).read_bytes() == b"the previous int8 model"
