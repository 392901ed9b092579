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
#     "tract==0.23.9; platform_machine in 'x86_64 AMD64 arm64'",
#     "typing_extensions==4.16.0",
# ]
# ///
"""The same ONNX file in another language and another engine: onnxruntime-web and tract.

ONNX exists so that a model written by one framework runs in another runtime. This lesson writes
seven small files that show where a file really travels, verifies each in Python's onnxruntime,
runs it in JavaScript (onnxruntime-web under Node.js) and in tract (an engine written in Rust):

    linear        MatMul, Add (hand-built)           standard operators: runs everywhere
    mlp_functions a model-local function DenseRelu   tract refuses it; inline it first
    mlp_inlined   the same MLP, functions inlined    runs everywhere
    mlp_external  the inlined MLP, weights external  JavaScript must be handed the data file
    ml_pipeline   Imputer, Scaler, LinearClassifier  ai.onnx.ml: ONNX Runtime yes, tract no
    strings       OneHotEncoder on string tensors    strings in, string labels out
    qdq_int8      the MLP quantized to int8 (QDQ)    tract: a wrong answer, and no error

Steps: 1. build each model and its inputs (NaN, int64 labels and strings among them); 2. write
each ``.onnx`` file, verified in onnxruntime, and a ``.json`` file of its inputs and outputs that
reads back exactly; 3. run them all with ``node js/run_models.mjs`` (skipped, saying how to fix
it, without Node.js or ``npm ci`` in js/); 4. run them in tract. Labels must be equal and
probabilities within a stated tolerance; the report says what was skipped and why.

Run it:  python other_runtimes.py      (and tools/oldest_onnxruntime.py for older onnxruntime)
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
import hashlib
import json
import logging
import secrets
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import skl2onnx
import sklearn
from onnx import TensorProto, helper, inliner, numpy_helper
from onnx.external_data_helper import set_external_data
from onnx.reference import ReferenceEvaluator
from onnxruntime.quantization import QuantFormat, quantize_static
from skl2onnx.common.data_types import FloatTensorType, StringTensorType
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

try:
    import tract
except ImportError:  # no wheel for Linux aarch64 or Windows on Arm (requirements.txt): step 4 skips
    tract = None

OPSET = 22  # the default domain's opset: onnxruntime 1.21.0 and later load it
IR_VERSION = 10
TARGET_OPSET = {"": OPSET, "ai.onnx.ml": 3}  # as in sklearn_converter.py
LOCAL_DOMAIN = "example.layers"  # the domain of the model-local function
FEATURES, HIDDEN, CLASSES = 4, 8, 3
STANDARD_MODELS = ("linear", "mlp_inlined", "mlp_external")  # only standard operators, float
JS_FOLDER = Path(__file__).resolve().parent / "js"  # run_models.mjs, package.json, the lockfile
# Two engines sum 9 float32 products in their own orders: 1e-5 at worst (docs/other_runtimes.md).
TOLERANCE = 1e-5
QDQ_STEP = 1 / 255 + TOLERANCE  # int8 probabilities: one quantization step may round either way


def lesson(args: argparse.Namespace) -> None:
    """The table of contents: build, write, run in JavaScript, run in tract, report."""
    known = f"onnx {onnx.__version__} knows up to {onnx.defs.onnx_opset_version()}"
    print(f"1. Build seven models (opset {OPSET}; {known})")
    cases = build_models(np.random.default_rng(args.seed))
    print(f"2. Write each model, verified in onnxruntime {ort.__version__}, and its JSON file")
    for name, case in cases.items():
        write_case(args.output_dir, name, case)
    print("3. Run every file in JavaScript: onnxruntime-web under Node.js")
    js = run_javascript(args.output_dir, list(cases))
    verified = [f"{len(cases)} models match onnx.reference or scikit-learn in onnxruntime"]
    if isinstance(js, dict):
        for name, case in cases.items():
            compare_case("onnxruntime-web", name, js["results"][f"{name}.json"], case)
        verified.append(f"onnxruntime-web gives the same outputs for all {len(cases)}")
    skipped = [] if isinstance(js, dict) else ["onnxruntime-web (skipped: see step 3)"]
    if tract is None:
        print("4. tract: skipped, it is not installed (no wheel for this platform: it needs Rust)")
        skipped.append("tract (skipped: not installed)")
        outcomes = {}
    else:
        print(f"4. Run the files in tract {tract.version()}, an independent engine")
        outcomes = {n: run_tract(args.output_dir / f"{n}.onnx", case) for n, case in cases.items()}
        verify_tract(outcomes)
        matched = [name for name, (outcome, _) in outcomes.items() if outcome == "matches"]
        verified.append(f"tract gives the same for {', '.join(matched)}")
    print("Verified: " + "; ".join(verified))
    others = [f"{name} ({result})" for name, (result, _) in outcomes.items() if result != "matches"]
    print(
        "Not verified: "
        + "; ".join([*skipped, *([f"tract on {', '.join(others)}"] * bool(others))])
    )
    versions = {"Python": sys.version.split()[0], "numpy": np.__version__, "onnx": onnx.__version__}
    versions |= {"onnxruntime": ort.__version__, "scikit-learn": sklearn.__version__}
    versions |= {"skl2onnx": skl2onnx.__version__, "tract": tract.version() if tract else "none"}
    versions |= js["versions"] if isinstance(js, dict) else {}
    print("Versions: " + ", ".join(f"{name} {version}" for name, version in versions.items()))


@dataclass
class Case:
    """A model, the inputs it runs on, what it must compute, and how exactly."""

    model: onnx.ModelProto
    inputs: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]  # from onnx.reference or scikit-learn, never from ORT
    tolerance: float  # for float outputs against expected; integers and strings must be equal
    agreement: float = TOLERANCE  # for float outputs of two runtimes, the same file
    external_data: bool = False
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # Python onnxruntime's


# --- 1. Build -----------------------------------------------------------------------------------
def build_models(rng: np.random.Generator) -> dict[str, Case]:
    """The seven models of the lesson, each with its inputs and its reference outputs."""
    x = rng.normal(size=(6, FEATURES)).astype(np.float32)
    a, b = rng.normal(size=(FEATURES, 1)), rng.normal(size=1)
    with_nan = x.copy()
    with_nan[2, 1] = np.nan  # NaN must travel through the JSON file and through each engine
    linear = build_linear(a, b)
    weights = [rng.normal(size=(FEATURES, HIDDEN)), rng.normal(size=HIDDEN)]
    weights += [rng.normal(size=(HIDDEN, CLASSES)), rng.normal(size=CLASSES)]
    with_functions = build_mlp(weights)
    inlined = inliner.inline_local_functions(with_functions)  # each call becomes its body
    # What each file means, operator by operator: onnx's reference implementation, in NumPy.
    expected, qdq = reference(inlined, {"X": x}), quantize(inlined, rng)
    return {
        "linear": Case(linear, {"X": with_nan}, reference(linear, {"X": with_nan}), TOLERANCE),
        "mlp_functions": Case(with_functions, {"X": x}, expected, TOLERANCE),
        "mlp_inlined": Case(inlined, {"X": x}, expected, TOLERANCE),
        "mlp_external": Case(inlined, {"X": x}, expected, TOLERANCE, external_data=True),
        **build_pipelines(rng),
        "qdq_int8": Case(qdq, {"X": x}, reference(qdq, {"X": x}), QDQ_STEP, QDQ_STEP),
    }


def make_model(
    nodes: list[Any], outputs: list[Any], weights: dict[str, Any], functions: list[Any]
) -> onnx.ModelProto:
    """A checked model with one input, X: float[N, 4] (N a named dynamic dimension)."""
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", FEATURES])
    tensors = [numpy_helper.from_array(w.astype(np.float32), name) for name, w in weights.items()]
    graph = helper.make_graph(nodes, "model", [x], outputs, tensors)
    opsets = [helper.make_opsetid("", OPSET)]
    opsets += [helper.make_opsetid(LOCAL_DOMAIN, 1) for _ in functions[:1]]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=IR_VERSION)
    model.functions.extend(functions)
    onnx.checker.check_model(model, full_check=True)
    return model


def build_linear(a: np.ndarray, b: np.ndarray) -> onnx.ModelProto:
    """Y = X·A + B, by hand (lesson 1's graph)."""
    matmul = helper.make_node("MatMul", ["X", "A"], ["XA"])
    add = helper.make_node("Add", ["XA", "B"], ["Y"])
    y = helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 1])
    return make_model([matmul, add], [y], {"A": a, "B": b}, [])


