"""The batch runner behind run_all.sh: execute notebooks with papermill, render HTML, build outputs/index.html.

    python -m lib.runner [--profile auto|smoke|cpu|gpu] [--only 01_ffnn ...] [--list] [--data-dir DIR]

Each run goes to outputs/<notebook>/<run>/: notebook.ipynb (executed), report.html, metrics.json, figures/*.png,
submission.csv where it applies, run.json (status, elapsed, error). A run is written into a temporary folder and
swapped in at the end, so an interrupted run never leaves a half-old, half-new folder. A failing notebook does
not stop the others; its partial notebook and HTML are kept, it is listed in index.html, and the exit code is 1.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import sys
import time
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

from lib import download, paths, profiles

QUIET_ENV = {  # batch runs: no progress bars or chatter inside the HTML reports
    "TQDM_DISABLE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "DATASETS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONWARNINGS": "ignore",
}


resolve_profile = profiles.resolve_profile


def _matches(o: str, nb: str, name: str) -> bool:
    """--only O selects a notebook (01_ffnn, 01, ffnn) or one run of it (02_encoders/minilm-improved)."""
    if "/" in o:
        o_nb, o_name = o.split("/", 1)
        return o_name == name and _matches(o_nb, nb, name)
    return nb == o or nb.startswith(o + "_") or nb.split("_", 1)[-1] == o


def plan(profile: str, only: list[str] | None = None) -> list[tuple[str, str, dict]]:
    """The runs `run_all.sh` makes: the profile's RUNS, or those --only selects; an opt-in run of
    profiles.OPTIONAL_RUNS only when --only names it whole (notebook/run)."""
    runs = profiles.RUNS[profile]
    if only:
        extra = [r for r in profiles.OPTIONAL_RUNS.get(profile, [])
                 if any("/" in o and _matches(o, r[0], r[1]) for o in only)]
        pool = runs + extra
        unknown = [o for o in only if not any(_matches(o, nb, name) for nb, name, _ in pool)]
        if unknown:
            every = runs + profiles.OPTIONAL_RUNS.get(profile, [])
            known = sorted({nb for nb, _, _ in runs} | {f"{nb}/{name}" for nb, name, _ in every})
            raise SystemExit(f"--only {', '.join(unknown)}: no such experiment in profile {profile}; "
                             f"known: {', '.join(known)}")
        runs = [r for r in runs if any(_matches(o, r[0], r[1]) for o in only)] + extra
    return runs


def _short(msg: str, limit: int = 600) -> str:
    """One readable line for the progress output and the index; the full error stays in the report."""
    msg = " ".join(msg.split())
    return msg if len(msg) <= limit else msg[:limit] + " ... (full error in the report)"


@contextlib.contextmanager
def kernel_log(path: Path):
    """Send everything written to this process's stdout/stderr file descriptors, and so the kernel's chatter
    (its own process inherits them: "running over TCP without encryption", zmq tracebacks, "KeyboardInterrupt
    caught in kernel"), to `path` for the duration; the terminal keeps one clean line per run."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "ab") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        handlers = [(h, h.stream) for h in logging.getLogger().handlers if isinstance(h, logging.StreamHandler)]
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            for h, stream in handlers:
                h.stream = stream


TIMINGS = "timings.json"  # outputs/timings.json: {profile: {"notebook/run": seconds}} of the last finished runs


def load_timings(out: Path = paths.OUTPUTS) -> dict:
    try:
        return json.loads((out / TIMINGS).read_text())
    except (OSError, ValueError):
        return {}


def record_timing(profile: str, key: str, seconds: float, out: Path = paths.OUTPUTS) -> None:
    t = load_timings(out)
    t.setdefault(profile, {})[key] = round(seconds, 1)
    out.mkdir(parents=True, exist_ok=True)
    (out / TIMINGS).write_text(json.dumps(t, indent=1, sort_keys=True))


