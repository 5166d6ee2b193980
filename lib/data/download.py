"""Fetch the datasets the lab uses into DATA_DIR and check each file.

    python -m lib.data.download [--dest DIR] [--only ecbplus|minbert|sick|squad|semeval ...] [--mirror URL_OR_DIR] [--list]

Without --only it fetches every file, the gpu profile's full data included; `./run_all.sh` and the notebooks' set-up
cell call `preflight`, which fetches only the files the planned notebooks read and only when they are missing.

Each file is downloaded to a temporary name, checked, and only then moved into place: a failed or corrupted download
never replaces a good file, and files already present with the right checksum are skipped. Checksums: SHA-256 where
one is published or was measured on the original bytes; for the two minBERT Quora files and the ECB+ zip only their
git blob id is known (SHA-1 of git's blob object), which is checked instead. A zip is extracted into a temporary
folder, every member checked against the archive's sizes (zipfile checks each member's CRC-32), moved into place,
and a marker holding the archive's checksum and member list is written last: an extraction cut short is redone.

`--mirror` (default $LAB_DATA_MIRROR) reads the same relative paths from another place (a folder or a file:// /
http(s):// base URL, e.g. an institute's copy; `https://user:password@host/...` is sent as HTTP basic auth and the
password is never printed). $LAB_DATASETS_MANIFEST names another manifest with the columns of lib/datasets.tsv (a
mirror holding re-packed archives; the tests use it).

Sources and checksums: lib/datasets.tsv (the datasets' public repositories at pinned commits, the official SQuAD
site). Every failure (network, truncated transfer, bad mirror URL, checksum mismatch, damaged archive) is reported
naming the file while the other files are still fetched; the command exits 1 listing the failures.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import os
import shutil
import sys
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from lib.core import faults, paths
from lib.core.errors import LabError


@dataclass(frozen=True)
class File:
    dataset: str   # --only name
    path: str      # where it lands, relative to DATA_DIR (and to a --mirror)
    url: str       # the original source
    check: str     # "sha256:<hex>" or "gitblob:<hex>"
    unzip: bool = False  # a zip archive: extracted next to itself after the check
    extra: bool = False  # read by no notebook's default data path (full-data extras): only `python -m lib.data.download`


MANIFEST = Path(os.environ.get("LAB_DATASETS_MANIFEST") or Path(__file__).with_name("datasets.tsv"))
BAR_BYTES = 4 << 20  # files at least this large (by Content-Length) get a progress bar
CHUNK = 1 << 16
TIMEOUT_S = 30  # per connection attempt and per read: a dead network fails each file within this
FETCH_COMMAND = "python -m lib.data.download"


def say(msg: str) -> None:
    print(msg, flush=True)


def _manifest(path: Path = MANIFEST) -> list[File]:
    """Rows: dataset, path, source URL, checksum, 'unzip' or empty, 'extra' or empty (tab-separated)."""
    files = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line or line.startswith("#"):
            continue
        cells = (line.split("\t") + ["", ""])[:6]
        if not all(cells[:4]) or ":" not in cells[3]:
            raise LabError(f"{path}:{n}: expected dataset, path, URL, kind:checksum[, unzip[, extra]] separated by tabs")
        d, p, u, c, z, e = cells
        files.append(File(d, p, u, c, z == "unzip", e == "extra"))
    return files


FILES = _manifest()
DATASETS = sorted({f.dataset for f in FILES})


# ---- checks ----------------------------------------------------------------------------------------------------

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


def _marker(target: Path) -> Path:
    """The completion marker of an archive's extraction, written last: its checksum, then 'size<TAB>member' lines."""
    return target.with_name(f".{target.name}.extracted")


def extracted(f: File, target: Path) -> bool:
    """The archive's extraction finished: the marker names this archive's checksum and every member it lists is
    there with its size (the archive itself may have been deleted since)."""
    try:
        check, *members = _marker(target).read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError):  # no marker, or an empty / unreadable one
        return False
    if check != f.check:
        return False
    for line in members:
        size, _, name = line.partition("\t")
        p = target.parent / name
        if not (size.isdigit() and p.is_file() and p.stat().st_size == int(size)):
            return False
    return True


