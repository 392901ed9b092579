"""In-process tests of control_flow.py: If, Scan and Loop written three ways, and the pitfalls.

Each model is checked against independent references (closed forms, NumPy's sqrt, a Python loop)
with inputs that take both branches of If and stop the Loop after different numbers of
iterations, in ONNX Runtime and in the reference evaluator. The pitfalls of docs/troubleshooting.md
(entries 10 to 15) are reproduced with their real messages.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx.reference import ReferenceEvaluator

import control_flow as cf

Capture = pytest.CaptureFixture[str]
ROOT = Path(__file__).resolve().parent.parent
FILES = [f"control_flow_{way}.onnx" for way in ("helper", "text", "onnxscript")]


@pytest.fixture(scope="module")
def models() -> dict[str, onnx.ModelProto]:
    """The graph built the three ways, each checked."""
    built = {
        "helper": cf.build_with_helper(),
        "text": cf.build_with_text(),
        "onnxscript": cf.build_with_onnxscript(),
    }
    for model in built.values():
        onnx.checker.check_model(model, full_check=True)
    return built


def run_both(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """The outputs of ONNX Runtime and of the reference evaluator, by the graph's output names."""
    session = ort.InferenceSession(model.SerializeToString(), providers=cf.CPU)
    return [
        dict(zip(cf.OUTPUTS, map(np.asarray, outputs), strict=True))
        for outputs in (session.run(None, feeds), ReferenceEvaluator(model).run(None, feeds))
    ]


def feeds_for(x: list[float], roots: list[float], max_steps: int, rows: int = 3) -> dict[str, np.ndarray]:  # fmt: skip  # noqa: E501
    """Inputs for the graph: X, a small sequence, A and the trip count."""
    seq = np.arange(rows * cf.FEATURES, dtype=np.float32).reshape(rows, cf.FEATURES)
    return {"X": np.array(x, dtype=np.float32), "S0": np.zeros(cf.FEATURES, dtype=np.float32),
            "SEQ": seq, "A": np.array(roots, dtype=np.float32),
            "MAX_STEPS": np.array(max_steps, dtype=np.int64)}  # fmt: skip


# --- The models against independent references -------------------------------------------------


@pytest.mark.parametrize("way", ["helper", "text", "onnxscript"])
@pytest.mark.parametrize(
    ("x", "expected"),
    [
        ([3.0, -1.5, 0.75], [1.0, -0.5, 0.25]),  # max |x| = 3 > 1: then, divided by 3
        ([0.5, -0.25], [0.5, -0.25]),  # max |x| < 1: else, unchanged
        ([1.0, -1.0, 0.5], [1.0, -1.0, 0.5]),  # max |x| = 1 exactly: Greater is false, else
        ([-8.0, 2.0], [-1.0, 0.25]),  # the largest magnitude is negative
    ],
)
def test_if_takes_the_branch_the_data_selects(
    models: dict[str, onnx.ModelProto], way: str, x: list[float], expected: list[float]
) -> None:
    feeds = feeds_for(x, [4.0], 10)
    np.testing.assert_allclose(cf.numpy_reference(feeds)["SCALED"], expected, rtol=1e-7)
    for outputs in run_both(models[way], feeds):
        np.testing.assert_allclose(outputs["SCALED"], expected, rtol=1e-7)


@pytest.mark.parametrize("way", ["helper", "text", "onnxscript"])
def test_scan_is_the_exponential_moving_average(models: dict[str, onnx.ModelProto], way: str) -> None:  # fmt: skip  # noqa: E501
    # Constant rows c from s0 = 0: s_t = c (1 - KEEP**t), the closed form of the recurrence.
    feeds = feeds_for([0.5], [4.0], 10, rows=6)
    feeds["SEQ"] = np.full((6, cf.FEATURES), 2.0, dtype=np.float32)
    closed_form = 2.0 * (1 - cf.KEEP ** np.arange(1, 7))[:, None] * np.ones(cf.FEATURES)
    for outputs in run_both(models[way], feeds):
        np.testing.assert_allclose(outputs["STATES"], closed_form, rtol=1e-6)
        np.testing.assert_allclose(outputs["LAST"], closed_form[-1], rtol=1e-6)
        assert outputs["STATES"].shape == (6, cf.FEATURES)


