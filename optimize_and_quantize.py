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

After "it converts and it runs" come the questions this lesson answers, each with a measurement:
why is the first call slow, what does the runtime do to my graph, where does the time go, and how
do I make the model smaller and faster without losing accuracy?

The model: scikit-learn's bundled digits (1,797 images of 8x8 pixels, values 0 to 16), a seeded
stratified split, and an MLPClassifier 64-256-256-10 converted with skl2onnx. The ONNX input is
X float32 [N, 64] of raw pixels; the scaling to 0..1 lives inside the model as one ``Mul`` node.
The outputs are ``label`` int64 [N] and ``probabilities`` float32 [N, 10] (ZipMap off).

0. Train, convert, save ``<output-dir>/digits_mlp.onnx``, load it back and verify it against
   ``predict``/``predict_proba`` and ``onnx.reference.ReferenceEvaluator``.
1. Session cost:  creating the session, the first run, and the median of later runs.
2. Graph optimizations: the graph ONNX Runtime executes at each level, saved with
   ``SessionOptions.optimized_model_filepath``; every level must give the same outputs.
3. Threads:       one intra-op thread against the default, at batch 1 and batch 1024.
4. Profiling:     ONNX Runtime's JSON trace, read with the standard library: time per operator.
5. Quantization:  preprocessing, then dynamic int8 and static int8 (QDQ, calibrated on training
   rows): size, latency, accuracy, agreement with float32. Then calibration on random noise.
   Writes ``digits_mlp_int8_dynamic.onnx`` and ``digits_mlp_int8_static.onnx``. An int8 model
   that loses more than 1 point of accuracy, or agrees on fewer than 99% of labels, exits with 1.

    python optimize_and_quantize.py                 # seconds; timings are rough (few repeats)
    python optimize_and_quantize.py --benchmark     # proper repeats, and the speed/size goals

