"""Tests of serve.py: the validation in process, then a real server in a subprocess on loopback.

The subprocess serves the lesson's file with `--model`, with scikit-learn, skl2onnx and onnx
blocked from import: the deployment side must not need them. Every endpoint, every bad request, the
model's string input, a concurrent load against sequential answers and a client that leaves
mid-request are checked against it, with the lesson's own client checks and independent ones; the
last test stops it with Ctrl-C.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from conftest import ROOT

import serve

# Run first in the server's process: the training-side libraries cannot be imported there.
BLOCKED_SERVER = textwrap.dedent(
    """
    import importlib.abc, runpy, sys

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in {"sklearn", "skl2onnx", "onnx", "joblib", "scipy"}:
                raise ImportError(f"{name} is blocked in this test")

    sys.meta_path.insert(0, Block())
    for name in ("sklearn", "skl2onnx", "onnx"):
        try:
            __import__(name)
        except ImportError:
            print("blocked", name, flush=True)
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
    """
)
call = serve.call  # one request with urllib: the status and the JSON answer, errors included
Server = tuple[str, "subprocess.Popen[str]"]
LOGS: dict[int, list[str]] = {}  # each server's log lines, by process id, as the server prints them


def raw(port: int, data: bytes, read: bool = True) -> bytes:
    """Send bytes on a new connection; return all the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as client:
        client.sendall(data)
        if read:  # no more to send: the server reads to the end at once, and need not wait
            client.shutdown(socket.SHUT_WR)
        answer = b""
        while read and (chunk := client.recv(65536)):
            answer += chunk
        return answer


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[serve.Case, Path]:
    """The lesson's case, trained, converted and published into a temporary folder."""
    case = serve.make_case(seed=0)
    return case, serve.write_model(tmp_path_factory.mktemp("models") / "rent.onnx", case)


@pytest.fixture(scope="module")
def model(built: tuple[serve.Case, Path]) -> serve.ServedModel:
    return serve.ServedModel(built[1])


