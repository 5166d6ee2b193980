"""run_all.sh --num-processes N, the parts that need no second process: threads per rank, where each rank writes,
which rank's error the run reports, the cache key, and a bad count refused before anything runs."""
import subprocess
import sys

from lib.core import paths
from lib.running import launch, runkey


def test_threads_share_out_the_cores():
    assert launch.threads_per_rank(2, cores=2) == 1
    assert launch.threads_per_rank(2, cores=16) == 8
    assert launch.threads_per_rank(4, cores=2) == 1   # never 0
    assert launch.threads_per_rank(3, cores=8) == 2


def test_rank_0_writes_the_run_folder_the_others_their_own(tmp_path):
    assert launch.rank_dir(tmp_path, 0) == tmp_path
    assert launch.rank_dir(tmp_path, 3) == tmp_path / "ranks" / "rank-3"


def test_every_failed_rank_is_named(tmp_path):
    assert launch.failure(tmp_path, 2) is None
    (tmp_path / "ranks" / "rank-1").mkdir(parents=True)
    (tmp_path / "ranks" / "rank-1" / launch.ERROR).write_text("DeadKernelError: Kernel died\n")
    assert launch.failure(tmp_path, 2) == "rank 1: DeadKernelError: Kernel died"
    (tmp_path / launch.ERROR).write_text("RuntimeError: Connection closed by peer")  # rank 0, taken down with it
    assert launch.failure(tmp_path, 2) == "rank 0: RuntimeError: Connection closed by peer; rank 1: DeadKernelError: Kernel died"


def test_the_command_is_torchrun_on_this_machine(tmp_path):
    cmd = launch.command(tmp_path / "spec.json", 4)
    assert cmd[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert cmd[cmd.index("--nproc_per_node") + 1] == "4" and "--standalone" in cmd
    assert cmd[-3:] == ["-m", "lib.running.launch", str(tmp_path / "spec.json")]


def test_the_process_count_is_part_of_the_key_only_above_one(data_dir):
    params = {"PROFILE": "smoke", "DATA_DIR": str(data_dir)}
    one, two = (runkey.cache_key("01_ffnn", params, str(data_dir), n) for n in (1, 2))
    assert "processes" not in one and two["processes"] == 2
    assert runkey.explain(one, two) == ["processes: (absent) -> 2"]


def test_a_process_count_below_one_is_refused():
    proc = subprocess.run([sys.executable, "-m", "lib.running.runner", "--profile", "smoke", "--num-processes", "0"],
                          cwd=paths.ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--num-processes 0: expected a whole number of processes, at least 1" in proc.stderr
    assert "Traceback" not in proc.stderr
