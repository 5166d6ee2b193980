"""Parameter checking (unknown names fail loudly, types, allowed values, profiles) and notebook hygiene."""
import json

import papermill as pm
import pytest

from lib.core import paths
from lib.core.errors import LabError
from lib.running import params, profiles

NOTEBOOKS = sorted(paths.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def test_unknown_parameter_fails_with_suggestion():
    with pytest.raises(LabError, match=r"unknown parameter\(s\): BATCH_SIZ \(did you mean BATCH_SIZE\b"):
        params.resolve({"BATCH_SIZ": 3}, "01_ffnn")


def test_type_and_allowed_values_checked():
    with pytest.raises(LabError, match="should be a int"):
        params.resolve({"BATCH_SIZE": "ten", "PROFILE": "cpu"}, "01_ffnn")
    with pytest.raises(LabError, match=r"SPLIT='random' is not one of \['kfold', 'dev'\]"):
        params.resolve({"SPLIT": "random", "PROFILE": "cpu"}, "01_ffnn")
    with pytest.raises(LabError, match="PROFILE='fast'"):
        params.resolve({"PROFILE": "fast"}, "01_ffnn")


def test_profile_presets_fill_defaults_but_explicit_values_win():
    defaults, _ = params.parameters_cell("01_ffnn")
    smoke = profiles.presets("01_ffnn", "smoke")
    assert smoke, "the smoke profile must shrink the FFNN run"
    P = params.resolve({"PROFILE": "smoke"}, "01_ffnn")
    assert all(P[k] == ({**defaults[k], **v} if isinstance(v, dict) else v) for k, v in smoke.items())
    P = params.resolve({"PROFILE": "smoke", "MAX_TRAIN_SAMPLES": 123}, "01_ffnn")
    assert P.MAX_TRAIN_SAMPLES == 123
    P = params.resolve({"PROFILE": "cpu"}, "01_ffnn")
    assert P.TRAINING == defaults["TRAINING"] and P.PROFILE == "cpu"
    assert params.resolve({}, "01_ffnn").PROFILE in ("cpu", "gpu")  # auto resolves


def test_every_preset_and_run_names_real_parameters():
    for profile, runs in profiles.RUNS.items():
        for nb, run, extra in runs:
            defaults, _ = params.parameters_cell(nb)
            assert set(extra) <= set(defaults), f"{profile}:{nb}/{run} passes unknown {set(extra) - set(defaults)}"
            assert set(profiles.presets(nb, profile)) <= set(defaults)
            params.resolve({"PROFILE": profile, **extra}, nb)  # types and allowed values of presets + run


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_committed_clean(nb):
    data = json.loads(nb.read_text())
    for c in data["cells"]:
        if c["cell_type"] == "code":
            assert not c.get("outputs") and c.get("execution_count") is None, f"{nb.name} has outputs"
    tagged = [c for c in data["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    defaults, _ = params.parameters_cell(nb)
    # papermill must read every parameter (a comment with '=' breaks its parser) and every line needs a comment
    assert set(pm.inspect_notebook(str(nb))) == set(defaults)
    for line in "".join(tagged[0]["source"]).splitlines():
        assert "#" in line, f"{nb.name}: parameter line without a comment: {line}"
    first_code = next(c for c in data["cells"] if c["cell_type"] == "code")
    assert 'if "google.colab" in sys.modules' in "".join(first_code["source"]), "Colab-only install cell first"


def test_explicit_value_equal_to_default_still_wins_over_profile():
    """`-p PROFILE cpu -p CLASS_WEIGHT_POWER 1.0` (1.0 = the notebook's default) must use 1.0, not the cpu preset's."""
    defaults, _ = params.parameters_cell("02_encoders")
    cpu = profiles.presets("02_encoders", "cpu")
    knob = "CLASS_WEIGHT_POWER"
    assert cpu[knob] != defaults[knob]  # otherwise the test proves nothing
    assert params.resolve({"PROFILE": "cpu", knob: defaults[knob]}, "02_encoders")[knob] == defaults[knob]
    assert params.resolve({"PROFILE": "cpu"}, "02_encoders")[knob] == cpu[knob]
    qa_default, _ = params.parameters_cell("05_qa")
    P = params.resolve({"PROFILE": "gpu", "DATA_SOURCE": qa_default["DATA_SOURCE"]}, "05_qa")
    assert P.DATA_SOURCE == qa_default["DATA_SOURCE"] != profiles.presets("05_qa", "gpu")["DATA_SOURCE"]


def test_setup_reads_the_names_papermill_injected(tmp_path):
    """In a papermill run the notebook's globals hold defaults and injected values alike; the injected cell in the
    kernel's input history says which were given."""
    defaults, _ = params.parameters_cell("02_encoders")
    knob = "CLASS_WEIGHT_POWER"  # the cpu preset changes it
    injected = f"# Parameters\nPROFILE = \"cpu\"\n{knob} = {defaults[knob]}\nOUTPUT_DIR = \"{tmp_path}\"\n"
    assert params.injected_names({"In": ["", "import lib", injected]}) == {"PROFILE", knob, "OUTPUT_DIR"}
    assert params.injected_names({"In": ["", "x = 1"]}) is None
    ns = {**defaults, "PROFILE": "cpu", "OUTPUT_DIR": str(tmp_path), "In": ["", injected]}
    assert params.setup(ns, "02_encoders")[knob] == defaults[knob]
    ns = {**defaults, "PROFILE": "cpu", "OUTPUT_DIR": str(tmp_path), "In": ["", "# Parameters\nPROFILE = \"cpu\"\n"]}
    assert params.setup(ns, "02_encoders")[knob] == profiles.presets("02_encoders", "cpu")[knob]
    # interactive (no injected cell): a value edited in the parameters cell wins, untouched ones follow the profile
    ns = {**defaults, "PROFILE": "cpu", "OUTPUT_DIR": str(tmp_path), "MAX_LENGTH": 99}
    P = params.setup(ns, "02_encoders")
    assert P.MAX_LENGTH == 99 and P[knob] == profiles.presets("02_encoders", "cpu")[knob]


def test_max_knobs_mean_one_thing_in_every_notebook():
    """MAX_TRAIN_SAMPLES: training examples; MAX_VAL_SAMPLES: the validation set that picks checkpoints/thresholds
    when it is separate; MAX_EVAL_SAMPLES: every labelled set whose scores are reported; MAX_TEST_SAMPLES:
    unlabelled test rows predicted. Each parameter comment says so."""
    words = {"MAX_TRAIN_SAMPLES": "training", "MAX_VAL_SAMPLES": "validation", "MAX_EVAL_SAMPLES": "reported",
             "MAX_TEST_SAMPLES": "test"}
    for nb in NOTEBOOKS:
        cell = next(c for c in json.loads(nb.read_text())["cells"]
                    if "parameters" in c.get("metadata", {}).get("tags", []))
        for line in "".join(cell["source"]).splitlines():
            name = line.split("=")[0].strip()
            if name in words:
                assert words[name] in line.partition("#")[2], f"{nb.name}: {line}"


# ---------------------------------------------------------------- dict parameters (04's DECODER, 06's SIMCSE, ...)

def test_dict_parameter_merges_a_partial_value_over_its_default():
    defaults, _ = params.parameters_cell("04_cdec")
    P = params.resolve({"PROFILE": "gpu", "DECODER": {"lr": 0.0005}}, "04_cdec")
    assert P.DECODER["lr"] == 0.0005
    assert P.DECODER["model"] == profiles.presets("04_cdec", "gpu")["DECODER"]["model"]  # the preset's key
    assert P.DECODER["lora_r"] == defaults["DECODER"]["lora_r"]                          # the default's key
    assert set(P.DECODER) == set(defaults["DECODER"])


def test_dict_parameter_explicit_keys_win_over_the_preset_key_by_key():
    """cpu sets DECODER lr 1e-3 and batch_size 4: lr given explicitly (even equal to the default) wins, batch_size
    follows the profile."""
    defaults, _ = params.parameters_cell("04_cdec")
    cpu = profiles.presets("04_cdec", "cpu")["DECODER"]
    assert cpu["lr"] != defaults["DECODER"]["lr"]  # otherwise the test proves nothing
    P = params.resolve({"PROFILE": "cpu", "DECODER": {"lr": defaults["DECODER"]["lr"]}}, "04_cdec")
    assert P.DECODER["lr"] == defaults["DECODER"]["lr"] and P.DECODER["batch_size"] == cpu["batch_size"]
    assert P.DECODER["max_steps"] == cpu["max_steps"]
    # the same run not naming DECODER: the whole preset applies
    P = params.resolve({"PROFILE": "cpu", "DECODER": defaults["DECODER"]}, "04_cdec", explicit={"PROFILE"})
    assert P.DECODER == {**defaults["DECODER"], **cpu}


def test_dict_parameter_unknown_key_fails_with_suggestion():
    with pytest.raises(LabError, match=r"parameter DECODER has no key\(s\) lora_rank \(did you mean lora_r\?\)"):
        params.resolve({"PROFILE": "cpu", "DECODER": {"lora_rank": 8}}, "04_cdec")
    with pytest.raises(LabError, match=r"SIMCSE has no key\(s\) temp \(did you mean temperature\?\).*Known keys"):
        params.resolve({"PROFILE": "cpu", "SIMCSE": {"temp": 0.1}}, "06_multitask")


def test_dict_parameter_types_and_allowed_values_checked_per_key():
    with pytest.raises(LabError, match=r"DECODER\['lora_r'\]='sixteen' should be a int like its default 16"):
        params.resolve({"PROFILE": "cpu", "DECODER": {"lora_r": "sixteen"}}, "04_cdec")
    with pytest.raises(LabError, match=r"DECODER=.Qwen.*should be a dict"):
        params.resolve({"PROFILE": "cpu", "DECODER": "Qwen/Qwen2.5-0.5B-Instruct"}, "04_cdec")
    with pytest.raises(LabError, match=r"TRAINING\['scheduler'\]='step' is not one of \['linear', 'cosine'"):
        params.resolve({"PROFILE": "cpu", "TRAINING": {"scheduler": "step"}}, "03_qlora_decoders")
    P = params.resolve({"PROFILE": "cpu", "LORA": {"lr": 1}}, "05_qa")  # an int where a float is expected is fine
    assert P.LORA["lr"] == 1


def test_dict_parameter_in_a_preset_is_checked(monkeypatch):
    monkeypatch.setitem(profiles.PRESETS["04_cdec"], "cpu", {"DECODER": {"lr_decoder": 0.1}})
    with pytest.raises(LabError, match=r"lib/running/profiles.py preset cpu: .*DECODER has no key\(s\) lr_decoder"):
        params.resolve({"PROFILE": "cpu"}, "04_cdec")


def test_dict_parameter_edited_interactively_sets_only_the_edited_keys(tmp_path):
    """In Jupyter (no papermill cell) the globals hold the whole edited dict: only the keys that differ from the
    default count as set, the others follow the profile."""
    defaults, _ = params.parameters_cell("04_cdec")
    smoke = profiles.presets("04_cdec", "smoke")["DECODER"]
    assert "lora_r" not in smoke and smoke["max_steps"] != defaults["DECODER"]["max_steps"]
    edited = {**defaults["DECODER"], "lora_r": 4}
    assert params.edited_keys(edited, defaults["DECODER"]) == {"lora_r": 4}
    ns = {**defaults, "PROFILE": "smoke", "OUTPUT_DIR": str(tmp_path), "DECODER": edited}
    P = params.setup(ns, "04_cdec")
    assert P.DECODER == {**defaults["DECODER"], **smoke, "lora_r": 4}
    assert ns["DECODER"] == edited  # the notebook's own globals are left as they were


def test_every_dict_parameter_key_documented():
    """Each key of a dict parameter has its comment line (`#   key: ...`) above the parameter; MAX_* keys follow the
    notebooks' cap words (see test_max_knobs_mean_one_thing_in_every_notebook)."""
    found = 0
    for nb in NOTEBOOKS:
        defaults, _ = params.parameters_cell(nb)
        docs = params.key_docs(nb)
        for name, default in defaults.items():
            if isinstance(default, dict):
                found += 1
                missing = set(default) - set(docs[name])
                assert not missing, f"{nb.name}: {name} keys without a comment line above it: {sorted(missing)}"
                if "max_test_samples" in default:
                    assert "test" in docs[name]["max_test_samples"]
    assert found >= 8


def test_tiny_caps_a_dict_parameter_key_by_key():
    from lib.running import tiny
    assert tiny._cap({"max_steps": 0, "lr": 0.1, "rescore_dev": 100}, {"max_steps": 2, "rescore_dev": 16}) == \
        {"max_steps": 2, "lr": 0.1, "rescore_dev": 16}


# ---------------------------------------------------------------- notebooks read as reports

MAX_NOTEBOOK_LOGIC, MAX_CELL_LOGIC = 120, 30


def logic_lines(nb_path) -> list[int]:
    """Per code cell (set-up and parameters cells included): lines that are neither blank nor pure comments."""
    cells = [c for c in json.loads(nb_path.read_text())["cells"] if c["cell_type"] == "code"]
    return [sum(1 for line in "".join(c["source"]).splitlines() if line.strip() and not line.strip().startswith("#"))
            for c in cells]


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_code_stays_a_few_calls_into_lib(nb):
    """Issue 13: a notebook reads as a report; its logic lives in lib/ (with unit tests)."""
    cells = logic_lines(nb)
    assert sum(cells) <= MAX_NOTEBOOK_LOGIC, f"{nb.name}: {sum(cells)} logic lines > {MAX_NOTEBOOK_LOGIC}: {cells}"
    assert max(cells) <= MAX_CELL_LOGIC, f"{nb.name}: a cell of {max(cells)} logic lines > {MAX_CELL_LOGIC}: {cells}"


def test_logic_line_counter_counts_what_it_should(tmp_path):
    p = tmp_path / "x.ipynb"
    p.write_text(json.dumps({"cells": [
        {"cell_type": "markdown", "source": ["a\n", "b"]},
        {"cell_type": "code", "source": ["# comment\n", "\n", "x = 1  # trailing\n", "    # indented\n", "y = 2"]},
        {"cell_type": "code", "source": "z = 3\n"}]}))
    assert logic_lines(p) == [2, 1]


def test_seed_everything_leaves_the_rngs_where_transformers_set_seed_does():
    import random

    import numpy as np
    import sklearn.model_selection  # noqa: F401 - imported before both seedings: its import draws from `random`
    import torch
    from transformers import set_seed

    from lib.training.seeding import seed_everything
    draws = []
    for seeder in (seed_everything, set_seed):
        seeder(7)
        draws.append((random.random(), float(np.random.rand()), float(torch.rand(1))))
        random.random(), torch.rand(3)  # move the states on, so the second seeding must reset them
    assert draws[0] == draws[1]


# ---------------------------------------------------------------- every name checked as given; read-only result

@pytest.mark.parametrize("name, hint", [("seed", r"\(did you mean SEED"), ("Seed", r"\(did you mean SEED"),
                                        ("max_train_samples", r"\(did you mean MAX_TRAIN_SAMPLES"),
                                        ("epochs", r"\(a key of TRAINING=\{'epochs': \.\.\.\}\?\)"),
                                        ("lr", r"\(a key of TRAINING=\{'lr': \.\.\.\}\?\)")])
def test_injected_name_in_any_case_is_checked(tmp_path, name, hint):
    """papermill -p epochs 1 injects `epochs = 1`: an unknown name whatever its case, not a silent default run."""
    defaults, _ = params.parameters_cell("01_ffnn")
    injected = f"# Parameters\nPROFILE = \"cpu\"\n{name} = 1\nOUTPUT_DIR = \"{tmp_path}\"\n"
    ns = {**defaults, "PROFILE": "cpu", "OUTPUT_DIR": str(tmp_path), name: 1, "In": ["", injected]}
    with pytest.raises(LabError, match=rf"unknown parameter\(s\): {name} {hint}"):
        params.setup(ns, "01_ffnn")


def test_names_papermill_injects_itself_are_not_parameters(tmp_path):
    """`papermill --inject-paths` adds PAPERMILL_INPUT_PATH / PAPERMILL_OUTPUT_PATH to the injected cell."""
    defaults, _ = params.parameters_cell("01_ffnn")
    injected = (f"# Parameters\nPROFILE = \"smoke\"\nOUTPUT_DIR = \"{tmp_path}\"\nPAPERMILL_INPUT_PATH = \"in.ipynb\"\n"
                "PAPERMILL_OUTPUT_PATH = \"out.ipynb\"\n")
    ns = {**defaults, "PROFILE": "smoke", "OUTPUT_DIR": str(tmp_path), "PAPERMILL_INPUT_PATH": "in.ipynb",
          "PAPERMILL_OUTPUT_PATH": "out.ipynb", "In": ["", injected]}
    P = params.setup(ns, "01_ffnn")
    assert P.PROFILE == "smoke" and "PAPERMILL_INPUT_PATH" not in P


def test_unknown_name_lists_the_close_matches():
    with pytest.raises(LabError, match=r"max_sample \(did you mean MAX_\w+_SAMPLES or MAX_\w+_SAMPLES"):
        params.resolve({"max_sample": 3}, "05_qa")


def test_lower_case_globals_of_an_interactive_session_are_not_parameters(tmp_path):
    defaults, _ = params.parameters_cell("01_ffnn")
    ns = {**defaults, "PROFILE": "smoke", "OUTPUT_DIR": str(tmp_path), "os": object(), "x": 1, "_": None}
    assert params.setup(ns, "01_ffnn").PROFILE == "smoke"


def test_papermill_lower_case_parameter_stops_the_run(tmp_path):
    """End to end, as the issue reports it: `papermill ... -p weight_step 0.5` (07 only resolves its parameters in
    its first cells) fails at the set-up cell naming the parameter, instead of running with the default."""
    with pytest.raises(pm.PapermillExecutionError, match=r"unknown parameter\(s\): weight_step \(did you mean "
                                                         r"WEIGHT_STEP\?\)"):
        pm.execute_notebook(str(paths.NOTEBOOKS / "07_emotion_ensemble.ipynb"), str(tmp_path / "out.ipynb"),
                            cwd=str(paths.NOTEBOOKS), progress_bar=False, kernel_name="python3",
                            parameters={"PROFILE": "smoke", "OUTPUT_DIR": str(tmp_path / "run"), "weight_step": 0.5})


def test_resolved_parameters_are_read_only():
    P = params.resolve({"PROFILE": "cpu"}, "05_qa")
    writes = [lambda: P.__setitem__("STRIDE", 1), lambda: setattr(P, "STRIDE", 1), lambda: P.update(STRIDE=1),
              lambda: P.pop("STRIDE"), lambda: P.setdefault("NEW", 1), lambda: P.__delitem__("STRIDE"),
              lambda: P.LORA.__setitem__("r", 1), lambda: P.LORA.update({"r": 1}), lambda: P.METHODS.append("x"),
              lambda: P.LORA["targets"].append("dense"), lambda: P.clear()]
    for write in writes:
        with pytest.raises(params.ReadOnlyParameters, match="read-only"):
            write()
    with pytest.raises(params.ReadOnlyParameters, match=r"parameter STRIDE: the resolved parameters are read-only"):
        P["STRIDE"] = 1
    assert P.STRIDE == params.resolve({"PROFILE": "cpu"}, "05_qa").STRIDE and "NEW" not in P


def test_read_only_parameters_still_read_copy_pickle_and_serialise_as_before():
    import copy
    import pickle
    P = params.Params({"LORA": {"r": 8, "targets": ["query"]}, "METHODS": ["full"]}, out="o", meta={"t0": 1})
    P.meta["caps"] = ["a cap"]  # run facts stay writable
    assert json.loads(json.dumps(P)) == {"LORA": {"r": 8, "targets": ["query"]}, "METHODS": ["full"]}
    mine = {**P.LORA, "r": 4}  # a caller's changed copy
    assert mine == {"r": 4, "targets": ["query"]} and P.LORA["r"] == 8
    assert P.METHODS + ["lora"] == ["full", "lora"]
    back = pickle.loads(pickle.dumps(P))
    assert back == P and back.out == "o" and back.meta == P.meta
    with pytest.raises(params.ReadOnlyParameters):
        back.LORA["r"] = 1
    deep = copy.deepcopy(P)
    assert deep == P and isinstance(deep, params.Params)
    with pytest.raises(params.ReadOnlyParameters):
        deep["LORA"] = {}


def test_library_code_never_writes_into_the_parameters():
    """No `P[...] = `, `P.X = ` or `P.X[...] = ` in lib/ (decoders.py once set P["THRESHOLDS"]): a value a function
    changes is passed on or returned explicitly."""
    import ast
    offenders = []
    for path in sorted(paths.ROOT.glob("lib/**/*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, (ast.AugAssign, ast.AnnAssign)) else []
            for t in targets:
                base = t
                while isinstance(base, (ast.Subscript, ast.Attribute)):
                    base = base.value
                if base is not t and isinstance(base, ast.Name) and base.id == "P" and not (
                        isinstance(t, ast.Subscript) and isinstance(t.value, ast.Attribute) and t.value.attr == "meta"):
                    offenders.append(f"{path.relative_to(paths.ROOT)}:{node.lineno}")
    assert not offenders, offenders


def test_generative_answers_are_scored_with_fixed_thresholds_without_touching_the_parameters():
    from lib.studies import emotion_decoders as decoders
    P = params.resolve({"PROFILE": "cpu", "MODE": "generative", "LABEL_SCORES": "answers"}, "03_qlora_decoders")
    assert decoders.threshold_mode(P) == "fixed" and P.THRESHOLDS == "per_class"
    P = params.resolve({"PROFILE": "cpu", "MODE": "generative"}, "03_qlora_decoders")
    assert decoders.threshold_mode(P) == "per_class"
    P = params.resolve({"PROFILE": "cpu", "LABEL_SCORES": "answers", "THRESHOLDS": "global"}, "03_qlora_decoders")
    assert decoders.threshold_mode(P) == "global"  # classifier mode: LABEL_SCORES does not apply


TRAINING_NOTEBOOKS = ["01_ffnn", "02_encoders", "03_qlora_decoders", "04_cdec", "05_qa", "06_multitask"]


@pytest.mark.parametrize("nb", TRAINING_NOTEBOOKS)
def test_every_training_notebook_takes_resume_checkpoints_and_tracking(nb, tmp_path):
    defaults, allowed = params.parameters_cell(nb)
    assert {"RESUME", "CHECKPOINT_EVERY", "CHECKPOINT_DIR", "TRACK"} <= defaults.keys()
    assert allowed["TRACK"] == ["", "tensorboard", "mlflow"]
    ns = {**defaults, "PROFILE": "smoke", "OUTPUT_DIR": str(tmp_path / "run"), "CHECKPOINT_EVERY": 3,
          "TRACK": "tensorboard", "In": ["", "# Parameters\nPROFILE = \"smoke\"\nCHECKPOINT_EVERY = 3\n"
                                              "TRACK = \"tensorboard\"\n"]}
    P = params.setup(ns, nb)
    run = {k: P.TRAINING[k] for k in ("checkpoint_dir", "save_every", "resume", "track", "track_dir")}
    assert run == {"checkpoint_dir": str(tmp_path / "run" / "checkpoints"), "save_every": 3, "resume": True,
                   "track": "tensorboard", "track_dir": str(tmp_path / "run" / "tracking")}
    P = params.setup({**defaults, "PROFILE": "smoke", "OUTPUT_DIR": str(tmp_path / "run")}, nb)
    assert P.TRAINING["checkpoint_dir"] == "" and not P.TRAINING["resume"]  # no checkpoints: nothing to resume
    with pytest.raises(LabError, match=r"CHECKPOINT_EVERY=-1: expected 0 \(no checkpoints\)"):
        params.resolve({"PROFILE": "smoke", "CHECKPOINT_EVERY": -1}, nb)


def test_how_a_run_is_made_is_not_part_of_its_cache_key():
    from lib.running import runkey
    base = runkey.cache_key("01_ffnn", {"PROFILE": "smoke"}, "")["params"]
    other = runkey.cache_key("01_ffnn", {"PROFILE": "smoke", "RESUME": False, "CHECKPOINT_EVERY": 7,
                                         "CHECKPOINT_DIR": "/elsewhere", "TRACK": "mlflow"}, "")["params"]
    assert base == other and "RESUME" not in base
    assert runkey.cache_key("01_ffnn", {"PROFILE": "smoke", "SEED": 1}, "")["params"] != base  # a result-changer


def test_the_gpu_profile_checkpoints_and_tiny_runs_save_every_step():
    for nb in TRAINING_NOTEBOOKS[1:]:
        assert profiles.presets(nb, "gpu")["CHECKPOINT_EVERY"] == profiles.GPU_CHECKPOINT_EVERY
        assert "CHECKPOINT_EVERY" not in profiles.presets(nb, "cpu")  # minutes-long runs: no checkpoints
    from lib.running import tiny
    assert all(tiny.CAPS[nb]["CHECKPOINT_EVERY"] == 1 for nb in TRAINING_NOTEBOOKS[1:])
