"""outputs/index.html, the page a reader opens first: the claims' scorecard (lib.running.scorecard) above one row per
run folder (headline metrics beside the study's numbers, notes, time, files), and the check that every link and image
of the index and the reports resolves."""
from __future__ import annotations

import time
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

from lib.core import paths
from lib.reporting import runs

_INDEX = """<!doctype html><meta charset='utf-8'><title>NLP fine-tuning lab: results</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}
table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}
th{background:#f3f3f3}.failed{background:#fde2e2}.study{color:#555;font-size:12px}
img{height:70px;margin:2px;border:1px solid #ddd}</style>
<h1>NLP fine-tuning lab: results</h1>
<p>{{ rows|length }} runs; generated {{ generated }}. Scores are on labelled validation data (test labels are
withheld; see each run's submission.csv).</p>
{% if failed %}<h2>Failures</h2><ul>
{% for r in failed %}<li><b>{{ r.notebook }}/{{ r.run }}</b>{% if r.attempt %} ({{ r.attempt }}){% endif %}: {{ r.error }}</li>
{% endfor %}</ul>{% endif %}
<table id="runs"><tr><th>experiment</th><th>run</th><th>profile</th><th>status</th><th>headline metrics</th>
<th>study reports</th><th>notes</th><th>time</th><th>peak RSS</th><th>files</th></tr>
{% for r in rows %}<tr{% if r.failed %} class='failed'{% endif %}><td>{{ r.notebook }}</td><td>{{ r.run }}</td>
<td>{{ r.profile }}</td><td>{{ r.status }}{% if r.attempt %}<br><i>{{ r.attempt }}</i>{% endif %}{% if r.error %}<br>{{ r.error }}{% endif %}</td>
<td>{% for k, v in r.headline %}{{ k }}: <b>{{ v }}</b>{% if not loop.last %}<br>{% endif %}{% endfor %}</td>
<td class='study'>{{ r.study|join("<br>"|safe) }}</td><td class='study'>{{ r.notes|join("<br>"|safe) }}</td>
<td>{{ r.seconds }}s</td><td>{{ r.peak }}</td>
<td>{% for name, href in r.links %}<a href='{{ href }}'>{{ name }}</a>{% if not loop.last %} · {% endif %}{% endfor %}<br>
{% for href, stem in r.figures %}<a href='{{ href }}'><img src='{{ href }}' title='{{ stem }}'></a>{% endfor %}</td></tr>
{% endfor %}</table>
"""


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def collect_runs(out: Path = paths.OUTPUTS) -> list[dict]:
    """Every run folder of `out` as a plain record (what the index shows): notebook, run, profile, status, error,
    attempt ('' for the run folder itself; for <run>.failed: the failed attempt made after the good result beside it),
    headline, study, notes, seconds, peak, links, figures. Sorted by notebook and run, each failed attempt right after
    its run's last good result. Temporary folders (.<run>.tmp-PID, .old-PID) are skipped; a damaged JSON file gives
    a row naming it instead of stopping the page."""
    rows = []
    for d in sorted(p for p in out.glob("*/*") if p.is_dir() and not p.name.startswith(".")):
        if not (d / runs.RUN_JSON).is_file():
            continue
        rows.append(_row(out, d))
    return sorted(rows, key=lambda r: (r["notebook"], r["run"], r["attempt"] != ""))


def _row(out: Path, d: Path) -> dict:
    rel = d.relative_to(out).as_posix()
    attempt = "failed attempt after the last good result (row above)" if d.name.endswith(runs.FAILED) else ""
    problems = []
    try:
        rec = runs.read_json(d / runs.RUN_JSON)
    except runs.DamagedFile as e:
        rec, problems = {"status": "damaged"}, [str(e)]
    try:
        m = runs.read_json(d / "metrics.json") if (d / "metrics.json").exists() else {}
    except runs.DamagedFile as e:
        m, problems = {}, problems + [str(e)]
    links = [("report", f"{rel}/report.html")] if (d / "report.html").exists() else []
    links += [(f, f"{rel}/{f}") for f in ("metrics.json", "submission.csv") if (d / f).exists()]
    status = rec.get("status", "unknown")
    return {"notebook": rec.get("notebook", d.parent.name), "run": rec.get("run", d.name.removesuffix(runs.FAILED)),
            "profile": rec.get("profile", ""), "status": status, "failed": status != "ok", "attempt": attempt,
            "error": "; ".join([rec.get("error") or "", *problems]).strip("; "),
            "headline": [(k, _fmt(v)) for k, v in m.get("headline", {}).items()],
            "study": [", ".join(f"{k} {v}" for k, v in s.items()) for s in m.get("study", [])],
            "notes": m.get("notes", []), "seconds": f"{rec.get('elapsed_seconds', 0):.0f}",
            "peak": f"{m['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in m else "", "links": links,
            "figures": [(f"{rel}/figures/{p.name}", p.stem) for p in sorted((d / "figures").glob("*.png"))]}


def build_index(out: Path = paths.OUTPUTS) -> Path:
    """outputs/index.html: every run folder found (collect_runs), with headline metrics beside the study's numbers
    and links. The page is the jinja2 template _INDEX (autoescaped: run names, errors and notes appear as text);
    written atomically."""
    import jinja2
    rows = collect_runs(out)
    page = jinja2.Environment(autoescape=True).from_string(_INDEX).render(
        rows=rows, failed=[r for r in rows if r["failed"]], generated=time.strftime("%Y-%m-%d %H:%M:%S"))
    from lib.running import scorecard
    page = scorecard.add_to_index(out, page)  # the claims' scorecard above the run table; evidence into the reports
    index = out / "index.html"
    runs.atomic_write(index, page)
    return index


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, str]] = []  # (tag, url)

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("href", "src") and v:
                self.found.append((tag, v))


def broken_links(out: Path = paths.OUTPUTS) -> list[str]:
    """Every link and image of outputs/index.html and of each run's report.html that does not resolve: a relative
    target that is not there, or an embedded (data:) image without content. External URLs are not fetched."""
    problems = []
    pages = [out / "index.html", *sorted(out.glob("*/*/report.html"))]
    for page in pages:
        if not page.is_file():
            problems.append(f"{page}: missing")
            continue
        parser = _Links()
        parser.feed(page.read_text(encoding="utf-8", errors="replace"))
        for tag, url in parser.found:
            if url.startswith("data:"):
                if tag == "img" and len(url.partition(",")[2]) < 100:
                    problems.append(f"{page}: an embedded image is empty")
                continue
            if url.startswith(("#", "http://", "https://", "mailto:", "javascript:")):
                continue
            target = page.parent / urllib.parse.unquote(url.split("#")[0].split("?")[0])
            if not target.exists():
                problems.append(f"{page}: <{tag}> {url} -> {target} does not exist")
    return problems
