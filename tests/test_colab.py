"""Colab/Kaggle set-up cell: the URL in one place (lib/colab.py), in sync everywhere; executed with a fake
google.colab module and a fake Kaggle environment in a temporary folder."""
import json
import os
import stat
import sys
import types

import pytest

from lib import colab, paths


def test_notebooks_and_readme_in_sync_with_repo_url():
    assert colab.sync(write=False) == []
    for p in sorted(paths.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        first_code = next(c for c in json.loads(p.read_text())["cells"] if c["cell_type"] == "code")
        src = "".join(first_code["source"])
        assert src == colab.cell_source() and "YOUR-ORG" not in src


def test_badges_generated_from_url():
    b = colab.badges("https://github.com/someone/nlp-lab")
    n = len(list(paths.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")))
    assert n >= 7  # every notebook gets its badges
    assert b.count("colab.research.google.com/github/someone/nlp-lab/blob/main/notebooks/") == n
    assert b.count("kaggle.com/kernels/welcome?src=https://github.com/someone/nlp-lab/blob/main/notebooks/") == n
    assert "badges appear here" in colab.badges("")


def _run_cell(src: str, cwd):
    old = os.getcwd()
    try:
        os.chdir(cwd)
        exec(compile(src, "setup-cell", "exec"), {})
    finally:
        os.chdir(old)


@pytest.fixture
def fake_colab(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setenv("LAB_HOME", str(tmp_path / "nlp-lab"))
    monkeypatch.delenv("LAB_REPO_URL", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    return tmp_path


def test_unset_url_stops_with_one_instruction(fake_colab):
    with pytest.raises(SystemExit) as e:
        _run_cell(colab.cell_source(""), fake_colab)
    assert "lab_repo_url" in str(e.value) and "not set" in str(e.value)
    assert not (fake_colab / "nlp-lab").exists()


def _fake_bin(tmp_path, monkeypatch):
    """`git` that 'clones' a tiny lab; `python -m pip` is recorded instead of installing."""
    b = tmp_path / "bin"
    b.mkdir()
    git = b / "git"
    git.write_text("#!/bin/sh\nfor last; do :; done\nmkdir -p \"$last/notebooks\"\n"
                   "printf 'torch>=2.4\\npandas\\n' > \"$last/requirements.txt\"\n"
                   "echo '' > \"$last/requirements-nodeps.txt\"\necho \"$@\" > \"$last/git-args\"\n")
    git.chmod(git.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{b}:{os.environ['PATH']}")
    calls = []
    import subprocess
    real = subprocess.run

    def run(cmd, **kw):
        if cmd[:3] == [sys.executable, "-m", "pip"]:
            calls.append(cmd)
            return subprocess.CompletedProcess(cmd, 0)
        return real(cmd, **kw)
    monkeypatch.setattr(subprocess, "run", run)
    return calls


def test_colab_clones_and_keeps_platform_torch(fake_colab, monkeypatch):
    calls = _fake_bin(fake_colab, monkeypatch)
    _run_cell(colab.cell_source("https://github.com/someone/nlp-lab"), fake_colab)
    home = fake_colab / "nlp-lab"
    assert "https://github.com/someone/nlp-lab" in (home / "git-args").read_text()
    import torch
    pin = home / ".torch-constraint.txt"
    assert pin.read_text().strip() == f"torch=={torch.__version__}"
    assert len(calls) == 2 and all(["-c", str(pin)] == c[5:7] for c in calls)
    assert os.getcwd() != str(home / "notebooks")  # _run_cell restored it; the cell itself chdir'ed (no error)


def test_kaggle_finds_input_datasets(monkeypatch, tmp_path):
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    home = tmp_path / "working" / "nlp-lab"
    (home / "notebooks").mkdir(parents=True)  # already cloned
    data = tmp_path / "input" / "nlp-lab-data"
    (data / "semeval2018_ec").mkdir(parents=True)
    monkeypatch.setenv("LAB_HOME", str(home))
    monkeypatch.setenv("LAB_KAGGLE_INPUT", str(tmp_path / "input"))
    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    _run_cell(colab.cell_source("https://github.com/someone/nlp-lab"), tmp_path)
    assert os.environ["DATA_DIR"] == str(data)


def test_setup_cell_leaves_no_parameter_like_globals():
    """lib.setup rejects unknown ALL_CAPS globals: the set-up cell must not define any."""
    ns = {}
    exec(compile(colab.cell_source(), "setup-cell", "exec"), ns)
    assert [k for k in ns if k.isupper() and not k.startswith("_")] == []
