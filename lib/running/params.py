"""Notebook parameters: one `parameters` cell of literal defaults, checked and resolved here.

The single source of truth for a notebook's parameters is its own cell tagged `parameters`
(ALL_CAPS = literal, a comment per line; `[a|b|c]` in the comment lists the allowed values).
A dict parameter groups closely related knobs (`DECODER = {"model": ..., "lr": ...}`); the comment lines right
above it document each key (`#   lr: peak learning rate`, `[a|b]` lists a key's allowed values). A value given for
it (by the user, papermill or a profile) is a dict too, possibly partial, MERGED over the default key by key; an
unknown key is an error, each key's type is checked against its default, and a key the user set wins over the
profile's preset for that key.
`setup(globals(), "01_ffnn")` then
  * rejects unknown or mistyped names (papermill itself only warns), whatever their case (`-p epochs 1` too:
    every name papermill injected is checked), with the closest known names;
  * checks types against the defaults and allowed values against the `[a|b]` lists;
  * resolves PROFILE (`auto` -> `gpu` with CUDA else `cpu`) and fills every parameter left at its
    default from the profile's presets in `lib/running/profiles.py` (a value you set always wins);
  * checks ranges and cross-parameter rules (lib/running/param_rules.py) on the resolved values, quoting the comments;
  * seeds everything, sets offline mode for offline profiles, and creates the run's output folder.
The result, P, is read-only (Params): a function that needs another value takes it as an argument.
"""
from __future__ import annotations

import ast
import difflib
import json
import os
import re
import time
from pathlib import Path

from lib.core import distributed, paths, precision
from lib.core.errors import LabError
from lib.training.seeding import seed_everything

_ALLOWED = re.compile(r"\[([^\]]*\|[^\]]*)\]")
# names papermill itself injects beside the parameters (`--inject-paths`): not parameters, never an error
PAPERMILL_NAMES = {"PAPERMILL_INPUT_PATH", "PAPERMILL_OUTPUT_PATH"}


class Params(dict):
    """Resolved parameters, read-only: read as P.NAME or P["NAME"]; a write (P["X"] = ..., P.X = ..., update, a
    change inside a dict or list parameter) raises ReadOnlyParameters, so what a run did is what it resolved. Run
    facts that are not parameters: P.out (the run's folder) and P.meta (a plain dict, e.g. the caps that applied)."""

    def __init__(self, values=(), /, *, out=None, meta=None, **names):
        super().__init__({k: frozen(v) for k, v in {**dict(values), **names}.items()})
        object.__setattr__(self, "out", out)
        object.__setattr__(self, "meta", {} if meta is None else meta)

    def __getattr__(self, k):
        try:
            return self[k]
        except KeyError:
            raise AttributeError(k) from None

    def __setattr__(self, k, v):
        raise ReadOnlyParameters(k)

    def __delattr__(self, k):
        raise ReadOnlyParameters(k)

    def __setitem__(self, k, v):
        raise ReadOnlyParameters(k)

    def __delitem__(self, k):
        raise ReadOnlyParameters(k)

    def _write(self, *a, **kw):
        raise ReadOnlyParameters(_written_name(a, kw))

    update = setdefault = pop = popitem = clear = __ior__ = _write

    def __reduce__(self):  # pickle rebuilds through __init__ (the default would call __setitem__)
        return _rebuild, (dict(self), self.out, self.meta)

    def __copy__(self):
        return Params(self, out=self.out, meta=self.meta)

    def __deepcopy__(self, memo):
        import copy
        return Params(copy.deepcopy(dict(self), memo), out=self.out, meta=copy.deepcopy(self.meta, memo))

    def facts(self):
        """What the run's record (lib.reporting.report.finish) says about the run: its folder, notebook, profile,
        resolved parameters, start time and the caps that applied."""
        from lib.reporting.report import RunFacts
        return RunFacts(out=Path(self.out), notebook=self.meta["notebook"], profile=self["PROFILE"],
                        params={k: v for k, v in self.items() if k.isupper()}, started=self.meta["t0"],
                        caps=tuple(self.meta.get("caps", [])))


def _rebuild(values, out, meta):
    return Params(values, out=out, meta=meta)


def _written_name(args, kwargs):
    """The parameter a write names: update({"X": ...}) / update(X=...) / pop("X") / setdefault("X", ...)."""
    if args and isinstance(args[0], str):
        return args[0]
    if args and isinstance(args[0], dict) and args[0]:
        return next(iter(args[0]))
    return next(iter(kwargs), None)


