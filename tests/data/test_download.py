"""lib.data.download against a local file mirror: checked downloads, skips of good files, corrupted files refused
without replacing anything, git-blob ids computed as git does."""
import hashlib
import subprocess
import zipfile

import pytest

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
