"""A new ONNX operator, one dense layer, and a multi-layer perceptron of any depth built from it.

ONNX lets you add operators in a domain of your own. The simplest way to give a new operator a
meaning that every runtime understands is an ONNX *function*: a ``FunctionProto`` whose body is a
small graph of existing operators, stored in the model itself (``ModelProto.functions``). A runtime
that has no kernel for ``com.example.mlp.DenseRelu`` runs its body instead, so ONNX Runtime and
``onnx.reference.ReferenceEvaluator`` both execute this model with no extension library and no
compiled custom-op code. The domain must also be imported in the model's ``opset_import``.

The domain defines two operators, one call per layer:

    Dense(X, W, B)     = X·W + B               the output layer: logits must be able to go negative
    DenseRelu(X, W, B) = Relu(Dense(X, W, B))  a hidden layer; its body calls Dense

and the network ``--layers W0,W1,...,Wk`` is DenseRelu for every hidden layer, Dense for the last,
then a standard Softmax (class probabilities) and ArgMax (the predicted class).

The lifecycle: build (He-initialised weights, or ``--train`` to export a scikit-learn
MLPClassifier: writing your own converter), check (``full_check=True``; the checker cannot vouch for
a custom operator's body, and does not even notice a missing one, so the numbers are the real test),
save ``<output-dir>/neural_network.onnx`` atomically, load it back, run it with ONNX Runtime, and
verify batches of 1 and many rows against an independent NumPy forward pass (or scikit-learn's
``predict_proba`` and ``predict``) and the reference evaluator. Then inline the functions, as a
runtime does, and check that the flat graph gives the same answers. A mismatch exits with 1.

    python neural_network.py                          # layers 4,16,16,3, seed 0
    python neural_network.py --layers 8,32,32,32,32,2 --train
    python neural_network.py --benchmark              # custom-op model vs inlined twin vs NumPy
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import numpy as np
import onnx
import onnx.inliner
import onnx.printer
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

# Opset 22 and IR version 10, as in linear_regression.py: explicit, and accepted by the pinned
# onnxruntime (which loads up to opset 28 and IR version 14). Model-local functions need IR >= 8.
OPSET = 22
IR_VERSION = 10
# A domain of our own: a reverse-DNS name under example.com, which can never clash with the
# standard domains ("" or "ai.onnx", and "ai.onnx.ml").
DOMAIN = "com.example.mlp"
DOMAIN_VERSION = 1
MODEL_FILE = "neural_network.onnx"
DEFAULT_LAYERS = "4,16,16,3"
NEW_ROWS = 64  # the "many rows" batch used for verification
TRAIN_SAMPLES = 600  # synthetic rows for --train; a quarter is held out as the test split
TRAIN_ITERATIONS = 300
# Each float32 layer rounds to about 1e-7 relative; after a few layers and a softmax the
# probabilities agree with a float64 reference to about 1e-6.
RTOL = 1e-4
ATOL = 1e-5
BENCHMARK_BATCHES = (1, 8192)
BENCHMARK_THREADS = 1  # ONNX Runtime intra-op threads in the benchmark: one, for steady figures


# --- 1. Build: the operators ---------------------------------------------------------------------


def make_layer_functions() -> list[onnx.FunctionProto]:
    """Define Dense and DenseRelu in DOMAIN as ONNX functions."""
    # Why two operators and not one with an "activation" attribute? A function body is a fixed
    # graph: choosing Relu or nothing by attribute would need control flow (If). Passing a number
    # through instead (LeakyRelu with alpha=@alpha: 0 is ReLU, 1 is identity) runs in ONNX Runtime,
    # but the pinned onnx reference evaluator fails on it ("OpRunUnaryNum.run() got an unexpected
    # keyword argument 'linked_attributes'"). Two attribute-free operators run everywhere, and
    # DenseRelu calling Dense shows that a function may call another function of the model.
    dense = helper.make_function(
        DOMAIN,
        "Dense",
        inputs=["X", "W", "B"],
        outputs=["Y"],
        nodes=[
            helper.make_node("MatMul", ["X", "W"], ["XW"]),
            helper.make_node("Add", ["XW", "B"], ["Y"]),
        ],
        opset_imports=[helper.make_opsetid("", OPSET)],
        doc_string="One dense layer without activation: Y = X·W + B.",
    )
    dense_relu = helper.make_function(
        DOMAIN,
        "DenseRelu",
        inputs=["X", "W", "B"],
        outputs=["Y"],
        nodes=[
            helper.make_node("Dense", ["X", "W", "B"], ["Z"], domain=DOMAIN),
            helper.make_node("Relu", ["Z"], ["Y"]),
        ],
        # The body uses both domains, so the function imports both.
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, DOMAIN_VERSION)],
        doc_string="One dense layer with ReLU: Y = max(X·W + B, 0).",
    )
    return [dense, dense_relu]


# --- 1. Build: the weights -----------------------------------------------------------------------


def parse_layers(text: str) -> list[int]:
    """Parse "W0,W1,...,Wk" into at least two whole widths of 1 or more, for argparse."""
    parts = text.split(",")
    if len(parts) < 2:
        raise argparse.ArgumentTypeError(
            f"expected at least two comma-separated widths (input and output), got {text!r}"
        )
    widths = []
    for part in parts:
        try:
            width = int(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"widths must be whole numbers, got {part.strip()!r} in {text!r}"
            ) from None
        if width < 1:
            raise argparse.ArgumentTypeError(f"every width must be 1 or more, got {width}")
        widths.append(width)
    return widths


def he_initialise(widths: list[int], seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return seeded float32 weights (He initialisation) and small random biases per layer."""
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for fan_in, fan_out in itertools.pairwise(widths):
        # He et al. (2015): standard deviation sqrt(2 / fan_in) keeps ReLU activations at a steady
        # scale through the layers. The biases are small but not zero, so the Add is exercised.
        weights.append(rng.normal(0.0, np.sqrt(2.0 / fan_in), (fan_in, fan_out)).astype(np.float32))
        biases.append(rng.uniform(-0.1, 0.1, fan_out).astype(np.float32))
    return weights, biases


