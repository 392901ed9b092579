"""In-process tests of sklearn_converter.py: every offered classifier, converted and verified."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto

import sklearn_converter as sc

ROOT = Path(__file__).resolve().parent.parent

# Python run first in a fresh process: the training-side libraries cannot be imported there.
BLOCK_TRAINING_LIBRARIES = textwrap.dedent(
    """
    import importlib.abc, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"sklearn", "skl2onnx", "onnx", "joblib"}:
                raise ImportError(f"{name} is blocked in this test")

    sys.meta_path.insert(0, Block())
    """
)


@pytest.fixture(scope="module")
def iris():
    return sc.load_iris_split(seed=0)


@pytest.fixture(scope="module")
def converted(iris, tmp_path_factory):
    """Train (small), convert and save every offered model once for the tests below."""
    x_train, _, y_train, _ = iris
    folder = tmp_path_factory.mktemp("models")
    results = {}
    for name in sc.MODELS:
        classifier = sc.make_classifier(name, seed=0, small=True).fit(x_train, y_train)
        model = sc.convert(classifier, x_train.shape[1])
        path = folder / f"sklearn_{name}.onnx"
        sc.save_model(model, path)
        results[name] = (classifier, model, path)
    return results


def test_split_is_stratified_float32(iris):
    x_train, x_test, _, y_test = iris
    assert x_train.dtype == np.float32 and x_test.dtype == np.float32
    assert len(x_test) == 45 and len(x_train) == 105
    assert np.bincount(y_test).tolist() == [15, 15, 15]


@pytest.mark.parametrize("name", sc.MODELS)
def test_every_model_converts_and_agrees_with_scikit_learn(name, iris, converted):
    _, x_test, _, y_test = iris
    classifier, model, path = converted[name]
    onnx.checker.check_model(model, full_check=True)
    labels, probabilities = sc.predict_from_file(path, x_test)
    np.testing.assert_array_equal(labels, classifier.predict(x_test))
    np.testing.assert_allclose(
        probabilities, classifier.predict_proba(x_test), rtol=sc.RTOL, atol=sc.ATOL
    )
    assert sc.verify(name, classifier, x_test, labels, probabilities) <= sc.ATOL
    assert np.mean(labels == y_test) > 0.9


@pytest.mark.parametrize("name", sc.MODELS)
def test_saved_file_has_float32_dynamic_input_and_plain_tensor_outputs(name, converted):
    model = onnx.load(converted[name][2])
    (x_info,) = model.graph.input
    assert x_info.name == "X"
    assert x_info.type.tensor_type.elem_type == TensorProto.FLOAT
    batch, features = x_info.type.tensor_type.shape.dim
    assert not batch.HasField("dim_value")  # dynamic: any number of rows
    assert features.dim_value == 4

    outputs = {o.name: o.type for o in model.graph.output}
    assert set(outputs) == {"label", "probabilities"}
    assert outputs["label"].WhichOneof("value") == "tensor_type"
    assert outputs["label"].tensor_type.elem_type == TensorProto.INT64
    # ZipMap is off: a float matrix [N, 3], not a sequence of maps.
    assert outputs["probabilities"].WhichOneof("value") == "tensor_type"
    assert outputs["probabilities"].tensor_type.elem_type == TensorProto.FLOAT
    assert [d.dim_value for d in outputs["probabilities"].tensor_type.shape.dim][1] == 3

    assert model.ir_version == sc.IR_VERSION
    domains = [opset.domain for opset in model.opset_import]
    assert len(domains) == len(set(domains)) and "" in domains
    for opset in model.opset_import:
        assert opset.version <= sc.TARGET_OPSET[opset.domain if opset.domain else ""]


def test_predict_from_file_needs_only_onnxruntime_and_numpy(iris, converted):
    _, x_test, _, _ = iris
    classifier, _, path = converted[sc.DEFAULT_MODEL]
    np.save(path.with_suffix(".npy"), x_test[:5])
    # A fresh process where scikit-learn, skl2onnx, onnx, joblib and pickle loads are unavailable.
    script = BLOCK_TRAINING_LIBRARIES + textwrap.dedent(
        f"""
        import pickle

        def no_pickle(*args, **kwargs):
            raise RuntimeError("pickle loads are blocked in this test")

        pickle.load = pickle.loads = no_pickle

        import numpy as np
        import sklearn_converter as sc

        labels, probabilities = sc.predict_from_file(
            sc.Path({str(path)!r}), np.load({str(path.with_suffix(".npy"))!r})
        )
        print(labels.tolist(), probabilities.shape)
        assert not any(m.split(".")[0] in ("sklearn", "skl2onnx", "onnx") for m in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{classifier.predict(x_test[:5]).tolist()} (5, 3)"


def test_the_blocking_in_that_test_really_blocks(tmp_path):
    # The same guard, applied to the training side, must fail: it proves the guard works.
    script = BLOCK_TRAINING_LIBRARIES + textwrap.dedent(
        """
        import sklearn_converter as sc
        sc.load_iris_split(0)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode != 0 and "sklearn is blocked" in result.stderr


def test_same_seed_writes_byte_identical_files(tmp_path, capsys):
    for folder, seed in (("first", "0"), ("second", "0"), ("other", "1")):
        args = [
            "--model",
            "gradient_boosting",
            "--seed",
            seed,
            "--output-dir",
            str(tmp_path / folder),
        ]
        assert sc.main(args) == 0
    name = "sklearn_gradient_boosting.onnx"
    first = (tmp_path / "first" / name).read_bytes()
    assert first == (tmp_path / "second" / name).read_bytes()
    assert first != (tmp_path / "other" / name).read_bytes()


def test_model_all_prints_a_summary_row_per_model(tmp_path, capsys):
    assert sc.main(["--model", "all", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    summary = out.split("Summary (test split)")[1].split("\n\n")[0].splitlines()[2:]
    assert [line.split()[0] for line in summary] == list(sc.MODELS)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        f"sklearn_{name}.onnx" for name in sc.MODELS
    )


def test_benchmark_prints_measured_speed_ups(tmp_path, capsys):
    assert sc.main(["--model", "decision_tree", "--benchmark", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("decision_tree ")]
    assert [row[1] for row in rows] == [str(b) for b in sc.BENCHMARK_BATCHES]
    for row in rows:
        sklearn_us, onnx_us, speed_up = float(row[2]), float(row[4]), float(row[6].rstrip("x"))
        assert sklearn_us > 0 and onnx_us > 0
        assert speed_up == pytest.approx(sklearn_us / onnx_us, rel=0.05, abs=0.06)
    assert "logistic regression predict_proba" in out


@pytest.mark.parametrize("value", ["xgboost", "all_models", "", "Random_Forest"])
def test_unknown_model_is_a_usage_error_listing_valid_names(value, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        sc.main(["--model", value, "--output-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("sklearn_converter.py: error: argument --model: unknown model")
    assert err.count("\n") == 1
    for name in (*sc.MODELS, "all"):
        assert name in err
    assert not list(tmp_path.iterdir())


def test_verification_failure_names_the_model_and_exits_1(tmp_path, capsys, monkeypatch):
    real_verify = sc.verify

    def shifted(name, classifier, x_test, labels, probabilities):
        return real_verify(name, classifier, x_test, labels, probabilities + 0.01)

    monkeypatch.setattr(sc, "verify", shifted)
    assert sc.main(["--model", "naive_bayes", "--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: verification failed: naive_bayes: probabilities differ")
    assert "0.01" in err and err.count("\n") == 1


def test_label_mismatch_is_caught(iris, converted):
    _, x_test, _, _ = iris
    classifier, _, path = converted["decision_tree"]
    labels, probabilities = sc.predict_from_file(path, x_test)
    labels[0] = (labels[0] + 1) % 3
    with pytest.raises(AssertionError, match="decision_tree: 1 of 45 labels differ"):
        sc.verify("decision_tree", classifier, x_test, labels, probabilities)
