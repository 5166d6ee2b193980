"""Colab/Kaggle set-up cell: the URL in one place (lib/running/colab.py), in sync everywhere; executed with a fake
google.colab module and a fake Kaggle environment in a temporary folder; lib.running.colab.bootstrap (install, chdir, Kaggle
data discovery) with pip recorded instead of run; `import lib.running.colab` needs the standard library only."""
import json
import os
import stat
import subprocess
import sys
import types

import pytest

from lib.core import paths
from lib.running import colab


def test_notebooks_and_readme_in_sync_with_repo_url():
    assert colab.sync(write=False) == []
    for p in sorted(paths.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        first_code = next(c for c in json.loads(p.read_text())["cells"] if c["cell_type"] == "code")
        src = "".join(first_code["source"])
        assert src == colab.cell_source(notebook=p.stem) and "YOUR-ORG" not in src


def test_an_edited_setup_cell_is_out_of_sync(tmp_path, monkeypatch):
    """--check must fail when one notebook's set-up cell differs from the generated one."""
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    for p in sorted(paths.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        (nb_dir / p.name).write_text(p.read_text())
    readme = tmp_path / "README.md"
    readme.write_text((paths.ROOT / "README.md").read_text())
    monkeypatch.setattr(paths, "NOTEBOOKS", nb_dir)
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    assert colab.sync(write=False) == []
    target = nb_dir / "04_cdec.ipynb"
    nb = json.loads(target.read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code")
    cell["source"] = "".join(cell["source"]).replace("sys.path.insert(0", "sys.path.append(0")
    target.write_text(json.dumps(nb))
    assert colab.sync(write=False) == ["notebooks/04_cdec.ipynb"]
    assert colab.sync() == ["notebooks/04_cdec.ipynb"] and colab.sync(write=False) == []  # --sync repairs it


def test_badges_generated_from_url():
    b = colab.badges("https://github.com/someone/nlp-lab")
    n = len(list(paths.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")))
    assert n >= 7  # every notebook gets its badges
    assert b.count("colab.research.google.com/github/someone/nlp-lab/blob/main/notebooks/") == n
    assert b.count("kaggle.com/kernels/welcome?src=https://github.com/someone/nlp-lab/blob/main/notebooks/") == n
    assert "badges appear here" in colab.badges("")


def test_setup_cell_is_short():
    logic = [l for l in colab.cell_source().splitlines() if l.strip() and not l.strip().startswith("#")]
    assert len(logic) <= 12, "the set-up cell only fetches the lab; lib.running.colab.bootstrap does the rest"


def test_import_needs_only_the_standard_library():
    """The set-up cell imports lib.running.colab before requirements.txt is installed: lib.running.colab and what it pulls in
    (lib/__init__.py, params, paths, errors) must import, and cell_source/find_data_dir run, with any third-party
    import refused."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        top = name.partition('.')[0]\n"
        "        if top not in sys.stdlib_module_names and top != 'lib':\n"
        "            raise ImportError(f'third-party import refused: {name}')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import lib.running.colab\n"
        "lib.running.colab.cell_source(); lib.running.colab.find_data_dir('.'); lib.running.colab.requirements_hash('.')\n"
        "print('ok')\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=paths.ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def _run_cell(src: str, cwd):
    old = os.getcwd()
    try:
        os.chdir(cwd)
        exec(compile(src, "setup-cell", "exec"), {})
    finally:
        os.chdir(old)


@pytest.fixture
def pip_calls(monkeypatch):
    """`python -m pip` through subprocess.run is recorded instead of run; everything else runs."""
    calls, real = [], subprocess.run

    def run(cmd, **kw):
        if cmd[:3] == [sys.executable, "-m", "pip"]:
            calls.append(cmd)
            return subprocess.CompletedProcess(cmd, 0)
        return real(cmd, **kw)
    monkeypatch.setattr(subprocess, "run", run)
    return calls


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


def _fake_git(tmp_path, monkeypatch):
    """`git` that 'clones' a tiny lab (notebooks/, requirements files, the arguments it got)."""
    b = tmp_path / "bin"
    b.mkdir()
    git = b / "git"
    git.write_text("#!/bin/sh\nfor last; do :; done\nmkdir -p \"$last/notebooks\"\n"
                   "printf 'torch>=2.4\\npandas\\n' > \"$last/requirements.txt\"\n"
                   "echo '' > \"$last/requirements-nodeps.txt\"\necho \"$@\" > \"$last/git-args\"\n")
    git.chmod(git.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{b}:{os.environ['PATH']}")


def test_colab_clones_and_keeps_platform_torch(fake_colab, monkeypatch, pip_calls):
    _fake_git(fake_colab, monkeypatch)
    _run_cell(colab.cell_source("https://github.com/someone/nlp-lab"), fake_colab)
    home = fake_colab / "nlp-lab"
    assert "https://github.com/someone/nlp-lab" in (home / "git-args").read_text()
    assert str(home) in sys.path
    import torch
    pin = home / ".torch-constraint.txt"
    assert pin.read_text().strip() == f"torch=={torch.__version__}"
    assert len(pip_calls) == 2 and all(["-c", str(pin)] == c[5:7] for c in pip_calls)
    assert pip_calls[0][-2:] == ["-r", str(home / "requirements.txt")]
    assert pip_calls[1][-3:] == ["--no-deps", "-r", str(home / "requirements-nodeps.txt")]
    _run_cell(colab.cell_source("https://github.com/someone/nlp-lab"), fake_colab)
    assert len(pip_calls) == 2  # run again: already cloned and installed, nothing re-installed


def test_bootstrap_installs_once_per_requirements(tmp_path):
    home = tmp_path / "nlp-lab"
    (home / "notebooks").mkdir(parents=True)
    (home / "requirements.txt").write_text("pandas\n")
    (home / "requirements-nodeps.txt").write_text("\n")
    calls = []
    run = lambda cmd, **kw: calls.append(cmd)  # noqa: E731
    old = os.getcwd()
    try:
        colab.bootstrap("colab", str(home), run=run)
        assert os.getcwd() == str(home / "notebooks") and len(calls) == 2
        colab.bootstrap("colab", str(home), run=run)
        assert len(calls) == 2  # unchanged requirements: pip does not run again
        (home / "requirements.txt").write_text("pandas\nnumpy\n")
        colab.bootstrap("colab", str(home), run=run)
        assert len(calls) == 4  # changed requirements: installed again
        os.chdir(old)
        colab.bootstrap("", str(home), run=run)  # a local kernel: nothing happens
        assert os.getcwd() == old and len(calls) == 4
    finally:
        os.chdir(old)


def test_find_data_dir_on_a_folder_tree(tmp_path):
    (tmp_path / "input" / "other" / "stuff").mkdir(parents=True)
    (tmp_path / "input" / "nlp-lab-data" / "v2" / "ecbplus").mkdir(parents=True)
    assert colab.find_data_dir(str(tmp_path / "input")) == str(tmp_path / "input" / "nlp-lab-data" / "v2")
    assert colab.find_data_dir(str(tmp_path / "input" / "other")) is None
    assert colab.find_data_dir(str(tmp_path / "missing")) is None


def test_kaggle_finds_input_datasets(monkeypatch, tmp_path, pip_calls):
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
    assert len(pip_calls) == 2  # a clone never installed before is installed


def test_kaggle_without_data_says_so(monkeypatch, tmp_path, capsys):
    home = tmp_path / "nlp-lab"
    (home / "notebooks").mkdir(parents=True)
    (home / colab.STAMP).write_text(colab.requirements_hash(str(home)) + "\n")  # installed already
    monkeypatch.setenv("LAB_KAGGLE_INPUT", str(tmp_path / "input"))
    monkeypatch.delenv("DATA_DIR", raising=False)
    old = os.getcwd()
    try:
        colab.bootstrap("kaggle", str(home), run=lambda *a, **k: pytest.fail("pip must not run"))
    finally:
        os.chdir(old)
    assert "DATA_DIR" not in os.environ and "attach the data or set DATA_DIR" in capsys.readouterr().out


def test_setup_cell_leaves_no_parameter_like_globals():
    """lib.setup rejects unknown ALL_CAPS globals: the set-up cell must not define any."""
    ns = {}
    exec(compile(colab.cell_source(), "setup-cell", "exec"), ns)
    assert [k for k in ns if k.isupper() and not k.startswith("_")] == []


def test_setup_cell_on_a_local_kernel_fetches_what_its_notebook_reads(data_dir, tmp_path, monkeypatch, capsys):
    """A notebook opened by hand in Jupyter on an empty data folder: its set-up cell fetches the files that notebook
    reads (06: minBERT and SICK, not the extras nor other notebooks' data), as run_all.sh does; LAB_DOWNLOAD=0 (what
    run_all.sh sets for its own runs) leaves the folder alone."""
    for k in ("KAGGLE_KERNEL_RUN_TYPE", "LAB_DOWNLOAD"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    empty = tmp_path / "off"
    monkeypatch.setenv("DATA_DIR", str(empty))
    monkeypatch.setenv("LAB_DOWNLOAD", "0")
    _run_cell(colab.cell_source(notebook="06_multitask"), paths.NOTEBOOKS)
    assert not empty.exists()
    monkeypatch.delenv("LAB_DOWNLOAD")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LAB_DATA_MIRROR", str(data_dir))
    _run_cell(colab.cell_source(notebook="06_multitask"), paths.NOTEBOOKS)
    out = capsys.readouterr().out
    assert "data: minbert: fetched 10 file(s)" in out and "data: sick: fetched 1 file(s)" in out
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["minbert", "sick"]
    assert not (tmp_path / "data/minbert/quora-train.csv").exists()