@pytest.mark.parametrize("way", ["helper", "text", "onnxscript"])
@pytest.mark.parametrize(
    ("roots", "max_steps"),
    [([4.0, 2.0], 50), ([1e6, 0.25], 50), ([1e6], 3), ([9.0], 1), ([9.0], 0), ([1.0], 50)],
)
def test_loop_finds_square_roots_and_counts_its_steps(
    models: dict[str, onnx.ModelProto], way: str, roots: list[float], max_steps: int
) -> None:
    a = np.array(roots, dtype=np.float32)
    expected_root, expected_steps = cf.newton_reference(a, max_steps)
    for outputs in run_both(models[way], feeds_for([0.5], roots, max_steps)):
        assert int(outputs["STEPS"]) == expected_steps
        assert outputs["STEPS"].dtype == np.int64 and outputs["STEPS"].shape == ()
        np.testing.assert_allclose(outputs["ROOT"], expected_root, rtol=1e-6)
        if expected_steps < max_steps:  # stopped by its condition: converged
            np.testing.assert_allclose(outputs["ROOT"], np.sqrt(a), rtol=1e-5)
    if max_steps == 0:  # the trip count 0 runs no iteration: the first values come out
        assert expected_steps == 0 and np.array_equal(expected_root, a)


def test_the_python_loop_counts_like_a_hand_computation() -> None:
    # sqrt(1): x = 1 is already the root, one step confirms it; sqrt(4) from 4: 2.5, 2.05, ...
    assert cf.newton_reference(np.array([1.0], dtype=np.float32), 50)[1] == 1
    root, steps = cf.newton_reference(np.array([4.0], dtype=np.float32), 50)
    assert 3 <= steps <= 6 and abs(float(root[0]) - 2.0) < 1e-6
    assert cf.newton_reference(np.array([1e6], dtype=np.float32), 5)[1] == 5


def test_the_cases_take_both_branches_and_stop_at_different_counts() -> None:
    cases = cf.make_cases(0, 6, 50)
    branches = {case: bool(np.abs(feeds["X"]).max() > 1) for case, (feeds, _) in cases.items()}
    assert branches == {"then, few": True, "else, many": False, "trip count": True}
    steps = {case: int(expected["STEPS"]) for case, (_, expected) in cases.items()}
    assert steps["then, few"] < steps["else, many"] < 50
    assert steps["trip count"] == cf.TRIP_LIMIT
    assert cf.newton_reference(cases["trip count"][0]["A"], 50)[1] > cf.TRIP_LIMIT
    assert all(feeds["SEQ"].shape == (6, cf.FEATURES) for feeds, _ in cases.values())


def test_the_three_ways_give_identical_numbers(models: dict[str, onnx.ModelProto]) -> None:
    for feeds, expected in cf.make_cases(3, 9, 20).values():
        results = {way: run_both(model, feeds) for way, model in models.items()}
        for way in ("text", "onnxscript"):
            for mine, helpers in zip(results[way], results["helper"], strict=True):
                for name in cf.OUTPUTS:
                    np.testing.assert_array_equal(mine[name], helpers[name])
        np.testing.assert_allclose(results["helper"][0]["STATES"], expected["STATES"], rtol=1e-6)


def test_the_parsed_text_prints_as_the_helper_model(models: dict[str, onnx.ModelProto]) -> None:
    import onnx.printer

    assert onnx.printer.to_text(models["text"]) == onnx.printer.to_text(models["helper"])
    for model in models.values():
        assert model.ir_version == 10 and [(o.domain, o.version) for o in model.opset_import] == [("", 22)]  # fmt: skip  # noqa: E501
        assert [node.op_type for node in model.graph.node if node.op_type in ("If", "Scan", "Loop")] == ["If", "Scan", "Loop"]  # fmt: skip  # noqa: E501


def test_verify_raises_on_a_wrong_reference(models: dict[str, onnx.ModelProto]) -> None:
    session = ort.InferenceSession(models["helper"].SerializeToString(), providers=cf.CPU)
    reference = ReferenceEvaluator(models["helper"])
    cases = cf.make_cases(0, 4, 50)
    _, worst = cf.verify(session, reference, cases)
    assert worst < 1e-3  # within RTOL of values up to 1e3 (exact on the machines measured)
    feeds, expected = cases["else, many"]
    wrong = {**expected, "STEPS": expected["STEPS"] + 1}
    with pytest.raises(AssertionError, match="STEPS"):
        cf.verify(session, reference, {"else, many": (feeds, wrong)})
    with pytest.raises(AssertionError, match="int32"):
        cf.compare("n", np.array(1, dtype=np.int32), np.array(1, dtype=np.int64), 0.0)


