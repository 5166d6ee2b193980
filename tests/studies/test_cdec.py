"""Cross-document event coreference: ECB+ parsing, pair building, coreference metrics by hand, clustering."""
import numpy as np
import pandas as pd
import pytest
import torch

from lib.core.errors import LabError
from lib.data import ecbplus as E
from lib.evaluation import coref_metrics as C

torch.set_num_threads(1)


def _tokens(sentences):
    """[(sentence, [words])] -> token elements with consecutive t_ids starting at 1."""
    out, t = [], 1
    for s, words in sentences:
        for n, w in enumerate(words):
            out.append(f'<token t_id="{t}" sentence="{s}" number="{n}">{w}</token>')
            t += 1
    return "\n".join(out)


def _doc(name, sentences, markables, relations):
    mk = "\n".join(f'<{tag} m_id="{m}" >' + "".join(f'<token_anchor t_id="{t}"/>' for t in ts) + f"</{tag}>"
                   for tag, m, ts in markables)
    return (f'<Document doc_name="{name}.xml" doc_id="X">\n{_tokens(sentences)}\n<Markables>\n{mk}\n'
            f'<ACTION_OCCURRENCE m_id="99" RELATED_TO="" TAG_DESCRIPTOR="t1_blast" instance_id="ACT1" />\n'
            f"</Markables>\n<Relations>\n{relations}\n</Relations>\n</Document>\n")


@pytest.fixture()
def tiny(tmp_path):
    """Topic 1: two ecb documents and one ecbplus document.

    1_1ecb:     s0 "A bomb exploded in Paris ."  exploded(m1, ACT1)  Paris(m2, LOC)  bomb(m3, NON_HUMAN)
                s1 "Two people were killed ."    killed(m4, no relation -> singleton)
    1_2ecb:     s0 "The blast left two dead ."   blast(m1, ACT1)     dead(m2, INTRA r5 with m3)
                s1 "Both died on Monday ."       died(m3, INTRA r5)  Monday(m4, TIME)
    1_3ecbplus: s0 "http://x"  s1 "An explosion hit Paris ."  explosion(m1, ACT1)
                s2 "Police came ."  came(m2, singleton; sentence 2 is NOT validated)
    Validated sentences: 1_1ecb 0,1; 1_2ecb 0,1; 1_3ecbplus 1.
    """
    root = tmp_path / "ecbplus"
    (root / "ECB+" / "1").mkdir(parents=True)
    cross = '<CROSS_DOC_COREF r_id="1" note="ACT1"><source m_id="{}" /><target m_id="99" /></CROSS_DOC_COREF>'
    d1 = _doc("1_1ecb", [(0, "A bomb exploded in Paris .".split()), (1, "Two people were killed .".split())],
              [("ACTION_OCCURRENCE", 1, [3]), ("LOC_GEO", 2, [5]), ("NON_HUMAN_PART", 3, [2]),
               ("ACTION_OCCURRENCE", 4, [10])], cross.format(1))
    d2 = _doc("1_2ecb", [(0, "The blast left two dead .".split()), (1, "Both died on Monday .".split())],
              [("ACTION_OCCURRENCE", 1, [2]), ("ACTION_OCCURRENCE", 2, [5]), ("ACTION_OCCURRENCE", 3, [8]),
               ("TIME_DATE", 4, [10])],
              cross.format(1) + '\n<INTRA_DOC_COREF r_id="5"><source m_id="2" /><target m_id="3" /></INTRA_DOC_COREF>')
    d3 = _doc("1_3ecbplus", [(0, ["http://x"]), (1, "An explosion hit Paris .".split()), (2, "Police came .".split())],
              [("ACTION_OCCURRENCE", 1, [3]), ("ACTION_OCCURRENCE", 2, [8])], cross.format(1))
    for name, text in (("1_1ecb", d1), ("1_2ecb", d2), ("1_3ecbplus", d3)):
        (root / "ECB+" / "1" / f"{name}.xml").write_text(text)
    (root / E.SENTENCES_CSV).write_text("Topic,File,Sentence Number\n1,1ecb,0\n1,1ecb,1\n1,2ecb,0\n1,2ecb,1\n1,3ecbplus,1")
    return tmp_path


