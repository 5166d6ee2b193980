"""ECB+ (Cybulska & Vossen 2014) for cross-document event coreference: XML -> event mentions -> mention pairs.

* `load_corpus(root)` parses every `ECB+/<topic>/*.xml` into `Doc`s; `event_mentions(docs, ...)` keeps the
  ACTION_* (and NEG_ACTION_*) markables as `Mention`s with their trigger, sentence, gold chain and the
  participant / time / location markables of the same sentence.
* Gold chain of a mention: the instance id of its CROSS_DOC_COREF relation; else its INTRA_DOC_COREF relation
  (`INTRA:<doc>:<r_id>`); else a singleton (`SINGLETON:<doc>:<m_id>`).
* Sentences: by default only the validated ones (`ECBplus_coreference_sentences.csv`, as the release README asks);
  `all_sentences=True` keeps every annotated mention.
* Split (Cybulska & Vossen 2015; used by Barhom et al. 2019 and most later work): dev topics 2 5 12 18 21 23 34 35,
  test 36-45, train the rest. Sub-topic = topic + sub-corpus (`ecb` or `ecbplus`).
* `build_pairs(...)`: mentions of different documents of the same topic (or sub-topic), label = same chain,
  with de-duplication of identical (sentence, trigger) pairs, positive oversampling and negative undersampling.
* Input formats: the study's ModernBERT template, a marked-trigger variant, and the study's Yes/No chat prompt.
"""
from __future__ import annotations

import csv
import io
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lib.core import stages
from lib.core.errors import LabError, read_text
from lib.data import sampling

DEV_TOPICS = (2, 5, 12, 18, 21, 23, 34, 35)
TEST_TOPICS = tuple(range(36, 46))
SENTENCES_CSV = "ECBplus_coreference_sentences.csv"
ROLE_PREFIXES = {"participants": ("HUMAN_PART", "NON_HUMAN_PART"), "times": ("TIME_",), "locations": ("LOC_",)}


def split_of(topic: int) -> str:
    return "dev" if topic in DEV_TOPICS else "test" if topic in TEST_TOPICS else "train"


@dataclass
class Markable:
    m_id: str
    tag: str
    t_ids: list                      # token ids (strings), in document order
    instance_id: str = ""            # only on the instance descriptors (no tokens)


@dataclass
class Doc:
    name: str                        # e.g. "1_10ecbplus" (file stem)
    topic: int
    sub_corpus: str                  # ecb | ecbplus
    tokens: dict                     # t_id -> (sentence index, text)
    markables: dict                  # m_id -> Markable
    cross: dict                      # m_id -> chain id (CROSS_DOC_COREF instance id)
    intra: dict                      # m_id -> chain id (INTRA_DOC_COREF)

    def sentence(self, s: int) -> str:
        return " ".join(t for (si, t) in self.tokens.values() if si == s)


@dataclass
class Mention:
    mid: str                         # "<doc>:<m_id>", unique in the corpus
    doc: str
    topic: int
    sub_corpus: str
    subtopic: str                    # "<topic>_<sub_corpus>"
    tag: str
    trigger: str
    sentence_idx: int
    sentence: str
    chain: str
    split: str
    participants: list = field(default_factory=list)
    times: list = field(default_factory=list)
    locations: list = field(default_factory=list)
    trigger_pos: list = field(default_factory=list)  # positions of the trigger tokens in the sentence


def _where(path, what) -> str:
    return f"{path}: {what}"


