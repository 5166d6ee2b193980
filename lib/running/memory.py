"""Memory estimate of a training run on the GPU, before it trains: weights + gradients + optimiser state + the
activations of one batch, from the model's config on the meta device (no weights are loaded).

    est = memory.estimate("google/gemma-2b", quantization="4bit", lora_r=16, batch_size=16, max_length=96)
    memory.check(est)   # LabError naming BATCH_SIZE / GRAD_ACCUM / QUANTIZATION / MAX_LENGTH when it will not fit

Bytes per parameter: weights 0.5 (4-bit NF4, linear layers; + 1/64 B of block scales), 1 (8-bit), 2 (bf16/fp16);
full fine-tuning keeps fp32 weights + fp32 gradients + AdamW's two fp32 moments (16 B); LoRA trains only its
adapters (16 B each). Activations (16-bit) per layer and token: 34 * hidden + 5 * heads * seq bytes
(Korthikanti et al. 2022, "Reducing activation recomputation"), or 2 * hidden with gradient checkpointing (only
each layer's input kept, plus one layer recomputed); the logits add batch * seq * vocab * 4 B (fp32 loss) for a
language-model head.
"""
from __future__ import annotations

from lib.core.errors import LabError

GB = 1024 ** 3


def _linear_split(model) -> tuple[int, int, list[tuple[int, int]]]:
    """(params in linear layers except the output head, other params, [(in, out)] of those linear layers)."""
    import torch
    lin, shapes = 0, []
    for n, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and not n.endswith(("lm_head", "score", "classifier")):
            lin += m.weight.numel()
            shapes.append((m.in_features, m.out_features))
    total = sum(p.numel() for p in model.parameters())
    return lin, total - lin, shapes


def estimate_from_config(config, *, quantization: str = "none", lora_r: int = 0, batch_size: int = 8,
                         max_length: int = 128, gradient_checkpointing: bool = False, causal_lm: bool = False) -> dict:
    """Estimated GPU memory in bytes, by part, for training a model built from `config` (meta device)."""
    from accelerate import init_empty_weights
    from transformers import AutoModel
    with init_empty_weights():
        model = AutoModel.from_config(config)
    lin, other, shapes = _linear_split(model)
    per_lin = {"4bit": 0.5 + 1 / 64, "8bit": 1.0, "none": 2.0}[quantization]
    if lora_r:
        trainable = sum(lora_r * (i + o) for i, o in shapes)
        weights = lin * per_lin + other * 2
    else:
        if quantization != "none":
            raise LabError("QUANTIZATION=4bit/8bit needs LoRA (full fine-tuning of quantised weights is impossible)")
        trainable = lin + other
        weights = 0  # counted in the 16 B per trainable parameter below
    train_state = trainable * 16  # fp32 weights + fp32 gradients + AdamW exp_avg and exp_avg_sq
    h = config.hidden_size
    heads = config.num_attention_heads
    layers = config.num_hidden_layers
    tokens = batch_size * max_length
    if gradient_checkpointing:
        acts = tokens * layers * 2 * h + tokens * (34 * h + 5 * heads * max_length)
    else:
        acts = tokens * layers * (34 * h + 5 * heads * max_length)
    logits = tokens * config.vocab_size * 4 if causal_lm else 0
    parts = {"weights": weights, "trainable_state": train_state, "activations": acts, "logits": logits}
    return {**{k: int(v) for k, v in parts.items()}, "total": int(sum(parts.values())), "trainable_params": trainable}


def check(est: dict, available: int | None = None, overhead: float = 1.2) -> None:
    """Raise a LabError naming the knobs to turn when the estimate (times the allocator/CUDA-context overhead) does
    not fit the free memory of the GPU (torch.cuda.mem_get_info) or `available` bytes."""
    if available is None:
        import torch
        if not torch.cuda.is_available():
            return
        available = torch.cuda.mem_get_info()[0]
    need = est["total"] * overhead
    if need <= available:
        return
    parts = ", ".join(f"{k} {est[k] / GB:.1f} GB" for k in ("weights", "trainable_state", "activations", "logits"))
    raise LabError(f"this run needs about {need / GB:.1f} GB of GPU memory ({parts}, x{overhead} overhead) but "
                   f"{available / GB:.1f} GB are free. Lower BATCH_SIZE (and raise GRAD_ACCUM to keep the effective "
                   f"batch), lower MAX_LENGTH, or set QUANTIZATION=\"4bit\" (activations and logits scale with "
                   f"BATCH_SIZE x MAX_LENGTH).")


def check_run(model: str, batch_size: int, max_length: int, *, quantization: str = "none", lora_r: int = 0,
              gradient_checkpointing: bool = False, generative: bool = False) -> dict | None:
    """Before a gpu run trains (called by lib.setup when CUDA is there): estimate the run's main model and stop with
    a LabError naming the knobs when it will not fit the free GPU memory. A model whose config cannot be read
    (e.g. an embedded registry name) is skipped: returns None."""
    import torch
    if not torch.cuda.is_available() or not model or not batch_size or not max_length:
        return None
    from transformers import AutoConfig

    from lib.models import registry
    registry.hub_token()  # a gated model's config needs the token; on Colab/Kaggle it is in their secrets until now
    try:
        config = AutoConfig.from_pretrained(model, trust_remote_code=False)
        est = estimate_from_config(config, quantization=quantization, lora_r=lora_r, batch_size=batch_size,
                                   max_length=max_length, gradient_checkpointing=gradient_checkpointing,
                                   causal_lm=generative)
    except (OSError, ValueError, AttributeError, KeyError):
        return None
    check(est)
    return est