def expected_left(profile: str, keys: list[str], timings: dict) -> str:
    """'about 12 min left' from the last measured times of `keys` (the runs still to do, this one included)."""
    known = timings.get(profile, {})
    have = [known[k] for k in keys if k in known]
    if not have:
        return "time left unknown: no earlier run measured"
    text = f"about {_minutes(sum(have))} left"
    missing = len(keys) - len(have)
    return text + (f" + {missing} run(s) never measured" if missing else "")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def render_html(nb_path: Path, html_path: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter
    nb = nbformat.read(nb_path, as_version=4)
    body, _ = HTMLExporter().from_notebook_node(nb)
    html_path.write_text(body, encoding="utf-8")


# the data folders each notebook reads (their files' checksums are part of a run's cache key)
DATA_READ = {"01_ffnn": ["semeval2018_ec"], "02_encoders": ["semeval2018_ec"], "03_qlora_decoders": ["semeval2018_ec"],
             "04_cdec": ["ecbplus"], "05_qa": ["squad_v1.1"], "06_multitask": ["minbert", "sick"],
             "07_emotion_ensemble": ["semeval2018_ec"]}
# notebooks that read other runs' outputs: the parameter listing them (their saved predictions join the cache key)
RUN_INPUTS = {"07_emotion_ensemble": "MEMBERS"}


def _sha(paths_: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths_:
        h.update(str(p.name).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def cache_key(notebook: str, params: dict, data_dir: str) -> dict:
    """What a finished run's results depend on: its resolved parameters (lib.params.resolve, exactly as the notebook
    will), the code (the notebook file and every lib/*.py) and the checksums of the data files it reads."""
    from lib import params as params_
    resolved = params_.resolve({k: v for k, v in params.items() if k != "OUTPUT_DIR"}, notebook)
    code = _sha([paths.NOTEBOOKS / f"{notebook}.ipynb", *sorted((paths.ROOT / "lib").glob("*.py"))])
    root = paths.data_dir(data_dir)
    files = sorted(f for d in DATA_READ.get(notebook, []) for f in (root / d).rglob("*") if f.is_file())
    key = {"params": json.loads(json.dumps(dict(resolved), default=str)), "code": code,
           "data": _sha(files) if files else "none", "tiny": os.environ.get("LAB_TINY", "")}
    if notebook in RUN_INPUTS:
        runs = Path(resolved.get("RUNS_DIR") or paths.OUTPUTS)
        inputs = sorted(f for m in resolved[RUN_INPUTS[notebook]] for f in (runs / m).glob("*") if f.is_file()
                        and (f.suffix in (".npy", ".txt") or f.name == "submission.csv"))
        key["inputs"] = _sha(inputs) if inputs else "none"
    return key


def cached(final: Path, key: dict) -> bool:
    try:
        rec = json.loads((final / "run.json").read_text())
    except (OSError, ValueError):
        return False
    return rec.get("status") == "ok" and rec.get("cache_key") == key and (final / "metrics.json").is_file()


class RunInProgress(Exception):
    pass


@contextlib.contextmanager
def run_lock(final: Path):
    """One process per run folder: a second run_all.sh (or test) asking for the same run gets a clear message."""
    final.parent.mkdir(parents=True, exist_ok=True)
    lock = final.parent / f".{final.name}.lock"
    with open(lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            raise RunInProgress(f"{final} is being written by another run (pid {f.read().strip() or '?'}); wait for "
                                "it or use another LAB_OUTPUTS") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def execute(notebook: str, run: str, params: dict, profile: str, data_dir: str, force: bool = True) -> dict:
    """Run one notebook into outputs/<notebook>/<run>/ (atomically replaced). Returns its run.json record.
    Without `force`, a finished run with the same cache key (parameters, code, data) is kept: status 'cached'."""
    final = paths.OUTPUTS / notebook / run
    try:
        with run_lock(final):
            return _execute(notebook, run, params, profile, data_dir, force, final)
    except RunInProgress as e:
        return {"notebook": notebook, "run": run, "profile": profile, "status": "failed", "error": str(e),
                "elapsed_seconds": 0.0, "params": params}


def _execute(notebook, run, params, profile, data_dir, force, final) -> dict:
    import papermill as pm
    logging.getLogger("papermill").setLevel(logging.ERROR)

    parameters = {"PROFILE": profile, **params}
    if data_dir:
        parameters["DATA_DIR"] = data_dir
    try:
        key = cache_key(notebook, parameters, data_dir)
    except Exception:  # noqa: BLE001 - a bad parameter: the notebook itself reports it; nothing to cache
        key = None
    if not force and key is not None and cached(final, key):
        rec = json.loads((final / "run.json").read_text())
        return {**rec, "status": "cached"}
    tmp = final.parent / f".{run}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    parameters["OUTPUT_DIR"] = str(tmp)
    t0 = time.time()
    status, error = "ok", None
    os.environ.update(QUIET_ENV)
    try:
        with kernel_log(tmp / "kernel.log"):
            pm.execute_notebook(str(paths.NOTEBOOKS / f"{notebook}.ipynb"), str(tmp / "notebook.ipynb"),
                                parameters=parameters, cwd=str(paths.NOTEBOOKS), progress_bar=False,
                                log_output=False, kernel_name="python3")
    except pm.PapermillExecutionError as e:
        status, error = "failed", _short(f"{e.ename}: {e.evalue}".strip())
    except Exception as e:  # noqa: BLE001 - kernel death, timeouts ...: recorded, the other runs go on
        status, error = "failed", _short(f"{type(e).__name__}: {e}")
    elapsed = time.time() - t0
    if (tmp / "notebook.ipynb").exists():
        try:
            render_html(tmp / "notebook.ipynb", tmp / "report.html")
        except Exception as e:  # noqa: BLE001
            error = (error or "") + f" (HTML rendering failed: {e})"
    metrics = tmp / "metrics.json"
    if metrics.exists():  # the notebook saw the temporary folder; record where the run really lives
        m = json.loads(metrics.read_text())
        m["params"]["OUTPUT_DIR"] = str(final)
        metrics.write_text(json.dumps(m, indent=2))
    rec = {"notebook": notebook, "run": run, "profile": profile, "status": status, "error": error,
           "elapsed_seconds": round(elapsed, 1), "params": parameters | {"OUTPUT_DIR": str(final)},
           "cache_key": key}
    (tmp / "run.json").write_text(json.dumps(rec, indent=2))
    old = final.parent / f".{run}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
    return rec


_INDEX = """<!doctype html><meta charset='utf-8'><title>NLP fine-tuning lab: results</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px}
table{border-collapse:collapse;font-size:14px}td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top}
th{background:#f3f3f3}.failed{background:#fde2e2}.study{color:#555;font-size:12px}
img{height:70px;margin:2px;border:1px solid #ddd}</style>
<h1>NLP fine-tuning lab: results</h1>
<p>{{ rows|length }} runs; generated {{ generated }}. Scores are on labelled validation data (test labels are
withheld; see each run's submission.csv).</p>
{% if failed %}<h2>Failures</h2><ul>
{% for r in failed %}<li><b>{{ r.notebook }}/{{ r.run }}</b>: {{ r.error }}</li>
{% endfor %}</ul>{% endif %}
<table><tr><th>experiment</th><th>run</th><th>profile</th><th>status</th><th>headline metrics</th>
<th>study reports</th><th>notes</th><th>time</th><th>peak RSS</th><th>files</th></tr>
{% for r in rows %}<tr{% if r.failed %} class='failed'{% endif %}><td>{{ r.notebook }}</td><td>{{ r.run }}</td>
<td>{{ r.profile }}</td><td>{{ r.status }}{% if r.error %}<br>{{ r.error }}{% endif %}</td>
<td>{% for k, v in r.headline %}{{ k }}: <b>{{ v }}</b>{% if not loop.last %}<br>{% endif %}{% endfor %}</td>
<td class='study'>{{ r.study|join("<br>"|safe) }}</td><td class='study'>{{ r.notes|join("<br>"|safe) }}</td>
<td>{{ r.seconds }}s</td><td>{{ r.peak }}</td>
<td>{% for name, href in r.links %}<a href='{{ href }}'>{{ name }}</a>{% if not loop.last %} · {% endif %}{% endfor %}<br>
{% for href, stem in r.figures %}<a href='{{ href }}'><img src='{{ href }}' title='{{ stem }}'></a>{% endfor %}</td></tr>
{% endfor %}</table>
"""


def _fmt(v) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def build_index(out: Path = paths.OUTPUTS) -> Path:
    """outputs/index.html: every run folder found, with headline metrics beside the study's numbers and links.
    The page is the jinja2 template _INDEX (autoescaped: run names, errors and notes appear as text)."""
    import jinja2
    rows = []
    for run_json in sorted(out.glob("*/*/run.json")):
        d = run_json.parent
        rec = json.loads(run_json.read_text())
        m = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").exists() else {}
        rel = d.relative_to(out)
        links = [("report", f"{rel}/report.html")] if (d / "report.html").exists() else []
        links += [(f, f"{rel}/{f}") for f in ("metrics.json", "submission.csv") if (d / f).exists()]
        rows.append({"notebook": rec["notebook"], "run": rec["run"], "profile": rec["profile"],
                     "status": rec["status"], "failed": rec["status"] != "ok", "error": rec.get("error") or "",
                     "headline": [(k, _fmt(v)) for k, v in m.get("headline", {}).items()],
                     "study": [", ".join(f"{k} {v}" for k, v in s.items()) for s in m.get("study", [])],
                     "notes": m.get("notes", []), "seconds": f"{rec['elapsed_seconds']:.0f}",
                     "peak": f"{m['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in m else "", "links": links,
                     "figures": [(f"{rel}/figures/{p.name}", p.stem) for p in sorted((d / "figures").glob("*.png"))]})
    page = jinja2.Environment(autoescape=True).from_string(_INDEX).render(
        rows=rows, failed=[r for r in rows if r["failed"]], generated=time.strftime("%Y-%m-%d %H:%M:%S"))
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="run_all.sh", description="Execute the lab's notebooks and build HTML reports.")
    ap.add_argument("--profile", default="auto", choices=["auto", "smoke", "cpu", "gpu"])
    ap.add_argument("--only", action="append", help="run only this experiment (e.g. 01_ffnn, ffnn, or one run: 02_encoders/minilm-improved); repeatable")
    ap.add_argument("--list", action="store_true", help="list the runs of the profile and exit")
    ap.add_argument("--data-dir", default="", help="folder holding the datasets (default: $DATA_DIR or data/)")
    ap.add_argument("--no-download", action="store_true",
                    help="never fetch missing datasets (also LAB_DOWNLOAD=0); missing files stop before the first run")
    ap.add_argument("--fetch-only", action="store_true", help="fetch the datasets the planned runs read, run nothing")
    ap.add_argument("--force", action="store_true",
                    help="re-run even when a finished run has the same parameters, code and data (else: 'cached')")
    a = ap.parse_args(argv)
    profile = resolve_profile(a.profile)
    runs = plan(profile, a.only)
    if a.list:
        for nb, run, params in runs:
            print(f"{nb}/{run}  {json.dumps(params)}")
        if not a.only:
            for nb, run, params in profiles.OPTIONAL_RUNS.get(profile, []):
                print(f"{nb}/{run}  {json.dumps(params)}  (opt-in: --only {nb}/{run})")
        return 0
    data_dir = str(paths.data_dir(a.data_dir)) if (a.data_dir or os.environ.get("DATA_DIR")) else ""
    if not download.preflight(sorted({nb for nb, _, _ in runs}), data_dir, allow=not a.no_download):
        return 1
    if a.fetch_only:
        return 0
    os.environ["LAB_DOWNLOAD"] = "0"  # the data is in place: the runs' set-up cells must not fetch it again
    print(f"profile {profile}: {len(runs)} runs -> {paths.OUTPUTS}", flush=True)
    t_all, failures, timings = time.time(), [], load_timings()
    keys = [f"{nb}/{run}" for nb, run, _ in runs]
    for i, (nb, run, params) in enumerate(runs, 1):
        print(f"[{i}/{len(runs)}] {nb}/{run} ({expected_left(profile, keys[i - 1:], timings)}) ...", end=" ",
              flush=True)
        rec = execute(nb, run, params, profile, data_dir, force=a.force)
        if rec["status"] == "ok":
            record_timing(profile, keys[i - 1], rec["elapsed_seconds"])
        took = "finished earlier in " if rec["status"] == "cached" else ""
        print(f"{rec['status']} ({took}{rec['elapsed_seconds']:.0f}s)" + (f": {rec['error']}" if rec["error"] else ""),
              flush=True)
        if rec["status"] not in ("ok", "cached"):
            failures.append(f"{nb}/{run}")
    index = build_index()
    print(f"index: {index}  (total {time.time() - t_all:.0f}s)")
    if failures:
        print(f"FAILED: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
