"""Tests of large_models.py: external data, onnx's size rule, loading by path, the security of
locations, and publishing a verified pair even when runs overlap."""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import large_models as lm

SCRIPT = str(Path(lm.__file__).resolve())


def run(folder: Path, *args: str) -> int:
    """Run the lesson in process into folder; return its exit status."""
    return lm.main([*args, "--output-dir", str(folder)])


def pair(folder: Path) -> tuple[Path, Path]:
    """Return the .onnx and the one data file in folder (the test fails if there is not one)."""
    data = sorted(folder.glob("large_models.*.data"))
    assert len(data) == 1, sorted(p.name for p in folder.iterdir())
    return folder / lm.MODEL_FILE, data[0]


def predictions(folder: Path, seed: int = 0) -> np.ndarray:
    """Run the published model in folder by its path on seeded rows, returning probabilities."""
    session = lm.load_session(folder / lm.MODEL_FILE)
    width = session.get_inputs()[0].shape[1]
    x = np.random.default_rng(seed).normal(size=(5, width)).astype(np.float32)
    return session.run(["probabilities"], {"X": x})[0]


def expected(widths: list[int], seed: int, rows_seed: int = 0) -> np.ndarray:
    """What the model of these widths and seed computes, by NumPy."""
    weights, biases = lm.he_initialise(widths, seed)
    x = np.random.default_rng(rows_seed).normal(size=(5, widths[0])).astype(np.float32)
    return lm.numpy_forward(x, weights, biases)


DEFAULT = [int(w) for w in lm.DEFAULT_LAYERS.split(",")]


# --- What is written, and where ------------------------------------------------------------------


def test_default_run_writes_a_pair_whose_data_file_holds_the_large_tensors(tmp_path):
    assert run(tmp_path) == 0
    model_path, data = pair(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([model_path.name, data.name])
    weights, biases = lm.he_initialise(DEFAULT, 0)
    arrays = {
        f"{k}{i}": a
        for i, (w, b) in enumerate(zip(weights, biases, strict=True))
        for k, a in (("W", w), ("B", b))
    }
    model = onnx.load(model_path, load_external_data=False)
    offset, external = 0, []
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            entries = {e.key: e.value for e in tensor.external_data}
            size = arrays[tensor.name].nbytes
            # A bare file name: relative to the model's folder. One tensor after another.
            assert entries == {"location": data.name, "offset": str(offset), "length": str(size)}
            assert data.read_bytes()[offset : offset + size] == arrays[tensor.name].tobytes()
            offset += size
            external.append(tensor.name)
        else:
            np.testing.assert_array_equal(onnx.numpy_helper.to_array(tensor), arrays[tensor.name])
    assert data.stat().st_size == offset
    # The data file's name is the SHA-256 of its bytes.
    assert hashlib.sha256(data.read_bytes()).hexdigest()[:16] in data.name
    # 992 bytes went out, 988 stayed in: onnx's rule, not "1024 bytes or more" (next test).
    assert external == ["W0", "W1", "W2"] and arrays["W0"].nbytes == 992
    assert arrays["B1"].nbytes == 988


@pytest.mark.parametrize(
    ("floats", "outside"), [(247, False), (248, True), (256, True), (8, False)]
)
def test_the_size_rule_is_onnxs_own(tmp_path, floats, outside):
    # onnx compares sys.getsizeof(raw_data) >= 1024: 248 floats (992 bytes) go to the data file.
    array = np.arange(floats, dtype=np.float32)
    assert lm.goes_to_data_file(array) is outside
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["T"], ["Y"])],
        "g",
        [],
        [onnx.helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [floats])],
        [onnx.numpy_helper.from_array(array, "T")],
    )
    model = onnx.helper.make_model(graph)
    onnx.save_model(model, tmp_path / "m.onnx", save_as_external_data=True, location="m.data")
    saved = onnx.load(tmp_path / "m.onnx", load_external_data=False).graph.initializer[0]
    assert (saved.data_location == onnx.TensorProto.EXTERNAL) is outside
    assert lm.SIZE_THRESHOLD == 1024


def test_the_published_pair_loads_by_path_and_computes_the_network(tmp_path):
    assert run(tmp_path, "--seed", "3") == 0
    np.testing.assert_allclose(
        predictions(tmp_path), expected(DEFAULT, 3), rtol=lm.RTOL, atol=lm.ATOL
    )
    onnx.checker.check_model(tmp_path / lm.MODEL_FILE, full_check=True)
    loaded = onnx.load(tmp_path / lm.MODEL_FILE)  # onnx.load reads the data file too
    np.testing.assert_array_equal(
        onnx.numpy_helper.to_array(loaded.graph.initializer[0]), lm.he_initialise(DEFAULT, 3)[0][0]
    )


