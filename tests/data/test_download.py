"""lib.data.download against a local file mirror: checked downloads, skips of good files, corrupted files refused
without replacing anything, git-blob ids computed as git does; downloads that repair themselves (extraction cut
short, truncated transfers, bad mirror URLs, leftovers, credentials); the pre-flight of run_all.sh."""
import hashlib
import http.client
import os
import re
import subprocess
import sys
import urllib.request
import zipfile

import pytest
from mirror import serve

from lib.core import paths
from lib.core.errors import LabError
from lib.data import download


def _mirror(tmp_path, files: dict):
    m = tmp_path / "mirror"
    for rel, data in files.items():
        (m / rel).parent.mkdir(parents=True, exist_ok=True)
        (m / rel).write_bytes(data)
    return m


def test_gitblob_digest_is_gits_object_id(tmp_path):
    p = tmp_path / "f.txt"
    p.write_bytes(b"hello\n")
    want = subprocess.run(["git", "hash-object", str(p)], capture_output=True, text=True, check=True).stdout.strip()
    assert download.digest(p, "gitblob") == want == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert download.digest(p, "sha256") == hashlib.sha256(b"hello\n").hexdigest()


def test_fetch_checks_skips_and_refuses(tmp_path):
    data = b"ID\tTweet\n"
    f = download.File("x", "x/a.txt", "https://example.invalid/a.txt", f"sha256:{hashlib.sha256(data).hexdigest()}")
    mirror = _mirror(tmp_path, {"x/a.txt": data})
    dest = tmp_path / "data"
    assert download.fetch(f, dest, str(mirror), log=lambda *_: None) == "downloaded"
    assert (dest / "x/a.txt").read_bytes() == data
    assert download.fetch(f, dest, str(mirror)) == "present"           # checked, not fetched again
    (mirror / "x/a.txt").write_bytes(b"damaged")
    (dest / "x/a.txt").write_bytes(b"stale")                           # a wrong local copy is re-fetched ...
    with pytest.raises(LabError, match=r"x/a.txt: .* has sha256 [0-9a-f]{64}, expected .*nothing was replaced"):
        download.fetch(f, dest, str(mirror))
    assert (dest / "x/a.txt").read_bytes() == b"stale"                 # ... but a damaged download replaces nothing
    assert not list((dest / "x").glob(".*part*"))
    with pytest.raises(LabError, match=r"could not download .*--mirror"):
        download.fetch(f, dest, str(tmp_path / "nowhere"))


def test_zip_is_checked_then_extracted(tmp_path):
    buf = tmp_path / "ECB+.zip"
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("ECB+/1/1_1ecb.xml", "<Document/>")
    data = buf.read_bytes()
    f = download.File("ecbplus", "ecbplus/ECB+.zip", "https://example.invalid/ECB+.zip",
                      f"sha256:{hashlib.sha256(data).hexdigest()}", unzip=True)
    dest = tmp_path / "data"
    download.fetch(f, dest, str(_mirror(tmp_path, {"ecbplus/ECB+.zip": data})), log=lambda *_: None)
    assert (dest / "ecbplus/ECB+/1/1_1ecb.xml").read_text() == "<Document/>"


def test_real_checksums_match_the_shared_copies(data_dir, tmp_path):
    """The pinned checksums are those of the real files: download every file we hold from a mirror of DATA_DIR."""
    present = [f for f in download.FILES if (data_dir / f.path).exists()]
    assert len(present) >= 15  # all but quora-train, quora-test-student, ECB+.zip and SQuAD train
    for f in present:
        assert download.fetch(f, tmp_path, str(data_dir), log=lambda *_: None) == "downloaded", f.path
    assert download.main(["--dest", str(tmp_path), "--only", "sick", "--mirror", str(data_dir)]) == 0


# ---- downloads that repair themselves (issue 29 item 6): each of these fails on the code before them ----------------

def _file(tmp_path, rel: str, data: bytes, unzip=False, dataset="x"):
    return download.File(dataset, rel, f"https://example.invalid/{rel}",
                         f"sha256:{hashlib.sha256(data).hexdigest()}", unzip=unzip)


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def _zip_bytes(tmp_path, members: dict) -> bytes:
    buf = tmp_path / "build.zip"
    with zipfile.ZipFile(buf, "w") as z:
        for name, text in members.items():
            z.writestr(name, text)
    return buf.read_bytes()