Timings depend on the machine and on what else runs on it; every other figure (graphs, sizes,
accuracies, differences) is the same on every run with the same seed.
"""

from __future__ import annotations

import os
import signal
import sys

if __name__ == "__main__":
    # Ctrl-C while the libraries below are still importing: one line and status 130, as in main().
    def _interrupted_at_startup(signum: int, frame: object) -> None:
        sys.stderr.write("error: interrupted\n")
        os._exit(130)

    signal.signal(signal.SIGINT, _interrupted_at_startup)

import argparse
import collections
import errno
import json
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

# Opset 22 for the default domain and at most 3 for ai.onnx.ml, as in sklearn_converter.py
# (skl2onnx imports only the versions the graph needs); IR version 10. The pinned onnxruntime 1.32
# loads up to opset 28 and IR version 14.
TARGET_OPSET = {"": 22, "ai.onnx.ml": 3}
IR_VERSION = 10
SEED_MAX = 2**32 - 1  # NumPy and scikit-learn accept seeds from 0 to 2**32 - 1: one range for all
FLOAT_FILE = "digits_mlp.onnx"
DYNAMIC_FILE = "digits_mlp_int8_dynamic.onnx"
STATIC_FILE = "digits_mlp_int8_static.onnx"
HIDDEN_LAYERS = (256, 256)
MAX_ITERATIONS = 300  # adam converges on the digits in about 100 epochs
TEST_SIZE = 0.3
# Pixels are whole numbers 0 to 16. Multiplying by 1/16 (a power of two) is exact in float32, so
# the Mul node inside the model and scikit-learn's scaling produce identical numbers.
PIXEL_SCALE = np.float32(1 / 16)
# scikit-learn's MLP computes in float32 on float32 data, ONNX Runtime too, in another summation
# order (fused Gemm, blocked kernels): probabilities agree to about 1e-6. 1e-5 leaves room without
# hiding a wrong weight, which moves probabilities by far more.
RTOL = 1e-4
ATOL = 1e-5
LARGE_BATCH = 1024
CALIBRATION_ROWS = 256  # representative training rows for static quantization
# The checks on the int8 models (step 5), on the test split.
MAX_ACCURACY_DROP = 0.01  # 1 percentage point
MIN_AGREEMENT = 0.99  # share of int8 labels equal to the float32 labels
# The --benchmark goals (a report, not a test).
GOAL_SPEEDUP = 2.0  # static int8 against float32, batch 1024, one thread
GOAL_SHRINK = 3.5  # float32 file size / int8 file size
# Repeats per timing: (batch 1, batch 1024). The default run narrates rough figures quickly.
QUICK_REPEATS = (50, 10)
BENCHMARK_REPEATS = (2000, 200)
LEVELS = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "layout": ort.GraphOptimizationLevel.ORT_ENABLE_LAYOUT,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
QUIET = 3  # ONNX Runtime log severity: 0 verbose, 1 info, 2 warning (default), 3 error, 4 fatal


# --- 0. The model: train, convert, save, load, verify --------------------------------------------


def load_digits_split(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return a seeded, stratified float32 split of the digits: x_train, x_test, y_train, y_test."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    # Raw pixels 0 to 16 as float32, exactly what the ONNX model takes as X.
    x = x.astype(np.float32)
    return train_test_split(x, y, test_size=TEST_SIZE, random_state=seed, stratify=y)


def scale_pixels(x: np.ndarray) -> np.ndarray:
    """Map pixels 0..16 to 0..1, in float32 (the Mul node of the ONNX model does the same)."""
    return x * PIXEL_SCALE


def train_classifier(
    x_train: np.ndarray, y_train: np.ndarray, seed: int, hidden: tuple[int, ...]
) -> Any:  # a fitted scikit-learn Pipeline (scikit-learn ships no type information)
    """Fit scale_pixels -> MLPClassifier(hidden) on raw pixels; seed fixes the initial weights."""
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer
    from threadpoolctl import threadpool_limits

    classifier = make_pipeline(
        FunctionTransformer(scale_pixels),
        MLPClassifier(hidden_layer_sizes=hidden, max_iter=MAX_ITERATIONS, random_state=seed),
    )
    # One BLAS thread: on a busy machine, BLAS threads that wait for each other made the same fit
    # 20x slower (measured: 27 s instead of 1.8 s), and the order of a multi-threaded sum can
    # vary with the number of cores, which would change the trained weights from one machine to
    # the next.
    with warnings.catch_warnings(record=True) as caught, threadpool_limits(limits=1):
        warnings.simplefilter("always")
        classifier.fit(x_train, y_train)
    # MLPClassifier catches Ctrl-C during fit, warns and returns a half-trained model: stop instead.
    if any("Training interrupted by user" in str(w.message) for w in caught):
        raise KeyboardInterrupt
    return classifier


def convert(classifier: Any) -> onnx.ModelProto:
    """Convert the MLP with skl2onnx and put the pixel scaling in front as a standard Mul node."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    mlp = classifier.steps[-1][1]
    features = mlp.coefs_[0].shape[0]
    model = to_onnx(
        mlp,
        initial_types=[("X", FloatTensorType([None, features]))],
        target_opset=TARGET_OPSET,
        options={id(mlp): {"zipmap": False}},  # probabilities as a float matrix, not dicts
    )
    # skl2onnx cannot convert a FunctionTransformer (it holds arbitrary Python). The scaling is one
    # multiplication, so add it by hand: X -> Mul(X, 1/16) -> what the converted MLP read as X.
    # A standard Mul (not a StandardScaler, which converts to ai.onnx.ml Scaler) keeps every tensor
    # typed for ONNX shape inference, which the quantizer depends on (see the docs' pitfalls).
    for node in model.graph.node:
        node.input[:] = ["X_scaled" if name == "X" else name for name in node.input]
    model.graph.node.insert(
        0, helper.make_node("Mul", ["X", "pixel_scale"], ["X_scaled"], name="scale_pixels")
    )
    model.graph.initializer.append(numpy_helper.from_array(np.array(PIXEL_SCALE), "pixel_scale"))
    model.ir_version = IR_VERSION
    # One opset_import entry per domain (skl2onnx may list the default domain twice).
    versions: dict[str, int] = {}
    for opset in model.opset_import:
        versions[opset.domain] = max(versions.get(opset.domain, 0), opset.version)
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(d, v) for d, v in sorted(versions.items()))
    onnx.checker.check_model(model, full_check=True)
    return model


