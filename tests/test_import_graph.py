"""The package's import graph, read from the source with `ast`: no two concerns import each other, and the
lower layers never reach up.

A concern is the innermost package (folder) that holds a module: `vvc_lightning.training`,
`vvc_lightning.metrics`, `vvc_lightning.codec.entropy`, `vvc_lightning.codec.pipeline`, ...; each module at
the top of the package (`vvc_lightning.api`, `vvc_lightning.model`, ...) is a concern of its own. Every
import in a file counts (module level and inside functions, relative ones resolved), except those under
`if TYPE_CHECKING:`, which never run.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator, Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = "vvc_lightning"
# Installed package name -> folder in the repository (setup.cfg's package_dir).
PACKAGE_DIRS = {
    TOP: ROOT / "vvc_lightning",
    f"{TOP}.backbones": ROOT / "backbones",
    f"{TOP}.datamodules": ROOT / "datamodules",
    f"{TOP}.configs": ROOT / "configs",
}
# A module under the key may not import anything under these (the codec is built from a model object;
# turning a checkpoint, exported file or zoo name into a model is the loader's job, above both).
FORBIDDEN = {
    "vvc_lightning.video": ("codec", "training", "evaluation", "cli", "store.zoo", "backbones", "datamodules",
                            "metrics"),
    "vvc_lightning.codec": ("training", "evaluation", "cli", "store.zoo", "datamodules", "metrics"),
    "vvc_lightning.codec.entropy": ("codec.pipeline",),
    "vvc_lightning.training": ("cli", "evaluation", "api"),
    # the inference model, its loader and the zoo sit below training: fit builds on them, never the reverse
    "vvc_lightning.model": ("training", "evaluation", "cli", "api", "store.loader", "store.zoo"),
    "vvc_lightning.store.loader": ("training", "evaluation", "cli", "api"),
    "vvc_lightning.store.zoo": ("training", "evaluation", "cli", "api"),
    "vvc_lightning.store.record": ("training", "evaluation", "cli", "api"),
    "vvc_lightning.store.export": ("training", "evaluation", "cli", "api"),
    "vvc_lightning.metrics": ("training", "evaluation", "cli", "store.zoo", "codec", "datamodules"),
    "vvc_lightning.backbones": ("codec", "training", "evaluation", "cli", "store.zoo", "datamodules",
                                "metrics"),
    "vvc_lightning.datamodules": ("codec", "training", "evaluation", "cli", "store.zoo", "backbones",
                                  "metrics"),
    "vvc_lightning.errors": ("",),
    "vvc_lightning.ops": ("",),
}

Graph = dict[str, set[str]]


def discover(package_dirs: Mapping[str, Path] = PACKAGE_DIRS) -> dict[str, Path]:
    """Every module of the packages (dotted name -> file), sub-packages included."""
    modules: dict[str, Path] = {}
    for pkg, folder in package_dirs.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("").parts
            if rel[-1] == "__init__":
                rel = rel[:-1]
            modules[".".join((pkg, *rel))] = path
    return modules


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node, skipping `if TYPE_CHECKING:` bodies (never run, so never part of a loop)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def imports_of(name: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The package modules that `name` imports anywhere in its file (in functions too), relative ones
    resolved."""
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [
                f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names
            ]
        else:
            continue
        for target in targets:
            # `import a.b.c` runs a.b.c: take the longest known module the name starts with.
            parts = target.split(".")
            while parts and ".".join(parts) not in modules:
                parts.pop()
            if parts and ".".join(parts) != name:
                found.add(".".join(parts))
    return found


def import_graph(package_dirs: Mapping[str, Path] = PACKAGE_DIRS) -> Graph:
    """Module -> the package modules it imports."""
    modules = discover(package_dirs)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def concern_of(module: str, modules: Mapping[str, Path], top: str = TOP) -> str:
    """The innermost package holding `module` (a package is its own concern); a top-level module is its
    own."""
    if modules[module].name == "__init__.py":
        return module
    parent = module.rsplit(".", 1)[0]
    return module if parent == top else parent


