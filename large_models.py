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
"""Models past protobuf's 2 GB limit: an MLP whose weights live in an external data file.

A .onnx file is one protobuf message, and protobuf cannot serialise 2 GiB or more. ONNX's answer is
*external data*: each large tensor in the .onnx keeps its name, type and shape, and says where its
bytes are instead (``location``, relative to the .onnx file's folder, ``offset``, ``length``):

    models/large_models.onnx          graph + small tensors    W0: location, offset 0, length ...
    models/large_models.<hash>.data   the large tensors' bytes, one after another

Steps: 1. build an MLP (MatMul, Add, Relu per layer; Softmax, ArgMax) of He-initialised weights
written into the proto in place, 2. save a draft pair: mark the tensors that ``onnx.save_model(...,
save_as_external_data=True, size_threshold=1024)`` would move, then ``onnx.save_model``, 3. check
it by path, 4. load it by path in ONNX Runtime, 5. verify it against a float64 NumPy pass and
onnx's reference evaluator, 6. publish the verified pair, data file first, under a lock that
simultaneous runs share. The data file is named after its content (SHA-256), so a name never
points at other bytes. The default run is small and takes seconds; ``--layers 26000,26000,3``
writes and verifies 2.7 GB (about 10 GB of memory and minutes; docs/large_models.md).

    python large_models.py                        # layers 62,4,247,2, seed 0
    python large_models.py --layers 26000,26000,3
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
import gc
import hashlib
import itertools
import platform
import secrets
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import onnx.model_container
import onnxruntime as ort
from onnx import TensorProto, external_data_helper, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

OPSET, IR_VERSION = 22, 10  # as in the other lessons
MODEL_FILE = "large_models.onnx"
# The default widths show onnx's size rule at work: W0 (62 x 4 floats, 992 bytes) goes to the data
# file and B1 (247 floats, 988 bytes) stays inside the .onnx (step 2 says why).
DEFAULT_LAYERS = "62,4,247,2"
WIDTH_MAX = 2**20  # the widest layer --layers takes; usage_problem() judges the whole network
SIZE_THRESHOLD = 1024  # onnx.save_model's default size_threshold, in bytes
PROTOBUF_LIMIT = onnx.checker.MAXIMUM_PROTOBUF  # 2**31 - 1 bytes: the most one message can hold
NEW_ROWS = 64  # the "many rows" batch used for verification
CHUNK_ELEMENTS = 2**22  # large matrices are drawn and multiplied in slices of this many values
RTOL, ATOL = 1e-4, 1e-5  # float32 layers and a softmax against a float64 reference
# What a run needs besides Python and the libraries, per byte of weights (docs): the NumPy arrays,
# the proto, a tensor's bytes on their way to the file, the session, the evaluator's arrays.
MEMORY_PER_WEIGHT_BYTE, MEMORY_BASE = 3.5, 2**29


def lesson(args: argparse.Namespace) -> None:
    """The lesson: build, save a draft pair, check, load, verify, publish the pair."""
    widths, path = args.layers, args.output_dir / MODEL_FILE
    size = weight_bytes(widths)
    layers = ",".join(map(str, widths))
    print(f"MLP with layers {layers}, seed {args.seed}: {size} bytes of weights, which")
    fits = "would fit in one" if size < PROTOBUF_LIMIT else "cannot be one"
    print(f"   {fits} protobuf message (at most {PROTOBUF_LIMIT} bytes); big tensors go to a file")
    print("\n1. Build: MatMul, Add, Relu per layer, then Softmax and ArgMax; weights in place")
    weights, biases = he_initialise(widths, args.seed)
    model = build_model(weights, biases)
    print(f"   {len(model.graph.initializer)} initializers, {size} bytes")
    data_name = data_file_name(weights, biases)  # None when every tensor stays inside the .onnx
    with publish_pair(path, data_name) as draft:
        print(f"\n2. Save a draft pair beside {path}: large tensors marked external, then saved")
        # onnx.save_model(model, draft, save_as_external_data=True, location=data_name,
        # size_threshold=SIZE_THRESHOLD) marks each large tensor, then saves, but it refuses a
        # location that exists in the *working* folder (a rerun inside models/). So they are
        # marked here, by onnx's rule; onnx.save_model appends each one's bytes to the data file.
        arrays = itertools.chain.from_iterable(zip(weights, biases, strict=True))
        for tensor, array in zip(model.graph.initializer, arrays, strict=True):
            if data_name and goes_to_data_file(array):
                external_data_helper.set_external_data(tensor, location=data_name)
        onnx.save_model(model, draft)
        del model  # onnx.save_model cleared each external tensor's bytes from it
        print_tensors(draft, data_name)
        print("\n3. Check the draft with onnx.checker (full_check=True), by path")
        onnx.checker.check_model(draft, full_check=True)  # also: every location inside the folder
        print("   valid, and every location names a file inside the model's folder")
        check_data_file(draft, data_name)
        verify(load(draft), draft, weights, biases, args.seed)
        names = [path.name] if data_name is None else [data_name, path.name]
        # Sizes now: once published, a neighbour's run may replace the pair at any moment.
        sizes = {path.parent / name: (draft.parent / name).stat().st_size for name in names}
    print(f"\n6. Publish the verified pair, the data file first (under a lock on {path.parent})")
    for file, length in sizes.items():
        print(f"   wrote {file} ({length} bytes)")
    files = " and ".join(map(str, sizes)) + (" agree" if data_name else " agrees")
    print(f"\nVerified: {files} with NumPy and the reference evaluator.")
    print(
        f"Versions: Python {platform.python_version()}, numpy {np.__version__}, onnx "
        f"{onnx.__version__}, onnxruntime {ort.__version__}"
    )


# --- 1. Build ------------------------------------------------------------------------------------
def weight_bytes(widths: list[int]) -> int:
    """Return the bytes of float32 weights and biases an MLP of these widths holds."""
    return sum(4 * (fan_in + 1) * fan_out for fan_in, fan_out in itertools.pairwise(widths))


def he_initialise(widths: list[int], seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return seeded float32 weights (He initialisation) and small random biases per layer."""
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for fan_in, fan_out in itertools.pairwise(widths):
        # NumPy draws float64. Drawn in slices of rows, a 26000 x 26000 layer never exists in
        # float64 (5.4 GB), and the generator's stream, so every value, is that of one call.
        weight = np.empty((fan_in, fan_out), np.float32)
        step = max(1, CHUNK_ELEMENTS // fan_out)
        for start in range(0, fan_in, step):
            stop = min(start + step, fan_in)
            weight[start:stop] = rng.normal(0.0, np.sqrt(2.0 / fan_in), (stop - start, fan_out))
        weights.append(weight)
        biases.append(rng.uniform(-0.1, 0.1, fan_out).astype(np.float32))
    return weights, biases


def build_model(weights: list[np.ndarray], biases: list[np.ndarray]) -> onnx.ModelProto:
    """Build the MLP from standard operators, its initializers written into the proto in place."""
    nodes, hidden = [], "X"
    for index in range(len(weights)):
        nodes.append(helper.make_node("MatMul", [hidden, f"W{index}"], [f"XW{index}"]))
        output = "logits" if index == len(weights) - 1 else f"Z{index}"
        nodes.append(helper.make_node("Add", [f"XW{index}", f"B{index}"], [output]))
        if output != "logits":
            nodes.append(helper.make_node("Relu", [output], [hidden := f"H{index + 1}"]))
    nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1))
    nodes.append(helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0))
    value = helper.make_tensor_value_info
    inputs = [value("X", TensorProto.FLOAT, ["N", weights[0].shape[0]])]
    outputs = [value("probabilities", TensorProto.FLOAT, ["N", weights[-1].shape[1]])]
    outputs.append(value("label", TensorProto.INT64, ["N"]))
    graph = helper.make_graph(nodes, "mlp", inputs, outputs)
    opsets = [helper.make_opsetid("", OPSET)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION)
    # numpy_helper.from_array, then make_graph and make_model would each copy every weight: three
    # copies that a model of a few GB cannot afford. A tensor is a name, a type, a shape and its
    # raw little-endian bytes, so each is written into the model once, last.
    for index, (w, b) in enumerate(zip(weights, biases, strict=True)):
        for name, array in ((f"W{index}", w), (f"B{index}", b)):
            tensor = model.graph.initializer.add(name=name, data_type=TensorProto.FLOAT)
            tensor.dims.extend(array.shape)
            tensor.raw_data = numpy_helper.tobytes_little_endian(array)
    return model


