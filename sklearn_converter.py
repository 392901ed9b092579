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

A converter maps a fitted model onto ONNX's standard operators, for example:

    RandomForestClassifier                ->  TreeEnsembleClassifier (one node, ai.onnx.ml domain)
    StandardScaler -> LogisticRegression  ->  Scaler -> LinearClassifier -> Normalizer
    X: float[?, 4]                        ->  label: int64[?], probabilities: float[?, 3]

(`?`: a dynamic dimension without a name, any number of rows.) Serving then needs ONNX Runtime and
one .onnx file: no scikit-learn, no pickle. For the classifier --model names, or for each one:

1. Train:   a seeded, stratified split of Iris (shipped with scikit-learn), features as float32.
2. Convert: skl2onnx.to_onnx (pinned opsets, ZipMap off), then onnx.checker with full_check.
3. Save, load, run: onnx.save_model writes a draft; ONNX Runtime opens it and runs the test rows.
4. Verify:  labels equal predict, each probability within 1e-5 of predict_proba; only then is
            the draft named models/sklearn_<name>.onnx. (k-NN: rows that a tie for the k-th
            neighbour decides are left out and counted; the aside at the end says why.)

    python sklearn_converter.py                     # random_forest, seed 0
    python sklearn_converter.py --model all         # every classifier, then a summary table
    python sklearn_converter.py --model svc --benchmark

It prints what each step found, a line starting "Verified", and the versions it ran with.
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
import collections
import contextlib
import errno
import functools
import importlib.metadata
import secrets
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

# Only numpy and onnxruntime at the top: all that the deployment side (load_session, predict)
# needs. scikit-learn, skl2onnx and onnx are imported by the training-side functions that use them.
import numpy as np
import onnxruntime as ort

if TYPE_CHECKING:  # for the annotations only: serving a model never imports onnx
    import onnx

# Opset 22 of the default domain (the newest skl2onnx 1.20.0 is tested with), 3 of ai.onnx.ml (what
# it pairs with opset 18 and later): skl2onnx imports only what the graph needs, at most these.
TARGET_OPSET = {"": 22, "ai.onnx.ml": 3}
IR_VERSION = 10  # what skl2onnx writes for opset 22, set explicitly
MODELS: tuple[str, ...] = ("logistic_regression", "decision_tree", "random_forest")
MODELS += ("gradient_boosting", "svc", "knn", "naive_bayes", "mlp")
DEFAULT_MODEL = "random_forest"
TEST_SIZE = 0.3  # of Iris's 150 rows, stratified: 45 test rows, 15 per class
# Probabilities lie in [0, 1]; float32 in ONNX and float64 in scikit-learn put them at most about
# 1e-6 apart. Each must be within ATOL (an absolute tolerance: no relative part); labels equal.
RTOL, ATOL = 0.0, 1e-5


def lesson(args: argparse.Namespace) -> None:
    """Train, convert, check, save, load, run and verify each classifier asked for."""
    import onnx  # the training side only

    x_train, x_test, y_train, _ = data = load_iris_split(args.seed)
    results = []
    for name in MODELS if args.model == "all" else (args.model,):
        print(f"\n== {name}")
        classifier = train(make_classifier(name, args.seed), x_train, y_train)
        model = convert(classifier, features=x_train.shape[1])
        # Structure, then shape and type inference node by node (full_check): a converter that
        # declares an output's type wrongly is caught here, before anything is written.
        onnx.checker.check_model(model, full_check=True)
        print(f"2. Converted with skl2onnx (target opsets {TARGET_OPSET}, ZipMap off), checked")
        print("\n".join("   " + line for line in summarize(model)))
        path = args.output_dir / f"sklearn_{name}.onnx"
        with publish(path) as draft:  # a hidden draft, renamed `path` only once verified
            onnx.save_model(model, draft)  # the protobuf: graph, weights, opsets, IR version
            session = load_session(draft)  # read back from disk, as a server will read it
            figures = verify(name, session, classifier, data)
        print(f"   wrote {path} ({path.stat().st_size} bytes)")
        results.append(dict(figures, name=name, classifier=classifier, model=model, path=path))
    if len(results) > 1:
        print_summary(results)
    if args.benchmark:
        print_benchmark(results, x_test, args.seed)
    files = results[0]["path"] if len(results) == 1 else f"{len(results)} files in {path.parent}"
    print(f"\nVerified {len(results)} model(s) against scikit-learn; wrote {files}")
    print_versions()


