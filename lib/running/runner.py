"""The batch runner behind run_all.sh: execute notebooks with papermill, render HTML, build outputs/index.html
(lib.running.index).

    python -m lib.running.runner [--profile auto|smoke|cpu|gpu] [--only 01_ffnn ...] [--list] [--data-dir DIR]

Each run goes to outputs/<notebook>/<run>/: notebook.ipynb (executed), report.html, metrics.json, figures/*.png,
submission.csv where it applies, run.json (status, elapsed, error, cache key). A run is written into a temporary
folder and swapped in at the end, so an interrupted run never leaves a half-old, half-new folder. A failed or
interrupted attempt never replaces a good result: it lands beside it in outputs/<notebook>/<run>.failed/ (lib.reporting.runs).
A failing notebook does not stop the others; its partial notebook and HTML are kept, it is listed in index.html, and
the exit code is 1. Each run has a time limit (lib.running.timings); leftovers of killed runners are cleaned up
(`sweep`).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

from lib.core import paths
from lib.core.errors import LabError
from lib.data import download
from lib.reporting import runs
from lib.running import attempts, index, profiles, runkey, timings
from lib.running.timings import TIME_LIMIT_ENV, TIME_LIMIT_FACTOR

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


def execute(notebook: str, run: str, params: dict, profile: str, data_dir: str, force: bool = True,
            limit: float | None = None, processes: int = 1) -> dict:
    """Run one notebook into outputs/<notebook>/<run>/ (atomically replaced when it succeeds; a failed attempt goes
    beside a good result, see lib.reporting.runs). Returns its run.json record. Without `force`, a finished run with the same
    cache key (lib.running.runkey) is kept: status 'cached'. `limit`: seconds before the kernel is stopped (None: none).
    `processes` > 1: the notebook runs on that many processes (lib.running.launch)."""
    final = paths.OUTPUTS / notebook / run
    try:
        with attempts.run_lock(final):
            attempts.sweep_run(final)
            return _execute(notebook, run, params, profile, data_dir, force, final, limit, processes)
    except attempts.RunInProgress as e:
        return {"notebook": notebook, "run": run, "profile": profile, "status": "failed", "error": str(e),
                "elapsed_seconds": 0.0, "params": params}


class _Deadline:
    """Stops a notebook's kernel (its whole process group: the kernel and anything it started) after `seconds`;
    nbclient then reports the kernel dead and papermill returns. Passed to papermill as the kernel manager class."""

    def __init__(self, seconds: float | None):
        self.seconds, self.expired, self.managers, self.groups = seconds, False, [], []
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

    def watch(self, proc) -> None:
        """Also stop `proc`'s process group (the torchrun of a run on several processes) when the time is up."""
        self.groups.append(proc.pid)
        if self.expired:
            self._expire()

    def _expire(self):
        self.expired = True
        for km in list(self.managers):
            self._kill(km)
        for pgid in self.groups:
            with contextlib.suppress(OSError):
                os.killpg(pgid, signal.SIGTERM)

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


def _execute(notebook, run, params, profile, data_dir, force, final, limit=None, processes=1) -> dict:
    import papermill as pm
    logging.getLogger("papermill").setLevel(logging.ERROR)

    parameters = {"PROFILE": profile, **params}
    if data_dir:
        parameters["DATA_DIR"] = data_dir
    try:
        key = runkey.cache_key(notebook, parameters, data_dir, processes)
    except Exception:  # noqa: BLE001 - a bad parameter: the notebook itself reports it; nothing to cache
        key = None
    if not force and key is not None and cached(final, key):
        rec = runs.read_json(final / runs.RUN_JSON)
        return {**rec, "status": "cached"}
    tmp = final.parent / f".{run}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    parameters["OUTPUT_DIR"] = str(tmp)
    if takes_checkpoints(notebook) and not parameters.get("CHECKPOINT_DIR"):  # kept across attempts: a re-run resumes
        parameters["CHECKPOINT_DIR"] = str(attempts.checkpoints_dir(final))
    t0 = time.time()
    status, error, interrupted = "ok", None, None
    os.environ.update(QUIET_ENV)
    deadline = _Deadline(limit)
    try:
        with kernel_log(tmp / "kernel.log"), deadline:
            if processes > 1:
                error = _execute_ranks(notebook, tmp, parameters, processes, deadline)
                status = "failed" if error else status
            else:
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
                                   f"--time-limit or ${TIME_LIMIT_ENV}; default {TIME_LIMIT_FACTOR:g} x the expected "
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
           "num_processes": processes,
           "cache_key": key, "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    (tmp / runs.RUN_JSON).write_text(json.dumps(rec, indent=2))
    attempts.place(tmp, final, ok=status == "ok")
    if status == "ok":  # checkpoints only serve a run that did not finish; the other ranks' copies neither
        shutil.rmtree(attempts.checkpoints_dir(final), ignore_errors=True)
        shutil.rmtree(final / "ranks", ignore_errors=True)
    if interrupted is not None:
        raise interrupted
    return rec


