"""Run each script as a reader would: a fresh process, from a temporary working directory.

These tests check what only a process shows: exit statuses, what reaches stdout and stderr, the
files left in the output folder, Ctrl-C, a closed pipe, a terminal that cannot print every
character, and byte-identical files whatever Python's string hashing seed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import onnx
import pytest
from conftest import BACKGROUND, ROOT, background_result, run_lesson
from conftest import LESSON_CASES as CASES

SCRIPTS = sorted({script for script, _, _ in CASES.values()})
# A closed pipe and a usage error are the plumbing block's to handle (the same in every lesson, and
# each lesson's own flags are tried in process by its test file): three lessons stand for all.
PIPE_SCRIPTS = ["linear_regression.py", "neural_network.py", "sklearn_converter.py"]
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
        if name.endswith(".onnx"):  # a .data file holds a model's weights, not a model
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


def quick_runs_in(folder: Path) -> dict:
    """Run a few scripts with a bad seed, and into a closed pipe.

    These runs stop before any lesson work, so they cost Python's start and the imports; they
    run side by side to keep the suite quick. (`--help` and a file as the output folder are
    checked in each lesson's own test file, in process: the same main(), without the start-up.)
    """
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {}
        for script in PIPE_SCRIPTS:
            cwd = folder / script.removesuffix(".py")
            cwd.mkdir()
            command = (script, ["--seed", str(2**32)], cwd)
            futures[("usage", script)] = pool.submit(lambda c=command: (run_lesson(*c), c[2]))
            if sys.platform != "win32":
                (folder / f"pipe-{script}").mkdir()
                futures[("pipe", script)] = pool.submit(
                    run_into_a_closed_pipe, script, folder / f"pipe-{script}"
                )
        return {key: future.result() for key, future in futures.items()}


BACKGROUND["quick_runs"] = quick_runs_in


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory) -> dict:
    """The usage and closed-pipe runs, started in the background at collection (conftest)."""
    return background_result("quick_runs", tmp_path_factory)


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


@pytest.mark.parametrize("script", PIPE_SCRIPTS)
def test_script_usage_error_is_one_line_and_exit_2(script, quick_runs):
    # One seed past the shared range (the in-process tests try the other bad values).
    result, cwd = quick_runs[("usage", script)]
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"{script}: error: argument --seed")
    assert not (cwd / "models").exists()


def test_a_japanese_windows_encoding_works(edges):
    # cp932 is what a Japanese Windows machine uses for redirected output; it has no "·", which
    # linear_regression.py prints first.
    result = edges["cp932 run"]
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "Verified" in result.stdout


@POSIX_SIGNALS
@pytest.mark.parametrize("script", PIPE_SCRIPTS)
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
elif moment == "exit":  # after main() has returned, as Python begins to shut down
    real_exit = sys.exit

    def pause_then_exit(status=None):
        pause()
        real_exit(status)

    sys.exit = pause_then_exit
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def interrupt_every_script(moment: str, folder: Path, scripts: list[str]) -> dict:
    """Start each script paused at the moment, press Ctrl-C in each; return what each left."""
    processes = {}
    for script in scripts:
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


# Ctrl-C while a model is saved, in each lesson that saves its own way: one file, several files, a
# model and its data file, a quantizer's output, JSON files beside the models, a server's model.
# (neural_network, tabular_pipeline, control_flow and model_surgery save as linear_regression
# does, with onnx.save_model into the shared block's publish.) The imports and ONNX Runtime's run
# are interrupted in two lessons only: what handles Ctrl-C there is the start-up snippet and the
# plumbing block, the same text in every lesson (tests/test_plumbing.py).
MOMENTS = {
    "import": ["linear_regression.py", "sklearn_converter.py"],
    "save": [
        "linear_regression.py",
        "large_models.py",
        "sklearn_converter.py",
        "optimize_and_quantize.py",
        "other_runtimes.py",
        "serve.py",
    ],
    "run": ["linear_regression.py", "neural_network.py"],
}
INTERRUPTS = [(script, moment) for moment, scripts in MOMENTS.items() for script in scripts]


def interrupted_in(folder: Path) -> dict:
    """Each script interrupted at its moments: the scripts of one moment run side by side."""
    results = {}
    for moment, scripts in MOMENTS.items():
        (folder / moment).mkdir()
        results[moment] = interrupt_every_script(moment, folder / moment, scripts)
    return results


if sys.platform != "win32":
    BACKGROUND["interrupted"] = interrupted_in


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> dict:
    """The Ctrl-C runs, started in the background at collection (conftest)."""
    return background_result("interrupted", tmp_path_factory)


@POSIX_SIGNALS
@pytest.mark.parametrize(("script", "moment"), INTERRUPTS)
def test_ctrl_c_exits_130_with_one_line_and_no_file(script, moment, interrupted):
    stdout, stderr, returncode, left = interrupted[moment][script]
    assert "PAUSED" in stdout, f"the script never reached the moment: {stdout}{stderr}"
    assert returncode == 130
    assert stderr == "error: interrupted\n"
    assert not [line for line in stdout.splitlines() if line.startswith("Verified")]
    assert not [name for name in left if name.endswith(".tmp")], left
    if moment != "run":
        assert not [name for name in left if name.endswith(".onnx")], left


# --- The plumbing block's edges that only a process shows ----------------------------------------
# The block is the same in every lesson (tests/test_plumbing.py), so linear_regression.py stands for
# all of them here: one process per behaviour.

LESSON_1 = str(ROOT / "linear_regression.py")


def pause_and_signal(moment: str, signals: list[int], cwd: Path) -> tuple[int, str, list[str]]:
    """Run lesson 1 paused at a moment, send the signals; return status, stderr, files left."""
    process = subprocess.Popen(
        [sys.executable, "-c", INTERRUPT_DRIVER, moment, LESSON_1, "--output-dir", "out"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    before = []
    for line in process.stdout:
        before.append(line)
        if line.startswith("PAUSED"):
            break
    for number in signals:
        process.send_signal(number)
    stdout, stderr = process.communicate(timeout=60)
    stdout = "".join(before) + stdout
    out = cwd / "out"
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    return process.returncode, stderr + ("(Verified)" if "Verified" in stdout else ""), left


def run_with_stdout(argv: list[str], stdout: object, cwd: Path) -> tuple[int, str]:
    """Run lesson 1 with stdout set up as given (a file such as /dev/full); return status, err."""
    result = subprocess.run(
        [sys.executable, LESSON_1, *argv],
        cwd=cwd,
        stdout=stdout,  # type: ignore[arg-type]
        stderr=subprocess.PIPE,
        text=True,
        timeout=120,
        check=False,
    )
    return result.returncode, result.stderr


def closed_stdout(argv: list[str], cwd: Path) -> tuple[int, str]:
    """Run lesson 1 with its stdout closed, as `python linear_regression.py >&-` does."""
    result = subprocess.run(
        ["sh", "-c", 'exec "$0" "$@" >&-', sys.executable, LESSON_1, *argv],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return result.returncode, result.stderr


def help_into_a_closed_pipe(cwd: Path) -> tuple[int, bytes]:
    """Run `--help` into a pipe whose reader has gone, as `--help | true` does."""
    process = subprocess.Popen(
        [sys.executable, LESSON_1, "--help"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    stderr = process.stderr.read()
    return process.wait(timeout=60), stderr


def copied_under_a_non_ascii_name(cwd: Path, encoding: str) -> subprocess.CompletedProcess[str]:
    """Run `--help` of a copy named X_é.py on a terminal that cannot show é."""
    copy = cwd / "X_é.py"
    copy.write_text(Path(LESSON_1).read_text(encoding="utf-8"), encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(copy), "--help"],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding=encoding,
        errors="replace",
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": encoding},
    )


def two_runs_at_once(cwd: Path) -> list[int]:
    """Start seeds 0 and 1 writing the same folder at the same moment; return both statuses."""
    processes = [
        subprocess.Popen(
            [sys.executable, LESSON_1, "--seed", seed, "--output-dir", "shared"],
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for seed in ("0", "1")
    ]
    return [process.wait(timeout=120) for process in processes]


def edges_in(folder: Path) -> dict:
    """Every edge run side by side: each is a short run of lesson 1 or only its start-up."""

    def place(name: str) -> Path:
        (folder / name).mkdir()
        return folder / name

    jobs: dict[str, Callable[[], object]] = {
        "ascii": lambda: copied_under_a_non_ascii_name(place("ascii"), "ascii"),
        "cp932": lambda: copied_under_a_non_ascii_name(place("cp932"), "cp932"),
        "cp932 run": lambda: run_lesson(
            "linear_regression.py", [], place("cp932-run"), PYTHONIOENCODING="cp932"
        ),
    }
    if sys.platform != "win32":
        jobs |= {
            "sigterm": lambda: pause_and_signal("save", [signal.SIGTERM], place("sigterm")),
            "sighup": lambda: pause_and_signal("save", [signal.SIGHUP], place("sighup")),
            "two ctrl-c": lambda: pause_and_signal(
                "run", [signal.SIGINT, signal.SIGINT], place("twice")
            ),
            "at exit": lambda: pause_and_signal("exit", [signal.SIGINT], place("exit")),
            "closed stdout": lambda: closed_stdout([], place("closed")),
            "help, closed pipe": lambda: help_into_a_closed_pipe(place("help-pipe")),
            "at once 1": lambda: two_runs_at_once(place("together-1")),
            "at once 2": lambda: two_runs_at_once(place("together-2")),
        }
    with contextlib.ExitStack() as stack:
        if Path("/dev/full").exists():
            full = stack.enter_context(open("/dev/full", "w"))
            jobs["full disk"] = lambda: run_with_stdout([], full, place("full"))
            jobs["help, full disk"] = lambda: run_with_stdout(["--help"], full, place("help-full"))
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {"folder": folder, **{name: future.result() for name, future in futures.items()}}


BACKGROUND["edges"] = edges_in


@pytest.fixture(scope="module")
def edges(tmp_path_factory) -> dict:
    """The plumbing's edge runs, started in the background at collection (conftest)."""
    return background_result("edges", tmp_path_factory)


@POSIX_SIGNALS
@pytest.mark.parametrize(("name", "status"), [("sigterm", 143), ("sighup", 129)])
def test_sigterm_and_sighup_while_saving_leave_nothing_and_one_line(edges, name, status):
    returncode, stderr, left = edges[name]
    assert returncode == status
    assert stderr == "error: terminated\n"
    assert left == []  # not the draft, not the model


@POSIX_SIGNALS
def test_two_quick_ctrl_c_give_one_line_and_130(edges):
    returncode, stderr, left = edges["two ctrl-c"]
    assert returncode == 130 and stderr == "error: interrupted\n"
    assert not [name for name in left if name.endswith(".tmp")]


@POSIX_SIGNALS
def test_ctrl_c_after_the_report_while_python_shuts_down_is_one_line_and_130(edges):
    returncode, stderr, left = edges["at exit"]
    assert (returncode, stderr) == (130, "error: interrupted\n(Verified)")
    assert left == ["linear_regression.onnx"]  # verified and published before the Ctrl-C


@POSIX_SIGNALS
def test_a_closed_stdout_is_one_line_and_status_1_before_any_work(edges):
    returncode, stderr = edges["closed stdout"]
    assert (returncode, stderr) == (1, "error: standard output is closed\n")
    assert not (edges["folder"] / "closed" / "models").exists()


@POSIX_SIGNALS
def test_help_into_a_closed_pipe_is_quiet(edges):
    returncode, stderr = edges["help, closed pipe"]
    assert (returncode, stderr) == (141, b"")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("name", ["full disk", "help, full disk"])
def test_a_full_device_under_stdout_is_one_line_and_status_1(edges, name):
    assert edges[name] == (1, "error: No space left on device\n")


@pytest.mark.parametrize("encoding", ["ascii", "cp932"])
def test_a_copy_under_a_non_ascii_name_prints_its_help_on_any_terminal(edges, encoding):
    result = edges[encoding]
    assert result.returncode == 0 and result.stderr == ""
    assert "usage: X_" in result.stdout


@POSIX_SIGNALS
@pytest.mark.parametrize("name", ["at once 1", "at once 2"])
def test_two_runs_in_one_folder_at_once_both_verify_and_leave_a_verified_model(edges, name):
    assert edges[name] == [0, 0]
    folder = edges["folder"] / ("together-" + name[-1]) / "shared"
    assert [p.name for p in folder.iterdir()] == ["linear_regression.onnx"]
    onnx.checker.check_model(str(folder / "linear_regression.onnx"), full_check=True)