Classifier: TypeAlias = Any  # scikit-learn ships no type information
Array: TypeAlias = np.ndarray
Split: TypeAlias = tuple[Array, Array, Array, Array]


# --- 1. Train ------------------------------------------------------------------------------------
def load_iris_split(seed: int) -> Split:
    """Return a seeded, stratified float32 split of Iris: x_train, x_test, y_train, y_test."""
    from sklearn.datasets import load_iris
    from sklearn.model_selection import train_test_split

    x, y = load_iris(return_X_y=True)
    # ONNX Runtime will see float32 inputs, so train on float32 too: a tree's thresholds then lie
    # between float32 values, and both sides compare the same numbers at every split.
    x = x.astype(np.float32)
    split = tuple(train_test_split(x, y, test_size=TEST_SIZE, random_state=seed, stratify=y))
    rows = f"{len(split[0])} training and {len(split[1])} test rows (stratified, seed {seed})"
    print(f"Iris: {rows}, {x.shape[1]} float32 features, {len(set(y))} classes")
    return split


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
    epochs = 300 if small else 2000  # the MLP's: about 1,000 to converge; 300 stops early
    mlp = MLPClassifier(hidden_layer_sizes=(16,), max_iter=epochs, random_state=seed)
    families = {
        "logistic_regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        "decision_tree": DecisionTreeClassifier(random_state=seed),
        "random_forest": RandomForestClassifier(n_estimators=trees, random_state=seed),
        "gradient_boosting": GradientBoostingClassifier(n_estimators=trees, random_state=seed),
        # SVC(probability=True) is deprecated in scikit-learn 1.9; its replacement, as the
        # deprecation message says, is calibration around a plain SVC.
        "svc": make_pipeline(StandardScaler(), CalibratedClassifierCV(SVC(), ensemble=False)),
        "knn": KNeighborsClassifier(),
        "naive_bayes": GaussianNB(),
        "mlp": make_pipeline(StandardScaler(), mlp),
    }
    if name not in families:
        raise ValueError(f"unknown model {name!r}")
    return families[name]


def train(classifier: Classifier, x: np.ndarray, y: np.ndarray) -> Classifier:
    """Fit the classifier; Ctrl-C during training stops the run, even inside MLPClassifier."""
    interrupted = "Training interrupted by user"  # what MLPClassifier warns on Ctrl-C
    with warnings.catch_warnings():
        # MLPClassifier catches KeyboardInterrupt in fit, warns and returns a half-trained model,
        # which would then be converted and "verified". As an error, the warning ends fit at once.
        warnings.filterwarnings("error", message=interrupted, category=UserWarning)
        try:
            classifier.fit(x, y)
        except UserWarning as warning:
            if interrupted in str(warning):
                raise KeyboardInterrupt from None
            raise
    steps = getattr(classifier, "steps", [("", classifier)])  # a pipeline, or one estimator
    print("1. Trained " + " -> ".join(type(step).__name__ for _, step in steps))
    return classifier


# --- 2. Convert and check ------------------------------------------------------------------------
def convert(classifier: Classifier, features: int) -> onnx.ModelProto:
    """Convert a fitted classifier: float32 input [?, features] -> labels and probabilities."""
    from onnx.helper import make_opsetid
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    with warnings.catch_warnings():
        # skl2onnx's SVC converter reads probA_ and probB_, which scikit-learn 1.9 deprecates along
        # with SVC(probability=True); the calibrated model does not use them.
        warnings.filterwarnings("ignore", message="Attribute `prob[AB]_`", category=FutureWarning)
        model = to_onnx(
            classifier,
            # None: a dynamic dimension without a name, so one session serves any batch size.
            initial_types=[("X", FloatTensorType([None, features]))],
            target_opset=TARGET_OPSET,
            # By default ZipMap turns the probabilities into one {class: probability} dict per
            # row: slow and awkward in NumPy. Off, they come back as a float matrix.
            options={id(classifier): {"zipmap": False}},
        )
    model.ir_version = IR_VERSION
    # skl2onnx 1.20.0 lists the default domain twice for some models, in an order that changes with
    # PYTHONHASHSEED (a set). One entry per domain, sorted: the same model gives the same bytes.
    versions = {o.domain: o.version for o in sorted(model.opset_import, key=lambda o: o.version)}
    del model.opset_import[:]  # (the highest version of each domain won above)
    model.opset_import.extend(make_opsetid(domain, v) for domain, v in sorted(versions.items()))
    return model


