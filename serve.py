# /// script
# requires-python = ">=3.11"
# dependencies = [
#     "cloudpickle==3.1.3",
#     "flatbuffers==25.12.19",
#     "joblib==1.6.0",
#     "ml_dtypes==0.6.0",
#     "narwhals==2.29.0",
#     "numpy==2.4.6",
#     "onnx==1.23.2",
#     "onnxruntime==1.32.0",
#     "packaging==26.4",
#     "protobuf==7.36.2",
#     "scikit-learn==1.9.1",
#     "scipy==1.17.1",
#     "skl2onnx==1.20.0",
#     "threadpoolctl==3.8.0",
#     "typing_extensions==4.16.0",
# ]
# ///
"""Serve an ONNX model over HTTP with the Open Inference Protocol, on ONNX Runtime alone.

    client --POST /v2/models/rent/infer {"inputs": [{"name", "shape", "datatype", "data"}]}-->
    ThreadingHTTPServer (a thread per connection) --> checked against session.get_inputs()
    --> one InferenceSession, shared by every thread --> {"outputs": [{"name", "data", ...}]}

1. Train rent bands from a city (a string: BYTES) and an area (FP32); convert with skl2onnx.
2. Publish the file once ONNX Runtime agrees with scikit-learn. 3. Serve it on a free loopback
port. 4. Check every endpoint, 5. the predictions (session.run's, bit for bit), 6. bad requests
(each a 4xx with {"error": ...}; the server goes on), 7. a concurrent load (equal to sequential
runs; throughput, latency). 8. Stop, and print "Verified". The serving side (``Refusal`` to
``serve``) imports ONNX Runtime, NumPy and the standard library only.

    python serve.py                                   # the lesson, in a few seconds
    python serve.py --model models/rent.onnx          # serve on 127.0.0.1:8000 until Ctrl-C
    curl -s 127.0.0.1:8000/v2/models/rent             # its metadata; POST .../rent/infer runs it
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
import json
import math
import secrets
import socket
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import onnxruntime as ort
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument

TARGET_OPSET = {"": 22, "ai.onnx.ml": 3}
IR_VERSION = 10
ROWS = 300  # flats in the training table
ATOL = 1e-5  # scikit-learn computes in float64, the ONNX model in float32
MAX_BODY = 1 << 20  # bytes: a bigger request body gets 413, and the server reads and drops it...
DISCARD = 16 << 20  # ...up to 16 MiB, so that a client still writing it receives the 413
BATCHES = (1, 2, 7, 32)  # rows per request in the concurrent load
SERVER = {"name": "serve.py", "version": ort.__version__, "extensions": []}  # GET /v2
# ONNX Runtime's tensor(float), tensor(int64)... as the protocol's datatypes, and their NumPy types.
DATATYPES = dict(float="FP32", double="FP64", float16="FP16", bool="BOOL", string="BYTES")
DATATYPES |= {f"{u}int{n}": f"{u.upper()}INT{n}" for u in ("", "u") for n in (8, 16, 32, 64)}
NUMPY = {v2: np.dtype({"float": "float32", "string": "O"}.get(t, t)) for t, v2 in DATATYPES.items()}
JSON_TYPES = {"BYTES": (str,), "BOOL": (bool,), "FP": (int, float), "INT": (int,), "UINT": (int,)}


def lesson(args: argparse.Namespace) -> None:
    """Serve --model FILE until Ctrl-C; without it, make, publish, serve and check a model."""
    if "model" in args:  # the serving flags have no defaults in args: unset, they are absent
        return serve(args.model, getattr(args, "host", "127.0.0.1"), getattr(args, "port", 8000))
    print("1. Train in scikit-learn, convert with skl2onnx")
    case = make_case(args.seed)
    print("2. Publish the model once ONNX Runtime, loading it from disk, agrees")
    path = write_model(args.output_dir / "rent.onnx", case)  # served as "rent"
    threads = ort.SessionOptions().intra_op_num_threads  # 0: one per physical core, shared by all
    print(f"3. Serve: ThreadingHTTPServer, one shared session (intra_op_num_threads={threads})")
    with running_server(ServedModel(path)) as (url, server):
        print("4. The endpoints of the Open Inference Protocol (REST, version 2.0)")
        check_endpoints(url, server.model)
        print("5. Predictions over HTTP, against session.run and scikit-learn")
        check_predictions(url, server.model, case)
        print("6. Bad requests: each one answered in JSON, and the server goes on")
        check_bad_requests(url)
        print(f"7. A concurrent load: {args.clients} clients x {args.requests} requests")
        run_load(url, server.model, case, args.clients, args.requests, args.seed)
    print(f"8. Server stopped, port closed, {len(server.errors)} internal errors")
    print("Verified: every answer over HTTP equals ONNX Runtime in process and scikit-learn")
    names = ("numpy", "onnx", "onnxruntime", "scikit-learn", "skl2onnx")
    versions = ", ".join(f"{name} {version(name)}" for name in names)
    print(f"Versions: Python {sys.version.split()[0]}, {versions}")


# --- 1. Train and convert (the training side: scikit-learn, skl2onnx, onnx) ---------------------


class Case(NamedTuple):
    """A scikit-learn pipeline, its ONNX model, and the rows in both forms."""

    model: Any  # onnx.ModelProto
    estimator: Any
    table: np.ndarray  # what estimator.predict takes: a string column and a float one
    feeds: dict[str, np.ndarray]  # the same rows as the model's inputs


def make_case(seed: int) -> Case:
    """Rent bands ("high", "low") from a city and an area; one string input, one float input."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(seed)
    city = rng.choice(["Lyon", "Nice", "Paris"], size=(ROWS, 1)).astype(object)
    area = rng.uniform(15, 120, size=(ROWS, 1)).astype(np.float32)
    rent = area * np.where(city == "Paris", 30, 18) + rng.normal(0, 250, size=(ROWS, 1))
    band = np.where(rent > 1500, "high", "low").ravel()
    table = np.hstack([city, area.astype(object)])
    columns = ColumnTransformer([("city", OneHotEncoder(), [0]), ("area", StandardScaler(), [1])])
    pipeline = make_pipeline(columns, LogisticRegression()).fit(table, band)
    print(f"   {ROWS} flats, accuracy {pipeline.score(table, band):.3f}; inputs city and area")
    inputs = [("city", StringTensorType([None, 1])), ("area", FloatTensorType([None, 1]))]
    # By default, ZipMap gives the probabilities as a list of dicts: not a tensor, not servable.
    options = {id(pipeline[-1]): {"zipmap": False}}
    model = to_onnx(pipeline, initial_types=inputs, target_opset=TARGET_OPSET, options=options)
    model.ir_version = IR_VERSION
    for value in [*model.graph.input, *model.graph.output]:
        # skl2onnx leaves the batch dimension unnamed. Named N in every input and output, it says
        # that `city` and `area` have as many rows: the server checks it before the run.
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    return Case(model, pipeline, table, {"city": city, "area": area})