def train_mlp(widths: list[int], seed: int):
    """Fit scikit-learn's MLPClassifier on a seeded synthetic data set shaped by widths.

    Returns the classifier, the float32 test rows and labels, and whether training converged.
    """
    # scikit-learn is imported here only, so the default run does not pay for it.
    from sklearn.datasets import make_classification
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    x, y = make_classification(
        n_samples=TRAIN_SAMPLES,
        n_features=widths[0],
        n_informative=widths[0],
        n_redundant=0,
        n_classes=widths[-1],
        n_clusters_per_class=1,
        random_state=seed,
    )
    # The ONNX model takes float32; training on float32 rows means both sides see the same inputs.
    x = x.astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=seed, stratify=y
    )
    classifier = MLPClassifier(
        hidden_layer_sizes=tuple(widths[1:-1]),
        activation="relu",
        max_iter=TRAIN_ITERATIONS,
        random_state=seed,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        classifier.fit(x_train, y_train)
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return classifier, x_test, y_test, converged


def sklearn_weights(classifier) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Read an MLPClassifier's layers as float32 weights and biases for the Dense operators."""
    weights = [w.astype(np.float32) for w in classifier.coefs_]
    biases = [b.astype(np.float32) for b in classifier.intercepts_]
    if classifier.out_activation_ == "logistic":
        # For two classes scikit-learn keeps one output z and P(class 1) = sigmoid(z). A softmax
        # over the two logits (0, z) gives exactly (1 - sigmoid(z), sigmoid(z)), so prepend a zero
        # column and the same graph serves binary and multi-class models.
        weights[-1] = np.hstack([np.zeros_like(weights[-1]), weights[-1]])
        biases[-1] = np.concatenate([np.zeros(1, np.float32), biases[-1]])
    return weights, biases


# --- 1. Build: the network -----------------------------------------------------------------------


def build_model(weights: list[np.ndarray], biases: list[np.ndarray]) -> onnx.ModelProto:
    """Build the MLP: one DenseRelu node per hidden layer, Dense for the last, Softmax, ArgMax."""
    inputs, classes = weights[0].shape[0], weights[-1].shape[1]
    initializers, nodes = [], []
    hidden = "X"
    for index, (w, b) in enumerate(zip(weights, biases, strict=True)):
        initializers += [
            numpy_helper.from_array(w, f"W{index}"),
            numpy_helper.from_array(b, f"B{index}"),
        ]
        last = index == len(weights) - 1
        output = "logits" if last else f"H{index + 1}"
        # A node of a custom operator names its domain; the runtime finds the function there.
        nodes.append(
            helper.make_node(
                "Dense" if last else "DenseRelu",
                [hidden, f"W{index}", f"B{index}"],
                [output],
                name=f"layer{index}",
                domain=DOMAIN,
            )
        )
        hidden = output
    nodes += [
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1, name="softmax"),
        helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0, name="argmax"),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", inputs])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
        ],
        initializer=initializers,
    )
    widths = [inputs] + [w.shape[1] for w in weights]
    return helper.make_model(
        graph,
        # The custom domain is imported like a standard one; without it the model is invalid.
        opset_imports=[
            helper.make_opsetid("", OPSET),
            helper.make_opsetid(DOMAIN, DOMAIN_VERSION),
        ],
        ir_version=IR_VERSION,
        functions=make_layer_functions(),
        producer_name="onnx-by-example/neural_network.py",
        doc_string=f"MLP with layers {','.join(map(str, widths))} built from {DOMAIN} operators",
    )


