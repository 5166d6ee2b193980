import subprocess
import sys

from lib.core import paths


def _run(env_fault: str | None, code: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", **({"LAB_FAULT": env_fault} if env_fault else {})}
    return subprocess.run([sys.executable, "-c", code], cwd=paths.ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


CODE = "from lib.core import faults\nfor i in range(3):\n    faults.point('a')\n    print(i, flush=True)\n"


def test_a_point_kills_with_sigkill_only_when_named():
    assert _run(None, CODE).stdout.split() == ["0", "1", "2"]
    assert _run("b", CODE).stdout.split() == ["0", "1", "2"]
    killed = _run("a", CODE)
    assert killed.returncode == -9 and killed.stdout == ""


def test_the_nth_arrival():
    p = _run("a@3", CODE)
    assert p.returncode == -9 and p.stdout.split() == ["0", "1"]
