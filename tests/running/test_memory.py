"""Memory estimate: hand-worked on a tiny BERT config (meta device), and the error naming the knobs."""
import pytest
from transformers import BertConfig

from lib.core.errors import LabError
from lib.running import memory

# 2 layers, hidden 8, 2 heads, intermediate 16, vocab 100, 16 positions, 2 token types
CFG = BertConfig(vocab_size=100, hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16,
                 max_position_embeddings=16, type_vocab_size=2)
# per layer linear weights: q,k,v,o 4*8*8=256, intermediate 8*16=128, output 16*8=128 -> 512; 2 layers + pooler 64
LIN = 2 * 512 + 64
# biases: per layer 4*8 + 16 + 8 = 56, 2 LayerNorms 32 -> 88 x 2 = 176; pooler bias 8; embeddings
# (100+16+2)*8 = 944 + LayerNorm 16
OTHER = 176 + 8 + 944 + 16


def test_full_finetuning_hand_worked():
    est = memory.estimate_from_config(CFG, batch_size=4, max_length=10)
    assert est["trainable_params"] == LIN + OTHER
    assert est["trainable_state"] == 16 * (LIN + OTHER) and est["weights"] == 0
    assert est["activations"] == 4 * 10 * 2 * (34 * 8 + 5 * 2 * 10)  # 29,760 B
    assert est["total"] == est["trainable_state"] + est["activations"]


def test_lora_4bit_and_checkpointing_hand_worked():
    est = memory.estimate_from_config(CFG, quantization="4bit", lora_r=2, batch_size=4, max_length=10,
                                      gradient_checkpointing=True, causal_lm=True)
    lora = 2 * (2 * (4 * 16 + 24 + 24) + 16)  # r*(in+out): 4x(8,8), (8,16), (16,8) per layer, pooler (8,8)
    assert est["trainable_params"] == lora
    assert est["weights"] == int(LIN * (0.5 + 1 / 64) + OTHER * 2)
    assert est["activations"] == 40 * 2 * 2 * 8 + 40 * (34 * 8 + 5 * 2 * 10)
    assert est["logits"] == 40 * 100 * 4


def test_check_names_the_knobs():
    est = memory.estimate_from_config(CFG, batch_size=4, max_length=10)
    memory.check(est, available=10 ** 9)  # fits
    with pytest.raises(LabError) as e:
        memory.check(est, available=1000)
    for knob in ("BATCH_SIZE", "GRAD_ACCUM", "MAX_LENGTH", "QUANTIZATION"):
        assert knob in str(e.value)


def test_setup_checks_gpu_memory_before_a_run_trains(monkeypatch, tmp_path):
    """lib.setup on a (patched) GPU with too little free memory stops with the knobs named; with enough it records
    the estimate; on CPU nothing is estimated."""
    import torch
    import transformers

    from lib.running import params
    transformers.set_seed  # noqa: B018 -- resolve the lazy import (it loads bitsandbytes) before CUDA is faked below
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", classmethod(lambda cls, name, **kw: CFG))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (1000, 10 ** 9))   # 1,000 bytes free
    ns = {"PROFILE": "gpu", "MODEL": "some-org/some-model", "OUTPUT_DIR": str(tmp_path)}
    with pytest.raises(LabError, match="Lower BATCH_SIZE"):
        params.setup(dict(ns), "02_encoders")
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a: (10 ** 12, 10 ** 12))
    P = params.setup(dict(ns), "02_encoders")
    want = memory.estimate_from_config(CFG, batch_size=P.BATCH_SIZE, max_length=P.MAX_LENGTH)["total"] / memory.GB
    assert P.meta["gpu_memory_estimate_gb"] == round(want, 2) > 0  # the run's own batch and length were estimated
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert memory.check_run(P.MODEL, P.BATCH_SIZE, P.MAX_LENGTH) is None