# --- 2. Check and 3. Save ------------------------------------------------------------------------


def check_model(model: onnx.ModelProto) -> None:
    """Validate the model's structure, types and shapes (not what a custom operator computes)."""
    onnx.checker.check_model(model, full_check=True)


def save_model(model: onnx.ModelProto, path: Path) -> int:
    """Write the model atomically to path and return its size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = model.SerializeToString()
    # A temporary file in the same folder, then os.replace: never a half-written model at path.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's file is private; use the usual mode
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return len(data)


# --- 4. Load and 5. Run --------------------------------------------------------------------------


def load_session(source: Path | bytes, threads: int = 0) -> ort.InferenceSession:
    """Open a model file (or serialised bytes) in ONNX Runtime on the CPU; 0 threads = default."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    source = str(source) if isinstance(source, Path) else source
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run_onnxruntime(session: ort.InferenceSession, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the probabilities and labels that ONNX Runtime computes for a float32 batch."""
    probabilities, labels = session.run(["probabilities", "label"], {"X": x})
    return probabilities, labels


def run_reference_evaluator(model: onnx.ModelProto, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the probabilities and labels from onnx's pure-Python reference evaluator."""
    probabilities, labels = ReferenceEvaluator(model).run(["probabilities", "label"], {"X": x})
    return probabilities, labels


def numpy_forward(
    x: np.ndarray, weights: list[np.ndarray], biases: list[np.ndarray], dtype=np.float64
) -> np.ndarray:
    """An independent forward pass: ReLU layers, a linear last layer, a stable softmax.

    float64 (the default) is the verification reference; the benchmark times it in float32.
    """
    activations = x.astype(dtype, copy=False)
    for index, (w, b) in enumerate(zip(weights, biases, strict=True)):
        activations = activations @ w.astype(dtype, copy=False) + b.astype(dtype, copy=False)
        if index < len(weights) - 1:
            activations = np.maximum(activations, 0.0)
    shifted = np.exp(activations - activations.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


# --- 6. Verify -----------------------------------------------------------------------------------


def compare(name: str, actual: np.ndarray, expected: np.ndarray) -> float:
    """Return the largest absolute difference; raise AssertionError if outside the tolerance."""
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {actual.shape} differs from {expected.shape}")
    difference = float(np.max(np.abs(actual.astype(np.float64) - expected)))
    try:
        np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)
    except AssertionError:
        raise AssertionError(
            f"{name}: largest difference {difference:.3g} exceeds rtol={RTOL:g}, atol={ATOL:g}"
        ) from None
    return difference


def compare_labels(name: str, actual: np.ndarray, expected: np.ndarray, probabilities) -> int:
    """Check that labels agree, except on a near-tie of the top two probabilities; return ties."""
    disagree = np.flatnonzero(actual != expected)
    top_two = np.sort(probabilities[disagree], axis=1)[:, -2:]
    near_ties = int(np.sum(top_two[:, 1] - top_two[:, 0] <= ATOL))
    if near_ties < len(disagree):
        raise AssertionError(
            f"{name}: {len(disagree) - near_ties} of {len(actual)} labels differ "
            "where the top two probabilities are not tied"
        )
    return near_ties


# --- Benchmark -----------------------------------------------------------------------------------


def median_seconds(call: Callable[[], object], repeats: int, warmup: int = 10) -> float:
    """Return the median wall time of one call, after warm-up calls."""
    for _ in range(warmup):
        call()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def benchmark(model: onnx.ModelProto, inlined: onnx.ModelProto, weights, biases, seed: int):
    """Time the custom-op model, its inlined twin and NumPy; return rows of (batch, seconds...)."""
    custom = load_session(model.SerializeToString(), threads=BENCHMARK_THREADS)
    flat = load_session(inlined.SerializeToString(), threads=BENCHMARK_THREADS)
    rng = np.random.default_rng(seed + 2)
    rows = []
    for batch in BENCHMARK_BATCHES:
        x = rng.normal(size=(batch, weights[0].shape[0])).astype(np.float32)
        repeats = 500 if batch == 1 else 30
        rows.append(
            (
                batch,
                median_seconds(lambda x=x: custom.run(None, {"X": x}), repeats),
                median_seconds(lambda x=x: flat.run(None, {"X": x}), repeats),
                median_seconds(lambda x=x: numpy_forward(x, weights, biases, np.float32), repeats),
            )
        )
    return rows


# --- Command line --------------------------------------------------------------------------------


def non_negative_int(text: str) -> int:
    """Parse a whole number of 0 or more, for argparse."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse and validate the command line; exit 2 with one message on a usage error."""
    parser = argparse.ArgumentParser(
        prog=Path(__file__).name,
        description="Define a dense-layer operator in a custom ONNX domain, build an MLP of any "
        "depth from it, and verify ONNX Runtime against NumPy (or scikit-learn) and the ONNX "
        "reference evaluator.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--layers",
        type=parse_layers,
        default=DEFAULT_LAYERS,  # a string default goes through type=, like a typed value
        metavar="W0,...,Wk",
        help="layer widths, input first and output last",
    )
    parser.add_argument(
        "--train",
        action="store_true",
        help="export a scikit-learn MLPClassifier trained on synthetic data instead of random "
        "weights",
    )
    parser.add_argument(
        "--benchmark",
        action="store_true",
        help="time ONNX Runtime on the custom-op model and its inlined twin, and NumPy",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path("models"),
        help="folder for the .onnx file, created when missing",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed")

    # One line that names the problem instead of the whole usage; the exit status stays 2.
    def usage_error(message: str) -> NoReturn:
        parser.exit(2, f"{parser.prog}: error: {message} (see --help)\n")

    parser.error = usage_error  # type: ignore[method-assign]
    args = parser.parse_args(argv)
    if args.train:
        features, classes = args.layers[0], args.layers[-1]
        if classes < 2:
            parser.error("argument --train: a classifier needs an output width of 2 or more")
        if classes > 2**features:
            # make_classification places one cluster per class on the corners of a hypercube.
            parser.error(
                f"argument --train: {features} input feature(s) can separate at most "
                f"{2**features} classes in the synthetic data set, not {classes}"
            )
    return args


def print_versions(with_sklearn: bool) -> None:
    """Print the versions this run used, so a pasted report can be reproduced."""
    line = (
        f"Versions: Python {platform.python_version()}, numpy {np.__version__}, "
        f"onnx {onnx.__version__}, onnxruntime {ort.__version__}"
    )
    if with_sklearn:
        import sklearn

        line += f", scikit-learn {sklearn.__version__}"
    print(line)


def main(argv: list[str] | None = None) -> int:
    """Run the lesson: build, check, save, load, run, verify, inline, and optionally benchmark."""
    args = parse_args(argv)
    path = args.output_dir / MODEL_FILE
    widths = args.layers
    try:
        source = "a trained scikit-learn MLPClassifier" if args.train else "He-initialised weights"
        print(
            f"MLP with layers {','.join(map(str, widths))} "
            f"({len(widths) - 1} dense layer{'s' if len(widths) > 2 else ''}) "
            f"from {source}, seed {args.seed}"
        )

        print(f"\n1. Build: operators Dense and DenseRelu in domain {DOMAIN!r}, one call per layer")
        if args.train:
            classifier, x_test, y_test, converged = train_mlp(widths, args.seed)
            weights, biases = sklearn_weights(classifier)
            note = "" if converged else " (not converged; the export is verified all the same)"
            print(f"   trained an MLPClassifier: {classifier.n_iter_} iterations{note}")
        else:
            weights, biases = he_initialise(widths, args.seed)
        model = build_model(weights, biases)
        for line in onnx.printer.to_text(model).splitlines():
            if not line.lstrip().startswith("<float["):  # leave out the weight values
                print("   " + line.rstrip())

        print("\n2. Check it with onnx.checker (full_check=True)")
        check_model(model)
        print("   valid; the checker does not run the operators, so the numbers below are the test")

        print("\n3. Save it atomically")
        size = save_model(model, path)
        print(f"   wrote {path} ({size} bytes)")

        print("\n4. Load the file back from disk into ONNX Runtime (CPUExecutionProvider)")
        session = load_session(path)
        loaded = onnx.load(path)
        for kind, values in (("input ", session.get_inputs()), ("output", session.get_outputs())):
            for value in values:
                print(f"   {kind} {value.name}: {value.type} {value.shape}")

        print(f"\n5. Run and verify (tolerance rtol={RTOL:g}, atol={ATOL:g})")
        if args.train:
            x_many = x_test
            reference_name = "scikit-learn"
        else:
            x_many = np.random.default_rng(args.seed + 1).normal(size=(NEW_ROWS, widths[0]))
            x_many = x_many.astype(np.float32)
            reference_name = "NumPy"
        for x in (x_many[:1], x_many):
            probabilities, labels = run_onnxruntime(session, x)
            rows = len(x)
            if args.train:
                expected = classifier.predict_proba(x)
                expected_labels = classifier.predict(x)
            else:
                expected = numpy_forward(x, weights, biases)
                expected_labels = expected.argmax(axis=1)
            difference = compare(
                f"batch {rows}, ONNX Runtime vs {reference_name}", probabilities, expected
            )
            ties = compare_labels(
                f"batch {rows}, ONNX Runtime labels vs {reference_name}",
                labels,
                expected_labels,
                expected,
            )
            reference_probabilities, reference_labels = run_reference_evaluator(loaded, x)
            reference_difference = compare(
                f"batch {rows}, ONNX Runtime vs reference evaluator",
                probabilities,
                reference_probabilities.astype(np.float64),
            )
            compare_labels(
                f"batch {rows}, ONNX Runtime labels vs reference evaluator",
                labels,
                reference_labels,
                expected,
            )
            tie_note = f" except {ties} near-tie(s) of the top two" if ties else ""
            print(
                f"   batch of {rows:3d}: largest difference vs {reference_name} {difference:.2g}, "
                f"vs reference evaluator {reference_difference:.2g}; labels agree{tie_note}"
            )
        if args.train:
            sklearn_accuracy = np.mean(expected_labels == y_test)  # predict, from the last batch
            onnx_accuracy = np.mean(labels == y_test)
            print(
                f"   test accuracy: scikit-learn {sklearn_accuracy:.3f}, "
                f"ONNX Runtime {onnx_accuracy:.3f}"
            )

        print("\n6. Inline the functions, as a runtime does when it has no kernel for them")
        inlined = onnx.inliner.inline_local_functions(loaded)
        print(
            f"   {len(loaded.graph.node)} nodes and {len(loaded.functions)} functions -> "
            f"{len(inlined.graph.node)} nodes and {len(inlined.functions)} functions:"
        )
        print("   " + " ".join(node.op_type for node in inlined.graph.node))
        inlined_probabilities, _ = run_onnxruntime(
            load_session(inlined.SerializeToString()), x_many
        )
        # probabilities still holds the original model's answer for x_many, the last batch above.
        inlined_difference = compare(
            "inlined model vs original", inlined_probabilities, probabilities
        )
        print(f"   largest difference, inlined vs original: {inlined_difference:.2g}")

        if args.benchmark:
            print(
                f"\n7. Benchmark: median time per call (ONNX Runtime: {BENCHMARK_THREADS} intra-op "
                "thread; NumPy float32: its BLAS's threads)"
            )
            print("   batch   custom-op model   inlined twin      NumPy")
            for batch, custom, flat, numpy_time in benchmark(
                loaded, inlined, weights, biases, args.seed
            ):
                print(
                    f"   {batch:5d}   {custom * 1e6:12.1f} µs  {flat * 1e6:10.1f} µs"
                    f"  {numpy_time * 1e6:8.1f} µs"
                )

        print(f"\nVerified: {path} agrees with {reference_name} and the reference evaluator.")
        print_versions(with_sklearn=args.train)
    except AssertionError as error:
        print(f"error: verification failed: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(f"error: {error.strerror or error}: {error.filename or path}", file=sys.stderr)
        return 1
    except Exception as error:  # a one-line report instead of a traceback, as the CLI promises
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(f"error: {type(error).__name__}: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