def write_atomically(data: bytes, path: Path) -> int:
    """Write bytes to path atomically (temporary file, fsync, os.replace); return the size."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        # Open the handle first: if anything below fails, the with block closes it, and the
        # cleanup can remove the file (Windows cannot remove a file that is still open).
        with os.fdopen(handle, "wb") as stream:
            os.chmod(temporary, 0o666 & ~umask)  # mkstemp's file is private; use the usual mode
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return len(data)


def load_session(
    source: Path | bytes,
    threads: int = 0,
    level: ort.GraphOptimizationLevel = ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
) -> ort.InferenceSession:
    """Open a model in ONNX Runtime on the CPU; threads 0 is ONNX Runtime's default."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = level
    model = str(source) if isinstance(source, Path) else source
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def run(session: ort.InferenceSession, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the labels and probabilities a session computes for a float32 batch."""
    labels, probabilities = session.run(["label", "probabilities"], {"X": x})
    return labels, probabilities


def sklearn_reference(classifier: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return scikit-learn's predict and predict_proba for raw pixels."""
    return classifier.predict(x), classifier.predict_proba(x)


def compare_outputs(
    name: str,
    labels: np.ndarray,
    probabilities: np.ndarray,
    expected_labels: np.ndarray,
    expected_probabilities: np.ndarray,
) -> tuple[float, int]:
    """Check probabilities within RTOL/ATOL and labels equal except on near-ties.

    Returns the largest probability difference and the number of near-tie label differences.
    """
    if probabilities.shape != expected_probabilities.shape:
        raise AssertionError(
            f"{name}: probabilities shape {probabilities.shape} != {expected_probabilities.shape}"
        )
    difference = float(np.max(np.abs(probabilities.astype(np.float64) - expected_probabilities)))
    try:
        np.testing.assert_allclose(probabilities, expected_probabilities, rtol=RTOL, atol=ATOL)
    except AssertionError:
        raise AssertionError(
            f"{name}: probabilities differ by up to {difference:.3g} "
            f"(tolerance rtol={RTOL:g}, atol={ATOL:g})"
        ) from None
    # Two classes whose probabilities agree within the tolerance may swap places in either
    # implementation: such a near-tie is not an error. Any other differing label is.
    differing = np.flatnonzero(labels != expected_labels)
    top_two = np.sort(expected_probabilities[differing], axis=1)[:, -2:]
    near_ties = int(np.sum(top_two[:, 1] - top_two[:, 0] <= 2 * ATOL))
    if near_ties < len(differing):
        raise AssertionError(
            f"{name}: {len(differing) - near_ties} of {len(labels)} labels differ where the top "
            f"two probabilities are not tied (largest probability difference {difference:.3g})"
        )
    return difference, near_ties


def verify_float_model(
    classifier: Any, model: onnx.ModelProto, session: ort.InferenceSession, x_test: np.ndarray
) -> None:
    """Verify ONNX Runtime against scikit-learn and the reference evaluator; print the result."""
    labels, probabilities = run(session, x_test)
    sklearn_difference, ties = compare_outputs(
        "ONNX Runtime vs scikit-learn",
        labels,
        probabilities,
        *sklearn_reference(classifier, x_test),
    )
    reference_labels, reference_probabilities = ReferenceEvaluator(model).run(
        ["label", "probabilities"], {"X": x_test}
    )
    evaluator_difference, _ = compare_outputs(
        "ONNX Runtime vs reference evaluator",
        labels,
        probabilities,
        np.asarray(reference_labels),
        np.asarray(reference_probabilities, dtype=np.float64),
    )
    tie_note = f" except {ties} near-tie(s)" if ties else ""
    print(
        f"   verified on the {len(x_test)} test rows: labels equal predict{tie_note}; largest "
        f"probability difference vs predict_proba {sklearn_difference:.2g}, vs the reference "
        f"evaluator {evaluator_difference:.2g} (rtol={RTOL:g}, atol={ATOL:g})"
    )


# --- Timing --------------------------------------------------------------------------------------


def interleaved_medians(
    calls: dict[str, Callable[[], object]], repeats: int, warmup: int = 3
) -> dict[str, float]:
    """Time each call repeats times, taking turns, and return the median seconds of each.

    Taking turns means a noisy moment on a shared machine hits every contender, not just one.
    """
    for call in calls.values():
        for _ in range(warmup):
            call()
    timings: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            timings[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in timings.items()}


def microseconds(seconds: float) -> str:
    """Format a duration for the report."""
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.0f} µs"


# --- 1. Session cost -----------------------------------------------------------------------------


def session_cost(path: Path, x_one: np.ndarray, repeats: int) -> tuple[float, float, float]:
    """Return seconds to create a session, to run it once, and the median of later runs."""
    start = time.perf_counter()
    session = load_session(path)
    created = time.perf_counter() - start
    start = time.perf_counter()
    run(session, x_one)
    first = time.perf_counter() - start
    later = interleaved_medians({"later": lambda: run(session, x_one)}, repeats, warmup=0)
    return created, first, later["later"]


def print_session_cost(path: Path, x_one: np.ndarray, repeats: int) -> None:
    """Step 1: measure and explain what creating a session and the first run pay for."""
    created, first, later = session_cost(path, x_one, repeats)
    print(f"   create the session:        {microseconds(created):>9}")
    print(f"   first run, 1 row:          {microseconds(first):>9}")
    print(f"   later runs, 1 row, median: {microseconds(later):>9}  ({repeats} runs)")
    print(
        "   Creating the session parses the protobuf, optimizes the graph (step 2), picks a\n"
        "   kernel per node and pre-packs the weights for it. The first run then allocates the\n"
        "   memory arena and plans buffers for this input shape, and touches cold code and\n"
        "   caches. So: create a session once, reuse it, and warm it up before serving."
    )


# --- 2. Graph optimizations ----------------------------------------------------------------------


