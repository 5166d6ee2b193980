"""First contact anywhere: ./run_all.sh from an empty DATA_DIR fetches what its runs read from a mirror served on
127.0.0.1 (tests/mirror.py: files copied from the real datasets into a temporary folder), checks every file, and
runs. No internet is used. The full run is marked `fetch` (select with -m fetch; it runs smoke notebooks)."""
import os
import re
import subprocess
import sys

import pytest
from mirror import build, serve

from lib.core import paths
from lib.data import download

# one smoke run per dataset: SemEval (01), ECB+ (04), SQuAD (05), minBERT + SICK (06)
SUBSET = ["01_ffnn/naive", "04_cdec", "05_qa", "06_multitask"]


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


@pytest.mark.fetch
def test_run_all_from_an_empty_data_dir_fetches_and_runs(mirror, tmp_path):
    folder, manifest = mirror
    data, out = tmp_path / "data", tmp_path / "out"
    args = [a for o in SUBSET for a in ("--only", o)]
    with serve(folder) as (url, _):
        proc = _run_all(args, data, out, url, manifest, timeout=2400)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-6000:]
    for name, n in [("semeval", 3), ("ecbplus", 2), ("squad", 1), ("minbert", 10), ("sick", 1)]:
        assert re.search(rf"^data: {name}: fetched {n} file\(s\), [\d.]+ MB from http://127.0.0.1:\d+/\S*, "
                         r"(gitblob/)?sha256 checksums verified", proc.stdout, re.M), (name, proc.stdout)
    assert "ecbplus/ECB+.zip extracted and checked" in proc.stdout
    runs = re.findall(r"^\[\d+/\d+\] (\S+) .* \.\.\. ok \(", proc.stdout, re.M)
    assert {r.split("/")[0] for r in runs} == {"01_ffnn", "04_cdec", "05_qa", "06_multitask"}, proc.stdout
    assert len(list((data / "ecbplus/ECB+").glob("*/*.xml"))) == 982

    # killed during extraction: ECB+/ half there and no marker; the re-run extracts again and 04 stays cached
    marker = data / "ecbplus/.ECB+.zip.extracted"
    marker.unlink()
    for p in sorted((data / "ecbplus/ECB+").glob("4*/*.xml")):
        p.unlink()
    with serve(folder) as (url, requests):
        again = _run_all(["--only", "04_cdec"], data, out, url, manifest, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert requests == [] and "ecbplus/ECB+.zip extracted and checked" in again.stdout  # no download: re-extracted
    assert marker.is_file() and len(list((data / "ecbplus/ECB+").glob("*/*.xml"))) == 982
    assert re.search(r"04_cdec/\S+ .* \.\.\. cached", again.stdout), again.stdout
