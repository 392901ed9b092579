"""Iris classifiers trained in scikit-learn, converted with skl2onnx, served by ONNX Runtime alone.

Once a model is trained, a converter maps the framework's operations onto ONNX's
framework-independent operators: a random forest becomes one ``TreeEnsembleClassifier`` node of
the ``ai.onnx.ml`` domain, a scaling pipeline becomes ``Scaler`` followed by the classifier's nodes.
After that, deployment needs ONNX Runtime and one ``.onnx`` file: no scikit-learn, and no pickle.

The lifecycle, for the classifier chosen with ``--model`` (or every one with ``--model all``):

1. Train:   a seeded, stratified split of Iris (it ships with scikit-learn), features as float32.
2. Convert: ``skl2onnx.to_onnx`` with a float32 input of dynamic batch size, explicit target
            opsets for the default and ``ai.onnx.ml`` domains, and ZipMap off.
3. Check:   ``onnx.checker.check_model(full_check=True)`` and a summary of inputs, outputs, opsets
            and nodes by operator type.
4. Save:    ``<output-dir>/sklearn_<name>.onnx``, written atomically.
5. Load and run: ``predict_from_file``, which imports only onnxruntime and numpy.
6. Verify:  on the test split, ONNX labels equal ``predict`` exactly and ONNX probabilities match
            ``predict_proba`` within a stated tolerance. A mismatch exits with 1.

The default model is a random forest: a robust classifier that needs no feature scaling, is widely
deployed, and shows why ONNX Runtime is worth it (scikit-learn's ``predict_proba`` on one row pays
for input validation and dispatches the trees one by one; ONNX Runtime runs the whole ensemble in
one compiled kernel). ``--benchmark`` measures that claim on your machine instead of stating it.

    python sklearn_converter.py                         # random_forest, seed 0
    python sklearn_converter.py --model all             # every classifier, then a summary table
    python sklearn_converter.py --model svc --benchmark
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

# Only numpy and onnxruntime are imported here: that is all predict_from_file, the deployment
# side, needs. The training side imports scikit-learn, skl2onnx and onnx where it uses them.
import numpy as np
import onnxruntime as ort

if TYPE_CHECKING:
    import onnx

# Target opsets: 22 for the default domain (the newest skl2onnx 1.20.0 is tested with) and 3 for
# ai.onnx.ml (what skl2onnx pairs with opset 18 and later). The pinned onnxruntime loads up to opset
# 28 and ai.onnx.ml 5. skl2onnx then imports only the versions the graph needs, at most these.
TARGET_OPSET = {"": 22, "ai.onnx.ml": 3}
IR_VERSION = 10  # what skl2onnx writes for opset 22, set explicitly
MODELS = (
    "logistic_regression",
    "decision_tree",
    "random_forest",
    "gradient_boosting",
    "svc",
    "knn",
    "naive_bayes",
    "mlp",
)
DEFAULT_MODEL = "random_forest"
TEST_SIZE = 0.3
# The converted models compute in float32, scikit-learn in float64: probabilities agree to about
# 1e-6. Labels must agree exactly.
RTOL = 1e-4
ATOL = 1e-5
BENCHMARK_BATCHES = (1, 10_000)
BENCHMARK_THREADS = 1  # ONNX Runtime intra-op threads in the benchmark: one, for steady figures


# --- 1. Train ------------------------------------------------------------------------------------


def load_iris_split(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return a seeded, stratified float32 split of Iris: x_train, x_test, y_train, y_test."""
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    x, y = load_iris(return_X_y=True)
    # ONNX Runtime will see float32 inputs, so train on float32 too: a tree's thresholds then lie
    # between float32 values, and both sides compare the same numbers at every split.
    x = x.astype(np.float32)
    return train_test_split(x, y, test_size=TEST_SIZE, random_state=seed, stratify=y)