@pytest.fixture(scope="module")
def server(
    built: tuple[serve.Case, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """`python serve.py --model rent.onnx --port 0`, with the training stack blocked."""
    out = str(tmp_path_factory.mktemp("out"))
    flags = ["--model", str(built[1]), "--port", "0", "--output-dir", out]
    process = subprocess.Popen(
        [sys.executable, "-c", BLOCKED_SERVER, str(ROOT / "serve.py"), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None and process.stderr is not None
    lines = [process.stdout.readline() for _ in range(4)]  # three "blocked", then "serving on"
    assert lines[:3] == ["blocked sklearn\n", "blocked skl2onnx\n", "blocked onnx\n"], lines
    assert "serving on http://127.0.0.1:" in lines[3], [*lines, process.stderr.read()]
    assert "/v2/models/rent" in lines[3]
    # The log, read as it comes: a pipe left unread would fill and block the server's prints.
    log = LOGS.setdefault(process.pid, [])
    reader = threading.Thread(target=lambda: log.extend(process.stdout or []), daemon=True)
    reader.start()
    yield lines[3].split("serving on ")[1].split()[0], process
    if process.poll() is None:
        process.kill()
        process.wait()


# --- In process: the checks a request goes through -------------------------------------------

CITY = {"name": "city", "datatype": "BYTES", "shape": [2, 1], "data": ["Lyon", "Nice"]}
AREA = {"name": "area", "datatype": "FP32", "shape": [2, 1], "data": [40.5, 50]}
GOOD = json.dumps({"inputs": [CITY, AREA]}).encode()
BAD = {  # what is wrong: a change to the good request's input area, or a whole body
    "truncated JSON": b'{"inputs": [',
    "not UTF-8": b'{"inputs": "\xff"}',
    "a list, not an object": b"[1, 2]",
    "no inputs list": b'{"inputs": {"area": [1, 2]}}',
    "NaN": GOOD.replace(b"40.5", b"NaN"),
    "Infinity": GOOD.replace(b"40.5", b"-Infinity"),
    "nested 100,000 deep": b"[" * 100_000,
    "missing input": json.dumps({"inputs": [CITY]}).encode(),
    "an input given twice": json.dumps({"inputs": [CITY, CITY, AREA]}).encode(),
    "a number for a string": GOOD.replace(b'"Lyon"', b"7"),
    "null for a string": GOOD.replace(b'"Lyon"', b"null"),
    "unknown input": {"name": "size"},
    "an input that is not an object": None,
    "a name that is not a string": {"name": ["area"]},
    "wrong datatype": {"datatype": "FP64"},
    "no datatype": {"datatype": None},
    "strings for FP32": {"data": ["40.5", "50"]},
    "booleans for FP32": {"data": [True, False]},
    "too few values": {"shape": [3, 1]},
    "too many values": {"data": [1, 2, 3]},
    "data that is not a list": {"data": 40.5},
    "nested deeper than the shape": {"data": [[[40.5]], [[50]]]},
    "wrong rank": {"shape": [2]},
    "wrong fixed dimension": {"shape": [1, 2]},
    "negative dimension": {"shape": [-2, 1]},
    "a dimension that is a float": {"shape": [2.0, 1]},
    "empty batch": {"shape": [0, 1], "data": []},
    "beyond float32": {"data": [1e39, 50]},
    "a huge shape": {"shape": [2**62, 1]},
    "inputs disagree on N": {"shape": [3, 1], "data": [40.5, 50, 60]},
    "unknown output": {"outputs": [{"name": "y"}]},
    "outputs not a list": {"outputs": "label"},
    "an id that is not a string": {"id": 42},
}


def rent_request(change: dict[str, Any] | None) -> bytes:
    """A good request, with one change to its input area (or to the request for outputs, id)."""
    area: Any = dict(AREA)
    request: dict[str, Any] = {"inputs": [CITY, area]}
    if change is None:
        request["inputs"][1] = 42
    else:
        request |= {key: value for key, value in change.items() if key in ("outputs", "id")}
        area.update({key: value for key, value in change.items() if key not in ("outputs", "id")})
    return json.dumps(request).encode()


def bad_body(what: str) -> bytes:
    change = BAD[what]
    return change if isinstance(change, bytes) else rent_request(change)


@pytest.mark.parametrize("what", BAD)
def test_every_bad_request_is_refused_before_the_runtime(
    what: str, model: serve.ServedModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: object) -> None:
        raise AssertionError("the runtime was reached")

    monkeypatch.setattr(model.session, "run", never)
    with pytest.raises(serve.Refusal) as refusal:
        serve.infer(model, bad_body(what))
    status, message = refusal.value.args
    assert status == 400 and isinstance(message, str) and len(message) < 200


def test_a_good_request_gives_the_session_outputs_and_echoes_the_id(
    model: serve.ServedModel,
) -> None:
    rows = {"city": [["Lyon"], ["Paris"]], "area": [[40.5], [80.25]]}  # nested rows
    inputs = [CITY | {"data": rows["city"]}, AREA | {"data": rows["area"]}]
    request = {"id": "7", "inputs": inputs, "outputs": [{"name": "probabilities"}]}
    answer = serve.infer(model, json.dumps(request).encode())
    feeds = {"city": np.array(rows["city"], object), "area": np.array(rows["area"], np.float32)}
    (expected,) = model.session.run(["probabilities"], feeds)
    assert answer["id"] == "7" and [o["name"] for o in answer["outputs"]] == ["probabilities"]
    output = answer["outputs"][0]
    assert output["datatype"] == "FP32" and output["shape"] == [2, 2]
    assert np.array(output["data"], np.float32).tobytes() == expected.ravel().tobytes()
    labels = serve.infer(model, GOOD)["outputs"][0]  # strings out, as the strings went in
    assert labels["datatype"] == "BYTES" and set(labels["data"]) <= {"high", "low"}


def test_inputs_that_share_the_dimension_n_must_agree(model: serve.ServedModel) -> None:
    assert model.dims == {"city": ["N", 1], "area": ["N", 1]}
    with pytest.raises(serve.Refusal, match="disagree on N: 2, 3"):
        serve.parse_request(model, bad_body("inputs disagree on N"))
    with pytest.raises(serve.Refusal, match="unknown, or given twice"):
        serve.parse_request(model, bad_body("an input given twice"))
    with pytest.raises(serve.Refusal, match=r"BYTES values"):  # a number for a string input
        serve.parse_request(model, bad_body("a number for a string"))


def test_metadata_is_the_sessions_own_inputs_and_outputs(model: serve.ServedModel) -> None:
    assert model.metadata == {
        "name": "rent",
        "platform": "onnx_onnxv1",
        "inputs": [
            {"name": "city", "datatype": "BYTES", "shape": [-1, 1]},
            {"name": "area", "datatype": "FP32", "shape": [-1, 1]},
        ],
        "outputs": [
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]},
        ],
    }


def test_a_model_whose_output_is_not_a_tensor_is_refused(
    built: tuple[serve.Case, Path], tmp_path: Path
) -> None:
    import onnx
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    # skl2onnx's default ZipMap: the probabilities as seq(map(string, float)), not a tensor.
    inputs = [("city", StringTensorType([None, 1])), ("area", FloatTensorType([None, 1]))]
    onnx.save_model(to_onnx(built[0].estimator, initial_types=inputs), tmp_path / "zipmap.onnx")
    with pytest.raises(serve.Failure, match=r"output_probability is seq\(map"):
        serve.ServedModel(tmp_path / "zipmap.onnx")


def test_16_a_failed_run_is_logged_on_stderr_unless_its_run_options_say_not(
    model: serve.ServedModel, capfd: pytest.CaptureFixture[str]
) -> None:
    # Troubleshooting 16: ONNX Runtime logs a failed run on stderr, the process's own file.
    feeds = {"city": np.array([["Lyon"], ["Nice"]], object), "area": np.ones((3, 1), np.float32)}
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.Fail):
        model.session.run(None, feeds)
    assert "[E:onnxruntime:" in capfd.readouterr().err
    options = ort.RunOptions()
    options.log_severity_level = 4
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.Fail):
        model.session.run(None, feeds, options)
    assert capfd.readouterr().err == ""


