"""The package's layout: one subpackage per stage, imports running one way (a module imports
only from its own stage, earlier stages and the core), and modules a reader can hold."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "rnnbench"
# The pipeline's order: a stage may import from the stages before it, never after.
STAGES = ["data", "model", "training", "diagnostics", "experiment", "analysis", "figures",
          "workflow", "bench"]
CORE = {"config", "io"}  # top-level modules every stage may use
MAX_LINES = 350
# module (relative to src/rnnbench) -> why it may pass MAX_LINES; none today.
LONG_MODULES: dict[str, str] = {}


def stage_of(module: str) -> int:
    """Rank of a dotted module under rnnbench (-1: the core, shared by every stage)."""
    parts = module.split(".")
    if parts[0] != "rnnbench":
        raise ValueError(f"{module} is not a module of rnnbench")
    if len(parts) == 1 or parts[1] in CORE or parts[1] == "__version__":
        return -1
    if parts[1] not in STAGES:
        raise ValueError(f"{module} is in no stage: add its package to STAGES in order")
    return STAGES.index(parts[1])


def modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def dotted(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every rnnbench module ``path`` imports, at any depth (a lazy import
    inside a function counts too); ``from rnnbench.x import y`` counts ``rnnbench.x.y``, which
    for a name (not a module) ranks as ``rnnbench.x`` does."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("rnnbench")]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: use absolute imports"
            if node.module and node.module.split(".")[0] == "rnnbench":
                found += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return found


def later_imports(path: Path, module: str | None = None) -> list[str]:
    """Where ``path`` (the module ``module``, by default its place in the package) imports
    from a stage after its own."""
    module = module or dotted(path)
    own = stage_of(module)
    return [f"{module}:{line} imports {name}"
            for line, name in imported(path) if stage_of(name) > own]


def test_every_module_is_in_a_known_stage():
    for path in modules():
        stage_of(dotted(path))  # raises for a package that is not a stage
    # every package is a stage, or the core's config package (a run's settings, the schema)
    assert {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"} == {
        *STAGES, "config"}


def test_no_module_imports_from_a_later_stage():
    problems = [problem for path in modules() for problem in later_imports(path)]
    assert not problems, "imports against the stage order:\n" + "\n".join(problems)


def test_the_check_finds_a_lazy_import_from_a_later_stage(tmp_path):
    # training importing the grid inside a function: what train once did for a data check
    probe = tmp_path / "probe.py"
    probe.write_text("from rnnbench.config import RunConfig\nfrom rnnbench.data import batching\n"
                     "def f():\n    from rnnbench.experiment.grid import expand\n")
    assert later_imports(probe, "rnnbench.training.probe") == [
        "rnnbench.training.probe:4 imports rnnbench.experiment.grid.expand"]
    assert later_imports(probe, "rnnbench.figures.probe") == []


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_is_longer_than_a_reader_can_hold(path):
    lines = len(path.read_text().splitlines())
    limit = MAX_LINES if str(path.relative_to(PACKAGE)) not in LONG_MODULES else 10 ** 9
    assert lines <= limit, f"{path.relative_to(PACKAGE)} has {lines} lines (at most {MAX_LINES})"


# What writes a table (CSV, Markdown, HTML): pandas' writers, rnnbench.io's, the renderer's and
# the analysis commands' (``collect``: the run folders into tables).
TABLE_WRITERS = {"to_csv", "to_markdown", "to_html", "to_latex", "to_excel", "write_csv",
                 "write_text", "write_page", "html_page", "markdown", "collect"}
RENDERERS = {"rnnbench.analysis.render", "rnnbench.analysis.tables"}


def table_writes(path: Path) -> list[str]:
    """Where ``path`` calls or imports a table writer, or imports a table renderer."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call):
            func = node.func
            name = (func.attr if isinstance(func, ast.Attribute)
                    else func.id if isinstance(func, ast.Name) else None)
            if name in TABLE_WRITERS:
                found.append(f"{path.name}:{node.lineno} calls {name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = {a.name for a in node.names}
            if node.module in RENDERERS or names & TABLE_WRITERS:
                found.append(f"{path.name}:{node.lineno} imports from {node.module}")
        elif isinstance(node, ast.Import):
            found += [f"{path.name}:{node.lineno} imports {a.name}" for a in node.names
                      if a.name in RENDERERS]
    return found


def test_no_figure_module_writes_a_table():
    # every table is built in rnnbench.analysis; figures only read them
    problems = [p for path in sorted((PACKAGE / "figures").glob("*.py"))
                for p in table_writes(path)]
    assert not problems, "figures/ writing tables:\n" + "\n".join(problems)


def test_the_table_check_finds_each_kind_of_writer(tmp_path):
    # a module that writes a CSV, a Markdown page and a text file; then one that writes a figure
    probe = tmp_path / "probe.py"
    probe.write_text("from rnnbench.io import write_csv\nimport rnnbench.analysis.render\n"
                     "def f(table, path):\n    write_csv(table, path)\n"
                     "    table.to_markdown(path)\n    path.write_text('x')\n")
    assert table_writes(probe) == [
        "probe.py:1 imports from rnnbench.io", "probe.py:2 imports rnnbench.analysis.render",
        "probe.py:4 calls write_csv", "probe.py:5 calls to_markdown",
        "probe.py:6 calls write_text"]
    probe.write_text("from rnnbench.io import write_atomic\ndef f(fig, path):\n"
                     "    write_atomic(path, lambda tmp: fig.savefig(tmp))\n")
    assert table_writes(probe) == []  # a figure's PNG and SVG
