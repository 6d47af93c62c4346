"""The import graph runs one way: each part of lntune imports only parts on its own layer or below, every
import counted (function-local ones too), and no two parts import each other. Known upward arrows are listed
below with their reason; the list may only shrink."""
import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "lntune"

# Bottom to top. A part is a top-level module or package of lntune; a package's own cli.py is part of it.
LAYERS = [
    {"errors", "lazy", "durable", "offline", "plugins", "spec", "__init__"},  # lntune/__init__ exports names lazily: it loads nothing
    {"heads"},  # kinds of task output: encoding, loss terms, metrics, log-likelihood, names other libraries use
    {"data", "model"},
    {"method", "evaluate"},
    {"train"},
    {"skin_schema", "skin", "skin_card"},
    {"interop"},
    {"api", "serve"},
    {"analyse"},
    {"report"},
    {"sweep"},
    {"cli"},
]
LAYER = {part: i for i, parts in enumerate(LAYERS) for part in parts}

# Upward imports still in the code (issue 22 removes them): (importer part, imported part) -> why it is there.
KNOWN_UPWARD = {
}


# Modules that load others by name, and why: the arrows they make are not in the graph above.
BY_NAME = {
    "lazy.py": "packages export their names lazily, so `lntune --help` loads no torch",
    "plugins.py": "plugins are third-party modules named by entry points or $LNTUNE_PLUGINS, not lntune's own",
    "sweep/warm.py": "local workers import the heavy libraries a run needs before the first job arrives",
}


def part(module: str) -> str:
    """The part a module belongs to; a name that is no module (`from lntune import __version__`) is the package's."""
    rest = module.split(".")[1:] if module.startswith("lntune.") else []
    if not rest or not ((SRC / f"{rest[0]}.py").exists() or (SRC / rest[0] / "__init__.py").exists()):
        return "__init__"
    return rest[0]


def edges() -> dict[tuple[str, str], list[str]]:
    """(importer part, imported part) -> the files and lines where it happens."""
    out: dict[tuple[str, str], list[str]] = {}
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        package = module if rel.name == "__init__" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names] if base == "lntune" else [base]
            for target in targets:
                if target.startswith("lntune"):
                    a, b = part(module), part(target)
                    # lntune/__init__ imports its exports when a name is first asked for: not a layer arrow
                    if a != b and a != "__init__":
                        out.setdefault((a, b), []).append(f"{path.relative_to(SRC.parent)}:{node.lineno}")
    return out


def test_every_part_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in SRC.iterdir() if p.suffix == ".py" or
             (p.is_dir() and (p / "__init__.py").exists())}
    assert parts <= set(LAYER), sorted(parts - set(LAYER))


def test_no_part_imports_upward_beyond_the_known_list():
    upward = {e: where for e, where in edges().items() if LAYER[e[0]] < LAYER[e[1]]}
    assert set(upward) <= set(KNOWN_UPWARD), {e: upward[e] for e in set(upward) - set(KNOWN_UPWARD)}
    assert set(KNOWN_UPWARD) <= set(upward), f"gone, delete from KNOWN_UPWARD: {set(KNOWN_UPWARD) - set(upward)}"


def test_no_two_parts_import_each_other_but_through_a_known_upward_arrow():
    found = edges()
    both = {tuple(sorted(e)) for e in found if (e[1], e[0]) in found}
    new = sorted(e for e in both if e not in KNOWN_UPWARD and (e[1], e[0]) not in KNOWN_UPWARD)
    assert not new, {e: (found[e], found[(e[1], e[0])]) for e in new}


def test_modules_are_not_loaded_by_name():
    """importlib / __import__ would hide an arrow from the checks above; lazy.py is the one place that may."""
    hidden = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        if str(path.relative_to(SRC)) not in BY_NAME and ("import_module(" in text or "__import__(" in text):
            hidden.append(str(path.relative_to(SRC)))
    assert not hidden, hidden


# Commands import their work when they run, so `lntune --help` and each command's --help load no torch; package
# __init__ files export names lazily for the same reason.
LAZY_BY_DESIGN = ("cli.py", "serve/ask.py", "__init__.py")


def test_function_local_imports_of_lntune_say_why():
    """Outside the commands and the lazy package exports, an import of lntune inside a function is a hidden
    arrow: it belongs at the top, unless its line says why not (a heavy optional library, a cycle)."""
    silent = []
    for path in SRC.rglob("*.py"):
        rel = str(path.relative_to(SRC))
        if rel.endswith(LAZY_BY_DESIGN):
            continue
        lines = path.read_text().splitlines()
        for fn in ast.walk(ast.parse("\n".join(lines))):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                    [a.name for a in node.names] if isinstance(node, ast.Import) else []
                if any(n.startswith("lntune") for n in names) and "#" not in lines[node.lineno - 1]:
                    silent.append(f"{rel}:{node.lineno}")
    assert not silent, silent