def parse_doc(path: str | Path) -> Doc:
    """Parse one ECB+ XML file. Malformed / truncated XML -> LabError naming the file."""
    path = Path(path)
    if path.exists() and path.stat().st_size == 0:
        raise LabError(f"{path}:1: empty file; expected an ECB+ <Document> XML file")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        line, col = e.position
        raise LabError(f"{path}:{line}: malformed or truncated XML at column {col + 1} ({str(e).split(':')[0]}); "
                       "expected an ECB+ <Document> file (UTF-8, well-formed)") from None
    except FileNotFoundError:
        raise LabError(f"{path}: file not found; expected an ECB+ <Document> XML file") from None
    if root.tag != "Document":
        raise LabError(_where(path, f"root element <{root.tag}>; expected <Document>"))
    stem = path.name[:-4] if path.name.endswith(".xml") else path.stem
    m = re.fullmatch(r"(\d+)_\d+(ecbplus|ecb)", stem)
    if not m:
        raise LabError(_where(path, "file name is not <topic>_<n>ecb.xml or <topic>_<n>ecbplus.xml"))
    tokens = {}
    for t in root.iter("token"):
        tokens[t.get("t_id")] = (int(t.get("sentence")), t.text or "")
    markables = {}
    mk = root.find("Markables")
    for el in (mk if mk is not None else []):
        markables[el.get("m_id")] = Markable(el.get("m_id"), el.tag, [a.get("t_id") for a in el.iter("token_anchor")],
                                             el.get("instance_id", ""))
    cross, intra = {}, {}
    rel = root.find("Relations")
    for r in (rel if rel is not None else []):
        sources = [s.get("m_id") for s in r.iter("source")]
        if r.tag == "CROSS_DOC_COREF":
            tgt = r.find("target")
            chain = r.get("note") or (markables[tgt.get("m_id")].instance_id if tgt is not None and tgt.get("m_id") in markables else "")
            if not chain:
                raise LabError(_where(path, f"CROSS_DOC_COREF r_id={r.get('r_id')} has no instance id (note/target)"))
            for s in sources:
                cross[s] = chain
        elif r.tag == "INTRA_DOC_COREF":  # the target is a mention in the text too
            for s in sources + [t.get("m_id") for t in r.iter("target")]:
                intra[s] = f"INTRA:{stem}:{r.get('r_id')}"
    return Doc(stem, int(m.group(1)), m.group(2), tokens, markables, cross, intra)


def load_corpus(root: str | Path, topics=None) -> list[Doc]:
    """All documents under `root` (the folder holding `ECB+/`, or `ECB+/` itself), sorted by topic then name."""
    root = Path(root)
    base = root / "ECB+" if (root / "ECB+").is_dir() else root
    if not base.is_dir():
        raise LabError(f"{base}: ECB+ folder not found; expected <DATA_DIR>/ecbplus/ECB+/<topic>/*.xml")
    files = sorted(base.glob("*/*.xml"), key=lambda p: (int(p.parent.name) if p.parent.name.isdigit() else 0, p.name))
    if topics is not None:
        files = [f for f in files if f.parent.name.isdigit() and int(f.parent.name) in set(topics)]
    if not files:
        raise LabError(f"{base}: no <topic>/*.xml files found")
    return [parse_doc(f) for f in files]


def validated_sentences(csv_path: str | Path) -> set:
    """{(doc stem, sentence index)} from ECBplus_coreference_sentences.csv (Topic, File, Sentence Number)."""
    csv_path = Path(csv_path)
    if not csv_path.exists():
        raise LabError(f"{csv_path}: not found; expected the release's {SENTENCES_CSV}")
    out = set()
    with io.StringIO(read_text(csv_path, f"the release's {SENTENCES_CSV} (Topic,File,Sentence Number)"), newline="") as f:
        rows = csv.reader(f)
        next(rows, None)  # the header row
        for i, row in enumerate(rows, start=2):
            if len(row) != 3 or not row[0].strip().isdigit() or not row[2].strip().isdigit():
                raise LabError(f"{csv_path}:{i}: {row!r}; expected Topic,File,Sentence Number")
            out.add((f"{row[0].strip()}_{row[1].strip()}", int(row[2])))
    return out


def event_mentions(docs: list[Doc], sentences: set | None = None, include_neg: bool = True) -> list[Mention]:
    """Event mentions (ACTION_*; NEG_ACTION_* too when include_neg) of `docs`, restricted to `sentences`
    ({(doc, sentence index)}) unless it is None. A mention whose token ids are missing -> LabError."""
    out = []
    for d in docs:
        by_sent: dict[int, list] = {}
        for mk in d.markables.values():
            if mk.t_ids and not mk.tag.startswith(("ACTION", "NEG_ACTION")):
                s = d.tokens.get(mk.t_ids[0], (None,))[0]
                by_sent.setdefault(s, []).append(mk)
        for mk in d.markables.values():
            if not (mk.tag.startswith("ACTION") or (include_neg and mk.tag.startswith("NEG_ACTION"))):
                continue
            if not mk.t_ids:
                continue  # instance descriptor (TAG_DESCRIPTOR), not a mention in text
            missing = [t for t in mk.t_ids if t not in d.tokens]
            if missing:
                raise LabError(f"{d.name}.xml:m_id={mk.m_id}: token ids {missing} not in the document; "
                               f"expected every token_anchor to name a <token t_id>")
            s = d.tokens[mk.t_ids[0]][0]
            if sentences is not None and (d.name, s) not in sentences:
                continue
            chain = d.cross.get(mk.m_id) or d.intra.get(mk.m_id) or f"SINGLETON:{d.name}:{mk.m_id}"
            roles = {k: [] for k in ROLE_PREFIXES}
            for o in by_sent.get(s, []):
                for k, pre in ROLE_PREFIXES.items():
                    if o.tag.startswith(pre):
                        roles[k].append(" ".join(d.tokens[t][1] for t in o.t_ids if t in d.tokens))
            ids = sorted(mk.t_ids, key=lambda t: int(t) if t.isdigit() else 0)
            sent_ids = [t for t, (si, _) in d.tokens.items() if si == s]
            pos = [sent_ids.index(t) for t in ids if t in sent_ids]
            out.append(Mention(f"{d.name}:{mk.m_id}", d.name, d.topic, d.sub_corpus, f"{d.topic}_{d.sub_corpus}",
                               mk.tag, " ".join(d.tokens[t][1] for t in ids), s, d.sentence(s), chain,
                               split_of(d.topic), **roles, trigger_pos=pos))
    return out


