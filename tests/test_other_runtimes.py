"""other_runtimes.py: the files, their JSON form, onnxruntime-web under Node.js, and tract.

One Node.js process runs every file the lesson writes plus a few made here (exact round trips of
NaN, int64 and strings; a model whose external data is not handed over); the tests reuse it.
Without Node.js or without js/node_modules, the JavaScript tests are skipped with that reason
(.ci/run and the workflow install both).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

import other_runtimes as lesson

ROOT = Path(__file__).resolve().parent.parent
HAVE_JS = shutil.which("node") is not None and (ROOT / "js/node_modules/onnxruntime-web").is_dir()
# .ci/run installs the JavaScript side and sets ONNX_BY_EXAMPLE_NEEDS_NODE when Node.js is there:
# then a missing install fails the suite instead of skipping the comparison with Python.
if os.environ.get("ONNX_BY_EXAMPLE_NEEDS_NODE") and not HAVE_JS:
    raise RuntimeError("Node.js is there but js/node_modules is not: npm ci --prefix js failed?")
needs_js = pytest.mark.skipif(not HAVE_JS, reason="Node.js or js/node_modules missing (npm ci)")

# Values that JSON cannot hold as they are: each must come back from JavaScript bit for bit.
TRICKY = {
    "f": np.array(
        [0.1, -0.0, np.nan, np.inf, -np.inf, 1e-45, 3.4028235e38, 16777217, 1 / 3], np.float32
    ),
    "i": np.array([2**63 - 1, -(2**63), 2**53 + 1, 0, -1], np.int64),
    "s": np.array(["", "vert émeraude", "日本語", 'quote " and \\ backslash', "😀"], object),
}


def identity_model() -> onnx.ModelProto:
    """Three inputs, each copied to an output: what goes in must come out unchanged."""
    types = {"f": TensorProto.FLOAT, "i": TensorProto.INT64, "s": TensorProto.STRING}
    inputs = [helper.make_tensor_value_info(n, t, [None]) for n, t in types.items()]
    outputs = [helper.make_tensor_value_info(f"{n}_out", t, [None]) for n, t in types.items()]
    nodes = [helper.make_node("Identity", [n], [f"{n}_out"]) for n in types]
    graph = helper.make_graph(nodes, "identity", inputs, outputs)
    opsets = [helper.make_opsetid("", lesson.OPSET)]
    return helper.make_model(graph, opset_imports=opsets, ir_version=lesson.IR_VERSION)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, lesson.Case]]:
    """The lesson's seven files and their JSON files, written in process with seed 0."""
    folder = tmp_path_factory.mktemp("other_runtimes")
    with contextlib.redirect_stdout(io.StringIO()):
        cases = lesson.build_models(np.random.default_rng(0))
        for name, case in cases.items():
            lesson.write_case(folder, name, case)
    return folder, cases