def executed_graph(path: Path, level: ort.GraphOptimizationLevel, target: Path) -> onnx.ModelProto:
    """Let ONNX Runtime save the graph it executes at this level to target; return it."""
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.optimized_model_filepath = str(target)
    # Saving a graph optimized beyond "extended" makes ONNX Runtime log a warning (that the file
    # may hold hardware-specific optimizations) on stderr. The report says it in words, the docs
    # quote it; a clean run keeps stderr empty.
    options.log_severity_level = QUIET
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return onnx.load(target)


def optimized_graphs(path: Path, folder: Path) -> dict[str, onnx.ModelProto]:
    """Return the graph ONNX Runtime executes at each optimization level, by level name."""
    return {
        name: executed_graph(path, level, folder / f"optimized_{name}.onnx")
        for name, level in LEVELS.items()
    }


def node_sequence(model: onnx.ModelProto) -> list[str]:
    """Return the operator of each node, prefixed with its domain when it is not ai.onnx."""
    return [f"{n.domain}:{n.op_type}" if n.domain else n.op_type for n in model.graph.node]


def check_levels_agree(path: Path, x: np.ndarray) -> dict[str, float]:
    """Run the model at every level; check each against "disabled"; return the differences."""
    reference_labels, reference_probabilities = run(load_session(path, level=LEVELS["disabled"]), x)
    differences = {}
    for name, level in LEVELS.items():
        labels, probabilities = run(load_session(path, level=level), x)
        differences[name], _ = compare_outputs(
            f"level {name} vs disabled",
            labels,
            probabilities,
            reference_labels,
            reference_probabilities.astype(np.float64),
        )
    return differences


def print_optimizations(path: Path, x_test: np.ndarray, folder: Path) -> dict[str, onnx.ModelProto]:
    """Step 2: print the executed graph per level and check that all levels agree."""
    graphs = optimized_graphs(path, folder)
    differences = check_levels_agree(path, x_test)
    for name, graph in graphs.items():
        nodes = node_sequence(graph)
        print(f"   {name:<9} {len(nodes):2d} nodes: " + " ".join(nodes))
        print(f"             largest probability difference vs disabled: {differences[name]:.2g}")
    print(
        f"   Every level must give the same labels, and probabilities within atol={ATOL:g}: a\n"
        "   fusion may add float32 numbers in another order, nothing else.\n"
        "   basic:    constant folding, redundant nodes removed (the float-to-float Cast),\n"
        "             MatMul + Add -> Gemm: standard ONNX operators only.\n"
        "   extended: Gemm + Relu -> com.microsoft:FusedGemm, an ONNX Runtime operator.\n"
        "   layout, all: layout changes for convolutions (NCHWc); nothing to do here.\n"
        "   ONNX Runtime does this online, at every session creation. Saving the result\n"
        "   (offline optimization) skips that work later, but the file then holds com.microsoft\n"
        "   operators and, beyond extended, may hold choices for this CPU: ONNX Runtime logs a\n"
        "   warning when it saves one (quieted here, quoted in the docs). Such a file runs only\n"
        "   in ONNX Runtime; regenerate it for each runtime version and machine."
    )
    return graphs


# --- 3. Threads ----------------------------------------------------------------------------------


def thread_timings(
    path: Path, batches: dict[int, np.ndarray], repeats: dict[int, int]
) -> dict[int, tuple[float, float]]:
    """Return, per batch size, the median seconds with 1 intra-op thread and with the default."""
    one = load_session(path, threads=1)
    default = load_session(path, threads=0)
    results = {}
    for batch, x in batches.items():
        medians = interleaved_medians(
            {"one": partial(run, one, x), "default": partial(run, default, x)},
            repeats[batch],
        )
        results[batch] = (medians["one"], medians["default"])
    return results


def print_threads(path: Path, batches: dict[int, np.ndarray], repeats: dict[int, int]) -> None:
    """Step 3: one intra-op thread against the default, at batch 1 and a large batch."""
    print(f"   batch   1 thread   default ({os.cpu_count()} logical CPUs)   1 thread / default")
    for batch, (one, default) in thread_timings(path, batches, repeats).items():
        print(
            f"   {batch:5d} {microseconds(one):>10} {microseconds(default):>13}"
            f"                {one / default:5.2f}x"
        )
    print(
        "   The default is one thread per physical core. One row is too little work to share:\n"
        "   waking a second thread costs about what it saves. A batch of 1024 splits the\n"
        "   matrix products between the threads, so on two free cores the default approaches 2x.\n"
        "   On a shared machine the second core is often busy, and the gain shrinks or vanishes;\n"
        "   for a server running one session per core, intra_op_num_threads=1 is the usual choice."
    )


# --- 4. Profiling --------------------------------------------------------------------------------


