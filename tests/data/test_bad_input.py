"""Every loader, every kind of damaged file: a LabError naming the file, the line and what was expected.
And the valid variants that editors produce (UTF-8 with a BOM, CRLF line ends) load. Tiny files, no models."""
import json

import pytest

from lib.core.errors import LabError
from lib.data import ecbplus, semeval, sentence_tasks, squad

BOM = b"\xef\xbb\xbf"


def crlf_bom(text: str) -> bytes:
    return BOM + text.replace("\n", "\r\n").encode("utf-8")


def latin1(text: str) -> bytes:
    return text.encode("latin-1")


# ---------------------------------------------------------------- SemEval E-c (TSV)
EC = "\t".join(semeval.HEADER) + "\n" + "21-1\tI love this café\t" + "\t".join("01000100000") + "\n" + \
     "21-2\tso angry\t" + "\t".join("10000000000") + "\n"


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return p


def test_semeval_bom_crlf_loads(tmp_path):
    s = semeval.parse_file(write(tmp_path, "ec.txt", crlf_bom(EC)), labelled=True)
    assert list(s.df["ID"]) == ["21-1", "21-2"] and s.y.sum() == 3
    assert s.df["Tweet"][0] == "I love this café"  # no stray \r or BOM anywhere


@pytest.mark.parametrize("kind, data, match", [
    ("latin1", latin1(EC), r"ec\.txt:2: byte 0xe9 at column 21 is not UTF-8"),
    ("empty", b"", r"ec\.txt:1: empty file"),
    ("columns", EC + "21-3\ttoo few\t0\t1\n", r"ec\.txt:4: expected 13 tab-separated columns"),
    ("truncated", EC[:-10], r"ec\.txt:3: expected 13 tab-separated columns"),
])
def test_semeval_bad_files(tmp_path, kind, data, match):
    with pytest.raises(LabError, match=match):
        semeval.parse_file(write(tmp_path, "ec.txt", data), labelled=True)


# ---------------------------------------------------------------- SQuAD (JSON)
SQ = json.dumps({"version": "1.1", "data": [{"title": "T", "paragraphs": [
    {"context": "Paris is in France.", "qas": [{"id": "q1", "question": "Where is Paris?",
                                                "answers": [{"text": "France", "answer_start": 12}]}]}]}]},
                indent=1)


def test_squad_bom_crlf_loads(tmp_path):
    ex = squad.load_file(write(tmp_path, "dev.json", crlf_bom(SQ)))
    assert ex[0]["answers"]["text"] == ["France"]


@pytest.mark.parametrize("kind, data, match", [
    ("latin1", latin1(SQ.replace("Paris?", "Pàris?")), r"dev\.json:12: byte 0xe0 at column \d+ is not UTF-8"),
    ("empty", b"  \n", r"dev\.json:1: empty file"),
    ("malformed", SQ.replace('"title": "T",', '"title": "T"'), r"dev\.json:6: malformed JSON at column 4: Expecting ',' delimiter"),
    ("truncated", SQ[:120], r"dev\.json:\d+: malformed JSON .*truncated"),
    ("structure", json.dumps({"data": [{"title": "T"}]}), r"article 0: missing 'title' or 'paragraphs'"),
])
def test_squad_bad_files(tmp_path, kind, data, match):
    with pytest.raises(LabError, match=match):
        squad.load_file(write(tmp_path, "dev.json", data))


# ---------------------------------------------------------------- minBERT (TSV with an index column)
STS = "\tid\tsentence1\tsentence2\tsimilarity\n0\ta1\tA man plays.\tA man is playing.\t4.8\n" \
      "1\ta2\tCats sleep.\tThe stock fell.\t0.2\n"


def minbert_dir(tmp_path, data):
    d = tmp_path / "minbert"
    d.mkdir()
    write(d, sentence_tasks.FILES["sts"]["dev"], data)
    return tmp_path


def test_minbert_bom_crlf_loads(tmp_path):
    t = sentence_tasks.read("sts", "dev", minbert_dir(tmp_path, crlf_bom(STS)))
    assert list(t.df["similarity"]) == [4.8, 0.2] and t.df["sentence2"][0] == "A man is playing."


@pytest.mark.parametrize("kind, data, match", [
    ("latin1", latin1(STS.replace("Cats", "Chats à")), r"sts-dev\.csv:3: byte 0xe0 at column \d+ is not UTF-8"),
    ("empty", b"", r"sts-dev\.csv:1: empty file"),
    ("columns", STS + "2\ta3\tonly one sentence\n", r"sts-dev\.csv:4: 3 fields, expected 5"),
    ("truncated", STS[:-12], r"sts-dev\.csv:3: 4 fields, expected 5"),
    ("value", STS.replace("4.8", "high"), r"sts-dev\.csv:2: similarity 'high' is not a number"),
])
def test_minbert_bad_files(tmp_path, kind, data, match):
    with pytest.raises(LabError, match=match):
        sentence_tasks.read("sts", "dev", minbert_dir(tmp_path, data))


