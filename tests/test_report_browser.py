"""The report as a reader sees it, in a real headless browser (issue #33): every table opens as
an HTML table (its CSV a download beside it), each menu heading holds items of one kind, and
the landing page names the study, its budget kind and its tuning grid.

Snakemake's report is one HTML file: a React app whose items are embedded as JSON
(``var categories = {...}`` and ``var results = {...}``, each result with its ``mime_type``,
``labels`` and a base64 ``data_uri``). Chromium renders it (``--dump-dom`` after
``--virtual-time-budget``); a script appended to a copy of the file clicks through the menu
first, so the DOM shows what a click shows (an ``<iframe>`` of the item, or nothing when the
browser would download it). Skipped where no Chromium is installed (CI's ``.ci/run`` installs
Debian's ``chromium``)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import snakemake

BROWSER = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(n)), None)
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("converged"),
              pytest.mark.skipif(BROWSER is None, reason="no headless Chromium installed")]
CLICKS = """
<script>
const clicks = %s;
function step(i) {
  if (i >= clicks.length) return;
  const eye = clicks[i].startsWith("eye:"), text = eye ? clicks[i].slice(4) : clicks[i];
  const hits = [...document.querySelectorAll("a,button,li,span,td")]
    .filter(e => e.textContent.trim() === text);
  if (hits.length) {
    let el = hits[hits.length - 1];
    if (eye) el = el.closest("tr").querySelector("a");
    el.click();
  }
  setTimeout(() => step(i + 1), 300);
}
setTimeout(() => step(0), 500);
</script>
"""


def rendered(report: Path, clicks: list[str], tmp: Path) -> str:
    """The DOM Chromium renders from ``report`` after clicking ``clicks`` in turn (a text, or
    ``eye:<label>``: the view button of that item's row)."""
    html = report.read_text()
    end = html.rindex("</body>")  # the last one: the app's scripts hold others in strings
    page = tmp / f"clicked-{abs(hash(tuple(clicks)))}.html"
    page.write_text(html[:end] + CLICKS % json.dumps(clicks) + html[end:])
    out = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu",
                          "--virtual-time-budget=6000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "<body" in out.stdout, out.stderr[-2000:]
    return out.stdout


def embedded(dom: str, name: str) -> dict:
    """A JSON object the report embeds as ``var name = {...}``."""
    match = re.search(rf"\bvar {name} = (\{{)", dom)
    assert match, f"the report embeds no `var {name}`"
    return json.JSONDecoder().raw_decode(dom[match.start(1):])[0]


def app_text(dom: str) -> str:
    """The visible text of the rendered app (scripts and styles left out)."""
    body = dom[dom.index('id="app"'):]
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", body, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", body))


def item_data(result: dict) -> str:
    return base64.b64decode(result["data_uri"].split("base64,", 1)[1]).decode()


@pytest.fixture(scope="module")
def converged_report(converged_rebuilt, tmp_path_factory) -> Path:
    """The converged study's report, built in a copy of the clean clone where its tables were
    rebuilt from the committed reference files (conftest.converged_rebuilt)."""
    clone, rebuilt = converged_rebuilt
    assert rebuilt.returncode == 0, (rebuilt.stdout + rebuilt.stderr)[-3000:]
    work = tmp_path_factory.mktemp("report") / "clone"
    shutil.copytree(clone, work, symlinks=True)
    done = snakemake(work, "--config", "source=reference", "--report", str(work / "report.html"),
                     configfile=work / "config/converged.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    return work / "report.html"


def test_every_table_of_the_report_opens_as_html_with_its_csv_beside_it(converged_report,
                                                                          tmp_path):
    dom = rendered(converged_report, [], tmp_path)
    categories, results = embedded(dom, "categories"), embedded(dom, "results")
    tables = {path: r for path, r in results.items() if "table" in (r.get("labels") or {})}
    assert len(tables) >= 10
    for path, result in tables.items():
        if result["mime_type"] == "text/html":
            assert "<table>" in item_data(result), path
        else:  # a CSV is only the download beside the HTML table of the same name
            assert result["mime_type"] == "text/csv", path
            assert "(CSV" in result["labels"]["table"], path
            html = results.get(str(Path(path).with_suffix(".html")))
            assert html is not None and html["mime_type"] == "text/html", path
    # the tables a reader of the converged study opens, with the README's model names
    names = {Path(p).name for p, r in tables.items() if r["mime_type"] == "text/html"}
    assert {"summary.html", "comparisons.html", "trials.html", "learning_curves.html",
            "context_summary.html", "grad_decay.html"} <= names
    summary = item_data(results["results/studies/converged/tables/summary.html"])
    for model in ("rnn_tanh+bf16", "irnn+bf16", "lstm+fb1+bf16", "gru+bf16"):
        assert f"<td class=name>{model}</td>" in summary, model
    # each menu heading (category, subcategory) holds items of one kind: one label name
    for category, subcategories in categories.items():
        for subcategory, paths in subcategories.items():
            kinds = {key for p in paths for key in results[p]["labels"]}
            assert len(kinds) == 1, (category, subcategory, kinds)


@pytest.mark.parametrize("category, label", [
    ("Tables", "model comparisons (differences with 95% CIs)"),
    ("Training", "learning curves (mean, 95% CI per model and tokens)"),
])
def test_a_click_on_a_table_shows_it_in_the_browser(converged_report, tmp_path, category,
                                                    label):
    dom = rendered(converged_report, [category, "Tables", f"eye:{label}"], tmp_path)
    frames = re.findall(r'<iframe src="(data:[^";]+)', dom)
    assert frames == ["data:text/html"], "the item would download, not show"


def test_landing_page_names_the_study_its_budget_kind_and_tuning_grid(converged_report,
                                                                      tmp_path):
    text = app_text(rendered(converged_report, [], tmp_path))
    assert "This report covers the study converged :" in text
    assert "total-parameter budgets 4,000,000" in text
    assert "recurrent-parameter" not in text
    assert "the full grid of 20 points (lr × grad) per model" in text
    assert "tuned: trials per model" not in text
    finished = re.search(r"finished runs (\d+) of (\d+)", text)  # the landing's count, if any
    if finished:
        assert finished.groups() == ("30", "30")