@pytest.fixture(scope="module")
def node_run(
    written: tuple[Path, dict[str, lesson.Case]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    """One Node.js process for every JSON file: the lesson's, the identity, the forgotten data."""
    if not HAVE_JS:
        pytest.skip("Node.js or js/node_modules missing: npm ci --ignore-scripts --prefix js")
    written_folder, cases = written
    folder = tmp_path_factory.mktemp("node_run")  # the lesson's files plus three of the tests'
    for path in written_folder.iterdir():
        shutil.copy(path, folder / path.name)
    onnx.save_model(identity_model(), folder / "identity.onnx")
    spec = {"model": "identity.onnx", "inputs": {k: lesson.encode(v) for k, v in TRICKY.items()}}
    (folder / "identity.json").write_text(json.dumps(spec), encoding="utf-8")
    forgot = json.loads((folder / "mlp_external.json").read_text(encoding="utf-8"))
    forgot["external_data"] = []  # the data file stays on disk, but is not handed over
    (folder / "forgot.json").write_text(json.dumps(forgot), encoding="utf-8")
    result = lesson.run_javascript(folder, [*cases, "identity", "forgot"])
    assert isinstance(result, dict), result
    return result


# --- The files and what onnxruntime computes from them -------------------------------------------


def test_the_files_written_are_the_seven_models_their_data_and_json(written):
    folder, cases = written
    names = sorted(path.name for path in folder.iterdir())
    data = [name for name in names if name.endswith(".data")]
    assert len(data) == 1 and data[0].startswith("mlp_external.")
    expected = sorted([*(f"{n}.onnx" for n in cases), *(f"{n}.json" for n in cases), *data])
    assert names == expected


def test_onnxruntime_agrees_with_onnx_reference_on_every_standard_file(written):
    folder, cases = written
    for name in ("linear", "mlp_inlined", "mlp_functions", "qdq_int8"):
        case = cases[name]
        evaluator = ReferenceEvaluator(onnx.load(folder / f"{name}.onnx"))
        outputs = evaluator.run(None, case.inputs)
        reference = dict(zip(evaluator.output_names, outputs, strict=True))
        for key, array in case.outputs.items():
            lesson.compare(f"{name}.{key}", array, reference[key], case.agreement)


def test_the_references_are_numpy_and_scikit_learn(written):
    _, cases = written
    x = cases["linear"].inputs["X"].astype(np.float64)
    linear = cases["linear"]
    a = onnx.numpy_helper.to_array(linear.model.graph.initializer[0]).astype(np.float64)
    b = onnx.numpy_helper.to_array(linear.model.graph.initializer[1]).astype(np.float64)
    np.testing.assert_allclose(linear.outputs["Y"], x @ a + b, atol=1e-5)
    assert np.isnan(linear.outputs["Y"][2, 0]) and np.isnan(linear.inputs["X"][2, 1])
    assert list(cases["strings"].outputs["label"]) == list(cases["strings"].expected["label"])
    assert set(cases["strings"].outputs["label"]) <= {"warm", "cold"}
    for name in ("mlp_inlined", "ml_pipeline"):
        probabilities = cases[name].outputs["probabilities"]
        np.testing.assert_allclose(probabilities.sum(axis=1), 1, atol=1e-6)
        np.testing.assert_array_equal(cases[name].outputs["label"], probabilities.argmax(axis=1))


def test_the_external_data_file_is_named_after_its_content(written):
    folder, _ = written
    model = onnx.load(folder / "mlp_external.onnx", load_external_data=False)
    locations = {t.external_data[0].value for t in model.graph.initializer}
    assert len(locations) == 1 and not any(t.raw_data for t in model.graph.initializer)
    location = locations.pop()
    data = (folder / location).read_bytes()
    assert location == f"mlp_external.{hashlib.sha256(data).hexdigest()[:12]}.data"
    inlined = onnx.load(folder / "mlp_inlined.onnx")
    assert data == b"".join(t.raw_data for t in inlined.graph.initializer)


def test_the_same_seed_writes_the_same_bytes_and_another_seed_other_weights(written, tmp_path):
    folder, _ = written
    with contextlib.redirect_stdout(io.StringIO()):
        for seed, target in ((0, tmp_path / "same"), (1, tmp_path / "other")):
            target.mkdir()
            for name, case in lesson.build_models(np.random.default_rng(seed)).items():
                lesson.write_case(target, name, case)
    for path in folder.iterdir():
        assert (tmp_path / "same" / path.name).read_bytes() == path.read_bytes(), path.name
    assert (tmp_path / "other" / "linear.onnx").read_bytes() != (
        folder / "linear.onnx"
    ).read_bytes()


# --- The JSON form: exact for NaN, infinities, int64 and strings ----------------------------------


def test_json_form_reads_back_exactly_in_python():
    for array in TRICKY.values():
        text = json.dumps(lesson.encode(array))
        np.testing.assert_array_equal(lesson.decode(json.loads(text)), array, strict=True)
    assert json.loads(json.dumps(lesson.encode(TRICKY["f"])))["data"][:5] == [
        0.1,
        -0.0,
        "NaN",
        "Infinity",
        "-Infinity",
    ]
    assert lesson.encode(TRICKY["i"])["data"][0] == "9223372036854775807"  # not 9.2e18


def test_json_form_refuses_a_type_it_cannot_write():
    with pytest.raises(ValueError, match="float64"):
        lesson.encode(np.zeros(2))


@needs_js
def test_javascript_reads_and_writes_every_tricky_value_exactly(node_run):
    outputs = node_run["results"]["identity.json"]["outputs"]
    for name, array in TRICKY.items():
        back = lesson.decode(outputs[f"{name}_out"])
        np.testing.assert_array_equal(back, array, strict=True)
        if name == "f":  # -0.0 keeps its sign, NaN stays NaN
            assert np.signbit(back[1]) and np.isnan(back[2])


# --- onnxruntime-web under Node.js -----------------------------------------------------------


@needs_js
def test_javascript_gives_python_onnxruntimes_outputs_for_every_file(written, node_run):
    _, cases = written
    assert node_run["versions"]["onnxruntime-web"] == lesson_lock_version()
    for name, case in cases.items():
        with contextlib.redirect_stdout(io.StringIO()):
            difference = lesson.compare_case("web", name, node_run["results"][f"{name}.json"], case)
        assert 0 <= difference <= case.agreement
        outputs = node_run["results"][f"{name}.json"]["outputs"]
        for key, array in case.outputs.items():  # labels and strings: exactly equal
            if array.dtype.kind != "f":
                np.testing.assert_array_equal(lesson.decode(outputs[key]), array)


def lesson_lock_version() -> str:
    """The onnxruntime-web version package-lock.json pins."""
    lock = json.loads((ROOT / "js/package-lock.json").read_text(encoding="utf-8"))
    version = lock["packages"]["node_modules/onnxruntime-web"]["version"]
    package = json.loads((ROOT / "js/package.json").read_text(encoding="utf-8"))
    assert package["dependencies"]["onnxruntime-web"] == version  # exact, not a range
    return version


@needs_js
@pytest.mark.parametrize(
    ("name", "key", "change"),
    [
        ("mlp_inlined", "probabilities", 2e-5),  # just beyond the tolerance
        ("ml_pipeline", "label", 1),
        ("linear", "Y", np.nan),
        ("qdq_int8", "probabilities", 1 / 255 + 2e-5),
    ],
)
def test_a_javascript_answer_that_differs_from_python_fails(written, node_run, name, key, change):
    _, cases = written
    result = copy.deepcopy(node_run["results"][f"{name}.json"])
    tensor = result["outputs"][key]
    if isinstance(change, float) and np.isnan(change):
        tensor["data"][0] = "NaN"
    elif tensor["type"] == "int64":
        tensor["data"][0] = str(int(tensor["data"][0]) + change)
    else:
        tensor["data"][0] = tensor["data"][0] + change
    with pytest.raises(AssertionError, match=name), contextlib.redirect_stdout(io.StringIO()):
        lesson.compare_case("web", name, result, cases[name])


@needs_js
def test_main_fails_when_javascript_disagrees(written, node_run, monkeypatch, tmp_path, capsys):
    altered = copy.deepcopy(node_run)
    altered["results"]["strings.json"]["outputs"]["label"]["data"][0] = "cold?"
    monkeypatch.setattr(lesson, "run_javascript", lambda folder, names: altered)
    assert lesson.main(["--output-dir", str(tmp_path)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("error: verification failed:") and "strings" in error
    assert len(error.splitlines()) == 1


@needs_js
def test_external_data_must_be_handed_to_onnxruntime_web(node_run):
    error = node_run["results"]["forgot.json"]["error"]
    assert "Failed to load external data file" in error
    assert "Module.MountedFiles is not available" in error
    with pytest.raises(AssertionError, match="MountedFiles"):
        lesson.compare_case("web", "forgot", node_run["results"]["forgot.json"], None)  # type: ignore[arg-type]


def test_without_node_the_step_is_skipped_with_the_way_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(lesson.shutil, "which", lambda name: None)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        why = lesson.run_javascript(tmp_path, ["linear"])
    assert isinstance(why, str) and "Node.js is not installed" in why and "npm ci" in why
    assert f"skipped: {why}" in out.getvalue()


def test_without_node_modules_it_prints_the_one_npm_ci_command(monkeypatch, tmp_path):
    (tmp_path / "run_models.mjs").write_text("", encoding="utf-8")
    monkeypatch.setattr(lesson, "JS_FOLDER", tmp_path)
    monkeypatch.setattr(lesson.shutil, "which", lambda name: "/usr/bin/node")
    with contextlib.redirect_stdout(io.StringIO()):
        why = lesson.run_javascript(tmp_path, ["linear"])
    assert why == (
        "onnxruntime-web is not installed; install it from the lockfile with: "
        f"npm ci --ignore-scripts --prefix {tmp_path}"
    )


def test_a_skipped_javascript_step_is_not_reported_as_verified(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(lesson.shutil, "which", lambda name: None)
    assert lesson.main(["--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    verified = [line for line in out.splitlines() if line.startswith("Verified")]
    assert len(verified) == 1 and "onnxruntime-web" not in verified[0]
    assert "Not verified: onnxruntime-web (skipped" in out
    assert "Node.js" not in out.splitlines()[-1]  # the versions line names no Node.js


def test_a_failing_node_process_is_an_error_not_a_skip(monkeypatch, tmp_path):
    (tmp_path / "run_models.mjs").write_text("process.exit(3)", encoding="utf-8")
    (tmp_path / "node_modules/onnxruntime-web").mkdir(parents=True)
    monkeypatch.setattr(lesson, "JS_FOLDER", tmp_path)
    if shutil.which("node") is None:
        pytest.skip("needs Node.js")
    with pytest.raises(lesson.Failure, match=r"run_models\.mjs failed"):
        lesson.run_javascript(tmp_path, [])


# --- tract ---------------------------------------------------------------------------------------
# tract has no wheel for Linux aarch64 or Windows on Arm (requirements.txt): there the lesson skips
# it, and so do these tests.
NEEDS_TRACT = pytest.mark.skipif(lesson.tract is None, reason="tract is not installed here")


@pytest.fixture(scope="module")
def tract_outcomes(written) -> dict[str, tuple[str, str]]:
    if lesson.tract is None:
        pytest.skip("tract is not installed here")
    folder, cases = written
    return {name: lesson.run_tract(folder / f"{name}.onnx", case) for name, case in cases.items()}


def test_tract_matches_on_the_standard_operator_files(tract_outcomes):
    for name in lesson.STANDARD_MODELS:
        assert tract_outcomes[name][0] == "matches", tract_outcomes[name]


def test_tract_refuses_model_local_functions_and_ai_onnx_ml(tract_outcomes):
    assert tract_outcomes["mlp_functions"][0] == "refused"
    assert "Unimplemented(DenseRelu)" in tract_outcomes["mlp_functions"][1]
    # skl2onnx's unnamed batch dimension first, then, given input facts, the operators.
    assert tract_outcomes["ml_pipeline"] == (
        "refused",
        'with input facts: Translating node #1 "Imputer" Unimplemented(Imputer) '
        "ToTypedTranslator Caused by: Operator can not be made a TypedOp.",
    )
    assert "Unimplemented(OneHotEncoder)" in tract_outcomes["strings"][1]


@NEEDS_TRACT
def test_tract_needs_input_facts_for_an_unnamed_dimension(written):
    folder, cases = written
    with pytest.raises(lesson.tract.TractError, match="without a determined fact"):
        lesson.tract_outputs(folder / "ml_pipeline.onnx", cases["ml_pipeline"].inputs, facts=False)


def test_tract_gives_a_wrong_answer_without_an_error_on_the_qdq_file(written, tract_outcomes):
    folder, cases = written
    assert tract_outcomes["qdq_int8"][0] == "wrong"
    label, probabilities = lesson.tract_outputs(
        folder / "qdq_int8.onnx", cases["qdq_int8"].inputs, facts=False
    )
    np.testing.assert_array_equal(probabilities, np.ones_like(probabilities))  # every one 1.0
    np.testing.assert_array_equal(label, np.zeros_like(label))
    assert not np.array_equal(label, cases["qdq_int8"].outputs["label"])
    # The same file with a concrete input shape fails loudly instead.
    with pytest.raises(lesson.tract.TractError, match="Impossible to unify"):
        lesson.tract_outputs(folder / "qdq_int8.onnx", cases["qdq_int8"].inputs, facts=True)


def test_verify_tract_fails_when_a_standard_file_does_not_match(capsys):
    outcomes = {name: ("matches", "") for name in lesson.STANDARD_MODELS}
    lesson.verify_tract(outcomes)
    outcomes["mlp_external"] = ("wrong", "first row: ...")
    with pytest.raises(AssertionError, match="mlp_external"):
        lesson.verify_tract(outcomes)
    assert "mlp_external   wrong: first row: ...  <- NO ERROR" in capsys.readouterr().out


def test_tract_reason_is_one_line_without_the_backtrace():
    error = Exception('Translating node #3 "H0"\n\nCaused by:\n    one\n\nStack backtrace:\n 0: x')
    assert lesson.tract_reason(error) == 'Translating node #3 "H0" Caused by: one'


# --- compare, and the command line -------------------------------------------------------------


def test_compare_checks_nan_places_shapes_and_the_tolerance():
    expected = np.array([1.0, np.nan], np.float32)
    assert lesson.compare("x", np.array([1.0 + 1e-6, np.nan]), expected, 1e-5) == pytest.approx(
        1e-6, rel=0.01
    )
    for wrong in ([1.0, 2.0], [1.1, np.nan], [1.0]):
        with pytest.raises(AssertionError):
            lesson.compare("x", np.array(wrong, np.float32), expected, 1e-5)
    with pytest.raises(AssertionError):
        lesson.compare("labels", np.array([1, 2]), np.array([1, 3]), 1.0)


def test_help_returns_0(capsys):
    assert lesson.main(["--help"]) == 0
    assert "onnxruntime-web" in capsys.readouterr().out


def test_a_bad_seed_is_a_usage_error_on_one_line(capsys):
    assert lesson.main(["--seed", "-1"]) == 2
    assert len(capsys.readouterr().err.splitlines()) == 1


def test_an_output_folder_that_is_a_file_returns_1(tmp_path, capsys):
    (tmp_path / "file").write_text("", encoding="utf-8")
    assert lesson.main(["--output-dir", str(tmp_path / "file")]) == 1
    assert capsys.readouterr().err.startswith("error: cannot create files in the output folder")


def test_a_model_that_fails_verification_is_not_published(written, monkeypatch, tmp_path, capsys):
    folder, _ = written
    shutil.copy(folder / "linear.onnx", tmp_path / "linear.onnx")
    before = (tmp_path / "linear.onnx").read_bytes()
    real = lesson.reference  # the reference moves by 1e-3 everywhere: more than the tolerance
    monkeypatch.setattr(
        lesson, "reference", lambda m, f: {k: v + 1e-3 for k, v in real(m, f).items()}
    )
    assert lesson.main(["--output-dir", str(tmp_path)]) == 1
    assert "verification failed: linear.Y" in capsys.readouterr().err
    assert (tmp_path / "linear.onnx").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["linear.onnx"]  # no draft, no JSON


# --- tools/oldest_onnxruntime.py, offline: its probe in this Python, and its table --------------


def load_tool() -> Any:
    """tools/oldest_onnxruntime.py as a module (tools/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("oldest", ROOT / "tools/oldest_onnxruntime.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_oldest_onnxruntime_probe_loads_and_runs_every_file_here(written, monkeypatch):
    folder, cases = written
    tool = load_tool()
    monkeypatch.setattr("sys.argv", ["probe", str(folder)])
    with contextlib.redirect_stdout(io.StringIO()) as out:
        exec(tool.PROBE, {"__name__": "probe"})
    answer = json.loads(out.getvalue())
    assert answer["onnxruntime"] == lesson.ort.__version__
    assert sorted(answer["results"]) == sorted(f"{name}.onnx" for name in cases)
    assert all(r["loads"] and r["difference"] <= 1 / 255 for r in answer["results"].values())


def test_the_oldest_onnxruntime_table_counts_and_names_the_reasons():
    tool = load_tool()
    error = "Current official support for domain ai.onnx is till opset 21."
    measured = {
        "1.20.1": {"note": "", "results": {"a.onnx": {"loads": False, "error": error}}},
        "1.21.0": {"note": "", "results": {"a.onnx": {"loads": True, "difference": 0.0}}},
        "9.9.9": {"error": "does not install here: no matching distribution"},
    }
    lines = tool.table(measured).splitlines()
    assert lines[2] == f"| 1.20.1 | 0 of 1 | 0 of 0 | `{error}` |"
    assert lines[3] == "| 1.21.0 | 1 of 1 | 1 of 1 | none fail |"
    assert lines[4].startswith("| 9.9.9 | - | - | does not install here")