# --- 2. Publish ----------------------------------------------------------------------------------


def write_model(path: Path, case: Case) -> Path:
    """Save through publish: the file is loaded back from disk and verified, or not written."""
    import onnx

    with publish(path) as draft:
        onnx.save_model(case.model, draft)
        difference = verify(load_session(draft), case)
    print(
        f"   wrote {path} ({path.stat().st_size} bytes); probabilities {difference:.1e} <= {ATOL:g}"
    )
    return path


def load_session(path: Path) -> ort.InferenceSession:
    """Open a model file in ONNX Runtime on the CPU, once: creating a session is the costly step."""
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def verify(session: ort.InferenceSession, case: Case) -> float:
    """Labels must equal scikit-learn's, probabilities match within ATOL; return the difference."""
    labels, probabilities = session.run(["label", "probabilities"], case.feeds)
    np.testing.assert_array_equal(labels, case.estimator.predict(case.table))
    expected = case.estimator.predict_proba(case.table)
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=ATOL)
    return float(np.max(np.abs(probabilities - expected)))


# --- 3. Serve: from here to serve(), ONNX Runtime, NumPy and the standard library only ----------


class Refusal(Exception):
    """A request answered with an HTTP error: Refusal(status, message) gives {"error": message}."""


class ServedModel:
    """One model file, served under its name by one session that every request thread shares."""

    metadata: dict[str, Any]  # GET /v2/models/{name}: its name, platform, inputs and outputs

    def __init__(self, path: Path) -> None:
        self.name, self.session = path.stem, load_session(path)
        inputs = [describe(path, value) for value in self.session.get_inputs()]
        outputs = [describe(path, value) for value in self.session.get_outputs()]
        self.dims = {value.name: value.shape for value in self.session.get_inputs()}  # names too
        self.metadata = dict(name=self.name, platform="onnx_onnxv1", inputs=inputs, outputs=outputs)


