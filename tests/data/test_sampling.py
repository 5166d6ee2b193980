from lib.data import sampling


def test_cap_one_rule_recorded_never_silent():
    import pandas as pd
    caps = []
    df = pd.DataFrame({"x": range(10)})
    out = sampling.cap(df, 4, "MAX_TRAIN_SAMPLES", seed=0, what="tweets", caps=caps)
    assert len(out) == 4 and list(out.index) == sorted(out.index)          # seeded subset, original order kept
    assert out.equals(sampling.cap(df, 4, "MAX_TRAIN_SAMPLES", seed=0))     # same seed, same rows
    assert sampling.cap(df, 0, "MAX_EVAL_SAMPLES", caps=caps) is df         # 0: all, nothing recorded
    assert len(sampling.cap(df, 50, "MAX_EVAL_SAMPLES", what="tweets", caps=caps)) == 10  # more than exist: all, recorded
    lst = sampling.cap(list("abcdefgh"), 3, "MAX_VAL_SAMPLES", seed=1, what="questions", caps=caps)
    assert len(lst) == 3 and lst == sorted(lst)
    assert caps == ["MAX_TRAIN_SAMPLES=4: 4 of 10 tweets",
                    "MAX_EVAL_SAMPLES=50: all 10 tweets kept (fewer than the cap)",
                    "MAX_VAL_SAMPLES=3: 3 of 8 questions"]