@stages.timed("load")
def load_mentions(data_dir: str | Path, all_sentences: bool = False, topics=None) -> list[Mention]:
    """Event mentions of the ECB+ release in `data_dir` (the folder holding ecbplus/ or ecbplus/ itself)."""
    base = Path(data_dir)
    base = base / "ecbplus" if (base / "ecbplus").is_dir() else base
    docs = load_corpus(base, topics)
    sents = None if all_sentences else validated_sentences(base / SENTENCES_CSV)
    return event_mentions(docs, sents)


def corpus_stats(mentions: list[Mention]) -> pd.DataFrame:
    """Per split: topics, documents, mentions, chains (all / non-singleton)."""
    rows = []
    for sp in ("train", "dev", "test"):
        ms = [m for m in mentions if m.split == sp]
        chains = Counter(m.chain for m in ms)
        rows.append({"split": sp, "topics": len({m.topic for m in ms}), "docs": len({m.doc for m in ms}),
                     "mentions": len(ms), "chains": len(chains), "non-singleton chains": sum(c > 1 for c in chains.values())})
    return pd.DataFrame(rows).set_index("split")


# ---------------------------------------------------------------- pairs

def build_pairs(mentions: list[Mention], same_subtopic: bool = False, dedup: bool = False,
                oversample_pos: int = 1, neg_ratio: float = 0.0, max_pairs: int = 0, seed: int = 0) -> pd.DataFrame:
    """Mention pairs (i < j, indices into `mentions`) from different documents of the same topic (sub-topic when
    same_subtopic); label 1 when both are in the same gold chain.

    dedup: drop pairs whose (sentence, trigger) pair — unordered — was seen already (the study's redundancy);
    oversample_pos: repeat each positive k times; neg_ratio > 0: keep at most neg_ratio negatives per positive
    (random undersampling, before oversampling); max_pairs > 0: random subsample (stratified by label).
    Returns a DataFrame with columns a, b, label (shuffled when any sampling was applied; see sample_pairs).
    """
    groups: dict = {}
    for i, m in enumerate(mentions):
        groups.setdefault(m.subtopic if same_subtopic else m.topic, []).append(i)
    a_list, b_list = [], []
    for idx in groups.values():
        idx = np.asarray(idx)
        docs = np.array([mentions[i].doc for i in idx])
        ii, jj = np.triu_indices(len(idx), k=1)
        keep = docs[ii] != docs[jj]
        a_list.append(idx[ii[keep]])
        b_list.append(idx[jj[keep]])
    a = np.concatenate(a_list) if a_list else np.zeros(0, int)
    b = np.concatenate(b_list) if b_list else np.zeros(0, int)
    chains = np.array([m.chain for m in mentions])
    df = pd.DataFrame({"a": a, "b": b, "label": (chains[a] == chains[b]).astype(int)}) if len(a) else \
        pd.DataFrame({"a": [], "b": [], "label": []}, dtype=int)
    if dedup and len(df):
        key = [(mentions[x].sentence, mentions[x].trigger) for x in range(len(mentions))]
        seen, keep = set(), []
        for x, y in zip(df.a, df.b):
            k = frozenset((key[x], key[y])) if key[x] != key[y] else (key[x], key[y])
            keep.append(k not in seen)
            seen.add(k)
        df = df[np.array(keep)].reset_index(drop=True)
    return sample_pairs(df, neg_ratio, max_pairs, oversample_pos, seed)


