"""The batch runner behind run_all.sh: execute notebooks with papermill, render HTML, build outputs/index.html.

    python -m lib.running.runner [--profile auto|smoke|cpu|gpu] [--only 01_ffnn ...] [--list] [--data-dir DIR]

Each run goes to outputs/<notebook>/<run>/: notebook.ipynb (executed), report.html, metrics.json, figures/*.png,
submission.csv where it applies, run.json (status, elapsed, error, cache key). A run is written into a temporary
folder and swapped in at the end, so an interrupted run never leaves a half-old, half-new folder. A failed or
interrupted attempt never replaces a good result: it lands beside it in outputs/<notebook>/<run>.failed/ (lib.reporting.runs).
A failing notebook does not stop the others; its partial notebook and HTML are kept, it is listed in index.html, and
the exit code is 1. Each run has a time limit (`time_limit`); leftovers of killed runners are cleaned up
(`sweep`).
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import sys
import threading
import time
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

from lib.core import paths
from lib.data import download
from lib.reporting import runs
from lib.running import profiles, runkey

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


def atomic_write(path: Path, text: str) -> None:
    """Write a whole file or nothing: a killed process leaves the old file, never half a new one."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def load_timings(out: Path = paths.OUTPUTS) -> dict:
    """outputs/timings.json, or {} when there is none; a damaged one is reported (named) and ignored."""
    try:
        return runs.read_json(out / TIMINGS)
    except OSError:
        return {}
    except runs.DamagedFile as e:
        print(f"warning: {e}; the expected times start afresh", file=sys.stderr, flush=True)
        return {}


def record_timing(profile: str, key: str, seconds: float, out: Path = paths.OUTPUTS) -> None:
    t = load_timings(out)
    t.setdefault(profile, {})[key] = round(seconds, 1)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / TIMINGS, json.dumps(t, indent=1, sort_keys=True))


TIME_LIMIT_FACTOR = 3.0  # a run may take this many times its last measured time (a cold model cache, a slow day)
MIN_TIME_LIMIT = 600.0  # seconds: the least limit a measured run gets (short runs vary most)
UNMEASURED_LIMIT = {"smoke": 1800.0, "cpu": 3 * 3600.0, "gpu": 12 * 3600.0}  # seconds, for runs never measured
TIME_LIMIT_ENV = "LAB_RUN_TIME_LIMIT"  # seconds for every run (0: none); --time-limit wins


def time_limit(profile: str, key: str, timings: dict, override: float | None = None) -> float | None:
    """Seconds run `key` may take before its kernel is stopped (None: no limit): `override` (--time-limit), else
    $LAB_RUN_TIME_LIMIT, else TIME_LIMIT_FACTOR x its last measured time (at least MIN_TIME_LIMIT), else the
    profile's UNMEASURED_LIMIT. 0 means no limit."""
    if override is None and os.environ.get(TIME_LIMIT_ENV):
        try:
            override = float(os.environ[TIME_LIMIT_ENV])
        except ValueError:
            raise SystemExit(f"{TIME_LIMIT_ENV}={os.environ[TIME_LIMIT_ENV]!r}: expected seconds (a number; 0: no "
                             "limit)") from None
    if override is not None:
        return override or None
    measured = timings.get(profile, {}).get(key)
    if measured:
        return max(TIME_LIMIT_FACTOR * measured, MIN_TIME_LIMIT)
    return UNMEASURED_LIMIT.get(profile)


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
    """The report people read: summary card, contents, folded code (lib.running.report_html)."""
    from lib.running import report_html
    report_html.render(nb_path, html_path)


def cached(final: Path, key: dict) -> bool:
    """A finished good run in `final` made with exactly `key` (runkey.cache_key)."""
    try:
        rec = runs.read_json(final / runs.RUN_JSON)
    except (OSError, runs.DamagedFile):
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


def execute(notebook: str, run: str, params: dict, profile: str, data_dir: str, force: bool = True,
            limit: float | None = None) -> dict:
    """Run one notebook into outputs/<notebook>/<run>/ (atomically replaced when it succeeds; a failed attempt goes
    beside a good result, see lib.reporting.runs). Returns its run.json record. Without `force`, a finished run with the same
    cache key (lib.running.runkey) is kept: status 'cached'. `limit`: seconds before the kernel is stopped (None: none)."""
    final = paths.OUTPUTS / notebook / run
    try:
        with run_lock(final):
            sweep_run(final)
            return _execute(notebook, run, params, profile, data_dir, force, final, limit)
    except RunInProgress as e:
        return {"notebook": notebook, "run": run, "profile": profile, "status": "failed", "error": str(e),
                "elapsed_seconds": 0.0, "params": params}