@pytest.mark.skipif(sys.platform != "linux", reason="how the kernel resets it is measured on Linux")
def test_17_an_answer_sent_without_reading_the_body_is_lost() -> None:
    # Troubleshooting 17: the server answers 413 and closes with the body unread; the kernel
    # resets the connection and the client, still writing, never reads the answer.
    class Naive(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(413)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    naive = ThreadingHTTPServer(("127.0.0.1", 0), Naive)
    threading.Thread(target=naive.serve_forever, daemon=True).start()
    try:
        with pytest.raises(OSError) as lost:  # URLError [Errno 32] Broken pipe, or a reset
            call(f"http://127.0.0.1:{naive.server_port}/", b" " * (8 << 20))
        assert not isinstance(lost.value, urllib.error.HTTPError)
    finally:
        naive.shutdown()
        naive.server_close()


# --- The lesson in process: main() --------------------------------------------------------------


def test_lesson_verifies_and_publishes_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve.main(["--output-dir", str(tmp_path), "--clients", "2", "--requests", "5"]) == 0
    out = capsys.readouterr().out
    assert "Verified" in out and "Versions:" in out and "0 internal errors" in out
    assert sorted(path.name for path in tmp_path.iterdir()) == ["rent.onnx"]
    assert out.count("\n   400 ") == 10 and out.count("\n   413 ") == 1
    assert out.count("\n   404 ") == out.count("\n   405 ") == 1


def test_a_mismatch_exits_1_and_keeps_the_previous_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "rent.onnx").write_bytes(b"the previous model")
    real = serve.make_case

    def wrong(seed: int) -> serve.Case:
        case = real(seed)
        return case._replace(table=case.table[::-1])  # scikit-learn answers for other rows

    monkeypatch.setattr(serve, "make_case", wrong)
    assert serve.main(["--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: verification failed") and err.count("\n") == 1
    assert (tmp_path / "rent.onnx").read_bytes() == b"the previous model"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["rent.onnx"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--port", "8000"],
        ["--host", "0.0.0.0"],
        ["--clients", "0"],
        ["--requests", "1001"],
        ["--model", "m.onnx", "--port", "65536"],
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve.main([*argv, "--output-dir", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("serve.py: error: ") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_help_and_an_output_folder_that_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve.main(["--help"]) == 0
    assert "no authentication" in " ".join(capsys.readouterr().out.split())
    (tmp_path / "file").write_text("")
    assert serve.main(["--output-dir", str(tmp_path / "file")]) == 1
    assert capsys.readouterr().err.startswith("error: cannot create files in the output folder")


def test_a_missing_model_file_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert serve.main(["--model", str(tmp_path / "nope.onnx"), "--output-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "nope.onnx" in err


# --- A real server in a subprocess, the training stack blocked --------------------------------


def test_every_endpoint(server: Server, model: serve.ServedModel) -> None:
    url = server[0]
    serve.check_endpoints(url, model)  # the lesson's check: each answer equal to what it expects
    assert call(url + "/v2/health/live") == (200, {"live": True})
    assert call(url + "/v2") == (
        200,
        {"name": "serve.py", "version": ort.__version__, "extensions": []},
    )
    assert call(url + "/v2/models/rent") == (200, model.metadata)
    assert call(url + "/v2/models/rent/ready") == (200, {"name": "rent", "ready": True})


def test_predictions_equal_session_run_and_scikit_learn(
    server: Server, built: tuple[serve.Case, Path], model: serve.ServedModel
) -> None:
    case = built[0]
    serve.check_predictions(server[0], model, case)  # the lesson's check, bit for bit
    # And independently: BYTES in (city), BYTES out (label), FP32 probabilities.
    status, answer = call(f"{server[0]}/v2/models/rent/infer", rent_request({"id": "a"}))
    assert status == 200 and answer["model_name"] == "rent" and answer["id"] == "a"
    labels, probabilities = answer["outputs"]
    table = np.array([["Lyon", 40.5], ["Nice", 50.0]], object)
    assert labels["datatype"] == "BYTES" and labels["data"] == list(case.estimator.predict(table))
    np.testing.assert_allclose(
        probabilities["data"], case.estimator.predict_proba(table).ravel(), atol=serve.ATOL
    )


def test_the_lessons_bad_requests_over_http(server: Server) -> None:
    serve.check_bad_requests(server[0])  # each status, a JSON error, and the server still live


@pytest.mark.parametrize("what", BAD)
def test_bad_requests_get_400_over_http_and_the_server_goes_on(what: str, server: Server) -> None:
    status, answer = call(server[0] + "/v2/models/rent/infer", bad_body(what))
    assert status == 400 and set(answer) == {"error"}
    assert call(server[0] + "/v2/health/live") == (200, {"live": True})


@pytest.mark.parametrize(
    ("path", "method", "body", "status"),
    [
        ("/v2/models/nope/infer", None, b"{}", 404),
        ("/v2/models/nope", None, None, 404),
        ("/v1/models/rent:predict", None, b"{}", 404),
        ("/v2/models/rent/versions/1", None, None, 404),
        ("/v2/models/rent/infer", "GET", None, 405),
        ("/v2/models/rent", "DELETE", None, 405),
        ("/v2/health/live", "POST", b"{}", 405),
        ("/v2/models/rent/infer", None, b" " * (4 << 20), 413),
    ],
)
def test_wrong_paths_methods_and_sizes(
    path: str, method: str | None, body: bytes | None, status: int, server: Server
) -> None:
    got, answer = call(server[0] + path, body, method)
    assert got == status and isinstance(answer["error"], str)
    assert call(server[0] + "/v2/health/live")[0] == 200


def test_http_level_refusals_are_json_too(server: Server) -> None:
    port = int(server[0].rsplit(":", 1)[1])
    infer = "POST /v2/models/rent/infer HTTP/1.1\r\nHost: x\r\n"
    for request, status in [
        (b"GARBAGE\r\n\r\n", 0),  # not a request line: an HTTP/0.9 answer, a body alone
        (b"BREW /v2 HTTP/1.1\r\nHost: x\r\n\r\n", 501),  # a method HTTP does not have
        (f"{infer}Transfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n".encode(), 411),
        (f"{infer}Content-Length: -5\r\n\r\n".encode(), 400),
        # Declared far past the limit, then written only in part: the 413 still arrives.
        (f"{infer}Content-Length: {64 << 20}\r\n\r\n".encode() + b" " * (2 << 20), 413),
    ]:
        answer = raw(port, request)
        head, _, text = answer.partition(b"\r\n\r\n") if status else (b"", b"", answer)
        assert head.startswith(f"HTTP/1.0 {status} ".encode() if status else b"")
        assert isinstance(json.loads(text)["error"], str)


def test_a_client_that_leaves_mid_request_does_not_stop_the_server(server: Server) -> None:
    port = int(server[0].rsplit(":", 1)[1])
    raw(port, b'POST /v2/models/rent/infer HTTP/1.1\r\nContent-Length: 500\r\n\r\n{"in', read=False)
    raw(port, b"GET /v2/health/li", read=False)  # leaves inside the request line
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)  # leaves before reading
    connection.request("POST", "/v2/models/rent/infer", GOOD)
    connection.close()
    assert call(server[0] + "/v2/health/live") == (200, {"live": True})


def test_concurrent_answers_equal_sequential_ones_bit_for_bit(
    server: Server, built: tuple[serve.Case, Path], model: serve.ServedModel
) -> None:
    case = built[0]
    # The lesson's load: 8 clients at once, each answer against session.run in this process.
    serve.run_load(server[0], model, case, clients=8, requests=8, seed=1)
    rng, bodies = np.random.default_rng(1), []
    for _ in range(64):  # batch sizes 1 to 40, against sequential answers over HTTP
        rows = rng.integers(len(case.table), size=int(rng.integers(1, 41)))
        inputs = [
            spec
            | {"shape": [len(rows), 1], "data": case.feeds[spec["name"]][rows].ravel().tolist()}
            for spec in model.metadata["inputs"]
        ]
        bodies.append(json.dumps({"inputs": inputs}).encode())
    url = f"{server[0]}/v2/models/rent/infer"
    sequential = [call(url, body) for body in bodies]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(lambda body: call(url, body), bodies))
    assert all(status == 200 for status, _ in sequential)
    assert concurrent == sequential  # the same JSON: the same numbers, digit for digit


def test_ctrl_c_stops_the_server_with_130_one_line_and_a_log_line_per_request(
    server: Server,
) -> None:
    url, process = server
    if sys.platform == "win32":
        pytest.skip("SIGINT cannot be sent to a child process this way on Windows")
    port = int(url.rsplit(":", 1)[1])
    raw(port, b"POST /v2/models/rent/infer HTTP/1.1\r\nContent-Length: 9\r\n\r\n{", read=False)
    assert call(url + "/v2/models/rent/infer", b" " * (2 << 20))[0] == 413
    # A request is logged just after its answer is sent: wait for that line before the Ctrl-C.
    log = LOGS[process.pid]
    health = sum("'GET /v2/health/live" in line for line in log)
    assert call(url + "/v2/health/live")[0] == 200
    deadline = time.monotonic() + 10
    while sum("'GET /v2/health/live" in line for line in log) == health:
        assert time.monotonic() < deadline, "the last request was never logged"
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 130
    assert process.stderr is not None
    stderr = process.stderr.read()
    assert stderr == "error: interrupted\n"
    time.sleep(0.1)  # the reader thread takes the last lines the server printed
    lines = [line.rstrip("\n") for line in log]  # the log after "serving on"
    # The 413's line comes once its body is drained, after its answer, and the client that left
    # is logged when its read gives up: the order of the lines may vary.
    assert any("'GET /v2/health/live HTTP/1.1' 200 " in line for line in lines)
    assert all(line.split(" ")[1] == "127.0.0.1" for line in lines), lines  # one per request
    assert any("client gone" in line for line in lines)
    assert any(" 413 " in line and "1048576" in line for line in lines)
    assert not any("Traceback" in line for line in lines)