def describe(path: Path, value: Any) -> dict[str, Any]:
    """An input or output as the protocol describes it: its shape has -1 for any size."""
    if value.type[7:-1] not in DATATYPES:  # tensor(float) and so on: not ZipMap's seq(map(...))
        raise Failure(f"{path}: {value.name} is {value.type}; the protocol carries tensors")
    shape = [size if isinstance(size, int) else -1 for size in value.shape]
    return {"name": value.name, "datatype": DATATYPES[value.type[7:-1]], "shape": shape}


def to_array(spec: dict[str, Any], item: dict[str, Any]) -> np.ndarray:
    """Check one input of a request against the model's; return it as an array."""
    name, datatype = spec["name"], spec["datatype"]
    shape, flat = item.get("shape"), item.get("data")
    if item.get("datatype") != datatype:
        raise Refusal(400, f"input {name!r} has datatype {item.get('datatype')!r}, not {datatype}")
    if not isinstance(shape, list) or not all(type(size) is int and size >= 0 for size in shape):
        raise Refusal(400, f"input {name!r}: shape must be a list of whole numbers")
    fixed = zip(shape, spec["shape"], strict=False)  # the model's -1 takes any size
    if len(shape) != len(spec["shape"]) or any(want not in (-1, got) for got, want in fixed):
        raise Refusal(400, f"input {name!r} has shape {shape}; the model takes {spec['shape']}")
    if math.prod(shape) == 0:
        raise Refusal(400, f"input {name!r} is empty (shape {shape}): send at least one row")
    for _ in range(len(shape) - 1):  # rows may come nested, [[1, 2], [3, 4]], or flat: [1, 2, 3, 4]
        if isinstance(flat, list) and flat and all(isinstance(row, list) for row in flat):
            flat = [value for row in flat for value in row]
    kinds = JSON_TYPES[datatype.rstrip("0123456789")]  # FP32 takes 1 and 1.5; BYTES takes strings
    flat = flat if isinstance(flat, list) else []
    if len(flat) != math.prod(shape) or any(type(value) not in kinds for value in flat):
        raise Refusal(400, f"input {name!r}: data must be {math.prod(shape)} {datatype} values")
    with np.errstate(over="ignore"):  # 1e39 becomes inf in float32: refused below, as NaN is
        try:
            array = np.array(flat, dtype=NUMPY[datatype]).reshape(shape)
        except OverflowError:  # 300 for UINT8
            array = np.array(np.inf)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise Refusal(400, f"input {name!r}: a value is not a finite {datatype}")
    return array


