"""The model registry loads each embedded model offline, caches GGUF conversions, and fails clearly otherwise."""
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from lib.core.errors import LabError
from lib.models import encoders, registry


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # the hub is disabled: everything here must load from packages


def test_embedded_encoder_forward():
    tok, model = encoders.create_and_prepare_model("all-MiniLM-L6-v2", 11)
    out = model(**tok(["so happy today", "fear and loathing"], return_tensors="pt", padding=True))
    assert out.logits.shape == (2, 11) and torch.isfinite(out.logits).all()
    assert registry.count_parameters(model)["total"] > 20e6  # the real 22.7M-parameter model, not a stand-in


@pytest.mark.parametrize("name", [registry.INSTRUCT, registry.DECODER])
def test_embedded_gguf_decoder_loads_and_second_load_reuses_cache(name):
    registry.local_path(name)  # converts on the very first use on this machine (30-90 s), else a cache hit
    logs = []
    path = registry._convert_gguf(name, log=logs.append)
    assert logs == [], "second load must reuse the cached float checkpoint, not de-quantise again"
    assert (path / "model.safetensors").exists() and "quantization_config" not in (path / "config.json").read_text()
    tok = registry.load_tokenizer(name)
    model = registry.load_model(name, AutoModelForCausalLM, dtype=torch.float32)
    ids = tok(["The weather today is"], return_tensors="pt")
    logits = model(**ids).logits
    assert logits.shape[:2] == ids["input_ids"].shape and torch.isfinite(logits).all()
    # a real language model: the next token after a plain prefix is far from uniform
    assert torch.softmax(logits[0, -1], -1).max() > 10 / logits.shape[-1]


def test_unknown_model_error_lists_embedded_names():
    with pytest.raises(LabError) as e:
        registry.load_model("no-such-org/no-such-model", AutoModelForSequenceClassification)
    msg = str(e.value)
    assert "neither embedded nor reachable" in msg and all(n in msg for n in registry.EMBEDDED)


def test_dropout_overrides_set_every_dropout_of_the_config():
    from transformers import AutoModelForQuestionAnswering
    assert registry.dropout_overrides("all-MiniLM-L6-v2", -1.0) == {}  # keep the checkpoint's own
    kw = registry.dropout_overrides("all-MiniLM-L6-v2", 0.0)
    assert kw == {"hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
    m = registry.load_model("all-MiniLM-L6-v2", AutoModelForQuestionAnswering, **kw)
    assert m.config.attention_probs_dropout_prob == 0.0
    assert all(d.p == 0.0 for d in m.modules() if isinstance(d, torch.nn.Dropout))
    m = registry.load_model("all-MiniLM-L6-v2", AutoModelForQuestionAnswering)
    assert any(d.p == 0.1 for d in m.modules() if isinstance(d, torch.nn.Dropout))  # the default really differs
    _, clf = encoders.create_and_prepare_model("all-MiniLM-L6-v2", 11, dropout=0.0)  # 02's DROPOUT parameter
    assert all(d.p == 0.0 for d in clf.modules() if isinstance(d, torch.nn.Dropout))


def test_dropout_set_turns_dropout_on_for_one_block_only():
    """06 trains its task losses without encoder dropout (ENCODER_DROPOUT 0, ~2x faster on CPU) and gives SimCSE's
    passes their dropout back (registry.dropout_set): its positives are two dropout masks of the same sentences."""
    from lib.models import multitask_bert
    model = multitask_bert.build_model("all-MiniLM-L6-v2", sts_head="cosine", dropout=0.0, encoder_dropout=0.0)
    model.train()
    sents = ["what a lovely day", "the film was dull and far too long"]
    with torch.no_grad():
        a, b = model.embed(sents), model.embed(sents)
        assert torch.equal(a, b)  # no dropout in the task passes
        with registry.dropout_set(model.encoder, 0.1):
            z = model.embed(sents + sents)
        assert (z[:2] - z[2:]).abs().max() > 1e-3  # two different masks: SimCSE has positives to learn from
        assert torch.equal(model.embed(sents), a)  # restored after the block
    assert all(d.p == 0.0 for d in model.encoder.modules() if isinstance(d, torch.nn.Dropout))


def test_gguf_metadata_is_parsed_once_inside_a_conversion():
    """_convert_gguf's metadata-only reads (config, tokenizer) share one parse; reads with tensors pass through;
    every caller gets its own copy; the original function is back afterwards."""
    import transformers.modeling_gguf_pytorch_utils as gguf_utils
    calls, real = [], gguf_utils.load_gguf_checkpoint

    def fake(path, return_tensors=False, **kw):
        calls.append((path, return_tensors))
        return {"config": {"n": 1}, "tensors": return_tensors}
    gguf_utils.load_gguf_checkpoint = fake
    try:
        with registry._gguf_metadata_read_once():
            a = gguf_utils.load_gguf_checkpoint("m.gguf", return_tensors=False)
            a["config"]["n"] = 2  # a caller changing its copy changes nothing for the next one
            b = gguf_utils.load_gguf_checkpoint("m.gguf")
            c = gguf_utils.load_gguf_checkpoint("m.gguf", return_tensors=True)
        assert b == {"config": {"n": 1}, "tensors": False} and c["tensors"] is True
        assert calls == [("m.gguf", False), ("m.gguf", True)]
        assert gguf_utils.load_gguf_checkpoint is fake
    finally:
        gguf_utils.load_gguf_checkpoint = real
