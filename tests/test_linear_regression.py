"""In-process tests of linear_regression.py: each lifecycle step, called directly.

They run in the test process, so mutmut can see them (docs/mutation_testing.md): each one checks
something a reader relies on, and together they fail for every planted bug in a step that builds,
checks, saves, loads, runs or verifies the model (tests/mutants_equivalent.md lists the rest).
"""

from __future__ import annotations

import errno
import io
import os
import platform
import re
import stat
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto

import linear_regression as lr

Capture = pytest.CaptureFixture[str]
ROOT = Path(__file__).resolve().parent.parent


def fitted(
    features: int = 3, samples: int = 100, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray, np.ndarray]:
    """Fit the script's model on its synthetic data set; return x, y, true_a, true_b, a, b."""
    x, y, true_a, true_b = lr.make_dataset(features, samples, seed)
    a, b = lr.fit_least_squares(x, y)
    return x, y, true_a, true_b, a, b


@pytest.mark.parametrize("features", [1, 3, 8])
def test_fit_recovers_true_coefficients(features: int) -> None:
    _, _, true_a, true_b, a, b = fitted(features, samples=400)
    assert a.shape == (features, 1) and a.dtype == np.float32
    assert b.shape == (1,) and b.dtype == np.float32
    # With noise 0.1 and 400 rows, the standard error of each coefficient is about 0.005.
    np.testing.assert_allclose(a[:, 0], true_a, atol=0.03)
    np.testing.assert_allclose(b[0], true_b, atol=0.03)


def test_graph_has_expected_inputs_outputs_operators_and_initializers() -> None:
    *_, a, b = fitted(features=4, samples=50)
    model = lr.build_model(a, b)

    (x_info,) = model.graph.input
    assert x_info.name == "X"
    assert x_info.type.tensor_type.elem_type == TensorProto.FLOAT
    x_dims = x_info.type.tensor_type.shape.dim
    assert [x_dims[0].dim_param, x_dims[1].dim_value] == ["N", 4]

    (y_info,) = model.graph.output
    assert y_info.name == "Y"
    y_dims = y_info.type.tensor_type.shape.dim
    assert [y_dims[0].dim_param, y_dims[1].dim_value] == ["N", 1]

    assert [node.op_type for node in model.graph.node] == ["MatMul", "Add"]
    initializers = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    assert set(initializers) == {"A", "B"}
    np.testing.assert_array_equal(initializers["A"], a)
    np.testing.assert_array_equal(initializers["B"], b)

    assert model.ir_version == lr.IR_VERSION
    assert [(o.domain, o.version) for o in model.opset_import] == [("", lr.OPSET)]
    assert model.producer_name and model.doc_string and model.graph.name


def test_check_model_infers_intermediate_shape() -> None:
    *_, a, b = fitted()
    inferred = lr.check_model(lr.build_model(a, b))
    (xa,) = inferred.graph.value_info
    assert xa.name == "XA"
    assert [d.dim_param or d.dim_value for d in xa.type.tensor_type.shape.dim] == ["N", 1]


def test_check_model_rejects_mismatched_shapes() -> None:
    *_, a, b = fitted(features=3)
    model = lr.build_model(a, b)
    # Declare X with 2 features while A has 3 rows: MatMul cannot work, and the full check says so.
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 2
    with pytest.raises(onnx.shape_inference.InferenceError):
        lr.check_model(model)