def test_parse_tiny_document(tiny):
    ms = E.load_mentions(tiny)
    by = {m.mid: m for m in ms}
    assert sorted(by) == ["1_1ecb:1", "1_1ecb:4", "1_2ecb:1", "1_2ecb:2", "1_2ecb:3", "1_3ecbplus:1"]
    m = by["1_1ecb:1"]
    assert (m.trigger, m.sentence, m.topic, m.sub_corpus, m.chain, m.split) == \
        ("exploded", "A bomb exploded in Paris .", 1, "ecb", "ACT1", "train")
    assert m.participants == ["bomb"] and m.locations == ["Paris"] and m.times == []
    assert by["1_2ecb:3"].times == ["Monday"]
    assert by["1_2ecb:2"].chain == by["1_2ecb:3"].chain == "INTRA:1_2ecb:5"
    assert by["1_1ecb:4"].chain == "SINGLETON:1_1ecb:4"
    assert by["1_3ecbplus:1"].sub_corpus == "ecbplus" and by["1_3ecbplus:1"].subtopic == "1_ecbplus"
    # every sentence when asked: the unvalidated "came" comes back
    assert len(E.load_mentions(tiny, all_sentences=True)) == 7
    assert E.context(m, 0, marked=True) == "A bomb <e> exploded </e> in Paris ."


def test_pairs_tiny(tiny):
    ms = E.load_mentions(tiny)
    p = E.build_pairs(ms)
    # 6 mentions: C(6,2) = 15 pairs, minus same-document pairs: 1_1ecb C(2,2)=1, 1_2ecb C(3,2)=3 -> 11.
    assert len(p) == 11
    assert all(ms[a].doc != ms[b].doc for a, b in zip(p.a, p.b))
    # positives: the three ACT1 mentions are in 3 different documents -> C(3,2) = 3 pairs.
    assert p.label.sum() == 3
    assert {frozenset((ms[a].mid, ms[b].mid)) for a, b, y in zip(p.a, p.b, p.label) if y} == \
        {frozenset(x) for x in [("1_1ecb:1", "1_2ecb:1"), ("1_1ecb:1", "1_3ecbplus:1"), ("1_2ecb:1", "1_3ecbplus:1")]}
    # same sub-topic only: the ecb documents (2 + 3 mentions, cross-doc) -> 2*3 = 6 pairs, 1 positive.
    ps = E.build_pairs(ms, same_subtopic=True)
    assert (len(ps), ps.label.sum()) == (6, 1)
    # oversampling 3x: 8 negatives + 3*3 positives = 17
    po = E.build_pairs(ms, oversample_pos=3)
    assert (len(po), po.label.sum()) == (17, 9)
    # undersampling negatives to 1 per positive: 3 positives + 3 negatives
    pu = E.build_pairs(ms, neg_ratio=1.0)
    assert (len(pu), pu.label.sum()) == (6, 3)
    st = E.pair_stats(p)
    assert (st["coreferent"], st["not coreferent"], st["neg:pos"]) == (3, 8, 2.67)


def test_pairs_dedup():
    def mk(mid, doc, trig, sent, chain):
        return E.Mention(mid, doc, 1, "ecb", "1_ecb", "ACTION_OCCURRENCE", trig, 0, sent, chain, "train")
    # documents B and C carry the identical sentence+trigger: pairs (A,B) and (A,C) are redundant.
    ms = [mk("a", "A", "hit", "X hit Y .", "c1"), mk("b", "B", "struck", "Z struck .", "c1"),
          mk("c", "C", "struck", "Z struck .", "c1")]
    assert len(E.build_pairs(ms)) == 3                # (a,b) (a,c) (b,c)
    assert len(E.build_pairs(ms, dedup=True)) == 2    # (a,c) duplicates (a,b); (b,c) is kept


def test_input_formats(tiny):
    ms = E.load_mentions(tiny)
    a, b = E.pair_text(ms[0], ms[2])
    assert a == "First sentence: A bomb exploded in Paris . Event trigger: exploded"
    assert b.startswith("Second sentence: The blast left two dead . Event trigger: blast")
    a, _ = E.pair_text(ms[0], ms[2], "marked")
    assert "<e> exploded </e>" in a
    t = E.prompt_text(ms[0], ms[2])
    assert t.startswith("Task: Determine if two event words refer to the same event.\nFirst sentence: A bomb")
    assert "Question: Do the event words exploded and blast refer to the same event?\nAnswer only with Yes or No.\nAnswer:" in t
    with pytest.raises(LabError):
        E.pair_text(ms[0], ms[2], "nope")


def test_bad_xml(tmp_path):
    (tmp_path / "ECB+" / "3").mkdir(parents=True)
    bad = tmp_path / "ECB+" / "3" / "3_1ecb.xml"
    bad.write_text('<Document doc_name="3_1ecb.xml"><token t_id="1" sentence="0" number="0">A</tok')
    with pytest.raises(LabError, match="3_1ecb.xml.*malformed or truncated XML"):
        E.load_corpus(tmp_path)