def profile(path: Path, x: np.ndarray, runs: int, folder: Path) -> list[dict]:
    """Run the model with ONNX Runtime's profiler on and return the events of its JSON trace."""
    options = ort.SessionOptions()
    options.enable_profiling = True
    options.profile_file_prefix = str(folder / "profile")  # not the current directory
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        run(session, x)
    trace = Path(session.end_profiling())
    # The trace is Chrome's trace event format: a JSON list of events with a duration in µs.
    return json.loads(trace.read_text(encoding="utf-8"))


def time_per_operator(events: list[dict]) -> dict[str, float]:
    """Sum the microseconds of the kernel events per operator type, largest first."""
    totals: collections.Counter[str] = collections.Counter()
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            totals[event["args"]["op_name"]] += event["dur"]
    return dict(totals.most_common())


def check_trace_covers_graph(events: list[dict], graph: onnx.ModelProto) -> int:
    """Check that every node of the optimized graph has kernel events; return the node count."""
    traced = {
        event["name"].removesuffix("_kernel_time")
        for event in events
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time")
    }
    missing = [node.name for node in graph.graph.node if node.name not in traced]
    if missing:
        raise AssertionError(f"profile: {len(missing)} node(s) not in the trace: {missing[:5]}")
    return len(graph.graph.node)


def print_profile(
    path: Path, x: np.ndarray, runs: int, graph: onnx.ModelProto, folder: Path
) -> None:
    """Step 4: profile the model and print the time per operator type."""
    events = profile(path, x, runs, folder)
    nodes = check_trace_covers_graph(events, graph)
    totals = time_per_operator(events)
    whole = sum(totals.values())
    print(
        f"   {runs} runs of a batch of {len(x)}, 1 thread; all {nodes} nodes of the optimized "
        "graph are in the trace"
    )
    for operator, total in totals.items():
        print(f"   {operator:<22} {total / runs:8.1f} µs per run  {100 * total / whole:5.1f}%")
    print(
        "   The matrix products (FusedGemm, Gemm) take nearly all of the time: they are what\n"
        "   quantization speeds up. The profiler's own bookkeeping slows every node down, so\n"
        "   read the shares, not the absolute times (step 5 times the model unprofiled)."
    )


# --- 5. Quantization -----------------------------------------------------------------------------


def calibration_reader(rows: np.ndarray, batch: int = 64) -> Any:
    """Return a CalibrationDataReader that feeds the rows to the quantizer in batches."""
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):  # the library's interface: get_next until None
        def __init__(self) -> None:
            self.batches = iter([{"X": rows[i : i + batch]} for i in range(0, len(rows), batch)])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    return Reader()


def preprocess(path: Path, folder: Path) -> Path:
    """Run ONNX Runtime's recommended quantization preprocessing; return the new file."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    target = folder / "preprocessed.onnx"
    # Preprocessing = symbolic shape inference (for dynamic shapes in transformers; it needs sympy),
    # then ONNX Runtime's basic optimizations (MatMul + Add -> Gemm), then ONNX shape inference.
    # Our shapes are static apart from the batch, which ONNX shape inference handles: skipping the
    # symbolic pass loses nothing here and needs no new dependency.
    quant_pre_process(str(path), str(target), skip_symbolic_shape=True)
    return target


def quantize_dynamic_int8(source: Path, folder: Path) -> Path:
    """Quantize weights to int8 ahead of time, activations at run time; return the file."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = folder / "dynamic.onnx"
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8)
    return target


def quantize_static_int8(source: Path, rows: np.ndarray, folder: Path, name: str) -> Path:
    """Quantize weights and activations to int8 (QDQ), calibrated on rows; return the file."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    target = folder / f"{name}.onnx"
    quantize_static(
        str(source),
        str(target),
        calibration_reader(rows),
        quant_format=QuantFormat.QDQ,  # QuantizeLinear/DequantizeLinear pairs around float ops
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        # per_channel=True fails on Gemm with the pinned version (see the docs' pitfalls).
        per_channel=False,
    )
    return target


def calibration_rows(x_train: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Return count training rows, chosen with seed, to calibrate activation ranges."""
    rng = np.random.default_rng(seed)
    return x_train[rng.choice(len(x_train), size=min(count, len(x_train)), replace=False)]


def noise_rows(count: int, seed: int) -> dict[str, np.ndarray]:
    """Return two kinds of random noise shaped like the inputs, for the calibration pitfall."""
    rng = np.random.default_rng(seed)
    return {
        # The reflex placeholder, np.random.rand: values 0 to 1, while pixels go up to 16.
        "noise in [0, 1)": rng.random((count, 64), dtype=np.float32),
        "noise in [0, 16]": rng.uniform(0.0, 16.0, (count, 64)).astype(np.float32),
    }


