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
"""Model surgery: look inside a model, cut it, join it, edit it, convert its opset and precision.

A scikit-learn pipeline on the bundled 8x8 digits, converted with skl2onnx, so that every tensor in
the graph has a scikit-learn counterpart to check against:

    X [N, 64] -> Scaler -> Sub (PCA mean) -> MatMul (PCA) -> LinearClassifier -> Normalizer

1. Look inside: every tensor promoted to an output, against ``pipeline[:k].transform`` and the
   ``ReferenceEvaluator``.  2. Cut: ``onnx.utils.extract_model``.  3. Join: ``merge_models``.
4. Edit a given file: batch 1 made symbolic, an input renamed, metadata.  5. Opsets with
   ``version_converter``, up and down.  6. float16, within float16's error bound.

Run ``python model_surgery.py [--components 16] [--output-dir models] [--seed 0]``. It prints each
check with its largest difference and bound, the real messages of the pitfalls it reproduces in
memory (no broken file is written), the files it wrote, and the library versions.
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
import copy
import dataclasses
import errno
import functools
import platform
import secrets
import statistics
import tempfile
import threading
import timeit
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import skl2onnx
import sklearn
from onnx import compose, helper, numpy_helper, version_converter
from onnx.reference import ReferenceEvaluator
from onnxruntime.transformers import float16
from onnxruntime.transformers.onnx_model import OnnxModel
from sklearn import datasets, decomposition, linear_model, model_selection, preprocessing
from sklearn.pipeline import Pipeline, make_pipeline

OPSET = 22  # the models built here import opset 22, and skl2onnx is asked for it
IR_VERSION = 10  # the IR version that came with opset 22 (onnx.helper.VERSION_TABLE)
TARGET_OPSET = {"": OPSET, "ai.onnx.ml": 3}
PIXELS = 64  # an 8x8 digit, flattened
DEFAULT_COMPONENTS = 16
TENSORS = ("variable", "sub_result", "variable1", "probability_tensor", "probabilities")
PCA_OUTPUT = TENSORS[2]  # TENSORS: the float tensor each node writes, as skl2onnx names it
# Unit roundoffs: one rounding to float32 (float16) changes a value by at most this relative
# amount. Below 2**-14, float16 has only subnormals, 2**-24 apart: there the error is absolute.
FLOAT32_UNIT_ROUNDOFF = 2.0**-24
FLOAT16_UNIT_ROUNDOFF = 2.0**-11
CPU = ["CPUExecutionProvider"]
QUIET = ort.SessionOptions()
QUIET.log_severity_level = 4  # for the pitfalls: their error comes back as an exception only


@dataclasses.dataclass
class Run:
    """What the steps share: the fitted pipeline, held-out digits, the files written."""

    pipeline: Pipeline
    x: np.ndarray  # held-out rows, float32 [N, 64]: whole numbers 0..16, exact in any float
    images: np.ndarray  # the same digits as uint8 images [N, 8, 8]
    folder: Path
    written: list[Path] = dataclasses.field(default_factory=list)


def lesson(args: argparse.Namespace) -> None:
    """The table of contents: train and convert, then the six operations, each verified."""
    print(f"Model surgery on a digits pipeline: {args.components} components, seed {args.seed}")
    run = Run(*train_pipeline(args.components, args.seed), args.output_dir)
    bare = convert(run.pipeline)
    onnx.checker.check_model(bare, full_check=True)
    typed = look_inside(bare, run)  # 1. returns the conversion with its inner tensors typed
    cut(bare, run)  # 2.
    join(typed, run)  # 3.
    edit_given_file(typed, run)  # 4.
    convert_opsets(typed, run)  # 5.
    convert_precision(bare, typed, run)  # 6.
    print(f"\nVerified: {len(run.written)} files, each checked and run from disk:")
    for path in run.written:
        print(f"   {path} ({path.stat().st_size} bytes)")
    libraries = f"numpy {np.__version__}, onnx {onnx.__version__}, onnxruntime {ort.__version__}"
    libraries += f", scikit-learn {sklearn.__version__}, skl2onnx {skl2onnx.__version__}"
    print(f"Versions: Python {platform.python_version()}, {libraries}")


def train_pipeline(components: int, seed: int) -> tuple[Pipeline, np.ndarray, np.ndarray]:
    """Fit StandardScaler -> PCA -> LogisticRegression; return it, held-out rows and images."""
    digits = datasets.load_digits()
    train, test = model_selection.train_test_split(
        np.arange(len(digits.target)), test_size=0.25, random_state=seed, stratify=digits.target
    )
    steps = preprocessing.StandardScaler(), decomposition.PCA(components, random_state=seed)
    pipeline = make_pipeline(*steps, linear_model.LogisticRegression(max_iter=5000))
    pipeline.fit(digits.data[train], digits.target[train])
    return pipeline, digits.data[test].astype(np.float32), digits.images[test].astype(np.uint8)


def sorted_opsets(model: onnx.ModelProto) -> onnx.ModelProto:
    """One opset per domain, sorted, IR version 10: the same bytes under any hash seed."""
    versions = sorted((opset.domain, opset.version) for opset in model.opset_import)
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(*v) for v in dict(versions).items())
    model.ir_version = IR_VERSION
    return model


def convert(pipeline: Pipeline) -> onnx.ModelProto:
    """Convert the pipeline with skl2onnx: X float32 [N, 64] -> label, probabilities."""
    types = [("X", skl2onnx.common.data_types.FloatTensorType([None, PIXELS]))]  # None: any N
    options = {id(pipeline[-1]): {"zipmap": False}}  # probabilities as a matrix
    model = skl2onnx.to_onnx(
        pipeline, initial_types=types, target_opset=TARGET_OPSET, options=options
    )
    return sorted_opsets(model)


def references(pipeline: Pipeline, x: np.ndarray) -> dict[str, np.ndarray]:
    """scikit-learn's float64 value of each tensor in TENSORS (PCA centres, then projects)."""
    x = x.astype(np.float64)  # float32 rows would make scikit-learn compute in float32
    scaled, probabilities = pipeline[:1].transform(x), pipeline.predict_proba(x)
    values = scaled, scaled - pipeline[1].mean_, pipeline[:2].transform(x)
    return dict(zip(TENSORS, [*values, probabilities, probabilities], strict=True))


