"""Notebook parameters: one `parameters` cell of literal defaults, checked and resolved here.

The single source of truth for a notebook's parameters is its own cell tagged `parameters`
(ALL_CAPS = literal, a comment per line; `[a|b|c]` in the comment lists the allowed values).
`setup(globals(), "01_ffnn")` then
  * rejects unknown or mistyped names (papermill itself only warns), with a suggestion;
  * checks types against the defaults and allowed values against the `[a|b]` lists;
  * resolves PROFILE (`auto` -> `gpu` with CUDA else `cpu`) and fills every parameter left at its
    default from the profile's presets in `lib/profiles.py` (a value you set always wins);
  * seeds everything, sets offline mode for offline profiles, and creates the run's output folder.
"""
from __future__ import annotations

import ast
import difflib
import json
import os
import random
import re
import time
from pathlib import Path

from lib import paths
from lib.errors import LabError

_ALLOWED = re.compile(r"\[([^\]]*\|[^\]]*)\]")


class Params(dict):
    """Resolved parameters; read as P.NAME or P["NAME"]. Extra run facts live in P.meta."""

    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError:
            raise AttributeError(k) from None


def parameters_cell(notebook: str | Path) -> tuple[dict, dict]:
    """Parse a notebook's `parameters` cell -> ({name: default}, {name: allowed values or None})."""
    path = Path(notebook)
    if not path.suffix:
        path = paths.NOTEBOOKS / f"{notebook}.ipynb"
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise LabError(f"{path}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    src = "".join(cells[0]["source"])
    lines = src.splitlines()
    defaults, allowed = {}, {}
    for node in ast.parse(src).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise LabError(f"{path}: parameters cell line {node.lineno}: only `NAME = literal` assignments allowed")
        name = node.targets[0].id
        try:
            defaults[name] = ast.literal_eval(node.value)
        except ValueError:
            raise LabError(f"{path}: parameters cell line {node.lineno}: {name} must be a literal") from None
        comment = lines[node.lineno - 1].partition("#")[2]
        m = _ALLOWED.search(comment)
        allowed[name] = [_literal_or_word(v) for v in m.group(1).split("|")] if m else None
    return defaults, allowed


def _literal_or_word(text: str):
    try:
        return ast.literal_eval(text.strip())
    except (ValueError, SyntaxError):
        return text.strip()


def _type_ok(value, default) -> bool:
    if default is None or value is None:
        return True
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default)) and not (isinstance(value, bool) and not isinstance(default, bool))


def injected_names(ns: dict) -> set[str] | None:
    """Names set in papermill's injected-parameters cell (run_all.sh and `papermill -p` both inject one), read from
    the kernel's input history (`In`); None when the notebook was not run by papermill (interactive use)."""
    cells = [src for src in ns.get("In", []) or [] if isinstance(src, str) and src.startswith("# Parameters")]
    if not cells:
        return None
    names: set[str] = set()
    for src in cells:
        for node in ast.parse(src).body:
            if isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def resolve(given: dict, notebook: str, explicit: set[str] | None = None) -> Params:
    """Check `given` (the notebook's globals or any dict) against the notebook's parameters cell.

    `explicit`: the names the user set (they win over the profile's presets even when equal to the default).
    None means every name in `given` was set explicitly (a dict passed by code)."""
    from lib import profiles, tiny

    defaults, allowed = parameters_cell(notebook)
    given = {k: v for k, v in given.items() if k.isupper() and not k.startswith("_")}
    if explicit is None:
        explicit = set(given)
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        hints = []
        for u in unknown:
            close = difflib.get_close_matches(u, defaults, n=1)
            hints.append(f"{u}" + (f" (did you mean {close[0]}?)" if close else ""))
        raise LabError(f"notebook {notebook}: unknown parameter(s): {', '.join(hints)}. "
                       f"Known: {', '.join(sorted(defaults))}")
    values = {**defaults, **given}
    profile = profiles.resolve_profile(values.get("PROFILE", "auto"))
    presets = profiles.presets(notebook, profile)
    bad_preset = sorted(set(presets) - set(defaults))
    if bad_preset:
        raise LabError(f"lib/profiles.py: preset for {notebook}/{profile} names unknown parameter(s) {bad_preset}")
    for k, v in presets.items():
        if k not in explicit:  # not set by the user -> the profile decides
            values[k] = v
    values["PROFILE"] = profile
    values = tiny.apply(notebook, values)  # LAB_TINY=1: samples and steps capped (lib/tiny.py)
    for k, v in values.items():
        if not _type_ok(v, defaults[k]):
            raise LabError(f"notebook {notebook}: parameter {k}={v!r} should be a {type(defaults[k]).__name__} "
                           f"like its default {defaults[k]!r}")
        if allowed[k] is not None and v not in allowed[k] and not (k == "PROFILE" and v in ("cpu", "gpu")):
            raise LabError(f"notebook {notebook}: parameter {k}={v!r} is not one of {allowed[k]}")
    return Params(values)


