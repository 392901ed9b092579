"""Run each script as a reader would: a fresh process, from a temporary working directory."""

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
}


def run_script(script: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run a script with the test's Python, as `python SCRIPT.py ARGS` from cwd."""
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_script_runs_from_another_directory(case, tmp_path):
    script, args, written = case
    result = run_script(script, [*args, "--output-dir", "out"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert "Verified" in result.stdout and "Versions:" in result.stdout
    for name in written:
        path = tmp_path / "out" / name
        assert f"out/{name}" in result.stdout
        onnx.checker.check_model(onnx.load(path), full_check=True)
    # Only the models: no temporary file left behind by the atomic write.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(written)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_script_defaults_to_models_in_the_current_directory(case, tmp_path):
    script, args, written = case
    result = run_script(script, args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for name in written:
        assert (tmp_path / "models" / name).is_file()


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_script_usage_error_is_one_line_and_exit_2(case, tmp_path):
    script, _, _ = case
    result = run_script(script, ["--seed", "minus-one"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "argument --seed" in result.stderr
    assert not (tmp_path / "models").exists()


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_script_help_states_the_shared_flags(case, tmp_path):
    script, _, _ = case
    result = run_script(script, ["--help"], cwd=tmp_path)
    assert result.returncode == 0
    for flag in ("--output-dir", "--seed", "(default: models)", "(default: 0)"):
        assert flag in result.stdout


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_script_unwritable_output_is_one_error_line_and_exit_1(case, tmp_path):
    script, args, _ = case
    (tmp_path / "not-a-folder").write_text("a file where the output folder should be")
    result = run_script(script, [*args, "--output-dir", "not-a-folder"], cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
