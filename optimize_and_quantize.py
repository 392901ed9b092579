# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "cloudpickle==3.1.3",
#     "flatbuffers==25.12.19",
#     "joblib==1.6.0",
#     "ml_dtypes==0.6.0",
#     "narwhals==2.29.0",
#     "numpy==2.4.6",
#     "onnx==1.23.2",
#     "onnxruntime==1.32.0",
#     "packaging==26.4",
#     "protobuf==7.36.2",
#     "scikit-learn==1.9.1",
#     "scipy==1.17.1",
#     "skl2onnx==1.20.0",
#     "threadpoolctl==3.8.0",
#     "typing_extensions==4.16.0",
# ]
# ///
"""What ONNX Runtime really runs, and how to make it fast and small: a digits MLP, measured.

    X float32 [N, 64] (pixels 0..16) -> Mul(1/16) -> MatMul+Add, Relu -> MatMul+Add, Relu
      -> MatMul+Add -> Softmax -> probabilities float32 [N, 10] -> ArgMax -> label int64 [N]

0. Train an MLPClassifier 64-256-256-10 on scikit-learn's digits, convert it with skl2onnx (the
   scaling as one standard Mul node), save digits_mlp.onnx, load it back, verify it.
1. Session cost: why the first call is slow (creating the session, the first run, later runs).
2. Graph optimizations: the graph ONNX Runtime executes at each level; every level must agree.
3. Threads: one intra-op thread against ONNX Runtime's default, at batch 1 and 1024.
4. Profiling: where the time goes, from ONNX Runtime's JSON trace, checked against the graph.
5. Quantization: dynamic and static int8 (QDQ, calibrated on training rows), each published only
   within 1 point of float32's accuracy and agreeing on 99% of its labels: smaller, and faster.

    python optimize_and_quantize.py                 # seconds; timings are rough (few repeats)
    python optimize_and_quantize.py --benchmark     # steadier timings, and the speed/size goals

It prints each step's figures, `Verified` and the versions. Only the timings change between runs.
"""

from __future__ import annotations

import os
import signal
import sys

# Ctrl-C (or SIGTERM, SIGHUP) while the libraries below import, or after main() has returned:
# one line and status 128 + the signal's number. main() handles every signal in between.
STOPPED: list[int] = []  # the signals that stopped this run; see the plumbing block at the end
if __name__ == "__main__":

    def stop_at_once(signum: int, frame: object) -> None:
        if not STOPPED:  # main() has not said it already
            print(
                "error: interrupted" if signum == signal.SIGINT else "error: terminated",
                file=sys.stderr,
            )
        os._exit(128 + signum)

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), stop_at_once)

import argparse
import contextlib
import errno
import functools
import json
import platform
import secrets
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

# Opset 22 for the default domain, at most 3 for ai.onnx.ml (skl2onnx imports only the versions the
# graph needs); IR version 10. The pinned onnxruntime 1.32 loads up to opset 28 and IR version 14.
TARGET_OPSET = {"": 22, "ai.onnx.ml": 3}
IR_VERSION = 10
FLOAT_FILE = "digits_mlp.onnx"
DYNAMIC_FILE = "digits_mlp_int8_dynamic.onnx"
STATIC_FILE = "digits_mlp_int8_static.onnx"
HIDDEN_LAYERS = (256, 256)
MAX_ITERATIONS = 300  # adam converges on the digits in about 100 epochs
TEST_SIZE = 0.3
RTOL, ATOL = 1e-4, 1e-5  # float32 summed in another order agrees to ~1e-6; a wrong weight: far less
LARGE_BATCH = 1024
CALIBRATION_ROWS = 256  # representative training rows for static quantization
MAX_ACCURACY_DROP = 0.01  # an int8 model may lose at most 1 point of accuracy, and must give
MIN_AGREEMENT = 0.99  # float32's label on at least 99% of the decisive test rows:
NEAR_TIE = 0.05  # those whose top two float32 probabilities differ by this much or more
Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # x_train, x_test, y_train, y_test


