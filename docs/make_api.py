"""Generates ``docs/api.md``, the API reference of dlhash_jax, from the docstrings.

    python docs/make_api.py          # rewrites docs/api.md
    python docs/make_api.py --check  # exits 1 if docs/api.md differs from what it would write

For every module of the package (in the order of docs/design.md's layout, then any others), every
public function and class: its signature as written in the source, the first paragraph of its
docstring, and its ``Args`` (``Attributes`` for classes) and ``Returns`` sections; for a class
also its public methods and properties, one line each. A module's public names are its
``__all__``, or else the functions and classes a package's ``__init__`` imports, or else the
functions and classes a module defines. Recipes (``dlhash_jax.methods.RECIPES``) get a table.

Signatures are read from the source with ``ast`` (not from the live objects), so the output does
not depend on the installed versions of jax or numpy and the test ``tests/test_api_docs.py`` can
require ``docs/api.md`` to equal this script's output.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import os
import pkgutil
import re
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
OUTPUT = os.path.join(HERE, "api.md")
PACKAGE = "dlhash_jax"
# docs/design.md's layout order; modules not listed here follow in alphabetical order.
ORDER = (
    "codes", "relaxations", "similarity", "hamming", "losses", "metrics", "retrieval",
    "baselines", "models", "methods", "data", "train", "evaluate", "experiment", "results_table",
)
_SECTION = re.compile(r"^([A-Z][A-Za-z ]*):$")
_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj):`~?([^`]+)`")


def module_names() -> list[str]:
    """Public submodules of the package, docs/design.md's order first."""
    package = importlib.import_module(PACKAGE)
    found = sorted(
        info.name
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_")
    )
    return [name for name in ORDER if name in found] + [name for name in found if name not in ORDER]


def _markdown(text: str) -> str:
    """reST inline markup of the docstrings to Markdown."""
    text = _ROLE.sub(lambda match: f"`{match.group(1).split('.')[-1]}`", text)
    return text.replace("``", "`")


def _docstring(obj) -> str:
    doc = obj.__doc__ if isinstance(getattr(obj, "__doc__", None), str) else ""
    return inspect.cleandoc(doc) if doc else ""


def _sections(doc: str) -> tuple[str, dict[str, list[str]]]:
    """First paragraph and the named sections (``Args``, ``Returns``, ...) of a docstring."""
    lines = doc.splitlines()
    summary = []
    for line in lines:
        if not line.strip():
            break
        summary.append(line)
    sections: dict[str, list[str]] = {}
    current = None
    for line in lines[len(summary):]:
        match = _SECTION.match(line)
        if match:
            current = match.group(1)
            sections[current] = []
        elif current is not None:
            if line and not line.startswith(" "):
                current = None  # prose after a section
            else:
                sections[current].append(line)
    return " ".join(line.strip() for line in summary), sections


def _items(lines: list[str]) -> list[str]:
    """``name: text`` entries of an Args/Attributes section as Markdown bullets."""
    body = textwrap.dedent("\n".join(lines)).splitlines()
    items: list[str] = []
    for line in body:
        if not line.strip():
            continue
        if not line.startswith(" ") and ":" in line:
            name, _, text = line.partition(":")
            items.append(f"- `{name.strip()}`: {text.strip()}")
        elif items:
            items[-1] += " " + line.strip()
        else:
            items.append(f"- {line.strip()}")
    return [_markdown(item) for item in items]


def _paragraph(lines: list[str]) -> list[str]:
    """A free-text section: its prose joined, and any ``- item`` list kept as a list."""
    body = textwrap.dedent("\n".join(lines)).splitlines()
    blocks: list[str] = []
    for line in body:
        if not line.strip():
            continue
        if line.startswith("- ") or not blocks:
            blocks.append(line.strip())
        else:
            blocks[-1] += " " + line.strip()
    out = [_markdown(blocks[0])] if blocks else []
    items = [_markdown(block) for block in blocks[1:]]
    return out + ([""] + items if items else [])


def _node(obj) -> ast.AST:
    source = textwrap.dedent(inspect.getsource(inspect.unwrap(obj)))
    return ast.parse(source).body[0]


def _argument(arg: ast.arg, default: ast.expr | None) -> str:
    text = arg.arg
    if arg.annotation is not None:
        text += f": {ast.unparse(arg.annotation)}"
        if default is not None:
            text += f" = {ast.unparse(default)}"
    elif default is not None:
        text += f"={ast.unparse(default)}"
    return text


def _arguments(args: ast.arguments, *, drop_first: bool) -> str:
    """The parameter list as written, without ``self``/``cls`` and private (``_x``) parameters."""
    positional = list(args.posonlyargs) + list(args.args)
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = list(zip(positional, defaults))
    if drop_first and pairs:
        pairs = pairs[1:]
    parts = [_argument(arg, default) for arg, default in pairs if not arg.arg.startswith("_")]
    if args.posonlyargs and not drop_first:
        parts.insert(len(args.posonlyargs), "/")
    if args.vararg is not None:
        parts.append(f"*{_argument(args.vararg, None)}")
    elif args.kwonlyargs:
        parts.append("*")
    parts += [
        _argument(arg, default)
        for arg, default in zip(args.kwonlyargs, args.kw_defaults)
        if not arg.arg.startswith("_")
    ]
    if args.kwarg is not None:
        parts.append(f"**{_argument(args.kwarg, None)}")
    if parts and parts[-1] == "*":
        parts.pop()
    return ", ".join(parts)


def _function_signature(
    node: ast.FunctionDef, *, drop_self: bool = False, name: str | None = None
) -> str:
    returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    return f"{name or node.name}({_arguments(node.args, drop_first=drop_self)}){returns}"