def test_extraction_cut_short_is_redone(tmp_path):
    """Killed during extraction: the zip is whole (its checksum passes) but ECB+/ holds only part of its files and
    there is no completion marker. The next fetch extracts again instead of calling the data present."""
    members = {f"ECB+/{t}/{t}_{n}ecb.xml": f"<Document topic='{t}' n='{n}'/>" for t in (1, 2) for n in (1, 2)}
    data = _zip_bytes(tmp_path, members)
    f = _file(tmp_path, "ecbplus/ECB+.zip", data, unzip=True, dataset="ecbplus")
    dest = tmp_path / "data"
    (dest / "ecbplus/ECB+/1").mkdir(parents=True)
    (dest / "ecbplus/ECB+.zip").write_bytes(data)
    (dest / "ecbplus/ECB+/1/1_1ecb.xml").write_text("<Docu")                          # half-written member
    (dest / f"ecbplus/.ECB+.zip.extract-{_dead_pid()}/ECB+/2").mkdir(parents=True)   # a dead process's folder
    download.fetch(f, dest, str(tmp_path / "no-mirror-needed"), log=lambda *_: None)
    for name, text in members.items():
        assert (dest / "ecbplus" / name).read_text() == text
    assert not list((dest / "ecbplus").glob(".*extract-*"))
    assert download.extracted(f, dest / "ecbplus/ECB+.zip") and not download.missing(f, dest)
    assert download.fetch(f, dest, "", log=lambda *_: None) == "present"
    (dest / "ecbplus/ECB+/2/2_2ecb.xml").unlink()                                    # a member lost later
    assert download.missing(f, dest)


def test_extracted_release_without_its_zip_counts_as_present(tmp_path):
    """A copy of the extracted release (the shared datasets: ECB+/ but no ECB+.zip) needs no download."""
    f = _file(tmp_path, "ecbplus/ECB+.zip", b"zip", unzip=True, dataset="ecbplus")
    (tmp_path / "ecbplus/ECB+/1").mkdir(parents=True)
    assert download.missing(f, tmp_path)
    (tmp_path / "ecbplus/ECB+/1/1_1ecb.xml").write_text("<Document/>")
    assert not download.missing(f, tmp_path)


def _two_files(tmp_path):
    a, b = b"first file\n", b"second file\n"
    mirror = _mirror(tmp_path, {"x/a.txt": a, "y/b.txt": b})
    return [_file(tmp_path, "x/a.txt", a), _file(tmp_path, "y/b.txt", b, dataset="y")], mirror


def test_incomplete_read_is_a_clear_error_and_the_other_files_are_still_fetched(tmp_path, monkeypatch, capsys):
    files, mirror = _two_files(tmp_path)
    monkeypatch.setattr(download, "FILES", files)
    real = urllib.request.urlopen

    def urlopen(req, *a, **k):
        if str(getattr(req, "full_url", req)).endswith("x/a.txt"):
            raise http.client.IncompleteRead(b"first", 6)
        return real(req, *a, **k)
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    dest = tmp_path / "data"
    assert download.main(["--dest", str(dest), "--mirror", str(mirror)]) == 1
    err = capsys.readouterr().err
    assert re.search(r"error: x/a.txt: could not download .*IncompleteRead", err) and "Traceback" not in err
    assert "1 of 2 files failed: x/a.txt" in err
    assert (dest / "y/b.txt").read_bytes() == b"second file\n" and not (dest / "x/a.txt").exists()
    assert not list(dest.rglob(".*part-*"))


def test_a_transfer_cut_short_is_refused_naming_the_file(tmp_path):
    """A server that announces the whole length and sends half: IncompleteRead, nothing replaced, no leftovers."""
    files, mirror = _two_files(tmp_path)
    dest = tmp_path / "data"
    with serve(mirror, truncate=True) as (url, _):
        with pytest.raises(LabError, match=r"x/a.txt: could not download http://127.0.0.1:\d+/x/a.txt "
                                           r"\(IncompleteRead: IncompleteRead\(0 bytes read, 6 more expected\)\)"):
            download.fetch(files[0], dest, url)
    assert not (dest / "x/a.txt").exists() and not list(dest.rglob(".*part-*"))


def test_a_bad_mirror_url_is_an_error_per_file_not_a_traceback(tmp_path, monkeypatch, capsys):
    files, _ = _two_files(tmp_path)
    monkeypatch.setattr(download, "FILES", files)
    assert download.main(["--dest", str(tmp_path / "data"), "--mirror", "http://127.0.0.1:notaport/m"]) == 1
    err = capsys.readouterr().err
    for f in files:
        assert re.search(rf"error: {f.path}: could not download http://127.0.0.1:notaport/m/{f.path} \(InvalidURL", err)
    assert "2 of 2 files failed" in err


