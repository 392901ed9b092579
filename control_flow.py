# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "flatbuffers==25.12.19",
#     "ml_dtypes==0.6.0",
#     "numpy==2.4.6",
#     "onnx==1.23.2",
#     "onnx-ir==0.1.16",
#     "onnxruntime==1.32.0",
#     "onnxscript==0.7.2",
#     "packaging==26.4",
#     "protobuf==7.36.2",
#     "typing_extensions==4.16.0",
# ]
# ///
"""Control flow in ONNX: If, Scan and Loop, each written three ways and checked.

A control-flow node carries graphs as attributes (subgraphs). A subgraph reads any value of the
graphs around it by name (outer scope) and returns only values that its own nodes make:

    X ─ Abs ─ ReduceMax ─> M ─ Greater(M, 1) ─> If ─ then: Div(X, M)    (scale to max |x| = 1)
                                                    └ else: Identity(X)  (small already: keep)
    S0, SEQ ─ Scan(body: s' = ALPHA·x_t + (1 - ALPHA)·s) ─> LAST, STATES (EMA over the rows)
    A, MAX_STEPS ─ Loop(body: x' = (x + A/x) / 2, go on while |x' - x| / x' > TOL) ─> ROOT, STEPS

1. Build it with ``onnx.helper``, with ONNX's text syntax (``onnx.parser``) and with onnxscript.
2. Publish each file: save, check, load back, verify in ONNX Runtime and the reference evaluator
   against NumPy and Python loops, on inputs that take both branches and stop the Loop by its
   condition and by its trip count. A mismatch exits 1.
3. Pitfalls, in memory only, each with its real message.

Run ``python control_flow.py [--rows 100 --max-steps 8]``: it prints the text forms, each case,
the largest differences, the files written, the pitfalls' messages and the versions.
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
import platform
import secrets
import tempfile
import threading
import typing
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import onnxscript
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from onnxscript import BOOL, FLOAT, INT64, graph, script
from onnxscript import opset22 as op

OPSET = 22  # what onnx 1.17 writes; onnxruntime 1.21 and later load it (README)
IR_VERSION = 10
PRODUCER = "onnx-by-example/control_flow.py"
INPUTS = ("X", "S0", "SEQ", "A", "MAX_STEPS")  # the graph's inputs, in order
OUTPUTS = ("SCALED", "LAST", "STATES", "ROOT", "STEPS")  # the graph's outputs, in order
ALPHA, KEEP = 0.25, 0.75  # the moving average's weights of each new row and of the state
TOLERANCE = 1e-5  # Newton's method stops once a step changes the root by this fraction or less
FEATURES, ROOTS, TRIP_LIMIT = 3, 4, 3  # Scan columns; roots Loop finds; a trip count too short
Case = tuple[dict[str, np.ndarray], dict[str, np.ndarray]]  # an input case: (inputs, expected)
CPU = ["CPUExecutionProvider"]  # ONNX Runtime on the CPU, always
RTOL = 1e-6  # each runtime against NumPy: the same float32 operations, so within one rounding
# onnxscript reads a parameter's annotation as its ONNX type: FLOAT["N"] is float[N].
FLOAT_N, FLOAT_F, FLOAT_K, FLOAT_T_F = FLOAT["N"], FLOAT["F"], FLOAT["K"], FLOAT["T", "F"]  # type: ignore[misc]


def lesson(args: argparse.Namespace) -> None:
    """Build the graph three ways, publish each verified, show the pitfalls."""
    print(f"1. Build If, Scan and Loop three ways (opset {OPSET}, IR version {IR_VERSION})")
    models = {
        "helper": build_with_helper(),
        "text": build_with_text(),
        "onnxscript": build_with_onnxscript(),
    }
    show_text_forms(models)
    cases = make_cases(args.seed, args.rows, args.max_steps)
    print(f"2. Publish and verify, {len(cases)} input cases against NumPy and Python loops")
    for case, (feeds, expected) in cases.items():
        print(f"   {case:<12} {describe_case(feeds, expected)}")
    outputs = {}
    for way, model in models.items():
        path = args.output_dir / f"control_flow_{way}.onnx"
        with publish(path) as draft:
            onnx.save_model(model, draft)
            onnx.checker.check_model(draft, full_check=True)  # also infers every subgraph's types
            outputs[way], worst = verify(load_session(draft), ReferenceEvaluator(str(draft)), cases)
        print(
            f"   wrote {path} ({path.stat().st_size} bytes); "
            f"relative difference {worst:.1e} <= {RTOL:g}"
        )
    for way in ("text", "onnxscript"):  # the three files compute the same numbers, bit for bit
        for case, name in ((case, name) for case in cases for name in OUTPUTS):
            np.testing.assert_array_equal(outputs[way][case][name], outputs["helper"][case][name])
    print("3. Pitfalls (models kept in memory, never written)")
    show_pitfalls()
    print("Verified: the 3 ways agree bit for bit and with NumPy and Python loops in both runtimes")
    print(
        f"Versions: Python {platform.python_version()}, numpy {np.__version__}, "
        f"onnx {onnx.__version__}, onnxruntime {ort.__version__}, "
        f"onnxscript {onnxscript.__version__}"
    )


# --- 1. Build the same graph three ways ----------------------------------------------------------
def build_with_helper() -> onnx.ModelProto:
    """Build the graph with onnx.helper: each subgraph is a GraphProto passed as an attribute."""
    f, i64, b, value = (
        TensorProto.FLOAT,
        TensorProto.INT64,
        TensorProto.BOOL,
        helper.make_tensor_value_info,
    )
    # The branches of If take no inputs: they read X and M from the outer graph by name. Their
    # outputs must be made by their own nodes, so keeping X unchanged takes an Identity.
    scale = helper.make_graph(
        [helper.make_node("Div", ["X", "M"], ["x_scaled"])],
        "scale",
        [],
        [value("x_scaled", f, ["N"])],
    )
    keep = helper.make_graph(
        [helper.make_node("Identity", ["X"], ["x_kept"])], "keep", [], [value("x_kept", f, ["N"])]
    )
    # Scan's body: the state variables first (s), then one row of each scanned input (x_t);
    # it returns the new states, then the scan outputs that Scan stacks into STATES.
    ema = helper.make_graph(
        [
            helper.make_node("Mul", ["ALPHA", "x_t"], ["new_part"]),  # ALPHA: an outer initializer
            helper.make_node("Mul", ["KEEP", "s"], ["old_part"]),
            helper.make_node("Add", ["new_part", "old_part"], ["s_next"]),
            helper.make_node("Identity", ["s_next"], ["s_row"]),
        ],
        "ema",
        [value("s", f, ["F"]), value("x_t", f, ["F"])],
        [value("s_next", f, ["F"]), value("s_row", f, ["F"])],
    )
    # Loop's body: (iteration number, condition, carried values...) in, (condition, carried
    # values..., scan outputs...) out. Here the carried values are the root x and the count n.
    newton = helper.make_graph(
        [
            helper.make_node("Div", ["A", "x"], ["quotient"]),
            helper.make_node("Add", ["x", "quotient"], ["total"]),
            helper.make_node("Mul", ["HALF", "total"], ["x_next"]),
            helper.make_node("Sub", ["x_next", "x"], ["change"]),
            helper.make_node("Abs", ["change"], ["size"]),
            helper.make_node("Div", ["size", "x_next"], ["relative"]),
            helper.make_node("ReduceMax", ["relative"], ["step"], keepdims=0),
            helper.make_node("Greater", ["step", "TOL"], ["go_next"]),
            helper.make_node("Add", ["i", "ONE_STEP"], ["n_next"]),  # i counts from 0
        ],
        "newton",
        [value("i", i64, []), value("go", b, []), value("x", f, ["K"]), value("n", i64, [])],
        [value("go_next", b, []), value("x_next", f, ["K"]), value("n_next", i64, [])],
    )
    nodes = [
        helper.make_node("Abs", ["X"], ["AX"]),
        helper.make_node("ReduceMax", ["AX"], ["M"], keepdims=0),
        helper.make_node("Greater", ["M", "ONE"], ["LARGE"]),
        helper.make_node("If", ["LARGE"], ["SCALED"], then_branch=scale, else_branch=keep),
        helper.make_node("Scan", ["S0", "SEQ"], ["LAST", "STATES"], body=ema, num_scan_inputs=1),
        # Inputs: the trip count M, the first condition, then the carried values' first values.
        helper.make_node(
            "Loop", ["MAX_STEPS", "TRUE", "A", "ZERO"], ["ROOT", "STEPS"], body=newton
        ),
    ]
    constants = {
        "ONE": np.float32(1),
        "ALPHA": np.float32(ALPHA),
        "KEEP": np.float32(KEEP),
        "HALF": np.float32(0.5),
        "TOL": np.float32(TOLERANCE),
        "TRUE": np.bool_(True),
        "ZERO": np.int64(0),
        "ONE_STEP": np.int64(1),
    }
    main = helper.make_graph(
        nodes,
        "control_flow",
        [
            value("X", f, ["N"]),
            value("S0", f, ["F"]),
            value("SEQ", f, ["T", "F"]),
            value("A", f, ["K"]),
            value("MAX_STEPS", i64, []),
        ],
        [
            value("SCALED", f, ["N"]),
            value("LAST", f, ["F"]),
            value("STATES", f, ["T", "F"]),
            value("ROOT", f, ["K"]),
            value("STEPS", i64, []),
        ],
        initializer=[numpy_helper.from_array(np.array(v), name=k) for k, v in constants.items()],
    )
    return helper.make_model(
        main,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER,
    )


# The same graph in ONNX's text syntax (what onnx.printer writes): a subgraph is written inline,
# name (inputs) => (outputs) { nodes }, with attributes in the order make_node stores them.
TEXT_MODEL = f"""
<ir_version: {IR_VERSION}, opset_import: ["" : {OPSET}], producer_name: "{PRODUCER}">
control_flow (float[N] X, float[F] S0, float[T,F] SEQ, float[K] A, int64 MAX_STEPS)
    => (float[N] SCALED, float[F] LAST, float[T,F] STATES, float[K] ROOT, int64 STEPS)
  <float ONE = {{1.0}}, float ALPHA = {{{ALPHA}}}, float KEEP = {{{KEEP}}}, float HALF = {{0.5}},
   float TOL = {{{TOLERANCE}}}, bool TRUE = {{1}}, int64 ZERO = {{0}}, int64 ONE_STEP = {{1}}>
{{
  AX = Abs (X)
  M = ReduceMax <keepdims: int = 0> (AX)
  LARGE = Greater (M, ONE)
  SCALED = If (LARGE) <else_branch: graph = keep () => (float[N] x_kept) {{
      x_kept = Identity (X)
    }}, then_branch: graph = scale () => (float[N] x_scaled) {{
      x_scaled = Div (X, M)
    }}>
  LAST, STATES = Scan (S0, SEQ) <
    body: graph = ema (float[F] s, float[F] x_t) => (float[F] s_next, float[F] s_row) {{
      new_part = Mul (ALPHA, x_t)
      old_part = Mul (KEEP, s)
      s_next = Add (new_part, old_part)
      s_row = Identity (s_next)
    }}, num_scan_inputs: int = 1>
  ROOT, STEPS = Loop (MAX_STEPS, TRUE, A, ZERO) <body: graph = newton
    (int64 i, bool go, float[K] x, int64 n) => (bool go_next, float[K] x_next, int64 n_next) {{
      quotient = Div (A, x)
      total = Add (x, quotient)
      x_next = Mul (HALF, total)
      change = Sub (x_next, x)
      size = Abs (change)
      relative = Div (size, x_next)
      step = ReduceMax <keepdims: int = 0> (relative)
      go_next = Greater (step, TOL)
      n_next = Add (i, ONE_STEP)
    }}>
}}
"""


def build_with_text(text: str = TEXT_MODEL) -> onnx.ModelProto:
    """Parse the graph from ONNX's text syntax (one operator per node: no nested expressions)."""
    return onnx.parser.parse_model(text)


