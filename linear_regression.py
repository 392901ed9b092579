# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "flatbuffers==25.12.19",
#     "ml_dtypes==0.6.0",
#     "numpy==2.4.6",
#     "onnx==1.23.2",
#     "onnxruntime==1.32.0",
#     "packaging==26.4",
#     "protobuf==7.36.2",
#     "typing_extensions==4.16.0",
# ]
# ///
"""Linear regression in ONNX, built node by node with ``onnx.helper``.

An ONNX model is a graph: typed inputs, operator nodes, constant tensors (initializers) and typed
outputs, serialised as a protobuf file that any ONNX runtime can execute. This lesson builds the
smallest useful one, the linear model

    Y = X·A + B        X: [N, features] float32, A: [features, 1], B: [1], Y: [N, 1]

where N is a named dynamic batch dimension, so one file serves a single row or a million rows.

The lifecycle, one step per function below:

1. Fit:    make a seeded synthetic data set with known coefficients; fit A and B by least squares.
2. Build:  the graph ``MatMul(X, A) -> Add(., B) -> Y`` with A and B stored as initializers.
3. Check:  ``onnx.checker.check_model(full_check=True)``, shape inference, the readable text form.
4. Save:   ``<output-dir>/linear_regression.onnx``, written atomically.
5. Load:   the file back from disk into an ONNX Runtime session on the CPU.
6. Run and verify: batches of 1 and of many new rows, against ``X @ A + B`` in NumPy and against
   ``onnx.reference.ReferenceEvaluator``, within a stated tolerance. A mismatch exits with 1.

Run it:

    python linear_regression.py                    # 3 features, 100 training rows, seed 0
    python linear_regression.py --features 5 --samples 200 --output-dir /tmp/models

It prints a narrated report: the true and fitted coefficients, the graph in ONNX's text form (long
weight lists elided), the session's inputs and outputs, the largest differences against both
references with the float32 error bound they must stay within, where the model was written, and the
library versions.
"""

from __future__ import annotations

import argparse
import errno
import os
import platform
import signal
import sys
import tempfile
from pathlib import Path
from typing import NoReturn, cast

if __name__ == "__main__":
    # Ctrl-C while the libraries below are still importing: one line and status 130, as in main().
    def _interrupted_at_startup(signum: int, frame: object) -> None:
        sys.stderr.write("error: interrupted\n")
        os._exit(130)

    signal.signal(signal.SIGINT, _interrupted_at_startup)

import numpy as np
import onnx
import onnx.printer
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

# Opset 22 and IR version 10 are what ONNX 1.17 writes. Left out, make_model stamps the newest
# versions the installed onnx knows (opset 28, IR version 14 for onnx 1.23), and a runtime older
# than that onnx refuses the file. Pinned, the file loads in the pinned onnxruntime (which accepts
# up to opset 28 and IR version 14) and in older runtimes too.
OPSET = 22
IR_VERSION = 10
MODEL_FILE = "linear_regression.onnx"
DEFAULT_FEATURES = 3
DEFAULT_SAMPLES = 100
NOISE = 0.1  # standard deviation of the noise added to the synthetic targets
NEW_ROWS = 64  # size of the "many rows" batch used for verification
SEED_MAX = 2**32 - 1  # NumPy and scikit-learn accept seeds from 0 to 2**32 - 1: one range for all
# u, the unit roundoff of float32: one rounding changes a value by at most this relative amount.
FLOAT32_UNIT_ROUNDOFF = 2.0**-24
TEXT_VALUES_SHOWN = 16  # initializers with more values than this are elided in the text form


# --- 1. Fit --------------------------------------------------------------------------------------


