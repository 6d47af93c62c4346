"""Outside method/ no code branches on a method's name, and outside heads/ none on a head's (issue 22): they ask
the registered class for its traits instead. Checked over the source: a name in a comparison or in a call that
looks a method or head up by name."""
import ast
from pathlib import Path

from lntune.heads import HEADS
from lntune.method import METHODS

SRC = Path(__file__).resolve().parents[1] / "src" / "lntune"
LOOKUPS = ("build_method", "parts", "get_head")

# Comparisons with a string that only happens to equal a method's name: (file, string) -> what it is.
NOT_NAMES = {
    ("interop/merge.py", "lora"): "a merge kind (Method.merge = 'lora'), not the method",
    ("sweep/grid.py", "ln"): "an lr family (Method.lr_family = 'ln'), not the method",
}


def named(home: str, names: set[str], root: Path = SRC) -> list[tuple[str, int, str]]:
    """(file, line, name) for each registered name compared with, or looked up, outside `home`."""
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(home):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                consts = [c for n in (node.left, *node.comparators) for c in ast.walk(n) if isinstance(c, ast.Constant)]
            elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in LOOKUPS:
                consts = [a for a in node.args if isinstance(a, ast.Constant)]
            else:
                continue
            out += [(rel, node.lineno, c.value) for c in consts if c.value in names and (rel, c.value) not in NOT_NAMES]
    return out


def test_no_code_outside_method_branches_on_a_method_name():
    assert named("method/", set(METHODS)) == []


def test_no_code_outside_heads_branches_on_a_head_name():
    assert named("heads/", set(HEADS)) == []


def test_the_check_finds_a_branch(tmp_path):
    """The check can fail: a module comparing a method name, or looking one up, is reported."""
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "probe.py").write_text('def f(c):\n    return c.method == "bitfit" or build_method("ln")\n')
    (tmp_path / "method").mkdir()
    (tmp_path / "method" / "ok.py").write_text('X = "bitfit" == "bitfit"\n')
    assert named("method/", set(METHODS), tmp_path) == [("report/probe.py", 2, "bitfit"), ("report/probe.py", 2, "ln")]
