"""Compute precision: one policy for training and prediction. lib.training.train trains under it (accelerate's
mixed precision) and every predict function in lib.models runs under `inference`.

bf16 autocast where the hardware multiplies in bf16 natively: a GPU of compute capability 8 or more (A100, L4, H100),
or a CPU with AVX512-BF16 or AMX, where a bf16 matmul runs at about twice the fp32 rate. Elsewhere fp32, because
emulated bf16 is slower than fp32 (T4, V100, a CPU without those instructions). Weights and optimiser state stay fp32.
On a GPU, training keeps its own choice (TrainConfig.bf16: bf16, else fp16).

params.setup sets the mode once per run from the profile (profiles.PRECISION: smoke keeps fp32 so its pinned
metrics hold on every machine). The resolved precision goes into the run's cache key and its record. A library call
made outside a run (tests, a script) computes in fp32 unless `configure` says otherwise."""
from __future__ import annotations

import contextlib

MODES = ("auto", "bf16", "fp32")  # auto: bf16 where the hardware has it natively, else fp32
_mode = "fp32"  # the mode of this process; params.setup configures it per run


def _checked(mode: str) -> str:
    if mode not in MODES:
        from lib.core.errors import LabError
        raise LabError(f"compute precision {mode!r} (LAB_PRECISION or lib/running/profiles.py PRECISION): expected "
                       f"one of {', '.join(MODES)}")
    return mode


def configure(mode: str) -> str:
    """Set this process's compute precision mode (auto | bf16 | fp32); returns what it resolves to on the CPU."""
    global _mode
    _mode = _checked(mode)
    return resolved("cpu")


def cpu_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX512-BF16 or AMX tiles), as oneDNN uses them."""
    import torch.cpu as cpu
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch's own CPU-feature probes
    return any(bool(getattr(cpu, c)()) for c in checks if hasattr(cpu, c))


def _gpu_native_bf16() -> bool:
    import torch
    return torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8


def resolved(device_type: str = "", mode: str | None = None) -> str:
    """"bf16" or "fp32": what `mode` (default: this process's) means on `device_type` (cuda | cpu; default: cuda
    when a GPU is present)."""
    import torch
    mode = _mode if mode is None else _checked(mode)
    device_type = device_type or ("cuda" if torch.cuda.is_available() else "cpu")
    if mode != "auto":
        return mode
    return "bf16" if (_gpu_native_bf16() if device_type == "cuda" else cpu_native_bf16()) else "fp32"


def describe(mode: str | None = None) -> str:
    """One line for a run's record: what the run computed in, and why."""
    mode = _mode if mode is None else mode
    got = resolved(mode=mode)
    if mode == "auto":
        return f"{got} (auto: " + ("the hardware multiplies bf16 natively)" if got == "bf16" else "no native bf16 here)")
    return got


def inference(device):
    """The context a prediction pass runs in on `device` (a torch.device or its type): bf16 autocast when the mode
    resolves to bf16 there, else nothing."""
    import torch
    kind = getattr(device, "type", str(device))
    if kind not in ("cpu", "cuda") or resolved(kind) != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(kind, dtype=torch.bfloat16)
