"""The docs cannot lie: output samples rerun, and prose quotes only figures its samples show."""

from __future__ import annotations

import platform
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import samples
from conftest import LESSON_CASES

ALL_SAMPLES = [sample for page in samples.PAGES for sample in samples.find_samples(page)]
# Benchmarks take long and "by hand" runs take minutes and gigabytes: their steady lines are
# checked by `python tools/samples.py --check` before a release, not on every test run.
RERUN = [s for s in ALL_SAMPLES if not s.by_hand and "--benchmark" not in s.command]


def test_every_lesson_page_has_a_sample_that_reruns():
    pages = {sample.page.name for sample in RERUN}
    lessons = {path.stem for path in ROOT.glob("*.py")}
    assert {f"{lesson}.md" for lesson in lessons} <= pages


# The samples were made on Linux x86_64. Elsewhere (arm64, macOS, Windows: other BLAS libraries,
# other roundings, other trained weights) they are compared loosely: every figure blanked, every
# printed difference still within its printed bound.
LOOSE = sys.platform != "linux" or platform.machine() != "x86_64"


@pytest.mark.parametrize("sample", RERUN, ids=[f"{s.page.name}: {s.command}" for s in RERUN])
def test_sample_matches_a_fresh_run(sample, lesson_runs):
    # A command that tests/test_scripts.py runs anyway is not run again: its output is reused.
    words = sample.command.split()[1:]
    same = [case for case, (script, args, _) in LESSON_CASES.items() if [script, *args] == words]
    fresh = (
        samples.excerpt(sample, lesson_runs[same[0]][0][0].stdout)
        if same
        else samples.run_sample(sample)
    )
    difference = samples.first_difference(sample.shown, fresh, loose=LOOSE)
    assert difference is None, (
        f"{sample.page.name}: `{sample.command}` prints something else now; "
        f"run `python tools/samples.py` to rewrite the samples. First {difference}"
    )


def test_first_difference_ignores_timings_and_catches_everything_else():
    shown = "batch of 1: 15.2 µs\nspeed-up 39.1x\nlargest difference 3e-08\n"
    assert samples.first_difference(shown, shown.replace("15.2", "16.0")) is None
    assert samples.first_difference(shown, shown.replace("39.1x", "12.0x")) is None
    assert "largest difference 4e-08" in str(
        samples.first_difference(shown, shown.replace("3e-08", "4e-08"))
    )
    assert samples.first_difference(shown, shown + "one more line\n") is not None
    versions = "Versions: Python 3.11.7, numpy 2.4.6\n"
    assert samples.first_difference(versions, versions.replace("3.11.7", "3.13.0")) is None
    assert samples.first_difference(versions, versions.replace("2.4.6", "2.4.7")) is not None


# A figure in prose that a reader would compare with a sample: a timing or a speed-up.
PROSE_FIGURE = re.compile(r"\d+(?:\.\d+)?\s?(?:µs|ms|x\b)")


@pytest.mark.parametrize("page", samples.PAGES, ids=[p.name for p in samples.PAGES])
def test_prose_quotes_only_figures_that_its_samples_show(page):
    text = page.read_text(encoding="utf-8")
    # Everything outside fenced blocks is prose; the fenced blocks are what the runs printed.
    parts = re.split(r"^```.*$", text, flags=re.M)
    prose, blocks = " ".join(parts[0::2]), " ".join(parts[1::2])
    for figure in PROSE_FIGURE.findall(prose):
        number = re.match(r"\d+(?:\.\d+)?", figure)
        assert number is not None
        assert number[0] in blocks, f"{page.name}: prose says {figure!r}, no sample shows it"


def test_a_loose_comparison_blanks_figures_and_still_checks_bounds_and_words():
    shown = "wrote models/a.onnx (279 bytes), accuracy 0.953; difference 2e-07 <= 6e-07\n"
    other = shown.replace("279", "281").replace("0.953", "0.947").replace("/", "\\")
    assert samples.first_difference(shown, other, loose=True) is None
    assert samples.first_difference(shown, other) is not None
    assert samples.first_difference(shown, other.replace("accuracy", "loss"), loose=True)
    assert samples.first_difference(shown, shown.replace("2e-07", "7e-07"), loose=True)


def test_a_difference_beside_its_bound_is_compared_as_being_within_it():
    # AMD and Intel round float32 sums differently: the digits may change, the claim may not.
    shown = "batch of 1: largest difference 2.4e-07 <= 6e-07, vs reference 0 <= 1.2e-06\n"
    assert samples.first_difference(shown, shown.replace("2.4e-07", "0")) is None
    assert samples.first_difference(shown, shown.replace(" 0 <=", " 3.7e-08 <=")) is None
    past = samples.first_difference(shown, shown.replace("2.4e-07", "7e-07"))
    assert past is not None and "past its bound" in past
    assert samples.first_difference(shown, shown.replace("<= 6e-07", "<= 5e-07")) is not None


TEST_REFERENCE = re.compile(r"tests/(test_\w+\.py)::(test_\w+)")


@pytest.mark.parametrize("page", samples.PAGES, ids=[p.name for p in samples.PAGES])
def test_every_test_the_docs_name_exists(page):
    # A page that names `tests/FILE::TEST` as the proof of a claim names a test that is there.
    for file, name in TEST_REFERENCE.findall(page.read_text(encoding="utf-8")):
        source = (ROOT / "tests" / file).read_text(encoding="utf-8")
        assert re.search(rf"^def {name}\(", source, flags=re.M), f"{page.name}: {file}::{name}"
    # A test named alone (`test_1_float64_input`) is one of the suite's tests.
    every = "".join(path.read_text(encoding="utf-8") for path in (ROOT / "tests").glob("test_*.py"))
    for name in re.findall(r"`(test_\w+)`", page.read_text(encoding="utf-8")):
        assert re.search(rf"^def {name}\(", every, flags=re.M), f"{page.name}: {name}"