# ---------------------------------------------------------------- SICK (TSV, 12 columns)
SICK_HEADER = ("pair_ID\tsentence_A\tsentence_B\tentailment_label\trelatedness_score\tentailment_AB\tentailment_BA\t"
               "sentence_A_original\tsentence_B_original\tsentence_A_dataset\tsentence_B_dataset\tSemEval_set")
SICK = SICK_HEADER + "\n1\tA kid plays\tA child plays\tENTAILMENT\t4.5\tx\ty\ta\tb\tF\tF\tTRAIN\n" \
                     "2\tA dog runs\tA man cooks\tNEUTRAL\t1.0\tx\ty\ta\tb\tF\tF\tTEST\n"


def sick_dir(tmp_path, data):
    (tmp_path / "sick").mkdir()
    write(tmp_path / "sick", "SICK.txt", data)
    return tmp_path


def test_sick_bom_crlf_loads(tmp_path):
    df = sentence_tasks.read_sick(sick_dir(tmp_path, crlf_bom(SICK)))
    assert list(df["similarity"]) == [4.375, 0.0] and list(df["set"]) == ["TRAIN", "TEST"]


@pytest.mark.parametrize("kind, data, match", [
    ("latin1", latin1(SICK.replace("dog", "dög")), r"SICK\.txt:3: byte 0xf6 at column \d+ is not UTF-8"),
    ("empty", b"", r"SICK\.txt:1: empty file"),
    ("columns", SICK + "3\tonly\ttwo\n", r"SICK\.txt:4: 3 tab-separated fields, expected 12"),
    ("truncated", SICK[:-20], r"SICK\.txt:3: \d+ tab-separated fields, expected 12"),
    ("out of range", SICK.replace("\t1.0\t", "\t5.5\t"), r"SICK\.txt:3: relatedness_score 5\.5 is outside SICK's 1-5"),
])
def test_sick_bad_files(tmp_path, kind, data, match):
    with pytest.raises(LabError, match=match):
        sentence_tasks.read_sick(sick_dir(tmp_path, data))


# ---------------------------------------------------------------- ECB+ (XML documents, sentences CSV)
DOC = """<?xml version="1.0" encoding="UTF-8"?>
<Document doc_name="1_1ecb.xml">
<token t_id="1" sentence="0" number="0">Reid</token>
<token t_id="2" sentence="0" number="1">entered</token>
<token t_id="3" sentence="0" number="2">rehab</token>
<Markables>
<ACTION_OCCURRENCE m_id="10"><token_anchor t_id="2"/></ACTION_OCCURRENCE>
<ACTION_OCCURRENCE m_id="11" instance_id="ACT1" />
</Markables>
<Relations>
<CROSS_DOC_COREF r_id="5" note="ACT1"><source m_id="10" /><target m_id="11" /></CROSS_DOC_COREF>
</Relations>
</Document>
"""


def test_ecbplus_doc_bom_crlf_loads(tmp_path):
    d = ecbplus.parse_doc(write(tmp_path, "1_1ecb.xml", crlf_bom(DOC)))
    assert d.tokens["2"] == (0, "entered") and d.cross == {"10": "ACT1"}


@pytest.mark.parametrize("kind, data, match", [
    ("latin1", latin1(DOC.replace("rehab", "réhab")), r"1_1ecb\.xml:5: malformed or truncated XML at column \d+"),
    ("empty", b"", r"1_1ecb\.xml:1: empty file"),
    ("malformed", DOC.replace("</token>\n<token t_id=\"3\"", "\n<token t_id=\"3\""),
     r"1_1ecb\.xml:\d+: malformed or truncated XML at column \d+ \(mismatched tag\)"),
    ("truncated", DOC[:300], r"1_1ecb\.xml:\d+: malformed or truncated XML"),
])
def test_ecbplus_bad_docs(tmp_path, kind, data, match):
    with pytest.raises(LabError, match=match):
        ecbplus.parse_doc(write(tmp_path, "1_1ecb.xml", data))


SENT = "Topic,File,Sentence Number\n1,1ecb,0\n1,1ecbplus,3\n"


def test_ecbplus_sentences_csv(tmp_path):
    assert ecbplus.validated_sentences(write(tmp_path, "s.csv", crlf_bom(SENT))) == {("1_1ecb", 0), ("1_1ecbplus", 3)}
    with pytest.raises(LabError, match=r"s\.csv:4: .*expected Topic,File,Sentence Number"):
        ecbplus.validated_sentences(write(tmp_path, "s.csv", SENT + "1,2ecb\n"))
    with pytest.raises(LabError, match=r"s\.csv:3: byte 0xe9"):
        ecbplus.validated_sentences(write(tmp_path, "s.csv", latin1(SENT.replace("1ecbplus", "é"))))
    with pytest.raises(LabError, match=r"s\.csv:1: empty file"):
        ecbplus.validated_sentences(write(tmp_path, "s.csv", b""))
