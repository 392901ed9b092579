"""Rerun the commands whose output the docs show, and rewrite or check those output samples.

A sample in a Markdown page is a fenced ```text block right after a marker comment that names the
command that produced it:

    <!-- sample: python linear_regression.py -->
    <!-- sample: python sklearn_converter.py --model all --benchmark | from: Summary -->
    <!-- sample, by hand: python neural_network.py --layers 26000,26000,3 -->

`| from: TEXT` keeps the output from the first line containing TEXT; `| to: TEXT` ends it at the
first line containing TEXT after that. "by hand" marks a run too long or too large to repeat
here (minutes, gigabytes): the tool leaves it alone, and the page says where it came from.

Each command runs as a reader would run it after the quick start: `python` is this Python, the
script is the repository's, and the working directory is a new empty folder (so models go to
`models/` there). Lines with a timing (µs, ms, s) or a speed-up (2.5x) change from run to run;
a difference printed beside its bound (`2.4e-08 <= 6e-07`) is compared as the claim that it is
within the bound, since its digits depend on the processor; every other line must be the same, and
`--check` fails when one is not. The samples were made on Linux x86_64; on another kind of machine
the sample test compares them loosely (`steady_lines`): every figure blanked, the bounds checked.

    python tools/samples.py              # rewrite every sample in README.md and docs/*.md
    python tools/samples.py --check      # compare instead; exit 1 and show the first difference
    python tools/samples.py --skip-benchmarks   # leave out commands with --benchmark (slow)
    python tools/samples.py --only "neural_network.py --train"   # the commands containing this
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = re.compile(r"^<!-- sample(?P<by_hand>, by hand)?: (?P<spec>.+?) -->\n```text\n", re.M)
# A duration (12.5 µs, 3 ms, 0.41 s) or a ratio of durations (2.5x): the parts that vary.
TIMING = re.compile(r"\d(?:[\d.,]*)\s?(?:µs|us|ms|s|seconds|x)\b")


@dataclass
class Sample:
    """One output sample: where it is, the command, and the text the page shows now."""

    page: Path
    command: str
    start: str | None
    end: str | None
    by_hand: bool
    body_start: int  # offsets of the block's content in the page's text
    body_end: int
    shown: str


def find_samples(page: Path) -> list[Sample]:
    """Return the samples marked in one page."""
    text = page.read_text(encoding="utf-8")
    samples = []
    for match in MARKER.finditer(text):
        command, *options = (part.strip() for part in match["spec"].split("|"))
        start = end = None
        for option in options:
            key, _, value = option.partition(":")
            if key.strip() == "from":
                start = value.strip()
            elif key.strip() == "to":
                end = value.strip()
            else:
                raise ValueError(f"{page.name}: unknown sample option {option!r}")
        body_end = text.index("\n```", match.end() - 1) + 1
        samples.append(
            Sample(
                page,
                command,
                start,
                end,
                bool(match["by_hand"]),
                match.end(),
                body_end,
                text[match.end() : body_end],
            )
        )
    return samples


def run_sample(sample: Sample) -> str:
    """Run the sample's command in a new empty folder; return the part of stdout it shows."""
    words = shlex.split(sample.command)
    if words[0] != "python" or not words[1].endswith(".py"):
        raise ValueError(f"{sample.page.name}: a sample runs `python SCRIPT.py ...`, got {words}")
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run(
            [sys.executable, str(ROOT / words[1]), *words[2:]],
            cwd=folder,
            capture_output=True,
            text=True,
            encoding="utf-8",
            env={**os.environ, "PYTHONIOENCODING": "utf-8"},
            timeout=1800,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"{sample.command} exited {result.returncode}: {result.stderr.strip()}")
    return excerpt(sample, result.stdout)


def excerpt(sample: Sample, stdout: str) -> str:
    """Return the part of a run's stdout that the sample shows."""
    lines = stdout.splitlines()
    if sample.start is not None:
        first = next(i for i, line in enumerate(lines) if sample.start in line)
        lines = lines[first:]
    if sample.end is not None:
        last = next(i for i, line in enumerate(lines) if sample.end in line)
        lines = lines[: last + 1]
    return "".join(line.rstrip() + "\n" for line in lines)


# A measured difference printed beside the bound it must stay within (`2.4e-08 <= 6e-07`): its
# digits depend on the processor (AMD and Intel round float32 sums differently); the claim that it
# is within the bound does not. Such a pair is compared as that claim.
NUMBER = r"\d+(?:\.\d+)?(?:e[+-]?\d+)?"
WITHIN = re.compile(rf"(?<![\w.])({NUMBER}) <= ({NUMBER})")


def steady_lines(output: str, loose: bool = False) -> list[str]:
    """Return the lines that must not change between runs: all but timings and differences.

    loose, for a machine of another kind than the one that made the samples (another processor
    or BLAS, another system): every figure is blanked too, and a path is written with /. What is
    left is what a reader relies on everywhere: the same steps, checks and words, line for line,
    and each difference within its bound (outside_bounds).
    """
    # The packages are pinned; the Python that runs them may be any supported one.
    lines = [
        WITHIN.sub(r"... <= \2", re.sub(r"Python \d+\.\d+\.\d+", "Python 3.x", line))
        for line in output.splitlines()
        if not TIMING.search(line)
    ]
    if loose:
        lines = [
            re.sub(r"\d+(?:[.,]\d+)*(?:e[+-]?\d+)?", "#", line.replace("\\", "/")) for line in lines
        ]
    return lines


def outside_bounds(output: str) -> str | None:
    """Return the first line whose printed difference exceeds the bound beside it, or None."""
    for line in output.splitlines():
        if any(float(value) > float(bound) for value, bound in WITHIN.findall(line)):
            return line
    return None


def first_difference(shown: str, fresh: str, loose: bool = False) -> str | None:
    """Describe the first steady line that differs between two outputs, or None."""
    if (line := outside_bounds(fresh)) is not None:
        return f"line past its bound:\n  fresh: {line}"
    old, new = steady_lines(shown, loose), steady_lines(fresh, loose)
    for index, (a, b) in enumerate(zip(old, new, strict=False)):
        if a != b:
            return f"steady line {index + 1}:\n  docs:  {a}\n  fresh: {b}"
    if len(old) != len(new):
        return f"{len(old)} steady lines in the docs, {len(new)} in a fresh run"
    return None


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or check) every sample; return 0, or 1 when --check finds a difference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare instead of rewriting")
    parser.add_argument("--skip-benchmarks", action="store_true", help="leave out --benchmark")
    parser.add_argument("--only", metavar="TEXT", help="only the commands that contain TEXT")
    args = parser.parse_args(argv)
    status = 0
    for page in PAGES:
        text = original = page.read_text(encoding="utf-8")
        # Rewrite from the end of the page, so earlier offsets stay valid.
        for sample in reversed(find_samples(page)):
            if sample.by_hand or (args.skip_benchmarks and "--benchmark" in sample.command):
                continue
            if args.only is not None and args.only not in sample.command:
                continue
            print(f"{page.relative_to(ROOT)}: {sample.command}", flush=True)
            fresh = run_sample(sample)
            if args.check:
                difference = first_difference(sample.shown, fresh)
                if difference:
                    print(f"  differs, {difference}")
                    status = 1
            else:
                text = text[: sample.body_start] + fresh + text[sample.body_end :]
        if not args.check and text != original:  # pages without a rerun are left untouched
            page.write_text(text, encoding="utf-8")
    return status


if __name__ == "__main__":
    sys.exit(main())