def _placed_by_hand(f: File, target: Path) -> bool:
    """An archive's contents put in place without the archive (e.g. a copy of an extracted release): no archive, no
    marker, and the folder named like the archive (ECB+.zip -> ECB+/) holds files."""
    folder = target.with_suffix("")
    return (not target.exists() and not _marker(target).exists() and folder.is_dir()
            and any(p.is_file() for p in folder.rglob("*")))


def missing(f: File, dest: Path) -> bool:
    """Whether a run needs `f` fetched (or re-extracted) into dest. A plain file counts as present when it exists (the
    loaders check its content; a download only ever lands checked); an archive when its extraction is complete."""
    target = dest / f.path
    if f.unzip:
        return not (extracted(f, target) or _placed_by_hand(f, target))
    return not target.is_file()


# ---- URLs and credentials ----------------------------------------------------------------------------------------

def mask(url: str) -> str:
    """The URL with the password of a `user:password@` part replaced by ***."""
    parts = urllib.parse.urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{userinfo.partition(':')[0]}:***@{hostport}"))


def _hide(text: str, url: str) -> str:
    """`text` (an error message) with the password of `url` masked wherever it appears."""
    pw = urllib.parse.urlsplit(url).password
    text = text.replace(url, mask(url))
    for secret in {pw, urllib.parse.unquote(pw or "")} - {None, ""}:
        text = text.replace(secret, "***")
    return text


def source(f: File, mirror: str = "") -> str:
    if not mirror:
        return f.url
    if "://" in mirror:
        return mirror.rstrip("/") + "/" + urllib.parse.quote(f.path)
    return Path(mirror).expanduser().resolve().joinpath(f.path).as_uri()