def make_classifier(name: str, seed: int, small: bool = False):
    """Return an unfitted classifier of the named family; small=True trains fewer trees (tests)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    from sklearn.tree import DecisionTreeClassifier

    trees = 10 if small else 100
    if name == "logistic_regression":
        return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    if name == "decision_tree":
        return DecisionTreeClassifier(random_state=seed)
    if name == "random_forest":
        return RandomForestClassifier(n_estimators=trees, random_state=seed)
    if name == "gradient_boosting":
        return GradientBoostingClassifier(n_estimators=trees, random_state=seed)
    if name == "svc":
        # SVC(probability=True) is deprecated in scikit-learn 1.9; its replacement is calibration
        # around a plain SVC, as the deprecation message says: CalibratedClassifierCV(SVC(),
        # ensemble=False).
        return make_pipeline(StandardScaler(), CalibratedClassifierCV(SVC(), ensemble=False))
    if name == "knn":
        return KNeighborsClassifier()
    if name == "naive_bayes":
        return GaussianNB()
    if name == "mlp":
        return make_pipeline(
            StandardScaler(),
            MLPClassifier(hidden_layer_sizes=(16,), max_iter=2000, random_state=seed),
        )
    raise ValueError(f"unknown model {name!r}")


# --- 2. Convert ----------------------------------------------------------------------------------


def convert(classifier, features: int) -> onnx.ModelProto:
    """Convert a fitted classifier: float32 input [N, features] -> labels and probabilities."""
    from onnx.helper import make_opsetid
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    with warnings.catch_warnings():
        # skl2onnx's SVC converter reads probA_ and probB_, which scikit-learn 1.9 deprecates along
        # with SVC(probability=True); the calibrated model does not use them.
        warnings.filterwarnings("ignore", message="Attribute `prob[AB]_`", category=FutureWarning)
        model = to_onnx(
            classifier,
            # None is a dynamic dimension: any batch size.
            initial_types=[("X", FloatTensorType([None, features]))],
            target_opset=TARGET_OPSET,
            # By default a classifier's probabilities pass through ZipMap, which turns them into a
            # list with one {class: probability} dict per row. That suits languages without
            # tensors, but it is slow and awkward in NumPy; off, they come back as a float matrix.
            options={id(classifier): {"zipmap": False}},
        )
    model.ir_version = IR_VERSION
    # skl2onnx 1.20.0 lists the default domain twice for some models (the checker and ONNX Runtime
    # accept it); keep one entry per domain so the file states each opset once.
    versions: dict[str, int] = {}
    for opset in model.opset_import:
        versions[opset.domain] = max(versions.get(opset.domain, 0), opset.version)
    del model.opset_import[:]
    model.opset_import.extend(make_opsetid(domain, version) for domain, version in versions.items())
    return model


# --- 3. Check ------------------------------------------------------------------------------------


def summarize(model: onnx.ModelProto) -> list[str]:
    """Describe the model in a few lines: inputs, outputs, opsets, nodes by operator type."""
    import onnx

    def describe(value) -> str:
        kind = value.type.WhichOneof("value")
        if kind != "tensor_type":
            return f"{value.name}: {kind}"
        tensor = value.type.tensor_type
        dims = [
            d.dim_param or (d.dim_value if d.HasField("dim_value") else None)
            for d in tensor.shape.dim
        ]
        return f"{value.name}: {onnx.TensorProto.DataType.Name(tensor.elem_type).lower()}{dims}"

    counts = collections.Counter(node.op_type for node in model.graph.node)
    opsets = sorted({(o.domain or "ai.onnx", o.version) for o in model.opset_import})
    return [
        "inputs:  " + ", ".join(describe(v) for v in model.graph.input),
        "outputs: " + ", ".join(describe(v) for v in model.graph.output),
        f"IR version {model.ir_version}; opsets: "
        + ", ".join(f"{domain} {version}" for domain, version in opsets),
        f"{len(model.graph.node)} node{'s' if len(model.graph.node) != 1 else ''}: "
        + ", ".join(f"{op} x{count}" for op, count in counts.most_common(6))
        + (f", and {len(counts) - 6} more operator types" if len(counts) > 6 else ""),
    ]


# --- 4. Save -------------------------------------------------------------------------------------


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


# --- 5. Load and run: the deployment side --------------------------------------------------------


def predict_from_file(path: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Load a saved classifier and return labels and probabilities, with onnxruntime and numpy."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(["label", "probabilities"], {"X": x.astype(np.float32)})
    return labels, probabilities


# --- 6. Verify -----------------------------------------------------------------------------------


def verify(name: str, classifier, x_test: np.ndarray, labels, probabilities) -> float:
    """Check labels exactly and probabilities within tolerance; return the largest difference."""
    expected = classifier.predict_proba(x_test)
    if probabilities.shape != expected.shape:
        raise AssertionError(
            f"{name}: probabilities shape {probabilities.shape} != {expected.shape}"
        )
    difference = float(np.max(np.abs(probabilities.astype(np.float64) - expected)))
    try:
        np.testing.assert_allclose(probabilities, expected, rtol=RTOL, atol=ATOL)
    except AssertionError:
        raise AssertionError(
            f"{name}: probabilities differ from predict_proba by up to {difference:.3g} "
            f"(tolerance rtol={RTOL:g}, atol={ATOL:g})"
        ) from None
    differing = int(np.sum(labels != classifier.predict(x_test)))
    if differing:
        raise AssertionError(
            f"{name}: {differing} of {len(labels)} labels differ from predict "
            f"(largest probability difference {difference:.3g})"
        )
    return difference


# --- Benchmark -----------------------------------------------------------------------------------


def median_seconds(call: Callable[[], object], repeats: int, warmup: int = 5) -> float:
    """Return the median wall time of one call, after warm-up calls."""
    for _ in range(warmup):
        call()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        timings.append(time.perf_counter() - start)
    return statistics.median(timings)


def benchmark(
    classifier, path: Path, x_test: np.ndarray, seed: int
) -> list[tuple[int, float, float]]:
    """Time predict_proba and ONNX Runtime's run; return (batch, scikit-learn s, ONNX Runtime s)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = BENCHMARK_THREADS
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    rows = []
    for batch in BENCHMARK_BATCHES:
        x = x_test[rng.integers(len(x_test), size=batch)]
        repeats = 100 if batch == 1 else 10
        sklearn_time = median_seconds(lambda x=x: classifier.predict_proba(x), repeats)
        onnx_time = median_seconds(lambda x=x: session.run(None, {"X": x}), repeats)
        rows.append((batch, sklearn_time, onnx_time))
    return rows