def fidelity(
    session: ort.InferenceSession,
    x_test: np.ndarray,
    y_test: np.ndarray,
    float_labels: np.ndarray,
    float_probabilities: np.ndarray,
) -> tuple[float, float, float]:
    """Return accuracy, label agreement with float32, and the largest probability difference."""
    labels, probabilities = run(session, x_test)
    return (
        float(np.mean(labels == y_test)),
        float(np.mean(labels == float_labels)),
        float(np.max(np.abs(probabilities - float_probabilities))),
    )


def check_int8(name: str, accuracy: float, float_accuracy: float, agreement: float) -> None:
    """Raise AssertionError if an int8 model lost accuracy or disagrees with float32."""
    if float_accuracy - accuracy > MAX_ACCURACY_DROP:
        raise AssertionError(
            f"{name}: held-out accuracy {accuracy:.4f} is more than "
            f"{100 * MAX_ACCURACY_DROP:g} point(s) below float32's {float_accuracy:.4f}"
        )
    if agreement < MIN_AGREEMENT:
        raise AssertionError(
            f"{name}: labels agree with float32 on {100 * agreement:.2f}% of the test rows, "
            f"fewer than {100 * MIN_AGREEMENT:g}%"
        )


def quantize_models(
    preprocessed: Path, x_train: np.ndarray, seed: int, folder: Path
) -> dict[str, Path]:
    """Quantize a preprocessed model dynamically and statically; return the int8 files."""
    return {
        "dynamic int8": quantize_dynamic_int8(preprocessed, folder),
        "static int8": quantize_static_int8(
            preprocessed, calibration_rows(x_train, CALIBRATION_ROWS, seed), folder, "static"
        ),
    }


def compare_models(
    paths: dict[str, Path],
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    repeats: tuple[int, int],
    seed: int,
) -> dict[str, dict[str, float]]:
    """Measure size, latency (1 thread), accuracy and fidelity of each model against float32."""
    _, x_test, _, y_test = data
    sessions = {name: load_session(path, threads=1) for name, path in paths.items()}
    float_labels, float_probabilities = run(sessions["float32"], x_test)
    rng = np.random.default_rng(seed)
    one, large = x_test[:1], x_test[rng.integers(len(x_test), size=LARGE_BATCH)]
    latency_one = interleaved_medians(
        {name: partial(run, s, one) for name, s in sessions.items()}, repeats[0]
    )
    latency_large = interleaved_medians(
        {name: partial(run, s, large) for name, s in sessions.items()}, repeats[1]
    )
    results = {}
    for name, session in sessions.items():
        accuracy, agreement, difference = fidelity(
            session, x_test, y_test, float_labels, float_probabilities
        )
        results[name] = {
            "bytes": paths[name].stat().st_size,
            "batch 1": latency_one[name],
            "batch large": latency_large[name],
            "accuracy": accuracy,
            "agreement": agreement,
            "difference": difference,
        }
    return results


def print_quantization(results: dict[str, dict[str, float]], test_rows: int) -> None:
    """Print the comparison table of the float32 and int8 models."""
    print(
        f"   model          size        batch 1   batch {LARGE_BATCH}   accuracy   agreement"
        "   max prob diff"
    )
    for name, r in results.items():
        print(
            f"   {name:<13} {r['bytes'] / 1000:6.1f} KB {microseconds(r['batch 1']):>10}"
            f" {microseconds(r['batch large']):>10}   {r['accuracy']:8.4f}   "
            f"{100 * r['agreement']:8.2f}%   {r['difference']:13.4f}"
        )
    print(
        f"   (latency: median per call, 1 thread; accuracy on the {test_rows} test rows;\n"
        "   agreement and difference against the float32 model's labels and probabilities)"
    )


def print_executed_int8(paths: dict[str, Path], folder: Path) -> None:
    """Print the graph ONNX Runtime runs (level all) for each int8 file, and what it means."""
    print("   What ONNX Runtime runs (level all) for each int8 file:")
    for index, name in enumerate(("dynamic int8", "static int8")):
        stored = len(onnx.load(paths[name]).graph.node)
        target = folder / f"executed{index}.onnx"
        executed = node_sequence(executed_graph(paths[name], LEVELS["all"], target))
        print(f"   {name}: {stored} nodes in the file, {len(executed)} run: " + " ".join(executed))
    print(
        "   dynamic: each quantized product becomes com.microsoft:DynamicQuantizeMatMul, which\n"
        "   measures its float32 input's range on every call; activations stay float32.\n"
        "   static: each QuantizeLinear/DequantizeLinear sandwich around a Gemm becomes\n"
        "   com.microsoft:QGemm, int8 in and int8 out, with ranges fixed at calibration; the\n"
        "   quantizer dropped the Relus, because an int8 range that starts at 0 clips like one."
    )


