"""First contact anywhere: ./run_all.sh from an empty DATA_DIR fetches what its runs read from a mirror served on
127.0.0.1 (tests/mirror.py: files copied from the real datasets into a temporary folder), checks every file, and
runs. No internet is used. The smoke test (test_smoke_run_all.py) runs the whole smoke profile this way."""
import os
import re
import subprocess
import sys

import pytest
from mirror import build, serve

from lib.core import paths
from lib.data import download


@pytest.fixture(scope="module")
def mirror(data_dir, tmp_path_factory):
    return build(data_dir, tmp_path_factory.mktemp("mirror"))


def _run_all(args, data, out, url, manifest, timeout=300):
    env = {**os.environ, "DATA_DIR": str(data), "LAB_OUTPUTS": str(out), "LAB_PYTHON": sys.executable,
           "LAB_DATA_MIRROR": url, "LAB_DATASETS_MANIFEST": str(manifest), "HF_HUB_OFFLINE": "1"}
    env.pop("LAB_DOWNLOAD", None)
    return subprocess.run(["bash", str(paths.ROOT / "run_all.sh"), "--profile", "smoke", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_a_corrupted_mirror_file_stops_with_the_checksum_error(mirror, tmp_path):
    """SICK.txt damaged on the mirror: run_all names it with both checksums, fetches and checks the minBERT files, leaves
    no SICK.txt and no temporary file, runs nothing, exits 1. The mirror's password is never printed."""
    folder, manifest = mirror
    good = (folder / "sick/SICK.txt").read_bytes()
    bad = tmp_path / "bad-mirror"
    subprocess.run(["cp", "-r", str(folder), str(bad)], check=True)
    (bad / "sick/SICK.txt").write_bytes(good[:-100] + b"x" * 100)
    data, out = tmp_path / "data", tmp_path / "out"
    with serve(bad, auth="lab:pa55word") as (url, requests):
        proc = _run_all(["--only", "06_multitask"], data, out, url.replace("//", "//lab:pa55word@"), manifest)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert re.search(r"data: error: sick/SICK.txt: http://lab:\*\*\*@127.0.0.1:\d+/sick/SICK.txt has sha256 "
                     r"[0-9a-f]{64}, expected [0-9a-f]{64}: a different or damaged file", text)
    assert "pa55word" not in text and "Traceback" not in text
    assert re.search(r"data: minbert: fetched 10 file\(s\), 8\.\d MB from http://lab:\*\*\*@127.0.0.1:\d+/minbert/, "
                     r"sha256 checksums verified", text)
    assert "fetch them with `python -m lib.data.download" in text and "--only sick`" in text
    assert not (data / "sick/SICK.txt").exists() and not list(data.rglob(".*part-*"))
    for f in download.needed(["06_multitask"]):
        if f.dataset == "minbert":
            assert download.verify(data / f.path, f.check), f.path
    assert sorted(set(requests)) == sorted({f"/{f.path}" for f in download.needed(["06_multitask"])})
    assert not out.exists()  # stopped before the first run


def test_fetch_only_gets_every_dataset_and_repairs_an_extraction_cut_short(mirror, tmp_path):
    """`./run_all.sh --fetch-only` from an empty DATA_DIR fetches what the profile's runs read (every dataset), runs
    nothing; killed during extraction (ECB+/ half there, no marker), the next call extracts again without a download."""
    folder, manifest = mirror
    data, out = tmp_path / "data", tmp_path / "out"
    with serve(folder) as (url, requests):
        proc = _run_all(["--fetch-only"], data, out, url, manifest)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        for name, n in [("semeval", 3), ("ecbplus", 2), ("squad", 1), ("minbert", 10), ("sick", 1)]:
            assert re.search(rf"^data: {name}: fetched {n} file\(s\), [\d.]+ MB from http://127.0.0.1:\d+/\S*, "
                             r"(gitblob/)?sha256 checksums verified", proc.stdout, re.M), (name, proc.stdout)
        assert "ecbplus/ECB+.zip extracted and checked" in proc.stdout and not out.exists()
        assert len(list((data / "ecbplus/ECB+").glob("*/*.xml"))) == 982
        fetched = len(requests)
        marker = data / "ecbplus/.ECB+.zip.extracted"
        marker.unlink()
        for p in sorted((data / "ecbplus/ECB+").glob("4*/*.xml")):
            p.unlink()
        again = _run_all(["--only", "04_cdec", "--fetch-only"], data, out, url, manifest)
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(requests) == fetched  # nothing downloaded: the zip was whole, only its extraction redone
    assert re.search(r"^data: ecbplus: ecbplus/ECB\+\.zip extracted and checked$", again.stdout, re.M), again.stdout
    assert marker.is_file() and len(list((data / "ecbplus/ECB+").glob("*/*.xml"))) == 982
    assert not list(data.rglob(".*part-*")) and not list(data.rglob(".*extract-*"))