def _request(url: str) -> urllib.request.Request:
    """A request for `url`; credentials in the URL become an HTTP basic-auth header (urllib does not send them)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return urllib.request.Request(url)
    hostport = parts.netloc.rpartition("@")[2]
    req = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=hostport)))
    user = urllib.parse.unquote(parts.username)
    pw = urllib.parse.unquote(parts.password or "")
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode())
    return req


# ---- leftovers -----------------------------------------------------------------------------------------------

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def clean_stale(folder: Path) -> list[Path]:
    """Remove the temporary downloads (.NAME.part-PID) and extraction folders (.NAME.extract-PID) that processes no
    longer running left in `folder` (killed mid-download); returns what was removed."""
    gone = []
    for p in [*folder.glob(".*.part-*"), *folder.glob(".*.extract-*")]:
        pid = p.name.rpartition("-")[2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
            gone.append(p)
    return gone


# ---- fetching --------------------------------------------------------------------------------------------------

FAILURES = (OSError, http.client.HTTPException, ValueError, zipfile.BadZipFile)  # IncompleteRead is an HTTPException


def _download(url: str, tmp: Path, label: str) -> None:
    """Copy `url` into `tmp`; a transfer shorter than its Content-Length raises IncompleteRead."""
    with urllib.request.urlopen(_request(url), timeout=TIMEOUT_S) as r, open(tmp, "wb") as out:
        size = r.headers.get("Content-Length")
        size = int(size) if size and size.isdigit() else None
        with _bar(size, label) as bar:
            got = 0
            while chunk := r.read(CHUNK):
                out.write(chunk)
                got += len(chunk)
                bar.update(len(chunk))
        if size is not None and got < size:
            raise http.client.IncompleteRead(b"", size - got)


def _bar(size, label):
    """A tqdm progress bar for a large file on a terminal or in Jupyter; a no-op otherwise (or without tqdm)."""
    shown = size is not None and size >= BAR_BYTES and (sys.stderr.isatty() or "ipykernel" in sys.modules)
    try:
        from tqdm.auto import tqdm
    except ImportError:
        shown = False
    if not shown:
        return _NoBar()
    return tqdm(total=size, unit="B", unit_scale=True, desc=label, leave=False, file=sys.stderr)


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, n):
        pass


def fetch(f: File, dest: Path, mirror: str = "", log=print) -> str:
    """Download one file into dest/f.path, checked (an archive also extracted, verified);
    returns 'present' | 'downloaded' | 'extracted' (a good archive whose extraction was incomplete). Every failure
    raises LabError naming the file; nothing half-written is left behind."""
    target = dest / f.path
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(target.parent)
    have = verify(target, f.check)
    if have and (not f.unzip or extracted(f, target)):
        return "present"
    if not have:
        _fetch_file(f, target, source(f, mirror))
    if f.unzip:
        _extract(f, target)
    kind = f.check.partition(":")[0]
    log(f"{'downloaded' if not have else 're-extracted'} {f.path} ({target.stat().st_size:,} bytes, {kind} ok)")
    return "extracted" if have else "downloaded"


def _fetch_file(f: File, target: Path, url: str) -> None:
    tmp = target.with_name(f".{target.name}.part-{os.getpid()}")
    shown = mask(url)
    try:
        _download(url, tmp, f.path)
        kind, _, want = f.check.partition(":")
        got = digest(tmp, kind)
        if got != want:
            raise LabError(f"{f.path}: {shown} has {kind} {got}, expected {want}: a different or damaged file; "
                           f"nothing was replaced at {target}")
        tmp.replace(target)
    except FAILURES as e:
        raise LabError(f"{f.path}: could not download {shown} ({type(e).__name__}: {_hide(str(e), url)}); get it "
                       f"by hand into {target}, or pass --mirror (or set LAB_DATA_MIRROR) with a folder or URL that "
                       "holds it") from None
    finally:
        tmp.unlink(missing_ok=True)


def _extract(f: File, target: Path) -> None:
    """Extract the (checked) archive next to itself: into a temporary folder, each member's size checked, the top-level
    entries moved into place (replacing older ones), the completion marker written last."""
    tmp = target.with_name(f".{target.name}.extract-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    _marker(target).unlink(missing_ok=True)
    try:
        with zipfile.ZipFile(target) as z:
            members = [(i.file_size, i.filename) for i in z.infolist() if not i.is_dir()]
            z.extractall(tmp)  # zipfile checks every member's CRC-32 while extracting
        for size, name in members:
            if (tmp / name).stat().st_size != size:
                raise LabError(f"{f.path}: member {name} extracted with {(tmp / name).stat().st_size} bytes, "
                               f"expected {size}")
        for top in sorted(tmp.iterdir()):
            old = target.parent / top.name
            if old.is_dir():
                shutil.rmtree(old)
            else:
                old.unlink(missing_ok=True)
            faults.point("download.extract")  # the old copy gone, the new one not yet in place
            top.rename(old)
        part = _marker(target).with_name(_marker(target).name + f".part-{os.getpid()}")
        part.write_text("\n".join([f.check, *(f"{s}\t{n}" for s, n in members)]) + "\n", encoding="utf-8")
        part.replace(_marker(target))
    except FAILURES as e:
        raise LabError(f"{f.path}: could not extract into {target.parent} ({type(e).__name__}: {e}); run the "
                       "command again to redo it") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_all(files: list[File], dest: Path, mirror: str = "") -> tuple[dict, list]:
    """Fetch each file (a failure does not stop the others). Returns ({dataset: [(file, status)]}, [(file, error)])."""
    done, errors = {}, []
    for f in files:
        try:
            status = fetch(f, dest, mirror, log=lambda *_: None)
        except LabError as e:
            errors.append((f, str(e)))
            continue
        done.setdefault(f.dataset, []).append((f, status))
    return done, errors


def dataset_line(name: str, results: list, dest: Path, mirror: str) -> str:
    """One line per dataset: what was fetched, its size, its source and the checks that passed."""
    got = [f for f, s in results if s == "downloaded"]
    redone = [f.path for f, s in results if s != "present" and f.unzip]
    if not got and not redone:
        return f"{name}: {len(results)} file(s) present in {dest}"
    parts = []
    if got:
        urls = [source(f, mirror) for f in got]
        origin = mask(os.path.commonprefix(urls).rpartition("/")[0] or urls[0])
        size = sum((dest / f.path).stat().st_size for f in got)
        kinds = "/".join(sorted({f.check.partition(":")[0] for f in got}))
        parts.append(f"fetched {len(got)} file(s), {size / 1e6:.1f} MB from {origin}/, {kinds} checksums verified")
    if redone:
        parts.append(f"{', '.join(redone)} extracted and checked")
    return f"{name}: " + "; ".join(parts)


# ---- pre-flight: the data the planned notebooks read ----------------------------------------------------------

# the data folders each notebook reads (also part of its runs' cache key, lib/running/runner.py)
DATA_READ = {"01_ffnn": ["semeval2018_ec"], "02_encoders": ["semeval2018_ec"], "03_qlora_decoders": ["semeval2018_ec"],
             "04_cdec": ["ecbplus"], "05_qa": ["squad_v1.1"], "06_multitask": ["minbert", "sick"],
             "07_emotion_ensemble": ["semeval2018_ec"]}
HUB_FALLBACK = {"semeval"}  # datasets whose loader falls back to a Hugging Face hub copy when online


def needed(notebooks, files: list[File] = None) -> list[File]:
    """The manifest's files that `notebooks` read (DATA_READ: the data folders each notebook reads)."""
    folders = {d for nb in notebooks for d in DATA_READ.get(nb, [])}
    return [f for f in (FILES if files is None else files) if not f.extra and f.path.split("/")[0] in folders]


