"""The command-line plumbing block: the same in every lesson, and right at every edge.

Every lesson ends with the same block (flags, exit statuses, signals, the output folder, publishing
a verified model), so it is tested once here, in process, through linear_regression.py, and a test
checks that every lesson carries the very same text. What only a process shows (a real Ctrl-C, a
closed pipe or stdout, a full disk, SIGTERM) is in tests/test_scripts.py.
"""

from __future__ import annotations

import ast
import contextlib
import errno
import io
import os
import signal
import sys
import threading
from pathlib import Path

import pytest
from conftest import ROOT

import linear_regression as lr

REFERENCE = ROOT / "linear_regression.py"
OTHERS = sorted(path for path in ROOT.glob("*.py") if path != REFERENCE)
BANNER = "# ==== Command-line plumbing, not about ONNX: the same block in every lesson"
START_UP = (
    "from __future__ import annotations\n",
    "            signal.signal(getattr(signal, name), stop_at_once)\n",
)


# mutmut rewrites each function of the lesson it mutates: the texts below are read unmutated only.
TEXT_OF_THE_FILES = pytest.mark.skipif(
    "MUTANT_UNDER_TEST" in os.environ, reason="mutmut rewrites the lessons' text"
)


def plumbing_block(path: Path) -> str:
    """Return a lesson's plumbing block: from its banner to the end of the file."""
    text = path.read_text(encoding="utf-8")
    assert BANNER in text, f"{path.name} has no plumbing block"
    return text[text.index(BANNER) :]


def start_up_block(path: Path) -> str:
    """Return a lesson's start-up lines: the signal handler installed before the heavy imports."""
    text = path.read_text(encoding="utf-8")
    start, end = text.index(START_UP[0]), text.index(START_UP[1]) + len(START_UP[1])
    return text[start:end]


@TEXT_OF_THE_FILES
@pytest.mark.parametrize("lesson", OTHERS, ids=[p.name for p in OTHERS])
def test_every_lesson_ends_with_the_same_plumbing_block(lesson: Path) -> None:
    assert plumbing_block(lesson) == plumbing_block(REFERENCE)
    assert start_up_block(lesson) == start_up_block(REFERENCE)


@TEXT_OF_THE_FILES
def test_the_plumbing_block_is_short_and_comes_last() -> None:
    block = plumbing_block(REFERENCE)
    assert len([line for line in block.splitlines() if line.strip()]) <= 110  # issue 17's budget
    assert block.endswith('if __name__ == "__main__":\n    sys.exit(main())\n')


# --- main() returns its status and changes nothing around it -------------------------------------


@pytest.mark.parametrize(
    ("argv", "status"), [(["--help"], 0), (["--nope"], 2), (["--seed", "-1"], 2)]
)
def test_main_returns_the_status_instead_of_exiting(
    argv: list[str], status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert lr.main(argv) == status
    captured = capsys.readouterr()
    assert (captured.out != "") == (status == 0) and (captured.err != "") == (status == 2)


def test_main_restores_the_signal_handlers_and_the_output_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def mine(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGINT, mine)
    try:
        errors = getattr(sys.stdout, "errors", None)
        assert lr.main(["--output-dir", str(tmp_path)]) == 0
        assert signal.getsignal(signal.SIGINT) is mine
        assert getattr(sys.stdout, "errors", None) == errors
        assert lr.main(["--nope"]) == 2
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, previous)