class ReadOnlyParameters(TypeError):
    """A write into the resolved parameters (a programming mistake: the traceback shows where)."""

    def __init__(self, name=None, what=None):
        what = what or (f"parameter {name}" if name is not None else "the parameters")
        super().__init__(f"{what}: the resolved parameters are read-only (what metrics.json records is what ran); "
                         "pass a changed value to the function that needs it, or set the parameter before lib.setup "
                         "(the parameters cell, papermill -p, or a profile)")


class _FrozenDict(dict):
    """A dict parameter's value inside Params: reads like a dict (and **-unpacks, JSON-encodes), refuses writes."""

    def _write(self, *a, **kw):
        key = _written_name(a, kw)
        raise ReadOnlyParameters(what=f"key {key!r} of a dict parameter" if key else "a dict parameter")

    __setitem__ = __delitem__ = update = setdefault = pop = popitem = clear = __ior__ = _write

    def __reduce__(self):
        return _FrozenDict, (dict(self),)

    def __deepcopy__(self, memo):
        import copy
        return {k: copy.deepcopy(v, memo) for k, v in self.items()}  # a copy is the caller's own: writable


class _FrozenList(list):
    """A list parameter's value inside Params: reads like a list, refuses writes."""

    def _write(self, *a, **kw):
        raise ReadOnlyParameters(what="a list parameter")

    __setitem__ = __delitem__ = append = extend = insert = pop = remove = clear = sort = reverse = _write
    __iadd__ = __imul__ = _write

    def __reduce__(self):
        return _FrozenList, (list(self),)

    def __deepcopy__(self, memo):
        import copy
        return [copy.deepcopy(v, memo) for v in self]


