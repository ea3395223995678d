"""The one renderer of readable tables: Markdown for the README and docs, HTML for the report.

Every Markdown or HTML table of rnnbench goes through :func:`markdown` or :func:`html_page`.
A builder (rnnbench.analysis.tables, compare, baseline, publish, gridtable, ...) turns a tidy
frame into :class:`Table` display strings, and this module alone decides how they
look. A page may hold several tables, each with an optional heading, and notes below each
table and below the page. No torch import.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rnnbench.io import write_text

STYLE = ("body{font-family:sans-serif;font-size:14px;margin:1em}"
         "table{border-collapse:collapse;margin-bottom:.5em}"
         "th,td{padding:3px 10px;border-bottom:1px solid #ddd;text-align:right;"
         "white-space:nowrap}th{background:#f3f3f3}.name{text-align:left}"
         "h3{font-size:15px;margin:1.2em 0 .4em}"
         "p{font-size:13px;color:#333;max-width:60em}")


@dataclass
class Table:
    """Display strings: a header, rows, footnotes; the first ``text_columns`` hold names.

    ``title`` (in bold) and ``subtitle`` make a heading above the table, for pages of several
    (``**converged** (ptb), t4M, 1 layer``)."""

    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    text_columns: int = 0
    title: str = ""
    subtitle: str = ""


def _cell(value: str) -> str:
    """A Markdown cell: a ``|`` inside it would end the cell."""
    return value.replace("|", "\\|")


def markdown(tables: Table | Sequence[Table], notes: Sequence[str] = ()) -> str:
    """The tables as GitHub Markdown, each footnote a paragraph below its table, then
    ``notes`` (the page's)."""
    lines: list[str] = []
    for table in [tables] if isinstance(tables, Table) else tables:
        if lines:
            lines.append("")
        if table.title or table.subtitle:
            bold = f"**{table.title}**" if table.title else ""
            lines += [" ".join(filter(None, [bold, table.subtitle])), ""]
        lines += ["| " + " | ".join(map(_cell, table.header)) + " |",
                  "|" + "---|" * len(table.header)]
        lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in table.rows]
        for note in table.notes:
            lines += ["", note]
    for note in notes:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def _html_table(table: Table) -> str:
    def cells(values: list[str], tag: str) -> str:
        return "".join(f"<{tag}{' class=name' if i < table.text_columns else ''}>"
                       f"{html.escape(v)}</{tag}>" for i, v in enumerate(values))

    rows = "\n".join(f"<tr>{cells(row, 'td')}</tr>" for row in table.rows)
    title = (f"<h3><b>{html.escape(table.title)}</b> {html.escape(table.subtitle)}</h3>\n"
             if table.title or table.subtitle else "")
    notes = "".join(f"<p>{html.escape(note)}</p>\n" for note in table.notes)
    return (f"{title}<table>\n<thead><tr>{cells(table.header, 'th')}</tr></thead>\n<tbody>\n"
            f"{rows}\n</tbody></table>\n{notes}")


def html_page(tables: Table | Sequence[Table], title: str, notes: Sequence[str] = ()) -> str:
    """The tables as one small standalone HTML page (a report item)."""
    body = "".join(_html_table(t) for t in ([tables] if isinstance(tables, Table) else tables))
    body += "".join(f"<p>{html.escape(note)}</p>\n" for note in notes)
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n"
            f"{body}</body></html>\n")


def write_page(path: str | Path, tables: Table | Sequence[Table], title: str,
               notes: Sequence[str] = ()) -> None:
    """Write ``path`` as Markdown (``.md``) or HTML (any other suffix), atomically."""
    path = Path(path)
    write_text(path, markdown(tables, notes) if path.suffix == ".md"
               else html_page(tables, title, notes))
