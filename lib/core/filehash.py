"""Content checksums of files and folders, remembered by file metadata, and checksum files written beside a cache.

`sha256(path)` hashes a file's bytes once and remembers the digest in a small SQLite table under $LAB_CACHE, keyed
by the file's device and inode (so a folder renamed into place keeps its digests), size and modification time
(ns): a file rewritten or truncated gets a new size or mtime and is hashed again, an unchanged one costs a stat
(the assumption make and git's index rely on; bytes damaged in place with size and mtime kept are not noticed). So run cache keys and cache verification stay fast even over the 300 MB of embedded model files.

`write_manifest(folder)` / `verify_manifest(folder)` store and check every file's size and checksum in
`folder/MANIFEST`: a derived cache (a converted checkpoint) is reused only when it verifies.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import sqlite3
from pathlib import Path

from lib.core import paths

MANIFEST = "MANIFEST.sha256.json"  # in a cached folder: {relative path: [size, sha256]} of every other file


@functools.lru_cache(maxsize=4)
def _db(where: Path) -> sqlite3.Connection:
    """The digests table under `where` (one connection per process and cache folder). Writes skip fsync
    (synchronous OFF): a digest lost in a crash only costs hashing that file again."""
    con = sqlite3.connect(where / "file-hashes.sqlite", timeout=30, isolation_level=None, check_same_thread=False)
    con.execute("PRAGMA synchronous = OFF")
    con.execute("CREATE TABLE IF NOT EXISTS h (file TEXT PRIMARY KEY, stamp TEXT, sha256 TEXT)")
    return con


def _stamp(st: os.stat_result) -> str:
    return f"{st.st_size}-{st.st_mtime_ns}"


def hash_bytes(path: Path, chunk: int = 1 << 22) -> str:
    """sha256 of the file's bytes, read now (no memory)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def sha256(path: Path | str) -> str:
    """sha256 of the file's bytes; hashed again only when its size, mtime or inode changed since last time."""
    st = os.stat(path)
    file, stamp = f"{st.st_dev}:{st.st_ino}", _stamp(st)
    con = _db(paths.cache_dir())
    row = con.execute("SELECT stamp, sha256 FROM h WHERE file = ?", (file,)).fetchone()
    if row and row[0] == stamp:
        return row[1]
    digest = hash_bytes(path)
    if _stamp(os.stat(path)) == stamp:  # not rewritten while we read it
        con.execute("INSERT OR REPLACE INTO h VALUES (?, ?, ?)", (file, stamp, digest))
    return digest


def files_under(folder: Path) -> list[Path]:
    """The regular files under `folder`, sorted, without hidden ones (temporary `.part`/`.tmp` leftovers) or
    __pycache__ (rewritten by any import)."""
    return sorted(f for f in folder.rglob("*") if f.is_file() and "__pycache__" not in f.parts
                  and not any(p.startswith(".") for p in f.relative_to(folder).parts) and f.name != MANIFEST)


def tree_digest(folder: Path) -> str:
    """One sha256 over every file's relative path and content checksum (files_under)."""
    h = hashlib.sha256()
    for f in files_under(folder):
        h.update(f"{f.relative_to(folder).as_posix()}\t{sha256(f)}\n".encode())
    return h.hexdigest()


def write_manifest(folder: Path) -> None:
    """Record every file's size and checksum in folder/MANIFEST (call it before the folder is moved into place)."""
    entries = {f.relative_to(folder).as_posix(): [f.stat().st_size, sha256(f)] for f in files_under(folder)}
    (folder / MANIFEST).write_text(json.dumps(entries, indent=1, sort_keys=True))


def verify_manifest(folder: Path) -> str | None:
    """None when every file listed in folder/MANIFEST is there with its size and checksum (and no listed file is
    missing); else what is wrong, naming the file."""
    try:
        entries = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError) as e:
        return f"{folder / MANIFEST}: unreadable ({e})"
    for rel, (size, digest) in entries.items():
        f = folder / rel
        if not f.is_file():
            return f"{f}: missing"
        if f.stat().st_size != size:
            return f"{f}: {f.stat().st_size} bytes, expected {size}"
        if sha256(f) != digest:
            return f"{f}: checksum differs from {MANIFEST}"
    return None