def _execute_ranks(notebook: str, tmp: Path, parameters: dict, n: int, deadline: _Deadline) -> str | None:
    """Execute the notebook on `n` processes (torchrun, lib.running.launch): rank 0 into `tmp`, the others into
    tmp/ranks/. Returns None when every rank finished, else the error (the first failed rank's)."""
    import subprocess

    from lib.running import launch
    spec = launch.write_spec(tmp, paths.NOTEBOOKS / f"{notebook}.ipynb", parameters, paths.NOTEBOOKS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(paths.ROOT), os.environ.get("PYTHONPATH")]))}
    env.setdefault("OMP_NUM_THREADS", str(launch.threads_per_rank(n)))
    proc = subprocess.Popen(launch.command(spec, n), cwd=paths.ROOT, env=env, start_new_session=True)
    deadline.watch(proc)
    try:
        code = proc.wait()
    except KeyboardInterrupt:  # the ranks run in their own session: end them with the runner
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
        raise
    if code == 0:
        return None
    return _short(launch.failure(tmp, n) or f"torchrun exited with status {code} (its log: kernel.log)")


def takes_checkpoints(notebook: str) -> bool:
    """The notebook trains and has the CHECKPOINT_DIR parameter (every training notebook; not 07's blend)."""
    from lib.running import params as params_
    try:
        return "CHECKPOINT_DIR" in params_.parameters_cell(notebook)[0]
    except (LabError, OSError, ValueError):  # no readable parameters cell: the notebook itself reports it
        return False


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


def explain(profile: str, only: list[str], data_dir: str, processes: int = 1) -> list[str]:
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
        n = processes if takes_checkpoints(nb) else 1
        changes = runkey.explain(rec.get("cache_key"), runkey.cache_key(nb, parameters, data_dir, n))
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
    ap.add_argument("--num-processes", type=int, default=1, metavar="N",
                    help="run each training notebook on N processes (torchrun; one per GPU, or gloo on CPU): "
                         "BATCH_SIZE is per process (default 1)")
    ap.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                    help=f"stop a run's kernel after SECONDS (0: no limit; default ${TIME_LIMIT_ENV}, else "
                         f"{TIME_LIMIT_FACTOR:g} x its expected time, at least {timings.MIN_TIME_LIMIT:.0f} s)")
    a = ap.parse_args(argv)
    profile = resolve_profile(a.profile)
    if a.num_processes < 1:
        ap.error(f"--num-processes {a.num_processes}: expected a whole number of processes, at least 1")
    data_dir = str(paths.data_dir(a.data_dir)) if (a.data_dir or os.environ.get("DATA_DIR")) else ""
    if a.explain:
        print("\n".join(explain(profile, a.explain, data_dir, a.num_processes)))
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
    for line in attempts.sweep():
        print(f"cleaned up: {line}", flush=True)
    t_all, failures = time.time(), []
    measured, reference = timings.load_timings(), timings.load_reference()  # this machine's; the shipped ones
    procs = [a.num_processes if takes_checkpoints(nb) else 1 for nb, _, _ in todo]
    keys = [f"{nb}/{run}" + (f" x{n}" if n > 1 else "") for (nb, run, _), n in zip(todo, procs)]  # timed apart
    for i, (nb, run, params) in enumerate(todo, 1):
        left = timings.expected_left(profile, keys[i - 1:], measured, reference)
        print(f"[{i}/{len(todo)}] {nb}/{run} ({left}) ...", end=" ", flush=True)
        limit = timings.time_limit(profile, keys[i - 1], measured, a.time_limit, reference)
        try:
            rec = execute(nb, run, params, profile, data_dir, force=a.force, limit=limit, processes=procs[i - 1])
        except KeyboardInterrupt:
            final = paths.OUTPUTS / nb / run
            where = runs.failed_dir(final) if attempts.is_good(final) else final
            print(f"interrupted; the attempt is kept in {where}", flush=True)
            index.build_index()
            return 130
        if rec["status"] == "ok":
            measured = timings.record_timing(profile, keys[i - 1], rec["elapsed_seconds"])
        took = "finished earlier in " if rec["status"] == "cached" else ""
        print(f"{rec['status']} ({took}{rec['elapsed_seconds']:.0f}s)" + (f": {rec['error']}" if rec["error"] else ""),
              flush=True)
        if rec["status"] not in ("ok", "cached"):
            failures.append(f"{nb}/{run}")
            if attempts.is_good(paths.OUTPUTS / nb / run):
                print(f"    the last good result stays in {paths.OUTPUTS / nb / run}; this attempt is in "
                      f"{runs.failed_dir(paths.OUTPUTS / nb / run)}", flush=True)
    page = index.build_index()
    print(f"index: {page}  (total {time.time() - t_all:.0f}s)")
    if failures:
        print(f"FAILED: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
