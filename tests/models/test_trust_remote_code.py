"""Models and tokenizers load with trust_remote_code=False; a repository that needs its own code is a clear error
naming the model, never a prompt (Jupyter) or a bare ValueError (papermill), and its code never runs."""
import json

import pytest
from transformers import AutoConfig, AutoModel

from lib.core.errors import LabError
from lib.models import registry


@pytest.fixture
def custom_code_repo(tmp_path):
    """A model folder whose architecture transformers does not know: its config points at the repository's code."""
    json.dump({"model_type": "labtest_custom", "auto_map": {
        "AutoConfig": "configuration_labtest.LabConfig", "AutoModel": "modeling_labtest.LabModel",
        "AutoTokenizer": ["tokenization_labtest.LabTokenizer", None]}}, (tmp_path / "config.json").open("w"))
    json.dump({"auto_map": {"AutoTokenizer": ["tokenization_labtest.LabTokenizer", None]}},
              (tmp_path / "tokenizer_config.json").open("w"))
    for mod in ("configuration_labtest", "modeling_labtest", "tokenization_labtest"):
        (tmp_path / f"{mod}.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w')\nraise SystemExit('ran')\n")
    return tmp_path


@pytest.mark.parametrize("cls", [AutoConfig, AutoModel])
def test_model_needing_remote_code_is_a_clear_error(custom_code_repo, cls, monkeypatch):
    monkeypatch.setattr("builtins.input", lambda *a: pytest.fail("asked whether to run the repository's code"))
    with pytest.raises(LabError, match=rf"model '{custom_code_repo}' needs its repository's own Python code.*"
                                       r"trust_remote_code=False"):
        registry.load_model(str(custom_code_repo), cls)
    assert not (custom_code_repo / "ran").exists()


def test_tokenizer_needing_remote_code_is_a_clear_error(custom_code_repo):
    with pytest.raises(LabError, match=rf"model '{custom_code_repo}' needs its repository's own Python code"):
        registry.load_tokenizer(str(custom_code_repo))
    assert not (custom_code_repo / "ran").exists()


def test_trust_remote_code_false_is_passed_explicitly(monkeypatch):
    seen = []

    class Fake:
        @classmethod
        def from_pretrained(cls, path, **kw):
            seen.append(kw)
            return cls()
    registry.load_model("all-MiniLM-L6-v2", Fake, num_labels=3)
    registry.load_model("all-MiniLM-L6-v2", Fake, trust_remote_code=True)  # a caller cannot switch it on
    assert seen == [{"num_labels": 3, "trust_remote_code": False}, {"trust_remote_code": False}]
