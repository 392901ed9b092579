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
from pathlib import Path

import onnx
import pytest

ROOT = Path(__file__).resolve().parent.parent

# One case per script: the script, small settings that keep the run quick, and the files it writes.
CASES = {
    "linear_regression": ("linear_regression.py", [], ["linear_regression.onnx"]),
    "neural_network": ("neural_network.py", [], ["neural_network.onnx"]),
    "neural_network_train": (
        "neural_network.py",
        ["--train", "--layers", "4,8,3"],
        ["neural_network.onnx"],
    ),
    "sklearn_converter": ("sklearn_converter.py", [], ["sklearn_random_forest.onnx"]),
    "optimize_and_quantize": (
        "optimize_and_quantize.py",
        [],
        ["digits_mlp.onnx", "digits_mlp_int8_dynamic.onnx", "digits_mlp_int8_static.onnx"],
    ),
    "tabular_pipeline": ("tabular_pipeline.py", [], ["tabular_pipeline.onnx"]),
}
SCRIPTS = sorted({script for script, _, _ in CASES.values()})
POSIX_SIGNALS = pytest.mark.skipif(
    sys.platform == "win32", reason="SIGINT cannot be sent to a child process this way on Windows"
)


def run_script(
    script: str, args: list[str], cwd: Path, **environment: str
) -> subprocess.CompletedProcess:
    """Run a script with the test's Python, as `python SCRIPT.py ARGS` from cwd."""
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **environment},
    )


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory) -> dict:
    """Run every case twice, under two PYTHONHASHSEED values; return the results and folders."""
    # Sharing these runs between tests keeps the suite quick: each script starts twice, not once
    # per property checked.
    results = {}
    for case_id, (script, args, _) in CASES.items():
        runs = []
        # The second run also prints to an ASCII-only stdout: no character may make it fail.
        for hash_seed, encoding in (("1", "utf-8"), ("2", "ascii")):
            cwd = tmp_path_factory.mktemp(f"{case_id}-{hash_seed}")
            result = run_script(
                script,
                [*args, "--output-dir", "out"],
                cwd,
                PYTHONHASHSEED=hash_seed,
                PYTHONIOENCODING=encoding,
            )
            runs.append((result, cwd / "out"))
        results[case_id] = runs
    return results


@pytest.mark.parametrize("case_id", CASES)
def test_script_runs_from_another_directory(case_id, two_runs):
    _, _, written = CASES[case_id]
    result, out = two_runs[case_id][0]
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "Verified" in result.stdout and "Versions:" in result.stdout
    for name in written:
        # The report names each file as the operating system writes its path (out\name on Windows).
        assert str(Path("out") / name) in result.stdout
        onnx.checker.check_model(str(out / name), full_check=True)
    # Only the models: no temporary file left behind by the atomic writes.
    assert sorted(p.name for p in out.iterdir()) == sorted(written)


@pytest.mark.parametrize("case_id", CASES)
def test_an_ascii_terminal_gets_the_same_report_with_escapes(case_id, two_runs):
    (utf8, _), (ascii_only, _) = two_runs[case_id]
    assert ascii_only.returncode == 0 and ascii_only.stderr == "", ascii_only.stderr
    assert ascii_only.stdout.isascii() and "Verified" in ascii_only.stdout
    assert ascii_only.stdout.count("\n") == utf8.stdout.count("\n")


@pytest.mark.parametrize("case_id", CASES)
def test_same_arguments_write_byte_identical_files_whatever_the_hash_seed(case_id, two_runs):
    _, _, written = CASES[case_id]
    (first, first_out), (second, second_out) = two_runs[case_id]
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    for name in written:
        assert (first_out / name).read_bytes() == (second_out / name).read_bytes(), name


@pytest.mark.parametrize("script", ["linear_regression.py", "neural_network.py"])
def test_script_defaults_to_models_in_the_current_directory(script, tmp_path):
    written = next(files for name, _, files in CASES.values() if name == script)
    result = run_script(script, [], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in written:
        assert (tmp_path / "models" / name).is_file()


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_usage_error_is_one_line_and_exit_2(script, tmp_path):
    for bad_seed in ("minus-one", str(2**32)):
        result = run_script(script, ["--seed", bad_seed], cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith(f"{script}: error: argument --seed")
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_help_states_the_shared_flags(script, tmp_path):
    result = run_script(script, ["--help"], cwd=tmp_path)
    assert result.returncode == 0
    for flag in ("--output-dir", "--seed", "(default: models)", "(default: 0)", "2**32 - 1"):
        assert flag in result.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_output_folder_that_is_a_file_is_one_error_line_before_any_work(script, tmp_path):
    (tmp_path / "not-a-folder").write_text("a file where the output folder should be")
    result = run_script(script, ["--output-dir", "not-a-folder"], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "error: the output folder is not a folder: not-a-folder\n"
    assert result.stdout == ""


@pytest.mark.parametrize("script", ["linear_regression.py", "neural_network.py"])
def test_a_japanese_windows_encoding_works(script, tmp_path):
    # cp932 is what a Japanese Windows machine uses for redirected output; it has no "·" or "µ".
    args = ["--benchmark"] if script == "neural_network.py" else []  # its timings print µs
    result = run_script(script, args, cwd=tmp_path, PYTHONIOENCODING="cp932")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and "Verified" in result.stdout


@POSIX_SIGNALS
@pytest.mark.parametrize("script", SCRIPTS)
def test_closed_pipe_exits_141_quietly(script, tmp_path):
    # The reader goes away before the script prints anything, as `python SCRIPT.py | true` does.
    process = subprocess.Popen(
        [sys.executable, str(ROOT / script)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 141
    assert stderr == b""


# A driver that runs a script as `python SCRIPT.py` but pauses it at a chosen moment, so that the
# test can press Ctrl-C there: while the libraries import, while a model file is being written, and
# while ONNX Runtime runs.
INTERRUPT_DRIVER = """
import builtins, os, runpy, sys, time

def pause(*args, **kwargs):
    print("PAUSED", flush=True)
    time.sleep(60)

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


@POSIX_SIGNALS
@pytest.mark.parametrize("moment", ["import", "save", "run"])
@pytest.mark.parametrize("script", SCRIPTS)
def test_ctrl_c_exits_130_with_one_line_and_no_file(script, moment, tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-c", INTERRUPT_DRIVER, moment, str(ROOT / script), "--output-dir", "out"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("PAUSED"):
            break
    assert lines and lines[-1].startswith("PAUSED"), "".join(lines)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr == "error: interrupted\n"
    assert "Verified" not in "".join(lines) + stdout
    out = tmp_path / "out"
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    assert not [name for name in left if name.endswith(".tmp")], left
    if moment != "run":
        assert not [name for name in left if name.endswith(".onnx")], left