def test_missing_token_ids(tmp_path):
    (tmp_path / "ECB+" / "3").mkdir(parents=True)
    (tmp_path / "ECB+" / "3" / "3_1ecb.xml").write_text(
        _doc("3_1ecb", [(0, ["A", "b"])], [("ACTION_OCCURRENCE", 7, [1, 42])], ""))
    docs = E.load_corpus(tmp_path)
    with pytest.raises(LabError, match=r"3_1ecb.xml:m_id=7: token ids \['42'\]"):
        E.event_mentions(docs)


# ---------------------------------------------------------------- metrics, worked by hand

# Pradhan et al. (2014), Figure/Table example: key {a,b,c} {d,e,f,g}; response {a,b} {c,d} {f,g,h,i}
KEY = {"a": 1, "b": 1, "c": 1, "d": 2, "e": 2, "f": 2, "g": 2}
RESP = {"a": 1, "b": 1, "c": 2, "d": 2, "f": 3, "g": 3, "h": 3, "i": 3}


def test_muc_pradhan_example():
    # Recall: K1={a,b,c} is split by the response into {a,b},{c} -> 3-2 = 1;
    #         K2={d,e,f,g} into {d},{e}(unaligned, alone),{f,g} -> 4-3 = 1;  R = (1+1)/((3-1)+(4-1)) = 2/5
    # Precision: R1={a,b} -> 1 part -> 1; R2={c,d} -> {c},{d} -> 0; R3={f,g,h,i} -> {f,g},{h},{i} -> 1;
    #            P = (1+0+1)/((2-1)+(2-1)+(4-1)) = 2/5
    r = C.muc(KEY, RESP)
    assert r["R"] == pytest.approx(0.4) and r["P"] == pytest.approx(0.4) and r["F1"] == pytest.approx(0.4)


def test_muc_vilain_example():
    # Vilain et al. 1995: key {A,B,C,D}, response {A,B},{C,D}: R = (4-2)/(4-1) = 2/3; P = (1+1)/(1+1) = 1
    r = C.muc({x: 0 for x in "ABCD"}, {"A": 0, "B": 0, "C": 1, "D": 1})
    assert r["R"] == pytest.approx(2 / 3) and r["P"] == pytest.approx(1.0) and r["F1"] == pytest.approx(0.8)


def test_b_cubed_pradhan_example():
    # Recall = 1/7 * sum_K sum_R |K∩R|^2/|K| = 1/7 * [(2²+1²)/3 + (1²+2²)/4] = 1/7 * (5/3 + 5/4) = 35/84
    # Precision = 1/8 * sum_R sum_K |K∩R|^2/|R| = 1/8 * [2²/2 + (1²+1²)/2 + 2²/4] = 1/8 * (2 + 1 + 1) = 1/2
    # (h and i are in no key cluster: they add 0 to the numerator and 2 to the 8 response mentions)
    r = C.b_cubed(KEY, RESP)
    assert r["R"] == pytest.approx(35 / 84) and r["P"] == pytest.approx(0.5)
    assert r["F1"] == pytest.approx(2 * (35 / 84) * 0.5 / (35 / 84 + 0.5))


def test_ceaf_e_pradhan_example():
    # phi4(K,R) = 2|K∩R|/(|K|+|R|): K1-R1 = 4/5 = 0.8, K1-R2 = 2/5, K2-R2 = 2/6, K2-R3 = 4/8 = 0.5, others 0.
    # Best one-to-one alignment: K1-R1 + K2-R3 = 1.3 (vs 0.4+0.5 or 0.8+1/3).
    # R = 1.3 / 2 key entities = 0.65;  P = 1.3 / 3 response entities = 0.4333
    r = C.ceaf_e(KEY, RESP)
    assert r["R"] == pytest.approx(0.65) and r["P"] == pytest.approx(1.3 / 3)
    assert r["F1"] == pytest.approx(2 * 0.65 * (1.3 / 3) / (0.65 + 1.3 / 3))


