#!/usr/bin/env python3
"""Fails when the modules of a crate import each other in a circle, at any depth.

At the top, a module is a file or directory under `crates/<crate>/src`, and an edge is any
`crate::<module>` path in its code. Inside a directory module (`params/`), its files are the
modules, and an edge is a `super::<sibling>` or `crate::…::<dir>::<sibling>` path (the
directory's `mod.rs` is the parent every child may use, like `lib.rs`). Test code is not
counted (a top-level `#[cfg(test)]` item to the end of the file, and `tests.rs` files): tests
may reach anywhere. An indented `#[cfg(test)]` (one test-only function) cuts only nothing.
Layers keep each crate readable top to bottom.
"""
import pathlib
import re
import sys

# The workspace, or the tree given as the one argument (the self-test plants circles in one).
ROOT = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent


def module_of(src: pathlib.Path, path: pathlib.Path) -> str:
    relative = path.relative_to(src)
    return relative.parts[0].removesuffix(".rs")


def code(path: pathlib.Path) -> str:
    """The file's non-test code, without comments (they name modules without using them)."""
    text = path.read_text()
    # A top-level test item (`#[cfg(test)]` at the start of a line, then `mod`), to the end.
    text = re.split(r"(?m)^#\[cfg\(test\)\]\s*\n\s*(?:pub(?:\([a-z]+\))?\s+)?mod\b", text)[0]
    return re.sub(r"//[^\n]*", "", text)


def edges(src: pathlib.Path) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(src.rglob("*.rs")):
        if path.name == "tests.rs" or path.name in ("lib.rs", "main.rs") and path.parent == src:
            continue
        module = module_of(src, path)
        text = code(path)
        graph.setdefault(module, set())
        for target in re.findall(r"crate::([a-z_][a-z0-9_]*)", text):
            is_module = (src / f"{target}.rs").exists() or (src / target).is_dir()
            if is_module and target != module:
                graph[module].add(target)
    return graph


def inner_edges(src: pathlib.Path, directory: pathlib.Path) -> dict[str, set[str]]:
    """The files of one directory module, and which of their siblings each one uses."""
    module_path = "::".join(directory.relative_to(src).parts)
    siblings = {p.stem for p in directory.glob("*.rs") if p.name not in ("mod.rs", "tests.rs")}
    siblings |= {p.name for p in directory.iterdir() if p.is_dir()}
    graph: dict[str, set[str]] = {}
    for name in sorted(siblings):
        files = [directory / f"{name}.rs"] if (directory / f"{name}.rs").exists() else []
        if (directory / name).is_dir():
            files += sorted(p for p in (directory / name).rglob("*.rs") if p.name != "tests.rs")
        graph.setdefault(name, set())
        for path in files:
            text = code(path)
            # `super::x` from a direct child; `crate::<dir path>::x` from anywhere below.
            direct = path.parent == directory
            targets = re.findall(r"\bsuper::([a-z_][a-z0-9_]*)", text) if direct else []
            targets += re.findall(rf"crate::{re.escape(module_path)}::([a-z_][a-z0-9_]*)", text)
            graph[name] |= {t for t in targets if t in siblings and t != name}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


failed = False
for src in sorted((ROOT / "crates").glob("*/src")):
    found = cycle(edges(src))
    if found:
        failed = True
        print(f"{src.parent.name}: modules import each other in a circle: {' -> '.join(found)}", file=sys.stderr)
    for directory in sorted(d for d in src.rglob("*") if d.is_dir()):
        found = cycle(inner_edges(src, directory))
        if found:
            failed = True
            where = "/".join(directory.relative_to(src).parts)
            print(f"{src.parent.name}: the modules of {where}/ import each other in a circle: "
                  f"{' -> '.join(found)}", file=sys.stderr)
if failed:
    sys.exit(1)
print("module layering: no circles")