def make_dataset(
    features: int, samples: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Return X, y and the true coefficients A, B of a noisy synthetic linear data set."""
    rng = np.random.default_rng(seed)
    true_a = rng.uniform(-2.0, 2.0, size=features)
    true_b = float(rng.uniform(-1.0, 1.0))
    x = rng.normal(size=(samples, features))
    y = x @ true_a + true_b + NOISE * rng.normal(size=samples)
    return x, y, true_a, true_b


def fit_least_squares(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fit y ≈ x·A + B; return A as a float32 [features, 1] matrix and B as a float32 [1] vector."""
    # A column of ones turns the intercept B into one more coefficient to solve for.
    design = np.column_stack([x, np.ones(len(x))])
    coefficients, *_ = np.linalg.lstsq(design, y, rcond=None)
    a = coefficients[:-1].reshape(-1, 1).astype(np.float32)
    b = coefficients[-1:].astype(np.float32)
    return a, b


# --- 2. Build ------------------------------------------------------------------------------------


def build_model(a: np.ndarray, b: np.ndarray) -> onnx.ModelProto:
    """Build the ONNX graph Y = MatMul(X, A) + B with A and B stored as initializers."""
    features = a.shape[0]
    # A value info declares a name, an element type and a shape. The string "N" is a symbolic
    # dimension: any batch size is accepted, and tools show it by name.
    x_info = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", features])
    y_info = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 1])
    # Initializers are constant tensors stored inside the file: the fitted parameters.
    initializers = [numpy_helper.from_array(a, name="A"), numpy_helper.from_array(b, name="B")]
    # Nodes are connected by tensor names: MatMul writes "XA", Add reads it.
    nodes = [
        helper.make_node("MatMul", ["X", "A"], ["XA"], name="matmul"),
        helper.make_node("Add", ["XA", "B"], ["Y"], name="add"),  # B broadcasts over the batch
    ]
    graph = helper.make_graph(
        nodes, "linear_regression", [x_info], [y_info], initializer=initializers
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],  # "" is the default ai.onnx domain
        ir_version=IR_VERSION,
        producer_name="onnx-by-example/linear_regression.py",
        doc_string=f"Y = X·A + B with {features} features, fitted by least squares",
    )
    model.graph.doc_string = "Y = MatMul(X, A) + B"
    return model


# --- 3. Check ------------------------------------------------------------------------------------


def check_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """Validate the model and return a copy with the inferred shapes of intermediate tensors."""
    # full_check also runs strict shape inference, so a MatMul between mismatched shapes is
    # rejected here instead of at run time.
    onnx.checker.check_model(model, full_check=True)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def text_form(model: onnx.ModelProto, values_shown: int = TEXT_VALUES_SHOWN) -> str:
    """Return ONNX's text form of the model, with initializers of many values elided."""
    # The printer writes every weight; 5,000 features would make one line of 50,000 characters.
    # So print a skeleton: the same model metadata and nodes, and for each large initializer an
    # empty tensor of the same type and shape. Building it copies no weight data.
    skeleton_graph = helper.make_graph(
        model.graph.node,
        model.graph.name,
        model.graph.input,
        model.graph.output,
        value_info=model.graph.value_info,
        doc_string=model.graph.doc_string,
    )
    elided = {}
    for tensor in model.graph.initializer:
        count = int(np.prod(tensor.dims))
        if count <= values_shown:
            skeleton_graph.initializer.append(tensor)
        else:
            skeleton_graph.initializer.add(name=tensor.name, data_type=tensor.data_type)
            skeleton_graph.initializer[-1].dims.extend(tensor.dims)
            elided[tensor.name] = count
    skeleton = onnx.ModelProto(
        ir_version=model.ir_version,
        producer_name=model.producer_name,
        doc_string=model.doc_string,
        graph=skeleton_graph,
    )
    skeleton.opset_import.extend(model.opset_import)
    text = onnx.printer.to_text(skeleton)
    for name, count in elided.items():
        text = text.replace(f" {name} =  {{}}", f" {name} = {{...{count} values...}}")
    return text


# --- 4. Save -------------------------------------------------------------------------------------


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


def save_model(model: onnx.ModelProto, path: Path) -> int:
    """Write the model atomically to path and return its size in bytes."""
    data = model.SerializeToString()
    # A temporary file in the same folder, then os.replace: a reader of path sees either the old
    # file or the complete new one, never a half-written protobuf.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        # Open the handle first: if anything below fails, the with block closes it, and the
        # cleanup can remove the file (Windows cannot remove a file that is still open).
        with os.fdopen(handle, "wb") as stream:
            # mkstemp creates the file readable by its owner only; give it the usual permissions.
            os.chmod(temporary, 0o666 & ~umask)
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return len(data)


# --- 5. Load, and running a loaded model ----------------------------------------------------------


