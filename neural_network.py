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
"""A new ONNX operator, one dense layer, and a multi-layer perceptron of any depth built from it.

ONNX lets you add operators in a domain of your own. The simplest way to give one a meaning every
runtime understands is an ONNX *function*: a ``FunctionProto`` whose body is a small graph of
standard operators, stored in the model (``ModelProto.functions``) with the domain in its
``opset_import``. ONNX Runtime and ``onnx.reference.ReferenceEvaluator`` run the body; no extension
library, no compiled kernel. The domain ``com.example.mlp`` defines, one call per layer:

    Dense(X, W, B)     = X·W + B               the output layer: logits must be able to go negative
    DenseRelu(X, W, B) = Relu(Dense(X, W, B))  a hidden layer; its body calls Dense

and ``--layers W0,...,Wk`` is DenseRelu per hidden layer, Dense last, then Softmax and ArgMax.

The lifecycle: build (seeded He-initialised weights, or ``--train`` to export a scikit-learn
MLPClassifier: your own converter), save ``<output-dir>/neural_network.onnx`` atomically, check the
file (``full_check``; the checker cannot see what a custom operator computes), load it in ONNX
Runtime, verify batches of 1 and many rows against NumPy (or scikit-learn) and the reference
evaluator, then inline the functions as a runtime does and compare the flat graph. Mismatch: exit 1.

Past 2 GB: one protobuf message cannot exceed 2 GiB, so large models keep their weights in a
separate file, ONNX's *external data*: each big tensor in the .onnx says only where its bytes are
(``location``, ``offset``, ``length``), ``location`` relative to the .onnx file's folder.
``--external-data`` does that at any size, and past 2 GiB the script does it by itself. Keep the two
files together and load the model by its path (``onnx.load(path)``, ``InferenceSession(path)``).

    python neural_network.py                          # layers 4,16,16,3, seed 0
    python neural_network.py --layers 8,32,32,32,32,2 --train
    python neural_network.py --external-data          # weights in neural_network.<hash>.data
    python neural_network.py --benchmark              # custom-op model vs inlined twin vs NumPy
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
import errno
import functools
import gc
import hashlib
import itertools
import math
import platform
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import onnx
import onnx.inliner
import onnx.model_container
import onnx.printer
import onnxruntime as ort
from onnx import TensorProto, external_data_helper, helper, numpy_helper
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
TEST_FRACTION = 0.25
TEST_ROWS = math.ceil(TRAIN_SAMPLES * TEST_FRACTION)  # how scikit-learn rounds the held-out part
TRAIN_ITERATIONS = 300
# Each float32 layer rounds to about 1e-7 relative; after a few layers and a softmax the
# probabilities agree with a float64 reference to about 1e-6.
RTOL = 1e-4
ATOL = 1e-5
# Protobuf cannot serialise a message of 2 GiB or more, and a .onnx file is one ModelProto message.
PROTOBUF_LIMIT = onnx.checker.MAXIMUM_PROTOBUF  # 2**31 - 1 bytes
# What a model holds besides its weights (graph, functions, names, tensor headers): a few KB here;
# 1 MiB of room keeps the automatic switch to external data on the safe side.
GRAPH_BYTES_ALLOWANCE = 2**20
# With external data, tensors of at least this many bytes go to the data file, smaller ones (the
# biases) stay inside the .onnx: onnx's own default threshold.
EXTERNAL_DATA_THRESHOLD = 1024
CHUNK_ELEMENTS = 2**22  # large matrices are generated and multiplied in slices of this many values
SEED_MAX = 2**32 - 1  # NumPy and scikit-learn accept seeds from 0 to 2**32 - 1: one range for all
BENCHMARK_BATCHES = (1, 8192)
BENCHMARK_THREADS = 1  # ONNX Runtime intra-op threads in the benchmark: one, for steady figures

# A reference: its name, and a function from a float32 batch to (probabilities, labels).
Reference = tuple[str, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]]


# --- 1. Build: the operators ---------------------------------------------------------------------


def make_layer_functions() -> list[onnx.FunctionProto]:
    """Define Dense and DenseRelu in DOMAIN as ONNX functions."""
    # Why two operators and not one with an "activation" attribute? A function may declare
    # attributes, and a node of its body may take its value from one: an attribute reference,
    # written alpha=@alpha in ONNX's text form. But a body is a fixed graph, so choosing Relu or
    # nothing would need control flow (If). A number passed through instead (LeakyRelu with
    # alpha=@alpha: 0 is ReLU, 1 the identity) runs in ONNX Runtime, but the pinned reference
    # evaluator fails on it (docs/neural_network.md quotes the error). Two attribute-free
    # operators run everywhere, and DenseRelu calling Dense shows a function calling another.
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
    """Parse "W0,W1,...,Wk" into whole widths of 1 or more and an output of 2 or more."""
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
    if widths[-1] < 2:
        # The output width is the number of classes. A softmax over one class is always 1.0 and
        # its argmax always 0, whatever the weights: such a model computes nothing that could be
        # verified (and "the top two probabilities" would not exist). Refuse it up front.
        raise argparse.ArgumentTypeError(
            f"the output width is the number of classes and must be 2 or more, got {widths[-1]} "
            "(a softmax over one class is always 1.0, whatever the weights)"
        )
    return widths


def he_initialise(widths: list[int], seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return seeded float32 weights (He initialisation) and small random biases per layer."""
    rng = np.random.default_rng(seed)
    weights, biases = [], []
    for fan_in, fan_out in itertools.pairwise(widths):
        # He et al. (2015): standard deviation sqrt(2 / fan_in) keeps ReLU activations at a steady
        # scale through the layers. The biases are small but not zero, so the Add is exercised.
        # NumPy draws float64: drawn in slices of rows, a 26000 x 26000 layer never exists in
        # float64 (5.4 GB), and the generator's stream, so every value, is the same as in one call.
        weight = np.empty((fan_in, fan_out), np.float32)
        step = max(1, CHUNK_ELEMENTS // fan_out)
        for start in range(0, fan_in, step):
            stop = min(start + step, fan_in)
            weight[start:stop] = rng.normal(0.0, np.sqrt(2.0 / fan_in), (stop - start, fan_out))
        weights.append(weight)
        biases.append(rng.uniform(-0.1, 0.1, fan_out).astype(np.float32))
    return weights, biases


def numpy_forward(
    x: np.ndarray,
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    dtype: type[np.floating[Any]] = np.float64,
) -> np.ndarray:
    """An independent forward pass: ReLU layers, a linear last layer, a stable softmax.

    float64 (the default) is the verification reference; the benchmark times it in float32.
    """
    activations = x.astype(dtype, copy=False)
    for index, (w, b) in enumerate(zip(weights, biases, strict=True)):
        # Slices of rows of W: a float64 copy of a whole large layer would double its memory.
        step = max(1, CHUNK_ELEMENTS // w.shape[1])
        total = activations[:, :step] @ w[:step].astype(dtype, copy=False)
        for start in range(step, w.shape[0], step):
            chunk = w[start : start + step].astype(dtype, copy=False)
            total += activations[:, start : start + step] @ chunk
        activations = total + b.astype(dtype, copy=False)
        if index < len(weights) - 1:
            activations = np.maximum(activations, 0.0)
    shifted = np.exp(activations - activations.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def random_network(
    widths: list[int], seed: int
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray | None, Reference]:
    """Build: He-initialised weights, seeded rows to verify on, and NumPy as the reference."""
    weights, biases = he_initialise(widths, seed)
    rows = np.random.default_rng(seed + 1).normal(size=(NEW_ROWS, widths[0])).astype(np.float32)

    def reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities = numpy_forward(x, weights, biases)
        return probabilities, probabilities.argmax(axis=1)

    return weights, biases, rows, None, ("NumPy", reference)


def synthetic_split(
    widths: list[int], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Make the seeded synthetic data set for --train: float32 train rows, test rows, labels."""
    # scikit-learn is imported here only, so the default run does not pay for it.
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    x, y = make_classification(
        n_samples=TRAIN_SAMPLES,
        n_features=widths[0],
        n_informative=widths[0],
        n_redundant=0,
        n_classes=widths[-1],
        n_clusters_per_class=1,
        flip_y=0.0,  # no label noise: every class has its exact share of rows (training_problem)
        random_state=seed,
    )
    # The ONNX model takes float32; training on float32 rows means both sides see the same inputs.
    x_train, x_test, y_train, y_test = train_test_split(
        x.astype(np.float32), y, test_size=TEST_FRACTION, random_state=seed, stratify=y
    )
    return x_train, x_test, y_train, y_test


def train_mlp(widths: list[int], seed: int) -> tuple[Any, np.ndarray, np.ndarray, bool]:
    """Fit scikit-learn's MLPClassifier on a seeded synthetic data set shaped by widths.

    Returns the classifier, the float32 test rows and labels, and whether training converged.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x_train, x_test, y_train, y_test = synthetic_split(widths, seed)
    classifier = MLPClassifier(
        hidden_layer_sizes=tuple(widths[1:-1]),
        activation="relu",
        max_iter=TRAIN_ITERATIONS,
        random_state=seed,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        classifier.fit(x_train, y_train)
    # MLPClassifier catches Ctrl-C itself, warns and returns a half-trained model. Exporting that
    # would be a lie: turn the warning back into the interruption it was.
    if any("Training interrupted by user" in str(warning.message) for warning in caught):
        raise KeyboardInterrupt
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return classifier, x_test, y_test, converged


def sklearn_weights(classifier: Any) -> tuple[list[np.ndarray], list[np.ndarray]]:
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


def trained_network(
    widths: list[int], seed: int
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray | None, Reference]:
    """Build: train an MLPClassifier, export its weights; scikit-learn is the reference."""
    classifier, x_test, y_test, converged = train_mlp(widths, seed)
    note = "" if converged else " (not converged; the export is verified all the same)"
    print(f"   trained an MLPClassifier: {classifier.n_iter_} iterations{note}")
    weights, biases = sklearn_weights(classifier)

    def reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return classifier.predict_proba(x), classifier.predict(x)

    return weights, biases, x_test, y_test, ("scikit-learn", reference)


# --- 1. Build: the network -----------------------------------------------------------------------


def initializer_values(
    weights: list[np.ndarray], biases: list[np.ndarray]
) -> dict[str, np.ndarray]:
    """Name the layers' tensors as the graph does: W0, B0, W1, B1, ..."""
    values = {}
    for index, (w, b) in enumerate(zip(weights, biases, strict=True)):
        values[f"W{index}"], values[f"B{index}"] = w, b
    return values


def build_model(weights: list[np.ndarray], biases: list[np.ndarray]) -> onnx.ModelProto:
    """Build the MLP: one DenseRelu node per hidden layer, Dense for the last, Softmax, ArgMax."""
    inputs, classes = weights[0].shape[0], weights[-1].shape[1]
    nodes = []
    hidden = "X"
    for index in range(len(weights)):
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
    )
    widths = [inputs] + [w.shape[1] for w in weights]
    model = helper.make_model(
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
    # The initializers are written in place, last. numpy_helper.from_array makes a TensorProto
    # that make_graph copies and make_model copies again: three copies of every weight, which a
    # model of a few GB cannot afford. A tensor is a name, a type, a shape and its raw bytes.
    for name, array in initializer_values(weights, biases).items():
        tensor = model.graph.initializer.add()
        tensor.name = name
        tensor.data_type = TensorProto.FLOAT
        tensor.dims.extend(array.shape)
        tensor.raw_data = numpy_helper.tobytes_little_endian(array)
    return model


def skeleton_of(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return the model without tensor data: each initializer a bare name, type and shape."""
    # Copying the model would copy its weights. This copies everything else field by field and
    # declares each initializer without reading its data, so it costs nothing at any size.
    graph = model.graph
    declarations = [
        TensorProto(name=t.name, data_type=t.data_type, dims=t.dims) for t in graph.initializer
    ]
    return onnx.ModelProto(
        ir_version=model.ir_version,
        opset_import=model.opset_import,
        producer_name=model.producer_name,
        doc_string=model.doc_string,
        functions=model.functions,
        graph=onnx.GraphProto(
            name=graph.name,
            node=graph.node,
            input=graph.input,
            output=graph.output,
            initializer=declarations,
        ),
    )


def build(
    weights: list[np.ndarray], biases: list[np.ndarray]
) -> tuple[onnx.ModelProto, onnx.ModelProto]:
    """Build the model and print its text form; return the model and its skeleton."""
    model = build_model(weights, biases)
    skeleton = skeleton_of(model)
    # The printer would spell out every weight, gigabytes of text for a large model: print the
    # skeleton, whose declarations the printer shows as "= {}", and say what they stand for.
    text = onnx.printer.to_text(skeleton).replace(" =  {}", " = {...}")
    for line in text.replace("{...}, ", "{...},\n    ").splitlines():
        print("   " + line.rstrip())
    return model, skeleton


# --- 2. Save -------------------------------------------------------------------------------------


def needs_external_data(weight_bytes: int) -> bool:
    """Whether a model with this many bytes of weights is too large for one protobuf message."""
    return weight_bytes + GRAPH_BYTES_ALLOWANCE > PROTOBUF_LIMIT


def usual_file_mode() -> int:
    """Return the mode a newly created file gets here (0o666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_atomically(path: Path, data: bytes) -> None:
    """Write data to path through a temporary file in the same folder and os.replace."""
    # A reader of path sees the old file or the complete new one, never a half-written protobuf.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # Open the handle first: if anything below fails, the with block closes it, and the
        # cleanup can remove the file (Windows cannot remove a file that is still open).
        with os.fdopen(handle, "wb") as stream:
            os.chmod(temporary, usual_file_mode())  # mkstemp's file is private; use the usual mode
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def sync_folder(folder: Path) -> None:
    """Make the renames in folder durable before anything relies on them (POSIX only)."""
    if os.name == "posix":
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def data_file_pattern(model_path: Path) -> str:
    """Return the glob pattern of the data files of a model: <stem>.<16 hex digits>.data."""
    return f"{model_path.stem}.{'?' * 16}.data"


def write_external_data(model: onnx.ModelProto, model_path: Path) -> tuple[Path, bool]:
    """Move the large tensors into a data file beside model_path, named by its content.

    Returns the data file's path and whether this call created it.
    """
    folder = model_path.parent
    handle, temporary = tempfile.mkstemp(
        dir=folder, prefix=f".{model_path.stem}.", suffix=".data.tmp"
    )
    os.close(handle)
    try:
        os.chmod(temporary, usual_file_mode())
        # onnx's external-data API, the two halves of onnx.save_model(save_as_external_data=True):
        # mark each tensor of EXTERNAL_DATA_THRESHOLD bytes or more as stored in one file named
        # by `location` (relative to the model's folder), then append their bytes to that file,
        # record each one's offset and length, and drop the bytes from the proto.
        external_data_helper.convert_model_to_external_data(
            model,
            all_tensors_to_one_file=True,
            location=Path(temporary).name,
            size_threshold=EXTERNAL_DATA_THRESHOLD,
        )
        external_data_helper.write_external_data_tensors(model, str(folder))
        with open(temporary, "r+b") as stream:
            os.fsync(stream.fileno())
            digest = hashlib.file_digest(stream, "sha256").hexdigest()[:16]
        data_path = folder / f"{model_path.stem}.{digest}.data"
        created = not data_path.exists()
        # The data file's final name depends on its bytes, so an existing file of that name holds
        # the same bytes: keep it (replacing it would fail on Windows while a reader has it open).
        if created:
            os.replace(temporary, data_path)
        else:
            Path(temporary).unlink()
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = data_path.name
    return data_path, created


def weight_bytes(model: onnx.ModelProto) -> int:
    """Return the size of the model's initializers in bytes, from their types and shapes."""
    return sum(
        math.prod(t.dims) * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
        for t in model.graph.initializer
    )


def save(model: onnx.ModelProto, path: Path, external_data: bool) -> list[Path]:
    """Save the model atomically, its large tensors in a data file if asked or if too big."""
    print("\n2. Save it atomically" + (" with external data" if external_data else ""))
    size = weight_bytes(model)
    if not external_data and needs_external_data(size):
        print(
            f"   {size} bytes of weights do not fit in one protobuf message (at most "
            f"{PROTOBUF_LIMIT} bytes): saving them as external data instead"
        )
        external_data = True
    # The order that keeps every reader safe: (1) the data file, complete and fsynced, under its
    # final name, which is new unless the same bytes are already there; (2) the .onnx, atomically:
    # until this os.replace a reader loads the old model, whose own data file is untouched, and
    # from then on the new one, whose data is complete; (3) only then the old model's data file
    # is removed. A reader that parsed the old .onnx but opens its data after (3) gets "file not
    # found", never another run's numbers. Should (2) fail or be interrupted, a data file that (1)
    # created is removed again: no model refers to it.
    data_path, created = write_external_data(model, path) if external_data else (None, False)
    if data_path is not None:
        sync_folder(path.parent)  # the data file's name is durable before a model refers to it
    try:
        write_atomically(path, model.SerializeToString())
    except BaseException:
        if data_path is not None and created:
            data_path.unlink(missing_ok=True)  # no model refers to it: the old one has its own
        raise
    sync_folder(path.parent)
    for stale in path.parent.glob(data_file_pattern(path)):
        if stale != data_path:
            stale.unlink(missing_ok=True)
    files = [path] if data_path is None else [path, data_path]
    for file in files:
        print(f"   wrote {file} ({file.stat().st_size} bytes)")
    if data_path is not None:
        print_external_tensors(model)
    return files


def print_external_tensors(model: onnx.ModelProto) -> None:
    """Print where each external tensor's bytes are, and which tensors stayed inside the .onnx."""
    print("   the .onnx holds the graph; each large tensor in it names where its bytes are:")
    inside = []
    for tensor in model.graph.initializer:
        shape = ",".join(map(str, tensor.dims))
        if external_data_helper.uses_external_data(tensor):
            info = external_data_helper.ExternalDataInfo(tensor)
            print(
                f"   {tensor.name} float[{shape}]: location {info.location!r}, "
                f"offset {info.offset}, length {info.length}"
            )
        else:
            inside.append(tensor.name)
    if inside:
        print(
            f"   {', '.join(inside)}: under {EXTERNAL_DATA_THRESHOLD} bytes each, kept inside the "
            ".onnx"
        )
    print(
        "   a location is relative to the .onnx file's folder: keep the two files together and\n"
        "   load the model by its path (onnx.load(path), onnxruntime.InferenceSession(path))"
    )


# --- 3. Check ------------------------------------------------------------------------------------


def check(path: Path) -> None:
    """Validate the saved model by its path: structure, types, shapes, external data locations."""
    print("\n3. Check the file with onnx.checker (full_check=True), by path")
    # By path rather than in memory: an in-memory model is serialised for the C++ checker, which
    # fails past 2 GiB, and from the path the checker also verifies that every external location
    # names a file inside the model's folder.
    onnx.checker.check_model(path, full_check=True)
    print("   valid; the checker does not run the operators, so the numbers below are the test")


# --- 4. Load, and running a loaded model ----------------------------------------------------------


def load_session(
    source: Path | bytes, threads: int = 0, data_folder: Path | None = None
) -> ort.InferenceSession:
    """Open a model file (or serialised bytes) in ONNX Runtime on the CPU; 0 threads = default."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    if data_folder is not None:
        # Bytes carry no folder to resolve external data `location`s against; a path does
        # (microsoft/onnxruntime#6696). This entry names the folder for a model given as bytes.
        options.add_session_config_entry(
            "session.model_external_initializers_file_folder_path", str(data_folder)
        )
    model = str(source) if isinstance(source, Path) else source
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def load(path: Path) -> ort.InferenceSession:
    """Open the saved model in ONNX Runtime by its path, and print its inputs and outputs."""
    print("\n4. Load the file back from disk into ONNX Runtime (CPUExecutionProvider), by path")
    session = load_session(path)
    for kind, values in (("input ", session.get_inputs()), ("output", session.get_outputs())):
        for value in values:
            print(f"   {kind} {value.name}: {value.type} {value.shape}")
    return session


def run_onnxruntime(session: ort.InferenceSession, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the probabilities and labels that ONNX Runtime computes for a float32 batch."""
    probabilities, labels = session.run(["probabilities", "label"], {"X": x})
    return probabilities, labels


def load_reference_evaluator(path: Path) -> ReferenceEvaluator:
    """Open the saved model, external data included, in onnx's pure-Python reference evaluator."""
    # onnx's ModelContainer reads each external tensor straight into one NumPy array. onnx.load
    # would first put the bytes in the proto, and the evaluator would copy them again.
    container = onnx.model_container.ModelContainer()
    container.load(str(path))
    return ReferenceEvaluator(container)


def run_reference_evaluator(
    evaluator: ReferenceEvaluator, x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return the probabilities and labels from onnx's pure-Python reference evaluator."""
    probabilities, labels = evaluator.run(["probabilities", "label"], {"X": x})
    return np.asarray(probabilities), np.asarray(labels)


# --- 5. Run and verify ----------------------------------------------------------------------------


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


def compare_labels(
    name: str, actual: np.ndarray, expected: np.ndarray, probabilities: np.ndarray
) -> int:
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


def verify_batch(
    session: ort.InferenceSession,
    evaluator: ReferenceEvaluator,
    reference: Reference,
    x: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check one batch against the reference and the evaluator; print a line; return the results.

    Returns ONNX Runtime's probabilities and labels, and the reference's labels.
    """
    reference_name, reference_for = reference
    rows = len(x)
    probabilities, labels = run_onnxruntime(session, x)
    expected, expected_labels = reference_for(x)
    difference = compare(f"batch {rows}, ONNX Runtime vs {reference_name}", probabilities, expected)
    ties = compare_labels(
        f"batch {rows}, ONNX Runtime labels vs {reference_name}", labels, expected_labels, expected
    )
    evaluator_probabilities, evaluator_labels = run_reference_evaluator(evaluator, x)
    evaluator_difference = compare(
        f"batch {rows}, ONNX Runtime vs reference evaluator",
        probabilities,
        evaluator_probabilities.astype(np.float64),
    )
    compare_labels(
        f"batch {rows}, ONNX Runtime labels vs reference evaluator",
        labels,
        evaluator_labels,
        expected,
    )
    tie_note = f" except {ties} near-tie(s) of the top two" if ties else ""
    print(
        f"   batch of {rows:3d}: largest difference vs {reference_name} {difference:.2g}, "
        f"vs reference evaluator {evaluator_difference:.2g}; labels agree{tie_note}"
    )
    return probabilities, labels, expected_labels


def verify(
    session: ort.InferenceSession,
    path: Path,
    rows: np.ndarray,
    true_labels: np.ndarray | None,
    reference: Reference,
) -> np.ndarray:
    """Verify batches of one row and of all rows; return ONNX Runtime's probabilities for all."""
    print(f"\n5. Run and verify (tolerance rtol={RTOL:g}, atol={ATOL:g})")
    evaluator = load_reference_evaluator(path)
    verify_batch(session, evaluator, reference, rows[:1])
    probabilities, labels, expected_labels = verify_batch(session, evaluator, reference, rows)
    if true_labels is not None:
        print(
            f"   test accuracy: {reference[0]} {np.mean(expected_labels == true_labels):.3f}, "
            f"ONNX Runtime {np.mean(labels == true_labels):.3f}"
        )
    # The evaluator's objects refer to each other, so only the cycle collector frees them and
    # their copy of the weights: now, before the next step loads the model again.
    del evaluator
    gc.collect()
    return probabilities


# --- 6. Inline ------------------------------------------------------------------------------------


def inlined_session(
    inlined: onnx.ModelProto, weights: list[np.ndarray], biases: list[np.ndarray], threads: int = 0
) -> ort.InferenceSession:
    """Open a weightless model in ONNX Runtime, its initializers given from NumPy arrays."""
    # Each declared initializer is marked as external data, and ONNX Runtime takes the values
    # from memory instead of a file (SessionOptions.add_external_initializers): no copy of the
    # weights in a proto, in bytes, or on disk.
    model = onnx.ModelProto()
    model.CopyFrom(inlined)
    for tensor in model.graph.initializer:
        tensor.data_location = TensorProto.EXTERNAL
        tensor.external_data.add(key="location", value="(given in memory)")
    values = initializer_values(weights, biases)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.add_external_initializers(
        list(values), [ort.OrtValue.ortvalue_from_numpy(array) for array in values.values()]
    )
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def inline_and_compare(
    skeleton: onnx.ModelProto,
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    rows: np.ndarray,
    probabilities: np.ndarray,
) -> onnx.ModelProto:
    """Inline the functions as a runtime does; check the flat graph gives the same answers."""
    print("\n6. Inline the functions, as a runtime does when it has no kernel for them")
    # Inlining rewrites the graph and never looks at the weights, so it works on the skeleton.
    inlined = onnx.inliner.inline_local_functions(skeleton)
    print(
        f"   {len(skeleton.graph.node)} nodes and {len(skeleton.functions)} functions -> "
        f"{len(inlined.graph.node)} nodes and {len(inlined.functions)} functions:"
    )
    print("   " + " ".join(node.op_type for node in inlined.graph.node))
    session = inlined_session(inlined, weights, biases)
    inlined_probabilities, _ = run_onnxruntime(session, rows)
    difference = compare("inlined model vs original", inlined_probabilities, probabilities)
    print(f"   largest difference, inlined vs original: {difference:.2g}")
    return inlined


# --- Benchmark -----------------------------------------------------------------------------------


def interleaved_medians(
    calls: list[Callable[[], object]], repeats: int, turn: int = 10
) -> list[float]:
    """Return each call's median wall time, measured in alternating turns of `turn` calls."""
    # Taking turns spreads a noisy moment (another process, a clock change) over every contender
    # instead of landing on one; turns of several calls, not one, let each warm its caches.
    for call in calls:
        for _ in range(turn):
            call()
    timings: list[list[float]] = [[] for _ in calls]
    while len(timings[0]) < repeats:
        for call, record in zip(calls, timings, strict=True):
            for _ in range(turn):
                start = time.perf_counter()
                call()
                record.append(time.perf_counter() - start)
    return [statistics.median(record) for record in timings]


def benchmark(
    path: Path,
    inlined: onnx.ModelProto,
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    seed: int,
) -> None:
    """Time the custom-op model, its inlined twin and NumPy, taking turns; print a table."""
    print(
        f"\n7. Benchmark: median time per call (ONNX Runtime: {BENCHMARK_THREADS} intra-op "
        "thread; NumPy float32: its BLAS's threads)"
    )
    custom = load_session(path, threads=BENCHMARK_THREADS)
    flat = inlined_session(inlined, weights, biases, threads=BENCHMARK_THREADS)
    rng = np.random.default_rng(seed + 2)
    print("   batch   custom-op model   inlined twin      NumPy")
    for batch in BENCHMARK_BATCHES:
        x = rng.normal(size=(batch, weights[0].shape[0])).astype(np.float32)
        repeats = 500 if batch == 1 else 30
        custom_time, flat_time, numpy_time = interleaved_medians(
            [
                functools.partial(custom.run, None, {"X": x}),
                functools.partial(flat.run, None, {"X": x}),
                functools.partial(numpy_forward, x, weights, biases, np.float32),
            ],
            repeats,
        )
        print(
            f"   {batch:5d}   {custom_time * 1e6:12.1f} µs  {flat_time * 1e6:10.1f} µs"
            f"  {numpy_time * 1e6:8.1f} µs"
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


def training_problem(widths: list[int]) -> str | None:
    """Say why --train cannot fit a classifier of these widths, or return None if it can."""
    features, classes = widths[0], widths[-1]
    # make_classification puts each class's cluster on its own corner of a hypercube in the
    # informative features: n_classes * n_clusters_per_class <= 2**n_informative (here 1 and W0).
    if classes > 2**features:
        return (
            f"{features} input feature(s) can separate at most {2**features} classes in the "
            f"synthetic data set, not {classes}"
        )
    # The split holds out a stratified quarter: every class must be represented in the
    # TEST_ROWS held-out rows (and in the rest), so there can be no more classes than that. With
    # no label noise each class then has at least TRAIN_SAMPLES // TEST_ROWS = 4 rows.
    if classes > TEST_ROWS:
        return (
            f"at most {TEST_ROWS} classes, not {classes}: the synthetic set has {TRAIN_SAMPLES} "
            f"rows and a stratified test split of {TEST_ROWS} needs a row of every class"
        )
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parse and validate the command line; exit 2 with one message on a usage error."""
    parser = argparse.ArgumentParser(
        prog=Path(__file__).name,
        description="Define a dense-layer operator in a custom ONNX domain, build an MLP of any "
        "depth from it, and verify ONNX Runtime against NumPy (or scikit-learn) and the ONNX "
        "reference evaluator. Models over 2 GiB keep their weights in a separate data file.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--layers",
        type=parse_layers,
        default=DEFAULT_LAYERS,  # a string default goes through type=, like a typed value
        metavar="W0,...,Wk",
        help="layer widths, input first and output (the number of classes, 2 or more) last",
    )
    parser.add_argument(
        "--train",
        action="store_true",
        help="export a scikit-learn MLPClassifier trained on synthetic data instead of random "
        f"weights (at most {TEST_ROWS} classes, and at most 2**W0)",
    )
    parser.add_argument(
        "--external-data",
        action="store_true",
        help="save tensors of 1024 bytes or more in a data file beside the .onnx (automatic "
        "when the model would exceed 2 GiB)",
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
        help="folder for the .onnx file (and data file), created when missing",
    )
    parser.add_argument("--seed", type=seed_int, default=0, help="random seed, 0 to 2**32 - 1")

    # One line that names the problem instead of the whole usage; the exit status stays 2.
    def usage_error(message: str) -> NoReturn:
        parser.exit(2, f"{parser.prog}: error: {message} (see --help)\n")

    parser.error = usage_error  # type: ignore[method-assign]
    args = parser.parse_args(argv)
    if args.train and (problem := training_problem(args.layers)):
        parser.error(f"argument --train: {problem}")
    return args


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


def introduce(args: argparse.Namespace) -> None:
    """Print what this run builds, and the heading of the build step."""
    widths = args.layers
    source = "a trained scikit-learn MLPClassifier" if args.train else "He-initialised weights"
    print(
        f"MLP with layers {','.join(map(str, widths))} "
        f"({len(widths) - 1} dense layer{'s' if len(widths) > 2 else ''}) "
        f"from {source}, seed {args.seed}"
    )
    print(f"\n1. Build: operators Dense and DenseRelu in domain {DOMAIN!r}, one call per layer")


def conclude(files: list[Path], reference_name: str, with_sklearn: bool) -> None:
    """Print the verdict with the files written, and the versions this run used."""
    names = " and ".join(str(file) for file in files)
    print(
        f"\nVerified: {names} {'agrees' if len(files) == 1 else 'agree'} with {reference_name} "
        "and the reference evaluator."
    )
    # The versions make a pasted report reproducible.
    line = (
        f"Versions: Python {platform.python_version()}, numpy {np.__version__}, "
        f"onnx {onnx.__version__}, onnxruntime {ort.__version__}"
    )
    if with_sklearn:
        import sklearn

        line += f", scikit-learn {sklearn.__version__}"
    print(line)


def main(argv: list[str] | None = None) -> int:
    """Run the lesson: build, save, check, load, verify, inline, and optionally benchmark."""
    if hasattr(sys.stdout, "reconfigure"):
        # Any terminal encoding: a character it cannot show becomes an escape, not an error.
        sys.stdout.reconfigure(errors="backslashreplace")
    args = parse_args(argv)
    # From here on Ctrl-C raises KeyboardInterrupt, which the handler below turns into status 130.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    path = args.output_dir / MODEL_FILE
    # --train changes where the weights come from and what they are checked against: chosen once.
    make_network = trained_network if args.train else random_network
    try:
        prepare_output_dir(args.output_dir)
        introduce(args)
        weights, biases, rows, true_labels, reference = make_network(args.layers, args.seed)
        model, skeleton = build(weights, biases)
        files = save(model, path, args.external_data)
        # From here on the files are the model, as for any reader; a large model cannot afford to
        # keep a second copy of its weights in the proto either.
        del model
        check(path)
        # The session lives as long as the verification that uses it, so that its weights are
        # released before the next step opens the model again.
        probabilities = verify(load(path), path, rows, true_labels, reference)
        inlined = inline_and_compare(skeleton, weights, biases, rows, probabilities)
        if args.benchmark:
            benchmark(path, inlined, weights, biases, args.seed)
        conclude(files, reference[0], with_sklearn=args.train)
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