def parse_request(model: ServedModel, body: bytes) -> tuple[dict[str, Any], list[str], dict]:
    """Check a request against the session's own inputs; return the feeds, outputs and id."""
    try:  # json takes NaN and Infinity, which JSON lacks: to_array refuses them as not finite
        request = json.loads(body)
    except (ValueError, RecursionError) as error:  # not UTF-8, not JSON, or nested too deeply
        raise Refusal(400, f"malformed JSON: {error}") from None
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise Refusal(400, 'the body must be a JSON object with an "inputs" list')
    specs, feeds = {spec["name"]: spec for spec in model.metadata["inputs"]}, {}
    sizes: dict[Any, tuple[int, str]] = {}  # a named dimension's size, and who set it first
    for item in request["inputs"]:
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or name not in specs or name in feeds:
            raise Refusal(400, f"input {name!r}: unknown, or given twice; the model has {[*specs]}")
        feeds[name] = to_array(specs[name], item)
        for dim, size in zip(model.dims[name], feeds[name].shape, strict=True):
            first, by = sizes.setdefault(dim, (size, name))  # one N for every input
            if isinstance(dim, str) and first != size:
                raise Refusal(400, f"inputs {by!r} and {name!r} disagree on {dim}: {first}, {size}")
    if missing := [name for name in specs if name not in feeds]:
        raise Refusal(400, f"missing input {missing}; the model takes {list(specs)}")
    names = [spec["name"] for spec in model.metadata["outputs"]]
    wanted = request.get("outputs", [{"name": name} for name in names])
    if not isinstance(wanted, list) or any(
        not isinstance(output, dict) or output.get("name") not in names for output in wanted
    ):
        raise Refusal(400, f"outputs must be a list of objects, each naming one of {names}")
    if not isinstance(request.get("id", ""), str):
        raise Refusal(400, "id must be a string")
    return feeds, [o["name"] for o in wanted], {"id": request["id"]} if "id" in request else {}


def infer(model: ServedModel, body: bytes) -> dict[str, Any]:
    """Answer one inference request: check it, run the shared session, encode the outputs."""
    feeds, names, request_id = parse_request(model, body)
    options = ort.RunOptions()  # per call: the session itself is shared by every thread
    options.log_severity_level = 4  # a refused run is the client's answer, not a line on stderr
    try:
        results = model.session.run(names, feeds, options)
    except (Fail, InvalidArgument) as error:
        raise Refusal(400, f"ONNX Runtime refused it: {str(error).splitlines()[0]}") from None
    # tolist() gives each float32 as the Python float of the same value, and json writes the
    # shortest text that reads back to it: a client that parses it into float32 has the same bits.
    specs = {spec["name"]: spec for spec in model.metadata["outputs"]}  # names and datatypes
    outputs = [
        specs[name] | {"shape": list(result.shape), "data": result.ravel().tolist()}
        for name, result in zip(names, results, strict=True)
    ]
    return {"model_name": model.name, **request_id, "outputs": outputs}


