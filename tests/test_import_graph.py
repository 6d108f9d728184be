"""The package's import graph, read from the source with `ast`: no loops, and the lower layers never reach up."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Installed package name -> folder in the repository (setup.cfg's package_dir).
PACKAGE_DIRS = {
    "vvc_lightning": ROOT / "vvc_lightning",
    "vvc_lightning.backbones": ROOT / "backbones",
    "vvc_lightning.datamodules": ROOT / "datamodules",
    "vvc_lightning.configs": ROOT / "configs",
}
# A module under the key may not import anything under these (the codec is built from a model object;
# reading a checkpoint into a codec is zoo.py's job, above both).
FORBIDDEN = {
    "vvc_lightning.video": ("codec", "training", "evaluation", "cli", "zoo", "backbones", "datamodules"),
    "vvc_lightning.codec": ("training", "evaluation", "cli", "zoo", "datamodules"),
    "vvc_lightning.training": ("cli", "evaluation.harness", "evaluation.inputs", "evaluation.report"),
    "vvc_lightning.backbones": ("codec", "training", "evaluation", "cli", "zoo", "datamodules"),
    "vvc_lightning.datamodules": ("codec", "training", "evaluation", "cli", "zoo", "backbones"),
    "vvc_lightning.errors": ("",),
    "vvc_lightning.ops": ("",),
}


def discover() -> dict[str, Path]:
    """Every module of the package (dotted name -> file), sub-packages included."""
    modules: dict[str, Path] = {}
    for pkg, folder in PACKAGE_DIRS.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("").parts
            if rel[-1] == "__init__":
                rel = rel[:-1]
            modules[".".join((pkg, *rel))] = path
    return modules


def _runtime_nodes(tree: ast.AST):
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


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that `name` imports anywhere in its file (in functions too), relative ones resolved."""
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
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
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


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports."""
    modules = discover()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One loop (as a path a -> ... -> a) per strongly connected group of modules (Tarjan)."""
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
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_loop_in(sorted(g), graph) for g in groups]


def _loop_in(group: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest loop through the group's first module (breadth-first inside the group)."""
    start, members = group[0], set(group)
    prev: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return [*reversed(path), start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    return group


def test_the_graph_covers_the_package_and_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert {"vvc_lightning.cli.main", "vvc_lightning.zoo", "vvc_lightning.backbones.lean_vae",
            "vvc_lightning.datamodules.folder", "vvc_lightning.metrics.lpips"} <= set(graph)
    # In-function imports count: the LightningModule's test step is imported inside a method.
    assert "vvc_lightning.training.test_step" in graph["vvc_lightning.training.model"]
    assert "vvc_lightning.zoo_record" in graph["vvc_lightning.loader"]


def test_relative_imports_resolve(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .sub import b\n")
    (pkg / "sub" / "__init__.py").write_text("from . import b\nfrom ..a import f\n")
    (pkg / "sub" / "b.py").write_text("import os\nfrom typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n"
                                      "    from ..a import f\n")
    modules = {"pkg": pkg / "__init__.py", "pkg.a": pkg / "a.py", "pkg.sub": pkg / "sub" / "__init__.py",
               "pkg.sub.b": pkg / "sub" / "b.py"}
    graph = {n: imports_of(n, p, modules) for n, p in modules.items()}
    assert graph == {"pkg": set(), "pkg.a": {"pkg.sub.b"}, "pkg.sub": {"pkg.sub.b", "pkg.a"}, "pkg.sub.b": set()}
    assert find_cycles(graph) == []
    graph["pkg.sub.b"].add("pkg.sub")
    assert find_cycles(graph) == [["pkg.a", "pkg.sub.b", "pkg.sub", "pkg.a"]]


def test_no_import_loops():
    loops = find_cycles(import_graph())
    assert not loops, "import loops: " + "; ".join(" -> ".join(loop) for loop in loops)


def test_lower_layers_never_import_upper_ones():
    def under(name: str, prefix: str) -> bool:
        return name == prefix or name.startswith(prefix + ".")

    bad = set()
    for module, targets in import_graph().items():
        for layer, banned in FORBIDDEN.items():
            if under(module, layer):
                prefixes = [f"vvc_lightning.{b}" if b else "vvc_lightning" for b in banned]
                bad |= {f"{module} -> {t}" for t in targets if any(under(t, p) for p in prefixes)}
    assert not bad, "imports against the layering: " + "; ".join(sorted(set(bad)))