class _Deadline:
    """Stops a notebook's kernel (its whole process group: the kernel and anything it started) after `seconds`;
    nbclient then reports the kernel dead and papermill returns. Passed to papermill as the kernel manager class."""

    def __init__(self, seconds: float | None):
        self.seconds, self.expired, self.managers = seconds, False, []
        self.timer = threading.Timer(seconds, self._expire) if seconds else None

    def manager_class(self):
        from jupyter_client import AsyncKernelManager
        deadline = self

        class DeadlineKernelManager(AsyncKernelManager):
            async def start_kernel(self, **kw):
                await super().start_kernel(**kw)
                deadline.managers.append(self)
                if deadline.expired:
                    deadline._kill(self)
        return DeadlineKernelManager

    def _expire(self):
        self.expired = True
        for km in list(self.managers):
            self._kill(km)

    @staticmethod
    def _kill(km):
        pgid = getattr(km.provisioner, "pgid", None)
        with contextlib.suppress(OSError, TypeError):
            os.killpg(pgid, signal.SIGKILL)

    def __enter__(self):
        if self.timer:
            self.timer.daemon = True
            self.timer.start()
        return self

    def __exit__(self, *exc):
        if self.timer:
            self.timer.cancel()


def _execute(notebook, run, params, profile, data_dir, force, final, limit=None) -> dict:
    import papermill as pm
    logging.getLogger("papermill").setLevel(logging.ERROR)

    parameters = {"PROFILE": profile, **params}
    if data_dir:
        parameters["DATA_DIR"] = data_dir
    try:
        key = runkey.cache_key(notebook, parameters, data_dir)
    except Exception:  # noqa: BLE001 - a bad parameter: the notebook itself reports it; nothing to cache
        key = None
    if not force and key is not None and cached(final, key):
        rec = runs.read_json(final / runs.RUN_JSON)
        return {**rec, "status": "cached"}
    tmp = final.parent / f".{run}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    parameters["OUTPUT_DIR"] = str(tmp)
    t0 = time.time()
    status, error, interrupted = "ok", None, None
    os.environ.update(QUIET_ENV)
    deadline = _Deadline(limit)
    try:
        with kernel_log(tmp / "kernel.log"), deadline:
            pm.execute_notebook(str(paths.NOTEBOOKS / f"{notebook}.ipynb"), str(tmp / "notebook.ipynb"),
                                parameters=parameters, cwd=str(paths.NOTEBOOKS), progress_bar=False,
                                log_output=False, kernel_name="python3",
                                kernel_manager_class=deadline.manager_class())
    except pm.PapermillExecutionError as e:
        status, error = "failed", _short(f"{e.ename}: {e.evalue}".strip())
    except Exception as e:  # noqa: BLE001 - kernel death, timeouts ...: recorded, the other runs go on
        status, error = "failed", _short(f"{type(e).__name__}: {e}")
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM (main): keep the attempt beside the last good result
        status, error, interrupted = "interrupted", "interrupted (Ctrl-C or SIGTERM) before it finished", e
    if deadline.expired:
        status, error = "failed", (f"time limit {limit:.0f} s exceeded: the kernel was stopped (the limit: "
                                   f"--time-limit or ${TIME_LIMIT_ENV}; default {TIME_LIMIT_FACTOR:g} x the last "
                                   f"measured time)")
    elapsed = time.time() - t0
    error = _render_report(tmp, error)
    damaged = _relocate_metrics(tmp, final)
    if damaged:
        status, error = ("failed" if status == "ok" else status), "; ".join(filter(None, [error, damaged]))
    if status == "ok" and key is not None:  # what the run resolved while it ran (a hub model it downloaded)
        key = {**key, "models": runkey.models(notebook, key["params"]),
               "hub_data": runkey.hub_data(notebook, key["params"], data_dir)}
    rec = {"notebook": notebook, "run": run, "profile": profile, "status": status, "error": error,
           "elapsed_seconds": round(elapsed, 1), "params": parameters | {"OUTPUT_DIR": str(final)},
           "cache_key": key, "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    (tmp / runs.RUN_JSON).write_text(json.dumps(rec, indent=2))
    place(tmp, final, ok=status == "ok")
    if interrupted is not None:
        raise interrupted
    return rec


def _render_report(tmp: Path, error: str | None) -> str | None:
    """report.html from the executed notebook; returns the error, extended when rendering fails."""
    if (tmp / "notebook.ipynb").exists():
        try:
            render_html(tmp / "notebook.ipynb", tmp / "report.html")
        except Exception as e:  # noqa: BLE001
            error = (error or "") + f" (HTML rendering failed: {e})"
    return error


def _relocate_metrics(tmp: Path, final: Path) -> str | None:
    """Record in metrics.json where the run really lives (the notebook saw the temporary folder). Returns what is
    wrong with a damaged metrics.json (the run then counts as failed), else None."""
    metrics = tmp / "metrics.json"
    if not metrics.exists():
        return None
    try:
        m = runs.read_json(metrics)
        m["params"]["OUTPUT_DIR"] = str(final)
    except (runs.DamagedFile, KeyError, TypeError) as e:
        return f"metrics.json: {e}"
    metrics.write_text(json.dumps(m, indent=2))
    return None


def _good(run_dir: Path) -> bool:
    try:
        return runs.read_json(run_dir / runs.RUN_JSON).get("status") == "ok"
    except (OSError, runs.DamagedFile, AttributeError):
        return False


def _swap(src: Path, dest: Path) -> None:
    """Move folder `src` to `dest`, replacing it; a crash in between leaves `.<name>.old-PID`, which sweep_run
    puts back."""
    old = dest.parent / f".{dest.name}.old-{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    src.rename(dest)
    shutil.rmtree(old, ignore_errors=True)


def place(attempt: Path, final: Path, ok: bool) -> Path:
    """Put a finished attempt where it belongs: a good one replaces `final` (and drops an older failed attempt); a
    failed one goes to <run>.failed beside a good `final`, or to `final` itself when there is no good result to
    keep. Returns where it went."""
    failed = runs.failed_dir(final)
    if ok:
        _swap(attempt, final)
        shutil.rmtree(failed, ignore_errors=True)
        return final
    dest = failed if _good(final) else final
    _swap(attempt, dest)
    if dest == final:
        shutil.rmtree(failed, ignore_errors=True)
    return dest


_LEFTOVER = re.compile(r"^\.(?P<run>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)$")


def sweep_run(final: Path) -> list[str]:
    """Clean up after runners that died (kill -9, power loss) while writing `final` (call it holding the run's
    lock, so no live process writes these): a `.<run>.old-PID` whose swap did not finish becomes `final` again when
    `final` is gone, else is removed; a `.<run>.tmp-PID` attempt is kept as an interrupted attempt (lib.reporting.runs layout)
    with a run.json saying so. Returns what was done, one line each."""
    done = []
    for d in sorted(final.parent.glob(f".{final.name}.*-*")):
        m = _LEFTOVER.match(d.name)
        if not m or m["run"] != final.name or not d.is_dir() or int(m["pid"]) == os.getpid():
            continue
        if m["kind"] == "old":
            if not final.exists():
                d.rename(final)
                done.append(f"{final}: restored from {d.name} (a swap was interrupted)")
            else:
                shutil.rmtree(d, ignore_errors=True)
                done.append(f"{d}: removed (left by process {m['pid']})")
            continue
        rec = {"notebook": final.parent.name, "run": final.name, "status": "interrupted",
               "error": f"the runner (process {m['pid']}) stopped before this run finished (killed?)",
               "elapsed_seconds": 0.0, "profile": "?", "params": {}}
        (d / runs.RUN_JSON).write_text(json.dumps(rec, indent=2))
        where = place(d, final, ok=False)
        done.append(f"{d}: an interrupted attempt (process {m['pid']}), kept as {where.name}")
    return done


def sweep(out: Path = paths.OUTPUTS) -> list[str]:
    """sweep_run over every run folder of `out` that no live process holds."""
    done = []
    names = {(d.parent, m["run"]) for d in out.glob("*/.*-*") if (m := _LEFTOVER.match(d.name))}
    for parent, run in sorted(names):
        try:
            with run_lock(parent / run):
                done += sweep_run(parent / run)
        except RunInProgress:
            continue
    return done


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
    atomic_write(index, page)
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


def explain(profile: str, only: list[str], data_dir: str) -> list[str]:
    """`run_all.sh --explain RUN`: per run picked, what changed in its cache key since its finished run (or
    'cached: nothing changed')."""
    lines = []
    for nb, run, params in plan(profile, only):
        final = paths.OUTPUTS / nb / run
        parameters = {"PROFILE": profile, **params, **({"DATA_DIR": data_dir} if data_dir else {})}
        lines.append(f"{nb}/{run} ({final}):")
        try:
            rec = runs.read_json(final / runs.RUN_JSON)
        except OSError:
            lines.append("  never finished here: it runs on the next run_all.sh")
            continue
        except runs.DamagedFile as e:
            lines.append(f"  {e}: it runs again on the next run_all.sh")
            continue
        if rec.get("status") != "ok":
            lines.append(f"  its last attempt {rec.get('status')}: {rec.get('error')}")
        if runs.failed_dir(final).is_dir():
            lines.append(f"  a failed attempt after it: {runs.failed_dir(final)}")
        changes = runkey.explain(rec.get("cache_key"), runkey.cache_key(nb, parameters, data_dir))
        lines += [f"  {c}" for c in changes] or ["  cached: nothing changed"]
    return lines


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a scheduler's or `timeout`'s stop) ends the runner as Ctrl-C does: the attempt under way is kept
    beside the last good result instead of vanishing mid-swap."""
    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    with contextlib.suppress(ValueError):  # not the main thread (tests calling main in a thread): keep the default
        signal.signal(signal.SIGTERM, handler)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="run_all.sh", description="Execute the lab's notebooks and build HTML reports.")
    ap.add_argument("--profile", default="auto", choices=["auto", "smoke", "cpu", "gpu"])
    ap.add_argument("--only", action="append", help="run only this experiment (e.g. 01_ffnn, ffnn, or one run: 02_encoders/minilm-improved); repeatable")
    ap.add_argument("--list", action="store_true", help="list the runs of the profile and exit")
    ap.add_argument("--explain", action="append", metavar="RUN",
                    help="say which part of RUN's cache key (parameters, code, packages, data, models, upstream runs) "
                         "changed since its finished run; repeatable; runs nothing")
    ap.add_argument("--data-dir", default="", help="folder holding the datasets (default: $DATA_DIR or data/)")
    ap.add_argument("--no-download", action="store_true",
                    help="never fetch missing datasets (also LAB_DOWNLOAD=0); missing files stop before the first run")
    ap.add_argument("--fetch-only", action="store_true", help="fetch the datasets the planned runs read, run nothing")
    ap.add_argument("--force", action="store_true",
                    help="re-run even when a finished run has the same cache key (else: 'cached'; see --explain)")
    ap.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                    help=f"stop a run's kernel after SECONDS (0: no limit; default ${TIME_LIMIT_ENV}, else "
                         f"{TIME_LIMIT_FACTOR:g} x its last measured time, at least {MIN_TIME_LIMIT:.0f} s)")
    a = ap.parse_args(argv)
    profile = resolve_profile(a.profile)
    data_dir = str(paths.data_dir(a.data_dir)) if (a.data_dir or os.environ.get("DATA_DIR")) else ""
    if a.explain:
        print("\n".join(explain(profile, a.explain, data_dir)))
        return 0
    todo = plan(profile, a.only)
    if a.list:
        for nb, run, params in todo:
            print(f"{nb}/{run}  {json.dumps(params)}")
        if not a.only:
            for nb, run, params in profiles.OPTIONAL_RUNS.get(profile, []):
                print(f"{nb}/{run}  {json.dumps(params)}  (opt-in: --only {nb}/{run})")
        return 0
    if not download.preflight(sorted({nb for nb, _, _ in todo}), data_dir, allow=not a.no_download):
        return 1
    if a.fetch_only:
        return 0
    os.environ["LAB_DOWNLOAD"] = "0"  # the data is in place: the runs' set-up cells must not fetch it again
    _interrupt_on_sigterm()
    print(f"profile {profile}: {len(todo)} runs -> {paths.OUTPUTS}", flush=True)
    for line in sweep():
        print(f"cleaned up: {line}", flush=True)
    t_all, failures, timings = time.time(), [], load_timings()
    keys = [f"{nb}/{run}" for nb, run, _ in todo]
    for i, (nb, run, params) in enumerate(todo, 1):
        print(f"[{i}/{len(todo)}] {nb}/{run} ({expected_left(profile, keys[i - 1:], timings)}) ...", end=" ",
              flush=True)
        limit = time_limit(profile, keys[i - 1], timings, a.time_limit)
        try:
            rec = execute(nb, run, params, profile, data_dir, force=a.force, limit=limit)
        except KeyboardInterrupt:
            final = paths.OUTPUTS / nb / run
            where = runs.failed_dir(final) if _good(final) else final
            print(f"interrupted; the attempt is kept in {where}", flush=True)
            build_index()
            return 130
        if rec["status"] == "ok":
            record_timing(profile, keys[i - 1], rec["elapsed_seconds"])
        took = "finished earlier in " if rec["status"] == "cached" else ""
        print(f"{rec['status']} ({took}{rec['elapsed_seconds']:.0f}s)" + (f": {rec['error']}" if rec["error"] else ""),
              flush=True)
        if rec["status"] not in ("ok", "cached"):
            failures.append(f"{nb}/{run}")
            if _good(paths.OUTPUTS / nb / run):
                print(f"    the last good result stays in {paths.OUTPUTS / nb / run}; this attempt is in "
                      f"{runs.failed_dir(paths.OUTPUTS / nb / run)}", flush=True)
    index = build_index()
    print(f"index: {index}  (total {time.time() - t_all:.0f}s)")
    if failures:
        print(f"FAILED: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