class Handler(BaseHTTPRequestHandler):
    """One request per connection (HTTP/1.0, http.server's default), answered in JSON, logged."""

    timeout = 10  # seconds a client may stall mid-request
    server: ModelServer

    def do_GET(self) -> None:
        """Answer one request: 4xx for the client's mistakes, 500 and a log line for ours."""
        self.started, self.unread = time.perf_counter(), True
        try:
            status, answer = 200, self.dispatch()
        except Refusal as refusal:
            status, answer = refusal.args[0], {"error": refusal.args[1]}
        except (OSError, EOFError) as error:  # the client left, or stalled, while sending
            return self.log_line(f"client gone: {error!r}")
        except Exception as error:  # a bug: the client gets a 500, the server goes on
            self.server.errors.append(repr(error))
            status, answer = 500, {"error": f"internal error ({type(error).__name__})"}
        self.send_json(status, answer)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def dispatch(self) -> dict[str, Any]:
        """Find the endpoint and its answer; 404 and 405 for the wrong path or method."""
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path).strip("/")
        model = self.server.model
        endpoints: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
            "v2": ("GET", lambda: SERVER),
            "v2/health/live": ("GET", lambda: {"live": True}),
            "v2/health/ready": ("GET", lambda: {"ready": True}),
            f"v2/models/{model.name}": ("GET", lambda: model.metadata),
            f"v2/models/{model.name}/ready": ("GET", lambda: {"name": model.name, "ready": True}),
            f"v2/models/{model.name}/infer": ("POST", lambda: infer(model, self.body())),
        }
        method, answer = endpoints.get(path, ("", dict))
        if not method:
            raise Refusal(404, f"no endpoint {self.path[:80]!r} here; the model is {model.name!r}")
        if self.command != method:
            raise Refusal(405, f"{self.command} is not allowed here, only {method}")
        return answer()

    def body(self) -> bytes:
        """The request's body: a declared length, at most MAX_BODY bytes."""
        length = self.headers.get("Content-Length", "")
        if not (length.isascii() and length.isdigit()):
            raise Refusal(411 if not length else 400, "send the body with a Content-Length")
        if int(length) > MAX_BODY:
            raise Refusal(413, f"the body has {length} bytes; this server takes {MAX_BODY}")
        self.unread, body = False, self.rfile.read(int(length))
        if len(body) < int(length):
            raise EOFError(f"{len(body)} of {length} bytes")
        return body

    def send_json(self, status: int, answer: dict[str, Any]) -> None:
        """Send one JSON answer and log it; drop what is left of the body, and close."""
        text = json.dumps(answer).encode()
        with contextlib.suppress(OSError):  # a client that did not wait for its answer
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(text)))
            if status == 405:
                self.send_header("Allow", answer["error"].rpartition(" ")[2])
            self.end_headers()
            self.wfile.write(b"" if self.command == "HEAD" else text)  # unbuffered: sent now
            # Closed now, the socket would answer the rest of a big body with a reset, and a
            # client still writing it would never read this answer: read and drop it first.
            length = self.headers.get("Content-Length", "") if self.unread else ""
            left = min(int(length), DISCARD) if length.isascii() and length.isdigit() else 0
            self.connection.settimeout(1)  # a client that stops writing is not waited for long
            while left > 0 and (chunk := self.rfile.read1(min(left, 1 << 16))):
                left -= len(chunk)
        error = f": {answer['error']}" if status >= 400 else ""
        self.log_line(f"{status} {1000 * (time.perf_counter() - self.started):.1f} ms{error}")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a malformed request line, say), in JSON too."""
        self.started, self.unread = time.perf_counter(), False
        self.send_json(code, {"error": message or self.responses[code][0]})

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: each request is logged once, by log_line."""

    def log_line(self, text: str) -> None:
        """One line per request: the client, the request line (cut at 80), what happened."""
        self.server.log(f"{self.client_address[0]} {self.requestline[:80]!r} {text}")


class ModelServer(ThreadingHTTPServer):
    """The model, shared by the request threads; a failure is a log line, never a traceback."""

    daemon_threads = True  # stopping does not wait for a slow client

    def __init__(self, address: tuple[str, int], model: ServedModel, log: Callable) -> None:
        super().__init__(address, Handler)
        self.model, self.log, self.errors = model, log, list[str]()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """What socketserver would print as a traceback on stderr: one log line, counted."""
        self.errors.append(repr(sys.exc_info()[1]))
        self.log(f"{client_address[0]} error: {self.errors[-1]}")


def serve(path: Path, host: str, port: int) -> None:
    """Serve a model file until Ctrl-C, one log line per request on stdout."""
    model, lock = ServedModel(path), threading.Lock()

    def log(line: str) -> None:
        with lock, contextlib.suppress(OSError, ValueError):  # whole lines, whatever the thread
            print(time.strftime("%H:%M:%S"), line, flush=True)

    with ModelServer((host, port), model, log) as server:
        url = f"http://{host}:{server.server_address[1]}"
        reach = "this machine only" if host in ("127.0.0.1", "localhost") else "the network"
        log(f"serving on {url} ({reach}): {path} as /v2/models/{model.name}; Ctrl-C stops")
        server.serve_forever()