def test_same_arguments_write_byte_identical_files_and_another_seed_replaces_the_data(tmp_path):
    for name in ("first", "second"):
        assert run(tmp_path / name) == 0
    first, second = (sorted((tmp_path / n).iterdir()) for n in ("first", "second"))
    assert [p.name for p in first] == [p.name for p in second]
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(first, second, strict=True))
    assert run(tmp_path / "first", "--seed", "1") == 0
    _, data = pair(tmp_path / "first")  # the old run's data file is gone, the new one there
    assert data.name not in [p.name for p in first]
    np.testing.assert_allclose(
        predictions(tmp_path / "first"), expected(DEFAULT, 1), rtol=1e-4, atol=1e-5
    )


def test_a_rerun_from_inside_the_output_folder_works(tmp_path, monkeypatch, capsys):
    # onnx.save_model(save_as_external_data=True) checks whether `location` exists relative to the
    # working folder, not the model's: from inside models/ a second run would raise
    # FileExistsError. The lesson marks the tensors itself and saves with a plain onnx.save_model.
    monkeypatch.chdir(tmp_path)
    assert run(Path(".")) == 0 and run(Path(".")) == 0
    assert len(pair(tmp_path)) == 2
    weights, biases = lm.he_initialise(DEFAULT, 0)
    model = lm.build_model(weights, biases)
    with pytest.raises(FileExistsError, match="External data file exists"):
        onnx.save_model(model, tmp_path / "other.onnx", save_as_external_data=True,
                        location=pair(tmp_path)[1].name)  # fmt: skip


def test_a_model_without_large_tensors_writes_no_data_file(tmp_path):
    assert run(tmp_path, "--layers", "1,2") == 0
    assert [p.name for p in tmp_path.iterdir()] == [lm.MODEL_FILE]
    model = onnx.load(tmp_path / lm.MODEL_FILE, load_external_data=False)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_the_data_file_gets_the_usual_mode_not_a_private_one(tmp_path):
    original = os.umask(0o022)
    try:
        assert run(tmp_path) == 0
    finally:
        os.umask(original)
    for file in pair(tmp_path):
        assert file.stat().st_mode & 0o777 == 0o644, file.name


def test_chunked_generation_and_reference_equal_one_call(monkeypatch):
    weights, biases = lm.he_initialise([5, 7, 3], seed=4)
    rng = np.random.default_rng(4)
    np.testing.assert_array_equal(
        weights[0], rng.normal(0, np.sqrt(2 / 5), (5, 7)).astype(np.float32)
    )
    x = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    whole = lm.numpy_forward(x, weights, biases)
    monkeypatch.setattr(lm, "CHUNK_ELEMENTS", 8)  # one or two rows per slice
    for a, b in zip(
        weights + biases, [*itertools.chain(*lm.he_initialise([5, 7, 3], seed=4))], strict=True
    ):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(lm.numpy_forward(x, weights, biases), whole, rtol=1e-12)
    # And the reference is right: a hand-computed case, the ReLU clipping a negative unit.
    w = [np.array([[1.0, -1.0]], np.float32), np.eye(2, dtype=np.float32)]
    b = [np.zeros(2, np.float32), np.array([0.0, np.log(3.0)], np.float32)]
    np.testing.assert_allclose(
        lm.numpy_forward(np.array([[2.0]], np.float32), w, b),
        [[np.e**2 / (np.e**2 + 3), 3 / (np.e**2 + 3)]],
    )


# --- Loading: by path, and what fails otherwise --------------------------------------------------


def test_a_data_file_moved_away_fails_and_moving_it_back_fixes(tmp_path):
    assert run(tmp_path) == 0
    model_path, data = pair(tmp_path)
    elsewhere = tmp_path / "elsewhere.bin"
    data.rename(elsewhere)
    with pytest.raises(onnx.checker.ValidationError, match=r"\.data, but it is not regular file"):
        onnx.load(model_path)
    with pytest.raises(Exception, match="External data path does not exist"):
        lm.load_session(model_path)
    elsewhere.rename(data)
    assert lm.load_session(model_path).get_inputs()[0].name == "X"


