"""A run's cache key: everything its results depend on, part by part, so run_all.sh can skip a run whose inputs did
not change and `run_all.sh --explain RUN` can say which part did.

Parts (each a dict, stored in the run's run.json under "cache_key"):
  params    the resolved parameters (lib.running.params.resolve, exactly as the notebook will)
  code      checksum of the notebook and of every lib/**/*.py, per file
  packages  installed version of every distribution in RESULT_REQUIREMENTS and of everything they require
            (importlib.metadata, transitively), and the Python version
  data      per data folder the notebook reads: one checksum over its files
  hub_data  per Hugging Face hub dataset the run reads: its resolved revision
  models    per model the parameters name: the embedded files' checksum (the Gemma GGUF by the checksum its package
            publishes, so the key needs no assembly) or the hub repository's resolved revision
  upstream  per other run the notebook reads (02 and 03: the FFNN baseline; 07: its MEMBERS): that run's own key
            digest, its status and a checksum of the files read from it
  tiny      LAB_TINY (the gpu_tiny test's stand-in models)
  processes the number of processes it trained on, when more than one (run_all.sh --num-processes)

Cost: file checksums come from lib.core.filehash (hashed once, then remembered by size and mtime): a warm key is a few
stats per file plus ~0.4 s once per process for the package versions; the first key on a machine hashes the data
and the embedded model files once (~1-2 s per 100 MB).
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import sys
from pathlib import Path

from lib.core import filehash, paths
from lib.data.download import DATA_READ  # the data folders each notebook reads
from lib.models import fingerprint

# models a notebook loads whatever its parameters say (04's first stage embeds mentions with the embedded MiniLM)
MODELS_READ = {"04_cdec": ["all-MiniLM-L6-v2"]}
# the FFNN run 02 and 03 report as their baseline: lib.studies.emotion.FFNN_RUN (not imported: lib.studies.emotion pulls in sklearn,
# seconds per process; tests/test_run_cache.py checks the two agree), and the files read from it and from 07's members
FFNN_RUN = "01_ffnn/improved"
BASELINE_FILES = ("thresholds.json", "probs_val.npy", "probs_holdout.npy", "val_ids.txt", "holdout_ids.txt")
MEMBER_FILES = ("probs_val.npy", "probs_holdout.npy", "probs_test.npy", "val_ids.txt", "holdout_ids.txt",
                "submission.csv")


def digest(obj) -> str:
    """A short checksum of a JSON-able value (sorted keys): a key's, or one part's, identity."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cache_key(notebook: str, params: dict, data_dir: str, processes: int = 1) -> dict:
    """The key of a run of `notebook` with `params` (as run_all.sh passes them, PROFILE included), trained on
    `processes` processes (a part of the key only when more than one: BATCH_SIZE is per process)."""
    from lib.running import params as params_
    resolved = params_.resolve({k: v for k, v in params.items() if k != "OUTPUT_DIR"}, notebook)
    plain = json.loads(json.dumps({k: v for k, v in resolved.items() if k not in params_.RUN_ONLY}, default=str))
    return {"params": plain, "code": code(notebook), "packages": packages(), "data": data(notebook, data_dir),
            "hub_data": hub_data(notebook, plain, data_dir), "models": models(notebook, plain),
            "upstream": upstream(notebook, plain), "tiny": os.environ.get("LAB_TINY", ""),
            **({"processes": processes} if processes > 1 else {}), **compute(plain)}


def compute(params: dict) -> dict:
    """The compute precision a run of `params` will use on this machine (lib.core.precision), a part of the key
    only when not fp32 (existing keys stay valid): the same run computes in bf16 on one machine, fp32 on another."""
    from lib.core import precision
    from lib.running import profiles
    got = precision.resolved(mode=profiles.compute_precision(params.get("PROFILE", "")))
    return {"precision": got} if got != "fp32" else {}


def code(notebook: str) -> dict:
    nb = paths.NOTEBOOKS / f"{notebook}.ipynb"
    out = {f"notebooks/{nb.name}": filehash.sha256(nb)[:16]} if nb.is_file() else {}
    return out | {f.relative_to(paths.ROOT).as_posix(): filehash.sha256(f)[:16]
                  for f in sorted((paths.ROOT / "lib").rglob("*.py"))}