def cap(rows, n: int, name: str, P=None, seed: int = 0, what: str = "rows"):
    """The one subsampling rule of the lab's MAX_*_SAMPLES / MAX_*_PAIRS knobs: at most `n` rows (0: all), a seeded
    random subset that keeps the original order. Asking for more rows than exist keeps them all (never an error).
    Every cap that applied is recorded in P.meta["caps"]; lib.report.finish writes them into metrics.json and the
    report. `rows`: a DataFrame (pandas' seeded sample) or a list."""
    total = len(rows)
    if not n or n >= total:
        if n:
            _note_cap(P, f"{name}={n}: all {total} {what} kept (fewer than the cap)")
        return rows
    if hasattr(rows, "sample"):
        out = rows.sample(n=n, random_state=seed).sort_index()
    else:
        keep = sorted(random.Random(seed).sample(range(total), n))
        out = [rows[i] for i in keep]
    _note_cap(P, f"{name}={n}: {n} of {total} {what}")
    return out


def _note_cap(P, text: str) -> None:
    if P is None:
        return
    if not isinstance(getattr(P, "meta", None), dict):
        P.meta = {}
    caps = P.meta.setdefault("caps", [])
    if text not in caps:
        caps.append(text)


def seed_everything(seed: int) -> None:
    """Python, NumPy and torch (all GPUs) seeded alike (transformers.set_seed)."""
    from transformers import set_seed
    set_seed(seed)


def hand_run_name(P: dict, explicit: set[str]) -> str:
    """Folder of a run made by hand (papermill or Jupyter, no OUTPUT_DIR): named by the parameters set, so two
    different hand-made runs never overwrite each other: e.g. `hand-cpu-EPOCHS=5,LR=0.0001-3f2a9c1d`."""
    import hashlib
    given = {k: P[k] for k in sorted(explicit) if k in P and k not in ("PROFILE", "OUTPUT_DIR", "DATA_DIR")}
    text = ",".join(f"{k}={v}" for k, v in given.items())
    slug = re.sub(r"[^A-Za-z0-9=.,_-]+", "_", text)[:60] or "defaults"
    digest = hashlib.sha256(json.dumps(given, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"hand-{P['PROFILE']}-{slug}-{digest}"


def setup(ns: dict, notebook: str) -> Params:
    """Resolve a notebook's parameters (see module doc) and prepare the run. Returns P."""
    explicit = injected_names(ns)
    if explicit is None:  # interactive: a value edited in the parameters cell differs from the notebook's default
        defaults, _ = parameters_cell(notebook)
        explicit = {k for k, v in ns.items() if k in defaults and v != defaults[k]}
    P = resolve(ns, notebook, explicit)
    if P.PROFILE in ("cpu", "smoke"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # offline profiles never try the network
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    seed_everything(P.get("SEED", 0))
    out = Path(P.get("OUTPUT_DIR") or paths.OUTPUTS / notebook / hand_run_name(P, explicit))
    out.mkdir(parents=True, exist_ok=True)
    P.meta = {"notebook": notebook, "out": out, "t0": time.time()}
    from lib import memory
    est = memory.check_run(P, notebook)  # on a GPU: stop now, naming the knob to turn, if the run will not fit
    if est:
        P.meta["gpu_memory_estimate_gb"] = round(est["total"] / memory.GB, 2)
    P.out = out
    return P
