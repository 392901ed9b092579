"""Measure which older onnxruntime releases load (and run) the files the lessons write.

The lessons pin opset 22 and IR version 10. Whether an older ONNX Runtime can open such a file is a
question for that runtime, so this asks it: the lessons write their files with the pinned versions
(into a temporary folder), then, for each onnxruntime version given, a new virtual environment gets
only that onnxruntime from the package index (with the numpy pip picks for it), and a small probe
opens every ``.onnx`` file in it on the CPU. A file with a ``.json`` beside it (other_runtimes.py
writes them) is also run on its inputs and compared with the outputs the pinned onnxruntime gave.

Run it from the repository's folder, with the network to the package index (each environment
downloads one onnxruntime wheel, 15 to 20 MB):

    python tools/oldest_onnxruntime.py                          # 1.20.1, 1.21.0, 1.22.0
    python tools/oldest_onnxruntime.py 1.17.3 1.19.2 1.21.0 --lessons other_runtimes.py
    python tools/oldest_onnxruntime.py --models-dir models      # files you already have

It prints a Markdown table (a row per version) for docs/other_runtimes.md, and for each version the
first line of each distinct error. The answer depends on the files and on those releases only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VERSIONS = ("1.20.1", "1.21.0", "1.22.0")
DEFAULT_LESSONS = (
    "linear_regression.py",
    "neural_network.py",
    "sklearn_converter.py",
    "optimize_and_quantize.py",
    "tabular_pipeline.py",
    "other_runtimes.py",
)

# Runs inside each temporary environment: open every file; run the ones with a JSON file beside.
PROBE = r"""
import json, re, sys
from pathlib import Path
import numpy as np
import onnxruntime as ort

def decode(tensor):
    data = tensor["data"]
    if tensor["type"] == "string":
        return np.array(data, dtype=object).reshape(tensor["dims"])
    if tensor["type"] == "int64":
        return np.array([int(v) for v in data], dtype=np.int64).reshape(tensor["dims"])
    return np.array([float(v) for v in data]).astype(np.float32).reshape(tensor["dims"])

results = {}
for path in sorted(Path(sys.argv[1]).rglob("*.onnx")):
    key = str(path.relative_to(sys.argv[1]))
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:
        # The reason is at the end: before it come the file's name, a C++ source line and the
        # C++ function's signature (up to its last ") "), then sentences: keep the last one.
        text = " ".join(str(error).split()).rpartition(") ")[2]
        sentences = [s for s in re.split(r"(?<=[.])\s+", text) if s]
        results[key] = {"loads": False, "error": (sentences or [text])[-1][:200]}
        continue
    results[key] = {"loads": True}
    spec_path = path.with_suffix(".json")
    if spec_path.is_file():
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        inputs = {name: decode(t) for name, t in spec["inputs"].items()}
        names = [o.name for o in session.get_outputs()]
        outputs = dict(zip(names, session.run(names, inputs)))
        worst = 0.0
        for name, tensor in spec["outputs"].items():
            expected, actual = decode(tensor), outputs[name]
            if expected.dtype.kind == "f":
                same_nan = np.array_equal(np.isnan(expected), np.isnan(actual))
                finite = ~np.isnan(expected)
                gap = float(np.max(np.abs(actual[finite] - expected[finite]), initial=0))
                worst = max(worst, gap if same_nan else float("inf"))
            elif not np.array_equal(actual.astype(expected.dtype), expected):
                worst = float("inf")
        results[key]["difference"] = worst
print(json.dumps({"onnxruntime": ort.__version__, "results": results}))
"""


def write_models(lessons: list[str], folder: Path) -> None:
    """Run each lesson with its defaults, writing into folder/<lesson>/ with this Python."""
    for lesson in lessons:
        target = folder / Path(lesson).stem
        command = [sys.executable, str(ROOT / lesson), "--output-dir", str(target)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise SystemExit(f"error: {lesson} failed: {result.stderr.strip()[-300:]}")
        print(f"wrote the files of {lesson}", file=sys.stderr)


def probe(version: str, models: Path, work: Path) -> dict:
    """A new environment with onnxruntime==version only; the probe's results there."""
    venv = work / f"venv-{version}"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    result = subprocess.run(
        [*install, f"onnxruntime=={version}"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        return {"error": "does not install here: " + result.stderr.strip().splitlines()[-1]}
    # Releases before numpy 2 (onnxruntime 1.18 and earlier) install beside numpy 2 and then fail
    # to import: give them the numpy 1 they were built for, and say so in the table.
    note = ""
    if subprocess.run([str(python), "-c", "import onnxruntime"], capture_output=True).returncode:
        subprocess.run([*install, "numpy<2"], capture_output=True, check=True)
        note = " (with numpy<2)"
    run = subprocess.run(
        [str(python), "-c", PROBE, str(models)], capture_output=True, text=True, check=False
    )
    if run.returncode != 0:
        return {"error": "the probe failed: " + run.stderr.strip()[-300:]}
    return json.loads(run.stdout) | {"note": note}


def table(measured: dict[str, dict]) -> str:
    """The Markdown table: per version, the files that load, that run the same, the errors."""
    header = "| onnxruntime | files that load | files run on their inputs, same outputs | errors |"
    lines = [header]
    lines.append("| --- | --- | --- | --- |")
    for version, answer in measured.items():
        if "error" in answer:
            lines.append(f"| {version} | - | - | {answer['error']} |")
            continue
        results = answer["results"]
        loads = [key for key, value in results.items() if value["loads"]]
        ran = [value["difference"] for value in results.values() if "difference" in value]
        same = sum(1 for gap in ran if gap <= 1 / 255 + 1e-5)
        errors = sorted({value["error"][:140] for value in results.values() if not value["loads"]})
        why = "; ".join(f"`{error}`" for error in errors) or "none fail"
        counts = f"{len(loads)} of {len(results)} | {same} of {len(ran)}"
        lines.append(f"| {version}{answer['note']} | {counts} | {why} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Write the models (or take a folder of them), probe each version, print the table."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("versions", nargs="*", default=list(DEFAULT_VERSIONS))
    parser.add_argument("--lessons", nargs="+", default=list(DEFAULT_LESSONS))
    parser.add_argument("--models-dir", type=Path, help="probe these files instead of writing them")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        models = args.models_dir or work / "models"
        if args.models_dir is None:
            write_models(args.lessons, models)
        measured = {}
        for version in args.versions:
            print(f"probing onnxruntime {version}", file=sys.stderr)
            measured[version] = probe(version, models, work)
        print(table(measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
