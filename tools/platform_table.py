"""Measure where the pinned requirements install, and print the table for docs/platforms.md.

A pin "works" on a platform when pip finds a binary wheel of exactly that version for it: no
compiler, no source build, which is what a learner on a laptop can count on. For each platform and
Python version this asks pip, with the platform's wheel tags and ``--only-binary=:all:``, to pick
the wheel of every pin in the requirements files, without installing anything:

    python -m pip install --dry-run --ignore-installed --no-deps --only-binary=:all: \\
        --target TMP --report TMP/report.json --implementation cp \\
        --python-version 3.12 --abi cp312 --platform macosx_14_0_arm64 -r requirements.txt

(``pip download`` with the same options gives the same answer and also downloads the wheels.)
When one call fails, each pin is asked on its own to name the ones without a wheel.

Run it from the repository's folder, with the network to the package index:

    python tools/platform_table.py            # both requirements files, Python 3.10 to 3.14
    python tools/platform_table.py --show-commands

It prints Markdown tables (a row per platform, a column per Python version) to paste into
docs/platforms.md. The answer is the index's, so it can change only when the pins or the index do.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

PYTHON_VERSIONS = ("3.10", "3.11", "3.12", "3.13", "3.14")
DEFAULT_FILES = ("requirements.txt", "requirements-dev.txt")


def manylinux(glibc_minor: int, arch: str) -> list[str]:
    """Every manylinux tag a Linux machine with glibc 2.<glibc_minor> accepts (pip's own
    expansion stops at the legacy names, so the list is spelled out)."""
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(glibc_minor, 4, -1)]
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    tags += [f"{name}_{arch}" for minor, name in legacy.items() if minor <= glibc_minor]
    return tags


@dataclass(frozen=True)
class Platform:
    """A row of the table: a label and the wheel platform tags such a machine accepts."""

    label: str
    tags: tuple[str, ...]


# macOS tags expand downwards inside pip (macosx_14_0_arm64 also accepts 13, 12, 11 and universal2).
PLATFORMS = (
    Platform("Linux x86_64, glibc 2.28+", tuple(manylinux(28, "x86_64"))),
    Platform("Linux aarch64, glibc 2.28+", tuple(manylinux(28, "aarch64"))),
    Platform("Linux x86_64, glibc 2.17 (manylinux2014)", tuple(manylinux(17, "x86_64"))),
    Platform(
        "Linux x86_64, musl 1.2 (Alpine)",
        ("musllinux_1_2_x86_64", "musllinux_1_1_x86_64", "musllinux_1_0_x86_64"),
    ),
    Platform("macOS 14+ Apple silicon (arm64)", ("macosx_14_0_arm64",)),
    Platform("macOS 13 Apple silicon (arm64)", ("macosx_13_0_arm64",)),
    Platform("macOS 15 Intel (x86_64)", ("macosx_15_0_x86_64",)),
    Platform("Windows x64", ("win_amd64",)),
    Platform("Windows on Arm (arm64)", ("win_arm64",)),
)


def pip_command(
    python_version: str, platform: Platform, requirements: list[str], tmp: Path
) -> list[str]:
    """The pip call that picks a wheel for each requirement on one platform, installing nothing."""
    abi = "cp" + python_version.replace(".", "")
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
    command += ["--no-deps", "--only-binary=:all:", "--disable-pip-version-check", "--quiet"]
    command += ["--target", str(tmp / "target"), "--report", str(tmp / "report.json")]
    command += ["--implementation", "cp", "--python-version", python_version, "--abi", abi]
    for tag in platform.tags:
        command += ["--platform", tag]
    return command + requirements


def wheels_found(python_version: str, platform: Platform, requirements: list[str]) -> bool:
    """True when pip finds a binary wheel for every requirement given."""
    with tempfile.TemporaryDirectory() as folder:
        command = pip_command(python_version, platform, requirements, Path(folder))
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            return False
        report = json.loads((Path(folder) / "report.json").read_text(encoding="utf-8"))
        return len(report["install"]) == len(requirements)


def measure_cell(python_version: str, platform: Platform, requirements: list[str]) -> list[str]:
    """The requirements without a wheel for this platform and Python (empty: all of them install).

    One pip call for the whole list; when it fails, the list is halved until each culprit is alone.
    """
    if wheels_found(python_version, platform, requirements):
        return []
    if len(requirements) == 1:
        return requirements
    middle = len(requirements) // 2
    return measure_cell(python_version, platform, requirements[:middle]) + measure_cell(
        python_version, platform, requirements[middle:]
    )


def read_pins(path: Path) -> list[str]:
    """The pins of a requirements file, without comments or environment markers.

    pip evaluates a marker (``; sys_platform == "win32"``) on the machine that runs it, not on the
    platform asked for, so every pin is measured on every platform instead.
    """
    text = path.read_text(encoding="utf-8")
    lines = (line.split("#", 1)[0].split(";", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def table(requirements: list[str], workers: int) -> str:
    """Measure every platform and Python version; return the Markdown table."""
    cells = [(platform, version) for platform in PLATFORMS for version in PYTHON_VERSIONS]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        missing = list(pool.map(lambda cell: measure_cell(cell[1], cell[0], requirements), cells))
    results = dict(zip(cells, missing, strict=True))
    lines = ["| platform | " + " | ".join(PYTHON_VERSIONS) + " |"]
    lines.append("| --- |" + " --- |" * len(PYTHON_VERSIONS))
    for platform in PLATFORMS:
        row = []
        for version in PYTHON_VERSIONS:
            absent = results[(platform, version)]
            names = [pin.partition("==")[0] for pin in absent]
            row.append("yes" if not absent else "no: " + ", ".join(names))
        lines.append(f"| {platform.label} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print one table per requirements file."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("files", nargs="*", default=list(DEFAULT_FILES), help="requirements files")
    parser.add_argument("--workers", type=int, default=2, help="pip calls at the same time")
    parser.add_argument("--show-commands", action="store_true", help="print one pip call per row")
    args = parser.parse_args(argv)
    pip_version = subprocess.run(
        [sys.executable, "-m", "pip", "--version"], capture_output=True, text=True, check=True
    ).stdout.split(" from ")[0]
    print(f"Measured with {pip_version}; a cell names the pins that have no wheel there.\n")
    for name in args.files:
        requirements = read_pins(Path(name))
        print(f"### {name} ({len(requirements)} pins)\n")
        print(table(requirements, args.workers))
        print()
    if args.show_commands:
        for platform in PLATFORMS:
            command = pip_command("3.12", platform, ["-r", "requirements.txt"], Path("TMP"))
            print(" ".join(["python", *command[1:]]), end="\n\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
