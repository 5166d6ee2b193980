"""The multiprocess tier: the one training engine (lib.training.train.fit on accelerate) on 2 CPU processes (torchrun, gloo)
reaches the 1-process result with the same global batch, distributed_map covers every item exactly once, and every
prediction function the studies use gives on 2 ranks what it gives on one."""
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



def test_every_prediction_function_gives_on_two_ranks_what_it_gives_on_one(tmp_path):
    """Each batch is predicted whole on one rank and gathered in order (lib.core.distributed.distributed_map): encoder
    logits, multitask embeddings and pair predictions (with their loss), QA start/end logits and loss, generated
    answers with their label scores. One thread per process in both runs, so the same kernels: equal to 1e-6."""
    import pickle

    import numpy as np
    job = str(paths.ROOT / "tests" / "predict_job.py")
    env = {**os.environ, "PYTHONPATH": str(paths.ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    runs = {}
    for name, cmd in (("one", [sys.executable, job]),
                      ("two", [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                               "--master_port", "29533", job])):
        proc = subprocess.run(cmd + [str(tmp_path / name)], cwd=paths.ROOT, env=env, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        runs[name] = pickle.loads((tmp_path / name).read_bytes())
    one, two = runs["one"], runs["two"]
    assert one.pop("processes") == 1 and two.pop("processes") == 2
    assert one.keys() == two.keys() and len(one) == 5
    close = lambda a, b: np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), atol=1e-6)  # noqa: E731
    assert close(one["encoder_logits"], two["encoder_logits"]) and one["encoder_logits"].shape == (8, 3)
    assert close(one["multitask_embed"], two["multitask_embed"]) and one["multitask_embed"].shape[0] == 8
    assert all(close(a, b) for a, b in zip(one["multitask_para"], two["multitask_para"]))
    (s1, e1, l1), (s2, e2, l2) = one["qa"], two["qa"]
    assert len(s1) == len(s2) == 5 and all(close(a, b) for a, b in zip(s1 + e1, s2 + e2)) and close(l1, l2)
    assert one["generated"][0] == two["generated"][0] and len(one["generated"][0]) == 5
    assert close(one["generated"][1], two["generated"][1])