@pytest.mark.parametrize("features", [1, 3, 10])
@pytest.mark.parametrize("rows", [1, 7, 256])
def test_onnxruntime_reference_evaluator_and_numpy_agree(
    tmp_path: Path, features: int, rows: int
) -> None:
    *_, a, b = fitted(features, samples=features + 20)
    path = tmp_path / lr.MODEL_FILE
    onnx.save_model(lr.build_model(a, b), path)
    session = lr.load_session(path)
    x = np.random.default_rng(42).normal(size=(rows, features)).astype(np.float32)

    y_onnxruntime = lr.run_onnxruntime(session, x)
    assert y_onnxruntime.shape == (rows, 1) and y_onnxruntime.dtype == np.float32
    expected = x.astype(np.float64) @ a.astype(np.float64) + b.astype(np.float64)
    bound = lr.float32_error_bound(x, a, b)
    assert np.all(np.abs(y_onnxruntime - expected) <= bound)
    assert np.all(np.abs(lr.run_reference_evaluator(onnx.load(path), x) - expected) <= bound)
    assert lr.compare("check", y_onnxruntime, lr.numpy_reference(x, a, b), bound) <= bound.max()


def test_float32_error_bound_holds_for_the_worst_summation_order_and_is_tight_enough() -> None:
    # Sum the terms one by one in float32, the order with the largest error growth, for many
    # features: the result stays within the bound...
    rng = np.random.default_rng(7)
    features = 4000
    a = rng.uniform(-2, 2, size=(features, 1)).astype(np.float32)
    b = np.array([0.5], dtype=np.float32)
    x = rng.normal(size=(32, features)).astype(np.float32)
    terms = np.concatenate([x * a[:, 0], np.broadcast_to(b, (32, 1))], axis=1)
    sequential = np.cumsum(terms, axis=1, dtype=np.float32)[:, -1:]
    exact = lr.numpy_reference(x, a, b)
    bound = lr.float32_error_bound(x, a, b)
    assert np.all(np.abs(sequential - exact) <= bound)
    # ...and the bound grows with the number of terms: 100 times more terms of the same size
    # make gamma_n 100 times larger and the sum of magnitudes too, so no fixed atol fits both.
    small = lr.float32_error_bound(x[:, :40], a[:40], b).mean()
    assert 5_000 < bound.mean() / small < 20_000
    # At the default size, the bound is far below what a real bug changes (a dropped bias).
    *_, a3, b3 = fitted()
    x3 = rng.normal(size=(64, 3)).astype(np.float32)
    assert lr.float32_error_bound(x3, a3, b3).max() < 1e-5 < abs(float(b3[0]))


