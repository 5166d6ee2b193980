"""Hub errors name the real cause: gated, repository not found, offline, disk full. Each test makes the hub
download raise huggingface_hub's own error class inside transformers' real loading path."""
import errno
import types

import httpx2
import pytest
from huggingface_hub.errors import (
    GatedRepoError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
)
from transformers import AutoConfig

from lib.core.errors import LabError
from lib.models import registry


def _response(status: int, url: str):
    return httpx2.Response(status, request=httpx2.Request("GET", url))


@pytest.fixture
def hub_raises(monkeypatch, tmp_path):
    """Make every hub file lookup raise `exc` (an empty cache, so nothing resolves locally)."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.delenv("HF_TOKEN", raising=False)

    def install(exc):
        def fake(*a, **k):
            raise exc
        monkeypatch.setattr("transformers.utils.hub.hf_hub_download", fake)
        monkeypatch.setattr("transformers.utils.hub.snapshot_download", fake, raising=False)
    return install


def _message(name: str) -> str:
    with pytest.raises(LabError) as e:
        registry.load_model(name, AutoConfig)
    return str(e.value)


def test_gated_names_licence_and_token(hub_raises):
    url = "https://huggingface.co/google/gemma-2b/resolve/main/config.json"
    hub_raises(GatedRepoError("Access to model google/gemma-2b is restricted.", response=_response(401, url)))
    msg = _message("google/gemma-2b")
    assert "gated" in msg and "https://huggingface.co/google/gemma-2b" in msg and "licence" in msg
    assert "HF_TOKEN" in msg and "hf auth login" in msg and "Colab" in msg and "Kaggle" in msg
    assert "no token was found" in msg and "unreachable" not in msg


def test_repository_not_found(hub_raises):
    url = "https://huggingface.co/meta-llama/Llama-3.2-1b-typo/resolve/main/config.json"
    hub_raises(RepositoryNotFoundError("404 Client Error", response=_response(404, url)))
    msg = _message("meta-llama/Llama-3.2-1b-typo")
    assert "does not exist" in msg and "spelling" in msg and "gated" not in msg


def test_offline(hub_raises, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    err = LocalEntryNotFoundError("Cannot find the requested files in the disk cache")
    err.__cause__ = OfflineModeIsEnabled("offline")
    hub_raises(err)
    msg = _message("Qwen/Qwen2.5-1.5B")
    assert "HF_HUB_OFFLINE=1" in msg and "not in the local cache" in msg and "all-MiniLM-L6-v2" in msg


def test_unreachable_without_offline_flag(hub_raises, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hub_raises(LocalEntryNotFoundError("connection error and no cache"))
    msg = _message("Qwen/Qwen2.5-1.5B")
    assert "unreachable" in msg and "not in the local cache" in msg


def test_disk_full(hub_raises):
    hub_raises(OSError(errno.ENOSPC, "No space left on device"))
    msg = _message("google/gemma-2b")
    assert "disk is full" in msg and "HF_HUB_CACHE" in msg


def test_token_from_colab_secrets_goes_to_env_only(monkeypatch):
    import sys
    import types
    monkeypatch.delenv("HF_TOKEN", raising=False)
    colab = types.ModuleType("google.colab")
    colab.userdata = types.SimpleNamespace(get=lambda key: "hf_fromColabSecrets" if key == "HF_TOKEN" else None)
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    assert registry.hub_token() == "hf_fromColabSecrets"
    import os
    assert os.environ["HF_TOKEN"] == "hf_fromColabSecrets"


def test_float_base_on_gpu_in_training_dtype(monkeypatch):
    """decoders.float_base: on CUDA the float model is placed on the GPU in bf16 (fp16 without bf16 support)."""
    import torch

    from lib.models import decoders
    seen = {}
    monkeypatch.setattr(decoders.registry, "load_model",
                        lambda name, cls, **kw: seen.update(kw) or types.SimpleNamespace(eval=lambda: "m"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    decoders.float_base("google/gemma-2b", "classifier", 11)
    assert seen["dtype"] == torch.float32 and "device_map" not in seen
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    for bf16, dtype in ((True, torch.bfloat16), (False, torch.float16)):  # A100 / T4
        seen.clear()
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
        decoders.float_base("google/gemma-2b", "generative")
        assert seen["dtype"] == dtype and seen["device_map"] == {"": 0}