def summarize(model: onnx.ModelProto) -> list[str]:
    """Describe the model in a few lines: inputs, outputs, opsets, nodes by operator type."""
    import onnx

    def describe(value: onnx.ValueInfoProto) -> str:
        # An ONNX type is one of several kinds (a protobuf oneof): a tensor, a sequence (ZipMap's
        # output is a sequence of maps), a map... Only a tensor has a shape to show.
        kind = value.type.WhichOneof("value")
        if kind != "tensor_type":
            return f"{value.name}: {kind}"
        tensor = value.type.tensor_type
        # A dimension is a name (dim_param: dynamic, named), a number (dim_value: fixed), or
        # neither (dynamic, unnamed): shown `?`, as Netron does (ONNX Runtime's shape says None).
        dims = [
            d.dim_param or (str(d.dim_value) if d.HasField("dim_value") else "?")
            for d in tensor.shape.dim
        ]
        element = onnx.TensorProto.DataType.Name(tensor.elem_type).lower()
        return f"{value.name}: {element}[{', '.join(dims)}]"

    counts = collections.Counter(node.op_type for node in model.graph.node)
    opsets = sorted((o.domain or "ai.onnx", o.version) for o in model.opset_import)
    nodes = len(model.graph.node)
    return [
        "inputs:  " + ", ".join(describe(v) for v in model.graph.input),
        "outputs: " + ", ".join(describe(v) for v in model.graph.output),
        f"IR version {model.ir_version}; opsets: " + ", ".join(f"{d} {v}" for d, v in opsets),
        f"{nodes} node{'s' if nodes != 1 else ''}: "
        + ", ".join(f"{op} x{count}" for op, count in counts.most_common(6))
        + (f", and {len(counts) - 6} more operator types" if len(counts) > 6 else ""),
    ]


