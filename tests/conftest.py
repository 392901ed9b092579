"""Shared test settings: the lessons' own runs, and new processes under mutation testing."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# One case per way a reader runs a lesson: the script, its arguments, and the files it writes.
LESSON_CASES = {
    "linear_regression": ("linear_regression.py", [], ["linear_regression.onnx"]),
    "neural_network": ("neural_network.py", [], ["neural_network.onnx"]),
    "neural_network_train": (
        "neural_network.py",
        ["--train", "--layers", "4,8,3"],
        ["neural_network.onnx"],
    ),
    "large_models": (
        "large_models.py",
        [],
        ["large_models.966b48baadc6b73e.data", "large_models.onnx"],
    ),
    "sklearn_converter": ("sklearn_converter.py", [], ["sklearn_random_forest.onnx"]),
    "optimize_and_quantize": (
        "optimize_and_quantize.py",
        [],
        ["digits_mlp.onnx", "digits_mlp_int8_dynamic.onnx", "digits_mlp_int8_static.onnx"],
    ),
    "tabular_pipeline": ("tabular_pipeline.py", [], ["tabular_pipeline.onnx"]),
    "control_flow": (
        "control_flow.py",
        [],
        ["control_flow_helper.onnx", "control_flow_text.onnx", "control_flow_onnxscript.onnx"],
    ),
    "other_runtimes": (
        "other_runtimes.py",
        [],
        [
            "linear.onnx",
            "linear.json",
            "mlp_functions.onnx",
            "mlp_functions.json",
            "mlp_inlined.onnx",
            "mlp_inlined.json",
            "mlp_external.onnx",
            "mlp_external.bccad5109e45.data",
            "mlp_external.json",
            "ml_pipeline.onnx",
            "ml_pipeline.json",
            "strings.onnx",
            "strings.json",
            "qdq_int8.onnx",
            "qdq_int8.json",
        ],
    ),
    "model_surgery": (
        "model_surgery.py",
        [],
        [
            "digits_pipeline_every_tensor.onnx",
            "digits_pipeline.onnx",
            "digits_preprocessing.onnx",
            "digits_images.onnx",
            "digits_images_batch1.onnx",
            "digits_images_any_batch.onnx",
            "image_brightness_opset22.onnx",
            "digits_pipeline_opset14.onnx",
            "digits_pipeline_float16.onnx",
            "digits_pipeline_float16_io32.onnx",
        ],
    ),
}


def run_lesson(
    script: str, args: list[str], cwd: Path, **environment: str
) -> subprocess.CompletedProcess[str]:
    """Run a lesson as `python SCRIPT.py ARGS` from cwd, with the test's Python."""
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
        check=False,
        env={**os.environ, **environment},
    )


@pytest.fixture(scope="session")
def lesson_runs(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, list[tuple[subprocess.CompletedProcess[str], Path]]]:
    """Run every case twice from an empty folder, as a reader would; return results and folders.

    The first run prints UTF-8 under PYTHONHASHSEED=0, the second ASCII under PYTHONHASHSEED=1.
    Several test files check these same runs (the report, the files, the docs' samples), so
    each lesson starts twice per test session, not once per property checked.
    """
    jobs = []
    for case_id, (script, args, _) in LESSON_CASES.items():
        # Hash seeds 0 and 1 put skl2onnx's opset entries in opposite orders when unsorted.
        for hash_seed, encoding in (("0", "utf-8"), ("1", "ascii")):
            cwd = tmp_path_factory.mktemp(f"{case_id}-{hash_seed}")
            environment = {"PYTHONHASHSEED": hash_seed, "PYTHONIOENCODING": encoding}
            jobs.append((case_id, script, args, cwd, environment))
    # Two at a time: each run is mostly one busy core, and CI has two.
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            (case_id, cwd, pool.submit(run_lesson, script, args, cwd, **environment))
            for case_id, script, args, cwd, environment in jobs
        ]
    runs: dict[str, list[tuple[subprocess.CompletedProcess[str], Path]]] = {}
    for case_id, cwd, future in futures:
        runs.setdefault(case_id, []).append((future.result(), cwd / "models"))
    return runs


_real_popen_init = subprocess.Popen.__init__


def _refuse_new_process(*args: object, **kwargs: object) -> None:
    pytest.skip("starts a new process, which mutation testing cannot follow")


def pytest_configure(config: pytest.Config) -> None:
    """Under mutmut, skip a test (or the fixture it needs) at the moment it starts a new process.

    mutmut switches mutants inside the test process; a script started in a new process runs the
    unmutated file (and, while mutmut maps tests to functions, crashes looking for its
    configuration), so such a test can neither kill a mutant nor let one live. Outside mutmut,
    nothing changes. See docs/mutation_testing.md.
    """
    if "MUTANT_UNDER_TEST" in os.environ:
        subprocess.Popen.__init__ = _refuse_new_process  # type: ignore[method-assign]


def pytest_unconfigure(config: pytest.Config) -> None:
    """Give mutmut its subprocess back when the test run ends."""
    subprocess.Popen.__init__ = _real_popen_init  # type: ignore[method-assign]