def print_noise_calibration(
    preprocessed: Path,
    float_path: Path,
    data: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    seed: int,
    folder: Path,
) -> None:
    """Quantize statically on training rows and on two kinds of noise; print the fidelity."""
    x_train, x_test, _, y_test = data
    print("\n   Calibrating the static model on random noise instead of training rows:")
    float_labels, float_probabilities = run(load_session(float_path, threads=1), x_test)
    calibrations = {"training rows": calibration_rows(x_train, CALIBRATION_ROWS, seed)}
    calibrations |= noise_rows(CALIBRATION_ROWS, seed)
    for index, (name, rows) in enumerate(calibrations.items()):
        path = quantize_static_int8(preprocessed, rows, folder, f"calibration{index}")
        accuracy, agreement, difference = fidelity(
            load_session(path, threads=1), x_test, y_test, float_labels, float_probabilities
        )
        print(
            f"   {name:<17} accuracy {accuracy:.4f}, agreement {100 * agreement:6.2f}%, "
            f"largest probability difference {difference:.4f}"
        )
    print(
        "   Static quantization fixes each activation's int8 range from the calibration data.\n"
        "   Noise in [0, 1) never shows pixels above 1: every real pixel above 1 saturates.\n"
        "   Noise over the right range happens to cover this small network's activations; a\n"
        "   representative sample of real inputs is the only choice that is right by design."
    )


def print_goals(results: dict[str, dict[str, float]]) -> None:
    """--benchmark: state whether the speed and size goals are reached on this machine."""
    base = results["float32"]
    speedup = base["batch large"] / results["static int8"]["batch large"]
    verdict = "reached" if speedup >= GOAL_SPEEDUP else "NOT reached"
    print(
        f"   goal: static int8 at least {GOAL_SPEEDUP:g}x faster than float32 at batch "
        f"{LARGE_BATCH}, 1 thread: {speedup:.2f}x, {verdict}"
    )
    for name in ("dynamic int8", "static int8"):
        shrink = base["bytes"] / results[name]["bytes"]
        verdict = "reached" if shrink >= GOAL_SHRINK else "NOT reached"
        print(f"   goal: {name} file at least {GOAL_SHRINK:g}x smaller: {shrink:.2f}x, {verdict}")


# --- Command line --------------------------------------------------------------------------------


def seed_int(text: str) -> int:
    """Parse a seed from 0 to SEED_MAX, for argparse."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be from 0 to 2**32 - 1 ({SEED_MAX}), got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line; exit 2 with one message on a usage error."""
    parser = argparse.ArgumentParser(
        prog=Path(__file__).name,
        description="Convert a digits MLP to ONNX, then measure what ONNX Runtime does with it: "
        "session cost, graph optimizations, threads, profiling, and int8 quantization.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--benchmark",
        action="store_true",
        help=f"time with {BENCHMARK_REPEATS[0]}/{BENCHMARK_REPEATS[1]} repeats instead of "
        f"{QUICK_REPEATS[0]}/{QUICK_REPEATS[1]} and report the speed and size goals",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path("models"),
        help="folder for the .onnx files, created when missing",
    )
    parser.add_argument("--seed", type=seed_int, default=0, help="random seed, 0 to 2**32 - 1")

    # One line that names the problem instead of the whole usage; the exit status stays 2.
    def usage_error(message: str) -> NoReturn:
        parser.exit(2, f"{parser.prog}: error: {message} (see --help)\n")

    parser.error = usage_error  # type: ignore[method-assign]
    return parser.parse_args(argv)


def prepare_output_dir(folder: Path) -> None:
    """Create the output folder when missing and make sure a file can be written there."""
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "the output folder is not a folder", str(folder))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Permission bits do not tell the whole story (root, read-only mounts, /proc): try it.
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as error:
        raise OSError(
            error.errno, f"the output folder is not writable ({error.strerror})", str(folder)
        ) from None


def print_versions() -> None:
    """Print the versions this run used, so a pasted report can be reproduced."""
    import skl2onnx
    import sklearn

    print(
        f"Versions: Python {platform.python_version()}, numpy {np.__version__}, "
        f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, "
        f"scikit-learn {sklearn.__version__}, skl2onnx {skl2onnx.__version__}"
    )


