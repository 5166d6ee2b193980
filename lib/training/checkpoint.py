"""Checkpoints of lib.training.train.fit that are safe to resume from.

A checkpoint folder holds one complete accelerate `save_state` per save (model, optimizer, scheduler, RNG states and
the engine's own progress) and a marker, `latest.json`, naming the complete one and the run's fingerprint. A save
writes into `step-N.tmp/`, renames it to `step-N/` once complete, and only then replaces the marker, atomically
(os.replace), so a process killed at any point leaves the marker on the last complete save.

The fingerprint says what the checkpoint's training was: the configuration (fields that change results), the
model (class, parameter names/shapes/dtypes, a digest of the starting trainable weights), the data (number of
batches, a digest of sampled examples and of the loader's random generators), the process count and precision, and
the engine's code and library versions. A resume continues only from a checkpoint with the same fingerprint;
otherwise the run starts fresh and says which parts differ.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import random
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from lib.training import ranks

MARKER = "latest.json"
# TrainConfig fields that do not change what training computes, left out of the fingerprint
NOT_FINGERPRINTED = ("checkpoint_dir", "save_every", "resume", "track", "track_dir", "progress")
SAMPLED_ITEMS = 64  # dataset items hashed for the data digest, evenly spaced (reading them draws no randomness)


def _digest(*parts) -> str:
    h = hashlib.blake2b(digest_size=12)
    for p in parts:
        h.update(p if isinstance(p, bytes) else repr(p).encode())
    return h.hexdigest()


def _hash_value(h, x) -> None:
    """Feed `x` into hash `h`: tensors and arrays by dtype, shape and bytes; containers item by item; others by repr."""
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu().contiguous()
        h.update(repr((t.dtype, tuple(t.shape))).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(x, np.ndarray):
        h.update(repr((x.dtype.str, x.shape)).encode() + np.ascontiguousarray(x).tobytes())
    elif isinstance(x, dict):
        for k in x:
            h.update(repr(k).encode())
            _hash_value(h, x[k])
    elif isinstance(x, (list, tuple)):
        h.update(f"{type(x).__name__}{len(x)}".encode())
        for v in x:
            _hash_value(h, v)
    else:
        h.update(repr(x).encode())


def model_digest(model) -> str:
    """Class, every parameter's name, shape, dtype and trainability, and the values of the trainable ones."""
    h = hashlib.blake2b(digest_size=12)
    h.update(type(model).__name__.encode())
    for name, p in model.named_parameters():
        h.update(repr((name, tuple(p.shape), str(p.dtype), p.requires_grad)).encode())
        if p.requires_grad:
            _hash_value(h, p)
    return h.hexdigest()


def loader_generators(loader) -> list:
    """The random generators that decide a loader's order: torch.Generator, numpy Generator/RandomState or
    random.Random attributes of the loader, its sampler and batch sampler (and the batch sampler's sampler)."""
    kinds = (torch.Generator, np.random.Generator, np.random.RandomState, random.Random)
    batch_sampler = getattr(loader, "batch_sampler", None)
    holders = [loader, getattr(loader, "sampler", None), batch_sampler, getattr(batch_sampler, "sampler", None)]
    found = {}
    for obj in holders:
        for value in (vars(obj).values() if hasattr(obj, "__dict__") else ()):
            if isinstance(value, kinds):
                found.setdefault(id(value), value)
    return list(found.values())


def _get_state(gen):
    if isinstance(gen, torch.Generator):
        return gen.get_state()
    if isinstance(gen, np.random.Generator):
        return gen.bit_generator.state
    return gen.get_state() if isinstance(gen, np.random.RandomState) else gen.getstate()


def _set_state(gen, state) -> None:
    if isinstance(gen, torch.Generator):
        gen.set_state(state)
    elif isinstance(gen, np.random.Generator):
        gen.bit_generator.state = state
    elif isinstance(gen, np.random.RandomState):
        gen.set_state(state)
    else:
        gen.setstate(state)


def rng_state(loader) -> dict:
    """What decides the next epoch's batches: torch's global CPU generator (a DataLoader draws its seed from it) and
    the loader's own generators. Taken at the start of every epoch, so a resume can replay that epoch's order."""
    return {"torch": torch.get_rng_state(), "loader": [_get_state(g) for g in loader_generators(loader)]}


def set_rng_state(loader, state: dict) -> None:
    torch.set_rng_state(state["torch"])
    for gen, s in zip(loader_generators(loader), state["loader"], strict=True):
        _set_state(gen, s)