def print_benchmark(results: list[dict], data, seed: int) -> None:
    """Print the benchmark table, then how one row served by ONNX Runtime compares."""
    x_train, x_test, y_train, _ = data
    print(
        f"\nBenchmark: median time per call; ONNX Runtime with {BENCHMARK_THREADS} intra-op thread"
    )
    print("   model                  batch   scikit-learn   ONNX Runtime  speed-up")
    one_row = {}
    for r in results:
        for batch, sklearn_time, onnx_time in benchmark(r["classifier"], r["path"], x_test, seed):
            print(
                f"   {r['name']:<20} {batch:7d} {sklearn_time * 1e6:11.1f} µs"
                f" {onnx_time * 1e6:11.1f} µs {sklearn_time / onnx_time:8.1f}x"
            )
            if batch == 1:
                one_row[r["name"]] = (sklearn_time, onnx_time)

    # The yardstick for serving one row: scikit-learn's predict_proba of a logistic regression,
    # a model that does very little work, so what it costs is mostly scikit-learn's own overhead.
    if "logistic_regression" in one_row:
        baseline_time = one_row["logistic_regression"][0]  # measured in the table above
    else:
        baseline = make_classifier("logistic_regression", seed).fit(x_train, y_train)
        baseline_time = median_seconds(lambda: baseline.predict_proba(x_test[:1]), 100)
    print(
        f"   one row with scikit-learn's logistic regression predict_proba: "
        f"{baseline_time * 1e6:.1f} µs"
    )
    for name, (_, onnx_time) in one_row.items():
        print(
            f"   one row of {name} served by ONNX Runtime: {onnx_time * 1e6:.1f} µs, "
            f"{baseline_time / onnx_time:.1f}x faster than that"
        )
    if len(one_row) > 1:
        quickest = min(one_row, key=lambda name: one_row[name][0])
        print(
            f"   quickest scikit-learn predict_proba on one row here: {quickest}, "
            f"{one_row[quickest][0] * 1e6:.1f} µs"
        )


# --- The lifecycle for one model -----------------------------------------------------------------


