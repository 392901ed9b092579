"""The quantizer fights back: each failure met while writing optimize_and_quantize.py, reproduced.

Every test triggers the failure with the pinned versions, checks the exception (or the silence)
and a stable part of its message, then applies the fix from docs/optimize_and_quantize.md.
"""

import importlib.util
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.inliner
import pytest
from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

import neural_network as nn
import optimize_and_quantize as oq

Split = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def digits() -> Split:
    return oq.load_digits_split(seed=0)


@pytest.fixture(scope="module")
def scaler_pipeline(digits: Split, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A StandardScaler -> MLPClassifier pipeline converted as sklearn_converter.py does it."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, _, y_train, _ = digits
    pipeline = make_pipeline(
        StandardScaler(), MLPClassifier(hidden_layer_sizes=(32,), max_iter=50, random_state=0)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # a few epochs suffice here
        pipeline.fit(x_train, y_train)
    model = to_onnx(
        pipeline,
        initial_types=[("X", FloatTensorType([None, 64]))],
        target_opset=oq.TARGET_OPSET,
        options={id(pipeline): {"zipmap": False}},
    )
    assert [n.op_type for n in model.graph.node][:3] == ["Scaler", "Cast", "MatMul"]
    path = tmp_path_factory.mktemp("pipeline") / "pipeline.onnx"
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def lesson_model(digits: Split, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The lesson's model (scaling as a Mul node), small, saved."""
    x_train, _, y_train, _ = digits
    classifier = oq.train_classifier(x_train, y_train, seed=0, hidden=(32,))
    path = tmp_path_factory.mktemp("lesson") / oq.FLOAT_FILE
    onnx.save_model(oq.convert(classifier), path)
    return path


def operators(path: Path) -> list[str]:
    return [node.op_type for node in onnx.load(path).graph.node]


# 1. A Scaler (ai.onnx.ml) in front: the preprocessed model has tensors without a type ---------


def test_1_dynamic_quantization_of_a_preprocessed_scaler_pipeline(
    scaler_pipeline: Path, lesson_model: Path, tmp_path: Path
) -> None:
    preprocessed = tmp_path / "preprocessed.onnx"
    quant_pre_process(str(scaler_pipeline), str(preprocessed), skip_symbolic_shape=True)
    # Preprocessing removed skl2onnx's float-to-float Cast: nothing after Scaler has a type now.
    assert "Cast" not in operators(preprocessed)[:3]
    message = (
        "Unable to find data type for weight_name='mul_result'. shape_inference failed to return "
        "a type probably this node is from a different domain or using an input produced by such "
        "an operator. This may happen if you quantize a model already quantized. You may use "
        "extra_options `DefaultTensorType` to indicate the default weight type, usually "
        "`onnx.TensorProto.FLOAT`."
    )
    with pytest.raises(RuntimeError, match=re.escape(message)):
        quantize_dynamic(str(preprocessed), str(tmp_path / "dynamic.onnx"))
    # Fix A, the one the message suggests: assume float where shape inference knows no type.
    quantize_dynamic(
        str(preprocessed),
        str(tmp_path / "dynamic.onnx"),
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    assert "MatMulInteger" in operators(tmp_path / "dynamic.onnx")
    # Fix B, the lesson's: the scaling as a standard Mul, whose output type shape inference knows.
    fixed = oq.quantize_dynamic_int8(oq.preprocess(lesson_model, tmp_path), tmp_path / "fix.onnx")
    assert "MatMulInteger" in operators(fixed)


def test_1_static_quantization_of_a_preprocessed_scaler_pipeline(
    scaler_pipeline: Path, lesson_model: Path, digits: Split, tmp_path: Path
) -> None:
    preprocessed = tmp_path / "preprocessed.onnx"
    quant_pre_process(str(scaler_pipeline), str(preprocessed), skip_symbolic_shape=True)
    rows = oq.calibration_rows(digits[0], 64, seed=0)
    message = "Only an existing tensor can be modified, 'out_activations_result' is not."
    with pytest.raises(RuntimeError, match=re.escape(message)):
        quantize_static(
            str(preprocessed), str(tmp_path / "static.onnx"), oq.calibration_reader(rows)
        )
    # Fix: the lesson's model, a Mul in front, quantizes cleanly with the same call.
    preprocessed = oq.preprocess(lesson_model, tmp_path)
    path = oq.quantize_static_int8(preprocessed, rows, tmp_path / "static.onnx")
    assert "QuantizeLinear" in operators(path)


# 2. per_channel=True on Gemm ---------------------------------------------------------------------


def test_2_per_channel_static_quantization_of_gemm(
    lesson_model: Path, digits: Split, tmp_path: Path
) -> None:
    preprocessed = oq.preprocess(lesson_model, tmp_path)
    assert "Gemm" in operators(preprocessed)  # preprocessing fused MatMul + Add into Gemm
    rows = oq.calibration_rows(digits[0], 64, seed=0)
    message = (
        "The truth value of an array with more than one element is ambiguous. "
        "Use a.any() or a.all()"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        quantize_static(
            str(preprocessed),
            str(tmp_path / "per_channel.onnx"),
            oq.calibration_reader(rows),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
        )
    # Fix: per-tensor weights (per_channel=False, the default, and what ONNX Runtime's docstring
    # recommends for CPU throughput); the int8 checks of the lesson pass with it.
    path = oq.quantize_static_int8(preprocessed, rows, tmp_path / "per_tensor.onnx")
    assert "DequantizeLinear" in operators(path)


# 3. Model-local functions: the quantizer does not look inside them -------------------------------


@pytest.fixture(scope="module")
def function_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """neural_network.py's model, 64-256-256-10: Dense and DenseRelu in a custom domain."""
    weights, biases = nn.he_initialise([64, 256, 256, 10], seed=0)
    path = tmp_path_factory.mktemp("functions") / "neural_network.onnx"
    onnx.save(nn.build_model(weights, biases), path)
    return path


def test_3_dynamic_quantization_skips_model_local_functions_silently(
    function_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "quantized.onnx"
    quantize_dynamic(str(function_model), str(target), weight_type=QuantType.QInt8)
    # No exception and nothing about the functions: only the generic hint to preprocess.
    messages = [record.getMessage() for record in caplog.records]
    assert any("Please consider to run pre-processing before quantization" in m for m in messages)
    assert all("function" not in m.lower() for m in messages)
    # The file keeps its size (within 1%) and its Dense nodes; the weights are still float32.
    assert abs(target.stat().st_size - function_model.stat().st_size) < 0.01 * (
        function_model.stat().st_size
    )
    assert operators(target) == ["DenseRelu", "DenseRelu", "Dense", "Softmax", "ArgMax"]


def test_3_inlining_first_lets_the_quantizer_shrink_the_file_4x(
    function_model: Path, tmp_path: Path
) -> None:
    inlined = tmp_path / "inlined.onnx"
    onnx.save(onnx.inliner.inline_local_functions(onnx.load(function_model)), inlined)
    target = tmp_path / "quantized.onnx"
    quantize_dynamic(str(inlined), str(target), weight_type=QuantType.QInt8)
    assert function_model.stat().st_size / target.stat().st_size > 3.5
    assert operators(target).count("MatMulInteger") == 3
    # ONNX Runtime inlines functions when it builds a session, so the recommended preprocessing
    # (which saves the graph an ONNX Runtime session built) inlines them as well.
    preprocessed = tmp_path / "preprocessed.onnx"
    quant_pre_process(str(function_model), str(preprocessed), skip_symbolic_shape=True)
    assert not onnx.load(preprocessed).functions
    quantize_dynamic(str(preprocessed), str(target), weight_type=QuantType.QInt8)
    assert function_model.stat().st_size / target.stat().st_size > 3.5


# 4. Preprocessing wants sympy --------------------------------------------------------------------


@pytest.mark.skipif(importlib.util.find_spec("sympy") is not None, reason="sympy is installed here")
def test_4_preprocessing_without_sympy(lesson_model: Path, tmp_path: Path) -> None:
    message = (
        "sympy is required for symbolic shape inference in quantization preprocessing. "
        "Install with: 'pip install sympy' or pass skip_symbolic_shape=True to quant_pre_process()."
    )
    with pytest.raises(ImportError, match=re.escape(message)):
        quant_pre_process(str(lesson_model), str(tmp_path / "pre.onnx"))
    # Fix: skip the symbolic pass; ONNX shape inference still types every tensor of this model.
    quant_pre_process(str(lesson_model), str(tmp_path / "pre.onnx"), skip_symbolic_shape=True)
    model = onnx.load(tmp_path / "pre.onnx")
    typed = {value.name for value in model.graph.value_info}
    produced = {name for node in model.graph.node for name in node.output}
    outputs = {value.name for value in model.graph.output}
    assert produced - outputs <= typed


def test_calibration_reader_feeds_every_row_once_then_stops() -> None:
    rows = np.arange(130 * 64, dtype=np.float32).reshape(130, 64)
    reader: Any = oq.calibration_reader(rows, batch=64)
    batches = list(iter(reader.get_next, None))
    assert [len(b["X"]) for b in batches] == [64, 64, 2]
    np.testing.assert_array_equal(np.concatenate([b["X"] for b in batches]), rows)


# 6. Static int8 calibrated on noise: every real pixel above the noise's range saturates -----------


def test_6_calibrating_on_noise_below_the_pixel_range_ruins_the_static_model(
    lesson_model: Path, digits: Split, tmp_path: Path
) -> None:
    x_train, x_test, _, y_test = digits
    reference = oq.run(oq.load_session(lesson_model), x_test)
    float_accuracy = oq.fidelity(oq.load_session(lesson_model), x_test, y_test, *reference)[0]
    preprocessed = oq.preprocess(lesson_model, tmp_path)
    assert preprocessed.parent == tmp_path and "Gemm" in operators(preprocessed)
    rng = np.random.default_rng(0)
    calibrations = {
        "training rows": oq.calibration_rows(x_train, oq.CALIBRATION_ROWS, seed=0),
        # The reflex placeholder, np.random.rand: values 0 to 1, while pixels go up to 16.
        "noise in [0, 1)": rng.random((oq.CALIBRATION_ROWS, 64), dtype=np.float32),
        "noise in [0, 16]": rng.uniform(0, 16, (oq.CALIBRATION_ROWS, 64)).astype(np.float32),
    }
    figures = {}
    for name, rows in calibrations.items():
        path = oq.quantize_static_int8(preprocessed, rows, tmp_path / "static.onnx")
        figures[name] = oq.fidelity(oq.load_session(path), x_test, y_test, *reference)
    accuracy, agreement, difference, _ = figures["training rows"]
    oq.check_int8("training rows", accuracy, float_accuracy, agreement)  # what the lesson does
    noise_accuracy, noise_agreement, noise_difference, _ = figures["noise in [0, 1)"]
    assert noise_accuracy < 0.9 and noise_agreement < 0.9 and noise_difference > 3 * difference
    with pytest.raises(AssertionError, match=r"^noise in \[0, 1\): accuracy 0\.\d+, agreement"):
        oq.check_int8("noise in [0, 1)", noise_accuracy, float_accuracy, noise_agreement)
    # Noise over the real range is far less harmful here; only real rows are right by design.
    assert figures["noise in [0, 16]"][1] > noise_agreement
    # Fix: calibrate on a few hundred representative rows, as the lesson does (above).


# 7. A FunctionTransformer that calls Python: skl2onnx refuses the pipeline -----------------------


def test_7_skl2onnx_converts_a_function_transformer_only_without_a_function(
    digits: Split, monkeypatch: pytest.MonkeyPatch
) -> None:
    from skl2onnx import to_onnx
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    monkeypatch.setattr(oq, "MAX_ITERATIONS", 5)  # the weights do not matter here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        classifier = oq.train_classifier(digits[0], digits[2], seed=0, hidden=(8,))
    x = digits[1][:2]
    message = (
        "FunctionTransformer is not supported unless the transform function is None (= identity)."
    )
    with pytest.raises(RuntimeError, match=re.escape(message)):
        to_onnx(classifier, x, target_opset=oq.TARGET_OPSET)  # the lesson's pipeline, whole
    # skl2onnx has a converter for it: func=None, the identity, becomes an Identity node.
    identity = make_pipeline(FunctionTransformer(), classifier.steps[-1][1])
    model = to_onnx(identity, x, target_opset=oq.TARGET_OPSET, options={"zipmap": False})
    assert "Identity" in [node.op_type for node in model.graph.node]
    # Fix, the lesson's: convert the MLP alone and put the scaling in front as a Mul node.
    assert oq.convert(classifier).graph.node[0].op_type == "Mul"