def test_verify_checks_a_converged_root_against_sqrt() -> None:
    # A Newton step with 0.6 for 0.5 converges too, to sqrt(1.5 A): consistent, but not the root.
    broken = cf.build_with_text(cf.TEXT_MODEL.replace("HALF = {0.5}", "HALF = {0.6}"))
    session = ort.InferenceSession(broken.SerializeToString(), providers=cf.CPU)
    feeds, _ = cf.make_cases(0, 4, 50)["then, few"]
    itself = dict(zip(cf.OUTPUTS, map(np.asarray, session.run(None, feeds)), strict=True))
    assert int(itself["STEPS"]) < 50
    with pytest.raises(AssertionError, match="Not equal to tolerance"):
        cf.verify(session, ReferenceEvaluator(broken), {"then, few": (feeds, itself)})


# --- The pitfalls (docs/troubleshooting.md 10 to 15) --------------------------------------------


def test_10_parser_rejects_single_quotes() -> None:
    with pytest.raises(onnx.parser.ParseError) as raised:
        cf.build_with_text(cf.TEXT_MODEL.replace(*cf.SINGLE_QUOTES))
    assert raised.value.args[0].decode().endswith("String value expected, but not found.")
    cf.build_with_text(cf.TEXT_MODEL)  # the fix: double quotes


def test_11_subgraph_returning_an_outer_value() -> None:
    feeds = feeds_for([0.5, -0.25], [4.0], 10)  # max |x| < 1: the else branch
    broken = cf.build_with_text(cf.TEXT_MODEL.replace(*cf.OUTER_VALUE))
    said = cf.messages(broken, feeds)
    assert "Graph output 'X' is not an output of any node in graph" in said["checker"]
    assert "Subgraph output (X) is an outer scope value being returned directly" in said["onnxruntime"]  # fmt: skip  # noqa: E501
    assert "add an Identity node" in said["onnxruntime"]
    assert said["reference"] == "accepted"  # silently
    np.testing.assert_array_equal(
        next(iter(ReferenceEvaluator(broken).run(None, feeds))), feeds["X"]
    )
    assert set(cf.messages(cf.build_with_text(), feeds).values()) == {"accepted"}  # the fix


def test_12_loop_body_inputs_in_the_wrong_order() -> None:
    feeds = feeds_for([0.5], [1e6], 50)
    said = cf.messages(cf.build_with_text(cf.TEXT_MODEL.replace(*cf.MISORDERED)), feeds)
    assert "Inferred elem type differs from existing elem type: (7) vs (9)" in said["checker"]
    assert "Tensor element type mismatch. 7 != 9" in said["onnxruntime"]
    assert said["reference"].startswith("Input type mismatch: bool != int64")


def test_13_for_break_writes_a_loop_without_a_condition_and_the_runtimes_disagree() -> None:
    model = cf.build_for_break()
    loop = next(node for node in model.graph.node if node.op_type == "Loop")
    assert loop.input[0] != "" and loop.input[1] == ""  # Loop(M, "", ...)
    onnx.checker.check_model(model, full_check=True)  # valid ONNX: the checker cannot tell
    a = np.array([1e6, 2.0], dtype=np.float32)
    counts = cf.pitfall_for_break(a, 50)
    assert counts["onnxruntime"] == counts["break"] == cf.newton_reference(a, 50)[1] < 50
    assert counts["reference"] == 0 and counts["spec"] == 50
    doc = onnx.defs.get_schema("Loop", cf.OPSET).doc or ""
    assert 'input (trip_count, "") // Note this is analogous to a for loop' in doc
    assert "cond = ...; // ignored" in doc


def test_14_onnxscript_outputs_untyped_without_output_types() -> None:
    untyped = cf.build_with_onnxscript(typed=False)
    assert all(not output.type.HasField("tensor_type") for output in untyped.graph.output)
    said = cf.messages(untyped, feeds_for([0.5], [4.0], 10))
    assert said["checker"] == "Field 'type' of 'value_info' is required but missing."
    typed = cf.build_with_onnxscript()
    assert [o.type.tensor_type.elem_type for o in typed.graph.output] == [1, 1, 1, 1, 7]


