"""The rendered report as people read it: a summary card first (what ran, the headline numbers beside the study's
and the baselines, the verdict lines, the claims the run tests), a table of contents, then the notebook with its
set-up and parameters cells folded and every code cell's input folded behind a toggle.

A post-processing step of nbconvert's HTML (lib.running.runner.render_html): the executed .ipynb stays complete. The card is
built from the run's metrics.json and the notebook's papermill metadata, so notebooks need no extra cells. Scripts
fetched from CDNs (require.js, MathJax, mermaid) are dropped: the reports are read offline and use none of them.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

CLAIMS_START, CLAIMS_END = "<!--claims-->", "<!--/claims-->"  # filled by lib.running.scorecard when the index is built
CARD_ID = "summary-card"

CSS = """
#summary-card{border:2px solid #3b6ea8;border-radius:8px;padding:10px 16px;margin:10px 0 18px;background:#f5f9ff;
 font-family:system-ui,sans-serif;font-size:14px;max-width:1100px}
#summary-card h2{margin:2px 0 6px;font-size:20px}#summary-card h3{margin:10px 0 4px;font-size:15px}
#summary-card table{border-collapse:collapse;margin:4px 0}#summary-card td,#summary-card th{border:1px solid #c8d3e0;
 padding:2px 8px;text-align:left;vertical-align:top}#summary-card .facts td:first-child{color:#555}
