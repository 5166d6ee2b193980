"""The studies' prediction functions on N ranks, for the multiprocess tier: run as `python tests/predict_job.py OUT`
(one process) or under `torchrun --nproc_per_node 2` (two); each spreads its batches over the ranks
(lib.core.distributed.distributed_map). The main process writes every result to OUT (pickle), to be compared with
the one-process run: the same numbers, in the same order. Embedded models (MiniLM, SmolLM2), untrained heads.
$LAB_PRECISION (default fp32) sets the prediction precision (lib.core.precision)."""
import os
import pickle
import sys

import ddp_job
import numpy as np
import pandas as pd
import torch

from lib.core import precision
from lib.models import decoders, encoders, multitask_bert, qa, registry

TWEETS = ["I am so happy today!", "Why does this always happen to me, I hate it", "ok", "Scared of the exam #nervous",
          "love you all so much <3", "what a waste of time", "can't wait for the weekend!!", "meh."]
LABELS = ["anger", "joy", "fear"]


def main(out: str):
    from accelerate import PartialState
    state = PartialState(cpu=True)
    precision.configure(os.environ.get("LAB_PRECISION", "fp32"))
    torch.manual_seed(0)
    res = {}
    tok, model = encoders.create_and_prepare_model("all-MiniLM-L6-v2", n_labels=3)
    res["encoder_logits"] = encoders.predict_logits(model.eval(), tok, encoders.Encoded(tok, TWEETS), batch_size=3)
    torch.manual_seed(0)
    mt = multitask_bert.build_model("all-MiniLM-L6-v2", dropout=0.0).eval()
    res["multitask_embed"] = multitask_bert.embed_all(mt, TWEETS, batch_size=3)
    pairs = pd.DataFrame({"s1": TWEETS[:5], "s2": TWEETS[3:], "y": [0, 1, 0, 1, 1]})
    res["multitask_para"] = multitask_bert.predict(mt, "para", pairs, batch_size=2)
    from transformers import AutoModelForQuestionAnswering
    torch.manual_seed(0)
    qm = registry.load_model("all-MiniLM-L6-v2", AutoModelForQuestionAnswering).eval()
    feats = [dict(tok(q, c, truncation=True, max_length=48), start_positions=1, end_positions=2)
             for q, c in zip(TWEETS[:5], TWEETS[3:])]
    res["qa"] = qa.predict_logits(qm, tok, feats, batch_size=2)
    from transformers import AutoModelForCausalLM
    dtok = decoders.prepare_tokenizer(registry.load_tokenizer(registry.INSTRUCT), "left")
    dm = registry.load_model(registry.INSTRUCT, AutoModelForCausalLM, dtype=torch.float32).eval()
    res["generated"] = decoders.generate_answers(dm, dtok, TWEETS[:5], LABELS, batch_size=2, max_new_tokens=3,
                                                 scores=True)
    res["processes"] = state.num_processes
    if state.is_main_process:
        with open(out, "wb") as f:
            pickle.dump(res, f)
    ddp_job.end(state)  # the group torn down, the interpreter's teardown skipped (tests/ddp_job.py says why)


if __name__ == "__main__":
    np.set_printoptions(precision=6)
    main(sys.argv[1])