def lesson(args: argparse.Namespace) -> None:
    """The lesson's table of contents: each step prints its part of the report."""
    timing = BENCHMARK_TIMING if args.benchmark else QUICK_TIMING
    x_train, x_test, y_train, _ = data = load_digits_split(args.seed)
    print(f"Digits: {len(x_train)} to train, {len(x_test)} to test (stratified, seed {args.seed})")
    classifier = train_classifier(x_train, y_train, args.seed, HIDDEN_LAYERS)
    model = convert(classifier)
    float_path = args.output_dir / FLOAT_FILE
    with publish(float_path) as draft:  # the file gets its name only once it is verified
        onnx.save_model(model, draft)
        verify_float_model(classifier, onnx.load(draft), load_session(draft), x_test)
    print(f"   wrote {float_path} ({float_path.stat().st_size} bytes)")

    rng = np.random.default_rng(args.seed)
    batches = {1: x_test[:1], LARGE_BATCH: x_test[rng.integers(len(x_test), size=LARGE_BATCH)]}
    rough = "" if args.benchmark else " (rough: few repeats; --benchmark for steadier figures)"
    with tempfile.TemporaryDirectory(prefix="optimize_and_quantize.") as folder:
        work = Path(folder)  # ONNX Runtime's and the quantizer's own files, removed at the end
        print(f"\n1. Session cost{rough}")
        session_cost(float_path, batches[1], timing[1])
        print("\n2. Graph optimizations: the graph ONNX Runtime executes at each level")
        graphs = print_optimizations(float_path, x_test, work)
        print(f"\n3. Threads: median time per call{rough}")
        print_threads(float_path, batches, timing)
        print(f"\n4. Profiling: time per operator type{rough}")
        print_profile(float_path, batches[LARGE_BATCH], timing[LARGE_BATCH], graphs["all"], work)
        print("\n5. Quantization: preprocess, then dynamic and static (QDQ) int8")
        paths = publish_int8_models(preprocess(float_path, work), float_path, data, args.seed)
        results = compare_models(paths, data, batches, timing, work)
    if args.benchmark:
        print_goals(results, timing)
    print(f"\nVerified: {float_path} and its int8 versions in {args.output_dir}")
    print_versions()


# --- 0. The model: train, convert, save, load, verify --------------------------------------------


def load_digits_split(seed: int) -> Split:
    """Return a seeded, stratified float32 split of the digits: x_train, x_test, y_train, y_test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)  # bundled with scikit-learn: nothing is downloaded
    x = x.astype(np.float32)  # raw pixels 0 to 16, exactly what the ONNX model takes as X
    return train_test_split(x, y, test_size=TEST_SIZE, random_state=seed, stratify=y)


# Pixels are whole numbers 0 to 16; times 1/16, a power of two, is exact: ONNX equals scikit-learn.
PIXEL_SCALE = np.float32(1 / 16)


def train_classifier(x_train: np.ndarray, y_train: np.ndarray, seed: int, hidden: tuple) -> Any:
    """Fit pixels * 1/16 -> MLPClassifier(hidden) on raw pixels; seed fixes the initial weights."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from threadpoolctl import threadpool_limits

    widths = "-".join(map(str, (x_train.shape[1], *hidden, 10)))
    print(f"\n0. Train an MLPClassifier {widths}, convert it, save it, load it back and verify")
    classifier = make_pipeline(
        FunctionTransformer(functools.partial(np.multiply, PIXEL_SCALE)),
        MLPClassifier(hidden_layer_sizes=hidden, max_iter=MAX_ITERATIONS, random_state=seed),
    )
    # One BLAS thread: on a busy machine, threads that waited for each other made this fit 20x
    # slower, and a multi-threaded sum's order varies with the cores, and so would the weights.
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(limits=1):
        warnings.simplefilter("always")
        classifier.fit(x_train, y_train)
    # MLPClassifier catches Ctrl-C during fit, warns and returns a half-trained model: stop instead.
    if any("Training interrupted by user" in str(w.message) for w in caught):
        raise KeyboardInterrupt
    epochs = classifier.steps[-1][1].n_iter_
    limit = " (the limit: not converged, verified all the same)" if epochs == MAX_ITERATIONS else ""
    print(f"   trained in {epochs} epochs{limit}")
    return classifier