def test_main_runs_from_a_thread(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    statuses: list[int] = []
    thread = threading.Thread(
        target=lambda: statuses.append(lr.main(["--output-dir", str(tmp_path)]))
    )
    thread.start()
    thread.join(60)
    assert statuses == [0]
    assert (tmp_path / lr.MODEL_FILE).is_file()


# --- What a whole number and a folder name are ---------------------------------------------------


@pytest.mark.parametrize(
    "text", ["\u0663", "\uff11\uff12", "1_000", " 7 ", "+7", "-1", "7.0", "", "0x10"]
)
def test_a_whole_number_is_written_with_the_digits_0_to_9_only(
    text: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert lr.main(["--seed", text, "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "argument --seed: expected a whole number (digits 0-9)" in err


def test_24_digits_are_read_and_shown_and_25_are_not() -> None:
    assert lr.whole_number("0" * 23 + "7", 0, 9) == 7
    with pytest.raises(lr.argparse.ArgumentTypeError, match=r"got 0{24}\.\.\.$"):
        lr.whole_number("0" * 24 + "7", 0, 9)
    with pytest.raises(lr.argparse.ArgumentTypeError, match=r"got 'x{24}'$"):
        lr.whole_number("x" * 24, 0, 9)
    with pytest.raises(lr.argparse.ArgumentTypeError, match=r"got 'x{24}\.\.\.'$"):
        lr.whole_number("x" * 25, 0, 9)


def test_usage_problem_allows_exactly_the_largest_training_data() -> None:
    namespace = lr.argparse.Namespace
    assert lr.usage_problem(namespace(features=10, samples=lr.MAX_VALUES // 10)) is None
    assert lr.usage_problem(namespace(features=10, samples=lr.MAX_VALUES // 10 + 1)) is not None
    assert lr.usage_problem(namespace(features=20_000, samples=20_001)) is not None


def test_a_huge_number_is_not_echoed_in_full(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert lr.main(["--seed", "9" * 5000, "--output-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err) < 200 and "must be from 0 to 4294967295, got 999999999999999999999999..." in err
    assert lr.whole_number("0042", 0, 100) == 42


@pytest.mark.parametrize("name", ["", "caf\udce9"])  # empty; a byte that is not UTF-8 (Linux)
def test_an_output_folder_name_must_be_usable(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    assert lr.main(["--output-dir", name]) == 2
    assert capsys.readouterr().err == (
        "linear_regression.py: error: argument --output-dir: expected a folder name in UTF-8 "
        "(. is this folder) (see --help)\n"
    )
    assert list(tmp_path.iterdir()) == []  # not even models/ was created


# --- Publishing: only a verified file gets the model's name --------------------------------------


def test_publish_renames_the_draft_only_when_the_block_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(b"old, verified")
    with pytest.raises(AssertionError), lr.publish(path) as draft:
        draft.write_bytes(b"new, wrong")
        raise AssertionError("verification failed")
    assert path.read_bytes() == b"old, verified" and list(tmp_path.iterdir()) == [path]
    with lr.publish(path) as draft:
        assert draft.parent == tmp_path and draft.name.startswith(".model.onnx.")
        draft.write_bytes(b"new, verified")
    assert path.read_bytes() == b"new, verified" and list(tmp_path.iterdir()) == [path]


def test_two_drafts_of_one_file_never_share_a_name(tmp_path: Path) -> None:
    with lr.publish(tmp_path / "m.onnx") as first, lr.publish(tmp_path / "m.onnx") as second:
        assert first != second
        first.write_bytes(b"1")
        second.write_bytes(b"2")
    assert (tmp_path / "m.onnx").read_bytes() == b"1"  # the outer block finished last


# --- One line and the right status for every failure ---------------------------------------------


@pytest.mark.parametrize(
    ("error", "stopped", "status", "line"),
    [
        (KeyboardInterrupt(), [], 130, "error: interrupted\n"),
        (KeyboardInterrupt(), [signal.SIGTERM], 128 + signal.SIGTERM, "error: terminated\n"),
        (ImportError("initialization failed"), [signal.SIGINT], 130, "error: interrupted\n"),
        (BrokenPipeError(errno.EPIPE, "Broken pipe"), [], 141, ""),
        (AssertionError("a\n b"), [], 1, "error: verification failed: a b\n"),
        (
            OSError(errno.ENOSPC, "No space left on device"),
            [],
            1,
            "error: No space left on device\n",
        ),
        (lr.Failure("it broke"), [], 1, "error: it broke\n"),
        (ValueError(), [], 1, "error: ValueError\n"),
        (ValueError("MAX"), [], 1, "error: ValueError: MAX\n"),
        (lr.Failure(""), [], 1, "error: failed\n"),
        (OSError(errno.ENOSPC, "No space", "/x"), [], 1, "error: No space: /x\n"),
        (lr.Failure("x" * 500), [], 1, "error: " + "x" * 400 + "\n"),
    ],
)
def test_report_prints_one_line_and_returns_the_status(
    error: BaseException,
    stopped: list[int],
    status: int,
    line: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lr, "STOPPED", list(stopped))
    assert lr.report(error) == status
    assert capsys.readouterr().err == line


def test_a_folder_that_cannot_take_files_is_named_with_the_systems_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def read_only(**kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(lr.tempfile, "TemporaryFile", read_only)
    with pytest.raises(lr.Failure, match=r"folder .* \(Read-only file system\)$"):
        lr.prepare_output_dir(tmp_path)


def test_a_second_signal_while_the_first_is_handled_raises_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lr, "STOPPED", [])
    with pytest.raises(KeyboardInterrupt):
        lr.stop(signal.SIGINT, None)
    lr.stop(signal.SIGINT, None)  # the second one is remembered, not raised
    assert lr.STOPPED == [signal.SIGINT, signal.SIGINT]


def test_a_signal_that_a_library_swallowed_still_stops_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_verify = lr.verify

    def verify_then_swallow_a_ctrl_c(*args: object, **kwargs: object) -> None:
        real_verify(*args, **kwargs)  # type: ignore[arg-type]
        with contextlib.suppress(KeyboardInterrupt):  # what a careless library does
            lr.stop(signal.SIGINT, None)

    monkeypatch.setattr(lr, "verify", verify_then_swallow_a_ctrl_c)
    assert lr.main(["--output-dir", str(tmp_path)]) == 130
    assert capsys.readouterr().err == "error: interrupted\n"


def test_closed_stdout_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys, "stdout", None)
    assert lr.main(["--output-dir", str(tmp_path)]) == 1
    assert capsys.readouterr().err == "error: standard output is closed\n"
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_under_stdout_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    class Full(io.RawIOBase):
        full = True  # until os.dup2 points the descriptor at os.devnull

        def writable(self) -> bool:
            return True

        def write(self, data: object) -> int:
            if self.full:
                raise OSError(errno.ENOSPC, "No space left on device")
            return len(memoryview(data))  # type: ignore[arg-type]

        def fileno(self) -> int:
            return 1

    real_dup2 = os.dup2

    def dup2(source: int, target: int) -> None:  # what os.dup2(os.open(os.devnull), 1) does
        if target != 1:  # pytest's own capturing of the other descriptors
            real_dup2(source, target)
            return
        if not (isinstance(source, int) and source > 2):
            raise AssertionError(f"os.dup2({source!r}, {target!r})")
        device.full = False

    for argv in (["--output-dir", str(tmp_path)], ["--help"]):  # the report, and --help's text
        device = Full()
        monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(io.BufferedWriter(device), "utf-8"))
        monkeypatch.setattr(os, "dup2", dup2)
        assert lr.main(argv) == 1
        assert capsys.readouterr().err == "error: No space left on device\n"
        assert not device.full  # stdout was pointed elsewhere, so Python's exit finds it writable


def test_the_help_is_the_docstrings_first_line_and_ends_with_one_newline(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert lr.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: linear_regression.py [-h]")  # argparse's own usage line
    assert out.endswith("\n") and not out.endswith("\n\n")
    assert (lr.__doc__ or "").partition("\n")[0] in out and "The lifecycle" not in out
    monkeypatch.setattr(lr, "__doc__", None)  # python -OO drops docstrings
    assert lr.main(["--help"]) == 0
    assert "options:" in (out := capsys.readouterr().out) and "XX" not in out


def test_main_handles_sigint_sigterm_and_sighup_while_the_lesson_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, object] = {}
    names = [name for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)]

    def record(args: object) -> None:
        seen.update({name: signal.getsignal(getattr(signal, name)) for name in names})

    monkeypatch.setattr(lr, "lesson", record)
    assert lr.main(["--output-dir", str(tmp_path)]) == 0
    assert seen == dict.fromkeys(names, lr.stop)


def test_an_output_without_errors_or_with_errors_none_is_left_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Plain:  # a minimal stream: write and flush, no encoding settings at all
        def __init__(self) -> None:
            self.text: list[str] = []
            self.reconfigured: list[object] = []

        def write(self, text: str) -> int:
            self.text.append(text)
            return len(text)

        def flush(self) -> None:
            pass

    plain = Plain()
    monkeypatch.setattr(sys, "stdout", plain)
    monkeypatch.setattr(lr, "lesson", lambda args: print("ran"))
    assert lr.main(["--output-dir", str(tmp_path)]) == 0 and plain.text[0] == "ran"

    class Settable(Plain):
        errors = None

        def reconfigure(self, **settings: object) -> None:
            self.reconfigured.append(settings)

    settable = Settable()
    monkeypatch.setattr(sys, "stdout", settable)
    assert lr.main(["--output-dir", str(tmp_path)]) == 0
    assert settable.reconfigured == [{"errors": "backslashreplace"}]  # not put back to None


# --- The lesson-shape budgets (shared/STYLE.md, issue 17) -----------------------------------------
LIBRARIES = {"onnx", "ort", "onnxruntime", "onnxscript", "skl2onnx", "helper", "numpy_helper"}
LESSONS = sorted(ROOT.glob("*.py"))


def first_library_call(tree: ast.Module) -> int:
    """The line of the first call into onnx, onnxruntime, skl2onnx or onnxscript."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            root = node.func
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in LIBRARIES | {"to_onnx"}:
                lines.append(node.lineno)
    return min(lines)


@TEXT_OF_THE_FILES
@pytest.mark.parametrize("lesson", LESSONS, ids=[p.name for p in LESSONS])
def test_each_lesson_meets_the_budgets(lesson: Path) -> None:
    # Lines are counted without blank ones, as issue 17 measured them: ruff's two blank lines
    # between top-level functions would otherwise count against the lessons with many steps.
    text = lesson.read_text(encoding="utf-8")
    assert len([line for line in text.splitlines() if line.strip()]) <= 600
    tree = ast.parse(text)
    assert first_library_call(tree) <= 120
    (main,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main"]
    assert main.end_lineno is not None and main.end_lineno - main.lineno + 1 <= 40
    # The lesson comes first: its table of contents, lesson(), is defined before any step.
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert functions[0] == "lesson", functions[:3]