def error_bounds(
    pipeline: Pipeline, x: np.ndarray, unit: float = FLOAT32_UNIT_ROUNDOFF, pca_error: Any = None
) -> dict[str, np.ndarray]:
    """How far each tensor may be from its exact value when Sub and MatMul round to `unit`."""
    # A sum of products that go through at most k roundings each is within gamma_k = k·u/(1 - k·u)
    # times their magnitudes of the exact sum, in any order (Higham, 3.1): lesson 1's bound.
    scaler, pca, classifier = pipeline[0], pipeline[1], pipeline[2]
    gamma = lambda k, u=FLOAT32_UNIT_ROUNDOFF: k * u / (1 - k * u)  # noqa: E731
    scaled = (np.abs(x) + np.abs(scaler.mean_)) / scaler.scale_  # (x - offset)·scale: 4 roundings
    centred = scaled + np.abs(pca.mean_)  # Sub: 2 more, the mean rounded and the subtraction
    magnitude = centred @ np.abs(pca.components_.T)  # MatMul: 1 per weight, 64 products, 63 sums
    components = gamma(PIXELS + 7, unit) * magnitude
    if unit != FLOAT32_UNIT_ROUNDOFF:  # values below 2**-14 (weights, mean, products) lose up to
        tiny = PIXELS + 2 * np.abs(pca.components_).sum(1) + 2 * centred.sum(1, keepdims=True)
        components += 2.0**-24 * tiny  # a subnormal step, 2**-24, absolutely
    components = components if pca_error is None else pca_error  # a measured difference
    # Scores move by components·|coef| and round; softmax moves by half that at most (2p(1 - p)).
    coefficients = np.abs(classifier.coef_.T)
    scores = components @ coefficients + gamma(len(coefficients) + 3) * (
        (magnitude + components) @ coefficients + np.abs(classifier.intercept_)
    )
    probabilities = scores.max(axis=1, keepdims=True) / 2 + gamma(2 * len(coefficients.T) + 4)
    values = gamma(4) * scaled, gamma(6, unit) * centred, components, probabilities, probabilities
    return dict(zip(TENSORS, values, strict=True))


