"""SQuAD v1.1: load and validate the official JSON (local dev file or the hub's rajpurkar/squad), split by article
(subsampling: lib.data.sampling.cap). An example is a dict: id, title, context, question, answers {text: [...],
answer_start: [...]}."""
from __future__ import annotations

import json
import random
from pathlib import Path

from lib.core import paths, stages
from lib.core.errors import LabError, read_text

DEV_FILE = "squad_v1.1/dev-v1.1.json"


def parse(data, source: str = "<squad>") -> list[dict]:
    """SQuAD JSON object -> flat examples {id, title, context, question, answers: {text: [...], answer_start: [...]}}.

    Raises LabError naming the question id (or the article / paragraph) for a missing field or an answer whose
    `answer_start` does not point at its `text` in the context."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise LabError(f"{source}: expected a JSON object with a 'data' list of articles (SQuAD v1.1 format)")
    out, seen = [], set()
    for ai, art in enumerate(data["data"]):
        if not isinstance(art, dict) or "title" not in art or not isinstance(art.get("paragraphs"), list):
            raise LabError(f"{source}: article {ai}: missing 'title' or 'paragraphs'; expected {{title, paragraphs}}")
        for pi, par in enumerate(art["paragraphs"]):
            if not isinstance(par, dict) or not isinstance(par.get("context"), str) or not isinstance(par.get("qas"), list):
                raise LabError(f"{source}: article {art['title']!r} paragraph {pi}: missing 'context' or 'qas'")
            ctx = par["context"]
            for qi, qa in enumerate(par["qas"]):
                qid = qa.get("id") if isinstance(qa, dict) else None
                where = f"{source}: question {qid}" if qid else f"{source}: article {art['title']!r} paragraph {pi} question {qi}"
                if not qid:
                    raise LabError(f"{where}: missing field 'id'; expected id, question, answers")
                for f in ("question", "answers"):
                    if f not in qa:
                        raise LabError(f"{where}: missing field {f!r}; expected id, question, answers")
                if qid in seen:
                    raise LabError(f"{where}: duplicate question id")
                seen.add(qid)
                if not isinstance(qa["answers"], list) or not qa["answers"]:
                    raise LabError(f"{where}: 'answers' must be a non-empty list of {{text, answer_start}}")
                texts, starts = [], []
                for a in qa["answers"]:
                    if not isinstance(a, dict) or "text" not in a or "answer_start" not in a:
                        raise LabError(f"{where}: an answer lacks 'text' or 'answer_start'")
                    s, t = a["answer_start"], a["text"]
                    if not isinstance(s, int) or ctx[s:s + len(t)] != t:
                        raise LabError(f"{where}: answer_start {s!r} does not match answer text {t!r} "
                                       f"(context there reads {ctx[s:s + len(t)] if isinstance(s, int) else ''!r})")
                    texts.append(t)
                    starts.append(s)
                out.append({"id": qid, "title": art["title"], "context": ctx, "question": qa["question"],
                            "answers": {"text": texts, "answer_start": starts}})
    return out


@stages.timed("load")
def load_file(path) -> list[dict]:
    path = Path(path)
    text = read_text(path, "the official SQuAD v1.1 JSON (dev-v1.1.json)")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        cut = " (the file ends early: truncated?)" if e.pos >= len(text.rstrip()) else ""
        raise LabError(f"{path}:{e.lineno}: malformed JSON at column {e.colno}: {e.msg}{cut}; "
                       "expected the official SQuAD v1.1 JSON") from None
    return parse(data, str(path))


def load_dev(data_dir: str = "") -> list[dict]:
    return load_file(paths.data_dir(data_dir) / DEV_FILE)


@stages.timed("load")
def load_hub() -> tuple[list[dict], list[dict]]:
    """The official train and dev sets from the hub (datasets.load_dataset('squad')); gpu profile only."""
    import datasets
    ds = datasets.load_dataset("squad")
    conv = lambda split: [{"id": r["id"], "title": r["title"], "context": r["context"], "question": r["question"],
                           "answers": {"text": list(r["answers"]["text"]),
                                       "answer_start": list(r["answers"]["answer_start"])}} for r in split]
    return conv(ds["train"]), conv(ds["validation"])


def split_by_article(examples: list[dict], eval_articles: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Seeded split by article title: `eval_articles` whole articles go to the evaluation part, the rest to training,
    so no article (and no context) appears in both."""
    titles = sorted({e["title"] for e in examples})
    if not 0 < eval_articles < len(titles):
        raise LabError(f"ARTICLES: {eval_articles} articles held out: expected between 1 and {len(titles) - 1} "
                       f"(there are {len(titles)} articles)")
    rng = random.Random(seed)
    ev = set(rng.sample(titles, eval_articles))
    return [e for e in examples if e["title"] not in ev], [e for e in examples if e["title"] in ev]