def test_conll_is_mean_and_perfect_is_one():
    r = C.conll(KEY, RESP)
    assert r["CoNLL_F1"] == pytest.approx((r["MUC"]["F1"] + r["B3"]["F1"] + r["CEAF_e"]["F1"]) / 3)
    same = C.conll(KEY, dict(KEY))
    assert all(same[k]["F1"] == pytest.approx(1.0) for k in ("MUC", "B3", "CEAF_e"))
    # all singletons vs all singletons: MUC has no links (0/0 -> 0), B3 and CEAF-e are perfect
    single = {x: x for x in "abc"}
    r = C.conll(single, single)
    assert r["MUC"]["F1"] == 0.0 and r["B3"]["F1"] == pytest.approx(1.0) and r["CEAF_e"]["F1"] == pytest.approx(1.0)


def test_clustering():
    ms = ["m0", "m1", "m2", "m3"]
    a, b, s = [0, 1, 0, 2], [1, 2, 2, 3], [0.9, 0.8, 0.1, 0.2]
    cc = C.connected_components(ms, a, b, s, 0.5)
    # links 0-1 (0.9) and 1-2 (0.8) chain m0,m1,m2 together; m3 alone
    assert cc["m0"] == cc["m1"] == cc["m2"] != cc["m3"]
    # average link: {m0,m1} at 0.9; then {m0,m1} vs m2 averages (0.1+0.8)/2 = 0.45 < 0.5 -> not merged
    ag = C.agglomerative(ms, a, b, s, 0.5)
    assert ag["m0"] == ag["m1"] and ag["m2"] != ag["m0"] and ag["m3"] != ag["m2"]
    # at threshold 0.4 the average 0.45 passes; m3 vs {m0,m1,m2}: (0+0+0.2)/3 < 0.4 (unscored pairs = fill 0)
    ag = C.agglomerative(ms, a, b, s, 0.4)
    assert ag["m0"] == ag["m1"] == ag["m2"] != ag["m3"]


def test_lemma_baseline():
    assert [C.lemma(w) for w in ["arrested", "arrests", "stopped", "died", "injuries", "seized", "told"]] == \
        ["arrest", "arrest", "stop", "die", "injury", "seize", "tell"]
    assert C.head_word("checked into") == "checked" and C.head_word("was killed") == "killed"
    r = C.lemma_baseline(["x", "y", "z"], ["arrested", "arrest", "arrested"], [1, 1, 2])
    assert r["x"] == r["y"] != r["z"]


def test_real_corpus(data_dir):
    docs = E.load_corpus(data_dir / "ecbplus")
    assert len(docs) == 982 and len({d.topic for d in docs}) == 43
    ms = E.event_mentions(docs, E.validated_sentences(data_dir / "ecbplus" / E.SENTENCES_CSV))
    assert {m.split for m in ms} == {"train", "dev", "test"}
    assert {m.topic for m in ms if m.split == "test"} == set(range(36, 46))


# ---------------------------------------------------------------- model-side helpers (no model needed)

def test_threshold_and_pair_helpers():
    import numpy as np
    import pandas as pd

    from lib.studies import cdec
    y = np.array([1, 1, 0, 0, 1])
    s = np.array([0.9, 0.6, 0.7, 0.1, 0.3])
    # at 0.5: predicted {0,1,2}: tp 2, fp 1, fn 1 -> F1 = 2*2/(3+3) = 2/3
    assert cdec.coref_f1(y, s, 0.5) == pytest.approx(2 / 3)
    # at <= 0.3: predicted {0,1,2,4}: tp 3 -> F1 = 6/(4+3) = 6/7, the best on the grid (first reached at 0.11)
    t, f1 = cdec.best_threshold(y, s)
    assert f1 == pytest.approx(6 / 7) and 0.1 < t <= 0.3
    big = pd.DataFrame({"a": range(100), "b": range(100), "label": [1] * 10 + [0] * 90})
    sub = cdec.stratified_sample(big, 20, seed=0)
    assert (len(sub), sub.label.sum()) == (20, 2)