# --- 3. Save, load, run: the deployment side -----------------------------------------------------
# A server creates the session once, at start-up: that parses the file, checks the graph, picks and
# prepares the kernels, and costs milliseconds. Each request is then one cheap run() call.
def load_session(path: Path) -> ort.InferenceSession:
    """Open a model file in ONNX Runtime, on the CPU."""
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def predict(session: ort.InferenceSession, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return labels and probabilities for a batch of rows, reusing an existing session."""
    # float32, as the model declares (NumPy's default is float64); no copy when it already is.
    x = np.ascontiguousarray(x, dtype=np.float32)
    labels, probabilities = session.run(["label", "probabilities"], {"X": x})
    return labels, probabilities


# --- 4. Verify -----------------------------------------------------------------------------------
def verify(
    name: str, session: ort.InferenceSession, classifier: Classifier, data: Split
) -> dict[str, Any]:
    """Run the test rows in ONNX Runtime, check them against scikit-learn, return the figures."""
    _, x_test, y_train, y_test = data
    labels, probabilities = predict(session, x_test)
    (one_row,) = medians_in_turns([functools.partial(predict, session, x_test[:1])], 20)
    timing = f"run() on 1 row: {one_row * 1e6:.1f} µs, median of 20 calls"
    print(
        f"3. Saved, loaded the file into ONNX Runtime, ran the {len(x_test)} test rows ({timing})"
    )
    tied = tied_rows(classifier, x_test, y_train)  # k-NN only: see the aside below
    difference = compare_with_scikit_learn(name, classifier, x_test, labels, probabilities, tied)
    kept = f" on the {int(np.sum(~tied))} rows that are not tied" if tied.any() else ""
    print(
        f"4. Verified{kept}: labels equal predict; largest difference from predict_proba"
        f" {difference:.2g} <= {ATOL:g}"
    )
    if tied.any():
        k = (classifier[-1] if hasattr(classifier, "steps") else classifier).n_neighbors
        print(f"   {tied.sum()} of {len(x_test)} rows left out: classes tie for neighbour {k}")
    accuracies = [float(np.mean(y == y_test)) for y in (classifier.predict(x_test), labels)]
    print(f"   test accuracy: scikit-learn {accuracies[0]:.3f}, ONNX Runtime {accuracies[1]:.3f}")
    return {"difference": difference, "tied": int(tied.sum()), "accuracies": accuracies}


def compare_with_scikit_learn(
    name: str, classifier: Classifier, x: Array, labels: Array, probabilities: Array, tied: Array
) -> float:
    """Return the largest probability difference from predict_proba on the rows not tied; raise
    AssertionError if a label differs from predict or a probability is beyond the tolerance."""
    kept = ~tied
    rows = int(np.sum(kept))
    left_out = f" ({len(x) - rows} tied rows left out)" if rows < len(x) else ""
    expected = classifier.predict_proba(x)
    if rows == 0:
        raise AssertionError(f"{name}: every row is tied, nothing left to verify")
    shapes, expected_shapes = (labels.shape, probabilities.shape), ((len(x),), expected.shape)
    if shapes != expected_shapes:
        raise AssertionError(f"{name}: output shapes {shapes}, expected {expected_shapes}")
    # Labels first: a row that changes class changes its probabilities too; the label is the news.
    differing = int(np.sum(labels[kept] != classifier.predict(x)[kept]))
    if differing:
        raise AssertionError(f"{name}: {differing} of {rows} labels differ from predict{left_out}")
    kept_probabilities = probabilities[kept].astype(np.float64)
    difference = float(np.max(np.abs(kept_probabilities - expected[kept])))
    try:
        np.testing.assert_allclose(kept_probabilities, expected[kept], rtol=RTOL, atol=ATOL)
    except AssertionError:
        raise AssertionError(
            f"{name}: probabilities differ from predict_proba by up to {difference:.3g} "
            f"(tolerance {ATOL:g}){left_out}"
        ) from None
    return difference


def print_summary(results: list[dict[str, Any]]) -> None:
    """Print one line per model: size, accuracy on both sides, largest difference, rows left out."""
    line = "   {:<20} {:>6} {:>8}  {:>21}  {:>18}  {:>9}".format
    print("\nSummary (test split)")
    print(
        line("model", "nodes", "bytes", "accuracy sklearn/ONNX", "largest difference", "tied rows")
    )
    for r in results:
        accuracy = "{:.3f} / {:.3f}".format(*r["accuracies"])
        difference = f"{r['difference']:.2g} <= {ATOL:g}"
        size = r["path"].stat().st_size
        print(line(r["name"], len(r["model"].graph.node), size, accuracy, difference, r["tied"]))


def print_versions() -> None:
    """Print the versions this run used, so a pasted report can be reproduced."""
    libraries = ("numpy", "onnx", "onnxruntime", "scikit-learn", "skl2onnx")
    found = ", ".join(f"{name} {importlib.metadata.version(name)}" for name in libraries)
    print(f"Versions: Python {sys.version.split()[0]}, {found}")


# --- Aside: k-nearest neighbours and ties --------------------------------------------------------
# Iris is measured to 0.1 cm: two training rows are often exactly as far from a test row. If they
# compete for the k-th nearest place, scikit-learn (float64 distances) and ONNX Runtime (float32,
# then TopK) may keep different ones; neither is wrong, but when their classes differ, so may the
# vote. Such rows are left out of the comparison, and counted.
def tied_rows(classifier: Classifier, x: np.ndarray, y_train: np.ndarray) -> np.ndarray:
    """Mark the rows where training rows of different classes tie for k-th nearest (k-NN only)."""
    from sklearn.neighbors import KNeighborsClassifier

    estimator = classifier[-1] if hasattr(classifier, "steps") else classifier
    if not isinstance(estimator, KNeighborsClassifier):
        return np.zeros(len(x), dtype=bool)
    if hasattr(classifier, "steps"):
        x = classifier[:-1].transform(x)
    k = estimator.n_neighbors
    distances, indices = estimator.kneighbors(x, n_neighbors=estimator.n_samples_fit_)
    # "As far" allows for ONNX's float32 rounding: each float32 distance sqrt(sum((x - t)**2)) is
    # within (features + 4) / 4 float32 epsilons (2**-23) of the exact one, and two distances can
    # err in opposite directions, so within twice that they may come out in either order.
    tie_rtol = (x.shape[1] + 4) / 2 * float(np.finfo(np.float32).eps)
    kth = distances[:, [k - 1]]
    as_far_as_kth = np.abs(distances - kth) <= tie_rtol * kth
    contested = as_far_as_kth[:, k]  # the (k+1)-th nearest is as far as the k-th
    # The choice changes the vote only when the rows competing for it are of different classes.
    classes = np.where(as_far_as_kth, y_train[indices], y_train[indices[:, [k - 1]]])
    return np.asarray(contested & (np.ptp(classes, axis=1) > 0))


# --- Aside: --benchmark, scikit-learn against ONNX Runtime ---------------------------------------
BENCHMARK_BATCHES = (1, 10_000)
BENCHMARK_THREADS = 1  # ONNX Runtime intra-op threads in the benchmark: one, for steady figures
SESSION_REPEATS = 20  # session creations timed per model


def medians_in_turns(calls: Sequence[Callable[[], object]], repeats: int) -> list[float]:
    """Return each call's median wall time over `repeats` calls, made in turns with the others."""
    # Turns spread a noisy moment over every contender; turns of several calls, because a call just
    # after the other library's finds the CPU caches full of that library's data.
    turn = max(1, repeats // 10)
    timings: list[list[float]] = [[] for _ in calls]
    for number in range(repeats // turn + 1):  # turn 0 warms up and is not counted
        for call, times in zip(calls, timings, strict=True):
            for _ in range(turn):
                start = time.perf_counter()
                call()
                if number:
                    times.append(time.perf_counter() - start)
    return [float(np.median(times)) for times in timings]


def print_benchmark(results: list[dict[str, Any]], x_test: np.ndarray, seed: int) -> None:
    """Time predict_proba against ONNX Runtime's run() per batch size, and session creation."""
    print(f"\nBenchmark: median time per call, in turns; ONNX Runtime, {BENCHMARK_THREADS} thread")
    print("   model                  batch   scikit-learn   ONNX Runtime  speed-up")
    options = ort.SessionOptions()
    options.intra_op_num_threads = BENCHMARK_THREADS
    for r in results:
        path, classifier, rng = str(r["path"]), r["classifier"], np.random.default_rng(seed)
        create = functools.partial(ort.InferenceSession, path, options, ["CPUExecutionProvider"])
        (created,) = medians_in_turns([create], SESSION_REPEATS)
        run_onnx = functools.partial(predict, create())
        timings = {}
        for batch in BENCHMARK_BATCHES:
            x = x_test[rng.integers(len(x_test), size=batch)]
            calls = [functools.partial(run, x) for run in (classifier.predict_proba, run_onnx)]
            sklearn_time, onnx_time = medians_in_turns(calls, repeats=100 if batch == 1 else 10)
            timings[batch] = onnx_time
            print(
                f"   {r['name']:<20} {batch:7d} {sklearn_time * 1e6:11.1f} µs"
                f" {onnx_time * 1e6:11.1f} µs {sklearn_time / onnx_time:8.1f}x"
            )
        print(
            f"   {'':<20} creating a session (median of {SESSION_REPEATS}): {created * 1e3:.2f} ms,"
            f" as long as {created / timings[1]:.0f} one-row calls"
        )


# --- The lesson's flags --------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the lesson's own flags."""
    models = ", ".join(MODELS)
    parser.add_argument(
        "--model", choices=(*MODELS, "all"), default=DEFAULT_MODEL, metavar="NAME",
        help=f"classifier to convert: {models}, or all",
    )  # fmt: skip
    parser.add_argument(
        "--benchmark", action="store_true",
        help="time session creation, and predict_proba against ONNX Runtime on 1 and 10,000 rows",
    )  # fmt: skip


def usage_problem(args: argparse.Namespace) -> str | None:
    """Return why the flags cannot work together, or None: every combination of these can."""
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
