"""The documentation says what the code and the schema say: the configuration page documents
every schema key and no other, its tables are the schema's current wording, every module is
on the architecture page, every relative link resolves, and the README stays a front door."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml

from rnnbench.config import schemadoc

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = yaml.safe_load((ROOT / "config/schema/config.schema.yaml").read_text())
PAGE = (ROOT / "docs/configuration.md").read_text()
DOCS = sorted((ROOT / "docs").glob("*.md"))


def test_configuration_page_documents_every_schema_key_and_no_other():
    schema_keys, page_keys = schemadoc.keys(SCHEMA), schemadoc.page_keys(PAGE)
    missing, extra = sorted(schema_keys - page_keys), sorted(page_keys - schema_keys)
    assert not missing and not extra, (
        f"docs/configuration.md lacks {missing} and documents {extra}, which the schema does "
        "not have: run `python -m rnnbench.config.schemadoc` to regenerate its key tables")
    # Every level the page must cover has its keys there.
    for key in ("corpus.max_vocab", "study", "recipes.NAME.lr", "experiments.NAME.budgets",
                "experiments.NAME.tuning.keep", "corpus.files.train.sha256"):
        assert key in page_keys


def test_configuration_page_is_the_schemas_current_wording():
    assert schemadoc.main(["--check"]) == 0, "run `python -m rnnbench.config.schemadoc`"


def test_every_schema_key_has_a_description():
    bare = [s.prefix + key for s in schemadoc.sections(SCHEMA) for key, *_, text in s.rows
            if not text]
    assert not bare, f"schema keys without a description: {bare}"


def test_sections_follow_nested_objects_named_mappings_and_shared_definitions():
    schema = {
        "$defs": {"leaf": {"type": "object", "description": "A leaf.",
                           "properties": {"x": {"type": "integer", "minimum": 1,
                                                "default": 3, "description": "An x."}}}},
        "properties": {
            "a": {"type": "object", "properties": {"b": {"enum": ["p", "q"]}}},
            "many": {"type": "object", "additionalProperties": {"$ref": "#/$defs/leaf"}},
            "grid": {"type": "object", "additionalProperties": {
                "type": "object", "properties": {"rungs": {"type": "array",
                                                           "items": {"$ref": "#/$defs/leaf"}}}}},
        },
    }
    assert schemadoc.keys(schema) == {"a", "many", "grid", "a.b", "grid.NAME.rungs",
                                      "many.NAME.x"}
    leaf = schemadoc.sections(schema)[-1]
    assert leaf.places == ("many.NAME", "grid.NAME.rungs[]")
    assert leaf.rows == (("x", "integer ≥ 1", "`3`", "An x."),)
    page = f"{schemadoc.BEGIN}\n{schemadoc.render(schema)}{schemadoc.END}\n"
    assert schemadoc.page_keys(page) == schemadoc.keys(schema)
    # A page made before a key was added lacks exactly that key: the check can fail.
    older = copy.deepcopy(schema)
    del older["properties"]["a"]["properties"]["b"]
    stale = f"{schemadoc.BEGIN}\n{schemadoc.render(older)}{schemadoc.END}\n"
    assert schemadoc.keys(schema) - schemadoc.page_keys(stale) == {"a.b"}


def test_architecture_page_lists_every_module_in_its_package():
    text = (ROOT / "docs/architecture.md").read_text()
    rows = re.findall(r"^\| `(rnnbench[\w.]*)`[^|]*\| (.+) \|$", text, re.M)
    listed = {package: set(re.findall(r"`(\w+)`", cells)) for package, cells in rows}
    src = ROOT / "src"
    actual: dict[str, set[str]] = {}
    for path in (src / "rnnbench").rglob("*.py"):
        if path.stem != "__init__":
            package = ".".join(path.parent.relative_to(src).parts)
            actual.setdefault(package, set()).add(path.stem)
    assert listed == actual, "docs/architecture.md's package table differs from src/rnnbench/"


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors of a page's headings: lower case, punctuation dropped, spaces -> -."""
    headings = re.findall(r"^#+ (.+)$", page.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_relative_link_image_and_anchor_resolves():
    for page in [ROOT / "README.md", *DOCS]:
        for target, anchor in re.findall(r"\]\(([^)#\s]*)(?:#([^)\s]*))?\)", page.read_text()):
            if re.match(r"[a-z]+://", target):
                continue
            path = page.parent / target if target else page
            assert path.exists(), f"{page.name}: broken link {target}"
            if anchor:
                assert anchor in _anchors(path), f"{page.name}: no heading #{anchor} in {target}"


def test_readme_is_a_front_door_that_maps_every_docs_page():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 150, "README.md is over 150 lines: move details to docs/"
    assert DOCS
    for page in DOCS:
        assert f"(docs/{page.name})" in text, f"README.md's documentation map lacks {page.name}"
    for page in [ROOT / "README.md", *DOCS]:
        assert "the issue" not in page.read_text().lower(), f"{page.name} speaks of 'the issue'"