def test_pair_scores_put_each_probability_at_its_pair_index():
    """Batches arrive out of order (length-sorted); the scores land at each pair's own index. Hand-worked logits:
    cross-encoder softmax([0, log 3]) -> 0.75; decoder softmax over {Yes, No} of [log 1, log 4] -> P(Yes) 0.2."""
    import math
    from types import SimpleNamespace

    import torch

    from lib.models import pair_scorers

    class Batches(list):
        labels = [0, 0, 0]
        yes, no = 5, 7

    batches = Batches([{"input_ids": torch.zeros(2, 3, dtype=torch.long), "attention_mask": torch.ones(2, 3),
                        "labels": torch.zeros(2), "index": torch.tensor([2, 0])},
                       {"input_ids": torch.zeros(1, 3, dtype=torch.long), "attention_mask": torch.ones(1, 3),
                        "labels": torch.zeros(1), "index": torch.tensor([1])}])

    class Cross(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, input_ids, attention_mask):
            n = input_ids.shape[0]
            return SimpleNamespace(logits=torch.tensor([[0.0, math.log(3)]] * n))

    class Decoder(Cross):
        def forward(self, input_ids, attention_mask, logits_to_keep):
            logits = torch.zeros(input_ids.shape[0], 1, 10)
            logits[:, :, 5], logits[:, :, 7] = math.log(1), math.log(4)
            return SimpleNamespace(logits=logits)

    assert np.allclose(pair_scorers.cross_scores(Cross(), batches), [0.75, 0.75, 0.75])
    assert np.allclose(pair_scorers.decoder_scores(Decoder(), batches), [0.2, 0.2, 0.2])


# ---------------------------------------------------------------- first stage and cascade (hand-worked)

def _mention(mid, doc, trigger, sentence, pos, chain, tag="ACTION_OCCURRENCE", args=()):
    return E.Mention(mid=mid, doc=doc, topic=1, sub_corpus="ecb", subtopic="1_ecb", tag=tag, trigger=trigger,
                     sentence_idx=0, sentence=sentence, chain=chain, split="train", participants=list(args),
                     trigger_pos=pos)


def test_context_window_and_marking():
    m = _mention("d1:1", "d1", "exploded", "A big red bomb exploded in central Paris today .", [4], "c")
    assert E.context(m, 0) == m.sentence
    assert E.context(m, 2) == "red bomb exploded in central"
    assert E.context(m, 1, marked=True) == "bomb <e> exploded </e> in"
    assert E.pair_text(m, m, "template", 1)[0] == "First sentence: bomb exploded in Event trigger: exploded"
    assert "First sentence: bomb exploded in\n" in E.prompt_text(m, m, 1)


def test_pair_features_by_hand():
    """Three mentions in three documents: m0 'bombing' / m1 'bombed' (same lemma 'bomb', coreferent),
    m2 'blast'. Hand-worked values of the non-embedding features."""
    import pandas as pd

    from lib.studies import first_stage
    ms = [_mention("d1:1", "d1", "bombing", "The bombing shook Paris", [1], "A", args=["Paris"]),
          _mention("d2:1", "d2", "bombed", "Rebels bombed Paris", [1], "A", args=["Paris", "Rebels"]),
          _mention("d3:1", "d3", "blast", "A blast shook London", [1], "B", tag="NEG_ACTION_OCCURRENCE")]
    pairs = pd.DataFrame({"a": [0, 0, 1], "b": [1, 2, 2], "label": [1, 0, 0]})
    counts = first_stage.lemma_pair_counts(ms, pairs)
    assert counts == {("bomb", "bomb"): (1, 1), ("blast", "bomb"): (0, 2)}
    emb = {k: np.eye(3) for k in ("trigger", "context", "sentence")}  # orthogonal: every cosine is 0
    x = first_stage.pair_features(ms, pairs, emb, counts)
    f = {name: x[:, i] for i, name in enumerate(first_stage.FEATURES)}
    assert f["same_lemma"].tolist() == [1, 0, 0]
    assert f["lemma_pair_rate"] == pytest.approx([(1 + 0.1) / 2, 0.1 / 3, 0.1 / 3])
    # content lemmas: {bomb, shook, pari} vs {rebel, bomb, pari}: 2 shared of 4; vs {blast, shook, london}: 1 of 5
    assert f["sentence_overlap"] == pytest.approx([2 / 4, 1 / 5, 0 / 6])
    assert f["argument_overlap"] == pytest.approx([1 / 2, 0, 0])
    assert f["same_tag"].tolist() == [1, 0, 0] and f["context_cos"].tolist() == [0, 0, 0]
    # training pairs: their own topic's counts leave the rate (all three pairs are topic 1 -> no evidence left)
    by_topic = first_stage.lemma_pair_counts_by_topic(ms, pairs)
    assert by_topic == {1: counts}
    own = first_stage.pair_features(ms, pairs, emb, counts, by_topic)[:, first_stage.FEATURES.index("lemma_pair_rate")]
    assert own == pytest.approx([0.1, 0.1, 0.1])
    # with a second topic's counts in the totals, only those remain: (bomb, bomb) seen 3 times, twice coreferent
    both = {k: (v[0] + 2 * (k == ("bomb", "bomb")), v[1] + 3 * (k == ("bomb", "bomb"))) for k, v in counts.items()}
    own = first_stage.pair_features(ms, pairs, emb, both, by_topic)[:, first_stage.FEATURES.index("lemma_pair_rate")]
    assert own == pytest.approx([(2 + 0.1) / 4, 0.1, 0.1])


