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
#     "threadpoolctl==3.8.0",
#     "typing_extensions==4.16.0",
# ]
# ///
"""A new ONNX operator in a domain of its own, and an MLP of any depth built from it.

An ONNX *function* (``FunctionProto``) gives a new operator a meaning every runtime understands: its
body is a graph of standard operators, stored in the model (``ModelProto.functions``) beside an
``opset_import`` of its domain; ONNX Runtime and onnx's reference evaluator run that body, with no
extension library and no compiled kernel. The domain ``com.example.mlp`` has, one call per layer:

    Dense(X, W, B)     = X·W + B               the output layer: logits must be able to go negative
    DenseRelu(X, W, B) = Relu(Dense(X, W, B))  a hidden layer; its body calls Dense
    X [N, W0] -> DenseRelu -> ... -> Dense -> logits -> Softmax -> probabilities, ArgMax -> label

Steps, each printed: 1. build (He-initialised weights, or ``--train``: an MLPClassifier exported
by hand), 2. save a draft, 3. check, 4. load it in ONNX Runtime, 5. verify against NumPy (or
scikit-learn) and the reference evaluator, 6. inline the functions and compare, 7. publish the
verified draft as ``<output-dir>/neural_network.onnx`` (a mismatch: exit 1, nothing published).

    python neural_network.py [--layers 4,16,16,3] [--train] [--benchmark]
    python large_models.py                # the next lesson: models past protobuf's 2 GB
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
import itertools
import platform
import secrets
import statistics
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.inliner
import onnx.parser
import onnx.printer
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

OPSET = 22  # as in linear_regression.py; model-local functions need IR version 8 or later
IR_VERSION = 10
DOMAIN = "com.example.mlp"  # reverse DNS under example.com: never a standard domain's name
DOMAIN_VERSION = 1
MODEL_FILE = "neural_network.onnx"
DEFAULT_LAYERS = "4,16,16,3"
WIDTH_MAX = 2**20  # the widest layer --layers takes; usage_problem() judges the whole network
NEW_ROWS = 64  # the "many rows" batch used for verification
TRAIN_SAMPLES, TEST_ROWS = 600, 150  # --train's synthetic rows, and the stratified test split
RTOL, ATOL = 1e-4, 1e-5  # float32 layers and a softmax against a float64 reference: about 1e-6
# One .onnx file is one protobuf message, which cannot reach 2 GiB; the graph takes a few KB.
PROTOBUF_LIMIT, GRAPH_BYTES_ALLOWANCE = onnx.checker.MAXIMUM_PROTOBUF, 2**20
BENCHMARK_BATCHES, BENCHMARK_THREADS = (1, 8192), 1  # one intra-op thread, for steady figures

Arrays = list[np.ndarray]
# A reference is a name and a function from a float32 batch to (probabilities, labels). A build
# step returns weights, biases, rows to verify on, their true labels (if known) and a reference.
Reference = tuple[str, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]]
Network = tuple[Arrays, Arrays, np.ndarray, np.ndarray | None, Reference]


def lesson(args: argparse.Namespace) -> None:
    """The lesson: build, save a draft, check, load, verify, inline, publish (and benchmark)."""
    widths, path = args.layers, args.output_dir / MODEL_FILE
    source = "a trained scikit-learn MLPClassifier" if args.train else "He-initialised weights"
    dense = f"{len(widths) - 1} dense layer{'s' if len(widths) > 2 else ''}"
    print(f"MLP with layers {','.join(map(str, widths))} ({dense}) from {source}, seed {args.seed}")
    print(f"\n1. Build: operators Dense and DenseRelu in domain {DOMAIN!r}, one call per layer")
    network = (trained_network if args.train else random_network)(widths, args.seed)  # + reference
    weights, biases, *_ = network
    # The printer spells out every weight: print the model built without them, as {...}.
    text = onnx.printer.to_text(build_model(weights, biases, with_data=False))
    for line in text.replace(" =  {}", " = {...}").replace("{...}, ", "{...},\n    ").splitlines():
        print("   " + line.rstrip())
    model = build_model(weights, biases)
    with publish(path) as draft:  # path changes only if everything in this block succeeds
        print(f"\n2. Save a draft beside {path} with onnx.save_model")
        onnx.save_model(model, draft)
        print(f"   {draft.stat().st_size} bytes, under a hidden temporary name")
        print("\n3. Check the draft with onnx.checker (full_check=True), by path")
        onnx.checker.check_model(draft, full_check=True)
        print("   valid; the checker does not run the operators, so the numbers below are the test")
        print("\n4. Load the draft back from disk into ONNX Runtime (CPUExecutionProvider)")
        session = load_session(draft)
        for value in session.get_inputs() + session.get_outputs():
            print(f"   {value.name}: {value.type} {value.shape}")
        probabilities = verify(session, draft, network)
        inlined = inline(model, network[2], probabilities)
    print(f"\n7. Publish: the verified draft is now {path} ({path.stat().st_size} bytes)")
    if args.benchmark:
        benchmark(path, inlined, network, args.seed)
    print(f"\nVerified: {path} agrees with {network[4][0]} and the reference evaluator.")
    versions = f"Python {platform.python_version()}, numpy {np.__version__}, onnx "
    versions += f"{onnx.__version__}, onnxruntime {ort.__version__}"
    if sklearn := sys.modules.get("sklearn") if args.train else None:  # imported by --train only
        versions += f", scikit-learn {sklearn.__version__}"
    print(f"Versions: {versions}")


# --- 1. Build: the operators, in ONNX's text form. Why two, not one with an "activation" attribute?
# A body is a fixed graph: choosing Relu or nothing would need control flow (If). A number instead
# (LeakyRelu, alpha=@alpha) runs in ONNX Runtime; the pinned reference evaluator fails on it.

DENSE = f"""<domain: "{DOMAIN}", opset_import: ["" : {OPSET}]>
Dense (X, W, B) => (Y) {{
    XW = MatMul(X, W)
    Y = Add(XW, B)
}}"""
# DenseRelu's body calls Dense, so it imports both domains.
DENSE_RELU = f"""<domain: "{DOMAIN}", opset_import: ["" : {OPSET}, "{DOMAIN}" : {DOMAIN_VERSION}]>
DenseRelu (X, W, B) => (Y) {{
    Z = {DOMAIN}.Dense(X, W, B)
    Y = Relu(Z)
}}"""


def make_layer_functions() -> list[onnx.FunctionProto]:
    """Define Dense and DenseRelu in DOMAIN as ONNX functions (FunctionProto)."""
    return [onnx.parser.parse_function(text) for text in (DENSE, DENSE_RELU)]


# --- 1. Build: the weights, random or trained ----------------------------------------------------
def he_initialise(widths: list[int], seed: int) -> tuple[Arrays, Arrays]:
    """Return seeded float32 weights (He initialisation) and small random biases per layer."""
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for fan_in, fan_out in itertools.pairwise(widths):
        # He et al. (2015): standard deviation sqrt(2 / fan_in) keeps ReLU activations at a steady
        # scale through the layers. Small biases, but not zero, so that a lost Add would show.
        weights.append(rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_in, fan_out)).astype(np.float32))
        biases.append(rng.uniform(-0.1, 0.1, fan_out).astype(np.float32))
    return weights, biases


def numpy_forward(
    x: np.ndarray, weights: Arrays, biases: Arrays, dtype: Any = np.float64
) -> np.ndarray:
    """An independent forward pass: ReLU layers, a linear last layer, a stable softmax."""
    activations = x.astype(dtype)
    for index, (w, b) in enumerate(zip(weights, biases, strict=True)):
        activations = activations @ w.astype(dtype) + b.astype(dtype)
        if index < len(weights) - 1:
            activations = np.maximum(activations, 0.0)
    shifted = np.exp(activations - activations.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def random_network(widths: list[int], seed: int) -> Network:
    """Build: He-initialised weights, seeded rows to verify on, and NumPy (float64) as reference."""
    weights, biases = he_initialise(widths, seed)
    rows = np.random.default_rng(seed + 1).normal(size=(NEW_ROWS, widths[0])).astype(np.float32)

    def reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities = numpy_forward(x, weights, biases)
        return probabilities, probabilities.argmax(axis=1)

    return weights, biases, rows, None, ("NumPy", reference)


def trained_network(widths: list[int], seed: int) -> Network:
    """Build: fit an MLPClassifier and export its weights by hand; scikit-learn is the reference."""
    from sklearn.datasets import make_classification  # only here: the default run does not pay
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    # A seeded synthetic data set, W0 features and Wk classes, without label noise (flip_y=0):
    # each class has its exact share of rows (usage_problem). Float32 rows, as the model takes.
    options = dict(n_informative=widths[0], n_redundant=0, flip_y=0.0, random_state=seed)
    x, y = make_classification(
        TRAIN_SAMPLES, widths[0], n_classes=widths[-1], n_clusters_per_class=1, **options
    )
    x_train, x_test, y_train, y_test = train_test_split(
        x.astype(np.float32), y, test_size=TEST_ROWS, stratify=y, random_state=seed
    )
    classifier = MLPClassifier(hidden_layer_sizes=widths[1:-1], max_iter=300, random_state=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        classifier.fit(x_train, y_train)  # ReLU hidden layers, as DenseRelu computes
    # MLPClassifier catches Ctrl-C, warns and returns a half-trained model: not one to export.
    if any("Training interrupted by user" in str(warning.message) for warning in caught):
        raise KeyboardInterrupt
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    note = "" if converged else " (not converged; the export is verified all the same)"
    print(f"   trained an MLPClassifier: {classifier.n_iter_} iterations{note}")
    weights = [w.astype(np.float32) for w in classifier.coefs_]
    biases = [b.astype(np.float32) for b in classifier.intercepts_]
    if classifier.out_activation_ == "logistic":
        # For two classes scikit-learn keeps one output z and P(class 1) = sigmoid(z). A softmax
        # over the two logits (0, z) gives exactly (1 - sigmoid(z), sigmoid(z)), so prepend a zero
        # column and the same graph serves binary and multi-class models.
        weights[-1] = np.hstack([np.zeros_like(weights[-1]), weights[-1]])
        biases[-1] = np.concatenate([np.zeros(1, np.float32), biases[-1]])

    def reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return classifier.predict_proba(x), classifier.predict(x)

    return weights, biases, x_test, y_test, ("scikit-learn", reference)


# --- 1. Build: the network -----------------------------------------------------------------------
def build_model(weights: Arrays, biases: Arrays, with_data: bool = True) -> onnx.ModelProto:
    """Build the MLP: DenseRelu per hidden layer, Dense last, Softmax, ArgMax (tensors optional)."""
    nodes, hidden = [], "X"
    for index in range(len(weights)):
        last = index == len(weights) - 1
        output = "logits" if last else f"H{index + 1}"
        # A node of a custom operator names its domain; the runtime finds the function there.
        operator, inputs = "Dense" if last else "DenseRelu", [hidden, f"W{index}", f"B{index}"]
        nodes.append(helper.make_node(operator, inputs, [output], f"layer{index}", domain=DOMAIN))
        hidden = output
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], "softmax", axis=-1))
    nodes.append(helper.make_node("ArgMax", ["logits"], ["label"], "argmax", axis=1, keepdims=0))
    features, classes = weights[0].shape[0], weights[-1].shape[1]
    value = helper.make_tensor_value_info
    outputs = [value("probabilities", TensorProto.FLOAT, ["N", classes])]
    outputs.append(value("label", TensorProto.INT64, ["N"]))
    features_in = [value("X", TensorProto.FLOAT, ["N", features])]
    graph = helper.make_graph(nodes, "mlp", features_in, outputs)
    widths = ",".join(map(str, [features] + [w.shape[1] for w in weights]))
    model = helper.make_model(
        graph,
        # The custom domain is imported like a standard one; without it the model is invalid.
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)],
        ir_version=IR_VERSION,
        functions=make_layer_functions(),  # the operators travel inside the model
        producer_name="onnx-by-example/neural_network.py",
        doc_string=f"MLP with layers {widths} built from {DOMAIN} operators",
    )
    # The initializers go into the model in place, last (numpy_helper.from_array, make_graph and
    # make_model would each copy every weight): a name, a type, a shape, raw little-endian bytes.
    for index, (w, b) in enumerate(zip(weights, biases, strict=True)):
        for name, array in ((f"W{index}", w), (f"B{index}", b)):
            tensor = model.graph.initializer.add(name=name, data_type=TensorProto.FLOAT)
            tensor.dims.extend(array.shape)
            if with_data:
                tensor.raw_data = numpy_helper.tobytes_little_endian(array)
    return model


# --- 4. Load and run, 5. verify ------------------------------------------------------------------
def load_session(source: Path | bytes, threads: int = 0) -> ort.InferenceSession:
    """Open a model file (or serialised bytes) in ONNX Runtime on the CPU; 0 threads = default."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    model = str(source) if isinstance(source, Path) else source
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def run_onnxruntime(session: ort.InferenceSession, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the probabilities and labels that ONNX Runtime computes for a float32 batch."""
    probabilities, labels = session.run(["probabilities", "label"], {"X": x})
    return probabilities, labels


def compare(name: str, actual: np.ndarray, expected: np.ndarray) -> float:
    """Return the largest difference (then <= ATOL + RTOL * max(expected)), or AssertionError."""
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {actual.shape} differs from {expected.shape}")
    difference = float(np.max(np.abs(actual.astype(np.float64) - expected)))
    if not np.allclose(actual, expected, rtol=RTOL, atol=ATOL):  # |a - e| <= atol + rtol * |e|
        raise AssertionError(
            f"{name}: largest difference {difference:.3g} exceeds rtol={RTOL:g}, atol={ATOL:g}"
        )
    return difference


def compare_labels(name: str, actual: np.ndarray, expected: np.ndarray, scores: np.ndarray) -> int:
    """Check that labels agree, except on a near-tie of the top two probabilities; return ties."""
    disagree = np.flatnonzero(actual != expected)
    top_two = np.sort(scores[disagree], axis=1)[:, -2:]
    near_ties = int(np.sum(top_two[:, 1] - top_two[:, 0] <= ATOL))
    if near_ties < len(disagree):
        raise AssertionError(
            f"{name}: {len(disagree) - near_ties} of {len(actual)} labels differ "
            "where the top two probabilities are not tied"
        )
    return near_ties


def verify(session: ort.InferenceSession, path: Path, network: Network) -> np.ndarray:
    """Verify batches of one row and of all rows; return ONNX Runtime's probabilities for all."""
    print(f"\n5. Run and verify (tolerance rtol={RTOL:g}, atol={ATOL:g})")
    _, _, rows, true_labels, (name, reference_for) = network
    # onnx's pure-Python evaluator reads the draft too, and runs the functions: a second runtime.
    evaluator = ReferenceEvaluator(str(path))
    for x in (rows[:1], rows):
        probabilities, labels = run_onnxruntime(session, x)
        expected, expected_labels = reference_for(x)
        differences, ties = [], 0
        for other, (other_probabilities, other_labels) in (
            (name, (expected, expected_labels)),
            ("reference evaluator", evaluator.run(["probabilities", "label"], {"X": x})),
        ):
            where, other_labels = f"batch {len(x)}, ONNX Runtime", np.asarray(other_labels)
            other_probabilities = np.asarray(other_probabilities, np.float64)
            difference = compare(f"{where} vs {other}", probabilities, other_probabilities)
            differences.append(f"{difference:.2g} <= {ATOL + RTOL * other_probabilities.max():.2g}")
            found = compare_labels(f"{where} labels vs {other}", labels, other_labels, expected)
            ties = max(ties, found)
        tie_note = f" except {ties} near-tie(s) of the top two" if ties else ""
        print(
            f"   batch of {len(x):3d}: largest difference vs {name} {differences[0]}, "
            f"vs reference evaluator {differences[1]}; labels agree{tie_note}"
        )
    if true_labels is not None:
        accuracy = np.mean(expected_labels == true_labels), np.mean(labels == true_labels)
        print(f"   test accuracy: {name} {accuracy[0]:.3f}, ONNX Runtime {accuracy[1]:.3f}")
    return probabilities


# --- 6. Inline, and 8. benchmark (--benchmark) ---------------------------------------------------
def inline(model: onnx.ModelProto, rows: np.ndarray, expected: np.ndarray) -> onnx.ModelProto:
    """Inline the functions as a runtime does; check the flat graph gives the same answers."""
    print("\n6. Inline the functions, as a runtime does when it has no kernel for them")
    # Each call becomes its function's body, with fresh names: standard operators any runtime can
    # run. ONNX Runtime does it when it creates a session (microsoft/onnxruntime#17764).
    inlined = onnx.inliner.inline_local_functions(model)
    print(
        f"   {len(model.graph.node)} nodes and {len(model.functions)} functions -> "
        f"{len(inlined.graph.node)} nodes and {len(inlined.functions)} functions:"
    )
    print("   " + " ".join(node.op_type for node in inlined.graph.node))
    inlined_probabilities, _ = run_onnxruntime(load_session(inlined.SerializeToString()), rows)
    difference = compare("inlined model vs original", inlined_probabilities, expected)
    print(f"   largest difference, inlined vs original: {difference:.2g} <= {ATOL + RTOL:.2g}")
    return inlined


def benchmark(path: Path, inlined: onnx.ModelProto, network: Network, seed: int) -> None:
    """Time the custom-op model, its inlined twin and NumPy, taking turns; print a table."""
    print(f"\n8. Benchmark: median time per call (ONNX Runtime: {BENCHMARK_THREADS} intra-op "
          "thread; NumPy float32: its BLAS's threads)")  # fmt: skip
    weights, biases, *_ = network
    custom = load_session(path, threads=BENCHMARK_THREADS)
    flat = load_session(inlined.SerializeToString(), threads=BENCHMARK_THREADS)
    rng = np.random.default_rng(seed + 2)
    print("   batch   custom-op model   inlined twin      NumPy")
    for batch in BENCHMARK_BATCHES:
        x = rng.normal(size=(batch, weights[0].shape[0])).astype(np.float32)
        calls = [functools.partial(session.run, None, {"X": x}) for session in (custom, flat)]
        calls.append(functools.partial(numpy_forward, x, weights, biases, np.float32))
        # Turns spread a noisy moment over the three; the first round only warms the caches.
        timings: list[list[float]] = [[] for _ in calls]
        for _ in range(1 + (500 if batch == 1 else 30)):
            for call, record in zip(calls, timings, strict=True):
                start = time.perf_counter()
                call()
                record.append(time.perf_counter() - start)
        times = [statistics.median(record[1:]) * 1e6 for record in timings]
        print(f"   {batch:5d}   {times[0]:12.1f} µs  {times[1]:10.1f} µs  {times[2]:8.1f} µs")


# --- The lesson's flags, and the sizes that cannot work ------------------------------------------
def parse_layers(text: str) -> list[int]:
    """Parse "W0,W1,...,Wk": at least two whole widths from 1 to WIDTH_MAX, the last 2 or more."""
    if len(parts := text.split(",")) < 2:
        raise argparse.ArgumentTypeError(f"expected two widths or more, got {text[:24]!r}")
    if (widths := [whole_number(part, low=1, high=WIDTH_MAX) for part in parts])[-1] < 2:
        # The number of classes: a softmax over one class is 1.0 whatever the weights.
        raise argparse.ArgumentTypeError("the output width is the number of classes: 2 or more")
    return widths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the lesson's own flags."""
    layers = f"W0,W1,...,Wk: widths 1 to {WIDTH_MAX}, input first, classes (2 or more) last"
    parser.add_argument("--layers", type=parse_layers, default=DEFAULT_LAYERS, help=layers)
    train = f"export an MLPClassifier trained on synthetic data (at most {TEST_ROWS} classes)"
    parser.add_argument("--train", action="store_true", help=train)
    benchmark = "time ONNX Runtime on the custom-op model, its inlined twin, and NumPy"
    parser.add_argument("--benchmark", action="store_true", help=benchmark)
    parser.add_argument("--external-data", action="store_true", help=argparse.SUPPRESS)  # moved


def memory_limit() -> tuple[int, str] | None:
    """Return the smaller of the address-space limit (ulimit -v) and physical memory, if known."""
    limits = []
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource  # POSIX only, as sysconf below

        if (soft := resource.getrlimit(resource.RLIMIT_AS)[0]) != resource.RLIM_INFINITY:
            limits.append((soft, "the address-space limit (ulimit -v)"))
    with contextlib.suppress(AttributeError, OSError, ValueError):
        limits.append((os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"), "physical memory"))
    return min(limits) if limits else None


def usage_problem(args: argparse.Namespace) -> str | None:
    """Return a one-line message for flags that cannot work (sizes included), else None."""
    if args.external_data:
        return "--external-data moved to the next lesson: python large_models.py --help"
    features, classes = args.layers[0], args.layers[-1]
    # make_classification puts each class on its own corner of a hypercube in the W0 features: at
    # most 2**W0 classes (compared by bit length, so 2**W0 is never computed for a huge W0). The
    # stratified test split of TEST_ROWS rows needs a row of every class.
    if args.train and features < (classes - 1).bit_length():
        return f"argument --train: {features} feature(s) separate at most {2**features} classes"
    if args.train and classes > TEST_ROWS:
        return f"argument --train: at most {TEST_ROWS} classes (the test split's rows)"
    size = sum(4 * (fan_in + 1) * fan_out for fan_in, fan_out in itertools.pairwise(args.layers))
    if size + GRAPH_BYTES_ALLOWANCE > PROTOBUF_LIMIT:
        return (
            f"argument --layers: {size} bytes of weights do not fit in one .onnx file (protobuf's "
            f"limit is {PROTOBUF_LIMIT} bytes); large_models.py saves them as external data"
        )
    # What a run needs: Python and the libraries, the weights 10 times (NumPy, proto, file, two
    # sessions, evaluator, inliner: 9 measured), float64 training with Adam, the benchmark's batch.
    need = 2**29 + 10 * size + 8 * size * args.train
    need += 32 * BENCHMARK_BATCHES[-1] * max(args.layers) * args.benchmark
    if (limit := memory_limit()) and need > limit[0]:
        return (
            f"argument --layers: this run needs about {need / 2**30:.1f} GiB of memory, more than "
            f"{limit[1]} ({limit[0] / 2**30:.1f} GiB)"
        )
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