def test_a_model_given_as_bytes_needs_its_folder(tmp_path, monkeypatch):
    # microsoft/onnxruntime#6696: bytes carry no folder to resolve `location` against.
    assert run(tmp_path / "model") == 0
    model_path = tmp_path / "model" / lm.MODEL_FILE
    cpu = ["CPUExecutionProvider"]
    monkeypatch.chdir(tmp_path)  # from bytes, ONNX Runtime looks in the working directory
    with pytest.raises(Exception, match="loaded from bytes escapes working directory"):
        ort.InferenceSession(model_path.read_bytes(), providers=cpu)
    # Even beside the data file, bytes fail once its optimizer reads an external tensor: here
    # every tensor is external (size_threshold=0), the biases that it folds included.
    weights, biases = lm.he_initialise(DEFAULT, 0)
    every = tmp_path / "every" / "every.onnx"
    every.parent.mkdir()
    onnx.save_model(lm.build_model(weights, biases), every, save_as_external_data=True,
                    location="every.data", size_threshold=0)  # fmt: skip
    monkeypatch.chdir(every.parent)
    with pytest.raises(Exception, match="model_path must not be empty"):
        ort.InferenceSession(every.read_bytes(), providers=cpu)
    # The fixes: open it by path, or name the folder for the bytes.
    monkeypatch.chdir(tmp_path)
    x = np.ones((2, DEFAULT[0]), np.float32)
    for path in (model_path, every):
        options = ort.SessionOptions()
        folder = str(path.parent)
        options.add_session_config_entry(
            "session.model_external_initializers_file_folder_path", folder
        )
        session = ort.InferenceSession(path.read_bytes(), options, providers=cpu)
        by_path = lm.load_session(path).run(None, {"X": x})[0]
        np.testing.assert_array_equal(session.run(None, {"X": x})[0], by_path)


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink"])
def test_location_outside_the_models_folder_is_refused(tmp_path, where):
    assert run(tmp_path / "model") == 0
    model_path, data = pair(tmp_path / "model")
    outside = tmp_path / "outside.data"
    data.rename(outside)
    if where == "parent":
        location = "../outside.data"
    elif where == "absolute":
        location = str(outside)
    else:
        if os.name != "posix":
            pytest.skip("symbolic links need POSIX")
        (tmp_path / "model" / "link.data").symlink_to(outside)
        location = "link.data"
    model = onnx.load(model_path, load_external_data=False)
    for tensor in model.graph.initializer:
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = location
    model_path.write_bytes(model.SerializeToString())
    onnx_message = {
        "parent": "points outside the directory",
        "absolute": "should be a relative path, but it is an absolute path",
        "symlink": "but it is a symbolic link",
    }[where]
    with pytest.raises(onnx.checker.ValidationError, match=onnx_message):
        onnx.load(model_path)
    with pytest.raises(onnx.checker.ValidationError, match=onnx_message):
        onnx.checker.check_model(model_path)
    ort_message = {
        "parent": "External data path escapes model directory",
        "absolute": "Absolute path not allowed for external data location",
        "symlink": "External data path escapes model directory",
    }[where]
    with pytest.raises(Exception, match=ort_message):
        lm.load_session(model_path)


# --- Publishing only a verified pair -------------------------------------------------------------


def test_a_planted_mismatch_publishes_nothing_and_keeps_the_previous_pair(
    tmp_path, capsys, monkeypatch
):
    assert run(tmp_path) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    real = lm.numpy_forward
    monkeypatch.setattr(lm, "numpy_forward", lambda x, w, b: real(x, w, b)[:, ::-1])
    capsys.readouterr()
    assert run(tmp_path, "--seed", "1") == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("error: verification failed: batch 1, ONNX Runtime vs NumPy")
        and err.count("\n") == 1
    )
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    monkeypatch.undo()
    np.testing.assert_allclose(predictions(tmp_path), expected(DEFAULT, 0), rtol=1e-4, atol=1e-5)