def build_mlp(weights: list[np.ndarray]) -> onnx.ModelProto:
    """An MLP whose hidden layer calls a model-local function, DenseRelu (lesson 2's idea)."""
    matmul = helper.make_node("MatMul", ["X", "W"], ["XW"])  # the function's body: its own graph
    add = helper.make_node("Add", ["XW", "B"], ["Z"])
    body = [matmul, add, helper.make_node("Relu", ["Z"], ["H"])]
    opsets = [helper.make_opsetid("", OPSET)]
    dense = helper.make_function(LOCAL_DOMAIN, "DenseRelu", ["X", "W", "B"], ["H"], body, opsets)
    nodes = [
        helper.make_node("DenseRelu", ["X", "W0", "B0"], ["H0"], domain=LOCAL_DOMAIN),
        helper.make_node("MatMul", ["H0", "W1"], ["Z1"]),
        helper.make_node("Add", ["Z1", "B1"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"]),  # axis -1, the default
        helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
    ]
    outputs = [
        helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
        helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", CLASSES]),
    ]
    named = dict(zip(["W0", "B0", "W1", "B1"], weights, strict=True))
    return make_model(nodes, outputs, named, [dense])


def reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The outputs of onnx.reference.ReferenceEvaluator, by name."""
    evaluator = ReferenceEvaluator(model)
    return dict(zip(evaluator.output_names, evaluator.run(None, feeds), strict=True))


def build_pipelines(rng: np.random.Generator) -> dict[str, Case]:
    """Two scikit-learn pipelines through skl2onnx: ai.onnx.ml operators, and string tensors."""
    x = rng.normal(size=(120, FEATURES)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    x[rng.random(x.shape) < 0.1] = np.nan  # missing values, for the Imputer
    numeric = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression()).fit(x, y)
    colours = np.array(["red", "green", "blue", "vert émeraude"])[rng.integers(0, 4, size=(80, 1))]
    warm = np.where(np.isin(colours[:, 0], ["red", "vert émeraude"]), "warm", "cold")
    text = make_pipeline(OneHotEncoder(handle_unknown="ignore"), LogisticRegression())
    test = np.array([["red"], ["blue"], ["vert émeraude"], ["never seen"]], dtype=object)
    return {
        "ml_pipeline": convert(numeric, ("X", FloatTensorType([None, FEATURES])), x[:6]),
        "strings": convert(text.fit(colours, warm), ("colour", StringTensorType([None, 1])), test),
    }


def convert(pipeline: Any, initial_type: tuple[str, Any], test: np.ndarray) -> Case:
    """skl2onnx's conversion, with its opsets sorted (it lists them in hash order)."""
    options = {id(pipeline[-1]): {"zipmap": False}}  # plain tensors, not a list of maps
    model = skl2onnx.to_onnx(
        pipeline, initial_types=[initial_type], target_opset=TARGET_OPSET, options=options
    )
    opsets = sorted((o.domain, o.version) for o in model.opset_import)
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(domain, version) for domain, version in opsets)
    expected = {"label": pipeline.predict(test), "probabilities": pipeline.predict_proba(test)}
    return Case(model, {initial_type[0]: test}, expected, TOLERANCE)


def quantize(model: onnx.ModelProto, rng: np.random.Generator) -> onnx.ModelProto:
    """Static int8 quantization in the QDQ format: QuantizeLinear/DequantizeLinear pairs."""
    rows = rng.normal(size=(64, FEATURES)).astype(np.float32)
    # The quantizer measures each tensor's range on these rows, fed by anything with get_next().
    batches = iter([{"X": row[None]} for row in rows])
    reader = SimpleNamespace(get_next=functools.partial(next, batches, None))
    logging.disable(logging.WARNING)  # its advice to preprocess first does not apply here
    try:
        with tempfile.TemporaryDirectory() as folder:
            quantize_static(model, Path(folder) / "q.onnx", reader, QuantFormat.QDQ)
            return onnx.load(Path(folder) / "q.onnx")
    finally:
        logging.disable(logging.NOTSET)


# --- 2. Write: the model verified from disk, then the JSON file for the other runtimes ---------
def write_case(folder: Path, name: str, case: Case) -> None:
    """Publish the model (and its data file), verified in onnxruntime, then its JSON file."""
    path, model, external = folder / f"{name}.onnx", case.model, []
    if case.external_data:
        model, data = move_weights_out(case.model, name)
        external = [model.graph.initializer[0].external_data[0].value]  # the data file's name
        with publish(folder / external[0]) as draft:
            draft.write_bytes(data)  # named after its content: a file of that name is this file
    with publish(path) as draft:
        onnx.save_model(model, draft)
        session = load_session(draft)  # from disk, with its data file if it has one
        names = [output.name for output in session.get_outputs()]
        case.outputs = dict(zip(names, session.run(names, case.inputs), strict=True))
        verify(name, case.outputs, case.expected, case.tolerance)
    tensors = {"inputs": case.inputs, "outputs": case.outputs}
    spec: dict[str, Any] = {"model": path.name, "external_data": external}
    spec |= {key: {k: encode(v) for k, v in arrays.items()} for key, arrays in tensors.items()}
    with publish(path.with_suffix(".json")) as draft:
        draft.write_text(json.dumps(spec) + "\n", encoding="utf-8")
        written = json.loads(draft.read_text(encoding="utf-8"))
        for key, arrays in tensors.items():  # every value reads back exactly
            for tensor, array in arrays.items():
                np.testing.assert_array_equal(decode(written[key][tensor]), array, strict=True)
    operators = sorted({f"{n.domain}.{n.op_type}".lstrip(".") for n in case.model.graph.node})
    files = ", ".join(str(folder / file) for file in [path.name, *external, f"{name}.json"])
    print(f"   {name:14} {', '.join(operators)}\n{'':18}wrote {files}")


def move_weights_out(model: onnx.ModelProto, name: str) -> tuple[onnx.ModelProto, bytes]:
    """External data: the weights' bytes go to one file, named after its content's hash; each
    tensor keeps its name, type and shape, and says where its bytes are (file, offset, length)."""
    moved = onnx.ModelProto()
    moved.CopyFrom(model)
    chunks = [tensor.raw_data for tensor in moved.graph.initializer]
    location, offset = f"{name}.{hashlib.sha256(b''.join(chunks)).hexdigest()[:12]}.data", 0
    for tensor, chunk in zip(moved.graph.initializer, chunks, strict=True):
        set_external_data(tensor, location, offset=offset, length=len(chunk))
        tensor.data_location = TensorProto.EXTERNAL
        tensor.ClearField("raw_data")
        offset += len(chunk)
    return moved, b"".join(chunks)


def load_session(path: Path) -> ort.InferenceSession:
    """Open a saved model in ONNX Runtime on the CPU."""
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def compare(name: str, actual: np.ndarray, expected: np.ndarray, tolerance: float) -> float:
    """The largest difference between float outputs, NaN where NaN is expected (AssertionError
    beyond tolerance); integer and string outputs must be equal (0.0)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    np.testing.assert_equal(actual.shape, expected.shape, err_msg=f"{name}: shape")
    if expected.dtype.kind != "f":
        np.testing.assert_array_equal(actual.astype(expected.dtype), expected, err_msg=name)
        return 0.0
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg=f"{name}: NaN")
    finite = ~np.isnan(expected)
    difference = float(np.max(np.abs(actual[finite] - expected[finite].astype(float)), initial=0))
    if not difference <= tolerance:
        raise AssertionError(f"{name}: largest difference {difference:.2e} > {tolerance:.1e}")
    return difference


def verify(name: str, outputs: dict[str, Any], expected: dict[str, Any], tolerance: float) -> float:
    """Compare every expected output; the largest float difference."""
    np.testing.assert_equal(sorted(set(expected) - set(outputs)), [], err_msg=f"{name}: missing")
    return max(compare(f"{name}.{key}", outputs[key], expected[key], tolerance) for key in expected)


def encode(array: np.ndarray) -> dict[str, Any]:
    """A tensor for JSON, which has no NaN, no int64 and no float32: NaN and the infinities become
    "NaN", "Infinity", "-Infinity"; int64 a decimal string; float32 its shortest decimal
    (str(np.float32(0.1)) is 0.1, which reads back as the same float32 in Python and JavaScript)."""
    special: dict[str, float | str] = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}
    data: list[float | str]
    if array.dtype.kind in "OUS":
        kind, data = "string", [str(value) for value in array.flat]
    elif array.dtype == np.int64:
        kind, data = "int64", [str(value) for value in array.flat]
    elif array.dtype == np.float32:
        kind, data = "float32", [special.get(str(v), float(str(v))) for v in array.flat]
    else:
        raise ValueError(f"no JSON form for {array.dtype} in this lesson")
    return {"type": kind, "dims": list(array.shape), "data": data}


def decode(tensor: dict[str, Any]) -> np.ndarray:
    """A tensor back from its JSON form, exactly (float() reads "NaN" and "Infinity" too)."""
    data, kind = tensor["data"], tensor["type"]
    if kind == "string":
        return np.array(data, dtype=object).reshape(tensor["dims"])
    if kind == "int64":
        return np.array([int(v) for v in data], dtype=np.int64).reshape(tensor["dims"])
    return np.array([float(v) for v in data], dtype=np.float32).reshape(tensor["dims"])


# --- 3. JavaScript: onnxruntime-web under Node.js ---------------------------------------------
def run_javascript(folder: Path, names: list[str]) -> dict[str, Any] | str:
    """Run each JSON file's model in onnxruntime-web; the results, or why the step is skipped."""
    node, install = shutil.which("node"), f"npm ci --ignore-scripts --prefix {JS_FOLDER}"
    script = JS_FOLDER / "run_models.mjs"
    if node is None:
        why = f"Node.js is not installed (see https://nodejs.org/), then run: {install}"
    elif not script.is_file():
        why = f"{script} is missing (it comes with the repository's js/ folder)"
    elif not (JS_FOLDER / "node_modules" / "onnxruntime-web").is_dir():
        why = f"onnxruntime-web is not installed; install it from the lockfile with: {install}"
    else:
        command = [node, str(script), *(str(folder / f"{name}.json") for name in names)]
        result = subprocess.run(command, capture_output=True, text=True, encoding="utf-8")
        if result.returncode != 0:
            raise Failure(f"node run_models.mjs failed: {result.stderr.strip()[-300:]}")
        return json.loads(result.stdout)
    print(f"   skipped: {why}")
    return why


def compare_case(runtime: str, name: str, result: dict[str, Any], case: Case) -> float:
    """Compare another runtime's outputs with Python onnxruntime's; print the difference."""
    if "error" in result:
        raise AssertionError(f"{runtime} cannot run {name}: {result['error']}")
    outputs = {key: decode(tensor) for key, tensor in result["outputs"].items()}
    difference = verify(f"{runtime} {name}", outputs, case.outputs, case.agreement)
    same = "".join(f"{key} equal, " for key, array in outputs.items() if array.dtype.kind != "f")
    print(f"   {name:14} {same}largest difference {difference:.1e} <= {case.agreement:.1e}")
    return difference


# --- 4. tract: an independent engine ----------------------------------------------------------
def run_tract(path: Path, case: Case) -> tuple[str, str]:
    """Run a file in tract: ("matches" | "refused" | "wrong", what happened)."""
    try:
        arrays = tract_outputs(path, case.inputs, facts=False)
    except tract.TractError as error:
        if "without a determined fact" not in str(error):
            return "refused", tract_reason(error)
        # An input dimension without a name (skl2onnx's None) leaves tract without a shape: give
        # it in tract's own terms, a "fact" such as "6,4,f32", and the next limit shows.
        try:
            arrays = tract_outputs(path, case.inputs, facts=True)
        except tract.TractError as error:
            return "refused", "with input facts: " + tract_reason(error)
    outputs = dict(zip(case.outputs, arrays, strict=True))
    try:
        difference = verify(path.stem, outputs, case.outputs, case.agreement)
    except AssertionError:  # no error from tract, yet not the answer: show the first row
        show = functools.partial(np.array2string, precision=2)
        rows = [f"{k} {show(outputs[k][0])}, not {show(v[0])}" for k, v in case.outputs.items()]
        return "wrong", "first row: " + ", ".join(rows)
    return "matches", f"largest difference {difference:.1e} <= {case.agreement:.1e}"


def tract_outputs(path: Path, inputs: dict[str, np.ndarray], facts: bool) -> list[np.ndarray]:
    """Load a file in tract (given each input's shape and type if facts), run it."""
    model = tract.onnx().load(str(path))
    for index, array in enumerate(inputs.values() if facts else []):
        kind = {"float32": "f32", "int64": "i64"}.get(array.dtype.name, "string")
        model.set_input_fact(index, ",".join([*map(str, array.shape), kind]))
    runnable = model.into_model().into_runnable()
    return [result.to_numpy() for result in runnable.run(list(inputs.values()))]


def tract_reason(error: Exception) -> str:
    """A tract error on one line, without its backtrace."""
    return " ".join(str(error).split("Stack backtrace")[0].split())[:200]


def verify_tract(outcomes: dict[str, tuple[str, str]]) -> None:
    """Print what tract did with each file; the standard-operator files must match."""
    for name, (outcome, detail) in outcomes.items():
        print(f"   {name:14} {outcome}: {detail}{'  <- NO ERROR' if outcome == 'wrong' else ''}")
        if name in STANDARD_MODELS and outcome != "matches":
            raise AssertionError(f"tract {name}: {detail}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """This lesson has no flags of its own: its models are small and fixed."""


def usage_problem(args: argparse.Namespace) -> str | None:
    """No flag combination of this lesson can fail."""
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
