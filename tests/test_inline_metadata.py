"""Every lesson script carries PEP 723 inline metadata that pins exactly what CI tests.

A learner who copies one script can run it with nothing installed but uv: `uv run SCRIPT.py` reads
the `# /// script` block at the top, makes an environment with those packages and runs the file.
For that run to be the one CI tested, the block lists the script's own imports plus everything they
pull in (protobuf above all, which onnx serialises with), each pinned to the version in
requirements.txt, and nothing the script does not need (pytest, pandas in a lesson without tables).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = sorted(path.name for path in ROOT.glob("*.py"))

# The reference regular expression from PEP 723 (packaging.python.org, "Inline script metadata").
BLOCK = re.compile(r"(?m)^# /// (?P<type>[a-zA-Z0-9-]+)$\s(?P<content>(^#(| .*)$\s)+)^# ///$")
# An exact pin, with an environment marker where a package has no wheel for every platform.
EXACT_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[A-Za-z0-9.+!-]+)(?:; (?P<marker>.+))?$"
)

# A dependency counts when its marker holds on any platform and Python the project supports, so a
# block written on Linux also covers what Windows or macOS would install.
SUPPORTED_PYTHONS = ("3.11", "3.12", "3.13", "3.14")
SUPPORTED_SYSTEMS = (("linux", "Linux"), ("darwin", "Darwin"), ("win32", "Windows"))


def read_block(text: str) -> dict[str, Any]:
    """Parse the single `# /// script` block of a script, as PEP 723 tools do."""
    blocks = [match for match in BLOCK.finditer(text) if match.group("type") == "script"]
    if len(blocks) != 1:
        raise ValueError(f"expected one '# /// script' block, found {len(blocks)}")
    lines = blocks[0].group("content").splitlines(keepends=True)
    content = "".join(line[2:] if line.startswith("# ") else line[1:] for line in lines)
    return tomllib.loads(content)


def requirements_pins() -> dict[str, str]:
    """requirements.txt as {canonical name: 'name==version'}."""
    pins: dict[str, str] = {}
    for raw in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            pins[canonicalize_name(Requirement(line).name)] = line
    return pins


def imported_distributions(script: Path) -> set[str]:
    """The distributions a script imports from (anywhere in the file, not the standard library)."""
    modules: set[str] = set()
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.partition(".")[0])
    third_party = modules - set(sys.stdlib_module_names) - {"__future__"}
    owners = importlib.metadata.packages_distributions()
    missing = sorted(module for module in third_party if module not in owners)
    if missing:
        raise LookupError(f"{script.name} imports {missing}, which no installed package provides")
    return {canonicalize_name(name) for module in third_party for name in owners[module]}


def marker_applies(marker: Marker) -> bool:
    """True when a requirement's marker holds for some supported Python and operating system."""
    return any(
        marker.evaluate(
            {
                "python_version": version,
                "python_full_version": f"{version}.0",
                "sys_platform": sys_platform,
                "platform_system": system,
                "platform_python_implementation": "CPython",
                "implementation_name": "cpython",
                "extra": "",
            }
        )
        for version in SUPPORTED_PYTHONS
        for sys_platform, system in SUPPORTED_SYSTEMS
    )


def closure(names: Iterable[str]) -> set[str]:
    """The distributions named plus everything they require, from the installed metadata."""
    seen: set[str] = set()
    pending = list(names)
    while pending:
        name = canonicalize_name(pending.pop())
        if name in seen:
            continue
        seen.add(name)
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or marker_applies(requirement.marker):
                pending.append(requirement.name)
    return seen


def project_requires_python() -> str:
    """The oldest Python the project supports, as a requires-python specifier (pyproject's mypy)."""
    with (ROOT / "pyproject.toml").open("rb") as file:
        settings = tomllib.load(file)
    return ">=" + settings["tool"]["mypy"]["python_version"]


def test_there_are_scripts() -> None:
    assert {"linear_regression.py", "neural_network.py", "sklearn_converter.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_block_opens_the_file_and_parses(script: str) -> None:
    text = (ROOT / script).read_text(encoding="utf-8")
    assert text.startswith("# /// script\n"), f"{script}: the PEP 723 block must be its first lines"
    metadata = read_block(text)
    assert set(metadata) == {"requires-python", "dependencies"}, sorted(metadata)


@pytest.mark.parametrize("script", SCRIPTS)
def test_requires_python_is_the_projects(script: str) -> None:
    metadata = read_block((ROOT / script).read_text(encoding="utf-8"))
    assert metadata["requires-python"] == project_requires_python()


@pytest.mark.parametrize("script", SCRIPTS)
def test_dependencies_are_the_pins_of_requirements_txt(script: str) -> None:
    pins = requirements_pins()
    dependencies = read_block((ROOT / script).read_text(encoding="utf-8"))["dependencies"]
    not_exact = [line for line in dependencies if not EXACT_PIN.match(line)]
    assert not not_exact, f"{script}: write each dependency as name==version, not {not_exact}"
    differing = {
        line: pins.get(canonicalize_name(line.partition("==")[0]), "not in requirements.txt")
        for line in dependencies
        if pins.get(canonicalize_name(line.partition("==")[0])) != line
    }
    assert not differing, f"{script}: inline pin -> requirements.txt: {differing}"
    names = [canonicalize_name(line.partition("==")[0]) for line in dependencies]
    assert len(names) == len(set(names)), f"{script}: a dependency is listed twice: {names}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_dependencies_are_the_imports_and_what_they_need(script: str) -> None:
    dependencies = read_block((ROOT / script).read_text(encoding="utf-8"))["dependencies"]
    listed = {canonicalize_name(line.partition("==")[0]) for line in dependencies}
    needed = closure(imported_distributions(ROOT / script))
    assert listed == needed, (
        f"{script}: missing {sorted(needed - listed)}, not needed {sorted(listed - needed)}"
    )
    unpinned = needed - set(requirements_pins())
    assert not unpinned, f"{script} needs {sorted(unpinned)}, which requirements.txt does not pin"


def test_closure_follows_markers_for_every_supported_platform() -> None:
    # pytest needs colorama on Windows only: a block written on Linux must still see it.
    requirement = Requirement('colorama>=0.4; sys_platform == "win32"')
    assert requirement.marker is not None
    assert marker_applies(requirement.marker)
    assert not marker_applies(Marker('python_version < "3.11"'))


def test_read_block_rejects_a_second_block() -> None:
    block = '# /// script\n# requires-python = ">=3.11"\n# ///\n'
    assert read_block(block) == {"requires-python": ">=3.11"}
    with pytest.raises(ValueError, match="found 2"):
        read_block(block + "\n" + block)