# the requirement files whose packages compute results (requirements-tracking.txt's MLflow only logs: not in the key)
RESULT_REQUIREMENTS = ("requirements.txt", "requirements-nodeps.txt")


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@functools.lru_cache(maxsize=1)
def _packages() -> tuple:
    import importlib.metadata as md

    from packaging.requirements import InvalidRequirement, Requirement
    todo = []
    for req_file in (paths.ROOT / name for name in RESULT_REQUIREMENTS):
        for line in req_file.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-"):
                with_name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
                todo.append(with_name.group(0) if with_name else line)
    seen: dict = {}
    while todo:
        name = todo.pop()
        if _normal(name) in seen:
            continue
        try:
            dist = md.distribution(name)
        except md.PackageNotFoundError:
            seen[_normal(name)] = "not installed"
            continue
        seen[_normal(name)] = dist.version
        for r in dist.requires or []:
            try:
                req = Requirement(r)
            except InvalidRequirement:
                continue
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return tuple(sorted(seen.items()))


def packages() -> dict:
    return {"python": sys.version.split()[0], **dict(_packages())}


def data(notebook: str, data_dir: str) -> dict:
    root = paths.data_dir(data_dir)
    return {d: filehash.tree_digest(root / d) if (root / d).is_dir() else "missing"
            for d in DATA_READ.get(notebook, [])}






def hub_data(notebook: str, params: dict, data_dir: str) -> dict:
    from lib.data import semeval
    out = {}
    if notebook == "05_qa" and params.get("DATA_SOURCE") == "hub":
        out["squad"] = fingerprint.hub_revision("squad", "dataset")
    if "semeval2018_ec" in DATA_READ.get(notebook, []) and \
            not (paths.data_dir(data_dir) / semeval.FOLDER / semeval.FILES["train"]).is_file():
        out[semeval.HUB[0]] = fingerprint.hub_revision(semeval.HUB[0], "dataset")  # the loader falls back to the hub copy
    return out


def _model_names(notebook: str, params: dict) -> list[str]:
    names = {v for k, v in params.items() if k.endswith("MODEL") and isinstance(v, str) and v}
    names |= {v["model"] for v in params.values() if isinstance(v, dict) and isinstance(v.get("model"), str)}
    return sorted(names | set(MODELS_READ.get(notebook, [])))




def models(notebook: str, params: dict) -> dict:
    return {n: fingerprint.model_fingerprint(n) for n in _model_names(notebook, params)}


def upstream_runs(notebook: str, params: dict) -> dict:
    """{"notebook/run": (its folder, the files read from it)} of the runs this one reads."""
    if notebook in ("02_encoders", "03_qlora_decoders"):
        return {FFNN_RUN: (paths.OUTPUTS / FFNN_RUN, BASELINE_FILES)}
    if notebook == "07_emotion_ensemble":
        root = Path(params.get("RUNS_DIR") or paths.OUTPUTS)
        return {m: (root / m, MEMBER_FILES) for m in params.get("MEMBERS", [])}
    return {}


def upstream(notebook: str, params: dict) -> dict:
    from lib.reporting import runs
    out = {}
    for name, (d, files) in upstream_runs(notebook, params).items():
        try:
            rec = runs.read_json(d / runs.RUN_JSON)
            state = {"key": digest(rec.get("cache_key")), "status": rec.get("status")}
        except (OSError, runs.DamagedFile) as e:
            state = {"key": "none", "status": "missing" if isinstance(e, OSError) else "damaged run.json"}
        present = [d / f for f in files if (d / f).is_file()]
        state["files"] = digest([(f.name, filehash.sha256(f)) for f in present]) if present else "none"
        out[name] = state
    return out


def explain(old: dict | None, new: dict) -> list[str]:
    """What changed from the key a run was made with (`old`) to the key it would have now: one line per changed
    entry, e.g. 'packages: transformers 5.0.0 -> 5.1.0'; [] when nothing did."""
    if not old:
        return ["no cached key: the run was never finished by run_all.sh (or before keys were recorded)"]
    lines = []
    for part in sorted(set(old) | set(new)):
        a, b = old.get(part, "(absent)"), new.get(part, "(absent)")
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                if a.get(k, "(absent)") != b.get(k, "(absent)"):
                    lines.append(f"{part}: {k} {_show(a.get(k, '(absent)'))} -> {_show(b.get(k, '(absent)'))}")
        else:
            lines.append(f"{part}: {_show(a)} -> {_show(b)}")
    return lines


def _show(v) -> str:
    text = json.dumps(v, sort_keys=True, default=str) if not isinstance(v, str) else v
    return text if len(text) <= 120 else text[:117] + "..."