def convert(classifier: Any) -> onnx.ModelProto:
    """Convert the MLP with skl2onnx and put the pixel scaling in front as a standard Mul node."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    mlp = classifier.steps[-1][1]
    model = to_onnx(
        mlp,
        initial_types=[("X", FloatTensorType([None, mlp.coefs_[0].shape[0]]))],
        target_opset=TARGET_OPSET,
        options={id(mlp): {"zipmap": False}},  # probabilities as a float matrix, not dicts
    )
    # skl2onnx converts a FunctionTransformer only without a function (func=None): it cannot see
    # what Python code computes (pitfall 7). X -> Mul(X, 1/16) -> the MLP, by hand: a standard Mul,
    # unlike ai.onnx.ml Scaler, keeps every tensor typed for the quantizer (pitfall 1).
    for node in model.graph.node:
        node.input[:] = ["X_scaled" if name == "X" else name for name in node.input]
    scale = helper.make_node("Mul", ["X", "pixel_scale"], ["X_scaled"], name="scale_pixels")
    model.graph.node.insert(0, scale)
    model.graph.initializer.append(numpy_helper.from_array(np.array(PIXEL_SCALE), "pixel_scale"))
    model.ir_version = IR_VERSION
    # One opset_import per domain, sorted: skl2onnx's order can depend on PYTHONHASHSEED.
    opsets = sorted((opset.domain, opset.version) for opset in model.opset_import)
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(d, v) for d, v in dict(opsets).items())
    onnx.checker.check_model(model, full_check=True)
    print("   converted with skl2onnx, pixel scaling as Mul: " + " ".join(node_sequence(model)))
    return model


def node_sequence(model: onnx.ModelProto) -> list[str]:
    """Return the operator of each node, prefixed with its domain when it is not ai.onnx."""
    return [f"{n.domain}:{n.op_type}" if n.domain else n.op_type for n in model.graph.node]


def load_session(path: Path, *, threads: int = 0, level: Any = None) -> ort.InferenceSession:
    """Open a model file in ONNX Runtime on the CPU; threads 0 lets ONNX Runtime choose."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if level is not None:  # a GraphOptimizationLevel; ONNX Runtime's default is ORT_ENABLE_ALL
        options.graph_optimization_level = level
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(session: ort.InferenceSession, x: np.ndarray) -> list[np.ndarray]:
    """Return the labels and probabilities a session computes for a float32 batch."""
    return session.run(["label", "probabilities"], {"X": x})


# compare() allows |a - e| <= atol + rtol * |e|, and probabilities are at most 1: so at most BOUND.
BOUND = f"{ATOL + RTOL:.2g}"


def compare(name: str, actual: np.ndarray, expected: np.ndarray) -> float:
    """Return the largest absolute difference; raise AssertionError if outside RTOL/ATOL."""
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {actual.shape} differs from {expected.shape}")
    difference = float(np.max(np.abs(actual.astype(np.float64) - expected)))
    if not np.allclose(actual, expected, rtol=RTOL, atol=ATOL):
        raise AssertionError(
            f"{name}: largest difference {difference:.3g} exceeds rtol={RTOL:g}, atol={ATOL:g}"
        )
    return difference


def compare_labels(name: str, actual: np.ndarray, expected: np.ndarray, probabilities: Any) -> int:
    """Check that labels agree, except on a near-tie of the top two probabilities; return ties."""
    # Two classes equally probable within the tolerance may swap places: that is not an error.
    top_two = np.sort(probabilities[actual != expected], axis=1)[:, -2:]
    ties, differing = int(np.sum(top_two[:, 1] - top_two[:, 0] <= 2 * ATOL)), len(top_two)
    if ties < differing:
        raise AssertionError(f"{name}: {differing - ties} of {len(actual)} labels differ, not tied")
    return ties


def verify_float_model(classifier: Any, model: Any, session: Any, x_test: np.ndarray) -> None:
    """Verify ONNX Runtime against scikit-learn and the reference evaluator; print the result."""
    labels, probabilities = run(session, x_test)
    evaluator: Any = ReferenceEvaluator(model).run(["label", "probabilities"], {"X": x_test})
    references = {
        "scikit-learn": (classifier.predict(x_test), classifier.predict_proba(x_test)),
        "reference evaluator": (np.asarray(evaluator[0]), np.asarray(evaluator[1], np.float64)),
    }
    print(f"   verified on the {len(x_test)} test rows, ONNX Runtime against")
    for name, (expected_labels, expected) in references.items():
        difference = compare(f"ONNX Runtime vs {name}", probabilities, expected)
        ties = compare_labels(f"ONNX Runtime vs {name}", labels, expected_labels, expected)
        equal = f"labels equal except {ties} near-tie(s)" if ties else "labels equal"
        print(f"   {name}: {equal}, probabilities within {difference:.2g} <= {BOUND}")