def lesson(args: argparse.Namespace, work: Path) -> None:
    """Run the lesson's steps; work is a temporary folder for the files ONNX Runtime writes."""
    repeats = BENCHMARK_REPEATS if args.benchmark else QUICK_REPEATS
    rough = "" if args.benchmark else " (rough: few repeats; --benchmark for steadier figures)"
    hidden = HIDDEN_LAYERS
    float_path = args.output_dir / FLOAT_FILE

    data = load_digits_split(args.seed)
    x_train, x_test, y_train, _ = data
    widths = "-".join(map(str, (x_train.shape[1], *hidden, 10)))
    print(
        f"Digits: {len(x_train)} training and {len(x_test)} test rows (stratified, seed "
        f"{args.seed}), 64 float32 pixels 0..16, 10 classes"
    )
    print(f"\n0. Train an MLPClassifier {widths}, convert it, save it, load it back and verify")
    classifier = train_classifier(x_train, y_train, args.seed, hidden)
    epochs = classifier.steps[-1][1].n_iter_
    limit = " (the limit: not converged, verified all the same)" if epochs == MAX_ITERATIONS else ""
    print(f"   trained in {epochs} epochs{limit}")
    model = convert(classifier)
    print("   converted with skl2onnx, pixel scaling as Mul: " + " ".join(node_sequence(model)))
    size = write_atomically(model.SerializeToString(), float_path)
    print(f"   wrote {float_path} ({size} bytes)")
    session = load_session(float_path)
    verify_float_model(classifier, onnx.load(float_path), session, x_test)

    print(f"\n1. Session cost{rough}")
    print_session_cost(float_path, x_test[:1], repeats[0])

    print("\n2. Graph optimizations: the graph ONNX Runtime executes at each level")
    graphs = print_optimizations(float_path, x_test, work)

    print(f"\n3. Threads: median time per call{rough}")
    rng = np.random.default_rng(args.seed)
    batches = {1: x_test[:1], LARGE_BATCH: x_test[rng.integers(len(x_test), size=LARGE_BATCH)]}
    print_threads(float_path, batches, {1: repeats[0], LARGE_BATCH: repeats[1]})

    print(f"\n4. Profiling: time per operator type{rough}")
    print_profile(float_path, batches[LARGE_BATCH], repeats[1], graphs["all"], work)

    print(
        "\n5. Quantization: preprocess (shape inference and basic optimizations), then int8\n"
        f"   dynamic: weights int8 in the file, activations quantized at run time\n"
        f"   static:  QDQ format, activation ranges calibrated on {CALIBRATION_ROWS} training rows"
    )
    preprocessed = preprocess(float_path, work)
    quantized = quantize_models(preprocessed, x_train, args.seed, work)
    paths = {"float32": float_path}
    for name, file_name in (("dynamic int8", DYNAMIC_FILE), ("static int8", STATIC_FILE)):
        paths[name] = args.output_dir / file_name
        write_atomically(quantized[name].read_bytes(), paths[name])
    results = compare_models(paths, data, repeats, args.seed)
    print_quantization(results, len(x_test))
    for name in ("dynamic int8", "static int8"):
        check_int8(
            name,
            results[name]["accuracy"],
            results["float32"]["accuracy"],
            results[name]["agreement"],
        )
    print(
        f"   checked: both int8 models within {100 * MAX_ACCURACY_DROP:g} point of float32's "
        f"accuracy and agreeing on at least {100 * MIN_AGREEMENT:g}% of the labels"
    )
    print("   wrote " + ", ".join(str(paths[name]) for name in ("dynamic int8", "static int8")))
    print_executed_int8(paths, work)
    print_noise_calibration(preprocessed, float_path, data, args.seed, work)

    if args.benchmark:
        print(f"\nBenchmark goals ({repeats[0]}/{repeats[1]} interleaved repeats, 1 thread)")
        print_goals(results)

    print(f"\nVerified: {float_path} and its int8 versions in {args.output_dir}")


def main(argv: list[str] | None = None) -> int:
    """Run the lesson: train and verify, then measure session cost, optimizations, threads,
    profiling and quantization."""
    args = parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        # Any terminal encoding: a character it cannot show becomes an escape, not an error.
        sys.stdout.reconfigure(errors="backslashreplace")
    # From here on Ctrl-C raises KeyboardInterrupt, which the handler below turns into status 130.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        prepare_output_dir(args.output_dir)
        # ONNX Runtime and its quantizer write files of their own (optimized graphs, profiles,
        # intermediate models): they go to a temporary folder, removed whatever happens, and only
        # the final bytes are copied atomically into the output folder.
        with tempfile.TemporaryDirectory(prefix="optimize_and_quantize.") as work:
            lesson(args, Path(work))
        print_versions()
        sys.stdout.flush()  # a closed pipe surfaces here at the latest, inside the handlers
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader closed the pipe (`| head`): stop quietly like other command-line tools, and
        # point stdout at devnull so Python's own flush at exit has nothing to complain about.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except AssertionError as error:
        print(f"error: verification failed: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        where = f": {error.filename}" if error.filename else ""
        print(f"error: {error.strerror or error}{where}", file=sys.stderr)
        return 1
    except Exception as error:  # one line instead of a traceback, as the contract promises
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(f"error: {type(error).__name__}{': ' if message else ''}{message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