# --- 2. Save with external data ------------------------------------------------------------------
def goes_to_data_file(array: np.ndarray) -> bool:
    """Whether onnx.save_model moves this tensor to the data file, by onnx's own rule."""
    # onnx compares sys.getsizeof(tensor.raw_data) >= size_threshold: the byte count plus the
    # header of a Python bytes object (33 bytes in 64-bit CPython). With 1024, every tensor of
    # 991 bytes or more goes to the data file, not only those of 1024 bytes or more.
    return array.nbytes + sys.getsizeof(b"") >= SIZE_THRESHOLD


def data_file_name(weights: list[np.ndarray], biases: list[np.ndarray]) -> str | None:
    """Name the data file after its content, the tensors that go there; None if there are none."""
    # onnx writes them one after another, in the initializers' order, with no gaps: the file's
    # bytes, whose SHA-256 names it. Hashed from the arrays, so that no copy of them is made.
    digest, found = hashlib.sha256(), False
    for array in itertools.chain.from_iterable(zip(weights, biases, strict=True)):
        if goes_to_data_file(array):
            digest.update(np.ascontiguousarray(array, "<f4").data)
            found = True
    return f"{Path(MODEL_FILE).stem}.{digest.hexdigest()[:16]}.data" if found else None


def print_tensors(draft: Path, data_name: str | None) -> None:
    """Print where each tensor's bytes are: in the data file (location, offset, length), or not."""
    header, rule = sys.getsizeof(b""), f"sys.getsizeof(tensor.raw_data) >= {SIZE_THRESHOLD}"
    print(f"   onnx moves a tensor when {rule}, which adds a bytes object's")
    print(f"   {header}-byte header to its size: from {SIZE_THRESHOLD - header} bytes up")
    # The graph alone, without reading the data file: what a careful loader looks at first.
    for tensor in onnx.load(draft, load_external_data=False).graph.initializer:
        shape = f"{tensor.name} float[{','.join(map(str, tensor.dims))}]"
        if external_data_helper.uses_external_data(tensor):
            info = external_data_helper.ExternalDataInfo(tensor)
            where = f"location {info.location!r}, offset {info.offset}, length {info.length}"
            print(f"   {shape}: {where}")
        else:
            print(f"   {shape}: {len(tensor.raw_data)} bytes, kept inside the .onnx")
    if data_name is None:
        print("   no tensor reaches the threshold: there is no data file to write")