@typing.no_type_check  # onnxscript's Python is ONNX, not typed Python: mypy reads it wrongly
def build_with_onnxscript(typed: bool = True) -> onnx.ModelProto:
    """Compile the graph from Python with onnxscript; typed=False leaves out the output types."""

    @script(default_opset=op)
    def control_flow(X: FLOAT_N, S0: FLOAT_F, SEQ: FLOAT_T_F, A: FLOAT_K, MAX_STEPS: INT64):  # type: ignore[valid-type]
        m = op.ReduceMax(op.Abs(X), keepdims=0)
        # A Python `if` on a tensor becomes If; each branch becomes a subgraph, and `scaled = X`
        # gets the Identity that ONNX requires (an outer value cannot be a subgraph's output).
        if m > op.Constant(value_float=1.0):  # noqa: SIM108 (a statement, which becomes If)
            scaled = X / m
        else:
            scaled = X
        alpha, keep = op.Constant(value_float=ALPHA), op.Constant(value_float=KEEP)

        @graph()
        def ema(s: FLOAT_F, x_t: FLOAT_F):  # type: ignore[valid-type]
            s_next = alpha * x_t + keep * s  # alpha and keep: read from the outer scope
            return s_next, op.Identity(s_next)

        last, states = op.Scan(S0, SEQ, body=ema, num_scan_inputs=1)
        # op.Loop, not a Python `for` (see the pitfalls): the bytes do not depend on the process.
        # The body reads outer ONNX values (A, tolerance); a Python global in it fails to compile.
        tolerance = op.Constant(value_float=TOLERANCE)

        @graph()
        def newton(i: INT64, go: BOOL, x: FLOAT_K, n: INT64):  # type: ignore[valid-type]
            x_next = op.Constant(value_float=0.5) * (x + A / x)
            step = op.ReduceMax(op.Abs(x_next - x) / x_next, keepdims=0)
            return step > tolerance, x_next, i + 1

        first = op.Constant(value=np.array(True))
        root, steps = op.Loop(MAX_STEPS, first, A, op.Constant(value_int=0), body=newton)
        return scaled, last, states, root, steps

    # A nested @graph replaces the function's return annotation (onnxscript 0.7.2 keeps one at a
    # time), so every output would be untyped: the types are given here instead.
    options = {"output_types": [FLOAT_N, FLOAT_F, FLOAT_T_F, FLOAT_K, INT64]} if typed else {}
    return control_flow.to_model_proto(ir_version=IR_VERSION, producer_name=PRODUCER, **options)


