"""Shared test settings: the lessons' own runs, and new processes under mutation testing."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

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
    "serve": ("serve.py", [], ["rent.onnx"]),
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
    """Run a lesson as `python SCRIPT.py ARGS` from cwd, with the test's Python.

    The run gets a lower scheduling priority where the system has one: these runs go on in the
    background while the in-process tests, one test at a time, keep a core to themselves.
    """
    command = [sys.executable, str(ROOT / script), *args]
    with subprocess.Popen(
        command,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env={**os.environ, **environment},
    ) as process:
        if hasattr(os, "setpriority"):
            with contextlib.suppress(OSError):  # it may have finished already
                os.setpriority(os.PRIO_PROCESS, process.pid, 10)
        try:
            stdout, stderr = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


# The lessons' own runs, and the process tests of tests/test_scripts.py (which registers them in
# BACKGROUND when it is imported), start in the background as soon as the tests that need them are
# collected: they use one core while the in-process tests use the other, and those tests run last.
BACKGROUND: dict[str, Callable[[Path], object]] = {}
_lesson_runs: dict[str, list[tuple[Future[subprocess.CompletedProcess[str]], Path]]] = {}
_started: dict[str, Future[object]] = {}
_pools: list[ThreadPoolExecutor] = []
_folders: list[Path] = []


def start_lesson_runs(folder: Path) -> None:
    """Start every case twice from an empty folder, as a reader would, two runs at a time.

    The first run prints UTF-8 under PYTHONHASHSEED=0, the second ASCII under PYTHONHASHSEED=1
    (hash seeds 0 and 1 put skl2onnx's opset entries in opposite orders when unsorted). Several
    test files check these same runs (the report, the files, the docs' samples), so each lesson
    starts twice per test session, not once per property checked.
    """
    pool = ThreadPoolExecutor(max_workers=2)  # each run is mostly one busy core; CI has two
    _pools.append(pool)
    for case_id, (script, args, _) in LESSON_CASES.items():
        for hash_seed, encoding in (("0", "utf-8"), ("1", "ascii")):
            cwd = folder / f"{case_id}-{hash_seed}"
            cwd.mkdir(parents=True)
            environment = {"PYTHONHASHSEED": hash_seed, "PYTHONIOENCODING": encoding}
            future = pool.submit(run_lesson, script, args, cwd, **environment)
            _lesson_runs.setdefault(case_id, []).append((future, cwd / "models"))


def pytest_collection_modifyitems(
    session: pytest.Session, config: pytest.Config, items: list[pytest.Item]
) -> None:
    """Start the background runs that collected tests need, and run those tests last."""
    if "MUTANT_UNDER_TEST" in os.environ:  # mutmut cannot follow a new process: nothing to start
        return
    used = {name for item in items for name in getattr(item, "fixturenames", ())}
    wanted = {"lesson_runs", *BACKGROUND} & used
    if not wanted:
        return
    users = [item for item in items if wanted & set(getattr(item, "fixturenames", ()))]
    items[:] = [item for item in items if item not in users] + users
    folder = Path(tempfile.mkdtemp(prefix="onnx-by-example-"))
    _folders.append(folder)
    if "lesson_runs" in wanted:
        start_lesson_runs(folder / "lessons")
    pool = ThreadPoolExecutor(max_workers=1)  # each job runs its own processes side by side
    _pools.append(pool)
    for name in sorted(wanted - {"lesson_runs"}):
        (folder / name).mkdir()
        _started[name] = pool.submit(BACKGROUND[name], folder / name)


def background_result(name: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The result of a background job: started at collection, or computed now."""
    if name in _started:
        return _started[name].result()
    return BACKGROUND[name](tmp_path_factory.mktemp(name))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Wait for the background work (a run stopped early may leave some) and remove its files."""
    for pool in _pools:
        pool.shutdown(wait=True, cancel_futures=True)
    for folder in _folders:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def lesson_runs() -> dict[str, list[tuple[subprocess.CompletedProcess[str], Path]]]:
    """Every case's two runs (started at collection): results and the folders they wrote."""
    if not _lesson_runs:  # under mutmut, or a run that collected no user of the fixture
        pytest.skip("the lessons' runs start only when the tests that need them are collected")
    return {
        case_id: [(future.result(), models) for future, models in runs]
        for case_id, runs in _lesson_runs.items()
    }


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