def _class_signature(node: ast.ClassDef) -> str:
    for item in node.body:
        if isinstance(item, ast.FunctionDef) and item.name == "__init__":
            return _function_signature(item, drop_self=True, name=node.name)
    bases = ", ".join(ast.unparse(base) for base in node.bases)
    lines = [f"class {node.name}" + (f"({bases})" if bases else "") + ":"]
    for item in node.body:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
            if item.target.id.startswith("_"):
                continue
            field = f"    {item.target.id}: {ast.unparse(item.annotation)}"
            if item.value is not None:
                field += f" = {ast.unparse(item.value)}"
            lines.append(field)
    return "\n".join(lines) if len(lines) > 1 else lines[0][:-1]


def _public_members(cls, node: ast.ClassDef) -> list[str]:
    lines = []
    for item in node.body:
        if not isinstance(item, ast.FunctionDef) or item.name.startswith("_"):
            continue
        decorators = {ast.unparse(d) for d in item.decorator_list}
        member = getattr(cls, item.name, None)
        if isinstance(inspect.getattr_static(cls, item.name, None), property):
            member, kind = inspect.getattr_static(cls, item.name).fget, "property"
        elif "classmethod" in decorators or "staticmethod" in decorators:
            kind = "classmethod" if "classmethod" in decorators else "staticmethod"
        else:
            kind = "method"
        summary, _ = _sections(_docstring(member)) if member is not None else ("", {})
        if kind == "property":
            head = f"`{item.name}` (property)"
        else:
            head = f"`{_function_signature(item, drop_self=kind != 'staticmethod')}`"
            if kind != "method":
                head += f" ({kind})"
        lines.append(f"- {head}" + (f": {_markdown(summary)}" if summary else ""))
    return lines


def _document(qualname: str, obj) -> list[str]:
    node = _node(obj)
    is_class = isinstance(node, ast.ClassDef)
    signature = _class_signature(node) if is_class else _function_signature(node)
    summary, sections = _sections(_docstring(obj))
    out = [f"### `{qualname}`", "", "```python", signature, "```", ""]
    if summary:
        out += [_markdown(summary), ""]
    for title in ("Args", "Attributes") if is_class else ("Args",):
        if sections.get(title):
            out += [f"**{title}**", "", *_items(sections[title]), ""]
    if sections.get("Returns"):
        first, *rest = _paragraph(sections["Returns"])
        out += [f"**Returns**: {first}", *rest, ""]
    if is_class:
        members = _public_members(obj, node)
        if members:
            out += ["**Members**", "", *members, ""]
    return out


def _is_documented(obj) -> bool:
    return inspect.isfunction(inspect.unwrap(obj)) or inspect.isclass(obj)


def public_objects(module) -> list[tuple[str, object]]:
    """``(name, object)`` of the public functions and classes of a module, in source order."""
    prefix = module.__name__
    if hasattr(module, "__all__"):
        names = list(module.__all__)
    elif hasattr(module, "__path__"):
        tree = ast.parse(inspect.getsource(module))
        names = [
            alias.asname or alias.name
            for node in tree.body
            if isinstance(node, ast.ImportFrom)
            for alias in node.names
        ]
    else:
        names = list(vars(module))
    chosen = []
    for name in names:
        obj = getattr(module, name, None)
        if name.startswith("_") or obj is None or not _is_documented(obj):
            continue
        home = getattr(inspect.unwrap(obj), "__module__", "")
        if home != prefix and not home.startswith(prefix + "."):
            continue  # imported from elsewhere (numpy, jax, typing, a sibling module, ...)
        chosen.append((name, obj))
    if not hasattr(module, "__path__") and not hasattr(module, "__all__"):
        chosen.sort(key=lambda item: inspect.getsourcelines(inspect.unwrap(item[1]))[1])
    return chosen


def _recipes_table(methods) -> list[str]:
    out = [
        "#### Recipes (`methods.RECIPES`)",
        "",
        "| name | method | default hyper-parameters | paper |",
        "|---|---|---|---|",
    ]
    for name in sorted(methods.RECIPES):
        recipe = methods.RECIPES[name]
        hparams = ", ".join(
            f"`{key}={value!r}`" for key, value in sorted(recipe.default_hparams.items())
        )
        citation = recipe.citation.replace("|", "\\|")
        out.append(f"| `{name}` | {recipe.title} | {hparams or '—'} | {citation} |")
    return out + [""]


def render() -> str:
    """The text of docs/api.md."""
    package = importlib.import_module(PACKAGE)
    names = module_names()
    out = [
        "# dlhash_jax API reference",
        "",
        "Generated from the docstrings by `python docs/make_api.py`; do not edit by hand",
        "(`tests/test_api_docs.py` fails when this file is out of date). For each public function",
        "and class: the signature as written in the source, the first paragraph of the docstring,",
        "and its arguments; the docstrings hold the formulas, references and examples.",
        "",
        _markdown(_sections(_docstring(package))[0]),
        "",
        "Modules: " + ", ".join(f"[`{name}`](#dlhash_jax{name})" for name in names) + ".",
        "",
    ]
    for name in names:
        module = importlib.import_module(f"{PACKAGE}.{name}")
        out += [f"## `{PACKAGE}.{name}`", ""]
        summary = _sections(_docstring(module))[0]
        if summary:
            out += [_markdown(summary), ""]
        if name == "methods":
            out += _recipes_table(module)
        for obj_name, obj in public_objects(module):
            out += _document(f"{name}.{obj_name}", obj)
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/api.md is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        with open(OUTPUT, encoding="utf-8") as f:
            if f.read() != text:
                print(f"{OUTPUT} is out of date: run `python docs/make_api.py`.", file=sys.stderr)
                return 1
        return 0
    with open(OUTPUT, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