def check_data_file(draft: Path, data_name: str | None) -> None:
    """Check that the data file's SHA-256 is the one its name states (no data file: nothing)."""
    if data_name is not None:
        with open(draft.parent / data_name, "rb") as stream:
            digest = hashlib.file_digest(stream, "sha256").hexdigest()[:16]
        if f".{digest}." not in data_name:
            raise AssertionError(f"{data_name}: its bytes hash to {digest}, not to its name")
        print(f"   {data_name}: its SHA-256 begins {digest}, as its name says")


# --- 4. Load, by path ----------------------------------------------------------------------------
def load_session(path: Path) -> ort.InferenceSession:
    """Open a model file in ONNX Runtime on the CPU, by its path (which locates its data file)."""
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def load(path: Path) -> ort.InferenceSession:
    """Open the draft by its path in ONNX Runtime, and print its inputs and outputs."""
    # By path: a location is relative to the .onnx file's folder, and bytes carry no folder
    # (microsoft/onnxruntime#6696; docs/large_models.md shows what fails and the fix).
    print("\n4. Load the draft by its path into ONNX Runtime (CPUExecutionProvider)")
    session = load_session(path)
    for kind, values in (("input ", session.get_inputs()), ("output", session.get_outputs())):
        for value in values:
            print(f"   {kind} {value.name}: {value.type} {value.shape}")
    return session


