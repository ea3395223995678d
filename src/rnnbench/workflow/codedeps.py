"""The source files a rule's command runs, found from the imports (no torch).

A rule lists them as inputs (``code=module_sources("rnnbench.analysis.sizes", SRC)``), so
editing any module its command imports, directly or through another, reruns it, and no
hand-written list can leave one out. Only rnnbench's own modules count (their files under
``src``); an import inside a function counts too.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path


def module_file(module: str, src: Path) -> Path | None:
    """The file of a dotted rnnbench module (``rnnbench.analysis.sizes``), or None when the
    name is not a module (``from rnnbench.io import write_csv`` names a function)."""
    base = src.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path: Path) -> set[str]:
    """The rnnbench modules (or module.name) ``path`` imports, at any depth."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("rnnbench")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rnnbench"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


@cache
def _closure(module: str, src: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        path = module_file(name, Path(src))
        if path is None or str(path) in seen:
            continue
        seen[str(path)] = None
        todo += sorted(_imports(path))
    return tuple(sorted(seen))


def module_sources(module: str, src: str | Path) -> list[str]:
    """Every source file that ``python -m module`` runs of rnnbench's own, sorted."""
    return list(_closure(module, str(src)))