def load_session(path: Path) -> ort.InferenceSession:
    """Open the saved file in ONNX Runtime, on the CPU."""
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_onnxruntime(session: ort.InferenceSession, x: np.ndarray) -> np.ndarray:
    """Run the session on a float32 batch and return Y."""
    # None asks for every output; the feed is keyed by input name.
    return session.run(None, {"X": x})[0]


def run_reference_evaluator(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """Run the model with onnx's pure-Python reference evaluator, an independent implementation."""
    # run returns a list of outputs (a dict only when asked for intermediate results).
    outputs = cast("list[np.ndarray]", ReferenceEvaluator(model).run(None, {"X": x}))
    return outputs[0]


# --- 6. Run and verify ----------------------------------------------------------------------------


def numpy_reference(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Compute X·A + B in float64 NumPy from the same float32 parameters."""
    return x.astype(np.float64) @ a.astype(np.float64) + b.astype(np.float64)


def float32_error_bound(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return, per row, how far a float32 evaluation of X·A + B may be from the exact value."""
    # Each output is a sum of n = features + 1 terms (n - 1 products x_i·a_i, plus B). Whatever
    # the order of the additions (runtimes block and vectorise them differently), the float32
    # result differs from the exact sum by at most gamma_n·sum|term|, with
    # gamma_n = n·u / (1 - n·u) (Higham, Accuracy and Stability of Numerical Algorithms, 3.1).
    # The bound grows with the number of terms and their magnitudes: 500 features allow 100
    # times the error of 5, and a fixed tolerance is wrong for one of them.
    terms = a.shape[0] + 1
    gamma = terms * FLOAT32_UNIT_ROUNDOFF / (1 - terms * FLOAT32_UNIT_ROUNDOFF)
    magnitudes = np.abs(x.astype(np.float64)) @ np.abs(a.astype(np.float64)) + np.abs(b)
    return gamma * magnitudes


def compare(name: str, actual: np.ndarray, expected: np.ndarray, bound: np.ndarray) -> float:
    """Return the largest absolute difference; raise AssertionError where it exceeds the bound."""
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {actual.shape} differs from {expected.shape}")
    difference = np.abs(actual.astype(np.float64) - expected.astype(np.float64))
    outside = int(np.count_nonzero(difference > bound))
    if outside:
        worst = int(np.argmax(difference - bound))
        raise AssertionError(
            f"{name}: {outside} of {difference.size} values differ by more than the float32 "
            f"error bound (largest difference {difference.flat[worst]:.3g} where the bound is "
            f"{bound.flat[worst]:.3g})"
        )
    return float(difference.max())


def verify(
    session: ort.InferenceSession,
    loaded: onnx.ModelProto,
    a: np.ndarray,
    b: np.ndarray,
    seed: int,
) -> None:
    """Run batches of 1 and NEW_ROWS new rows; check against NumPy and the reference evaluator."""
    rng = np.random.default_rng(seed + 1)
    for rows in (1, NEW_ROWS):
        x_new = rng.normal(size=(rows, a.shape[0])).astype(np.float32)
        y_onnxruntime = run_onnxruntime(session, x_new)
        bound = float32_error_bound(x_new, a, b)
        # NumPy in float64 is exact to within 1e-16 relative here: the whole bound is ONNX
        # Runtime's. The reference evaluator computes in float32 too, so two float32 results may
        # each be off by the bound, in opposite directions: twice the bound between them.
        numpy_difference = compare(
            f"batch {rows}, ONNX Runtime vs NumPy",
            y_onnxruntime,
            numpy_reference(x_new, a, b),
            bound,
        )
        reference_difference = compare(
            f"batch {rows}, ONNX Runtime vs reference evaluator",
            y_onnxruntime,
            run_reference_evaluator(loaded, x_new),
            2 * bound,
        )
        print(
            f"   batch of {rows:3d}: Y {list(y_onnxruntime.shape)}, largest difference vs NumPy "
            f"{numpy_difference:.2g} <= {bound.max():.2g}, vs reference evaluator "
            f"{reference_difference:.2g} <= {2 * bound.max():.2g}"
        )


# --- Command line --------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    """Parse a whole number of 1 or more, for argparse."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
    """Parse and validate the command line; exit 2 with one message on a usage error."""
    parser = argparse.ArgumentParser(
        prog=Path(__file__).name,
        description="Fit a linear regression, build it as an ONNX graph by hand, save it, "
        "and verify ONNX Runtime against NumPy and the ONNX reference evaluator.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--features", type=positive_int, default=DEFAULT_FEATURES, help="number of input features"
    )
    parser.add_argument(
        "--samples",
        type=positive_int,
        default=DEFAULT_SAMPLES,
        help="training rows; at least features + 1",
    )
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path("models"),
        help="folder for the .onnx file, created when missing",
    )
    parser.add_argument("--seed", type=seed_int, default=0, help="random seed, 0 to 2**32 - 1")

    # argparse prints the whole usage before the error; one line that names the problem reads
    # better in a terminal and in CI logs. The exit status stays 2, argparse's usage error.
    def usage_error(message: str) -> NoReturn:
        parser.exit(2, f"{parser.prog}: error: {message} (see --help)\n")

    parser.error = usage_error  # type: ignore[method-assign]
    args = parser.parse_args(argv)
    if args.samples < args.features + 1:
        parser.error(
            f"argument --samples: {args.samples} rows cannot determine {args.features} "
            f"coefficients and an intercept; use at least {args.features + 1}"
        )
    return args


def print_versions() -> None:
    """Print the versions this run used, so a pasted report can be reproduced."""
    print(
        f"Versions: Python {platform.python_version()}, numpy {np.__version__}, "
        f"onnx {onnx.__version__}, onnxruntime {ort.__version__}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the lesson: fit, build, check, save, load, run and verify."""
    args = parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        # Any terminal encoding: a character it cannot show becomes an escape, not an error.
        sys.stdout.reconfigure(errors="backslashreplace")
    # From here on Ctrl-C raises KeyboardInterrupt, which the handler below turns into status 130.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    path = args.output_dir / MODEL_FILE
    try:
        prepare_output_dir(args.output_dir)
        print(
            f"Linear regression Y = X·A + B: {args.features} features, "
            f"{args.samples} training rows, seed {args.seed}"
        )

        print("\n1. Fit A and B with NumPy least squares on a noisy synthetic data set")
        x_train, y_train, true_a, true_b = make_dataset(args.features, args.samples, args.seed)
        a, b = fit_least_squares(x_train, y_train)
        print("   coefficient       true     fitted")
        for index in range(min(args.features, TEXT_VALUES_SHOWN)):
            print(f"   {f'A[{index}]':<12} {true_a[index]:10.4f} {a[index, 0]:10.4f}")
        if args.features > TEXT_VALUES_SHOWN:
            print(f"   ... and {args.features - TEXT_VALUES_SHOWN} more")
        print(f"   {'B':<12} {true_b:10.4f} {b[0]:10.4f}")

        print(
            "\n2. Build the graph with onnx.helper: MatMul, then Add, with A and B as initializers"
        )
        model = build_model(a, b)
        print(
            f"   opset {OPSET}, IR version {IR_VERSION}, nodes: "
            + ", ".join(node.op_type for node in model.graph.node)
        )

        print("\n3. Check it (onnx.checker, full_check=True), infer shapes, print the text form")
        inferred = check_model(model)
        for info in inferred.graph.value_info:
            dims = [d.dim_param or d.dim_value for d in info.type.tensor_type.shape.dim]
            print(f"   inferred intermediate {info.name}: {dims}")
        for line in text_form(model).splitlines():
            print("   " + line.rstrip())

        print("\n4. Save it atomically")
        size = save_model(model, path)
        print(f"   wrote {path} ({size} bytes)")

        print("\n5. Load the file back from disk into ONNX Runtime (CPUExecutionProvider)")
        session = load_session(path)
        loaded = onnx.load(path)
        for kind, values in (("input ", session.get_inputs()), ("output", session.get_outputs())):
            for value in values:
                print(f"   {kind} {value.name}: {value.type} {value.shape}")

        print("\n6. Run and verify on new rows, within float32's error bound for X·A + B")
        verify(session, loaded, a, b, args.seed)
        print(f"\nVerified: {path} agrees with both references.")
        print_versions()
        sys.stdout.flush()  # a closed pipe surfaces here at the latest, inside the handlers below
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
