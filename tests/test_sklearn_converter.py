"""Tests of sklearn_converter.py: every offered classifier, converted and verified, and the manners.

In-process tests call the step functions with small settings; subprocess tests check what only a
process shows (hash seeds, output encodings, Ctrl-C, a closed pipe, blocked imports).
"""

import builtins
import errno
import io
import os
import platform
import re
import stat
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import IO, Any, Self

import numpy as np
import onnx
import pytest
from onnx import TensorProto

import sklearn_converter as sc

ROOT = Path(__file__).resolve().parent.parent
# What the converted fixture holds per family: the fitted classifier, its model and its file.
Converted = dict[str, tuple[Any, onnx.ModelProto, Path]]
SCRIPT = ROOT / "sklearn_converter.py"
POSIX_ONLY = pytest.mark.skipif(
    sys.platform == "win32", reason="needs POSIX signals and pipes (SIGINT, EPIPE)"
)
# Seeds for the sweep over every family: the ends of the range and a few in between.
SWEEP_SEEDS = (0, 1, 2, 3, sc.SEED_MAX)
# Seeds where ONNX Runtime and scikit-learn picked different k-th neighbours (issue #8, item 1).
KNN_TIE_SEEDS = (6, 8, 19, 76)

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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the small MLP stops before it converges
        for name in sc.MODELS:
            classifier = sc.train(sc.make_classifier(name, seed=0, small=True), x_train, y_train)
            model = sc.convert(classifier, x_train.shape[1])
            path = folder / f"sklearn_{name}.onnx"
            sc.save_model(model, path)
            results[name] = (classifier, model, path)
    return results