@pytest.mark.parametrize("features", [1, 2, 50, 500])
def test_any_feature_count_verifies(tmp_path: Path, capsys: Capture, features: int) -> None:
    argv = ["--features", str(features), "--samples", str(features + 1)]
    assert lr.main([*argv, "--output-dir", str(tmp_path)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "Verified" in out
    # Long weight lists are elided: no line of the report grows with the number of features.
    assert max(len(line) for line in out.splitlines()) < 150


@pytest.mark.parametrize("features", [1000, 2000, 5000])
def test_long_dot_products_stay_within_the_bound(tmp_path: Path, features: int) -> None:
    # Up to thousands of features, without the least-squares fit: ONNX Runtime against NumPy and
    # against the reference evaluator, each within the derived float32 bound (a fixed atol=1e-5
    # failed here from 500 features on).
    rng = np.random.default_rng(features)
    a = rng.uniform(-2, 2, size=(features, 1)).astype(np.float32)
    b = rng.uniform(-1, 1, size=1).astype(np.float32)
    path = tmp_path / lr.MODEL_FILE
    onnx.save_model(lr.build_model(a, b), path)
    x = rng.normal(size=(64, features)).astype(np.float32)
    y_onnxruntime = lr.run_onnxruntime(lr.load_session(path), x)
    bound = lr.float32_error_bound(x, a, b)
    lr.compare("vs NumPy", y_onnxruntime, lr.numpy_reference(x, a, b), bound)
    lr.compare(
        "vs reference", y_onnxruntime, lr.run_reference_evaluator(onnx.load(path), x), 2 * bound
    )


def test_text_form_elides_large_initializers_only() -> None:
    *_, a, b = fitted(features=3)
    small = lr.text_form(lr.build_model(a, b))
    assert f"{a[0, 0]:.6}"[:6] in small and "values..." not in small
    a = np.ones((500, 1), dtype=np.float32)
    large = lr.text_form(lr.build_model(a, b))
    assert "float[500,1] A = {...500 values...}" in large
    assert "[matmul] XA = MatMul (X, A)" in large and len(large) < 1000


def test_compare_rejects_a_wrong_result() -> None:
    expected = np.zeros((4, 1))
    bound = np.full((4, 1), 1e-4)
    with pytest.raises(AssertionError, match=r"4 of 4 values .*largest difference 0\.001"):
        lr.compare("wrong", np.full((4, 1), 1e-3, dtype=np.float32), expected, bound)
    with pytest.raises(AssertionError, match="shape"):
        lr.compare("wrong shape", np.zeros((4,), dtype=np.float32), expected, bound)


def test_the_model_that_runs_is_the_file_on_disk(
    tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Write a file whose bias differs from the fitted one: verification must see the file's
    # numbers, so the round trip through disk is what is proven, not the in-memory model. A
    # failed verification publishes nothing: the folder keeps no model and no draft.
    real_save = onnx.save_model

    def save_a_different_model(model: onnx.ModelProto, path: Path) -> None:
        changed = onnx.ModelProto()
        changed.CopyFrom(model)
        bias = onnx.numpy_helper.to_array(changed.graph.initializer[1]) + 0.5
        changed.graph.initializer[1].CopyFrom(onnx.numpy_helper.from_array(bias, "B"))
        real_save(changed, path)

    monkeypatch.setattr(lr.onnx, "save_model", save_a_different_model)
    assert lr.main(["--output-dir", str(tmp_path)]) == 1
    assert "ONNX Runtime vs NumPy" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_failed_run_keeps_the_last_verified_model(
    tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert lr.main(["--output-dir", str(tmp_path)]) == 0
    verified = (tmp_path / lr.MODEL_FILE).read_bytes()
    monkeypatch.setattr(lr, "numpy_reference", lambda x, a, b: x[:, :1].astype(np.float64) + 1)
    assert lr.main(["--output-dir", str(tmp_path), "--seed", "1"]) == 1
    assert (tmp_path / lr.MODEL_FILE).read_bytes() == verified
    assert [p.name for p in tmp_path.iterdir()] == [lr.MODEL_FILE]


def test_the_reference_evaluator_checks_the_file_on_disk(
    tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Same idea for the second reference: it must be given the model read back from the file.
    real_save, real_evaluator = onnx.save_model, lr.run_reference_evaluator
    evaluated: list[bytes] = []

    def save_with_a_new_doc_string(model: onnx.ModelProto, path: Path) -> None:
        changed = onnx.ModelProto()
        changed.CopyFrom(model)
        changed.doc_string = "changed on the way to disk"
        real_save(changed, path)

    def recording_evaluator(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
        evaluated.append(model.SerializeToString())
        return real_evaluator(model, x)

    monkeypatch.setattr(lr.onnx, "save_model", save_with_a_new_doc_string)
    monkeypatch.setattr(lr, "run_reference_evaluator", recording_evaluator)
    assert lr.main(["--output-dir", str(tmp_path)]) == 0
    on_disk = (tmp_path / lr.MODEL_FILE).read_bytes()
    assert evaluated and all(model == on_disk for model in evaluated)


def test_saved_file_has_the_usual_permissions(tmp_path: Path, capsys: Capture) -> None:
    if os.name != "posix":
        pytest.skip("permission bits are POSIX")
    assert lr.main(["--output-dir", str(tmp_path)]) == 0
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / lr.MODEL_FILE).stat().st_mode) == 0o666 & ~umask


def test_same_seed_writes_byte_identical_files(tmp_path: Path, capsys: Capture) -> None:
    first, second, other = tmp_path / "first", tmp_path / "second", tmp_path / "other"
    assert lr.main(["--output-dir", str(first)]) == 0
    first_report = capsys.readouterr().out
    assert lr.main(["--output-dir", str(second)]) == 0
    second_report = capsys.readouterr().out
    assert lr.main(["--output-dir", str(other), "--seed", "1"]) == 0
    data = (first / lr.MODEL_FILE).read_bytes()
    assert data == (second / lr.MODEL_FILE).read_bytes()
    assert data != (other / lr.MODEL_FILE).read_bytes()
    # The report repeats too, down to the verification rows' differences: nothing is unseeded.
    assert first_report.replace(str(first), "DIR") == second_report.replace(str(second), "DIR")


def test_main_reports_each_step_and_the_differences(tmp_path: Path, capsys: Capture) -> None:
    assert lr.main(["--output-dir", str(tmp_path), "--features", "2", "--samples", "3"]) == 0
    out = capsys.readouterr().out
    for step in ("1. Fit", "2. Build", "3. Check", "4. Save", "5. Load", "6. Run and verify"):
        assert step in out
    assert "inferred intermediate XA: ['N', 1]" in out  # shape inference ran on the model
    assert f"wrote {tmp_path / lr.MODEL_FILE}" in out
    assert "batch of   1" in out and f"batch of  {lr.NEW_ROWS}" in out
    assert "Verified" in out and f"onnxruntime {lr.ort.__version__}" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--features", "0"], "argument --features: must be from 1 to 100000000, got 0"),
        (["--features", "-3"], "argument --features: expected a whole number (digits 0-9)"),
        (["--features", "three"], "argument --features: expected a whole number (digits 0-9)"),
        (["--samples", "9223372036854775808"], "argument --samples: must be from 1 to"),
        (["--features", "10000", "--samples", "20000"], "--samples x --features is at most"),
        (["--samples", "3"], "argument --samples: 3 rows cannot determine 3 coefficients"),
        (["--features", "5", "--samples", "5"], "use at least 6"),
        (["--seed", "-1"], "argument --seed: expected a whole number (digits 0-9), got '-1'"),
        (["--seed", "4294967296"], "argument --seed: must be from 0 to 4294967295"),
        (["--seed", "zero"], "argument --seed: expected a whole number (digits 0-9), got 'zero'"),
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_flags_are_usage_errors(
    argv: list[str], message: str, capsys: Capture, tmp_path: Path
) -> None:
    assert lr.main([*argv, "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err  # one line, no usage block, no traceback
    assert err.startswith("linear_regression.py: error: ")
    assert message in err
    assert not list(tmp_path.iterdir())  # nothing was written


def test_verification_failure_exits_1(
    tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Break the NumPy reference: the script must notice and fail, not print and carry on.
    monkeypatch.setattr(lr, "numpy_reference", lambda x, a, b: x[:, :1].astype(np.float64) + 1)
    assert lr.main(["--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: verification failed: batch 1, ONNX Runtime vs NumPy")
    assert err.count("\n") == 1


def test_unwritable_output_exits_1_and_leaves_no_temporary_file(
    tmp_path: Path, capsys: Capture
) -> None:
    # A folder where the file should go makes os.replace fail after the draft was verified.
    (tmp_path / lr.MODEL_FILE).mkdir()
    assert lr.main(["--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [lr.MODEL_FILE]


def test_largest_seed_verifies(tmp_path: Path, capsys: Capture) -> None:
    assert lr.main(["--output-dir", str(tmp_path), "--seed", str(2**32 - 1)]) == 0


def test_output_dir_that_is_a_file_is_named_before_any_work(
    tmp_path: Path, capsys: Capture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    assert lr.main(["--output-dir", str(blocker)]) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        f"error: cannot create files in the output folder {blocker} "
        "(a file or a broken link has that name)\n"
    )
    assert captured.out == ""  # checked before the lesson printed or computed anything


def test_output_dir_that_cannot_be_written_is_named(tmp_path: Path, capsys: Capture) -> None:
    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux's /proc, a folder where no file can be created")
    assert lr.main(["--output-dir", "/proc"]) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        "error: cannot create files in the output folder /proc (it refuses new files)\n"
    )
    assert captured.out == ""


# --- What the docs promise -----------------------------------------------------------------------


def docs_sample(page: str, command: str) -> str:
    """Return the output sample a docs page shows for a command (tools/samples.py's markers)."""
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    match = re.search(rf"<!-- sample: {re.escape(command)} -->\n```text\n(.*?)```", text, re.S)
    assert match is not None, f"docs/{page} has no sample of `{command}`"
    return match[1]


def steady(report: str) -> str:
    """Check each printed difference against the bound beside it, then blank the differences.

    The differences depend on the processor (AMD and Intel round a float32 dot product
    differently); what a reader relies on is that each one is within its bound. The bounds depend
    only on the data, in float64, and stay.
    """
    pattern = r"(difference vs NumPy |vs reference evaluator )(\S+) <= (\S+?),?(?=\s|$)"
    for _, difference, bound in re.findall(pattern, report):
        assert float(difference) <= float(bound), (difference, bound)
    report = re.sub(r"(difference vs NumPy |vs reference evaluator )\S+ <=", r"\1... <=", report)
    return re.sub(r"Python \S+,", "Python ...,", report)


def test_default_run_prints_the_report_the_docs_show(
    tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In process, unlike tests/test_docs.py, so that mutmut sees it: every line of the narration,
    # the text form, the file size and the default output folder are what the lesson page shows.
    monkeypatch.chdir(tmp_path)
    assert lr.main([]) == 0
    shown, report = (
        docs_sample("linear_regression.md", "python linear_regression.py"),
        capsys.readouterr().out,
    )
    if sys.platform == "linux" and platform.machine() == "x86_64":  # where the sample was made
        assert steady(report) == steady(shown)
    else:  # another BLAS may round the fitted coefficients' last digits: compare the rest
        sys.path.insert(0, str(ROOT / "tools"))
        import samples

        assert samples.first_difference(shown, report, loose=True) is None


def test_model_file_has_the_opset_and_ir_version_the_docs_state(
    tmp_path: Path, capsys: Capture
) -> None:
    # The versions come from the prose of docs/concepts.md, not from the script's constants, so
    # changing OPSET or IR_VERSION in the script alone fails here.
    concepts = (ROOT / "docs" / "concepts.md").read_text(encoding="utf-8")
    stated = re.search(
        r"Every script pins \*\*opset (\d+)\*\* of the default domain"
        r"\s+and\s+\*\*IR version (\d+)\*\*",
        concepts,
    )
    assert stated is not None, "docs/concepts.md no longer states the opset and IR version"
    assert lr.main(["--output-dir", str(tmp_path)]) == 0
    model = onnx.load(tmp_path / lr.MODEL_FILE)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", int(stated[1]))]
    assert model.ir_version == int(stated[2])


def test_help_states_each_flag_with_its_default_and_range(capsys: Capture) -> None:
    assert lr.main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps to the terminal's width
    assert "Linear regression in ONNX, built node by node with ``onnx.helper``." in text
    for line in (
        "--features FEATURES number of input features (default: 3)",
        "--samples SAMPLES training rows, > features (default: 100)",
        "--output-dir OUTPUT_DIR folder for the files it writes (default: models)",
        "--seed SEED random seed, 0 to 2**32 - 1 (default: 0)",
    ):
        assert line in text


def test_both_ends_of_the_seed_range_are_accepted() -> None:
    # argparse applies `type` to a typed default only when it is a string: 0 must be tried.
    assert lr.parse_arguments(["--seed", "0"]).seed == 0
    assert lr.parse_arguments(["--seed", str(2**32 - 1)]).seed == 2**32 - 1


@pytest.mark.parametrize(("features", "rows_shown", "more"), [(16, 16, None), (17, 16, 1)])
def test_coefficient_table_shows_16_rows_then_counts_the_rest(
    tmp_path: Path, capsys: Capture, features: int, rows_shown: int, more: int | None
) -> None:
    argv = ["--features", str(features), "--samples", str(features + 1)]
    assert lr.main([*argv, "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"   A[{rows_shown - 1}] " in out and f"   A[{rows_shown}] " not in out
    if more is None:
        assert "... and" not in out
    else:
        assert f"   ... and {more} more\n" in out


# --- Check and text form -------------------------------------------------------------------------


def test_check_model_rejects_a_bias_stored_as_float64() -> None:
    # The classic slip: a float64 initializer in a float graph. Only the full check's type
    # checking sees it; plain shape inference lets it through, and ONNX Runtime would refuse it.
    *_, a, b = fitted()
    model = lr.build_model(a, b)
    model.graph.initializer[1].CopyFrom(onnx.numpy_helper.from_array(b.astype(np.float64), "B"))
    with pytest.raises(onnx.shape_inference.InferenceError, match="B has inconsistent type"):
        lr.check_model(model)


def test_main_refuses_an_invalid_graph_before_writing_it(
    tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_build = lr.build_model

    def build_with_wrong_input_width(a: np.ndarray, b: np.ndarray) -> onnx.ModelProto:
        model = real_build(a, b)
        model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = a.shape[0] + 1
        return model

    monkeypatch.setattr(lr, "build_model", build_with_wrong_input_width)
    assert lr.main(["--output-dir", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: InferenceError: ") and captured.err.count("\n") == 1
    assert "MatMul" in captured.err and "4. Save" not in captured.out
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("features", "elided"), [(16, False), (17, True)])
def test_text_form_is_the_printers_text_unless_an_initializer_is_elided(
    features: int, elided: bool
) -> None:
    a = np.linspace(-1, 1, features, dtype=np.float32).reshape(-1, 1)
    model = lr.check_model(lr.build_model(a, np.array([0.5], dtype=np.float32)))
    text = lr.text_form(model)
    # Up to 16 values everything is printed, exactly as onnx.printer prints the whole model
    # (metadata, inferred intermediate shapes and all); beyond that only A's values are replaced.
    expected = onnx.printer.to_text(model)
    if elided:
        expected = re.sub(r" A =  \{[^}]*\}", f" A = {{...{features} values...}}", expected)
    assert text == expected
    assert "float[N,1] XA" in text


# --- Save ----------------------------------------------------------------------------------------


def test_missing_nested_output_folders_are_created(tmp_path: Path, capsys: Capture) -> None:
    folder = tmp_path / "a" / "b" / "c"
    assert lr.main(["--output-dir", str(folder)]) == 0
    assert (folder / lr.MODEL_FILE).is_file()


def test_output_folder_errors_name_the_folder_and_the_reason(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(lr.Failure, match="a file or a broken link has that name"):
        lr.prepare_output_dir(blocker)
    if os.name == "posix":
        (tmp_path / "dangling").symlink_to(tmp_path / "missing")
        with pytest.raises(lr.Failure, match=r"dangling .a file or a broken link has that name"):
            lr.prepare_output_dir(tmp_path / "dangling")
    if not Path("/proc/self").is_dir():
        pytest.skip("needs Linux's /proc, a folder where no file can be created")
    with pytest.raises(lr.Failure, match=r"/proc \(it refuses new files\)"):
        lr.prepare_output_dir(Path("/proc"))


def test_while_writing_only_a_hidden_temporary_file_sits_next_to_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Look at the folder at the moment the data is flushed to disk, just before the rename.
    seen: list[list[str]] = []
    real_fsync = os.fsync

    def fsync_and_look(fd: int) -> None:
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_and_look)
    *_, a, b = fitted()
    with lr.publish(tmp_path / lr.MODEL_FILE) as draft:
        onnx.save_model(lr.build_model(a, b), draft)
    # In the target folder (so os.replace is a rename on one file system), hidden, and named so
    # that a leftover is recognisable and no `*.onnx` glob picks up a half-written model.
    ((temporary,),) = seen
    assert re.fullmatch(r"\.linear_regression\.onnx\.\w+\.tmp", temporary), temporary
    assert sorted(p.name for p in tmp_path.iterdir()) == [lr.MODEL_FILE]


@pytest.mark.parametrize("moment", ["during the write", "right after the rename"])
def test_ctrl_c_while_saving_exits_130_and_leaves_no_temporary_file(
    tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch, moment: str
) -> None:
    real_fsync, real_replace = os.fsync, os.replace

    def interrupted_fsync(fd: int) -> None:
        real_fsync(fd)
        raise KeyboardInterrupt

    def interrupted_replace(source: Any, target: Any) -> None:
        real_replace(source, target)
        raise KeyboardInterrupt  # the cleanup then finds no temporary file: that must be fine

    if moment == "during the write":
        monkeypatch.setattr(os, "fsync", interrupted_fsync)
    else:
        monkeypatch.setattr(os, "replace", interrupted_replace)
    assert lr.main(["--output-dir", str(tmp_path)]) == 130
    captured = capsys.readouterr()
    assert captured.err == "error: interrupted\n"
    assert "Verified" not in captured.out
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ([] if moment == "during the write" else [lr.MODEL_FILE])


# --- Load and run --------------------------------------------------------------------------------


def test_loading_runs_on_the_cpu_without_a_warning(tmp_path: Path) -> None:
    *_, a, b = fitted()
    path = tmp_path / lr.MODEL_FILE
    onnx.save_model(lr.build_model(a, b), path)
    with warnings.catch_warnings():
        # onnxruntime only warns (and falls back) when a provider name is misspelt.
        warnings.simplefilter("error")
        session = lr.load_session(path)
    assert session.get_providers() == ["CPUExecutionProvider"]


# --- Verify --------------------------------------------------------------------------------------


def test_error_bound_is_the_documented_formula() -> None:
    # docs/linear_regression.md: gamma_n * (sum|x_i a_i| + |B|), gamma_n = n u / (1 - n u),
    # n = features + 1, u = 2**-24. Recomputed here from the page's formula with exact inputs.
    x = np.array([[1.0, -2.0, 0.5]], dtype=np.float32)
    a = np.array([[3.0], [1.0], [-4.0]], dtype=np.float32)
    b = np.array([-0.25], dtype=np.float32)
    n, u = 4, 2.0**-24
    expected = n * u / (1 - n * u) * (3.0 + 2.0 + 2.0 + 0.25)
    np.testing.assert_allclose(lr.float32_error_bound(x, a, b), [[expected]], rtol=1e-14)


def test_compare_accepts_equality_with_the_bound_and_reports_the_worst_excess() -> None:
    expected = np.zeros((2, 1))
    # "Within the bound" includes the bound itself, down to an exact match with a zero bound.
    assert lr.compare("exact", np.zeros((2, 1), np.float32), expected, np.zeros((2, 1))) == 0.0
    on_bound = np.array([[0.5], [0.25]], dtype=np.float32)
    assert lr.compare("on the bound", on_bound, expected, on_bound.astype(np.float64)) == 0.5
    # Row 0 differs more, row 1 exceeds its bound by more: the message names row 1.
    actual = np.array([[0.003], [0.002]], dtype=np.float32)
    bound = np.array([[0.0025], [0.0001]])
    with pytest.raises(AssertionError) as error:
        lr.compare("worst", actual, expected, bound)
    assert str(error.value) == (
        "worst: 2 of 2 values differ by more than the float32 error bound "
        "(largest difference 0.002 where the bound is 0.0001)"
    )


def shifted_numpy_reference(shift: float) -> Any:
    """A NumPy reference moved by shift times the float32 error bound of each row."""
    real_reference, real_bound = lr.numpy_reference, lr.float32_error_bound

    def reference(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return real_reference(x, a, b) + shift * real_bound(x, a, b)

    return reference


def shifted_reference_evaluator(shift: float) -> Any:
    """A reference evaluator whose results are moved by shift times the error bound."""
    real_reference, real_bound = lr.numpy_reference, lr.float32_error_bound

    def evaluator(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
        weights = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
        a, b = weights["A"], weights["B"]
        return real_reference(x, a, b) + shift * real_bound(x, a, b)

    return evaluator


@pytest.mark.parametrize(
    ("target", "shift", "message"),
    [
        # ONNX Runtime's own error stays below a fifth of the bound here (see the docs' sample), so
        # a reference moved by half the bound still agrees, and one moved by 1.5 bounds does not.
        ("numpy_reference", 0.5, None),
        ("numpy_reference", 1.5, "batch 1, ONNX Runtime vs NumPy: 1 of 1 values differ"),
        # Against the reference evaluator, float32 too, twice the bound applies.
        ("run_reference_evaluator", 1.5, None),
        ("run_reference_evaluator", 2.5, "batch 1, ONNX Runtime vs reference evaluator: 1 of 1"),
    ],
)
def test_each_reference_is_held_to_its_documented_tolerance(
    tmp_path: Path,
    capsys: Capture,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
    shift: float,
    message: str | None,
) -> None:
    if target == "numpy_reference":
        monkeypatch.setattr(lr, target, shifted_numpy_reference(shift))
    else:
        monkeypatch.setattr(lr, target, shifted_reference_evaluator(shift))
    status = lr.main(["--output-dir", str(tmp_path)])
    err = capsys.readouterr().err
    if message is None:
        assert status == 0, err
    else:
        assert status == 1
        assert err.startswith(f"error: verification failed: {message}") and err.count("\n") == 1


# --- The command line's manners, in process ------------------------------------------------------


def test_any_terminal_encoding_prints_the_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", terminal)
    assert lr.main(["--output-dir", str(tmp_path)]) == 0
    terminal.flush()
    report = terminal.buffer.getvalue().decode("ascii")
    assert "Linear regression Y = X\\xb7A + B" in report and "Verified" in report


def test_closed_pipe_exits_141_quietly(
    tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reader that closed the pipe: a write fails. Nothing on stderr, status 141, and the
    # model, verified before the report's last lines, stays published.
    def closed_pipe(*args: object, **kwargs: object) -> None:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    monkeypatch.setattr(lr, "verify", closed_pipe)
    assert lr.main(["--output-dir", str(tmp_path / "models")]) == 141
    assert capsys.readouterr().err == ""
    assert list((tmp_path / "models").iterdir()) == []


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (ValueError("first line\nsecond line"), "error: ValueError: first line second line\n"),
        (ValueError(), "error: ValueError\n"),
        (OSError(errno.ENOSPC, "No space left on device"), "error: No space left on device\n"),
    ],
)
def test_an_unexpected_failure_is_one_line_and_exit_1(
    tmp_path: Path,
    capsys: Capture,
    monkeypatch: pytest.MonkeyPatch,
    error: Exception,
    line: str,
) -> None:
    def fail(*args: object) -> None:
        raise error

    monkeypatch.setattr(lr.onnx, "save_model", fail)
    assert lr.main(["--output-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == line
    assert list(tmp_path.iterdir()) == []


def test_an_unset_dimension_prints_as_a_question_mark(capsys: Capture) -> None:
    # Lesson 1's own model names its batch dimension; a model with an unset one (as skl2onnx
    # writes) prints it as ?, beside a named and a fixed one, in both places the lesson prints.
    x = onnx.helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, "N", 3])
    assert lr.dims(x.type.tensor_type.shape) == ["?", "N", 3]
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["X"], ["Y"])],
        "dims",
        [x],
        [onnx.helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, "N", 3])],
    )
    model = onnx.helper.make_model(
        graph, opset_imports=[onnx.helper.make_opsetid("", lr.OPSET)], ir_version=lr.IR_VERSION
    )
    session = lr.ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    lr.show_signature(session)
    assert capsys.readouterr().out.splitlines() == [
        "   input  X: tensor(float) ['?', 'N', 3]",
        "   output Y: tensor(float) ['?', 'N', 3]",
    ]