def test_leftovers_of_dead_processes_are_removed_and_failures_leave_none(tmp_path):
    files, mirror = _two_files(tmp_path)
    dest = tmp_path / "data"
    (dest / "x").mkdir(parents=True)
    stale = dest / f"x/.a.txt.part-{_dead_pid()}"
    stale.write_bytes(b"half")
    mine = dest / f"x/.a.txt.part-{os.getpid()}-busy"  # not a pid suffix: never touched
    mine.write_bytes(b"?")
    live = dest / f"x/.other.txt.part-{os.getppid()}"  # a running process's download: kept
    live.write_bytes(b"in progress")
    assert download.fetch(files[0], dest, str(mirror), log=lambda *_: None) == "downloaded"
    assert not stale.exists() and mine.exists() and live.exists()
    (mirror / "y/b.txt").write_bytes(b"damaged")
    with pytest.raises(LabError, match="nothing was replaced"):
        download.fetch(files[1], dest, str(mirror))
    assert not list((dest / "y").glob(".*part-*"))


def test_mirror_credentials_are_sent_and_never_printed(tmp_path, monkeypatch, capsys):
    files, mirror = _two_files(tmp_path)
    monkeypatch.setattr(download, "FILES", files)
    dest = tmp_path / "data"
    with serve(mirror, auth="reader:s3cr%t") as (url, _):
        good = url.replace("http://", "http://reader:s3cr%25t@")
        assert download.main(["--dest", str(dest), "--mirror", good]) == 0
        assert download.main(["--list", "--mirror", good]) == 0
        bad = url.replace("http://", "http://reader:wr0ng@")
        (dest / "y/b.txt").unlink()
        assert download.main(["--dest", str(dest), "--mirror", bad]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert (dest / "x/a.txt").read_bytes() == b"first file\n"
    assert "s3cr" not in text and "wr0ng" not in text
    assert "http://reader:***@127.0.0.1" in text and "HTTP Error 401" in text


# ---- pre-flight: the data the planned runs read ---------------------------------------------------------------------

def test_every_folder_a_notebook_reads_has_manifest_files():
    from lib.data.download import DATA_READ
    for nb, folders in DATA_READ.items():
        have = {f.path.split("/")[0] for f in download.needed([nb])}
        assert have == set(folders), nb
    assert not [f for f in download.needed(DATA_READ) if f.extra]
    assert download.needed(["99_unknown"]) == []


def test_preflight_without_downloads_names_the_files_and_the_command(tmp_path, monkeypatch):
    monkeypatch.delenv("LAB_DOWNLOAD", raising=False)
    lines = []
    assert not download.preflight(["06_multitask"], str(tmp_path), allow=False, log=lines.append)
    text = "\n".join(lines)
    assert "downloads are off" in text and "sick/SICK.txt" in text and "minbert/quora-dev.csv" in text
    assert "quora-train.csv" not in text  # an extra: no notebook reads it
    assert f"python -m lib.data.download --dest {tmp_path} --only minbert --only sick" in text
    monkeypatch.setenv("LAB_DOWNLOAD", "0")
    assert not download.preflight(["04_cdec"], str(tmp_path), allow=True, log=lines.append)
    assert "ecbplus/ECB+.zip (extracted)" in lines[-2]


def test_preflight_fetches_only_what_the_runs_read_then_finds_it(data_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("LAB_DOWNLOAD", raising=False)
    lines = []
    dest = tmp_path / "data"
    assert download.preflight(["06_multitask"], str(dest), mirror=str(data_dir), log=lines.append)
    assert re.search(r"^data: sick: fetched 1 file\(s\), 2\.\d MB from .*/sick/, sha256 checksums verified$",
                     "\n".join(lines), re.M)
    assert sorted(p.name for p in (dest / "minbert").iterdir()) == sorted(
        f.path.split("/")[1] for f in download.needed(["06_multitask"]) if f.dataset == "minbert")
    assert not (dest / "semeval2018_ec").exists()
    lines.clear()
    assert download.preflight(["06_multitask"], str(dest), mirror="http://127.0.0.1:1/unused", log=lines.append)
    assert lines == [f"data: the 11 files these runs read are in {dest}"]


def test_run_all_stops_before_the_first_run_when_downloads_are_off(tmp_path):
    env = {**os.environ, "LAB_OUTPUTS": str(tmp_path / "out"), "LAB_PYTHON": sys.executable, "DATA_DIR": str(tmp_path)}
    proc = subprocess.run(["bash", str(paths.ROOT / "run_all.sh"), "--profile", "smoke", "--only", "06_multitask",
                           "--no-download"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "missing in" in proc.stdout and "sick/SICK.txt" in proc.stdout and "python -m lib.data.download" in proc.stdout
    assert not (tmp_path / "out").exists()