def compare(name: str, actual: np.ndarray, expected: np.ndarray, bound: np.ndarray) -> float:
    """Return the largest absolute difference; raise AssertionError where it exceeds the bound."""
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {actual.shape} differs from {expected.shape}")
    difference = np.abs(actual.astype(np.float64) - expected)
    if outside := int(np.count_nonzero(~(difference <= bound))):  # NaN is outside too
        largest = f"largest {np.nanmax(difference):.3g}, bound {np.max(bound):.3g}"
        raise AssertionError(f"{name}: {outside} of {difference.size} beyond the bound ({largest})")
    return float(difference.max())


def load_session(path: Path) -> ort.InferenceSession:
    """Open a saved file in ONNX Runtime, on the CPU."""
    return ort.InferenceSession(str(path), providers=CPU)


def verify(session: ort.InferenceSession, feed: dict, expected: dict, bounds: dict) -> dict:
    """Run; check expected outputs within their bounds and labels where the bounds decide them."""
    names = [output.name for output in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, feed), strict=True))
    worst = {name: compare(name, outputs[name], expected[name], bounds[name]) for name in expected}
    if "label" in outputs:
        ordered = np.sort(expected["probabilities"], axis=1)
        decided = ordered[:, -1] - ordered[:, -2] > 2 * bounds["probabilities"].ravel()  # sure
        differ = outputs["label"] != expected["probabilities"].argmax(axis=1)
        if np.any(differ & decided):
            raise AssertionError(f"{np.sum(differ & decided)} labels differ where they cannot")
        print(f"   labels: {np.sum(~differ)} of {len(differ)} agree ({np.sum(decided)} decided)")
    for name, difference in worst.items():
        print(f"   {name}: largest difference {difference:.2g} <= {bounds[name].max():.2g}")
    return outputs


@contextlib.contextmanager
def saved(run: Run, name: str, model: onnx.ModelProto) -> Iterator[ort.InferenceSession]:
    """Save as name, yield the file in ONNX Runtime; keep it if it passes the with block."""
    path = run.folder / name
    with publish(path) as draft:
        onnx.save_model(model, draft)
        onnx.checker.check_model(draft, full_check=True)
        yield load_session(draft)
    run.written.append(path)


def pitfall(what: str, action: Callable[[], object]) -> None:
    """Run an action that must fail, and print the first line of its error message."""
    try:
        action()
    except Exception as error:  # onnx and ONNX Runtime raise their own exception types
        message = str(error).strip().splitlines()[0].replace("[ONNXRuntimeError] : ", "").strip()
        message = message.rpartition(" was false. ")[2][:160]  # after ONNX Runtime's C++ check
        print(f"   pitfall, {what}: {type(error).__name__}: {message}")
        return
    raise AssertionError(f"{what}: expected an error, and it worked")


def promote(model: onnx.ModelProto, names: tuple[str, ...]) -> onnx.ModelProto:
    """Return a copy where the named inner tensors are graph outputs too, with their types."""
    promoted, types = copy.deepcopy(model), {info.name: info for info in model.graph.value_info}
    promoted.graph.output.extend(types[name] for name in names)
    return promoted


def look_inside(bare: onnx.ModelProto, run: Run) -> onnx.ModelProto:
    """List the tensors, promote the inner ones, check them; return the model with them typed."""
    print("\n1. Look inside: every tensor, the node that makes it, its value")
    for node in bare.graph.node:  # nodes are wired by tensor names, and listed in order
        print(f"   {node.op_type:<16} ({', '.join(node.input)}) -> {', '.join(node.output)}")
    inner = TENSORS[:-1]  # (probabilities is an output already, and so is label)
    plain = ort.InferenceSession(bare.SerializeToString(), providers=CPU)
    pitfall("not an output", lambda: plain.run([PCA_OUTPUT], {"X": run.x}))
    # Shape inference cannot see through Scaler (ai.onnx.ml gives it no inference function). One
    # reference run gives each tensor's type and width; the batch stays free (no value: "?").
    values: Any = ReferenceEvaluator(bare).run(None, {"X": run.x}, intermediate=True)
    typed = copy.deepcopy(bare)
    for name in inner:
        element = helper.np_dtype_to_tensor_dtype(values[name].dtype)
        shape = [None, *values[name].shape[1:]]
        typed.graph.value_info.append(helper.make_tensor_value_info(name, element, shape))
    expected, bounds = references(run.pipeline, run.x), error_bounds(run.pipeline, run.x)
    with saved(run, "digits_pipeline_every_tensor.onnx", promote(typed, inner)) as session:
        outputs = verify(session, {"X": run.x}, expected, bounds)
        for name in inner:  # the reference evaluator computes in float32 too: twice the bound
            compare(name, outputs[name], values[name], 2 * bounds[name])
        print("   and each within twice its bound of the reference evaluator's intermediate result")
    with saved(run, "digits_pipeline.onnx", typed) as session:
        verify(session, {"X": run.x}, {"probabilities": expected["probabilities"]}, bounds)
    return typed