def data_digest(loader) -> str:
    """A list of batches: every batch's contents. A DataLoader (or any loader with a dataset): the dataset's size
    and SAMPLED_ITEMS evenly spaced items. Both: the number of batches and the loader's generators' states."""
    h = hashlib.blake2b(digest_size=12)
    h.update(f"{type(loader).__name__} {len(loader)} batches".encode())
    dataset = getattr(loader, "dataset", None)
    if isinstance(loader, (list, tuple)):
        _hash_value(h, list(loader))
    elif dataset is not None and hasattr(dataset, "__len__"):
        n = len(dataset)
        h.update(f"{n} examples, batch size {getattr(loader, 'batch_size', None)}".encode())
        for i in sorted({int(i) for i in np.linspace(0, n - 1, min(n, SAMPLED_ITEMS))}):
            _hash_value(h, dataset[i])
    _hash_value(h, [_get_state(g) for g in loader_generators(loader)])
    return h.hexdigest()


def engine_digest() -> str:
    """The engine's own code (lib.training.train and the modules it trains with) and the versions of torch and accelerate."""
    import accelerate

    from lib.training import checkpoint, optimization, ranks, stopping, trackers, train
    return _digest(*(inspect.getsource(m) for m in (train, optimization, ranks, stopping, checkpoint, trackers)),
                   torch.__version__, accelerate.__version__)


def fingerprint(cfg, model, loader, num_processes: int, precision: str) -> dict:
    """What a checkpoint's training was (see the module's docstring); JSON, compared part by part on resume."""
    config = {k: v for k, v in asdict(cfg).items() if k not in NOT_FINGERPRINTED}
    return {"config": json.loads(json.dumps(config, default=repr)), "model": model_digest(model),
            "data": data_digest(loader), "processes": num_processes, "precision": precision,
            "engine": engine_digest()}


def differences(saved: dict, now: dict) -> list[str]:
    """The parts (and configuration fields) where two fingerprints differ, in words."""
    out = []
    for part in sorted(set(saved) | set(now)):
        if part == "config" and isinstance(saved.get(part), dict):
            keys = sorted(k for k in set(saved[part]) | set(now.get(part, {}))
                          if saved[part].get(k) != now.get(part, {}).get(k))
            out += [f"config.{k} {saved[part].get(k)!r} -> {now.get(part, {}).get(k)!r}" for k in keys]
        elif saved.get(part) != now.get(part):
            out.append(f"{part} {saved.get(part)!r} -> {now.get(part)!r}")
    return out


def _write_marker(folder: Path, content: dict) -> None:
    """The marker, replaced atomically: written to a temporary file, flushed to disk, renamed over the old one."""
    tmp = folder / f"{MARKER}.tmp"
    with open(tmp, "w") as f:
        json.dump(content, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, folder / MARKER)


def _sync_files(folder: Path) -> None:
    """Flush a finished save's files to disk before the marker names it (a power cut then cannot leave a marker
    over files still in the page cache)."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


class Checkpoints:
    """The checkpoint folder of one training. Every rank calls `save` and `resume` together; the main process
    writes the marker and decides whether the marked checkpoint fits this training (its fingerprint)."""

    def __init__(self, acc, folder, fingerprint: dict, say=print):
        self.acc, self.folder, self.fingerprint, self.say = acc, Path(folder), fingerprint, say

    def register(self, *objects) -> None:
        """Objects with state_dict/load_state_dict saved beside the model, optimizer and RNG states (None: skipped)."""
        for obj in objects:
            if obj is not None:
                self.acc.register_for_checkpointing(obj)

    def save(self, step: int) -> None:
        """accelerate's save_state into step-N.tmp/, renamed to step-N/, then the marker; older saves removed."""
        acc, name = self.acc, f"step-{step:06d}"
        tmp, final = self.folder / f"{name}.tmp", self.folder / name
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)  # a save killed earlier
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if acc.is_main_process:
            _sync_files(tmp)
            shutil.rmtree(final, ignore_errors=True)  # never the marked one: a save comes after its step
            os.replace(tmp, final)
            _write_marker(self.folder, {"folder": name, "step": step, "fingerprint": self.fingerprint})
            for old in self.folder.glob("step-*"):
                if old != final:
                    shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()

    def resume(self) -> bool:
        """Load the marked checkpoint when it fits this training; otherwise say why not and return False."""
        found, why = self._usable() if self.acc.is_main_process else (None, "")
        found, why = ranks.broadcast((found, why), self.acc)
        if found is None:
            if why:
                self.say(f"not resuming from {self.folder}: {why}; starting fresh")
            return False
        self.acc.load_state(str(self.folder / found))
        return True

    def _usable(self) -> tuple:
        """(the marked save's folder, "") when it fits; (None, why not) when it does not; (None, "") when none."""
        marker = self.folder / MARKER
        if not marker.exists():
            return None, ""
        try:
            saved = json.loads(marker.read_text())
            folder, theirs = saved["folder"], saved["fingerprint"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            return None, f"its marker {marker} is unreadable ({type(e).__name__}: {e})"
        diff = differences(theirs, self.fingerprint)
        if diff:
            return None, "it was made by a different training (" + "; ".join(diff) + ")"
        if not (self.folder / folder).is_dir():
            return None, f"the marked save {self.folder / folder} is missing"
        return folder, ""
