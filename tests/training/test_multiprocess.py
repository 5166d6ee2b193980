"""The multiprocess tier: the one training engine (lib.training.train.fit on accelerate) on 2 CPU processes (torchrun, gloo)
reaches the 1-process result with the same global batch, and distributed_map covers every item exactly once."""
import json
import os
import subprocess
import sys

import pytest

from lib.core import paths

pytestmark = pytest.mark.multiprocess
JOB = paths.ROOT / "tests" / "ddp_job.py"
TOL = 1e-5  # float32 sums in another order (gradients all-reduced over 2 ranks)


def _run(cmd, out):
    env = {**os.environ, "PYTHONPATH": str(paths.ROOT), "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run(cmd, cwd=paths.ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


def test_two_processes_match_one_with_the_same_global_batch(tmp_path):
    one = _run([sys.executable, str(JOB), str(tmp_path / "one.json"), "16"], tmp_path / "one.json")
    two = _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
                str(JOB), str(tmp_path / "two.json"), "8"], tmp_path / "two.json")
    assert one["procs"] == 1 and two["procs"] == 2
    assert one["steps"] == two["steps"] == 12                    # 64 examples / global batch 16 x 3 epochs
    assert len(one["weight"]) == len(two["weight"]) == 3
    assert two["weight"] + [two["bias"]] == pytest.approx(one["weight"] + [one["bias"]], abs=TOL)  # same length too
    assert two["best"] == pytest.approx(one["best"], abs=TOL)
    assert two["preds"] == [i * i for i in range(13)]            # every item once, in order, uneven shares


def test_two_processes_save_together_and_resume_from_their_checkpoint(tmp_path):
    """Both ranks write one checkpoint (each its RNG state, the main process the marker); a second launch resumes
    from it (the last save, at step 12) and ends with the same weights and best as the first."""
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29532",
              str(JOB)]
    first = _run(launch + [str(tmp_path / "a.json"), "8", str(tmp_path / "ckpt")], tmp_path / "a.json")
    marker = json.loads((tmp_path / "ckpt" / "latest.json").read_text())
    assert marker["step"] == 12 and marker["fingerprint"]["processes"] == 2
    assert sorted(p.name for p in (tmp_path / "ckpt" / marker["folder"]).glob("random_states_*")) == \
        ["random_states_0.pkl", "random_states_1.pkl"]
    again = _run(launch + [str(tmp_path / "b.json"), "8", str(tmp_path / "ckpt")], tmp_path / "b.json")
    assert first["resumed_from_step"] == 0 and again["resumed_from_step"] == 12
    assert again["weight"] + [again["bias"]] == first["weight"] + [first["bias"]] and again["best"] == first["best"]

