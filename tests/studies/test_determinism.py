"""Same seed, same numbers: notebook 04 (ECB+) computed with an empty model cache and again from a warm one, each in
its own process under another string-hash seed (PYTHONHASHSEED), must give every headline number to the digit.

The fast test runs 04's library path (mention embeddings, first stage, chains, CoNLL) on three ECB+ topics; the
notebook-level test runs 04's smoke profile twice and is opt-in (LAB_SMOKE_TWICE=1): measured here 19.5 min cold
and 18.0 min warm on a shared 2-core machine (8.5 and 5.0 CPU minutes), too slow for CI.
"""
import json
import os
import subprocess
import sys

import pytest

from lib.core import paths

ROOT = paths.ROOT

# train topic 1, dev topic 2, test topic 36: the library path of notebook 04 on ~3% of the corpus
_PIPELINE = r"""
import json, sys
import numpy as np
from lib.studies import cdec, first_stage
from lib.evaluation import coref_metrics
from lib.data import ecbplus
from lib.core import paths
cached = list((paths.cache_dir() / "cdec").glob("*.npz"))
mentions = ecbplus.load_mentions(sys.argv[1], topics=[1, 2, 36])
ms = {sp: [m for m in mentions if m.split == sp] for sp in ("train", "dev", "test")}
pairs = {sp: ecbplus.build_pairs(ms[sp], same_subtopic=True) for sp in ms}
emb = first_stage.embeddings_for("all-MiniLM-L6-v2", ms)
fs = first_stage.first_stage(ms, pairs, emb, recall=0.8, seed=42)
gold = {sp: cdec.gold_chains(ms[sp]) for sp in ("dev", "test")}
chains, choice = cdec.chain_systems(ms, pairs, gold["dev"], {"first stage (ranker)": fs.kept_scores}, fs.scores,
                                    fs.keep)
chains["same-head-lemma baseline"] = cdec.lemma_chains(ms["test"])
out = {"warm": bool(cached), "threshold": fs.threshold, "choice": choice,
       "table": fs.table.reset_index().to_dict("records"),
       "conll": {k: coref_metrics.conll(gold["test"], c) for k, c in chains.items()},
       "scores": {sp: [float(x) for x in s] for sp, s in fs.scores.items()},
       "embeddings": {sp: {k: [float(x) for x in v.ravel()] for k, v in e.items()} for sp, e in emb.items()}}
print(json.dumps(out))
"""


def _run(code: list[str], cache, hash_seed: int, timeout: int, **env) -> subprocess.CompletedProcess:
    """`code` run from the repository root with its own model cache and string-hash seed (plus `env`)."""
    env = {**os.environ, "LAB_CACHE": str(cache), "PYTHONHASHSEED": str(hash_seed), "HF_HUB_OFFLINE": "1", **env}
    proc = subprocess.run(code, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def test_cdec_library_path_same_cold_and_warm_under_other_hash_seeds(data_dir, tmp_path):
    cold, warm = (json.loads(_run([sys.executable, "-c", _PIPELINE, str(data_dir)], tmp_path, seed, 900)
                             .stdout.splitlines()[-1]) for seed in (1, 2))
    assert not cold.pop("warm") and warm.pop("warm"), "the second run should read the first run's embedding cache"
    assert warm == cold  # every embedding, score, threshold, dev choice and CoNLL number, exactly
    assert cold["conll"]["first stage (ranker)"]["CoNLL_F1"] > 0


def _headline(out) -> dict:
    (metrics,) = out.glob("04_cdec/*/metrics.json")
    return json.loads(metrics.read_text())["headline"]


@pytest.mark.skipif(os.environ.get("LAB_SMOKE_TWICE") != "1",
                    reason="04's smoke twice takes ~20-40 min on 2 cores; set LAB_SMOKE_TWICE=1 to run it")
def test_notebook_04_smoke_same_cold_and_warm_under_other_hash_seeds(data_dir, tmp_path):
    cache = tmp_path / "cache"
    runs = {}
    for name, seed in (("cold", 1), ("warm", 2)):
        out = tmp_path / name
        _run([sys.executable, "-m", "lib.running.runner", "--profile", "smoke", "--only", "04_cdec", "--data-dir",
              str(data_dir)], cache, seed, 3600, LAB_OUTPUTS=str(out))
        runs[name] = _headline(out)
    assert runs["cold"] and runs["warm"] == runs["cold"]
