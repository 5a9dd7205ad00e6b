"""Every command's --help shows each option's default and a line for it: a static check of the argparse calls in
scripts/, bench/, lm/train.py and the option helpers of core/ (ast only: nothing is imported or run).

A parser passes when its formatter_class is argparse.ArgumentDefaultsHelpFormatter or a project class derived
from it (followed through imports in the sources); an option passes when it has a help= string that is not
argparse.SUPPRESS.
"""
import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "data", "tokenizers", "lm", "eval")  # top-level folders installed as savg.<name> (setup.cfg)
FILES = sorted([*ROOT.glob("scripts/*.py"), *ROOT.glob("bench/*.py"), ROOT / "lm" / "train.py", *ROOT.glob("core/*.py")])
DEFAULTS_FORMATTER = "argparse.ArgumentDefaultsHelpFormatter"


def module_name(path: Path) -> str:
    """Dotted name of a source file: savg.core.training for core/training.py, scripts.train_seld elsewhere."""
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(("savg", *parts) if parts[0] in PACKAGES else parts)


def source_path(module: str):
    """The project file of a dotted module name (inverse of module_name), or None outside the project."""
    parts = module.split(".")[1:] if module.startswith("savg.") else module.split(".")
    for path in (ROOT.joinpath(*parts).with_suffix(".py"), ROOT.joinpath(*parts, "__init__.py")):
        if path.is_file():
            return path
    return None


@functools.lru_cache(maxsize=None)
def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


@functools.lru_cache(maxsize=None)
def imported_names(tree: ast.Module, module: str) -> dict:
    """{name an import binds in `tree`: the dotted name it stands for}, relative imports resolved from `module`."""
    names = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update({a.asname or a.name.split(".")[0]: a.name if a.asname else a.name.split(".")[0] for a in node.names})
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*module.split(".")[:-node.level], *([node.module] if node.module else [])])
            names.update({a.asname or a.name: f"{base}.{a.name}" for a in node.names})
    return names


def qualified(expr: ast.expr, tree: ast.Module, module: str) -> str:
    """The dotted name a name or attribute chain stands for in `module` (itself when nothing imports it)."""
    head, _, rest = ast.unparse(expr).partition(".")
    base = imported_names(tree, module).get(head, f"{module}.{head}")
    return f"{base}.{rest}" if rest else base


def shows_defaults(name: str, tree: ast.Module, module: str) -> bool:
    """Whether the class named `name` (seen from `module`, parsed as `tree`) is ArgumentDefaultsHelpFormatter or
    derives from it in the project's sources."""
    if name == DEFAULTS_FORMATTER:
        return True
    owner, _, cls = name.rpartition(".")
    if owner != module:
        path = source_path(owner)
        if path is None:
            return False
        tree, module = parse(path), owner
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == cls:
            return any(shows_defaults(qualified(base, tree, module), tree, module) for base in node.bases)
    again = imported_names(tree, module).get(cls)  # a name that module imports from elsewhere
    return again not in (None, name) and shows_defaults(again, tree, module)


def has_help(call: ast.Call) -> bool:
    value = {k.arg: k.value for k in call.keywords}.get("help")
    return value is not None and not ast.unparse(value).endswith("SUPPRESS") and ast.unparse(value) not in ('""', "''")


def problems(tree: ast.Module, module: str) -> list:
    """One line per ArgumentParser(...) without a defaults formatter and per add_argument(...) without help."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, (ast.Name, ast.Attribute)):
            continue
        if qualified(node.func, tree, module) == "argparse.ArgumentParser":
            formatter = {k.arg: k.value for k in node.keywords}.get("formatter_class")
            if formatter is None or not shows_defaults(qualified(formatter, tree, module), tree, module):
                found.append((node.lineno, f"ArgumentParser without a formatter_class derived from {DEFAULTS_FORMATTER}"))
        elif isinstance(node.func, ast.Attribute) and node.func.attr == "add_argument" and not has_help(node):
            found.append((node.lineno, f"{ast.unparse(node.args[0]) if node.args else 'add_argument'} has no help"))
    return [f"line {line}: {what}" for line, what in sorted(found)]


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_help_shows_defaults_and_every_option(path):
    assert problems(parse(path), module_name(path)) == []


def test_the_check_finds_what_it_should():
    source = '''
import argparse
from argparse import ArgumentParser as AP
from savg.core.cli import HelpFormatter
class Local(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass
a = argparse.ArgumentParser(formatter_class=argparse.RawDescriptionHelpFormatter)
b = AP()
c = argparse.ArgumentParser(formatter_class=HelpFormatter)
d = argparse.ArgumentParser(formatter_class=Local)
a.add_argument("--x", default=1)
a.add_argument("--y", help=argparse.SUPPRESS)
a.add_argument("--z", default=1, help="zed")
'''
    found = problems(ast.parse(source), "scripts.example")
    assert [line.split(":")[0] for line in found] == ["line 7", "line 8", "line 11", "line 12"], found


def test_beside_names():
    from savg.core.cli import beside_folders

    assert beside_folders(["x=/a/b", "/c/d", "e/f"]) == {"x": "/a/b", "d": "/c/d", "f": "e/f"}
    with pytest.raises(ValueError, match="two models named"):
        beside_folders(["/a/b", "/c/b"])