def test_a_data_file_whose_bytes_do_not_match_its_name_is_not_published(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(lm, "data_file_name", lambda w, b: "large_models.0123456789abcdef.data")
    assert run(tmp_path) == 1
    assert (
        "error: verification failed: large_models.0123456789abcdef.data" in capsys.readouterr().err
    )
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_data_file_with_the_right_name_is_repaired(tmp_path):
    assert run(tmp_path) == 0
    model_path, data = pair(tmp_path)
    good = data.read_bytes()
    data.write_bytes(good[:10])  # truncated, as a full disk or a killed copy leaves it
    with pytest.raises(Exception, match="size to read: 992 given file_length: 10"):
        lm.load_session(model_path)
    assert run(tmp_path) == 0  # the same arguments: the same name, and the verified bytes again
    assert data.read_bytes() == good
    np.testing.assert_allclose(predictions(tmp_path), expected(DEFAULT, 0), rtol=1e-4, atol=1e-5)


def test_a_folder_in_the_data_files_place_fails_and_leaves_the_previous_pair(tmp_path, capsys):
    assert run(tmp_path) == 0
    weights, biases = lm.he_initialise(DEFAULT, 1)
    (tmp_path / lm.data_file_name(weights, biases)).mkdir()  # seed 1's data file name, taken
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert run(tmp_path, "--seed", "1") == 1
    assert capsys.readouterr().err.count("\n") == 1
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    np.testing.assert_allclose(predictions(tmp_path), expected(DEFAULT, 0), rtol=1e-4, atol=1e-5)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("moment", ["save", "publish"])
def test_an_interruption_leaves_nothing_and_the_previous_pair(
    tmp_path, capsys, monkeypatch, moment
):
    # SIGTERM and SIGHUP become KeyboardInterrupt in the plumbing block, as Ctrl-C does.
    assert run(tmp_path) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    if moment == "save":
        monkeypatch.setattr(lm.onnx, "save_model", interrupted)
    else:
        monkeypatch.setattr(lm.os, "replace", interrupted)
    capsys.readouterr()
    assert run(tmp_path, "--seed", "1") == 130
    assert capsys.readouterr().err == "error: interrupted\n"
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_the_lock_holds_a_publish_back_until_it_is_released(tmp_path, capsys):
    tmp_path.mkdir(exist_ok=True)
    statuses: list[int] = []
    with lm.folder_lock(tmp_path):
        worker = threading.Thread(target=lambda: statuses.append(run(tmp_path)))
        worker.start()
        for _ in range(200):  # until the draft is verified (its size read) and the run waits
            time.sleep(0.05)
            if "batch of  64" in capsys.readouterr().out:
                break
        time.sleep(0.2)
        assert worker.is_alive() and not (tmp_path / lm.MODEL_FILE).exists()
    worker.join(timeout=60)
    assert statuses == [0] and len(pair(tmp_path)) == 2


def test_a_run_killed_while_it_holds_the_lock_does_not_block_the_next(tmp_path, capsys):
    # The system releases the lock with the process, however it ends (here: SIGKILL on POSIX,
    # TerminateProcess on Windows), so no stale lock can outlive a killed run.
    code = (
        f"import sys, time; sys.path.insert(0, {str(Path(SCRIPT).parent)!r}); import large_models\n"
        f"with large_models.folder_lock(large_models.Path({str(tmp_path)!r})):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(120)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
    finally:
        holder.kill()
        holder.wait(timeout=60)
    statuses: list[int] = []  # in a thread, so that a lock never released fails, not hangs
    worker = threading.Thread(target=lambda: statuses.append(run(tmp_path)), daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert statuses == [0] and len(pair(tmp_path)) == 2


def test_simultaneous_runs_always_leave_a_pair_that_loads_and_verifies(tmp_path, capsys):
    # Seeds 0 and 1 at once, into one folder, in threads (the lock is per open folder, so threads
    # of one process exclude each other as processes do): the .onnx always finds its own data.
    statuses: list[int] = []

    def one_run(seed: str) -> None:
        statuses.append(run(tmp_path, "--seed", seed))

    for _ in range(3):
        threads = [threading.Thread(target=one_run, args=(seed,)) for seed in "01"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert statuses == [0, 0]
        statuses.clear()
        probabilities = predictions(tmp_path)
        seeds = [
            s
            for s in (0, 1)
            if np.allclose(probabilities, expected(DEFAULT, s), rtol=1e-4, atol=1e-5)
        ]
        assert len(seeds) == 1 and len(pair(tmp_path)) == 2


# --- The command line ----------------------------------------------------------------------------


def test_help_and_usage_errors(tmp_path, capsys):
    assert lm.main(["--help"]) == 0
    assert "--layers" in capsys.readouterr().out
    for layers in ("4", "4,1", "a,b", "9223372036854775808,2"):
        assert run(tmp_path / "out", "--layers", layers) == 2
        err = capsys.readouterr().err
        assert err.startswith("large_models.py: error: argument --layers") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_size_beyond_the_memory_limit_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        lm, "memory_limit", lambda: (3 * 10**9, "the address-space limit (ulimit -v)")
    )
    assert run(tmp_path / "out", "--layers", "26000,26000,3") == 2
    err = capsys.readouterr().err
    assert (
        "needs about 9.3 GiB of memory, more than the address-space limit" in err
        and err.count("\n") == 1
    )
    assert not (tmp_path / "out").exists()
    assert run(tmp_path / "out") == 0  # the small default fits


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_AS is enforced on Linux")
def test_under_ulimit_v_a_large_size_is_one_line_not_a_crash(tmp_path):
    import resource

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3_000_000 * 1024, resource.RLIM_INFINITY))

    result = subprocess.run(
        [sys.executable, SCRIPT, "--layers", "26000,26000,3"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        preexec_fn=limit,
        check=False,
        timeout=120,
    )
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert re.search(
        r"needs about [\d.]+ GiB of memory, more than the address-space limit", result.stderr
    )
    assert list(tmp_path.iterdir()) == []


def test_an_output_folder_that_is_a_file_is_one_error_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert run(blocker) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("error: cannot create files in the output folder") and err.count("\n") == 1
    )