def test_threshold_for_recall_and_recall_curve():
    from lib.studies import first_stage
    y = np.array([1, 0, 1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.6, 0.5, 0.2, 0.1])
    # positives scored 0.9, 0.6, 0.2: keeping 2/3 of them needs threshold 0.6; all of them 0.2
    assert first_stage.threshold_for_recall(y, s, 0.6) == 0.6 and first_stage.threshold_for_recall(y, s, 1.0) == -np.inf
    assert first_stage.threshold_for_recall(y, s, 0.9) == 0.2
    c = first_stage.recall_curve(y, s, shares=(0.5, 1.0))
    assert c["recall"].tolist() == pytest.approx([2 / 3, 1.0]) and c["pairs kept"].tolist() == [3, 6]
    mask = np.array([True, True, False, True, True, False])
    assert first_stage.keep_top(mask, s, 2).tolist() == [True, True, False, False, False, False]
    assert first_stage.keep_top(mask, s, 0).tolist() == mask.tolist()


def test_cascade_helpers():
    from lib.studies import cdec
    sub = np.array([True, True, True, False])
    got = cdec.score_subset(4, sub, lambda idx: np.array([0.5, 0.7, 0.9])[: len(idx)])
    assert got.tolist() == pytest.approx([0.5, 0.7, 0.9, 0.0])
    # blend: 0.75 * model + 0.25 * first stage on the subset, 0 elsewhere
    assert cdec.blend([0.8, 0.4, 0, 1], [0.4, 0.8, 0, 1], 0.75, sub).tolist() == pytest.approx([0.7, 0.5, 0, 0])
    # band: the 2 scored pairs nearest 0.6 are 0.5 and 0.7 (|0.1| each), not 0.9
    assert cdec.uncertain_band(got, sub, 0.6, 2).tolist() == [True, True, False, False]
    # rescale: 0.2 -> 0.5 at the threshold, halfway points map halfway
    assert cdec.rescale([0.0, 0.1, 0.2, 0.6, 1.0], 0.2, 0.5).tolist() == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])
    assert cdec.degenerate(0.02, cdec.THRESHOLD_GRID) and not cdec.degenerate(0.4, cdec.THRESHOLD_GRID)
    t = cdec.pair_comparison([1, 1, 0, 0], {"m": ([0.9, 0.1, 0.8, 0.2], 0.5)}, {"study": (0.8, 0.6, 0.69)})
    # predicted {0, 2}: tp 1 -> P 1/2, R 1/2, F1 1/2, accuracy 2/4
    assert t.loc["m", ["precision", "recall", "F1", "accuracy"]].tolist() == pytest.approx([0.5, 0.5, 0.5, 0.5])
    assert t.loc["study", "F1"] == 0.69


def test_tune_chains_picks_the_dev_best_threshold():
    """Two documents' mentions m0-m1 corefer (score 0.9), m2 is apart (0.2, 0.3). On the grid {0.1, 0.5} only 0.5
    separates them (at 0.1 all merge): CoNLL 1.0 at 0.5."""
    import pandas as pd

    from lib.studies import cdec
    ms = [_mention("d1:1", "d1", "a", "a", [0], "X"), _mention("d2:1", "d2", "a", "a", [0], "X"),
          _mention("d3:1", "d3", "b", "b", [0], "Y")]
    pairs = pd.DataFrame({"a": [0, 0, 1], "b": [1, 2, 2], "label": [1, 0, 0]})
    gold = cdec.gold_chains(ms)
    name, t, table = cdec.tune_chains(ms, pairs, gold, {"good": np.array([0.9, 0.2, 0.3])}, grid=[0.1, 0.5])
    assert (name, t) == ("good", 0.5) and table["dev CoNLL F1"].max() == pytest.approx(1.0)


def test_sample_pairs():
    import pandas as pd
    df = pd.DataFrame({"a": range(10), "b": range(10), "label": [1, 1] + [0] * 8})
    assert E.sample_pairs(df).equals(df)  # nothing asked: unchanged, unshuffled
    out = E.sample_pairs(df, neg_ratio=2, oversample_pos=3, seed=1)
    assert (len(out), int(out.label.sum())) == (2 * 3 + 4, 6)
    caps = []  # the MAX_TRAIN_PAIRS cap is recorded for the report card, stratified: 5 of 10 keeps 1 of the 2 positives
    out = E.sample_pairs(df, max_pairs=5, seed=1, caps=caps)
    assert (len(out), int(out.label.sum())) == (5, 1) and caps == ["MAX_TRAIN_PAIRS=5: 5 of 10 training pairs"]