def cut(bare: onnx.ModelProto, run: Run) -> None:
    """Extract X -> PCA output from the saved pipeline; it must equal step 1's inner tensor."""
    print("\n2. Cut: onnx.utils.extract_model keeps X -> PCA components")
    # The extractor takes the new inputs and outputs from value_info: an untyped tensor cannot be.
    pitfall("untyped", lambda: onnx.utils.Extractor(bare).extract_model(["X"], [PCA_OUTPUT]))
    source, path = run.folder / "digits_pipeline.onnx", run.folder / "digits_preprocessing.onnx"
    with publish(path) as draft:  # the fix: cut step 1's file, which declares the types
        onnx.utils.extract_model(str(source), str(draft), ["X"], [PCA_OUTPUT], check_model=True)
        onnx.checker.check_model(draft, full_check=True)
        expected, bounds = references(run.pipeline, run.x), error_bounds(run.pipeline, run.x)
        part = verify(load_session(draft), {"X": run.x}, {PCA_OUTPUT: expected[PCA_OUTPUT]}, bounds)
        whole = load_session(run.folder / "digits_pipeline_every_tensor.onnx")
        np.testing.assert_array_equal(part[PCA_OUTPUT], whole.run([PCA_OUTPUT], {"X": run.x})[0])
        kept = ", ".join(node.op_type for node in onnx.load(draft).graph.node)
        print(f"   nodes kept: {kept}; {PCA_OUTPUT} equal to step 1's, bit for bit")
    run.written.append(path)


def preprocessing_model(batch: str) -> onnx.ModelProto:
    """Parse the preprocessing from ONNX's text syntax: uint8 images [batch, 8, 8] -> X float."""
    # The Reshape target is a stored constant: -1 lets any batch through, a number bakes it in.
    return onnx.parser.parse_model(f"""
        <ir_version: {IR_VERSION}, opset_import: ["" : {OPSET}]>
        preprocess (uint8[{batch}, 8, 8] image) => (float[{batch}, 64] X)
            <int64[2] shape = {{{-1 if batch == "N" else batch}, 64}}> {{
            [to_float] pixels = Cast <to = 1> (image)
            [flatten] X = Reshape (pixels, shape)
        }}""")


def joined(pre: onnx.ModelProto, classifier: onnx.ModelProto) -> onnx.ModelProto:
    """Merge the preprocessing in front of the classifier: its X feeds the classifier's X."""
    # Tensors are wired by name: merge_models refuses graphs that share one, so prefix yours.
    merged = compose.merge_models(compose.add_prefix(pre, "pre_"), classifier, [("pre_X", "X")])
    merged.graph.input[0].name = merged.graph.node[0].input[0] = "image"  # the Cast reads it
    merged.graph.name, merged.producer_name = "digits_images", "onnx-by-example/model_surgery.py"
    return sorted_opsets(merged)


def image_references(run: Run, rows: int) -> tuple[dict, dict]:
    """The pipeline's probabilities for the first rows images, and the bounds."""
    x = run.images[:rows].reshape(-1, PIXELS).astype(np.float32)
    expected = {"probabilities": references(run.pipeline, x)["probabilities"]}
    return expected, error_bounds(run.pipeline, x)


