"""Write the key tables of docs/configuration.md from config/schema/config.schema.yaml.

The schema is the one source of every key's type, default and description; the page shows
them between the ``<!-- schema-keys -->`` markers, so the two never drift apart::

    python -m rnnbench.config.schemadoc            # rewrite the tables in docs/configuration.md
    python -m rnnbench.config.schemadoc --check    # exit 1 if the page is out of date

Each object of the schema with named keys becomes one table, titled by its path
(``experiments.NAME.tuning``); a shared definition (``$defs``) becomes one table that every
place using it points to. No torch import: plain YAML and text.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from rnnbench.io import write_text

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = ROOT / "config" / "schema" / "config.schema.yaml"
PAGE = ROOT / "docs" / "configuration.md"
BEGIN, END = "<!-- schema-keys -->", "<!-- /schema-keys -->"
# What a shared definition ($defs) is called on the page.
DEF_TITLES = {"training": "Training keys", "corpus_file": "Corpus file keys"}


@dataclass(frozen=True)
class Section:
    """One table of the page: the keys of one schema object and where that object sits."""

    title: str
    places: tuple[str, ...]  # e.g. ("experiments.NAME.tuning",); () for the top level
    rows: tuple[tuple[str, str, str, str], ...]  # (key, allowed values, default, description)

    @property
    def prefix(self) -> str:
        """What every key of the table is prefixed with (its first place)."""
        return f"{self.places[0]}." if self.places else ""


def _ref_name(node: dict) -> str | None:
    ref = node.get("$ref", "")
    return ref.rsplit("/", 1)[-1] if ref.startswith("#/$defs/") else None


def _allowed(node: dict, defs: dict) -> str:
    """A short human form of what a value may be: enum values, type, bounds, list."""
    name = _ref_name(node)
    if name is not None:
        target = defs[name]
        if "properties" in target:
            return f"mapping: {DEF_TITLES.get(name, name).lower()}"
        return _allowed(target, defs)
    if "enum" in node:
        return " \\| ".join(f"`{v}`" for v in node["enum"])
    if "oneOf" in node:
        parts = (_allowed(n, defs) for n in node["oneOf"])
        return " or ".join(dict.fromkeys(p for p in parts if p))
    kind = node.get("type")
    if isinstance(kind, list):
        return " or ".join("`null`" if k == "null" else k for k in kind)
    if kind == "null":
        return "`null`"
    if kind == "array":
        items = _allowed(node.get("items", {}), defs)
        return f"list of {items}" if items else "list"
    if kind == "object":
        return "mapping"
    bounds = [f"≥ {node['minimum']}" if "minimum" in node else "",
              f"> {node['exclusiveMinimum']}" if "exclusiveMinimum" in node else "",
              f"≤ {node['maximum']}" if "maximum" in node else "",
              f"< {node['exclusiveMaximum']}" if "exclusiveMaximum" in node else ""]
    return " ".join(b for b in [kind or "", *bounds] if b)


def _default(node: dict) -> str:
    if "default" not in node:
        return ""
    value = node["default"]
    if value is None:
        return "`null`"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def _description(node: dict, defs: dict) -> str:
    text = node.get("description", "")
    name = _ref_name(node)
    if name is not None and not text:
        text = defs[name].get("description", "")
    return " ".join(str(text).split()).replace("|", "\\|")


def _uses(child: dict, where: str) -> list[tuple[str, str]]:
    """(definition name, place) for every $defs reference a key's value makes."""
    found = []
    for node, place in ((child, where), (child.get("items"), f"{where}[]"),
                        (child.get("additionalProperties"), f"{where}.NAME")):
        if isinstance(node, dict) and _ref_name(node) is not None:
            found.append((_ref_name(node), place))
    return found


def sections(schema: dict) -> list[Section]:
    """Every table of the page: the top level, nested objects after their parent, then
    each shared definition with every place that uses it."""
    defs = schema.get("$defs", {})
    found: list[Section] = []
    used: dict[str, list[str]] = {}

    def walk(node: dict, title: str, places: tuple[str, ...]) -> None:
        rows, later = [], []
        prefix = f"{places[0]}." if places else ""
        for key, child in node.get("properties", {}).items():
            rows.append((key, _allowed(child, defs), _default(child), _description(child, defs)))
            where = f"{prefix}{key}"
            for name, place in _uses(child, where):
                used.setdefault(name, []).append(place)
            extra = child.get("additionalProperties")
            if _ref_name(child) is None and "properties" in child:
                later.append((child, f"`{where}`", (where,)))
            elif isinstance(extra, dict) and _ref_name(extra) is None and "properties" in extra:
                later.append((extra, f"`{where}.NAME`", (f"{where}.NAME",)))
        found.append(Section(title, places, tuple(rows)))
        for sub in later:
            walk(*sub)

    walk(schema, "Top-level keys", ())
    for name, node in defs.items():
        if "properties" in node:
            walk(node, DEF_TITLES.get(name, name), tuple(used.get(name, [f"$defs.{name}"])))
    return found


def keys(schema: dict) -> set[str]:
    """Every documented key as its first place + key (``experiments.NAME.tuning.keep``)."""
    return {s.prefix + row[0] for s in sections(schema) for row in s.rows}


def render(schema: dict) -> str:
    """The Markdown between the markers: one table per section."""
    out = []
    for section in sections(schema):
        where = (f"Keys of {', '.join(f'`{p}`' for p in section.places)}:" if section.places
                 else "Keys at the top of the config file:")
        out += [f"### {section.title}", "", where, "",
                "| key | allowed | default | meaning |", "|---|---|---|---|"]
        out += [f"| `{k}` | {a} | {d} | {m} |" for k, a, d, m in section.rows]
        out.append("")
    return "\n".join(out)


def page_keys(page_text: str) -> set[str]:
    """The keys a page's generated block documents, read back from its tables."""
    block = _block(page_text)
    found, prefix = set(), None
    for line in block.splitlines():
        heading = re.match(r"Keys (?:of `([^`]+)`.*|at the top of the config file):$", line)
        if heading:
            prefix = f"{heading.group(1)}." if heading.group(1) else ""
            continue
        row = re.match(r"\| `([^`]+)` \|", line)
        if row and prefix is not None:
            found.add(prefix + row.group(1))
    return found


def _block(page_text: str) -> str:
    match = re.search(f"{re.escape(BEGIN)}\n(.*?){re.escape(END)}", page_text, re.S)
    if not match:
        raise ValueError(f"the page lacks the {BEGIN} ... {END} markers")
    return match.group(1)


def updated(page_text: str, schema: dict) -> str:
    """The page with its generated block replaced by the schema's current tables."""
    _block(page_text)
    head, rest = page_text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    return f"{head}{BEGIN}\n{render(schema)}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with --check, verify) the key tables of docs/configuration.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schema", type=Path, default=SCHEMA)
    parser.add_argument("--page", type=Path, default=PAGE)
    parser.add_argument("--check", action="store_true", help="exit 1 if the page is stale")
    args = parser.parse_args(argv)
    schema = yaml.safe_load(args.schema.read_text())
    text = args.page.read_text()
    new = updated(text, schema)
    if args.check:
        if new != text:
            print(f"{args.page} is out of date with {args.schema}: run "
                  "`python -m rnnbench.config.schemadoc` and commit the page.", file=sys.stderr)
            return 1
        return 0
    if new != text:
        write_text(args.page, new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