def show_text_forms(models: dict[str, onnx.ModelProto]) -> None:
    """Print the models in the text syntax; the parsed text prints exactly as the helper's model."""
    texts = {way: onnx.printer.to_text(model).strip() for way, model in models.items()}
    if texts["text"] != texts["helper"]:
        raise AssertionError("the parsed text and the onnx.helper model print differently")
    for way, title in (
        ("helper", "onnx.helper, and onnx.parser: the same text"),
        ("onnxscript",) * 2,
    ):
        print(f"   --- {title} " + "-" * (60 - len(title)))
        print("\n".join(f"   {line.rstrip()}" for line in texts[way].splitlines()))


# --- 2. Publish and verify -----------------------------------------------------------------------
def newton_reference(a: np.ndarray, max_steps: int) -> tuple[np.ndarray, int]:
    """Newton's method in a Python loop, with Loop's rule: for (i = 0; i < M && cond; ++i)."""
    x, count, go = a.copy(), 0, True
    while go and count < max_steps:
        x_next = np.float32(0.5) * (x + a / x)
        go = bool(np.max(np.abs(x_next - x) / x_next) > np.float32(TOLERANCE))
        x, count = x_next, count + 1
    return x, count


def numpy_reference(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the graph must return, computed with NumPy and Python loops."""
    largest = np.abs(feeds["X"]).max()
    scaled = feeds["X"] / largest if largest > 1 else feeds["X"].copy()
    state, rows = feeds["S0"].copy(), []
    for row in feeds["SEQ"]:  # Scan: one body run per row, the state carried to the next
        state = np.float32(ALPHA) * row + np.float32(KEEP) * state
        rows.append(state)
    root, steps = newton_reference(feeds["A"], int(feeds["MAX_STEPS"]))
    return {
        "SCALED": scaled,
        "LAST": state,
        "STATES": np.array(rows, dtype=np.float32),
        "ROOT": root,
        "STEPS": np.array(steps, dtype=np.int64),
    }


def make_cases(seed: int, rows: int, max_steps: int) -> dict[str, Case]:
    """Seeded inputs that take each branch and stop the Loop at different counts; references."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-4.0, 4.0, size=5).astype(np.float32)
    x[0] = 4.0  # max |x| > 1: the then branch
    small = rng.uniform(0.5, 2.0, size=ROOTS).astype(np.float32)  # a few Newton steps from A
    s0 = rng.normal(size=FEATURES).astype(np.float32)
    seq = rng.normal(size=(rows, FEATURES)).astype(np.float32)  # drawn last: --rows changes it only
    trips, few = (np.array(n, dtype=np.int64) for n in (max_steps, min(TRIP_LIMIT, max_steps)))
    feeds = {  # x / 8: max |x| = 0.5, the else branch; small * 1e6: far from x = A, many steps
        "then, few": (x, s0, seq, small, trips),
        "else, many": (x / np.float32(8), -s0, seq[::-1].copy(), small * 1e6, trips),
        "trip count": (x, s0, seq, small * 1e6, few),
    }
    inputs = {
        case: dict[str, np.ndarray](zip(INPUTS, arrays, strict=True))
        for case, arrays in feeds.items()
    }
    return {case: (given, numpy_reference(given)) for case, given in inputs.items()}


def describe_case(feeds: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> str:
    """One line: the branch taken, the rows scanned, the Loop's iterations and why it stopped."""
    branch = "then (scaled)" if np.abs(feeds["X"]).max() > 1 else "else (kept)"
    steps, limit = int(expected["STEPS"]), int(feeds["MAX_STEPS"])
    stopped_short = newton_reference(feeds["A"], limit + 1)[1] > steps  # it would go on
    reason = "by its trip count" if stopped_short else "by its condition"
    return f"If: {branch}, Scan: {len(feeds['SEQ'])} rows, Loop: {steps} of {limit} steps, {reason}"


def load_session(path: Path) -> ort.InferenceSession:
    """Open a saved model file in ONNX Runtime, on the CPU."""
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def compare(name: str, actual: np.ndarray, expected: np.ndarray, rtol: float) -> float:
    """Return the largest relative difference; raise AssertionError beyond rtol (exact for ints)."""
    if (actual.shape, actual.dtype) != (expected.shape, expected.dtype):
        raise AssertionError(
            f"{name}: {actual.dtype}{actual.shape}, not {expected.dtype}{expected.shape}"
        )
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=0, err_msg=name)
    difference, scale = np.abs(actual.astype(np.float64) - expected), np.abs(expected * 1.0)
    relative = np.divide(difference, scale, out=np.zeros_like(difference), where=scale > 0)
    return float(np.max(relative, initial=0.0))  # where expected is 0, actual is 0 (atol=0)


def verify(
    session: ort.InferenceSession, reference: ReferenceEvaluator, cases: dict[str, Case]
) -> tuple[dict[str, dict[str, np.ndarray]], float]:
    """Run every case in ONNX Runtime and the reference evaluator; compare both with NumPy."""
    outputs, worst = {}, 0.0
    for case, (feeds, expected) in cases.items():
        outputs[case] = dict(zip(OUTPUTS, session.run(None, feeds), strict=True))  # by position
        evaluated = dict(zip(OUTPUTS, reference.run(None, feeds), strict=True))
        for name in OUTPUTS:
            for runtime, got in (("onnxruntime", outputs[case]), ("reference", evaluated)):
                label = f"{case}: {name} from {runtime}"
                worst = max(worst, compare(label, np.asarray(got[name]), expected[name], RTOL))
        if int(expected["STEPS"]) < int(feeds["MAX_STEPS"]):  # converged: the root is the root
            np.testing.assert_allclose(outputs[case]["ROOT"], np.sqrt(feeds["A"]), rtol=1e-5)
    return outputs, worst


# --- 3. Pitfalls: broken models stay in memory --------------------------------------------------
# Three mistakes planted in TEXT_MODEL: (what is there, what replaces it).
SINGLE_QUOTES = ('opset_import: [""', "opset_import: [''")  # onnx/onnx#4682
OUTER_VALUE = ("(float[N] x_kept) {\n      x_kept = Identity (X)\n", "(float[N] X) {\n")
MISORDERED = ("(int64 i, bool go,", "(bool go, int64 i,")  # the condition before the iteration


def messages(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, str]:
    """What the checker, ONNX Runtime and the reference evaluator say of a model."""
    attempts: dict[str, Callable[[], object]] = {
        "checker": lambda: onnx.checker.check_model(model, full_check=True),
        "onnxruntime": lambda: ort.InferenceSession(model.SerializeToString(), providers=CPU),
        "reference": lambda: ReferenceEvaluator(model).run(None, feeds),
    }
    said = {}
    for who, attempt in attempts.items():
        try:
            attempt()
        except Exception as error:  # any failure: its message is what the lesson shows
            said[who] = " ".join(str(error).split())
    return {who: said.get(who, "accepted") for who in attempts}


@typing.no_type_check
def build_for_break() -> onnx.ModelProto:
    """Newton's method as a Python `for ... if done: break`, compiled by onnxscript."""

    @script(default_opset=op)
    def newton_for(A: FLOAT_K, MAX_STEPS: INT64) -> tuple[FLOAT_K, INT64]:  # type: ignore[valid-type]
        x, n = A, op.Constant(value_int=0)
        for i in range(MAX_STEPS):
            x_next = op.Constant(value_float=0.5) * (x + A / x)
            step = op.ReduceMax(op.Abs(x_next - x) / x_next, keepdims=0)
            x = x_next
            n = i + 1
            done = step <= op.Constant(value_float=TOLERANCE)
            if done:  # onnxscript takes `if NAME: break`, as the body's last statement only
                break
        return x, n

    return newton_for.to_model_proto(ir_version=IR_VERSION, producer_name=PRODUCER)


def pitfall_for_break(a: np.ndarray, max_steps: int) -> dict[str, int]:
    """Run the `for ... break` model, whose Loop has no condition input: each one's step count."""
    model = build_for_break()
    feeds = {"A": a, "MAX_STEPS": np.array(max_steps, dtype=np.int64)}
    counts = {"spec": max_steps, "break": newton_reference(a, max_steps)[1]}
    session = ort.InferenceSession(model.SerializeToString(), providers=CPU)
    for who, run in (("onnxruntime", session.run), ("reference", ReferenceEvaluator(model).run)):
        outputs = map(np.asarray, run(None, feeds))  # (x, n) in a Python set's order: n by type
        counts[who] = int(next(r for r in outputs if r.dtype == np.int64))
    return counts


def show_pitfalls() -> None:
    """Reproduce each pitfall and print the real messages."""
    feeds, _ = make_cases(0, 4, 50)["else, many"]
    try:
        build_with_text(TEXT_MODEL.replace(*SINGLE_QUOTES))
    except onnx.parser.ParseError as error:  # bytes: the position, the context, then why
        print(f"   a. single quotes in the text syntax: {error.args[0].decode().splitlines()[-1]}")
    else:
        raise AssertionError("the parser accepted single quotes")
    outer = build_with_text(TEXT_MODEL.replace(*OUTER_VALUE))
    said, kept = messages(outer, feeds), next(iter(ReferenceEvaluator(outer).run(None, feeds)))
    print("   b. a branch that returns the outer X itself, with no Identity:")
    print(f"      checker:     {said['checker'].partition(' ==>')[0]}")
    print(f"      onnxruntime: ...{said['onnxruntime'].partition('model. ')[2]}")
    unchanged = "unchanged" if np.array_equal(kept, feeds["X"]) else "changed"
    print(f"      reference:   {said['reference']}, returns X {unchanged}")
    print("   c. a Loop body declared (bool go, int64 i, ...) instead of (int64 i, bool go, ...):")
    for who, text in messages(build_with_text(TEXT_MODEL.replace(*MISORDERED)), feeds).items():
        print(f"      {who + ':':<12} {text.rpartition('] ')[2] if who != 'reference' else text}")
    counts = pitfall_for_break(feeds["A"], 50)
    doc = onnx.defs.get_schema("Loop", OPSET).doc or ""  # the spec's line for Loop(M, "", ...)
    spec = " ".join(doc[doc.index('* input (trip_count, "")') :].split("\n\n")[0].split())
    print('   d. onnxscript\'s `for i in range(M): ... if done: break` writes Loop(M, "", ...):')
    print(f"      spec: {spec}")
    print(
        f"      steps run: spec {counts['spec']}, onnxruntime {counts['onnxruntime']} "
        f"(the break's {counts['break']}), reference {counts['reference']}"
    )
    said = messages(build_with_onnxscript(typed=False), feeds)
    print(f"   e. onnxscript, a nested @graph, no output_types: checker: {said['checker']}")
    print(
        "   f. a `for` loop's carried values come in a set's order: bytes vary with PYTHONHASHSEED"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The lesson's own flags."""
    rows = functools.partial(whole_number, low=1, high=100_000)
    steps = functools.partial(whole_number, low=0, high=10_000)
    parser.add_argument("--rows", type=rows, default=6, help="rows the Scan runs over, 1 to 100000")
    parser.add_argument(
        "--max-steps", type=steps, default=50, help="the Loop's trip count M, 0 to 10000"
    )


def usage_problem(args: argparse.Namespace) -> str | None:
    """No combination of these flags is impossible: every size above fits in memory."""
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