def load_reference_evaluator(path: Path) -> ReferenceEvaluator:
    """Open the saved pair in onnx's reference evaluator, each external tensor read once."""
    # onnx.load would put the bytes in the proto and the evaluator copy them again; ModelContainer
    # (onnx's API for large models) reads each external tensor straight into one NumPy array.
    container = onnx.model_container.ModelContainer()
    container.load(str(path))
    return ReferenceEvaluator(container)


# --- 5. Verify -----------------------------------------------------------------------------------
def numpy_forward(x: np.ndarray, weights: list[np.ndarray], biases: list[np.ndarray]) -> np.ndarray:
    """An independent float64 forward pass: ReLU layers, a linear last layer, a stable softmax."""
    activations = x.astype(np.float64)
    for index, (w, b) in enumerate(zip(weights, biases, strict=True)):
        # Slices of rows of W: a float64 copy of a whole large layer would double its memory.
        step = max(1, CHUNK_ELEMENTS // w.shape[1])
        total = np.zeros((len(x), w.shape[1]))
        for start in range(0, w.shape[0], step):
            total += activations[:, start : start + step] @ w[start : start + step].astype(
                np.float64
            )
        activations = total + b
        if index < len(weights) - 1:
            activations = np.maximum(activations, 0.0)
    shifted = np.exp(activations - activations.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


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


def verify(
    session: ort.InferenceSession,
    path: Path,
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    seed: int,
) -> None:
    """Run batches of one row and of NEW_ROWS rows; check them against NumPy and the evaluator."""
    print(f"\n5. Run and verify (tolerance rtol={RTOL:g}, atol={ATOL:g})")
    rows = np.random.default_rng(seed + 1).normal(size=(NEW_ROWS, weights[0].shape[0]))
    evaluator = load_reference_evaluator(path)
    for x in (rows[:1].astype(np.float32), rows.astype(np.float32)):
        probabilities, labels = session.run(["probabilities", "label"], {"X": x})
        expected = numpy_forward(x, weights, biases)
        difference = compare(f"batch {len(x)}, ONNX Runtime vs NumPy", probabilities, expected)
        bound = ATOL + RTOL * expected.max()  # compare() held each value to atol + rtol * |e|
        evaluated, evaluated_labels = evaluator.run(["probabilities", "label"], {"X": x})
        name = f"batch {len(x)}, ONNX Runtime vs reference evaluator"
        evaluator_difference = compare(name, probabilities, np.asarray(evaluated, np.float64))
        # A label may differ only where the top two probabilities are tied within the tolerance.
        top_two = np.sort(expected, axis=1)[:, -2:]
        tied = top_two[:, 1] - top_two[:, 0] <= ATOL
        for other, other_labels in (
            ("NumPy", expected.argmax(axis=1)),
            ("reference evaluator", evaluated_labels),
        ):
            if np.any((labels != other_labels) & ~tied):
                raise AssertionError(f"batch {len(x)}: ONNX Runtime's labels differ from {other}'s")
        print(
            f"   batch of {len(x):3d}: largest difference vs NumPy {difference:.2g} <= "
            f"{bound:.2g}, vs reference evaluator {evaluator_difference:.2g} <= {bound:.2g}; "
            "labels agree"
        )
    # The evaluator's objects form cycles: collect them, and their copy of the weights, now.
    del evaluator
    gc.collect()


# --- 6. Publish the pair -------------------------------------------------------------------------
@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on the folder's model files; the system drops it if the run dies."""
    if sys.platform == "win32":
        import msvcrt

        lock = folder / f".{MODEL_FILE}.lock"
        with open(lock, "a+b") as stream:
            stream.seek(0)
            while True:  # LK_LOCK gives up after 10 s; a neighbour's publish may take longer
                with contextlib.suppress(OSError):
                    msvcrt.locking(stream.fileno(), msvcrt.LK_LOCK, 1)
                    break
            try:
                yield
            finally:
                stream.seek(0)
                msvcrt.locking(stream.fileno(), msvcrt.LK_UNLCK, 1)
        with contextlib.suppress(OSError):  # fails while another run holds it open: it is theirs
            lock.unlink()
    else:
        import fcntl

        handle = os.open(folder, os.O_RDONLY)  # the folder itself: no lock file is left behind
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield
        finally:
            os.close(handle)  # closing releases the lock


def referenced_data_files(path: Path) -> set[str] | None:
    """Return the locations the model at path names, or None if it cannot be read."""
    try:
        model = onnx.load(path, load_external_data=False)
    except FileNotFoundError:
        return set()
    except Exception:  # not a model we can read: leave every data file alone
        return None
    tensors = model.graph.initializer
    return {
        external_data_helper.ExternalDataInfo(t).location
        for t in tensors
        if external_data_helper.uses_external_data(t)
    }


@contextlib.contextmanager
def publish_pair(path: Path, data_name: str | None) -> Iterator[Path]:
    """Yield a draft path in a hidden folder beside path; if the block (save, load, verify)
    succeeds, move the draft's data file, then the draft, into place, and remove stale data."""
    drafts = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    drafts.mkdir()
    try:
        if data_name is not None:  # created here, mode "x", so it gets the usual permissions
            (drafts / data_name).open("x").close()  # (onnx's own would be private); onnx appends
        yield drafts / path.name
        names = [path.name] if data_name is None else [data_name, path.name]
        for name in names:  # on the disk before a name in the folder points at them
            with open(drafts / name, "r+b") as stream:
                os.fsync(stream.fileno())
        with folder_lock(path.parent):
            try:
                # The data file first: a model never names a file that is not there yet. A file of
                # that name holds the same bytes (its name is their hash) unless it was damaged:
                # replacing it repairs it. Then the model, atomically: a reader sees the old pair
                # or the new one.
                for name in names:
                    os.replace(drafts / name, path.parent / name)
            finally:
                # Under the lock, so no neighbour is between its two renames: a data file that
                # the model now on disk does not name belongs to no model.
                keep = referenced_data_files(path)
                for stale in path.parent.glob(f"{path.stem}.{'?' * 16}.data"):
                    with contextlib.suppress(OSError):  # one left over is harmless: unnamed
                        if keep is not None and stale.name not in keep and stale.is_file():
                            stale.unlink()
    finally:
        shutil.rmtree(drafts, ignore_errors=True)


# --- The lesson's flags, and the sizes that cannot work ------------------------------------------
def parse_layers(text: str) -> list[int]:
    """Parse "W0,W1,...,Wk": at least two whole widths from 1 to WIDTH_MAX, the last 2 or more."""
    if len(parts := text.split(",")) < 2:
        raise argparse.ArgumentTypeError(f"expected two widths or more, got {text[:24]!r}")
    widths = [whole_number(part, low=1, high=WIDTH_MAX) for part in parts]
    if widths[-1] < 2:  # the number of classes: a softmax over one class computes nothing
        raise argparse.ArgumentTypeError(
            f"the output width is the number of classes and must be 2 or more, got {widths[-1]}"
        )
    return widths


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the lesson's own flags."""
    layers = f"W0,W1,...,Wk: widths 1 to {WIDTH_MAX}, input first, classes (2 or more) last"
    parser.add_argument("--layers", type=parse_layers, default=DEFAULT_LAYERS, help=layers)


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
    """Return a one-line message for sizes whose memory need is impossible here, else None."""
    need = int(MEMORY_BASE + MEMORY_PER_WEIGHT_BYTE * weight_bytes(args.layers))
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
