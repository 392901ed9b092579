"""Run each script as a reader would: a fresh process, from a temporary working directory.

These tests check what only a process shows: exit statuses, what reaches stdout and stderr, the
files left in the output folder, Ctrl-C, a closed pipe, a terminal that cannot print every
character, and byte-identical files whatever Python's string hashing seed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import onnx
import pytest
from conftest import LESSON_CASES as CASES
from conftest import ROOT, run_lesson

SCRIPTS = sorted({script for script, _, _ in CASES.values()})
POSIX_SIGNALS = pytest.mark.skipif(
    sys.platform == "win32", reason="SIGINT cannot be sent to a child process this way on Windows"
)


@pytest.mark.parametrize("case_id", CASES)
def test_script_runs_from_another_directory(case_id, lesson_runs):
    _, _, written = CASES[case_id]
    result, out = lesson_runs[case_id][0]
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "Verified" in result.stdout and "Versions:" in result.stdout
    for name in written:
        # The report names each file as the operating system writes its path (models\name on
        # Windows), in the folder the reader ran it from: models/ by default.
        assert str(Path("models") / name) in result.stdout
        onnx.checker.check_model(str(out / name), full_check=True)
    # Only the models: no temporary file left behind by the atomic writes.
    assert sorted(p.name for p in out.iterdir()) == sorted(written)


@pytest.mark.parametrize("case_id", CASES)
def test_an_ascii_terminal_gets_the_same_report_with_escapes(case_id, lesson_runs):
    (utf8, _), (ascii_only, _) = lesson_runs[case_id]
    assert ascii_only.returncode == 0 and ascii_only.stderr == "", ascii_only.stderr
    assert ascii_only.stdout.isascii() and "Verified" in ascii_only.stdout
    assert ascii_only.stdout.count("\n") == utf8.stdout.count("\n")


@pytest.mark.parametrize("case_id", CASES)
def test_same_arguments_write_byte_identical_files_whatever_the_hash_seed(case_id, lesson_runs):
    _, _, written = CASES[case_id]
    (first, first_out), (second, second_out) = lesson_runs[case_id]
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    for name in written:
        assert (first_out / name).read_bytes() == (second_out / name).read_bytes(), name


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory) -> dict:
    """Run every script with a bad seed, and into a closed pipe.

    These runs stop before any lesson work, so they cost Python's start and the imports; they
    run side by side to keep the suite quick. (`--help` and a file as the output folder are
    checked in each lesson's own test file, in process: the same main(), without the start-up.)
    """
    commands = {}
    for script in SCRIPTS:
        cwd = tmp_path_factory.mktemp(script.removesuffix(".py"))
        commands[("usage", script)] = (script, ["--seed", str(2**32)], cwd)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {
            key: pool.submit(lambda command=command: (run_lesson(*command), command[2]))
            for key, command in commands.items()
        }
        if sys.platform != "win32":
            for script in SCRIPTS:
                cwd = tmp_path_factory.mktemp("pipe-" + script.removesuffix(".py"))
                futures[("pipe", script)] = pool.submit(run_into_a_closed_pipe, script, cwd)
    return {key: future.result() for key, future in futures.items()}


def run_into_a_closed_pipe(script: str, cwd: Path) -> tuple[int, bytes]:
    """Run a script whose reader is gone before it prints, as `python SCRIPT.py | true` does."""
    # Unbuffered, the script's first line meets the closed pipe at once, not at the end.
    process = subprocess.Popen(
        [sys.executable, str(ROOT / script)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    stderr = process.stderr.read()
    return process.wait(timeout=120), stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_usage_error_is_one_line_and_exit_2(script, quick_runs):
    # One seed past the shared range (the in-process tests try the other bad values).
    result, cwd = quick_runs[("usage", script)]
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"{script}: error: argument --seed")
    assert not (cwd / "models").exists()


def test_a_japanese_windows_encoding_works(tmp_path):
    # cp932 is what a Japanese Windows machine uses for redirected output; it has no "·", which
    # linear_regression.py prints first (tests/test_neural_network.py tries its "µ").
    result = run_lesson("linear_regression.py", [], cwd=tmp_path, PYTHONIOENCODING="cp932")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "Verified" in result.stdout


@POSIX_SIGNALS
@pytest.mark.parametrize("script", SCRIPTS)
def test_closed_pipe_exits_141_quietly(script, quick_runs):
    returncode, stderr = quick_runs[("pipe", script)]
    assert returncode == 141
    assert stderr == b""


# A driver that runs a script as `python SCRIPT.py` but pauses it at a chosen moment, so that the
# test can press Ctrl-C there: while the libraries import, while a model file is being written, and
# while ONNX Runtime runs.
INTERRUPT_DRIVER = """
import builtins, os, runpy, sys, time

def pause(*args, **kwargs):
    print("PAUSED", flush=True)
    # Short sleeps: Ctrl-C may land on one of ONNX Runtime's or BLAS's threads, and Python then
    # raises KeyboardInterrupt in the main thread at its next step, not inside one long sleep.
    for _ in range(600):
        time.sleep(0.1)

moment = sys.argv.pop(1)
if moment == "import":
    real_import = builtins.__import__

    def slow_import(name, *args, **kwargs):
        if name == "numpy":
            builtins.__import__ = real_import
            pause()
        return real_import(name, *args, **kwargs)

    builtins.__import__ = slow_import
elif moment == "save":
    os.fsync = pause
elif moment == "run":
    import onnxruntime
    onnxruntime.InferenceSession.run = pause
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def interrupt_every_script(moment: str, folder: Path) -> dict:
    """Start every script paused at the moment, press Ctrl-C in each; return what each left."""
    processes = {}
    for script in SCRIPTS:
        cwd = folder / script.removesuffix(".py")
        cwd.mkdir()
        argv = [sys.executable, "-c", INTERRUPT_DRIVER, moment, str(ROOT / script)]
        processes[script] = subprocess.Popen(
            [*argv, "--output-dir", "out"],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    results = {}
    for script, process in processes.items():
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("PAUSED"):
                break
        process.send_signal(signal.SIGINT)
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # fail this script's test only, and say why
            process.kill()
            stdout, stderr = process.communicate()
            stderr += "(still running 60 s after Ctrl-C: killed)\n"
        out = folder / script.removesuffix(".py") / "out"
        left = sorted(p.name for p in out.iterdir()) if out.exists() else []
        results[script] = ("".join(lines) + stdout, stderr, process.returncode, left)
    return results


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> dict:
    """Every script interrupted at every moment: the five scripts of a moment run side by side."""
    return {
        moment: interrupt_every_script(moment, tmp_path_factory.mktemp(moment))
        for moment in ("import", "save", "run")
    }


@POSIX_SIGNALS
@pytest.mark.parametrize("moment", ["import", "save", "run"])
@pytest.mark.parametrize("script", SCRIPTS)
def test_ctrl_c_exits_130_with_one_line_and_no_file(script, moment, interrupted):
    stdout, stderr, returncode, left = interrupted[moment][script]
    assert "PAUSED" in stdout, f"the script never reached the moment: {stdout}{stderr}"
    assert returncode == 130
    assert stderr == "error: interrupted\n"
    assert "Verified" not in stdout
    assert not [name for name in left if name.endswith(".tmp")], left
    if moment != "run":
        assert not [name for name in left if name.endswith(".onnx")], left
