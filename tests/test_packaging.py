"""The package metadata (setup.cfg) against the code and the installed environment: version ranges, every
third-party import declared, no unused hard dependency, and one OpenCV at most."""

from __future__ import annotations

import ast
import functools
import sys
from importlib.metadata import PackageNotFoundError, distribution, packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from setuptools.config.setupcfg import read_configuration

from tests.test_import_graph import PACKAGE_DIRS, _runtime_nodes

ROOT = Path(__file__).resolve().parents[1]
SELF = "vvc-lightning"
OPENCV = {f"opencv-{kind}python{headless}" for kind in ("", "contrib-") for headless in ("", "-headless")}
OPTIONS = read_configuration(ROOT / "setup.cfg")["options"]


def requirements(extra: str | None = None) -> list[Requirement]:
    """The core requirements, or those of one extra (its `vvc-lightning[...]` references expanded)."""
    out = []
    for line in OPTIONS["install_requires"] if extra is None else OPTIONS["extras_require"][extra]:
        req = Requirement(line)
        if canonicalize_name(req.name) == SELF:
            out += [r for e in sorted(req.extras) for r in requirements(e)]
        else:
            out.append(req)
    return out


def names(reqs: list[Requirement]) -> set[str]:
    return {canonicalize_name(r.name) for r in reqs}


def imported_modules(folders: list[Path]) -> set[str]:
    """Top-level names of the third-party modules imported under `folders` (in functions too), and those
    named as string constants to `import_module`."""
    found: set[str] = set()
    for folder in folders:
        for path in folder.rglob("*.py"):
            for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    found |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    found.add(node.module.split(".")[0])
                elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
                      and isinstance(node.args[0].value, str)
                      and ast.unparse(node.func).split(".")[-1] == "import_module"):
                    found.add(node.args[0].value.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "vvc_lightning" and m}


@functools.cache
def module_owners() -> dict[str, set[str]]:
    """Top-level module -> the installed distributions that provide it."""
    return {m: {canonicalize_name(d) for d in ds} for m, ds in packages_distributions().items()}


def closure(reqs: list[Requirement]) -> set[str]:
    """Every distribution that installing `reqs` brings, read from the installed metadata."""
    seen: set[tuple[str, tuple[str, ...]]] = set()
    todo = list(reqs)
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), tuple(sorted(req.extras)))
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = distribution(req.name)
        except PackageNotFoundError:
            pytest.skip(f"{req.name} is not installed here (install the dev extra)")
        for line in dist.requires or []:
            sub = Requirement(line)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in (req.extras or {""})):
                todo.append(sub)
    return {name for name, _ in seen}


def test_core_requirements_are_ranges_and_hold_no_opencv():
    for req in requirements():
        assert not any(s.operator in ("==", "===") for s in req.specifier), f"{req} is a pin, not a range"
        assert req.specifier, f"{req} has no lower bound"
    assert not names(requirements()) & OPENCV


def test_every_third_party_import_of_the_package_is_declared_and_every_core_requirement_is_used():
    owners = module_owners()
    declared = names(requirements()) | names(requirements("metrics"))
    modules = imported_modules(list(PACKAGE_DIRS.values()))
    undeclared = {m: sorted(owners.get(m, {"?"})) for m in modules if not owners.get(m, set()) & declared}
    assert not undeclared, f"imported but not in install_requires nor the metrics extra: {undeclared}"
    used = set().union(*(owners.get(m, set()) for m in modules))
    unused = names(requirements() + requirements("metrics")) - used
    assert not unused, f"declared but never imported by the package: {sorted(unused)}"


def test_tests_benchmarks_and_scripts_import_only_what_the_dev_extra_installs():
    owners = module_owners()
    dev = closure(requirements() + requirements("dev"))
    local = {p.stem for f in ("tests", "benchmarks", "scripts") for p in (ROOT / f).rglob("*.py")}
    modules = imported_modules([ROOT / "tests", ROOT / "benchmarks", ROOT / "scripts"]) - local - {"tests"}
    missing = {m: sorted(owners.get(m, {"?"})) for m in modules if not owners.get(m, set()) & dev}
    assert not missing, f"imported by tests/benchmarks/scripts but not installed by the dev extra: {missing}"


def test_the_core_install_brings_no_opencv_and_the_metrics_extra_exactly_one():
    assert not closure(requirements()) & OPENCV
    assert len(closure(requirements() + requirements("metrics")) & OPENCV) == 1
    assert len(closure(requirements() + requirements("dev")) & OPENCV) == 1


def test_the_constraints_file_pins_every_package_of_the_dev_install_once():
    lines = [ln.split("#")[0].strip() for ln in (ROOT / "constraints.txt").read_text().splitlines()]
    pins = [Requirement(ln) for ln in lines if ln]
    assert all(len(p.specifier) == 1 and next(iter(p.specifier)).operator == "==" for p in pins)
    pinned = names(pins)
    assert len(pinned) == len(pins), "a package is pinned twice"
    assert not (closure(requirements() + requirements("dev")) - {"pip"}) - pinned
    assert len(pinned & OPENCV) == 1
