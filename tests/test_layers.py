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


def _undefined_names(code: str) -> set[str]:
    """Names a module reads as globals (in any function or comprehension too) that it never binds and Python does
    not provide: what a NameError would stop at, found without running anything."""
    import builtins
    import symtable
    top = symtable.symtable(code, "<notebook>", "exec")
    bound = {s.get_name() for s in top.get_symbols() if s.is_assigned() or s.is_imported()}
    read, todo = set(), [top]
    while todo:
        t = todo.pop()
        read |= {s.get_name() for s in t.get_symbols()
                 if s.is_referenced() and (t is top or s.is_global()) and not s.is_parameter()}
        bound |= {s.get_name() for s in t.get_symbols() if s.is_declared_global() and s.is_assigned()}
        todo += t.get_children()
    return read - bound - set(dir(builtins)) - {"display", "get_ipython"}


@pytest.mark.parametrize("notebook", sorted(p.name for p in (LIB.parent / "notebooks").glob("*.ipynb")))
def test_every_name_a_notebook_reads_is_defined(notebook):
    """Catches a module renamed in lib/ but still called by its old name in some cell (e.g. `models.count_parameters`
    after `from lib.models import registry`)."""
    import json
    cells = json.loads((LIB.parent / "notebooks" / notebook).read_text())["cells"]
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    code = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith(("%", "!")))
    assert _undefined_names(code) == set()


def test_the_name_check_sees_a_stale_module_name():
    assert _undefined_names("from lib.models import registry\nx = models.count_parameters(1)\n") == {"models"}
    assert _undefined_names("import os\ndef f(a):\n    return [os.sep + b for b in a]\n") == set()
