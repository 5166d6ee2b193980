"""One notebook run on N processes (`run_all.sh --num-processes N`): torchrun starts N ranks and every rank executes
the whole notebook with papermill, as every rank of an `accelerate launch` script runs the whole script.

Why the whole notebook on every rank (and not a job module, nor notebook_launcher): the notebooks load their models
before training, the 4-bit ones straight onto a GPU. torchrun starts fresh processes, so nothing is forked after CUDA
is initialised (notebook_launcher's limit), and each rank loads its model onto its own GPU (lib.setup binds the rank
to cuda:LOCAL_RANK). No study is rebuilt from parameters in a job module: the notebook stays the one description of
the study, and the run on N processes is the same code as the run on one. What the ranks share: lib.training.train.fit
(DDP, each rank every N-th batch, the main process's evaluation result broadcast to all) and distributed_map in the
prediction functions (each example predicted once, gathered in order on every rank).

Only rank 0's executed notebook is the run's report, in the run folder; rank k (k >= 1) writes its notebook and
files to <run folder>/ranks/rank-k/, kept for a failed run and removed once the run finishes. A rank that fails ends
the others (torchrun), and the run fails naming each failed rank and its error.

    python -m torch.distributed.run --standalone --nproc_per_node N -m lib.running.launch SPEC.json
"""
from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

SPEC = "spec.json"       # in <run folder>/ranks/: the notebook, its executed copy's path and the parameters
ERROR = "error.txt"      # in each rank's folder when its notebook failed: the error, one line


def rank_dir(run_dir: Path, rank: int) -> Path:
    """Where rank `rank` writes: the run folder itself for rank 0, <run folder>/ranks/rank-k/ for the others."""
    return Path(run_dir) if rank == 0 else Path(run_dir) / "ranks" / f"rank-{rank}"


def threads_per_rank(n: int, cores: int | None = None) -> int:
    """CPU threads each of n ranks uses: the machine's cores shared out (torchrun's default is 1)."""
    return max(1, (cores or os.cpu_count() or 1) // n)


def command(spec: Path, n: int) -> list[str]:
    """The torchrun command that runs the notebook described in `spec` on `n` processes of this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(n),
            "-m", "lib.running.launch", str(spec)]


def write_spec(run_dir: Path, notebook: Path, parameters: dict, cwd: Path) -> Path:
    d = Path(run_dir) / "ranks"
    d.mkdir(parents=True, exist_ok=True)
    spec = d / SPEC
    spec.write_text(json.dumps({"notebook": str(notebook), "run_dir": str(run_dir), "parameters": parameters,
                                "cwd": str(cwd)}, indent=2, default=str))
    return spec


def failure(run_dir: Path, n: int) -> str | None:
    """Every failed rank's error, e.g. 'rank 1: DeadKernelError: ...; rank 0: RuntimeError: Connection closed by
    peer' (a rank that dies takes the others' collectives with it, so all are named); None when no rank wrote one."""
    errors = [f"rank {r}: {f.read_text().strip()}" for r in range(n) if (f := rank_dir(run_dir, r) / ERROR).is_file()]
    return "; ".join(errors) or None


def _stop_on_sigterm() -> None:
    """torchrun ends the other ranks with SIGTERM when one fails: leave through papermill's cleanup, which shuts the
    rank's kernel down, instead of leaving it orphaned."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)


def main(spec_path: str) -> int:
    import papermill as pm
    spec = json.loads(Path(spec_path).read_text())
    rank = int(os.environ.get("RANK", "0"))
    out = rank_dir(Path(spec["run_dir"]), rank)
    out.mkdir(parents=True, exist_ok=True)
    _stop_on_sigterm()
    try:
        pm.execute_notebook(spec["notebook"], str(out / "notebook.ipynb"),
                            parameters={**spec["parameters"], "OUTPUT_DIR": str(out)}, cwd=spec["cwd"],
                            progress_bar=False, log_output=False, kernel_name="python3")
    except pm.PapermillExecutionError as e:
        (out / ERROR).write_text(f"{e.ename}: {e.evalue}".strip())
        return 1
    except Exception as e:  # noqa: BLE001 - a kernel that died (e.g. ended by torchrun): named, the rank fails
        (out / ERROR).write_text(f"{type(e).__name__}: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
