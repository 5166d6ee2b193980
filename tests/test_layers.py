"""The library's layers: every import inside lib/ points down (or within its own subpackage), never up."""
import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib"
# bottom to top; a module may import its own subpackage and any subpackage of a lower rank
LAYERS = ["core", "data", "evaluation", "models", "training", "reporting", "studies", "running"]
RANK = {name: i for i, name in enumerate(LAYERS)}
SAME_RANK = {"data": "evaluation", "evaluation": "data"}  # neither imports the other today; both sit on core


def lib_imports(path: Path):
    """(line, imported subpackage) for every `lib.X...` import in one file, top-level or inside functions."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "lib":
            parts = node.module.split(".")
            targets = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
            for t in targets:
                yield node.lineno, t
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == "lib" and len(parts) > 1:
                    yield node.lineno, parts[1]


def test_every_module_sits_in_a_layer():
    flat = [p.name for p in LIB.glob("*.py") if p.name != "__init__.py"]
    assert flat == [], f"modules outside the layers: {flat}"
    assert sorted(p.name for p in LIB.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(LAYERS)


@pytest.mark.parametrize("layer", LAYERS)
def test_imports_point_down(layer):
    wrong = []
    for path in sorted((LIB / layer).glob("*.py")):
        for line, target in lib_imports(path):
            if target not in RANK:
                wrong.append(f"{path.relative_to(LIB.parent)}:{line} imports lib.{target}, which is no layer")
            elif RANK[target] > RANK[layer] and SAME_RANK.get(layer) != target:
                wrong.append(f"{path.relative_to(LIB.parent)}:{line} ({layer}) imports lib.{target}, a layer above it")
    assert wrong == [], "\n".join(wrong)


def test_the_checker_sees_an_upward_import(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from lib.studies import emotion\n")
    assert list(lib_imports(bad)) == [(2, "studies")]