def run_model(name: str, data, output_dir: Path, seed: int) -> dict:
    """Train, convert, check, save, load, run and verify one classifier; return its results."""
    import onnx

    x_train, x_test, y_train, y_test = data
    print(f"\n== {name}")
    classifier = make_classifier(name, seed).fit(x_train, y_train)
    steps = getattr(classifier, "steps", [(name, classifier)])  # a pipeline, or one estimator
    print("1. Trained " + " -> ".join(type(step).__name__ for _, step in steps))

    model = convert(classifier, x_train.shape[1])
    print(f"2. Converted with skl2onnx (target opsets {TARGET_OPSET}, ZipMap off)")

    onnx.checker.check_model(model, full_check=True)
    print("3. Checked (onnx.checker, full_check=True)")
    for line in summarize(model):
        print("   " + line)

    path = output_dir / f"sklearn_{name}.onnx"
    size = save_model(model, path)
    print(f"4. Saved {path} ({size} bytes)")

    labels, probabilities = predict_from_file(path, x_test)
    print(f"5. Loaded it from disk and ran ONNX Runtime on the {len(x_test)} test rows")

    difference = verify(name, classifier, x_test, labels, probabilities)
    sklearn_accuracy = float(np.mean(classifier.predict(x_test) == y_test))
    onnx_accuracy = float(np.mean(labels == y_test))
    print(
        f"6. Verified: labels equal predict; largest difference from predict_proba {difference:.2g}"
        f" (rtol={RTOL:g}, atol={ATOL:g})\n"
        f"   test accuracy: scikit-learn {sklearn_accuracy:.3f}, ONNX Runtime {onnx_accuracy:.3f}"
    )
    return {
        "name": name,
        "classifier": classifier,
        "path": path,
        "size": size,
        "nodes": len(model.graph.node),
        "difference": difference,
        "sklearn_accuracy": sklearn_accuracy,
        "onnx_accuracy": onnx_accuracy,
    }


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


def model_name(text: str) -> str:
    """Accept one of MODELS or "all", for argparse."""
    if text not in (*MODELS, "all"):
        raise argparse.ArgumentTypeError(
            f"unknown model {text!r}; choose one of: {', '.join(MODELS)}, all"
        )
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse the command line; exit 2 with one message on a usage error."""
    parser = argparse.ArgumentParser(
        prog=Path(__file__).name,
        description="Train scikit-learn classifiers on Iris, convert them with skl2onnx, and "
        "verify ONNX Runtime against scikit-learn.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--model",
        type=model_name,
        default=DEFAULT_MODEL,
        metavar="NAME",
        help=f"classifier to convert: {', '.join(MODELS)}, or all",
    )
    parser.add_argument(
        "--benchmark",
        action="store_true",
        help="time scikit-learn's predict_proba against ONNX Runtime on 1 row and a large batch",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path("models"),
        help="folder for the .onnx files, created when missing",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="random seed")

    # One line that names the problem instead of the whole usage; the exit status stays 2.
    def usage_error(message: str) -> NoReturn:
        parser.exit(2, f"{parser.prog}: error: {message} (see --help)\n")

    parser.error = usage_error  # type: ignore[method-assign]
    return parser.parse_args(argv)


def print_versions() -> None:
    """Print the versions this run used, so a pasted report can be reproduced."""
    import onnx
    import skl2onnx
    import sklearn

    print(
        f"Versions: Python {platform.python_version()}, numpy {np.__version__}, "
        f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, "
        f"scikit-learn {sklearn.__version__}, skl2onnx {skl2onnx.__version__}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the lesson for the chosen model(s), then the summary and the optional benchmark."""
    args = parse_args(argv)
    names = MODELS if args.model == "all" else (args.model,)
    try:
        data = load_iris_split(args.seed)
        print(
            f"Iris: {len(data[0])} training and {len(data[1])} test rows (stratified, seed "
            f"{args.seed}), 4 float32 features, 3 classes"
        )
        results = [run_model(name, data, args.output_dir, args.seed) for name in names]

        if len(results) > 1:
            print("\nSummary (test split)")
            print("   model                 nodes    bytes  accuracy sklearn/ONNX  max prob diff")
            for r in results:
                print(
                    f"   {r['name']:<20} {r['nodes']:6d} {r['size']:8d}       "
                    f"{r['sklearn_accuracy']:.3f} / {r['onnx_accuracy']:.3f}  "
                    f"{r['difference']:8.1e}"
                )

        if args.benchmark:
            print_benchmark(results, data, args.seed)

        written = (
            results[0]["path"]
            if len(results) == 1
            else f"{len(results)} files in {args.output_dir}"
        )
        print(f"\nVerified {len(results)} model(s) against scikit-learn; wrote {written}")
        print_versions()
    except AssertionError as error:
        print(f"error: verification failed: {error}", file=sys.stderr)
        return 1
    except OSError as error:
        print(
            f"error: {error.strerror or error}: {error.filename or args.output_dir}",
            file=sys.stderr,
        )
        return 1
    except Exception as error:  # a one-line report instead of a traceback, as the CLI promises
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        print(f"error: {type(error).__name__}: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