def join(typed: onnx.ModelProto, run: Run) -> None:
    """Write the classifier that takes raw images; its outputs must be the pipeline's."""
    print("\n3. Join: a preprocessing in ONNX's text syntax, merged in front of the classifier")
    with saved(run, "digits_images.onnx", joined(preprocessing_model("N"), typed)) as session:
        verify(session, {"image": run.images}, *image_references(run, len(run.images)))


def edit_given_file(typed: onnx.ModelProto, run: Run) -> None:
    """From a file exported with batch 1: a symbolic batch, a renamed input, metadata."""
    print("\n4. Edit a file you were given: its batch is fixed to 1")
    given = run.folder / "digits_images_batch1.onnx"  # what an exporter tracing one image writes
    with saved(run, given.name, joined(preprocessing_model("1"), typed)) as session:
        verify(session, {"image": run.images[:1]}, *image_references(run, 1))
    model = onnx.load(given)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"  # was dim_value 1
    onnx.checker.check_model(model, full_check=True)  # a valid model, yet 5 images fail:
    stuck = ort.InferenceSession(model.SerializeToString(), QUIET, providers=CPU)
    pitfall("Reshape says 1", lambda: stuck.run(None, {"image": run.images[:5]}))
    shape = next(tensor for tensor in model.graph.initializer if tensor.name == "pre_shape")
    shape.CopyFrom(numpy_helper.from_array(np.array([-1, PIXELS], np.int64), "pre_shape"))
    for node in model.graph.node:  # renaming an input: the input, and every node that reads it
        node.input[:] = ["images" if name == "image" else name for name in node.input]
    model.graph.input[0].name = "images"
    helper.set_model_props(model, {"classes": "0-9", "pixels": "8x8, 0 to 16"})  # metadata_props
    with saved(run, "digits_images_any_batch.onnx", model) as session:
        verify(session, {"images": run.images}, *image_references(run, len(run.images)))
        before = load_session(given).run(None, {"image": run.images[:1]})[1]
        np.testing.assert_array_equal(session.run(None, {"images": run.images[:1]})[1], before)
        metadata = session.get_modelmeta().custom_metadata_map
        np.testing.assert_equal(metadata, {prop.key: prop.value for prop in model.metadata_props})
        print(f"   any batch, input renamed; get_modelmeta() reads {sorted(metadata.items())}")


def lowest_opset(model: onnx.ModelProto) -> tuple[int, str]:
    """Step down until the converter gives up; return the last opset that worked, the message."""
    for target in range(next(o.version for o in model.opset_import if not o.domain) - 1, 0, -1):
        try:
            version_converter.convert_version(model, target)
        except RuntimeError as error:
            return target + 1, str(error).rpartition("failed: ")[2]
    return 1, "none"


def convert_opsets(typed: onnx.ModelProto, run: Run) -> None:
    """Upgrade an opset-11 file to 22, and the pipeline down as far as it goes: same outputs."""
    print("\n5. Convert the opset with onnx.version_converter")
    old = onnx.parser.parse_model("""
        <ir_version: 6, opset_import: ["" : 11]>
        brightness (float[N, 1, 8, 8] image) => (float[N] mean) {
            pixels = Squeeze <axes = [1]> (image)
            mean = ReduceMean <axes = [1, 2], keepdims = 0> (pixels)
        }""")  # an old file: each image's mean brightness at opset 11, axes as attributes
    new = version_converter.convert_version(old, OPSET)
    inputs = ", ".join(f"{node.op_type} {len(node.input)}" for node in new.graph.node)
    # The IR version is the file format's (which fields and types may appear), not the operators'.
    # The converter leaves 6 (accepted); opset 22 came with IR 10, which any reader of 22 reads.
    print(f"   11 -> 22, inputs per node: {inputs}; ir_version {new.ir_version} -> {IR_VERSION}")
    new.ir_version = IR_VERSION
    feed = {"image": run.images[:, None].astype(np.float32)}
    before = ort.InferenceSession(old.SerializeToString(), providers=CPU).run(None, feed)[0]
    with saved(run, "image_brightness_opset22.onnx", new) as session:
        after = session.run(None, feed)[0]
        np.testing.assert_array_equal(after, before)  # and, whole numbers / 64 being exact:
        np.testing.assert_array_equal(after, run.images.reshape(len(after), -1).mean(axis=1))
        print("   outputs equal before and after, and equal to NumPy's mean")
    for name, model in (("brightness", new), ("the pipeline", typed)):
        lowest, message = lowest_opset(model)
        print(f"   {name} goes down to opset {lowest}; to {lowest - 1}: {message}")
    down = version_converter.convert_version(typed, lowest)  # moves the default domain only
    down.ir_version = helper.find_min_ir_version_for(list(down.opset_import))
    outputs = load_session(run.folder / "digits_pipeline.onnx").run(None, {"X": run.x})
    with saved(run, f"digits_pipeline_opset{lowest}.onnx", down) as session:
        for old_output, new_output in zip(outputs, session.run(None, {"X": run.x}), strict=True):
            np.testing.assert_array_equal(new_output, old_output)
        print(f"   opset {lowest}, IR version {down.ir_version}: outputs equal to opset {OPSET}'s")