def test_mention_embeddings_are_cached_and_contextual(tmp_path, monkeypatch):
    """The embedded MiniLM on three mentions: unit vectors; the same trigger word in two sentences gets one
    'trigger' vector but two 'context' vectors; a second call reads the disk cache without loading the model."""
    from lib.models import registry
    from lib.studies import first_stage
    monkeypatch.setenv("LAB_CACHE", str(tmp_path))
    ms = {"x": [_mention("d1:1", "d1", "fired", "The company fired its chief executive .", [2], "A"),
                _mention("d2:1", "d2", "fired", "Troops fired rockets at the town .", [1], "B"),
                _mention("d3:1", "d3", "dismissed", "The board dismissed the chief executive .", [2], "A")]}
    e = first_stage.embeddings_for("all-MiniLM-L6-v2", ms)["x"]
    for v in e.values():
        assert v.shape[0] == 3 and np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert np.allclose(e["trigger"][0], e["trigger"][1], atol=1e-6)
    assert e["context"][0] @ e["context"][1] < 0.99
    monkeypatch.setattr(registry, "load_model", lambda *a, **k: (_ for _ in ()).throw(AssertionError("not cached")))
    again = first_stage.embeddings_for("all-MiniLM-L6-v2", ms)["x"]
    assert all(np.array_equal(again[k], e[k]) for k in e)


# ---------------------------------------------------------------- notebook 04's report (hand-made inputs)

def _conll(f, b3=None):
    return {"CoNLL_F1": f, "B3": {"F1": f if b3 is None else b3}}


def _history(steps, evals, best_step):
    from types import SimpleNamespace
    return SimpleNamespace(optimizer_steps=steps, evals=[{"step": s} for s in evals], best={"step": best_step})


def _cross_encoder(history, n_train=100, n_coref=30, batch_size=8):
    from lib.studies import cdec
    return cdec.CrossEncoder(model=None, history=history, batches=None, n_train=n_train, n_coref=n_coref,
                             batch_size=batch_size, eval_batch_size=16, size={"total": 1234})


def test_cross_encoder_summary_counts_presentations():
    from lib.studies import cdec  # noqa: F401
    ce = _cross_encoder(_history(5, [5], 5))
    assert ce.seen == 40  # 5 steps x 8 < 100 pairs
    assert _cross_encoder(_history(20, [20], 10)).seen == 100  # more than an epoch: every pair once
    assert ce.summary("m") == ("m: 1,234 parameters; 5 steps x 8 = 40 presentations of 100 training pairs "
                               "(30 coreferent incl. oversampling); best at step 5")


def test_cross_encoder_scores_only_candidates():
    """The model scores the candidate pairs, batched by `batches`; the pruned ones get 0."""
    from types import SimpleNamespace

    from lib.studies import cdec
    pairs = {"dev": pd.DataFrame({"a": [0, 1, 2], "b": [1, 2, 0], "label": [1, 0, 1]})}
    seen = []

    def batches(sp, pp, batch_size, sort_by_length):
        seen.append((sp, list(pp.a), batch_size, sort_by_length))
        return SimpleNamespace(pp=pp)
    ce = cdec.CrossEncoder(None, None, batches, 3, 2, 8, 16)
    import unittest.mock as mock
    with mock.patch.object(cdec, "cross_scores", lambda model, b: np.array([0.9, 0.4])[:len(b.pp)]):
        out = ce.score(pairs, {"dev": np.array([True, False, True])}, splits=("dev",))
    assert np.allclose(out["dev"], [0.9, 0.0, 0.4]) and seen == [("dev", [0, 2], 16, True)]


def _report_inputs(decoder=True):
    from types import SimpleNamespace
    first = pd.DataFrame([{"split": "test", "pairs": 1000, "kept": 200, "share kept": 0.2, "coreferent": 50,
                           "coreferent kept": 40, "recall": 0.8}]).set_index("split")
    conll = {"first stage (ranker)": _conll(0.70), "cross-encoder": _conll(0.80),
             "cross-encoder alone (weight 1)": _conll(0.78), "same-head-lemma baseline": _conll(0.75, b3=0.74)}
    rows = [{"system": "first stage (ranker)", "F1": 0.3}, {"system": "cross-encoder", "F1": 0.6}]
    dc = None
    if decoder:
        conll["decoder cascade"] = _conll(0.75)
        rows.append({"system": "decoder cascade", "F1": 0.5})
        dc = SimpleNamespace(history=_history(7, [7], 7), pairs_seen=28, band={"test": np.array([True, True, False])},
                             threshold=0.02)
    return first, conll, pd.DataFrame(rows).set_index("system"), dc


