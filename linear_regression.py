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
import platform
import secrets
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import numpy as np
import onnx
import onnx.printer
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

# Opset 22 and IR version 10 are what ONNX 1.17 writes. Left out, make_model stamps the newest
# versions the installed onnx knows (opset 28, IR version 14 for onnx 1.23), and a runtime older
# than that onnx refuses the file. Pinned, the file loads in the pinned onnxruntime (which accepts
# up to opset 28 and IR version 14) and in onnxruntime 1.21 and later (docs/other_runtimes.md).
OPSET = 22
IR_VERSION = 10
MODEL_FILE = "linear_regression.onnx"
NOISE = 0.1  # standard deviation of the noise added to the synthetic targets
NEW_ROWS = 64  # size of the "many rows" batch used for verification
# u, the unit roundoff of float32: one rounding changes a value by at most this relative amount.
FLOAT32_UNIT_ROUNDOFF = 2.0**-24
TEXT_VALUES_SHOWN = 16  # initializers with more values than this are elided in the text form
MAX_VALUES = 10**8  # features x samples: 800 MB of float64 training data, the most we try


def lesson(args: argparse.Namespace) -> None:
    """The lesson, step by step: fit, build, check, save, load, run and verify."""
    print(
        f"Linear regression Y = X·A + B: {args.features} features, "
        f"{args.samples} training rows, seed {args.seed}"
    )
    a, b = fit(args.features, args.samples, args.seed)
    model = build_model(a, b)
    print(f"   opset {OPSET}, IR version {IR_VERSION}, nodes: {node_list(model)}")
    check(model)
    path = args.output_dir / MODEL_FILE
    print("\n4. Save it with onnx.save_model, as a draft that gets its name once verified")
    with publish(path) as draft:
        onnx.save_model(model, draft)
        print("\n5. Load the file back from disk into ONNX Runtime (CPUExecutionProvider)")
        session = load_session(draft)
        show_signature(session)
        print("\n6. Run and verify on new rows, within float32's error bound for X·A + B")
        verify(session, onnx.load(draft), a, b, args.seed)
    print(f"   wrote {path} ({path.stat().st_size} bytes)")
    print(f"\nVerified: {path} agrees with both references.")
    print(
        f"Versions: Python {platform.python_version()}, numpy {np.__version__}, "
        f"onnx {onnx.__version__}, onnxruntime {ort.__version__}"
    )


# --- 1. Fit --------------------------------------------------------------------------------------


def fit(features: int, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fit A and B on a seeded synthetic data set and print them beside the true coefficients."""
    print("\n1. Fit A and B with NumPy least squares on a noisy synthetic data set")
    x_train, y_train, true_a, true_b = make_dataset(features, samples, seed)
    a, b = fit_least_squares(x_train, y_train)
    print("   coefficient       true     fitted")
    for index in range(min(features, TEXT_VALUES_SHOWN)):
        print(f"   {f'A[{index}]':<12} {true_a[index]:10.4f} {a[index, 0]:10.4f}")
    if features > TEXT_VALUES_SHOWN:
        print(f"   ... and {features - TEXT_VALUES_SHOWN} more")
    print(f"   {'B':<12} {true_b:10.4f} {b[0]:10.4f}")
    return a, b


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
    print("\n2. Build the graph with onnx.helper: MatMul, then Add, with A and B as initializers")
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


def node_list(model: onnx.ModelProto) -> str:
    """Return the graph's operator types in order, for the report."""
    return ", ".join(node.op_type for node in model.graph.node)


# --- 3. Check ------------------------------------------------------------------------------------


def check(model: onnx.ModelProto) -> None:
    """Check the model, print the shapes inference finds inside it, and print its text form."""
    print("\n3. Check it (onnx.checker, full_check=True), infer shapes, print the text form")
    for info in check_model(model).graph.value_info:
        print(f"   inferred intermediate {info.name}: {dims(info.type.tensor_type.shape)}")
    for line in text_form(model).splitlines():
        print("   " + line.rstrip())


def check_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """Validate the model and return a copy with the inferred shapes of intermediate tensors."""
    # full_check also runs strict shape inference, so a MatMul between mismatched shapes is
    # rejected here instead of at run time.
    onnx.checker.check_model(model, full_check=True)
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def dims(shape: onnx.TensorShapeProto) -> list[str | int]:
    """Return a shape as the lessons print it: a named dimension by name, an unnamed one as ?."""
    return [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in shape.dim]


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


# --- 5. Load, and run a loaded model --------------------------------------------------------------


def load_session(path: Path) -> ort.InferenceSession:
    """Open a saved model file in ONNX Runtime, on the CPU."""
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def show_signature(session: ort.InferenceSession) -> None:
    """Print the inputs and outputs as ONNX Runtime sees them: names, types and shapes."""
    for kind, values in (("input ", session.get_inputs()), ("output", session.get_outputs())):
        for value in values:
            shape = ["?" if d is None else d for d in value.shape]
            print(f"   {kind} {value.name}: {value.type} {shape}")


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
    # The bound grows with the number of terms and with their magnitudes: from 5 features to 500,
    # gamma alone grows 83 times (501 / 6), and the sum of |terms| grows too. A fixed tolerance
    # is wrong for one of them.
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


# --- The lesson's flags ---------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this lesson's flags; the plumbing block adds --output-dir and --seed."""
    size = functools.partial(whole_number, low=1, high=MAX_VALUES)
    parser.add_argument("--features", type=size, default=3, help="number of input features")
    parser.add_argument("--samples", type=size, default=100, help="training rows, > features")


def usage_problem(args: argparse.Namespace) -> str | None:
    """Return why the flags cannot work together, or None."""
    if args.samples < args.features + 1:
        return (
            f"argument --samples: {args.samples} rows cannot determine {args.features} "
            f"coefficients and an intercept; use at least {args.features + 1}"
        )
    if args.samples * args.features > MAX_VALUES:
        return f"--samples x --features is at most {MAX_VALUES:,} (the training data's size)"
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