def frozen(value):
    """`value` with every dict and list inside it made read-only (_FrozenDict, _FrozenList)."""
    if isinstance(value, dict):
        return _FrozenDict({k: frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return _FrozenList(frozen(v) for v in value)
    return value


def parameters_cell(notebook: str | Path) -> tuple[dict, dict]:
    """Parse a notebook's `parameters` cell -> ({name: default}, {name: allowed values or None}); for a dict
    parameter the allowed entry is {key: allowed values or None}."""
    defaults, allowed, _, _ = _parse_cell(notebook)
    return defaults, allowed


def key_docs(notebook: str | Path) -> dict:
    """{dict parameter: {key: its documenting comment}} from the comment lines above each dict parameter."""
    return _parse_cell(notebook)[2]


def comments(notebook: str | Path) -> dict:
    """{NAME: its comment in the parameters cell} and {"NAME.key": the comment line documenting that key}."""
    _, _, docs, notes = _parse_cell(notebook)
    return {**notes, **{f"{name}.{k}": doc for name, keys in docs.items() for k, doc in keys.items()}}


_KEY_DOC = re.compile(r"^\s*#\s+([a-z_][a-z0-9_]*):\s*(.*)$")


def _parse_cell(notebook):
    path = Path(notebook)
    if not path.suffix:
        path = paths.NOTEBOOKS / f"{notebook}.ipynb"
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise LabError(f"{path}: expected exactly one cell tagged 'parameters', found {len(cells)}")
    src = "".join(cells[0]["source"])
    lines = src.splitlines()
    defaults, allowed, docs, notes = {}, {}, {}, {}
    for node in ast.parse(src).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            raise LabError(f"{path}: parameters cell line {node.lineno}: only `NAME = literal` assignments allowed")
        name = node.targets[0].id
        try:
            defaults[name] = ast.literal_eval(node.value)
        except ValueError:
            raise LabError(f"{path}: parameters cell line {node.lineno}: {name} must be a literal") from None
        comment = lines[node.lineno - 1].partition("#")[2]
        notes[name] = comment.strip()
        m = _ALLOWED.search(comment)
        allowed[name] = [_literal_or_word(v) for v in m.group(1).split("|")] if m else None
        if isinstance(defaults[name], dict):  # its keys are documented by the comment lines right above it
            docs[name] = {}
            i = node.lineno - 2
            while i >= 0 and lines[i].strip().startswith("#"):
                k = _KEY_DOC.match(lines[i])
                if k:
                    docs[name][k.group(1)] = k.group(2)
                i -= 1
            allowed[name] = {k: ([_literal_or_word(v) for v in a.group(1).split("|")]
                                 if (a := _ALLOWED.search(docs[name].get(k, ""))) else None) for k in defaults[name]}
    return defaults, allowed, docs, notes


def _suggest(name: str, known) -> str:
    """`name` with the closest known names, whatever the case (difflib; else a known name it abbreviates, e.g.
    temp -> temperature); a key of a dict parameter is named as one (`epochs` -> `TRAINING={'epochs': ...}`)."""
    by_lower = {k.lower(): k for k in known}
    close = (difflib.get_close_matches(name.lower(), list(by_lower), n=3)
             or [k for k in by_lower if k.startswith(name.lower())][:1])
    if not close and isinstance(known, dict):
        inside = [f"{k}={{{name.lower()!r}: ...}}" for k, v in known.items()
                  if isinstance(v, dict) and name.lower() in v]
        return f"{name}" + (f" (a key of {' or '.join(inside)}?)" if inside else "")
    return f"{name}" + (f" (did you mean {' or '.join(by_lower[c] for c in close)}?)" if close else "")


def merge_dict(notebook: str, name: str, base: dict, value, source: str = "") -> dict:
    """`value` (a dict, possibly partial) merged over `base` key by key, for the dict parameter `name`. Not a dict,
    or a key `base` lacks: LabError naming the parameter and the key, with the closest known key."""
    where = f"{source}: " if source else ""
    if not isinstance(value, dict):
        raise LabError(f"{where}notebook {notebook}: parameter {name}={value!r} should be a dict like its default "
                       f"{base!r} (a partial dict sets only the keys it names)")
    unknown = sorted(set(value) - set(base))
    if unknown:
        raise LabError(f"{where}notebook {notebook}: parameter {name} has no key(s) "
                       f"{', '.join(_suggest(u, base) for u in unknown)}. Known keys: {', '.join(base)}")
    return {**base, **value}


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
    from lib.running import profiles, tiny

    defaults, allowed = parameters_cell(notebook)
    if explicit is None:
        explicit = {k for k in given if not k.startswith("_")}
    # every name set explicitly, whatever its case (papermill's `-p epochs 1` too), and any upper-case global
    names = (explicit | {k for k in given if k.isupper() and not k.startswith("_")}) - PAPERMILL_NAMES
    unknown = sorted(names - set(defaults))
    given = {k: v for k, v in given.items() if k in names}
    if unknown:
        hints = ", ".join(_suggest(u, defaults) for u in unknown)
        raise LabError(f"notebook {notebook}: unknown parameter(s): {hints}. "
                       f"Known: {', '.join(sorted(defaults))}")
    values = {**defaults, **{k: merge_dict(notebook, k, defaults[k], v) if isinstance(defaults[k], dict) else v
                             for k, v in given.items()}}
    profile = profiles.resolve_profile(values.get("PROFILE", "auto"))
    presets = profiles.presets(notebook, profile)
    bad_preset = sorted(set(presets) - set(defaults))
    if bad_preset:
        raise LabError(f"lib/running/profiles.py: preset for {notebook}/{profile} names unknown parameter(s) {bad_preset}")
    for k, v in presets.items():
        if isinstance(defaults[k], dict):  # key by key: the preset's keys, then the keys the user set
            merge_dict(notebook, k, defaults[k], v, f"lib/running/profiles.py preset {profile}")  # unknown keys fail here
            values[k] = {**values[k], **v, **(given.get(k, {}) if k in explicit else {})}
        elif k not in explicit:  # not set by the user -> the profile decides
            values[k] = v
    values["PROFILE"] = profile
    values = tiny.apply(notebook, values)  # LAB_TINY=1: samples and steps capped (lib/running/tiny.py)
    for k, v in values.items():
        if not _type_ok(v, defaults[k]):
            raise LabError(f"notebook {notebook}: parameter {k}={v!r} should be a {type(defaults[k]).__name__} "
                           f"like its default {defaults[k]!r}")
        if isinstance(defaults[k], dict):
            for key, kv in v.items():
                if not _type_ok(kv, defaults[k][key]):
                    raise LabError(f"notebook {notebook}: parameter {k}[{key!r}]={kv!r} should be a "
                                   f"{type(defaults[k][key]).__name__} like its default {defaults[k][key]!r}")
                if allowed[k][key] is not None and kv not in allowed[k][key]:
                    raise LabError(f"notebook {notebook}: parameter {k}[{key!r}]={kv!r} is not one of "
                                   f"{allowed[k][key]}")
        elif allowed[k] is not None and v not in allowed[k] and not (k == "PROFILE" and v in ("cpu", "gpu")):
            raise LabError(f"notebook {notebook}: parameter {k}={v!r} is not one of {allowed[k]}")
    check_rules(notebook, values, defaults)
    return Params(values)


def check_rules(notebook: str, values: dict, defaults: dict) -> None:
    """The ranges and cross-parameter rules of lib/running/param_rules.py; the first broken one stops the run, its message
    quoting each parameter's comment from the parameters cell."""
    from lib.running import param_rules
    broken = param_rules.broken(notebook, values, defaults)
    if not broken:
        return
    r, notes = broken[0], comments(notebook)
    got = [param_rules.value(values, n) for n in r.names]
    shown = ", ".join(f"{n}={v!r}" for n, v in zip(r.names, got))
    expected = r.expected(*got) if callable(r.expected) else r.expected
    meaning = "; ".join(f"{n}: {notes[n]}" for n in r.names if notes.get(n))
    raise LabError(f"notebook {notebook}: parameter {shown}: expected {expected}"
                   + (f" ({meaning})" if meaning else ""))


def hand_run_name(P: dict, explicit: set[str]) -> str:
    """Folder of a run made by hand (papermill or Jupyter, no OUTPUT_DIR): named by the parameters set, so two
    different hand-made runs never overwrite each other: e.g. `hand-cpu-EPOCHS=5,LR=0.0001-3f2a9c1d`."""
    import hashlib
    given = {k: P[k] for k in sorted(explicit) if k in P and k not in ("PROFILE", "DATA_DIR", *RUN_ONLY)}
    text = ",".join(f"{k}={v}" for k, v in given.items())
    slug = re.sub(r"[^A-Za-z0-9=.,_-]+", "_", text)[:60] or "defaults"
    digest = hashlib.sha256(json.dumps(given, sort_keys=True, default=str).encode()).hexdigest()[:8]
    return f"hand-{P['PROFILE']}-{slug}-{digest}"


# parameters that say how a run is made, not what it computes: left out of its cache key (lib.running.runkey)
RUN_ONLY = ("OUTPUT_DIR", "RESUME", "CHECKPOINT_EVERY", "CHECKPOINT_DIR", "TRACK")


def training_run_keys(values: dict, out: Path) -> dict:
    """The TrainConfig keys a training notebook's RESUME, CHECKPOINT_EVERY, CHECKPOINT_DIR and TRACK set: checkpoints
    every CHECKPOINT_EVERY optimiser steps into CHECKPOINT_DIR (default <run folder>/checkpoints), resumed from when
    RESUME, and curves tracked into <run folder>/tracking."""
    every = values.get("CHECKPOINT_EVERY", 0)
    return {"checkpoint_dir": (values.get("CHECKPOINT_DIR") or str(out / "checkpoints")) if every else "",
            "save_every": every, "resume": bool(values.get("RESUME")) and bool(every),
            "track": values.get("TRACK", ""), "track_dir": str(out / "tracking") if values.get("TRACK") else ""}


def edited_keys(value: dict, default: dict) -> dict:
    """The keys of a dict parameter edited in the parameters cell (differing from the default, or unknown): only
    those count as set by the user, the others follow the profile."""
    return {k: v for k, v in value.items() if k not in default or v != default[k]}


def setup(ns: dict, notebook: str) -> Params:
    """Resolve a notebook's parameters (see module doc) and prepare the run. Returns P."""
    explicit = injected_names(ns)
    if explicit is None:  # interactive: a value edited in the parameters cell differs from the notebook's default
        defaults, _ = parameters_cell(notebook)
        explicit = {k for k, v in ns.items() if k in defaults and v != defaults[k]}
        ns = {**ns, **{k: edited_keys(ns[k], defaults[k]) for k in explicit
                       if isinstance(defaults[k], dict) and isinstance(ns[k], dict)}}
    values = resolve(ns, notebook, explicit)
    if values.PROFILE in ("cpu", "smoke"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # offline profiles never try the network
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    seed_everything(values.get("SEED", 0))
    from lib.running import profiles
    precision.configure(profiles.compute_precision(values.PROFILE))  # bf16 where native (lib.core.precision)
    distributed.bind_device()  # a rank of run_all.sh --num-processes N: its own GPU (lib.running.launch)
    out = Path(values.get("OUTPUT_DIR") or paths.OUTPUTS / notebook / hand_run_name(values, explicit))
    out.mkdir(parents=True, exist_ok=True)
    if "TRAINING" in values and "RESUME" in values:
        values = {**values, "TRAINING": {**values["TRAINING"], **training_run_keys(values, out)}}
    P = Params(values, out=out, meta={"notebook": notebook, "out": out, "t0": time.time()})
    from lib.running import memory
    decoder = notebook == "03_qlora_decoders"  # the one notebook whose quantisation and LoRA rank size the model
    est = memory.check_run(P.get("MODEL", ""), P.get("BATCH_SIZE", 0), P.get("MAX_LENGTH", 0),
                           quantization=P.get("QUANTIZATION", "none") if decoder else "none",
                           lora_r=P.get("LORA", {}).get("r", 0) if decoder else 0,
                           gradient_checkpointing=bool(P.get("GRADIENT_CHECKPOINTING", False)),
                           generative=P.get("MODE") == "generative")  # on a GPU: stop now if the run will not fit
    if est:
        P.meta["gpu_memory_estimate_gb"] = round(est["total"] / memory.GB, 2)
    return P
