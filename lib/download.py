"""Fetch every dataset the lab uses (the gpu profile's full data included) into DATA_DIR and check each file.

    python -m lib.download [--dest DIR] [--only ecbplus|minbert|sick|squad|semeval ...] [--mirror URL_OR_DIR] [--list]

Each file is downloaded to a temporary name, checked, and only then moved into place: a failed or corrupted download
never replaces a good file, and files already present with the right checksum are skipped. Checksums: SHA-256 where
one is published or was measured on the original bytes; for the two minBERT Quora files only their git blob id is
known (SHA-1 of git's blob object), which is checked instead. `--mirror` reads the same relative paths from another
place (a folder or a file:// / http(s):// base URL), e.g. an institute's copy.

Sources (see data/README.md): the datasets' public repositories at pinned commits, the official SQuAD site.
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

from lib import paths
from lib.errors import LabError

_MINBERT = "https://raw.githubusercontent.com/gpoesia/minbert-default-final-project/7ac8260577fc12a86c7aaf38918056c30054ef39/data/"
_SEMEVAL = "https://raw.githubusercontent.com/TheArhaam/Python-Detection-and-Analysis-of-Negative-Emotions-using-ML/8f1120296b165ee8b9f44d8256b5ed9d2ff6c69c/"
_SEMEVAL_TEST = "https://raw.githubusercontent.com/mithunpaul08/twitter_psentiment_multi_label/76515852e78e7e69711fbad96e705f98f0117e01/"
_SICK = "https://raw.githubusercontent.com/kkalouli/SICK-processing/0848f4aec60870122a4ca18de08ba0e25f6f9a75/"
_ECB = "https://raw.githubusercontent.com/cltl/ecbPlus/3aa071e12fd08fc0705b16bb1841e7a9c5c22420/ECB+_LREC2014/"
_SQUAD = "https://rajpurkar.github.io/SQuAD-explorer/dataset/"


@dataclass(frozen=True)
class File:
    dataset: str   # --only name
    path: str      # where it lands, relative to DATA_DIR (and to a --mirror)
    url: str       # the original source
    check: str     # "sha256:<hex>" or "gitblob:<hex>"
    unzip: bool = False  # a zip archive: extracted next to itself after the check


FILES = [
    File("semeval", "semeval2018_ec/2018-E-c-En-train.txt", _SEMEVAL + "2018-E-c-En-train.txt",
         "sha256:498893ef1ecc5698d44ba9fd815d3ee88278f24fc549b202ddf36a4452f96675"),
    File("semeval", "semeval2018_ec/2018-E-c-En-dev.txt", _SEMEVAL + "2018-E-c-En-dev.txt",
         "sha256:1124cf56bd255fadea9e734a13133a9bd2202022f6d8a0ea560f076d8562517f"),
    File("semeval", "semeval2018_ec/2018-E-c-En-test.txt", _SEMEVAL_TEST + "2018-E-c-En-test.txt",
         "sha256:e532447d23102750c19f997de661e8d724354373c0151497fbd50864076cc212"),
    *[File("minbert", f"minbert/{name}", _MINBERT + name, f"sha256:{h}") for name, h in [
        ("ids-sst-train.csv", "03b2b625c090f94a6afd59f114cde5282e2053aab0b101e87ed695d8a0c5b1df"),
        ("ids-sst-dev.csv", "a186ce94577635fbe10beaaddd50f16cccf6c30973221cefdf90deed2a584bfe"),
        ("ids-sst-test-student.csv", "bdd5a767faa0c26782117e37767ece154c30d5d04fb8727d09c71e3850a55c7b"),
        ("ids-cfimdb-train.csv", "140fc513045a966109faed46a5c7a898767b96714d71bcb9c15f659129fadcea"),
        ("ids-cfimdb-dev.csv", "3087f571b66860fe5d035b5a018d08202ad3fd3720e4821c04b2acf6c7ded559"),
        ("ids-cfimdb-test-student.csv", "7ae611548c9eac879e9ebb406cc9f8ae68ff12f78090e4965af5cbdfa06240f4"),
        ("quora-dev.csv", "bfa3cc954a9ba300ae776a980141de65f622a3c1b97e3fd905d63245bc36d5ad"),
        ("sts-train.csv", "15d12efc2d656fffb1d61ac1f08ec4227f43925fd16f420c037cbd063699c21b"),
        ("sts-dev.csv", "ce3cad6f16062586ac7ba462c28b010a9be10c530fd5074165860d7b7ab4e93d"),
        ("sts-test-student.csv", "dee455745b72e9ca3ff74e7c056bd73e34bad5b8d5641045a2c1e7e131866f47")]],
    File("minbert", "minbert/quora-train.csv", _MINBERT + "quora-train.csv",
         "gitblob:a3b5546f6a0e65b60a328a5d294d1038f5bed1da"),
    File("minbert", "minbert/quora-test-student.csv", _MINBERT + "quora-test-student.csv",
         "gitblob:f257ef00558555afb50819578a58205732b16354"),
    File("sick", "sick/SICK.txt", _SICK + "SICK.txt",
         "sha256:1539c2d059809b5bd40694e26d8121cc85b6b496f91c7b40f2fc83bbd7dcd957"),
    File("ecbplus", "ecbplus/ECBplus_coreference_sentences.csv", _ECB + "ECBplus_coreference_sentences.csv",
         "sha256:afee49e0f5fe5084eec690e934aaade842d5eeff7a5704a36f59e7a49505f434"),
    File("ecbplus", "ecbplus/ECB+.zip", _ECB + "ECB+.zip", "gitblob:ae1578e6feb9ab465f74905794666c3368f3e813",
         unzip=True),
    File("squad", "squad_v1.1/dev-v1.1.json", _SQUAD + "dev-v1.1.json",
         "sha256:95aa6a52d5d6a735563366753ca50492a658031da74f301ac5238b03966972c9"),
    File("squad", "squad_v1.1/train-v1.1.json", _SQUAD + "train-v1.1.json",
         "sha256:3527663986b8295af4f7fcdff1ba1ff3f72d07d61a20f487cb238a6ef92fd955"),
]
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
    ap = argparse.ArgumentParser(prog="python -m lib.download", description=__doc__.split("\n\n")[0])
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
