"""A rule's code inputs are found from the imports (rnnbench.workflow.codedeps)."""

from pathlib import Path

from rnnbench.workflow.codedeps import module_sources

SRC = Path(__file__).resolve().parents[1] / "src"


def test_a_module_brings_every_module_it_imports_directly_or_not():
    files = {Path(f).relative_to(SRC / "rnnbench").as_posix()
             for f in module_sources("rnnbench.analysis.sizes", SRC)}
    # itself, what it imports, and what those import (stats via sizes; labels' own imports)
    assert {"analysis/sizes.py", "analysis/labels.py", "analysis/stats.py", "io.py"} <= files
    assert "figures/sizes.py" not in files  # nothing it does not import
    figure = {Path(f).relative_to(SRC / "rnnbench").as_posix()
              for f in module_sources("rnnbench.figures.sizes", SRC)}
    assert {"figures/sizes.py", "figures/figstyle.py", "analysis/labels.py"} <= figure


def test_the_hand_written_lists_left_out_what_the_imports_find():
    # issue #31: collect_metrics's list left out analysis/stats, which aggregate imports
    files = module_sources("rnnbench.analysis.aggregate", SRC)
    assert str(SRC / "rnnbench/analysis/stats.py") in files