def download_allowed() -> bool:
    return os.environ.get("LAB_DOWNLOAD", "1") != "0"


def preflight(notebooks, data_dir: str = "", allow: bool = True, mirror: str = None, log=say,
              files: list[File] = None) -> bool:
    """Before runs start: make sure the files `notebooks` read are in the data folder, fetching the missing ones
    (one line per dataset) when `allow` and $LAB_DOWNLOAD is not 0. Returns whether the runs can start; when not,
    the lines logged name every missing or failed file and the command that fetches them elsewhere."""
    dest = paths.data_dir(data_dir)
    mirror = os.environ.get("LAB_DATA_MIRROR", "") if mirror is None else mirror
    need = needed(notebooks, files)
    for folder in {(dest / f.path).parent for f in need}:
        if folder.is_dir():
            clean_stale(folder)
    todo = [f for f in need if missing(f, dest)]
    if not todo:
        if need:
            log(f"data: the {len(need)} files these runs read are in {dest}")
        return True
    if not (allow and download_allowed()):
        return _stop(todo, dest, "downloads are off (--no-download or LAB_DOWNLOAD=0)", log)
    log(f"data: fetching {len(todo)} missing file(s) into {dest}")
    done, errors = fetch_all(todo, dest, mirror)
    for name, results in done.items():
        log("data: " + dataset_line(name, results, dest, mirror))
    for _, e in errors:
        log(f"data: error: {e}")
    failed = [f for f in todo if missing(f, dest)]
    return not failed or _stop(failed, dest, f"{len(errors)} file(s) could not be fetched", log)


def _stop(files: list[File], dest: Path, why: str, log) -> bool:
    """Log the missing files and the command to fetch them; True when only hub-fallback datasets miss files."""
    names = sorted({f.dataset for f in files})
    shown = ", ".join(f"{f.path} (extracted)" if f.unzip else f.path for f in files)
    only = " ".join(f"--only {n}" for n in names)
    log(f"data: missing in {dest} ({why}): {shown}")
    log(f"data: fetch them with `{FETCH_COMMAND} --dest {dest} {only}` (on a machine with internet, then copy the "
        "folder here; --mirror DIR_OR_URL reads a local copy)")
    if set(names) <= HUB_FALLBACK and os.environ.get("HF_HUB_OFFLINE") != "1":
        log("data: the runs will try the Hugging Face hub copy of " + ", ".join(names))
        return True
    return False


# ---- command line -------------------------------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lib.data.download", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", default="", help="data folder (default: $DATA_DIR or data/)")
    ap.add_argument("--only", action="append", choices=DATASETS, help="only this dataset (repeatable)")
    ap.add_argument("--mirror", default=os.environ.get("LAB_DATA_MIRROR", ""),
                    help="folder or base URL holding the same relative paths (default: $LAB_DATA_MIRROR)")
    ap.add_argument("--list", action="store_true", help="list the files, their sources and checksums")
    a = ap.parse_args(argv)
    files = [f for f in FILES if not a.only or f.dataset in a.only]
    if a.list:
        for f in files:
            print(f"{f.path}\t{f.check}\t{mask(source(f, a.mirror))}")
        return 0
    dest = paths.data_dir(a.dest)
    done, errors = fetch_all(files, dest, a.mirror)
    for name, results in done.items():
        print(dataset_line(name, results, dest, a.mirror))
    for _, e in errors:
        print(f"error: {e}", file=sys.stderr)
    if errors:
        print(f"{len(errors)} of {len(files)} files failed: {', '.join(f.path for f, _ in errors)}", file=sys.stderr)
        return 1
    print(f"all {len(files)} files in {dest} are present and checked")
    return 0


if __name__ == "__main__":
    sys.exit(main())