# --- 1. Session cost -----------------------------------------------------------------------------

# Timed calls per figure, as (turns, calls per turn), at batch 1 and at LARGE_BATCH.
QUICK_TIMING = {1: (5, 10), LARGE_BATCH: (5, 2)}
BENCHMARK_TIMING = {1: (20, 100), LARGE_BATCH: (20, 10)}


def time_runs(sessions: dict[str, Any], x: np.ndarray, timing: tuple[int, int]) -> dict[str, float]:
    """Return each session's median seconds per run on x, the sessions taking turns."""
    # Turns spread a noisy moment on a shared machine over every session instead of landing on
    # one; several calls per turn let each session warm the CPU caches with its own data.
    turns, calls = timing
    for session in sessions.values():
        run(session, x)  # the first run pays for allocations (step 1): not a steady figure
    seconds: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(turns):
        for name, session in sessions.items():
            for _ in range(calls):
                start = time.perf_counter()
                run(session, x)
                seconds[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) for name, values in seconds.items()}


def microseconds(seconds: float) -> str:
    """Format a duration for the report."""
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.0f} µs"


def session_cost(path: Path, x_one: np.ndarray, timing: tuple[int, int]) -> list[float]:
    """Step 1: time creating a session, its first run, and later runs; print and return them."""
    # Creating a session parses the protobuf, optimizes the graph (step 2), picks kernels and packs
    # weights for them; the first run allocates the arena and plans buffers, with cold caches.
    start = time.perf_counter()
    session = load_session(path)
    created = time.perf_counter() - start
    run(session, x_one)
    first = time.perf_counter() - start - created
    later = time_runs({"later": session}, x_one, timing)["later"]
    print(f"   create the session:        {microseconds(created):>9}")
    print(f"   first run, 1 row:          {microseconds(first):>9}")
    print(f"   later runs, 1 row, median: {microseconds(later):>9}  ({timing[0] * timing[1]} runs)")
    print("   So: create a session once, reuse it, and warm it up before serving.")
    return [created, first, later]


# --- 2. Graph optimizations ----------------------------------------------------------------------