def sample_pairs(df: pd.DataFrame, neg_ratio: float = 0.0, max_pairs: int = 0, oversample_pos: int = 1,
                 seed: int = 0, caps: list | None = None) -> pd.DataFrame:
    """Training-pair sampling: neg_ratio > 0 keeps at most neg_ratio negatives per positive (random undersampling);
    max_pairs > 0 takes a random subsample stratified by label; oversample_pos > 1 repeats each positive k times.
    The result is shuffled (seeded) when any of them applied; the max_pairs cap is recorded in `caps`
    (lib.data.sampling.record)."""
    rng = np.random.default_rng(seed)
    sampled = False
    if neg_ratio and len(df):
        pos, neg = df[df.label == 1], df[df.label == 0]
        n_neg = min(len(neg), int(round(neg_ratio * max(len(pos), 1))))
        df = pd.concat([pos, neg.sample(n_neg, random_state=seed)])
        sampled = True
    sampling.record(caps, "MAX_TRAIN_PAIRS", max_pairs, len(df), "training pairs")
    if max_pairs and len(df) > max_pairs:
        frac = max_pairs / len(df)
        df = pd.concat([g.sample(max(1, int(round(len(g) * frac))), random_state=seed) for _, g in df.groupby("label")])
        sampled = True
    if oversample_pos > 1 and len(df):
        df = pd.concat([df] + [df[df.label == 1]] * (oversample_pos - 1))
        sampled = True
    if sampled:
        df = df.iloc[rng.permutation(len(df))]
    return df.reset_index(drop=True)[["a", "b", "label"]].astype(int)


def pair_stats(pairs: pd.DataFrame, name: str = "") -> dict:
    pos = int(pairs.label.sum())
    neg = int(len(pairs) - pos)
    return {"set": name, "pairs": int(len(pairs)), "coreferent": pos, "not coreferent": neg,
            "neg:pos": round(neg / pos, 2) if pos else float("nan")}


# ---------------------------------------------------------------- input formats

def context(m: Mention, words: int = 0, marked: bool = False) -> str:
    """The mention's sentence, clipped to `words` words each side of the trigger (0: the whole sentence); with
    `marked` the trigger span (first to last trigger token) is wrapped in <e> ... </e>."""
    toks = m.sentence.split(" ")
    if not m.trigger_pos:
        return f"{m.sentence} <e> {m.trigger} </e>" if marked else m.sentence
    i, j = min(m.trigger_pos), max(m.trigger_pos) + 1
    if marked:
        toks = toks[:i] + ["<e>"] + toks[i:j] + ["</e>"] + toks[j:]
        j += 2
    if words:
        toks = toks[max(0, i - words):j + words]
    return " ".join(toks)


def pair_text(m1: Mention, m2: Mention, style: str = "template", context_words: int = 0) -> tuple[str, str]:
    """(first, second) segments for a cross-encoder; the tokenizer adds [CLS] … [SEP] … [SEP].

    template: the study's `First sentence: {s1} Event trigger: {t1} [SEP] Second sentence: {s2} Event trigger: {t2}`;
    marked: the same with the trigger also marked inside its sentence as `<e> … </e>`.
    context_words > 0 clips each sentence to that many words either side of its trigger (shorter inputs).
    """
    if style not in ("template", "marked"):
        raise LabError(f"FORMAT={style!r}: expected template | marked")
    s1, s2 = (context(m, context_words, style == "marked") for m in (m1, m2))
    return f"First sentence: {s1} Event trigger: {m1.trigger}", f"Second sentence: {s2} Event trigger: {m2.trigger}"


def prompt_text(m1: Mention, m2: Mention, context_words: int = 0) -> str:
    """The study's Yes/No prompt (user turn); context_words > 0 clips the sentences around their triggers."""
    s1, s2 = context(m1, context_words), context(m2, context_words)
    return ("Task: Determine if two event words refer to the same event.\n"
            f"First sentence: {s1}\n"
            f"Event word in first sentence: {m1.trigger}\n"
            f"Second sentence: {s2}\n"
            f"Event word in second sentence: {m2.trigger}\n"
            f"Question: Do the event words {m1.trigger} and {m2.trigger} refer to the same event?\n"
            "Answer only with Yes or No.\n"
            "Answer:")


def chat_prompt(tokenizer, m1: Mention, m2: Mention, answer: str | None = None, context_words: int = 0) -> str:
    """The prompt through the model's chat template; with `answer` ("Yes"/"No") the full training text."""
    msgs = [{"role": "user", "content": prompt_text(m1, m2, context_words)}]
    text = tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return text if answer is None else text + answer
