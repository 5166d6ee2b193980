"""Fetch every dataset the lab uses (the gpu profile's full data included) into DATA_DIR and check each file.

    python -m lib.data.download [--dest DIR] [--only ecbplus|minbert|sick|squad|semeval ...] [--mirror URL_OR_DIR] [--list]

Each file is downloaded to a temporary name, checked, and only then moved into place: a failed or corrupted download
never replaces a good file, and files already present with the right checksum are skipped. Checksums: SHA-256 where
one is published or was measured on the original bytes; for the two minBERT Quora files only their git blob id is
known (SHA-1 of git's blob object), which is checked instead. `--mirror` reads the same relative paths from another
place (a folder or a file:// / http(s):// base URL), e.g. an institute's copy.

Sources and checksums: lib/data/datasets.tsv (the datasets' public repositories at pinned commits, the official SQuAD
site).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lib.core import paths
from lib.core.errors import LabError


@dataclass(frozen=True)
class File:
    dataset: str   # --only name
    path: str      # where it lands, relative to DATA_DIR (and to a --mirror)
    url: str       # the original source
    check: str     # "sha256:<hex>" or "gitblob:<hex>"
    unzip: bool = False  # a zip archive: extracted next to itself after the check


MANIFEST = Path(__file__).with_name("datasets.tsv")  # one row per file: dataset, path, source URL, checksum, unzip


def _manifest() -> list[File]:
    rows = [ln.split("\t") for ln in MANIFEST.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    return [File(d, p, u, c, z == "unzip") for d, p, u, c, z in rows]


FILES = _manifest()
DATASETS = sorted({f.dataset for f in FILES})


def digest(path: Path, kind: str) -> str:
    """Hex digest of a file: kind 'sha256', or 'gitblob' (git's object id: SHA-1 of 'blob <size>\\0' + bytes)."""
    h = hashlib.sha256() if kind == "sha256" else hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def verify(path: Path, check: str) -> bool:
    kind, _, want = check.partition(":")
    return path.is_file() and digest(path, kind) == want


def source(f: File, mirror: str = "") -> str:
    if not mirror:
        return f.url
    if "://" in mirror:
        return mirror.rstrip("/") + "/" + f.path
    return Path(mirror).resolve().joinpath(f.path).as_uri()


def fetch(f: File, dest: Path, mirror: str = "", log=print) -> str:
    """Download one file into dest/f.path, checked; returns 'present' | 'downloaded'. Raises LabError."""
    target = dest / f.path
    if verify(target, f.check):
        return "present"
    url = source(f, mirror)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.part-{os.getpid()}")
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as out:
            shutil.copyfileobj(r, out)
    except OSError as e:  # URLError, HTTPError and file errors are all OSErrors
        tmp.unlink(missing_ok=True)
        raise LabError(f"{f.path}: could not download {url} ({e}); get it by hand into {target}, or pass --mirror "
                       "with a folder or URL that holds it") from None
    kind, _, want = f.check.partition(":")
    got = digest(tmp, kind)
    if got != want:
        tmp.unlink(missing_ok=True)
        raise LabError(f"{f.path}: {url} has {kind} {got}, expected {want}: a different or damaged file; nothing "
                       f"was replaced at {target}")
    tmp.replace(target)
    if f.unzip:
        with zipfile.ZipFile(target) as z:
            z.extractall(target.parent)
    log(f"downloaded {f.path} ({target.stat().st_size:,} bytes, {kind} ok)")
    return "downloaded"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lib.data.download", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", default="", help="data folder (default: $DATA_DIR or data/)")
    ap.add_argument("--only", action="append", choices=DATASETS, help="only this dataset (repeatable)")
    ap.add_argument("--mirror", default="", help="folder or base URL holding the same relative paths")
    ap.add_argument("--list", action="store_true", help="list the files, their sources and checksums")
    a = ap.parse_args(argv)
    files = [f for f in FILES if not a.only or f.dataset in a.only]
    if a.list:
        for f in files:
            print(f"{f.path}\t{f.check}\t{source(f, a.mirror)}")
        return 0
    dest = paths.data_dir(a.dest)
    failed = []
    for f in files:
        try:
            status = fetch(f, dest, a.mirror)
            if status == "present":
                print(f"present {f.path} (checksum ok)")
        except LabError as e:
            print(f"error: {e}", file=sys.stderr)
            failed.append(f.path)
    if failed:
        print(f"{len(failed)} of {len(files)} files failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all {len(files)} files in {dest} are present and checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