LEVELS = {  # basic: standard operators only; extended: ONNX Runtime's own fusions; layout: NCHWc
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "layout": ort.GraphOptimizationLevel.ORT_ENABLE_LAYOUT,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def executed_graph(path: Path, level: Any, target: Path) -> onnx.ModelProto:
    """Let ONNX Runtime save the graph it executes at this level to target; return it."""
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.optimized_model_filepath = str(target)
    options.log_severity_level = 3  # errors only: saving beyond "extended" warns on stderr
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return onnx.load(target)


def print_optimizations(path: Path, x_test: np.ndarray, folder: Path) -> dict[str, onnx.ModelProto]:
    """Step 2: print the graph run at each level, check it against "disabled"; return the graphs."""
    labels, probabilities = run(load_session(path, level=LEVELS["disabled"]), x_test)
    expected, graphs = probabilities.astype(np.float64), {}
    for name, level in LEVELS.items():
        graphs[name] = executed_graph(path, level, folder / f"{name}.onnx")
        level_labels, level_probabilities = run(load_session(path, level=level), x_test)
        difference = compare(f"level {name} vs disabled", level_probabilities, expected)
        compare_labels(f"level {name} vs disabled", level_labels, labels, expected)
        nodes = node_sequence(graphs[name])
        within = f"{difference:.2g} <= {BOUND}"
        print(f"   {name:<9} {len(nodes):2d} nodes, vs disabled {within}: " + " ".join(nodes))
    print("   Same labels at every level. Beyond basic the graph holds com.microsoft operators,")
    print("   beyond extended choices for this CPU: save it (offline optimization) for these only.")
    return graphs


# --- 3. Threads ----------------------------------------------------------------------------------


def print_threads(path: Path, batches: dict[int, np.ndarray], timing: dict) -> dict:
    """Step 3: time 1 intra-op thread against the default per batch; print, return the pairs."""
    sessions = {"one": load_session(path, threads=1), "default": load_session(path, threads=0)}
    cpus = f"{os.cpu_count()} logical CPUs"  # what os.cpu_count() counts (printed in timed lines)
    print("   batch   1 thread   default (0)   1 thread / default")
    results = {}
    for batch, x in batches.items():
        one, default = results[batch] = tuple(time_runs(sessions, x, timing[batch]).values())
        verdict = "no clear gain from sharing the work"  # words that follow the ratio beside them
        if one / default >= 1.25:
            verdict = "the default's threads shared the work"
        elif one / default <= 0.8:
            verdict = "slower: waking threads cost more than they saved"
        times = f"{microseconds(one):>10} {microseconds(default):>13}"
        print(f"   {batch:5d} {times} {one / default:13.2f}x  {verdict} ({cpus})")
    print("   threads=0 starts a thread per physical core (half the logical CPUs with SMT); a")
    print("   server running one session per core sets 1 thread instead.")
    return results


# --- 4. Profiling --------------------------------------------------------------------------------


def time_per_operator(events: list[dict], graph: onnx.ModelProto) -> dict[str, float]:
    """Sum the µs of kernel events per operator type, largest first; every node must have some."""
    # The other events are the profiler's bookkeeping (fences before and after a node, sessions).
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    traced = {event["name"].removesuffix("_kernel_time") for event in kernels}
    missing = [node.name for node in graph.graph.node if node.name not in traced]
    if missing:
        raise AssertionError(f"profile: {len(missing)} node(s) not in the trace: {missing[:5]}")
    totals: dict[str, float] = {}
    for event in kernels:
        totals[event["args"]["op_name"]] = totals.get(event["args"]["op_name"], 0) + event["dur"]
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def print_profile(path: Path, x: Any, timing: tuple, graph: onnx.ModelProto, folder: Path) -> None:
    """Step 4: profile the model, check the trace against the graph, print time per operator."""
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(folder / "profile")  # not the current directory
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    runs = timing[0] * timing[1]
    for _ in range(runs):
        run(session, x)
    # end_profiling writes the trace: Chrome's trace event format, a JSON list of timed events.
    totals = time_per_operator(json.loads(Path(session.end_profiling()).read_bytes()), graph)
    whole = sum(totals.values())
    print(f"   {runs} runs of batch {len(x)}, 1 thread; all {len(graph.graph.node)} nodes traced")
    for operator, total in totals.items():
        print(f"   {operator:<22} {total / runs:8.1f} µs per run  {100 * total / whole:5.1f}%")
    products = sum(total for operator, total in totals.items() if "Gemm" in operator)
    share = "most" if products > whole / 2 else "less than half"
    print(f"   The matrix products (Gemm) took {share} of the time: what quantization speeds up.")
    print("   The profiler slows every node: read the shares (step 5 times it unprofiled).")


# --- 5. Quantization -----------------------------------------------------------------------------


def preprocess(path: Path, folder: Path) -> Path:
    """Run ONNX Runtime's recommended quantization preprocessing; return the new file."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    # Symbolic shape inference (needs sympy; for transformers' shapes, not our batch dimension),
    # then the basic optimizations (MatMul + Add -> Gemm), then ONNX shape inference.
    quant_pre_process(str(path), str(folder / "preprocessed.onnx"), skip_symbolic_shape=True)
    return folder / "preprocessed.onnx"


def quantize_dynamic_int8(source: Path, target: Path) -> Path:
    """Quantize weights to int8 ahead of time, activations at run time; return target."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    return target


def calibration_rows(x_train: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Return count training rows, chosen with seed, to calibrate activation ranges."""
    rng = np.random.default_rng(seed)
    return x_train[rng.choice(len(x_train), size=min(count, len(x_train)), replace=False)]


def calibration_reader(rows: np.ndarray, batch: int = 64) -> Any:
    """Return a CalibrationDataReader that feeds the rows to the quantizer in batches."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):  # the library's interface: get_next() until None
        batches = iter([{"X": rows[i : i + batch]} for i in range(0, len(rows), batch)])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    return Reader()


def quantize_static_int8(source: Path, rows: np.ndarray, target: Path) -> Path:
    """Quantize weights and activations to int8 (QDQ), calibrated on rows; return target."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    # The calibration rows fix each activation's int8 range: they must look like real inputs.
    quantize_static(
        str(source),
        str(target),
        calibration_reader(rows),
        quant_format=QuantFormat.QDQ,  # QuantizeLinear/DequantizeLinear pairs around float ops
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        per_channel=False,  # True fails on Gemm with the pinned version (the docs' pitfall 2)
    )
    return target


def fidelity(session: Any, x: np.ndarray, y: np.ndarray, labels: Any, probabilities: Any) -> list:
    """Return accuracy, agreement with float32, the largest change, the number of decisive rows."""
    # A near tie may swap under int8 rounding, or on another processor's BLAS: measure the others.
    top_two = np.sort(probabilities, axis=1)[:, -2:]
    rows = top_two[:, 1] - top_two[:, 0] >= NEAR_TIE
    new_labels, new_probabilities = run(session, x)
    return [
        float(np.mean(new_labels[rows] == y[rows])),
        float(np.mean(new_labels[rows] == labels[rows])),
        float(np.max(np.abs(new_probabilities - probabilities))),
        int(np.sum(rows)),
    ]


def check_int8(name: str, accuracy: float, float_accuracy: float, agreement: float) -> None:
    """Raise AssertionError if an int8 model lost accuracy or disagrees with float32."""
    if float_accuracy - accuracy > MAX_ACCURACY_DROP or agreement < MIN_AGREEMENT:
        figures = f"accuracy {accuracy:.4f}, agreement {agreement:.4f} with float32's labels"
        limits = f"float32's {float_accuracy:.4f} - {MAX_ACCURACY_DROP:g}, {MIN_AGREEMENT:g}"
        raise AssertionError(f"{name}: {figures} (at least {limits})")


def publish_int8_models(preprocessed: Path, float_path: Path, data: Split, seed: int) -> dict:
    """Quantize dynamically and statically; publish each int8 file once it passes check_int8."""
    x_train, x_test, _, y_test = data
    reference = run(load_session(float_path), x_test)
    float_accuracy = fidelity(load_session(float_path), x_test, y_test, *reference)[0]
    rows = calibration_rows(x_train, CALIBRATION_ROWS, seed)
    paths = {"float32": float_path}
    for name, file_name in (("dynamic int8", DYNAMIC_FILE), ("static int8", STATIC_FILE)):
        paths[name] = float_path.with_name(file_name)
        with publish(paths[name]) as draft:  # the quantizer writes the draft, read back from disk
            if name == "dynamic int8":
                quantize_dynamic_int8(preprocessed, draft)
            else:
                quantize_static_int8(preprocessed, rows, draft)
            accuracy, agreement, *_ = fidelity(load_session(draft), x_test, y_test, *reference)
            check_int8(name, accuracy, float_accuracy, agreement)
    limits = f"accuracy >= float32's - {MAX_ACCURACY_DROP:g}, agreement >= {MIN_AGREEMENT:g}"
    print(f"   checked: both int8 models' {limits} (decisive rows)")
    print(f"   wrote {paths['dynamic int8']}, {paths['static int8']}")
    return paths


def compare_models(paths: dict, data: Split, batches: dict, timing: dict, folder: Path) -> dict:
    """Measure size, latency (1 thread), accuracy, fidelity of each model; show what runs."""
    _, x_test, _, y_test = data
    sessions = {name: load_session(path, threads=1) for name, path in paths.items()}
    reference = run(sessions["float32"], x_test)
    latency = {batch: time_runs(sessions, x, timing[batch]) for batch, x in batches.items()}
    print(f"   model           size   batch 1  batch {LARGE_BATCH}  accuracy  agreement  max diff")
    results = {}
    for name, session in sessions.items():
        accuracy, agreement, difference, count = fidelity(session, x_test, y_test, *reference)
        one, large, size = latency[1][name], latency[LARGE_BATCH][name], paths[name].stat().st_size
        results[name] = {"bytes": size, "batch 1": one, "batch large": large, "accuracy": accuracy}
        results[name] |= {"agreement": agreement, "difference": difference}
        times = f"{microseconds(one):>9} {microseconds(large):>11}"
        figures = f"{accuracy:9.4f} {agreement:10.2%} {difference:9.3f}"
        print(f"   {name:<12} {size / 1000:5.1f} KB {times} {figures}")
    print("   (median per call, 1 thread; agreement, max diff: against float32; accuracy and")
    ties = f"{len(x_test) - count} near tie(s), top two within {NEAR_TIE:g}"
    print(f"   agreement on the {count} decisive test rows: {ties}, are left out)")
    for name in ("dynamic int8", "static int8"):  # what ONNX Runtime runs (level all)
        stored = len(onnx.load(paths[name]).graph.node)
        executed = node_sequence(executed_graph(paths[name], LEVELS["all"], folder / "int8.onnx"))
        print(f"   {name}: {stored} nodes in the file, {len(executed)} run: " + " ".join(executed))
    print("   dynamic: DynamicQuantizeMatMul measures its float32 input's range on every call;")
    print("   static: QGemm, int8 in and out, ranges fixed at calibration; no Relu is left: an")
    print("   int8 range that starts at 0 clips like one.")
    return results


GOAL_SPEEDUP = 2.0  # --benchmark: static int8 against float32, batch LARGE_BATCH, one thread
GOAL_SHRINK = 3.5  # --benchmark: float32 file size / int8 file size


def print_goals(results: dict[str, dict[str, float]], timing: dict) -> None:
    """--benchmark: state whether the speed and size goals are reached on this machine."""
    calls = "/".join(str(turns * calls) for turns, calls in timing.values())
    print(f"\nBenchmark goals ({calls} interleaved repeats, 1 thread)")
    base, static = results["float32"], results["static int8"]
    speed = f"static int8 at least {GOAL_SPEEDUP:g}x faster than float32 at batch {LARGE_BATCH}"
    goals = {f"{speed}, 1 thread": (base["batch large"] / static["batch large"], GOAL_SPEEDUP)}
    for name in ("dynamic int8", "static int8"):
        shrink = base["bytes"] / results[name]["bytes"]
        goals[f"{name} file at least {GOAL_SHRINK:g}x smaller"] = (shrink, GOAL_SHRINK)
    for goal, (figure, target) in goals.items():
        print(f"   goal: {goal}: {figure:.2f}x, {'reached' if figure >= target else 'NOT reached'}")


def print_versions() -> None:
    """Print the versions this run used, so a pasted report can be reproduced."""
    import skl2onnx
    import sklearn

    python = f"Python {platform.python_version()}, numpy {np.__version__}, onnx {onnx.__version__}"
    libraries = f"onnxruntime {ort.__version__}, scikit-learn {sklearn.__version__}"
    print(f"Versions: {python}, {libraries}, skl2onnx {skl2onnx.__version__}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The lesson's own flag, --benchmark."""
    calls = ("/".join(str(t * c) for t, c in x.values()) for x in (BENCHMARK_TIMING, QUICK_TIMING))
    help = "time {} calls instead of {} (batch 1/{}) and report the speed and size goals"
    parser.add_argument("--benchmark", action="store_true", help=help.format(*calls, LARGE_BATCH))


def usage_problem(args: argparse.Namespace) -> str | None:
    """No combination of this lesson's flags is impossible."""
    return None


# ==== Command-line plumbing, not about ONNX: the same block in every lesson (test_plumbing.py) ====


class Failure(Exception):
    """An operation that failed: main() prints `error: ` and the message, and returns 1."""


def whole_number(text: str, low: int, high: int) -> int:
    """Parse a whole number from low to high written with the digits 0-9, for argparse."""
    shown = text if len(text) <= 24 else text[:24] + "..."
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"expected a whole number (digits 0-9), got {shown!r}")
    if len(text) > 24 or not low <= int(text) <= high:
        raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {shown}")
    return int(text)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """Parse the lesson's flags and the shared ones; a usage error or a failed --help: one line."""
    summary, style = (__doc__ or "").partition("\n")[0], argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(Path(__file__).name, None, summary, formatter_class=style)
    add_arguments(parser)
    parser.add_argument("--output-dir", default="models", help="folder for the files it writes")
    seed = functools.partial(whole_number, low=0, high=2**32 - 1)
    parser.add_argument("--seed", type=seed, default=0, help="random seed, 0 to 2**32 - 1")
    parser.print_help = lambda file=None: print(parser.format_help(), end="", flush=True)  # type: ignore[method-assign]
    parser.error = lambda message: parser.exit(2, f"{parser.prog}: error: {message} (see --help)\n")  # type: ignore[method-assign]
    args = parser.parse_args(argv)
    name = args.output_dir  # onnx and ONNX Runtime take file names in UTF-8 only
    if not name or name != name.encode("utf-8", "replace").decode("utf-8"):
        parser.error("argument --output-dir: expected a folder name in UTF-8 (. is this folder)")
    args.output_dir = Path(name)
    if problem := usage_problem(args):
        parser.error(problem)
    return args


def prepare_output_dir(folder: Path) -> None:
    """Create the output folder when missing and check, by trying, that files can be made there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # permission bits miss root and read-only mounts
            pass
    except OSError as error:
        known = {errno.EEXIST: "a file or a broken link has that name"}
        known[errno.ENOENT] = "it refuses new files"  # /proc and other virtual file systems
        reason = known.get(error.errno or 0, error.strerror)
        raise Failure(f"cannot create files in the output folder {folder} ({reason})") from None


@contextlib.contextmanager
def publish(path: Path) -> Iterator[Path]:
    """Yield a hidden draft path that becomes path only if the block (save, load, verify) works."""
    draft = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        yield draft
        with open(draft, "r+b") as stream:  # on the disk before its new name points at it
            os.fsync(stream.fileno())
        os.replace(draft, path)
    finally:
        with contextlib.suppress(OSError):
            draft.unlink(missing_ok=True)


def stop(signum: int, frame: object) -> None:
    """Turn Ctrl-C, SIGTERM or SIGHUP into one KeyboardInterrupt, so that every cleanup runs."""
    STOPPED.append(signum)
    if len(STOPPED) == 1:
        raise KeyboardInterrupt


def report(error: BaseException) -> int:
    """Print the one line a failure deserves and return its exit status."""
    stopped = bool(STOPPED) or isinstance(error, KeyboardInterrupt)  # or a library relabelled it
    if isinstance(error, BrokenPipeError) and not stopped:  # the reader left (`| true`): quietly
        return 141
    signum = (STOPPED or [signal.SIGINT])[0]
    if stopped:
        reason = "interrupted" if signum == signal.SIGINT else "terminated"
    elif isinstance(error, OSError) and error.strerror:
        reason = error.strerror + (f": {error.filename}" if error.filename else "")
    else:
        kinds: dict[type, str] = {Failure: "", AssertionError: "verification failed: "}
        kind = kinds.get(type(error), f"{type(error).__name__}: ")
        reason = (kind + " ".join(str(error).split())[:400]).rstrip(": ") or "failed"
    print(f"error: {reason}", file=sys.stderr)
    return 128 + signum if stopped else 1


def main(argv: list[str] | None = None) -> int:
    """Run the lesson as a command and return its exit status; restore what it changes."""
    STOPPED.clear()
    if sys.stdout is None:  # started with stdout closed (`>&-`): nowhere to print the report
        return report(Failure("standard output is closed"))
    main_thread = threading.current_thread() is threading.main_thread()  # signals work there
    signals = [getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)]
    handlers = {s: signal.signal(s, stop) for s in signals} if main_thread else {}
    errors = getattr(sys.stdout, "errors", None)
    if hasattr(sys.stdout, "reconfigure"):  # any terminal: what it cannot show becomes an escape
        sys.stdout.reconfigure(errors="backslashreplace")
    try:
        args = parse_arguments(argv)
        prepare_output_dir(args.output_dir)
        lesson(args)
        sys.stdout.flush()  # a closed pipe or a full disk surfaces here at the latest
        if STOPPED:  # a signal that a library caught and dropped still stops the run
            raise KeyboardInterrupt
        return 0
    except SystemExit as exit:  # --help (0) or a usage error (2), printed by argparse
        return int(exit.code or 0)
    except BaseException as error:
        for s in handlers:  # a second Ctrl-C while the first is reported changes nothing
            signal.signal(s, signal.SIG_IGN)
        return report(error)
    finally:
        try:
            sys.stdout.flush()
        except (OSError, ValueError):  # nowhere to print: leave Python's exit nothing to flush
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        if errors and hasattr(sys.stdout, "reconfigure"):
            sys.stdout.reconfigure(errors=errors)
        for s, handler in handlers.items():
            signal.signal(s, signal.SIG_DFL if handler is None else handler)


if __name__ == "__main__":
    sys.exit(main())
