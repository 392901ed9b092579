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
"""Iris classifiers trained in scikit-learn, converted with skl2onnx, served by ONNX Runtime alone.

Once a model is trained, a converter maps the framework's operations onto ONNX's
framework-independent operators: a random forest becomes one ``TreeEnsembleClassifier`` node of
the ``ai.onnx.ml`` domain, a scaling pipeline becomes ``Scaler`` followed by the classifier's nodes.
After that, deployment needs ONNX Runtime and one ``.onnx`` file: no scikit-learn, and no pickle.

The lifecycle, for the classifier chosen with ``--model`` (or every one with ``--model all``):

1. Train:   a seeded, stratified split of Iris (it ships with scikit-learn), features as float32.
2. Convert: ``skl2onnx.to_onnx`` with a float32 input of dynamic batch size, explicit target
            opsets for the default and ``ai.onnx.ml`` domains, and ZipMap off.
3. Check:   ``onnx.checker.check_model(full_check=True)`` and a summary of the graph.
4. Save:    ``<output-dir>/sklearn_<name>.onnx``, written atomically.
5. Load and run, the deployment side (onnxruntime and numpy only): ``load_session`` once, the
            expensive step, then ``predict`` per request.
6. Verify:  ONNX labels equal ``predict``, then probabilities match ``predict_proba`` within a
            stated tolerance; a mismatch exits with 1. For k-nearest neighbours, test rows where
            training rows of different classes tie for k-th nearest are left out and counted.

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
import errno
import io
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

if __name__ == "__main__":
    # Ctrl-C while the libraries below are still importing: one line and status 130, as in main().
    def _interrupted_at_startup(signum: int, frame: object) -> None:
        sys.stderr.write("error: interrupted\n")
        os._exit(130)

    signal.signal(signal.SIGINT, _interrupted_at_startup)

# Only numpy and onnxruntime are imported at the top: that is all the deployment side
# (load_session, predict) needs. The training side imports scikit-learn, skl2onnx and onnx inside
# the functions that use them, so serving a model never loads them.
import numpy as np
import onnxruntime as ort

if TYPE_CHECKING:
    # For type annotations only (never imported at run time here): importing onnx at the top would
    # load it on the deployment side too, which must need only numpy and onnxruntime.
    import onnx

# scikit-learn ships no type information, so a classifier or pipeline is Any to the type checker.
Classifier: TypeAlias = Any
Split: TypeAlias = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

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
SEED_MAX = 2**32 - 1  # NumPy and scikit-learn accept seeds from 0 to 2**32 - 1: one range for all
# The converted models compute in float32, scikit-learn in float64: probabilities agree to about
# 1e-6. Labels must agree exactly.
RTOL = 1e-4
ATOL = 1e-5
FLOAT32_EPS = float(np.finfo(np.float32).eps)  # 2**-23: the spacing of float32 numbers near 1
BENCHMARK_BATCHES = (1, 10_000)
BENCHMARK_THREADS = 1  # ONNX Runtime intra-op threads in the benchmark: one, for steady figures
SESSION_REPEATS = 20  # session creations timed per model in the benchmark
# scikit-learn's MLPClassifier catches Ctrl-C inside fit and says only this, as a warning.
INTERRUPTED_TRAINING = "Training interrupted by user"


# --- 1. Train ------------------------------------------------------------------------------------


def load_iris_split(seed: int) -> Split:
    """Return a seeded, stratified float32 split of Iris: x_train, x_test, y_train, y_test."""
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    x, y = load_iris(return_X_y=True)
    # ONNX Runtime will see float32 inputs, so train on float32 too: a tree's thresholds then lie
    # between float32 values, and both sides compare the same numbers at every split.
    x = x.astype(np.float32)
    return tuple(train_test_split(x, y, test_size=TEST_SIZE, random_state=seed, stratify=y))


def make_classifier(name: str, seed: int, small: bool = False) -> Classifier:
    """Return an unfitted classifier of the named family; small=True trains less (for tests)."""
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
        # About 1,000 epochs to converge; small stops at 300 (a ConvergenceWarning, same graph).
        return make_pipeline(
            StandardScaler(),
            MLPClassifier(
                hidden_layer_sizes=(16,), max_iter=300 if small else 2000, random_state=seed
            ),
        )
    raise ValueError(f"unknown model {name!r}")


def train(classifier: Classifier, x: np.ndarray, y: np.ndarray) -> Classifier:
    """Fit the classifier; Ctrl-C during training stops the run, even inside MLPClassifier."""
    with warnings.catch_warnings():
        # MLPClassifier catches KeyboardInterrupt in fit, warns and returns a half-trained model,
        # which would then be converted, saved and "verified". Raised as an error instead, the
        # warning ends fit at once, and the interruption goes on to main() as Ctrl-C should.
        warnings.filterwarnings("error", message=INTERRUPTED_TRAINING, category=UserWarning)
        try:
            return classifier.fit(x, y)
        except UserWarning as warning:
            if INTERRUPTED_TRAINING in str(warning):
                raise KeyboardInterrupt from None
            raise


# --- 2. Convert ----------------------------------------------------------------------------------


def convert(classifier: Classifier, features: int) -> onnx.ModelProto:
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
    # accept it), and collects the domains in a set, whose order changes with PYTHONHASHSEED. Keep
    # one entry per domain, sorted by name, so the same model always gives the same bytes.
    versions: dict[str, int] = {}
    for opset in model.opset_import:
        versions[opset.domain] = max(versions.get(opset.domain, 0), opset.version)
    del model.opset_import[:]
    model.opset_import.extend(make_opsetid(domain, versions[domain]) for domain in sorted(versions))
    return model


# --- 3. Check ------------------------------------------------------------------------------------


def summarize(model: onnx.ModelProto) -> list[str]:
    """Describe the model in a few lines: inputs, outputs, opsets, nodes by operator type."""
    import onnx

    def describe(value: onnx.ValueInfoProto) -> str:
        # An ONNX type is one of several kinds (a oneof in the protobuf): a tensor, a sequence, a
        # map, an optional... ZipMap's output, for instance, is seq(map(int64, tensor(float))).
        # WhichOneof names the kind; only a tensor has an element type and a shape to show.
        kind = value.type.WhichOneof("value")
        if kind != "tensor_type":
            return f"{value.name}: {kind}"
        tensor = value.type.tensor_type
        # A dimension is a name (dim_param, dynamic), a number (dim_value), or neither (unknown):
        # HasField tells an unset dim_value from a real 0.
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


# --- 5. Load and run: the deployment side --------------------------------------------------------
# A server creates the session once, at start-up: that parses the file, checks the graph, picks and
# prepares the kernels, and costs milliseconds. Each request is then one cheap run() call.


def load_session(path: Path, threads: int = 0) -> ort.InferenceSession:
    """Create an ONNX Runtime session for a saved model, on the CPU (threads=0: ONNX's default)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def predict(session: ort.InferenceSession, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return labels and probabilities for a batch of rows, reusing an existing session."""
    labels, probabilities = session.run(["label", "probabilities"], {"X": x.astype(np.float32)})
    return labels, probabilities


# --- 6. Verify -----------------------------------------------------------------------------------


def tied_rows(classifier: Classifier, x: np.ndarray, y_train: np.ndarray) -> np.ndarray:
    """Mark rows whose k-th nearest neighbour is a tie between training rows of different classes.

    Only k-nearest neighbours has such rows; for any other classifier the mask is all False.
    """
    from sklearn.neighbors import KNeighborsClassifier

    estimator = classifier[-1] if hasattr(classifier, "steps") else classifier
    if not isinstance(estimator, KNeighborsClassifier):
        return np.zeros(len(x), dtype=bool)
    if hasattr(classifier, "steps"):
        x = classifier[:-1].transform(x)
    k = estimator.n_neighbors
    # Every training row, nearest first: Iris is measured to 0.1 cm, so two training rows are often
    # exactly as far from a test row. When they compete for the k-th place, scikit-learn (float64
    # distances) and ONNX Runtime (float32 distances, then TopK) may keep different ones.
    distances, indices = estimator.kneighbors(x, n_neighbors=estimator.n_samples_fit_)
    # "As far" must allow for ONNX's float32 rounding: each float32 distance
    # sqrt(sum((x - t)**2)) is within (features + 4) / 4 * eps of the exact one (a rounding for
    # each difference, square and addition, and for the square root), and two distances can err in
    # opposite directions, so within twice that they may come out in either order.
    tie_rtol = (x.shape[1] + 4) / 2 * FLOAT32_EPS
    kth = distances[:, [k - 1]]
    as_far_as_kth = np.abs(distances - kth) <= tie_rtol * kth
    contested = as_far_as_kth[:, k]  # the (k+1)-th nearest is as far as the k-th
    # The choice changes the vote only when the rows competing for it belong to different classes.
    classes = y_train[indices]
    lowest = np.where(as_far_as_kth, classes, np.iinfo(np.int64).max).min(axis=1)
    highest = np.where(as_far_as_kth, classes, np.iinfo(np.int64).min).max(axis=1)
    return np.asarray(contested & (lowest != highest))


def verify(
    name: str,
    classifier: Classifier,
    x_test: np.ndarray,
    labels: np.ndarray,
    probabilities: np.ndarray,
    tied: np.ndarray,
) -> float:
    """Check labels exactly, then probabilities within tolerance, on the rows that are not tied.

    Returns the largest probability difference.
    """
    kept = ~tied
    rows = int(np.sum(kept))
    left_out = f" ({len(x_test) - rows} tied rows left out)" if rows < len(x_test) else ""
    if rows == 0:
        raise AssertionError(f"{name}: every row is tied, nothing left to verify")
    if labels.shape != (len(x_test),):
        raise AssertionError(f"{name}: labels shape {labels.shape} != {(len(x_test),)}")
    expected = classifier.predict_proba(x_test)
    if probabilities.shape != expected.shape:
        raise AssertionError(
            f"{name}: probabilities shape {probabilities.shape} != {expected.shape}"
        )
    # Labels first: a row that changes class also changes its probabilities, and "labels differ"
    # is the finding to report then.
    differing = int(np.sum(labels[kept] != classifier.predict(x_test)[kept]))
    if differing:
        raise AssertionError(f"{name}: {differing} of {rows} labels differ from predict{left_out}")
    kept_probabilities = probabilities[kept].astype(np.float64)
    difference = float(np.max(np.abs(kept_probabilities - expected[kept])))
    try:
        np.testing.assert_allclose(kept_probabilities, expected[kept], rtol=RTOL, atol=ATOL)
    except AssertionError:
        raise AssertionError(
            f"{name}: probabilities differ from predict_proba by up to {difference:.3g} "
            f"(tolerance rtol={RTOL:g}, atol={ATOL:g}){left_out}"
        ) from None
    return difference


# --- Benchmark -----------------------------------------------------------------------------------


def interleaved_medians(
    calls: Sequence[Callable[[], object]], repeats: int, warmup: int = 5, rounds: int = 10
) -> list[float]:
    """Return each call's median wall time; the calls take turns, so noise hits them alike."""
    for _ in range(warmup):
        for call in calls:
            call()
    # Turns of several calls, not one: a call made just after the other library's finds the CPU
    # caches full of that library's data (a forest's one-row run took 5 µs alone, 45 µs that
    # way). The first call of each turn pays that; the median over the turn's calls does not.
    per_turn = max(1, repeats // rounds)
    timings: list[list[float]] = [[] for _ in calls]
    for _ in range(max(1, repeats // per_turn)):
        for call, times in zip(calls, timings, strict=True):
            for _ in range(per_turn):
                start = time.perf_counter()
                call()
                times.append(time.perf_counter() - start)
    return [statistics.median(times) for times in timings]


def benchmark(
    classifier: Classifier, path: Path, x_test: np.ndarray, seed: int
) -> tuple[float, list[tuple[int, float, float]]]:
    """Time session creation, then predict_proba against run per batch size.

    Returns the median session creation time and (batch, scikit-learn s, ONNX Runtime s) rows.
    """
    (create_time,) = interleaved_medians(
        [lambda: load_session(path, BENCHMARK_THREADS)], SESSION_REPEATS, warmup=1
    )
    session = load_session(path, BENCHMARK_THREADS)
    rng = np.random.default_rng(seed)
    rows = []
    for batch in BENCHMARK_BATCHES:
        x = x_test[rng.integers(len(x_test), size=batch)]
        sklearn_time, onnx_time = interleaved_medians(
            [partial(classifier.predict_proba, x), partial(session.run, None, {"X": x})],
            repeats=100 if batch == 1 else 10,
        )
        rows.append((batch, sklearn_time, onnx_time))
    return create_time, rows


def print_benchmark(results: list[dict[str, Any]], data: Split, seed: int) -> None:
    """Print the benchmark tables, then how one row served by ONNX Runtime compares."""
    x_train, x_test, y_train, _ = data
    print(
        "\nBenchmark: median time per call, scikit-learn and ONNX Runtime timed in alternating"
        f" turns; ONNX Runtime with {BENCHMARK_THREADS} intra-op thread"
    )
    print("   model                  batch   scikit-learn   ONNX Runtime  speed-up")
    one_row: dict[str, tuple[float, float]] = {}
    creation: dict[str, float] = {}
    for r in results:
        creation[r["name"]], rows = benchmark(r["classifier"], r["path"], x_test, seed)
        for batch, sklearn_time, onnx_time in rows:
            print(
                f"   {r['name']:<20} {batch:7d} {sklearn_time * 1e6:11.1f} µs"
                f" {onnx_time * 1e6:11.1f} µs {sklearn_time / onnx_time:8.1f}x"
            )
            if batch == 1:
                one_row[r["name"]] = (sklearn_time, onnx_time)

    print(
        f"\nCreating the session (median of {SESSION_REPEATS}), a one-off cost, against one "
        "call on one row (from the table above)"
    )
    print("   model                create session   one call   calls it is worth")
    for name, create_time in creation.items():
        onnx_time = one_row[name][1]
        print(
            f"   {name:<20} {create_time * 1e3:11.2f} ms {onnx_time * 1e6:8.1f} µs"
            f" {create_time / onnx_time:12.0f}"
        )

    # The yardstick for serving one row: scikit-learn's predict_proba of a logistic regression,
    # a model that does very little work, so what it costs is mostly scikit-learn's own overhead.
    if "logistic_regression" in one_row:
        baseline_time = one_row["logistic_regression"][0]  # measured in the table above
    else:
        baseline = make_classifier("logistic_regression", seed).fit(x_train, y_train)
        (baseline_time,) = interleaved_medians([lambda: baseline.predict_proba(x_test[:1])], 100)
    print(
        f"\n   one row with scikit-learn's logistic regression predict_proba: "
        f"{baseline_time * 1e6:.1f} µs"
    )
    for name, (_, onnx_time) in one_row.items():
        ratio = baseline_time / onnx_time
        comparison = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
        print(
            f"   one row of {name} served by ONNX Runtime: {onnx_time * 1e6:.1f} µs, "
            f"{comparison} than that"
        )
    if len(one_row) > 1:
        quickest = min(one_row, key=lambda name: one_row[name][0])
        print(
            f"   quickest scikit-learn predict_proba on one row here: {quickest}, "
            f"{one_row[quickest][0] * 1e6:.1f} µs"
        )


# --- The lifecycle for one model -----------------------------------------------------------------


def run_model(
    name: str, data: Split, output_dir: Path, seed: int, small: bool = False
) -> dict[str, Any]:
    """Train, convert, check, save, load, run and verify one classifier; return its results."""
    import onnx

    x_train, x_test, y_train, y_test = data
    print(f"\n== {name}")
    classifier = train(make_classifier(name, seed, small), x_train, y_train)
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

    # Rough timings, to show the orders of magnitude; --benchmark measures properly.
    start = time.perf_counter()
    session = load_session(path)
    created = time.perf_counter() - start
    start = time.perf_counter()
    labels, probabilities = predict(session, x_test)
    first_call = time.perf_counter() - start
    (row_call,) = interleaved_medians([partial(predict, session, x_test[:1])], 20, warmup=1)
    print(
        f"5. Loaded it from disk into an ONNX Runtime session and ran the {len(x_test)} test rows\n"
        f"   rough timings: creating the session {created * 1e3:.1f} ms (once per process), the"
        f" first run() on {len(x_test)} rows {first_call * 1e6:.0f} µs, run() on 1 row"
        f" {row_call * 1e6:.1f} µs (median of 20 calls)"
    )

    tied = tied_rows(classifier, x_test, y_train)
    difference = verify(name, classifier, x_test, labels, probabilities, tied)
    sklearn_accuracy = float(np.mean(classifier.predict(x_test) == y_test))
    onnx_accuracy = float(np.mean(labels == y_test))
    checked = "" if not tied.any() else f" on the {int(np.sum(~tied))} rows that are not tied"
    print(
        f"6. Verified{checked}: labels equal predict; largest difference from predict_proba"
        f" {difference:.2g} (rtol={RTOL:g}, atol={ATOL:g})"
    )
    if tied.any():
        k = (classifier[-1] if hasattr(classifier, "steps") else classifier).n_neighbors
        print(
            f"   {int(tied.sum())} of {len(x_test)} rows left out: training rows of different"
            f" classes tie for {k}th nearest (equally far within float32 rounding), and"
            " scikit-learn and ONNX Runtime may keep different ones"
        )
    print(
        f"   test accuracy: scikit-learn {sklearn_accuracy:.3f}, ONNX Runtime {onnx_accuracy:.3f}"
    )
    return {
        "name": name,
        "classifier": classifier,
        "path": path,
        "size": size,
        "nodes": len(model.graph.node),
        "difference": difference,
        "tied": int(tied.sum()),
        "sklearn_accuracy": sklearn_accuracy,
        "onnx_accuracy": onnx_accuracy,
    }


def print_summary(results: list[dict[str, Any]]) -> None:
    """Print one line per model: size, accuracy on both sides, largest difference, rows left out."""
    print("\nSummary (test split)")
    print(
        "   model                 nodes    bytes  accuracy sklearn/ONNX  max prob diff  tied rows"
    )
    for r in results:
        print(
            f"   {r['name']:<20} {r['nodes']:6d} {r['size']:8d}       "
            f"{r['sklearn_accuracy']:.3f} / {r['onnx_accuracy']:.3f}  "
            f"{r['difference']:8.1e}  {r['tied']:9d}"
        )


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
        help="time session creation, and scikit-learn's predict_proba against ONNX Runtime on 1 "
        "row and a large batch",
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
    if isinstance(sys.stdout, io.TextIOWrapper):
        # Any terminal encoding: a character it cannot show (µ) becomes an escape, not an error.
        sys.stdout.reconfigure(errors="backslashreplace")
    # From here on Ctrl-C raises KeyboardInterrupt, which the handler below turns into status 130.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    names = MODELS if args.model == "all" else (args.model,)
    try:
        prepare_output_dir(args.output_dir)
        data = load_iris_split(args.seed)
        print(
            f"Iris: {len(data[0])} training and {len(data[1])} test rows (stratified, seed "
            f"{args.seed}), 4 float32 features, 3 classes"
        )
        results = [run_model(name, data, args.output_dir, args.seed) for name in names]
        if len(results) > 1:
            print_summary(results)
        if args.benchmark:
            print_benchmark(results, data, args.seed)

        written = (
            results[0]["path"]
            if len(results) == 1
            else f"{len(results)} files in {args.output_dir}"
        )
        print(f"\nVerified {len(results)} model(s) against scikit-learn; wrote {written}")
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