def concern_graph(graph: Graph, modules: Mapping[str, Path], top: str = TOP) -> dict[str, dict[str, str]]:
    """Concern -> {concern it imports: one module-level import that shows it, 'a.b -> c.d'}."""
    out: dict[str, dict[str, str]] = {concern_of(m, modules, top): {} for m in graph}
    for module in sorted(graph):
        src = concern_of(module, modules, top)
        for target in sorted(graph[module]):
            dst = concern_of(target, modules, top)
            if dst != src:
                out[src].setdefault(dst, f"{module} -> {target}")
    return out


def _strong_groups(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def _shortest_path(start: str, end: str, graph: Mapping[str, set[str]], members: set[str]) -> list[str]:
    """A shortest path start -> ... -> end through `members` (breadth-first)."""
    prev: dict[str, str] = {start: start}
    frontier = [start]
    while end not in prev:
        frontier = [w for v in frontier for w in sorted(set(graph[v]) & members) if w not in prev
                    and prev.setdefault(w, v) == v]
    path = [end]
    while path[-1] != start:
        path.append(prev[path[-1]])
    return path[::-1]


def find_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Loops as paths a -> ... -> a: for every edge inside a strongly connected group, a shortest loop
    through it (each loop once, starting at its first node in sorted order)."""
    loops: set[tuple[str, ...]] = set()
    for group in _strong_groups(graph):
        members = set(group)
        for v in group:
            for w in sorted(set(graph[v]) & members):
                ring = [v, *_shortest_path(w, v, graph, members)[:-1]]
                first = ring.index(min(ring))
                ring = ring[first:] + ring[:first]
                loops.add((*ring, ring[0]))
    return [list(loop) for loop in sorted(loops)]


def concern_loops(package_dirs: Mapping[str, Path] = PACKAGE_DIRS, top: str = TOP) -> list[str]:
    """Each loop between concerns, written 'a -> b -> a' with the import that makes each step."""
    modules = discover(package_dirs)
    graph = {name: imports_of(name, path, modules) for name, path in modules.items()}
    concerns = concern_graph(graph, modules, top)
    loops = find_cycles({c: set(deps) for c, deps in concerns.items()})
    return [" -> ".join(loop) + " (" + "; ".join(concerns[a][b] for a, b in itertools.pairwise(loop)) + ")"
            for loop in loops]


def layer_violations(graph: Graph, forbidden: Mapping[str, tuple[str, ...]] = FORBIDDEN) -> set[str]:
    """'module -> target' for each import of a lower layer reaching into one it must not use."""

    def under(name: str, prefix: str) -> bool:
        return name == prefix or name.startswith(prefix + ".")

    bad = set()
    for module, targets in graph.items():
        for layer, banned in forbidden.items():
            if under(module, layer):
                prefixes = [f"{TOP}.{b}" if b else TOP for b in banned]
                bad |= {f"{module} -> {t}" for t in targets if any(under(t, p) for p in prefixes)}
    return bad


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_graph_covers_the_package_and_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert {"vvc_lightning.cli.main", "vvc_lightning.store.zoo", "vvc_lightning.backbones.lean_vae",
            "vvc_lightning.datamodules.folder", "vvc_lightning.metrics.lpips"} <= set(graph)
    assert "vvc_lightning.metrics.perceptual" in graph["vvc_lightning.metrics.lpips"]
    # In-function imports count: the synthetic clips import their writer inside a function.
    assert "vvc_lightning.video.video_io" in graph["vvc_lightning.datamodules.synthetic"]


def test_concerns_are_innermost_packages_and_top_level_modules():
    modules = discover()
    assert concern_of("vvc_lightning.codec.entropy.gain", modules) == "vvc_lightning.codec.entropy"
    assert concern_of("vvc_lightning.codec.pipeline", modules) == "vvc_lightning.codec.pipeline"
    assert concern_of("vvc_lightning.metrics.fidelity", modules) == "vvc_lightning.metrics"
    assert concern_of("vvc_lightning.backbones.lean_vae", modules) == "vvc_lightning.backbones"
    assert concern_of("vvc_lightning.store.zoo", modules) == "vvc_lightning.store"
    assert concern_of("vvc_lightning.model", modules) == "vvc_lightning.model"
    assert concern_of("vvc_lightning", modules) == "vvc_lightning"


def test_relative_imports_resolve(tmp_path):
    pkg = tmp_path / "pkg"
    _write(pkg, {"__init__.py": "", "a.py": "def f():\n    from .sub import b\n",
                 "sub/__init__.py": "from . import b\nfrom ..a import f\n",
                 "sub/b.py": "import os\nfrom typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                             "    from ..a import f\n"})
    graph = import_graph({"pkg": pkg})
    assert graph == {
        "pkg": set(),
        "pkg.a": {"pkg.sub.b"},
        "pkg.sub": {"pkg.sub.b", "pkg.a"},
        "pkg.sub.b": set(),
    }
    assert find_cycles(graph) == []
    graph["pkg.sub.b"].add("pkg.sub")
    assert find_cycles(graph) == [
        ["pkg.a", "pkg.sub.b", "pkg.sub", "pkg.a"],
        ["pkg.sub", "pkg.sub.b", "pkg.sub"],
    ]


def test_a_loop_between_two_folders_through_in_function_imports_is_reported(tmp_path):
    pkg = tmp_path / "pkg"
    _write(pkg, {"__init__.py": "", "alpha/__init__.py": "", "beta/__init__.py": "",
                 "alpha/one.py": "def f():\n    from pkg.beta.two import g\n    return g\n",
                 "alpha/three.py": "X = 1\n",
                 "beta/two.py": "def g():\n    from ..alpha import three\n    return three.X\n"})
    # No module loop: alpha.one -> beta.two -> alpha.three.
    assert find_cycles(import_graph({"pkg": pkg})) == []
    loops = concern_loops({"pkg": pkg}, top="pkg")
    assert loops == ["pkg.alpha -> pkg.beta -> pkg.alpha "
                     "(pkg.alpha.one -> pkg.beta.two; pkg.beta.two -> pkg.alpha.three)"]


def test_a_loop_through_three_concerns_is_reported(tmp_path):
    pkg = tmp_path / "pkg"
    _write(pkg, {"__init__.py": "", "alpha/__init__.py": "", "alpha/one.py": "from pkg import gamma\n",
                 "gamma.py": "def h():\n    import pkg.beta.two\n",
                 "beta/__init__.py": "", "beta/two.py": "from pkg.alpha import one\n"})
    assert concern_loops({"pkg": pkg}, top="pkg") == [
        "pkg.alpha -> pkg.gamma -> pkg.beta -> pkg.alpha "
        "(pkg.alpha.one -> pkg.gamma; pkg.gamma -> pkg.beta.two; pkg.beta.two -> pkg.alpha.one)"]


def test_folders_that_import_one_way_pass(tmp_path):
    pkg = tmp_path / "pkg"
    _write(pkg, {"__init__.py": "", "alpha/__init__.py": "from .one import f\n", "beta/__init__.py": "",
                 "alpha/one.py": "def f():\n    from pkg.beta.two import g\n    return g\n",
                 "beta/two.py": "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                                "    from pkg.alpha.one import f\n\ndef g():\n    from . import three\n",
                 "beta/three.py": "from .two import g\n"})
    assert concern_loops({"pkg": pkg}, top="pkg") == []


def test_no_loop_between_concerns():
    loops = concern_loops()
    assert not loops, "concerns that import each other:\n" + "\n".join(loops)


def test_lower_layers_never_import_upper_ones():
    bad = layer_violations(import_graph())
    assert not bad, "imports against the layering: " + "; ".join(sorted(bad))


def test_no_import_loops_between_modules():
    loops = find_cycles(import_graph())
    assert not loops, "import loops: " + "; ".join(" -> ".join(loop) for loop in loops)


def test_the_top_level_shows_the_architecture_and_moved_modules_keep_their_old_names():
    import importlib

    import vvc_lightning

    top = [p.name for p in (ROOT / "vvc_lightning").iterdir() if p.suffix == ".py"]
    assert len(top) <= 12, sorted(top)
    assert not any((ROOT / "vvc_lightning" / f"{old.split('.')[-1]}.py").exists()
                   for old in vvc_lightning.MOVED)
    for old, new in vvc_lightning.MOVED.items():
        assert importlib.import_module(old) is importlib.import_module(new), old
    from vvc_lightning.config import load_config
    from vvc_lightning.zoo import get_entry

    assert load_config.__module__ == "vvc_lightning.configuration.config"
    assert get_entry.__module__ == "vvc_lightning.store.zoo"