@contextlib.contextmanager
def running_server(model: ServedModel) -> Iterator[tuple[str, ModelServer]]:
    """A quiet server on a free loopback port, in a thread; stopped and its port closed after."""
    started = time.perf_counter()
    with ModelServer(("127.0.0.1", 0), model, log=lambda line: None) as server:  # 0: any port
        threading.Thread(target=server.serve_forever, name="server").start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}"
            call(url + "/v2/health/ready")
            print(f"   {url} ready in {1000 * (time.perf_counter() - started):.1f} ms")
            yield url, server
        finally:
            server.shutdown()  # returns once serve_forever has
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", server.server_port)):
        raise AssertionError("the port still takes connections after the server stopped")


# --- 4-7. A client, with urllib, checking the answers ------------------------------------------

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no proxy for loopback


def call(url: str, body: bytes | None = None, method: str | None = None) -> tuple[int, Any]:
    """Send one request; return its status and its JSON answer, errors included."""
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method=method)
    try:
        with OPENER.open(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.request.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def infer_over_http(url: str, model: ServedModel, feeds: dict, expected: list) -> float:
    """POST the feeds as a client would; the answer must equal `expected` bit for bit; its ms."""
    arrays = [(spec, feeds[spec["name"]]) for spec in model.metadata["inputs"]]  # name, datatype
    inputs = [spec | {"shape": list(a.shape), "data": a.ravel().tolist()} for spec, a in arrays]
    body = json.dumps({"inputs": inputs}).encode()
    started = time.perf_counter()
    status, answer = call(f"{url}/v2/models/{model.name}/infer", body)
    milliseconds = 1000 * (time.perf_counter() - started)
    if status != 200:
        raise AssertionError(f"{status} {answer}")
    for output, want in zip(answer["outputs"], expected, strict=True):
        got = np.array(output["data"], NUMPY[output["datatype"]]).reshape(output["shape"])
        np.testing.assert_array_equal(got, want, strict=True)  # the same dtype and the same bits
    return milliseconds


def check_endpoints(url: str, model: ServedModel) -> None:
    """Health, readiness and metadata; the model's metadata must be its session's own tensors."""
    for path, expected in [
        ("/v2", SERVER),
        ("/v2/health/live", {"live": True}),
        ("/v2/health/ready", {"ready": True}),
        (f"/v2/models/{model.name}", model.metadata),
        (f"/v2/models/{model.name}/ready", {"name": model.name, "ready": True}),
    ]:
        status, answer = call(url + path)
        if (status, answer) != (200, expected):
            raise AssertionError(f"GET {path}: {status} {answer}, not {expected}")
        shown = {"inputs": answer["inputs"]} if "inputs" in answer else answer  # metadata: short
        print(f"   GET {path} -> 200 {json.dumps(shown)}")


def check_predictions(url: str, model: ServedModel, case: Case) -> None:
    """Every row in one request: the answer must equal session.run, which equals scikit-learn."""
    infer_over_http(url, model, case.feeds, model.session.run(None, case.feeds))
    difference = verify(model.session, case)  # the served session, against scikit-learn
    print(f"   {ROWS} rows as session.run, bit for bit; scikit-learn {difference:.1e} <= {ATOL:g}")


def check_bad_requests(url: str) -> None:
    """Each bad request must get its status and a JSON error; the server must go on serving."""
    city = {"name": "city", "datatype": "BYTES", "shape": [2, 1], "data": ["Lyon", "Nice"]}

    def body(**change: Any) -> bytes:  # a good request with a change to its input area
        area = {"name": "area", "datatype": "FP32", "shape": [2, 1], "data": [40, 50]}
        return json.dumps({"inputs": [city, area | change]}).encode()

    infer = "/v2/models/rent/infer"
    for what, path, method, data, expected in [
        ("truncated JSON", infer, None, b'{"inputs": [', 400),
        ("NaN, which JSON lacks", infer, None, body().replace(b"40", b"NaN"), 400),
        ("unknown input", infer, None, body(name="size"), 400),
        ("missing input", infer, None, json.dumps({"inputs": [city]}).encode(), 400),
        ("wrong datatype", infer, None, body(datatype="FP64"), 400),
        ("a number for a string", infer, None, body().replace(b'"Lyon"', b"7"), 400),
        ("data not its shape", infer, None, body(shape=[3, 1]), 400),
        ("wrong rank", infer, None, body(shape=[2]), 400),
        ("empty batch", infer, None, body(shape=[0, 1], data=[]), 400),
        ("inputs disagree on N", infer, None, body(shape=[3, 1], data=[40, 50, 60]), 400),
        ("body of 2 MiB", infer, None, b" " * (2 << 20), 413),
        ("unknown model", "/v2/models/nope/infer", None, body(), 404),
        ("infer with GET", infer, "GET", None, 405),
    ]:
        status, answer = call(url + path, data, method)
        live = call(url + "/v2/health/live")[0] == 200
        if (status, type(answer.get("error")), live) != (expected, str, True):
            raise AssertionError(f"{what}: expected {expected}, got {status} {answer}")
        print(f"   {status} {what}: {answer['error']}"[:100])


def run_load(
    url: str, model: ServedModel, case: Case, clients: int, requests: int, seed: int
) -> None:
    """Clients at once, with batches of mixed sizes: each answer must equal its sequential run."""
    rng, jobs = np.random.default_rng(seed), []
    for size in rng.choice(BATCHES, size=clients * requests):
        rows = rng.integers(ROWS, size=size)
        feeds = {name: array[rows] for name, array in case.feeds.items()}
        jobs.append((feeds, model.session.run(None, feeds)))  # the sequential answer, in process

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:  # each thread a client, sending a request at a time
        try:  # list() raises a client's AssertionError here
            latencies = list(pool.map(lambda job: infer_over_http(url, model, *job), jobs))
        finally:  # after Ctrl-C or a failure, the requests not yet sent are dropped
            pool.shutdown(cancel_futures=True)
    elapsed = time.perf_counter() - started
    print(f"   {len(jobs)} answers, each as its sequential run bit for bit, batches {BATCHES}")
    p50, p90, p99 = np.percentile(latencies, [50, 90, 99])
    rate = f"{len(jobs) / elapsed:.0f} requests per second over {elapsed:.2f} s"
    print(f"   {rate}; latency p50 {p50:.1f} ms, p90 {p90:.1f} ms, p99 {p99:.1f} ms")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The lesson's flags: a file to serve instead of the lesson, and the size of the load."""
    add, whole = parser.add_argument, functools.partial(functools.partial, whole_number)
    unset = argparse.SUPPRESS  # not in args unless given, and no "(default: None)" in --help
    add("--model", type=Path, metavar="FILE", default=unset, help="serve this file until Ctrl-C")
    host = "with --model: 127.0.0.1 (this machine only) unless given; on another address, anyone"
    host += " who can reach this machine can run the model, with no authentication or encryption"
    add("--host", default=unset, help=host)
    port = "with --model: 8000 unless given; 0: any free port"
    add("--port", type=whole(low=0, high=65535), default=unset, help=port)
    add("--clients", type=whole(low=1, high=64), default=8, help="client threads in the load")
    add("--requests", type=whole(low=1, high=1000), default=50, help="requests per client")


def usage_problem(args: argparse.Namespace) -> str | None:
    """Flag combinations that cannot work: the serving flags without --model."""
    if "model" not in args and {"host", "port"} & vars(args).keys():
        return "--host and --port go with --model (the lesson serves on a free loopback port)"
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