def convert_precision(bare: onnx.ModelProto, typed: onnx.ModelProto, run: Run) -> None:
    """float32 -> float16, with and without keep_io_types, checked against the float32 file."""
    print("\n6. Convert the precision to float16 with onnxruntime.transformers.float16")
    # It blocks ai.onnx.ml operators (no float16 kernels), appending its Cast nodes at the end.
    broken = float16.convert_float_to_float16(copy.deepcopy(bare), keep_io_types=True)
    pitfall("unsorted", lambda: onnx.checker.check_model(broken))
    pitfall("untyped", lambda: ort.InferenceSession(broken.SerializeToString(), QUIET, CPU))
    x, pipeline, path = run.x, run.pipeline, run.folder / "digits_pipeline.onnx"
    reference = load_session(path)
    expected = {"probabilities": reference.run(["probabilities"], {"X": x})[0]}
    exact = load_session(run.folder / "digits_preprocessing.onnx").run(None, {"X": x})[0]
    pca_bound = error_bounds(pipeline, x)[PCA_OUTPUT]  # float16 vs float32: both bounds add up
    pca_bound = pca_bound + error_bounds(pipeline, x, FLOAT16_UNIT_ROUNDOFF)[PCA_OUTPUT]
    timed = [("float32", reference, {"X": x}, path)]
    for keep_io_types, name in ((False, "float16"), (True, "float16_io32")):
        half = float16.convert_float_to_float16(copy.deepcopy(typed), keep_io_types=keep_io_types)
        OnnxModel.graph_topological_sort(half.graph)  # the fix: value_info (step 1), then sort
        feed = {"X": x if keep_io_types else x.astype(np.float16)}
        inner = ort.InferenceSession(promote(half, (PCA_OUTPUT,)).SerializeToString(), None, CPU)
        got = inner.run([PCA_OUTPUT], feed)[0]
        worst = compare(PCA_OUTPUT, got, exact, pca_bound)
        print(
            f"   keep_io_types={keep_io_types}: {PCA_OUTPUT} {worst:.2g} <= {pca_bound.max():.2g}"
        )
        # The float32 classifier on that difference, twice (each model rounds), and 4 float16
        # roundings of values <= 1 (probability_tensor is float16 inside, Normalizer, output)
        moved = np.abs(got.astype(np.float64) - exact)
        bound = 2 * error_bounds(pipeline, x, pca_error=moved)["probabilities"]
        bound += 4 * FLOAT16_UNIT_ROUNDOFF
        with saved(run, f"digits_pipeline_{name}.onnx", half) as session:
            verify(session, feed, expected, {"probabilities": bound})
        timed.append((name, session, feed, run.written[-1]))
    for name, session, feed, path in timed:  # the median of 30 runs of the whole batch
        run_once = functools.partial(session.run, None, feed)
        seconds = statistics.median(timeit.repeat(run_once, number=1, repeat=30))
        print(f"   {name:<13} {path.stat().st_size:5d} bytes, {seconds * 1e6:6.1f} µs per run")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The lesson's own flags."""
    components = functools.partial(whole_number, low=1, high=PIXELS)
    text = f"principal components the PCA keeps, 1 to {PIXELS}"
    parser.add_argument("--components", type=components, default=DEFAULT_COMPONENTS, help=text)


def usage_problem(args: argparse.Namespace) -> str | None:
    """Any component count from 1 to 64 works: nothing to refuse beyond the flag's range."""
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