@pytest.fixture(scope="module")
def all_models_in_fresh_processes(tmp_path_factory):
    """Run --model all in three processes at once, each with its own hash seed and encoding."""
    folder = tmp_path_factory.mktemp("hash_seeds")
    # PYTHONHASHSEED changes the order of sets and str-keyed hashing; with skl2onnx 1.20.0, seeds
    # 0 and 1 listed the opset imports of sklearn_knn.onnx in different orders.
    settings = {"0": "ascii", "1": "cp932", "2": "utf-8"}
    processes = {}
    for hash_seed, encoding in settings.items():
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONIOENCODING": encoding}
        processes[hash_seed] = subprocess.Popen(
            [sys.executable, str(SCRIPT), "--model", "all", "--output-dir", hash_seed],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    results = {}
    for hash_seed, process in processes.items():
        out, err = process.communicate(timeout=120)
        results[hash_seed] = (process.returncode, out, err, folder / hash_seed)
    return settings, results


# --- The steps, in process ----------------------------------------------------------------------


def test_split_is_stratified_float32(iris):
    x_train, x_test, _, y_test = iris
    assert x_train.dtype == np.float32 and x_test.dtype == np.float32
    assert len(x_test) == 45 and len(x_train) == 105
    assert np.bincount(y_test).tolist() == [15, 15, 15]


@pytest.mark.parametrize("name", sc.MODELS)
def test_every_model_converts_and_agrees_with_scikit_learn(name, iris, converted):
    _, x_test, y_train, y_test = iris
    classifier, model, path = converted[name]
    onnx.checker.check_model(model, full_check=True)
    session = sc.load_session(path)
    labels, probabilities = sc.predict(session, x_test)
    tied = sc.tied_rows(classifier, x_test, y_train)
    np.testing.assert_array_equal(labels[~tied], classifier.predict(x_test)[~tied])
    np.testing.assert_allclose(
        probabilities[~tied], classifier.predict_proba(x_test)[~tied], rtol=sc.RTOL, atol=sc.ATOL
    )
    assert sc.verify(name, classifier, x_test, labels, probabilities, tied) <= sc.ATOL
    assert np.mean(labels == y_test) > 0.8
    # One session serves any batch size: the same row alone gives the same answer.
    one_label, one_row = sc.predict(session, x_test[:1])
    assert one_label.tolist() == labels[:1].tolist()
    np.testing.assert_allclose(one_row, probabilities[:1], rtol=1e-6, atol=1e-7)


def converted_again(name: str, converted: Converted, folder: Path) -> onnx.ModelProto:
    """Convert and save the fixture's trained classifier inside the calling test; load the file.

    mutmut credits a function only to the tests during which it runs, and what a module-scoped
    fixture calls runs during the first test that uses it (docs/mutation_testing.md): tests about
    the converted file therefore convert and save it themselves (a few milliseconds per family).
    """
    path = folder / f"sklearn_{name}.onnx"
    sc.save_model(sc.convert(converted[name][0], 4), path)
    return onnx.load(path)


@pytest.mark.parametrize("name", sc.MODELS)
def test_every_family_file_has_a_float32_dynamic_input_and_plain_tensor_outputs(
    name, converted, tmp_path
):
    model = converted_again(name, converted, tmp_path)
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
    # One entry per domain, in a fixed order (sorted), whatever the hash seed.
    assert domains == sorted(set(domains)) and "" in domains
    for opset in model.opset_import:
        assert opset.version <= sc.TARGET_OPSET[opset.domain if opset.domain else ""]


def stated_in_concepts(pattern: str) -> tuple[int, ...]:
    """Return the numbers docs/concepts.md states where pattern matches (prose may wrap)."""
    text = " ".join((ROOT / "docs" / "concepts.md").read_text(encoding="utf-8").split())
    match = re.search(pattern, text)
    if match is None:
        pytest.fail(f"docs/concepts.md no longer matches {pattern!r}: update this test with it")
    return tuple(int(group) for group in match.groups())


def test_every_family_converted_declares_the_versions_docs_concepts_states(
    converted: Converted, tmp_path: Path
) -> None:
    # The page's figures, not the script's constants (tests/test_versions_stated_in_docs.py reads
    # the same sentences and checks one file written by main, whatever IR skl2onnx would pick).
    opset, ir_version = stated_in_concepts(
        r"\*\*opset (\d+)\*\* of the default domain and \*\*IR version (\d+)"
    )
    (iris_ml,) = stated_in_concepts(r"Iris models declare `ai\.onnx\.ml` (\d+)")
    for name in sc.MODELS:
        model = converted_again(name, converted, tmp_path)
        declared = {o.domain: o.version for o in model.opset_import}
        expected = {"": opset, "ai.onnx.ml": iris_ml}
        assert (declared, model.ir_version) == (expected, ir_version), (
            f"sklearn_{name}.onnx declares {declared}, IR version {model.ir_version}; "
            f"docs/concepts.md states {expected}, IR version {ir_version}"
        )


def test_summary_describes_a_zipmap_output_by_its_kind(iris):
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    x_train, _, y_train, _ = iris
    classifier = sc.make_classifier("naive_bayes", seed=0).fit(x_train, y_train)
    model = to_onnx(classifier, initial_types=[("X", FloatTensorType([None, 4]))])
    lines = sc.summarize(model)
    assert lines[0] == "inputs:  X: float[None, 4]"
    assert lines[1] == "outputs: output_label: int64[None], output_probability: sequence_type"


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", sc.MODELS)
def test_every_family_verifies_over_a_range_of_seeds(name, tmp_path, capsys):
    for seed in SWEEP_SEEDS:
        data = sc.load_iris_split(seed)
        result = sc.run_model(name, data, tmp_path, seed, small=True)
        assert result["difference"] <= sc.ATOL
        if name != "knn":
            assert result["tied"] == 0
    out = capsys.readouterr().out
    assert out.count("6. Verified") == len(SWEEP_SEEDS)
    assert [p.name for p in tmp_path.iterdir()] == [f"sklearn_{name}.onnx"]


@pytest.mark.parametrize("seed", KNN_TIE_SEEDS)
def test_knn_tied_rows_are_left_out_counted_and_explained(seed, tmp_path, capsys):
    data = sc.load_iris_split(seed)
    result = sc.run_model("knn", data, tmp_path, seed)
    out = capsys.readouterr().out
    assert result["tied"] >= 1
    rows = len(data[1])
    assert f"6. Verified on the {rows - result['tied']} rows that are not tied" in out
    assert (
        f"   {result['tied']} of {rows} rows left out: training rows of different classes tie "
        "for 5th nearest (equally far within float32 rounding)" in out
    )


def test_knn_over_81_seeds_every_disagreement_is_on_a_tied_row():
    # The facts in docs/sklearn_converter.md: over seeds 0 to 80, ONNX Runtime and scikit-learn
    # disagree on one row for 4 seeds, and each of those rows is among the 41 left out as tied.
    disagreeing_seeds, tied_total = [], 0
    for seed in range(81):
        x_train, x_test, y_train, _ = sc.load_iris_split(seed)
        classifier = sc.make_classifier("knn", seed).fit(x_train, y_train)
        model = sc.convert(classifier, x_train.shape[1]).SerializeToString()
        session = sc.ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        labels, probabilities = sc.predict(session, x_test)
        tied = sc.tied_rows(classifier, x_test, y_train)
        tied_total += int(tied.sum())
        expected = classifier.predict_proba(x_test)
        differs = (labels != classifier.predict(x_test)) | np.any(
            np.abs(probabilities - expected) > sc.ATOL, axis=1
        )
        if differs.any():
            disagreeing_seeds.append(seed)
        assert not (differs & ~tied).any(), f"seed {seed}: a row that is not tied differs"
        sc.verify("knn", classifier, x_test, labels, probabilities, tied)
    assert disagreeing_seeds == list(KNN_TIE_SEEDS)
    assert tied_total == 41


def test_knn_disagreement_on_a_row_that_is_not_tied_still_fails(tmp_path):
    x_train, x_test, y_train, _ = sc.load_iris_split(6)
    classifier = sc.make_classifier("knn", 6).fit(x_train, y_train)
    path = tmp_path / "knn.onnx"
    sc.save_model(sc.convert(classifier, 4), path)
    labels, probabilities = sc.predict(sc.load_session(path), x_test)
    tied = sc.tied_rows(classifier, x_test, y_train)
    assert tied.sum() == 2
    sc.verify("knn", classifier, x_test, labels, probabilities, tied)  # passes as it is
    row = int(np.flatnonzero(~tied)[0])
    labels[row] = (labels[row] + 1) % 3
    message = "knn: 1 of 43 labels differ from predict \\(2 tied rows left out\\)"
    with pytest.raises(AssertionError, match=message):
        sc.verify("knn", classifier, x_test, labels, probabilities, tied)
    labels[row] = (labels[row] - 1) % 3
    probabilities[row] += 0.01
    with pytest.raises(AssertionError, match="knn: probabilities differ from predict_proba"):
        sc.verify("knn", classifier, x_test, labels, probabilities, tied)


def test_tied_rows_is_empty_for_other_families(iris, converted):
    _, x_test, y_train, _ = iris
    for name in sc.MODELS:
        if name != "knn":
            assert not sc.tied_rows(converted[name][0], x_test, y_train).any()


def test_label_mismatch_is_caught(iris, converted):
    _, x_test, _, _ = iris
    classifier, _, path = converted["decision_tree"]
    labels, probabilities = sc.predict(sc.load_session(path), x_test)
    labels[0] = (labels[0] + 1) % 3
    with pytest.raises(AssertionError, match=r"decision_tree: 1 of 45 labels differ from predict$"):
        sc.verify("decision_tree", classifier, x_test, labels, probabilities, np.zeros(45, bool))


# --- The deployment side ------------------------------------------------------------------------


def test_deployment_side_needs_only_onnxruntime_and_numpy(iris, converted):
    _, x_test, _, _ = iris
    classifier, _, path = converted[sc.DEFAULT_MODEL]
    np.save(path.with_suffix(".npy"), x_test[:5])
    # A fresh process where scikit-learn, skl2onnx, onnx, joblib and pickle loads are unavailable:
    # one session, created once, then a call per request.
    script = BLOCK_TRAINING_LIBRARIES + textwrap.dedent(
        f"""
        import pickle

        def no_pickle(*args, **kwargs):
            raise RuntimeError("pickle loads are blocked in this test")

        pickle.load = pickle.loads = no_pickle

        import numpy as np
        import sklearn_converter as sc

        session = sc.load_session(sc.Path({str(path)!r}))
        rows = np.load({str(path.with_suffix(".npy"))!r})
        labels, probabilities = sc.predict(session, rows)
        first_label, _ = sc.predict(session, rows[:1])
        print(labels.tolist(), probabilities.shape, first_label.tolist())
        assert not any(m.split(".")[0] in ("sklearn", "skl2onnx", "onnx") for m in sys.modules)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    expected = classifier.predict(x_test[:5]).tolist()
    assert result.stdout.strip() == f"{expected} (5, 3) {expected[:1]}"


def test_predict_takes_float64_rows_as_numpy_makes_them(
    iris: sc.Split, converted: Converted
) -> None:
    # NumPy's default dtype is float64 (np.array([[5.1, 3.5, 1.4, 0.2]])); the model's input is
    # float32. The deployment function is what a user calls: it must accept both, with one answer.
    _, x_test, _, _ = iris
    session = sc.load_session(converted[sc.DEFAULT_MODEL][2])
    rows = x_test.astype(np.float64)
    try:
        labels, probabilities = sc.predict(session, rows)
    except Exception as error:  # onnxruntime's InvalidArgument when the cast is missing
        pytest.fail(f"predict refused float64 rows, NumPy's default dtype: {error}")
    expected_labels, expected_probabilities = sc.predict(session, x_test)
    np.testing.assert_array_equal(labels, expected_labels, "labels of float64 rows differ")
    np.testing.assert_array_equal(
        probabilities, expected_probabilities, "probabilities of float64 rows differ"
    )
    one_label, _ = sc.predict(session, np.array([x_test[0].tolist()]))  # a row typed by hand
    assert one_label.tolist() == expected_labels[:1].tolist(), "a hand-typed row is misread"


class FullDiskFile:
    """A file whose first write stores half the bytes and then fails, as on a full disk."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def write(self, data: bytes) -> int:
        view = memoryview(data).cast("B")
        self._stream.write(view[: len(view) // 2])
        self._stream.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stream.close()


def test_a_save_that_fails_halfway_leaves_the_previous_model_whole(
    converted: Converted, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server may load sklearn_<name>.onnx at any moment: a save that dies halfway (a full disk,
    # Ctrl-C, a crash) must leave the previous model there, complete, and no stray file beside it.
    path = tmp_path / "sklearn_model.onnx"
    previous = converted["decision_tree"][2].read_bytes()
    path.write_bytes(previous)
    real_open = io.open

    def open_on_a_full_disk(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        stream = real_open(file, mode, *args, **kwargs)
        return FullDiskFile(stream) if any(flag in mode for flag in "wax+") else stream

    # Every way Python opens a file for writing goes through one of these two names: open(),
    # Path.write_bytes / Path.open (io.open), os.fdopen (io.open), onnx.save (open).
    monkeypatch.setattr(io, "open", open_on_a_full_disk)
    monkeypatch.setattr(builtins, "open", open_on_a_full_disk)
    with pytest.raises(OSError, match="No space left on device"):
        sc.save_model(converted["random_forest"][1], path)
    monkeypatch.undo()

    assert path.read_bytes() == previous, (
        f"a save that failed halfway left {path.name} with {path.stat().st_size} bytes instead "
        f"of the previous model's {len(previous)}"
    )
    assert [p.name for p in tmp_path.iterdir()] == [path.name], "the failed save left a file"
    sc.load_session(path)  # the previous model still serves
    # And a save that succeeds replaces it whole.
    sc.save_model(converted["random_forest"][1], path)
    assert path.read_bytes() == converted["random_forest"][2].read_bytes()


def test_the_blocking_in_that_test_really_blocks():
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


def test_default_run_shows_session_creation_next_to_per_call_cost(tmp_path, capsys):
    assert sc.main(["--model", "decision_tree", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    (line,) = [line for line in out.splitlines() if line.startswith("   rough timings: ")]
    match = re.search(
        r"creating the session ([\d.]+) ms \(once per process\), the first run\(\) on 45 rows "
        r"(\d+) µs, run\(\) on 1 row ([\d.]+) µs \(median of 20 calls\)$",
        line,
    )
    assert match is not None, line
    assert all(float(value) > 0 for value in match.groups())


# --- Byte-identical files -----------------------------------------------------------------------


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


def test_every_family_is_byte_identical_across_hash_seeds(all_models_in_fresh_processes):
    _, results = all_models_in_fresh_processes
    contents = {}
    for hash_seed, (returncode, _, err, folder) in results.items():
        assert returncode == 0, err.decode(errors="replace")
        contents[hash_seed] = {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
    assert sorted(contents["0"]) == sorted(f"sklearn_{name}.onnx" for name in sc.MODELS)
    for name in contents["0"]:
        assert contents["0"][name] == contents["1"][name] == contents["2"][name], name


def test_model_all_prints_a_summary_row_per_model(all_models_in_fresh_processes):
    _, results = all_models_in_fresh_processes
    out = results["2"][1].decode("utf-8")
    summary = out.split("Summary (test split)")[1].split("\n\n")[0].splitlines()[2:]
    assert [line.split()[0] for line in summary] == list(sc.MODELS)


def test_no_output_encoding_makes_the_script_fail(all_models_in_fresh_processes):
    settings, results = all_models_in_fresh_processes
    for hash_seed, encoding in settings.items():
        returncode, out, err, _ = results[hash_seed]
        assert returncode == 0 and err == b"", (encoding, err)
        text = out.decode(encoding)
        # µ exists in neither ascii nor cp932: it becomes an escape instead of an error.
        assert ("µs" in text) if encoding == "utf-8" else ("\\xb5s" in text), encoding


# --- The benchmark ------------------------------------------------------------------------------


def test_benchmark_prints_measured_speed_ups_and_session_cost(tmp_path, capsys):
    assert sc.main(["--model", "decision_tree", "--benchmark", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith("decision_tree ")]
    table, sessions = rows[: len(sc.BENCHMARK_BATCHES)], rows[len(sc.BENCHMARK_BATCHES) :]
    assert [row[1] for row in table] == [str(b) for b in sc.BENCHMARK_BATCHES]
    for row in table:
        sklearn_us, onnx_us, speed_up = float(row[2]), float(row[4]), float(row[6].rstrip("x"))
        assert sklearn_us > 0 and onnx_us > 0
        assert speed_up == pytest.approx(sklearn_us / onnx_us, rel=0.05, abs=0.06)
    (session,) = sessions
    create_ms, one_call_us, worth = float(session[1]), float(session[3]), float(session[5])
    assert one_call_us == float(table[0][4])  # the one-row call from the table above
    assert worth == pytest.approx(create_ms * 1e3 / one_call_us, rel=0.05, abs=1)
    assert "logistic regression predict_proba" in out


def test_interleaved_medians_times_the_calls_in_turns():
    order = []
    medians = sc.interleaved_medians(
        [lambda: order.append("a"), lambda: order.append("b")], repeats=4, warmup=1, rounds=2
    )
    # One warm-up call each, then two turns of two calls each: noise falls on both alike.
    assert order == ["a", "b"] + ["a", "a", "b", "b"] * 2
    assert len(medians) == 2 and min(medians) >= 0


# --- The command line ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["xgboost", "all_models", "", "Random_Forest"])
def test_unknown_model_is_a_usage_error_listing_valid_names(value, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        sc.main(["--model", value, "--output-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        f"sklearn_converter.py: error: argument --model: unknown model {value!r}; choose one of: "
        "logistic_regression, decision_tree, random_forest, gradient_boosting, svc, knn, "
        "naive_bayes, mlp, all (see --help)\n"
    )
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("-1", "must be from 0 to 2**32 - 1 (4294967295), got -1"),
        ("4294967296", "must be from 0 to 2**32 - 1 (4294967295), got 4294967296"),
        ("1e3", "expected a whole number, got '1e3'"),
        ("seven", "expected a whole number, got 'seven'"),
    ],
)
def test_seed_outside_0_to_2_32_minus_1_is_a_usage_error(value, reason, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        sc.main(["--seed", value, "--output-dir", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    # The one line says what is wrong and what would be right.
    assert capsys.readouterr().err == (
        f"sklearn_converter.py: error: argument --seed: {reason} (see --help)\n"
    )
    assert not (tmp_path / "out").exists()


def test_seed_range_ends_are_accepted_and_stated_in_help(tmp_path, capsys):
    for seed in ("0", str(2**32 - 1)):
        args = ["--model", "decision_tree", "--seed", seed, "--output-dir", str(tmp_path)]
        assert sc.main(args) == 0
    with pytest.raises(SystemExit):
        sc.main(["--help"])
    assert "random seed, 0 to 2**32 - 1 (default: 0)" in capsys.readouterr().out


def test_output_dir_that_is_a_file_fails_before_any_work(tmp_path, capsys):
    not_a_folder = tmp_path / "models"
    not_a_folder.write_text("a file where the output folder should be")
    assert sc.main(["--output-dir", str(not_a_folder)]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing trained, nothing printed
    assert captured.err == f"error: the output folder is not a folder: {not_a_folder}\n"


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_output_dir_in_proc_names_the_folder_and_the_reason(capsys):
    assert sc.main(["--output-dir", "/proc"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: the output folder is not writable (")
    assert captured.err.endswith("): /proc\n") and captured.err.count("\n") == 1


# --- Verification failures exit 1 with one line ------------------------------------------------


def test_probability_disagreement_names_the_model_and_exits_1(tmp_path, capsys, monkeypatch):
    real_predict = sc.predict

    def shifted(session, x):
        labels, probabilities = real_predict(session, x)
        return labels, probabilities + 0.01

    monkeypatch.setattr(sc, "predict", shifted)
    assert sc.main(["--model", "naive_bayes", "--output-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith(
        "error: verification failed: naive_bayes: probabilities differ from predict_proba by up to"
    )
    assert "0.01" in captured.err and captured.err.count("\n") == 1
    assert "Verified" not in captured.out


def test_wrong_reference_labels_are_reported_as_labels(tmp_path, capsys, monkeypatch):
    from sklearn.tree import DecisionTreeClassifier

    real_predict = DecisionTreeClassifier.predict
    monkeypatch.setattr(
        DecisionTreeClassifier, "predict", lambda self, x: (real_predict(self, x) + 1) % 3
    )
    assert sc.main(["--model", "decision_tree", "--output-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        "error: verification failed: decision_tree: 45 of 45 labels differ from predict\n"
    )


def test_a_row_that_changes_class_is_reported_as_a_label_disagreement(
    tmp_path, capsys, monkeypatch
):
    real_predict = sc.predict

    def one_row_swapped(session, x):
        labels, probabilities = real_predict(session, x)
        # The first row's probabilities rolled by one class, and its label with them: both the
        # label and the probabilities disagree, and the label is the finding.
        probabilities[0] = np.roll(probabilities[0], 1)
        labels[0] = (labels[0] + 1) % 3
        return labels, probabilities

    monkeypatch.setattr(sc, "predict", one_row_swapped)
    assert sc.main(["--model", "logistic_regression", "--output-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        "error: verification failed: logistic_regression: 1 of 45 labels differ from predict\n"
    )


def test_reference_off_by_a_thousandth_fails_while_float32_rounding_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Float32 against float64 moves a probability by up to 7e-7 (docs/sklearn_converter.md's
    # summary); a model that is off by 1e-3 is wrong. The tolerance must tell the two apart.
    from sklearn.naive_bayes import GaussianNB

    real_predict_proba = GaussianNB.predict_proba
    args = ["--model", "naive_bayes", "--output-dir", str(tmp_path)]
    for shift, status in ((1e-6, 0), (1e-3, 1)):
        monkeypatch.setattr(
            GaussianNB, "predict_proba", lambda self, x, s=shift: real_predict_proba(self, x) + s
        )
        seen = sc.main(args)
        assert seen == status, f"verification of a reference off by {shift:g} exited {seen}"
    captured = capsys.readouterr()
    assert captured.err.startswith(
        "error: verification failed: naive_bayes: probabilities differ from predict_proba by up to "
        "0.001 "
    ), captured.err
    assert captured.err.count("\n") == 1
    assert captured.out.count("\nVerified 1 model(s)") == 1  # the 1e-6 run only


# --- Ctrl-C -------------------------------------------------------------------------------------


def test_make_classifier_names_an_unknown_family() -> None:
    # The command line refuses unknown names first; a reader calling the step directly (a typo in
    # an edited MODELS) gets the name back, not a bare ValueError.
    with pytest.raises(ValueError, match=r"^unknown model 'random-forest'$"):
        sc.make_classifier("random-forest", 0)


def test_train_turns_mlp_interrupted_warning_into_keyboard_interrupt(iris):
    x_train, _, y_train, _ = iris

    class WarnsLikeAnInterruptedMLP:
        def fit(self, x, y):
            warnings.warn("Training interrupted by user.", stacklevel=1)
            return self

    class WarnsSomethingElse:
        def fit(self, x, y):
            warnings.warn("an ordinary warning", stacklevel=1)
            return self

    with pytest.raises(KeyboardInterrupt):
        sc.train(WarnsLikeAnInterruptedMLP(), x_train, y_train)
    with pytest.warns(UserWarning, match="an ordinary warning"):
        assert isinstance(sc.train(WarnsSomethingElse(), x_train, y_train), WarnsSomethingElse)


def test_ctrl_c_during_mlp_training_exits_130_and_writes_nothing(tmp_path, capsys, monkeypatch):
    from sklearn.neural_network import MLPClassifier

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # what Ctrl-C raises inside the training loop

    # scikit-learn catches this inside fit and warns "Training interrupted by user."
    monkeypatch.setattr(MLPClassifier, "_backprop", interrupted)
    assert sc.main(["--model", "mlp", "--output-dir", str(tmp_path)]) == 130
    captured = capsys.readouterr()
    assert captured.err == "error: interrupted\n"
    assert "Verified" not in captured.out and "Saved" not in captured.out
    assert list(tmp_path.iterdir()) == []


def test_ctrl_c_while_saving_leaves_no_temporary_file(tmp_path, capsys, monkeypatch):
    def interrupted(source, destination):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    assert sc.main(["--model", "decision_tree", "--output-dir", str(tmp_path)]) == 130
    captured = capsys.readouterr()
    assert captured.err == "error: interrupted\n" and "Verified" not in captured.out
    assert list(tmp_path.iterdir()) == []


@POSIX_ONLY
def test_sigint_during_mlp_training_in_a_real_process(tmp_path):
    # A real SIGINT, sent by the process to itself at the first training step of the MLP, so the
    # moment is certain: the script runs as `python sklearn_converter.py` would run it.
    script = textwrap.dedent(
        f"""
        import os, runpy, signal, sys
        from sklearn.neural_network import MLPClassifier

        real_backprop = MLPClassifier._backprop

        def ctrl_c_now(self, *args, **kwargs):
            os.kill(os.getpid(), signal.SIGINT)
            return real_backprop(self, *args, **kwargs)

        MLPClassifier._backprop = ctrl_c_now
        sys.argv = ["sklearn_converter.py", "--model", "mlp", "--output-dir", "out"]
        runpy.run_path({str(SCRIPT)!r}, run_name="__main__")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 130
    assert result.stderr == "error: interrupted\n"
    assert "Verified" not in result.stdout
    assert list((tmp_path / "out").iterdir()) == []


# --- What the docs show, in process (mutation testing, docs/mutation_testing.md) ----------------

LINUX_X86_64 = pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() != "x86_64",
    reason="the samples were made on Linux x86_64; other platforms may round differently",
)


def docs_sample(command: str) -> str:
    """Return the output sample docs/sklearn_converter.md shows for a command."""
    text = (ROOT / "docs" / "sklearn_converter.md").read_text(encoding="utf-8")
    match = re.search(rf"<!-- sample: {re.escape(command)} -->\n```text\n(.*?)```", text, re.S)
    assert match is not None, f"docs/sklearn_converter.md has no sample of `{command}`"
    return match[1]


def steady(report: str) -> str:
    """Blank out what the docs allow to differ between runs: the timings, Python's version."""
    report = re.sub(r"(?m)^   rough timings: .*$", "   rough timings: ...", report)
    # And the k-NN file's size: skl2onnx numbers names inside that graph with a counter that lives
    # as long as the process, so after earlier k-NN conversions in this test process the names,
    # and the file, are a few bytes longer than in the fresh process that made the samples.
    report = re.sub(r"sklearn_knn\.onnx \(\d+ bytes\)", "sklearn_knn.onnx (... bytes)", report)
    report = re.sub(r"(?m)^(   knn +\d+) +\d+ ", r"\1 ... ", report)
    return re.sub(r"Python \S+,", "Python ...,", report)


@LINUX_X86_64
def test_default_run_prints_the_report_the_docs_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No flags at all: the default model, seed and output folder, as the page's first sample.
    monkeypatch.chdir(tmp_path)
    assert sc.main([]) == 0
    shown = docs_sample("python sklearn_converter.py")
    assert steady(capsys.readouterr().out) == steady(shown)
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["sklearn_random_forest.onnx"]


@LINUX_X86_64
def test_every_family_prints_the_report_and_summary_the_docs_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # In process, unlike tests/test_docs.py, so that mutmut sees it: each family's size, node
    # count, accuracies and largest difference (the summary), and the default run's narration
    # (the random forest's part of this run: same seed, same model), are what the page shows.
    monkeypatch.chdir(tmp_path)
    assert sc.main(["--model", "all"]) == 0
    out = steady(capsys.readouterr().out)
    default = steady(docs_sample("python sklearn_converter.py"))
    header, forest = default.split("\n\n== random_forest\n")
    assert out.startswith(header + "\n")
    assert "\n== random_forest\n" + forest.split("\n\n")[0] + "\n\n" in out
    summary = steady(
        docs_sample("python sklearn_converter.py --model all --benchmark | from: Summary")
    )
    assert "\n" + summary.split("\n\n")[0] + "\n\n" in out
    assert out.endswith(
        "\nVerified 8 model(s) against scikit-learn; wrote 8 files in models\n"
        + default.splitlines()[-1]
        + "\n"
    )
    # What was trained, step by step, for the pipelines too.
    assert "1. Trained StandardScaler -> LogisticRegression\n" in out
    assert "1. Trained StandardScaler -> CalibratedClassifierCV\n" in out
    assert "1. Trained StandardScaler -> MLPClassifier\n" in out
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == sorted(
        f"sklearn_{name}.onnx" for name in sc.MODELS
    )


@LINUX_X86_64
def test_knn_run_with_tied_rows_prints_the_report_the_docs_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert sc.main(["--model", "knn", "--seed", "6"]) == 0
    shown = docs_sample("python sklearn_converter.py --model knn --seed 6")
    assert steady(capsys.readouterr().out) == steady(shown)


# --- Seeds, files and folders ---------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", ["decision_tree", "random_forest", "mlp"])
def test_the_seed_seeds_the_model_as_well_as_the_split(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # One split for all three runs: only the model's own randomness (bootstrap samples, the
    # features tried at each split, initial weights) can differ. The same seed repeats the file
    # byte for byte; another seed gives another model, so a seed sweep explores both.
    data = sc.load_iris_split(0)
    files = {}
    for folder, seed in (("first", 5), ("again", 5), ("other", 6)):
        sc.run_model(name, data, tmp_path / folder, seed, small=True)
        files[folder] = (tmp_path / folder / f"sklearn_{name}.onnx").read_bytes()
    assert files["first"] == files["again"], f"{name}: seed 5 gave two different files"
    assert files["first"] != files["other"], f"{name}: seeds 5 and 6 gave the same model"


def test_missing_nested_output_folders_are_created(tmp_path: Path, converted: Converted) -> None:
    folder = tmp_path / "a" / "b" / "c"
    sc.prepare_output_dir(folder)
    assert folder.is_dir()
    # save_model on its own (as a reader reusing it would call it) creates the folders too.
    path = tmp_path / "d" / "e" / "sklearn_decision_tree.onnx"
    size = sc.save_model(converted["decision_tree"][1], path)
    assert path.read_bytes() == converted["decision_tree"][2].read_bytes()
    assert size == path.stat().st_size


def test_output_folder_errors_keep_their_errno(tmp_path: Path) -> None:
    # A caller that catches OSError can act on errno, as for the operating system's own errors.
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(NotADirectoryError) as not_a_folder:
        sc.prepare_output_dir(blocker)
    assert not_a_folder.value.errno == errno.ENOTDIR
    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux's /proc, a folder where no file can be created")
    with pytest.raises(OSError) as not_writable:
        sc.prepare_output_dir(Path("/proc"))
    # The reason in the message is the one the errno names.
    code = not_writable.value.errno
    assert code is not None and f"({os.strerror(code)})" in str(not_writable.value.strerror)


def test_saved_file_has_the_usual_permissions(tmp_path: Path, converted: Converted) -> None:
    if os.name != "posix":
        pytest.skip("permission bits are POSIX")
    # Readable by the group and others as any file the user creates (0o666 minus the umask), not
    # the private 0o600 of mkstemp: a model server often runs as another user.
    for umask in (0o022, 0o077):
        previous = os.umask(umask)
        try:
            path = tmp_path / f"umask_{umask:o}.onnx"
            sc.save_model(converted["naive_bayes"][1], path)
        finally:
            os.umask(previous)
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, oct(umask)


def test_while_writing_only_a_hidden_temporary_file_sits_next_to_the_target(
    tmp_path: Path, converted: Converted, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Look at the folder at the moment the data is flushed to disk, just before the rename.
    seen: list[list[str]] = []
    real_fsync = os.fsync

    def fsync_and_look(fd: int) -> None:
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_and_look)
    sc.save_model(converted["naive_bayes"][1], tmp_path / "sklearn_naive_bayes.onnx")
    # In the target folder (so os.replace is a rename on one file system), hidden, and named so
    # that a leftover is recognisable and no `*.onnx` glob picks up a half-written model.
    ((temporary,),) = seen
    assert re.fullmatch(r"\.sklearn_naive_bayes\.onnx\.\w+\.tmp", temporary), temporary
    assert [p.name for p in tmp_path.iterdir()] == ["sklearn_naive_bayes.onnx"]


def test_ctrl_c_right_after_the_rename_exits_130_and_keeps_the_whole_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace

    def replace_then_interrupted(source: Any, target: Any) -> None:
        real_replace(source, target)
        raise KeyboardInterrupt  # the cleanup then finds no temporary file: that must be fine

    monkeypatch.setattr(os, "replace", replace_then_interrupted)
    assert sc.main(["--model", "decision_tree", "--output-dir", str(tmp_path)]) == 130
    captured = capsys.readouterr()
    assert captured.err == "error: interrupted\n" and "Verified" not in captured.out
    assert [p.name for p in tmp_path.iterdir()] == ["sklearn_decision_tree.onnx"]
    monkeypatch.undo()
    sc.load_session(tmp_path / "sklearn_decision_tree.onnx")  # whole: it loads


# --- Convert, check, load -------------------------------------------------------------------------


def test_conversion_hides_only_the_svc_probability_deprecation(
    converted: Converted, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The calibrated SVC does not use probA_/probB_, which skl2onnx reads and scikit-learn 1.9
    # deprecates: a user running --model svc sees no warning about them...
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sc.convert(converted["svc"][0], 4)
    # ... while any other deprecation met during a conversion still reaches them.
    import skl2onnx

    real_to_onnx = skl2onnx.to_onnx

    def to_onnx_with_a_deprecation(*args: Any, **kwargs: Any) -> onnx.ModelProto:
        warnings.warn("Attribute `coef_` is deprecated", FutureWarning, stacklevel=1)
        return real_to_onnx(*args, **kwargs)

    monkeypatch.setattr(skl2onnx, "to_onnx", to_onnx_with_a_deprecation)
    with pytest.warns(FutureWarning, match="coef_"):
        sc.convert(converted["naive_bayes"][0], 4)


def test_a_model_the_full_check_rejects_is_never_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The label output declared float while the node makes int64: the structural check passes,
    # only full_check's type inference sees it. The run must stop before saving the file.
    real_convert = sc.convert

    def mistyped(classifier: Any, features: int) -> onnx.ModelProto:
        model = real_convert(classifier, features)
        model.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT
        onnx.checker.check_model(model)  # what a check without full_check would let through
        return model

    monkeypatch.setattr(sc, "convert", mistyped)
    assert sc.main(["--model", "decision_tree", "--output-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert "Saved" not in captured.out and list(tmp_path.iterdir()) == []


def test_loading_runs_on_the_cpu_without_a_warning_with_the_threads_asked_for(
    converted: Converted,
) -> None:
    path = converted["decision_tree"][2]
    with warnings.catch_warnings():
        # onnxruntime only warns (and falls back) when a provider name is misspelt.
        warnings.simplefilter("error")
        session = sc.load_session(path)
    assert session.get_providers() == ["CPUExecutionProvider"]
    # By default ONNX Runtime chooses (0: one thread per core); the benchmark asks for 1, which
    # its header states, so its figures do not depend on the number of cores.
    assert session.get_session_options().intra_op_num_threads == 0
    assert sc.load_session(path, 1).get_session_options().intra_op_num_threads == 1


# --- Ties and verification ------------------------------------------------------------------------


def test_duplicate_training_rows_of_two_classes_make_a_tie_also_inside_a_pipeline(
    iris: sc.Split,
) -> None:
    # Six copies of one point, three of class 0 and three of class 1: for a test row at that
    # point, the 5th and 6th nearest are both at distance 0 and of different classes, so the vote
    # depends on which copy each library keeps. Scaled first (a pipeline, as a reader adapting
    # the lesson would write it), the copies stay copies: the same row is tied.
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, x_test, y_train, _ = iris
    point = x_train.mean(axis=0, keepdims=True)
    x = np.vstack([x_train, np.repeat(point, 6, axis=0)])
    y = np.concatenate([y_train, [0, 0, 0, 1, 1, 1]])
    rows = np.vstack([point, x_test[:3]])
    for classifier in (
        KNeighborsClassifier(),
        make_pipeline(StandardScaler(), KNeighborsClassifier()),
    ):
        classifier.fit(x, y)
        tied = sc.tied_rows(classifier, rows, y)
        assert tied.tolist() == [True, False, False, False], classifier


def test_a_scaled_knn_pipeline_reports_its_tied_rows_with_its_k(
    iris: sc.Split,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A reader who scales before k-NN (make_classifier edited) still gets ties found, left out
    # and explained with the pipeline's k.
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, x_test, y_train, y_test = iris
    point = x_train.mean(axis=0, keepdims=True)
    x = np.vstack([x_train, np.repeat(point, 4, axis=0)])
    y = np.concatenate([y_train, [0, 0, 1, 1]])
    monkeypatch.setattr(
        sc,
        "make_classifier",
        lambda name, seed, small=False: make_pipeline(
            StandardScaler(), KNeighborsClassifier(n_neighbors=3)
        ),
    )
    data = (x, np.vstack([point, x_test]), y, np.concatenate([[0], y_test]))
    result = sc.run_model("knn", data, tmp_path, seed=0)
    out = capsys.readouterr().out
    assert result["tied"] == 1
    assert "6. Verified on the 45 rows that are not tied" in out
    assert "   1 of 46 rows left out: training rows of different classes tie for 3th nearest" in out


def test_verify_names_what_cannot_be_compared(iris: sc.Split, converted: Converted) -> None:
    _, x_test, _, _ = iris
    classifier, _, path = converted["naive_bayes"]
    labels, probabilities = sc.predict(sc.load_session(path), x_test)
    rows = len(x_test)
    cases = [
        (labels, probabilities, np.ones(rows, bool), "every row is tied, nothing left to verify"),
        (labels[:-1], probabilities, np.zeros(rows, bool), r"labels shape \(44,\) != \(45,\)"),
        (labels, probabilities[:, :2], np.zeros(rows, bool), r"probabilities shape \(45, 2\)"),
    ]
    for bad_labels, bad_probabilities, tied, message in cases:
        with pytest.raises(AssertionError, match=f"^naive_bayes: {message}"):
            sc.verify("naive_bayes", classifier, x_test, bad_labels, bad_probabilities, tied)
    # One row left to compare is enough.
    one_left = np.ones(rows, bool)
    one_left[0] = False
    assert sc.verify("naive_bayes", classifier, x_test, labels, probabilities, one_left) <= 1e-5


def test_probabilities_are_held_to_the_stated_tolerance_exactly(
    iris: sc.Split, converted: Converted
) -> None:
    # The report states rtol=0.0001, atol=1e-05 (docs/sklearn_converter.md): a difference of
    # 0.9 of atol + rtol * |expected| passes, 1.1 of it fails, on every probability at once.
    _, x_test, _, _ = iris
    classifier = converted["logistic_regression"][0]
    expected = classifier.predict_proba(x_test)
    labels = classifier.predict(x_test)
    rtol, atol = 1e-4, 1e-5
    no_ties = np.zeros(len(x_test), bool)
    inside = expected + 0.9 * (atol + rtol * np.abs(expected))
    sc.verify("logistic_regression", classifier, x_test, labels, inside, no_ties)
    outside = expected + 1.1 * (atol + rtol * np.abs(expected))
    with pytest.raises(AssertionError, match="probabilities differ from predict_proba"):
        sc.verify("logistic_regression", classifier, x_test, labels, outside, no_ties)


# --- The manners a process shows, in process (mutation testing) ----------------------------------


def test_any_terminal_encoding_prints_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", terminal)
    assert sc.main(["--model", "naive_bayes", "--output-dir", str(tmp_path)]) == 0
    terminal.flush()
    report = terminal.buffer.getvalue().decode("ascii")
    # µ does not exist in ASCII: an escape instead of an error.
    assert "\\xb5s" in report and "Verified 1 model(s)" in report


def test_closed_pipe_exits_141_and_silences_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reader that closed the pipe: the last write fails. Afterwards stdout must lead nowhere,
    # so that Python's own flush at exit has nothing to complain about.
    def closed_pipe() -> None:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(sc, "print_versions", closed_pipe)
    with open(tmp_path / "stdout.txt", "w", encoding="utf-8") as stdout:
        monkeypatch.setattr(sys, "stdout", stdout)
        assert sc.main(["--model", "naive_bayes", "--output-dir", str(tmp_path / "out")]) == 141
        print("written after the pipe closed")
        stdout.flush()
    assert "after the pipe closed" not in (tmp_path / "stdout.txt").read_text(encoding="utf-8")
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (ValueError("first line\nsecond line"), "error: ValueError: first line\n"),
        (ValueError(), "error: ValueError\n"),
        (OSError(errno.ENOSPC, "No space left on device"), "error: No space left on device\n"),
    ],
)
def test_an_unexpected_failure_is_one_line_and_exit_1(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    line: str,
) -> None:
    def fail(*args: object) -> None:
        raise error

    monkeypatch.setattr(sc, "save_model", fail)
    assert sc.main(["--model", "naive_bayes", "--output-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == line