def test_headline_and_notes_hand_made():
    from lib.studies import cdec
    first, conll, table, dc = _report_inputs()
    ce = _cross_encoder(_history(5, [3, 5], 5))
    headline, notes = cdec.headline_and_notes(first, conll, table, ce, True, 1000, 60, dc)
    assert headline == {"first_stage_recall": 0.8, "first_stage_share": 0.2, "first_stage_conll_f1": 0.70,
                        "lemma_conll_f1": 0.75, "lemma_b3_f1": 0.74, "cross_coref_f1": 0.6, "cross_conll_f1": 0.80,
                        "cross_alone_conll_f1": 0.78, "decoder_coref_f1": 0.5, "decoder_conll_f1": 0.75}
    assert notes[:4] == ["first stage (ranker): CoNLL F1 0.700 vs same-head-lemma baseline 0.750 -> does NOT beat it",
                         "cross-encoder: CoNLL F1 0.800 vs same-head-lemma baseline 0.750 -> beats it",
                         "cross-encoder alone (weight 1): CoNLL F1 0.780 vs same-head-lemma baseline 0.750 -> beats it",
                         "decoder cascade: CoNLL F1 0.750 vs same-head-lemma baseline 0.750 -> does NOT beat it"]
    assert notes[4] == "cross-encoder: 5 steps, 40 presentations of 100 first-stage training pairs"
    assert notes[5] == ("test metrics use all 1,000 test pairs and 60 mentions; the models scored the first stage's "
                        "200 candidates (20.0% of pairs, recall ceiling 0.800)")
    assert "still rising" in notes[7]  # best at the last evaluation
    assert notes[8].startswith("decoder: 7 LoRA steps on 28 pairs; re-scored the 2 test candidates")
    assert notes[8].endswith("so its cascade rows are the cross-encoder's")  # threshold 0.02: on the grid's edge


def test_headline_and_notes_without_decoder_and_a_model_that_did_not_learn():
    from lib.studies import cdec
    first, conll, table, _ = _report_inputs(decoder=False)
    headline, notes = cdec.headline_and_notes(first, conll, table, _cross_encoder(_history(5, [3, 5], 3)), False,
                                              1000, 60)
    assert "decoder_coref_f1" not in headline and not any(n.startswith("decoder:") for n in notes)
    assert any(n.startswith("the cross-encoder's dev threshold is degenerate: it did not learn; cross-encoder: 5")
               for n in notes)
    assert not any("still rising" in n for n in notes)  # best at step 3, last evaluation at 5


def test_first_stage_curves_table_by_hand():
    """4 dev pairs, 2 coreferent: the ranker ranks both first (recall 1 at half the pairs kept); same_lemma ties."""
    from types import SimpleNamespace

    from lib.studies import first_stage
    y = np.array([1, 0, 1, 0])
    feats = np.zeros((4, len(first_stage.FEATURES)))
    feats[:, first_stage.FEATURES.index("same_lemma")] = [1, 1, 0, 0]
    fs = SimpleNamespace(scores={"dev": np.array([0.9, 0.1, 0.8, 0.2])}, features={"dev": feats},
                         table=pd.DataFrame([{"split": "dev", "share kept": 0.5, "recall": 1.0}]).set_index("split"))
    table, fig = first_stage.first_stage_curves(fs, y)
    assert list(table.columns) == ["ranker (all features)", "same head lemma", "trigger-in-context cosine",
                                   "trigger cosine"]
    assert table.loc[0.5, "ranker (all features)"] == 1.0 and table.loc[0.5, "same head lemma"] == 0.5
    assert fig.axes


def test_lemma_chains_group_by_subtopic_and_lemma():
    from lib.studies import cdec
    ms = [_mention("d1:1", "d1", "bombing", "s", [0], "c1"), _mention("d2:1", "d2", "bombed", "s", [0], "c1"),
          _mention("d3:1", "d3", "attack", "s", [0], "c2")]
    ch = cdec.lemma_chains(ms)
    assert ch["d1:1"] == ch["d2:1"] != ch["d3:1"]