#summary-card ul{margin:2px 0;padding-left:20px}.verdict-reproduced{color:#17702b;font-weight:600}
.verdict-contradicted{color:#b3261e;font-weight:600}.verdict-too{color:#8a6d00;font-weight:600}
.verdict-not{color:#666}#report-toc{font-family:system-ui,sans-serif;font-size:14px;margin:0 0 16px}
#report-toc ol{margin:2px 0}details.folded-cell>summary,details.code-input>summary{cursor:pointer;color:#3b6ea8;
 font-family:system-ui,sans-serif;font-size:13px}#code-toggle{margin:0 0 10px;font-size:13px}
"""

TOGGLE_JS = """
document.getElementById('code-toggle').addEventListener('click', function () {
  var boxes = document.querySelectorAll('details.code-input');
  var open = !Array.prototype.every.call(boxes, function (d) { return d.open; });
  boxes.forEach(function (d) { d.open = open; });
  this.textContent = open ? 'Hide all code' : 'Show all code';
});
"""


def run_name(folder: Path) -> str:
    """notebook/run of a run folder; the runner renders inside a temporary sibling '.<run>.tmp-<pid>'."""
    m = re.fullmatch(r"\.(.+)\.tmp-\d+", folder.name)
    return f"{folder.parent.name}/{m.group(1) if m else folder.name}"


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 1000 else f"{v:,.0f}"
    return html.escape(str(v))


def _table(rows: list[dict]) -> str:
    if not rows:
        return ""
    cols = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(c, ''))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _sizes(metrics: dict) -> list[str]:
    """The data sizes a run's metrics.json records (emotion n_train / n_val, 06's data, 04's pair sets)."""
    out = [f"{k[2:]}: {v:,}" for k, v in metrics.items() if k.startswith("n_") and isinstance(v, int)]
    if isinstance(metrics.get("split"), str):
        out.append(f"split: {metrics['split']}")
    data = metrics.get("data")
    if isinstance(data, dict):
        out += [f"{k}: {v}" for k, v in data.items() if isinstance(v, (int, float, str, list))][:8]
    for s in metrics.get("pair_stats", []) if isinstance(metrics.get("pair_stats"), list) else []:
        if isinstance(s, dict) and "set" in s:
            out.append(f"{s['set']}: " + ", ".join(f"{k} {v}" for k, v in s.items() if k != "set"))
    return out


def _models(params: dict) -> str:
    names = [str(params["MODEL"])] if params.get("MODEL") else []
    dec = params.get("DECODER")
    if isinstance(dec, dict) and dec.get("model") and params.get("RUN_DECODER", True):
        names.append(f"decoder {dec['model']}")
    return ", ".join(names) or "(the notebook's own)"


def stage_text(stage_seconds: dict) -> str:
    """'train 300 s (73%), predict 60 s (15%), load 20 s (5%), other 32 s (8%)': largest first, as the card says it."""
    total = sum(stage_seconds.values()) or 1.0
    parts = sorted(stage_seconds.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{k} {v:.0f} s ({100 * v / total:.0f}%)" for k, v in parts)


def card_html(name: str, m: dict, pm: dict) -> str:
    """The summary card from metrics.json (`m`, empty when the run failed before writing it) and the notebook's
    papermill metadata (`pm`)."""
    params = m.get("params") or pm.get("parameters") or {}
    facts = [("run", name), ("profile", m.get("profile") or params.get("PROFILE", "?")), ("model", _models(params))]
    if m:
        facts.append(("time", f"{m.get('wall_seconds', 0):.0f} s, peak memory {m.get('peak_rss_mb', 0):,.0f} MB"))
        if m.get("num_processes", 1) > 1:  # run_all.sh --num-processes N: BATCH_SIZE was per process
            facts.append(("processes", f"{m['num_processes']} (torchrun); BATCH_SIZE per process, so "
                                       f"{m['num_processes']} x BATCH_SIZE examples per optimiser step"))
        if m.get("precision"):
            facts.append(("compute precision", m["precision"]))
        if m.get("stage_seconds"):
            facts.append(("where the time went", stage_text(m["stage_seconds"])))
    if pm.get("end_time"):
        facts.append(("finished", str(pm["end_time"])[:19].replace("T", " ") + " UTC"))
    if m.get("git_commit"):
        facts.append(("code", m["git_commit"][:12]))
    sizes = _sizes(m.get("metrics", {}))
    facts.append(("data", "; ".join(sizes) if sizes else "see the data section"))
    facts.append(("caps applied", "; ".join(m.get("caps", [])) or "none (all data)"))
    if params.get("TRACK"):
        view = ("tensorboard --logdir tracking" if params["TRACK"] == "tensorboard"
                else "mlflow ui --backend-store-uri tracking")
        facts.append(("training curves", f"{params['TRACK']}: tracking/ beside this report ({view})"))
    parts = [f"<div id='{CARD_ID}'><h2>Summary: {html.escape(name)}</h2>"]
    if pm.get("exception") or not m:
        parts.append("<p class='verdict-contradicted'>This run did not finish: the failing cell's error is shown in "
                     "the notebook below.</p>")
    parts.append("<table class='facts'>" + "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(str(v))}</td></tr>"
                                                   for k, v in facts) + "</table>")
    if m.get("headline"):
        parts.append("<h3>Headline numbers</h3>" + _table([{"metric": k, "this run": v}
                                                           for k, v in m["headline"].items()]))
    if m.get("study"):
        parts.append("<h3>The study's numbers</h3>" + _table(m["study"]))
    base = m.get("metrics", {}).get("baselines")
    if isinstance(base, dict) and base:
        parts.append("<h3>Baselines (same tweets)</h3>" + _table([{"baseline": k, **v} for k, v in base.items()]))
    if m.get("notes"):
        parts.append("<h3>Verdicts and caveats</h3><ul>" + "".join(f"<li>{html.escape(str(n))}</li>"
                                                                 for n in m["notes"]) + "</ul>")
    parts.append(f"{CLAIMS_START}<p><i>The studies' claims this run tests are listed once the index is built "
                 f"(outputs/index.html).</i></p>{CLAIMS_END}</div>")
    return "".join(parts)


def _toc(soup) -> str:
    items = [(h.name, h.get("id"), h.get_text(" ", strip=True).rstrip("¶").strip())
             for h in soup.find_all(["h1", "h2"]) if h.get("id") and not h.find_parent(id=CARD_ID)]
    indent = {"h1": "", "h2": " style='margin-left:1em'"}
    lis = "".join(f"<li{indent[t]}><a href='#{html.escape(i, quote=True)}'>{html.escape(text)}</a></li>"
                  for t, i, text in items)
    return f"<nav id='report-toc'><b>Contents</b><ol>{lis}</ol></nav>" if lis else ""


def _setup_cell(cell) -> bool:
    tags = set(cell.get("class", []))
    if {"celltag_parameters", "celltag_injected-parameters"} & tags:
        return True
    src = cell.find(class_="jp-InputArea-editor")
    return bool(src and src.get_text().lstrip().startswith("# Set-up"))


def _fold(soup) -> None:
    """Set-up and parameters cells folded whole; every other code cell's input behind a <details> (closed)."""
    for cell in soup.select("div.jp-CodeCell"):
        if _setup_cell(cell):
            label = "parameters" if "celltag_parameters" in cell.get("class", []) else (
                "parameters injected by the runner" if "celltag_injected-parameters" in cell.get("class", [])
                else "set-up")
            box = soup.new_tag("details", attrs={"class": "folded-cell"})
            summary = soup.new_tag("summary")
            summary.string = f"{label} (folded)"
            box.append(summary)
            cell.wrap(box)
            box.insert(0, summary)
            continue
        inp = cell.find(class_="jp-Cell-inputWrapper")
        if inp is not None:
            box = soup.new_tag("details", attrs={"class": "code-input"})
            summary = soup.new_tag("summary")
            summary.string = "code"
            inp.wrap(box)
            box.insert(0, summary)


def _drop_cdn_scripts(soup) -> None:
    for s in soup.find_all("script"):
        if (s.get("src") or "").startswith("http") or "cdnjs" in (s.string or "") or s.get("type") == "text/x-mathjax-config":
            s.decompose()


def postprocess(body: str, name: str, metrics: dict, papermill: dict) -> str:
    """nbconvert's HTML -> the report people read (card, contents, folded code, no CDN scripts)."""
    from bs4 import BeautifulSoup
    soup = BeautifulSoup(body, "html.parser")
    _drop_cdn_scripts(soup)
    _fold(soup)
    style = soup.new_tag("style")
    style.string = CSS
    (soup.head or soup).append(style)
    main = soup.find("main") or soup.body or soup
    top = BeautifulSoup(card_html(name, metrics, papermill) + _toc(soup)
                        + "<button id='code-toggle' type='button'>Show all code</button>", "html.parser")
    main.insert(0, top)
    script = soup.new_tag("script")
    script.string = TOGGLE_JS
    (soup.body or soup).append(script)
    return str(soup)


def render(nb_path: Path, html_path: Path) -> None:
    """Render the executed notebook `nb_path` to `html_path` with the card (metrics.json beside the notebook)."""
    import nbformat
    from nbconvert import HTMLExporter
    nb = nbformat.read(nb_path, as_version=4)
    body, _ = HTMLExporter().from_notebook_node(nb)
    try:
        metrics = json.loads((nb_path.parent / "metrics.json").read_text())
    except (OSError, ValueError):
        metrics = {}
    pm = dict(nb.metadata.get("papermill", {}))
    html_path.write_text(postprocess(body, run_name(nb_path.parent), metrics, pm), encoding="utf-8")


def set_claims(report: Path, section: str) -> None:
    """Replace the card's claims block of an existing report.html with `section` (HTML)."""
    text = report.read_text(encoding="utf-8")
    block = f"{CLAIMS_START}{section}{CLAIMS_END}"
    if CLAIMS_START in text and CLAIMS_END in text:
        head, _, rest = text.partition(CLAIMS_START)
        text = head + block + rest.partition(CLAIMS_END)[2]
    else:  # a report rendered before the card existed: the block goes first in the body
        text = re.sub(r"(<body[^>]*>)", lambda mm: mm.group(1) + block, text, count=1)
    report.write_text(text, encoding="utf-8")