HASHES = """
import hashlib, control_flow as cf
builds = cf.build_with_helper, cf.build_with_text, cf.build_with_onnxscript, cf.build_for_break
for build in builds:
    print(hashlib.sha256(build().SerializeToString()).hexdigest())
"""


def test_15_for_loop_bytes_depend_on_the_hash_seed_and_the_published_ones_do_not() -> None:
    # Hash seeds 0 and 2 order the two carried names {"x", "n"} differently (measured).
    runs = [
        subprocess.run(
            [sys.executable, "-c", HASHES], cwd=ROOT, capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONHASHSEED": seed}, timeout=120,
        ).stdout.split()
        for seed in ("0", "2")
    ]  # fmt: skip
    assert len(runs[0]) == 4 and runs[0][:3] == runs[1][:3]  # helper, text, op.Loop onnxscript
    assert runs[0][3] != runs[1][3]  # the Python `for`
    here = [cf.build_with_helper(), cf.build_with_text(), cf.build_with_onnxscript()]
    assert [hashlib.sha256(m.SerializeToString()).hexdigest() for m in here] == runs[0][:3]


# --- The command ---------------------------------------------------------------------------------


def test_default_run_writes_three_verified_identical_files(tmp_path: Path, capsys: Capture) -> None:  # fmt: skip  # noqa: E501
    assert cf.main(["--output-dir", str(tmp_path / "a")]) == 0
    assert cf.main(["--output-dir", str(tmp_path / "b"), "--rows", "6"]) == 0
    out = capsys.readouterr().out
    assert out.count("Verified") == 2 and "onnxscript 0.7.2" in out
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(FILES)
    for name in FILES:
        first, second = (tmp_path / "a" / name).read_bytes(), (tmp_path / "b" / name).read_bytes()
        assert first == second
        model = onnx.load_model(str(tmp_path / "a" / name))
        onnx.checker.check_model(model, full_check=True)
        feeds = feeds_for([2.0, -0.5], [1e6, 3.0], 40)
        ours, reference = run_both(model, feeds)
        for output in cf.OUTPUTS:
            np.testing.assert_array_equal(ours[output], reference[output])


def test_flags_change_the_cases(tmp_path: Path, capsys: Capture) -> None:
    cases = cf.make_cases(5, 11, 7)
    assert cases["else, many"][0]["SEQ"].shape == (11, cf.FEATURES)
    assert int(cases["else, many"][1]["STEPS"]) == 7  # 1e6-size roots need more than 7 steps
    zero = cf.make_cases(5, 11, 0)  # a trip count of 0: no iteration, the roots are A
    assert all(int(expected["STEPS"]) == 0 for _, expected in zero.values())
    assert all(np.array_equal(expected["ROOT"], feeds["A"]) for feeds, expected in zero.values())
    assert cf.main(["--output-dir", str(tmp_path), "--rows", "11", "--max-steps", "0"]) == 0


def test_help_returns_0(capsys: Capture) -> None:
    assert cf.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "--rows" in out and "--max-steps" in out and "If, Scan and Loop" in out


@pytest.mark.parametrize(
    "flags", [["--rows", "0"], ["--rows", "x"], ["--max-steps", "10001"], ["--max-steps", "-1"]]
)
def test_bad_flags_are_usage_errors(tmp_path: Path, capsys: Capture, flags: list[str]) -> None:
    assert cf.main([*flags, "--output-dir", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "(see --help)" in err
    assert not (tmp_path / "m").exists()


def test_output_dir_that_is_a_file_exits_1(tmp_path: Path, capsys: Capture) -> None:
    (tmp_path / "file").write_text("not a folder")
    assert cf.main(["--output-dir", str(tmp_path / "file")]) == 1
    assert capsys.readouterr().err.startswith("error: cannot create files in the output folder")


def test_a_mismatch_exits_1_and_keeps_the_previous_file(
    tmp_path: Path, capsys: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cf.main(["--output-dir", str(tmp_path)]) == 0
    before = {name: (tmp_path / name).read_bytes() for name in FILES}
    capsys.readouterr()
    real = cf.newton_reference
    monkeypatch.setattr(cf, "newton_reference", lambda a, m: (real(a, m)[0], real(a, m)[1] + 1))
    assert cf.main(["--output-dir", str(tmp_path), "--seed", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: verification failed:") and len(err.splitlines()) == 1
    assert {name: (tmp_path / name).read_bytes() for name in FILES} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)  # no draft left
