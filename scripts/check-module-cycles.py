#!/usr/bin/env python3
"""Fails when the modules of a crate import each other in a circle.

A module is a top-level file or directory under `crates/<crate>/src`; an edge is any
`crate::<module>` path in its code (test code, after `#[cfg(test)]`, and `tests.rs` files are
not counted: tests may reach anywhere). Layers keep each crate readable top to bottom.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def module_of(src: pathlib.Path, path: pathlib.Path) -> str:
    relative = path.relative_to(src)
    return relative.parts[0].removesuffix(".rs")


def edges(src: pathlib.Path) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(src.rglob("*.rs")):
        if path.name == "tests.rs" or path.name in ("lib.rs", "main.rs") and path.parent == src:
            continue
        module = module_of(src, path)
        text = path.read_text()
        text = text.split("#[cfg(test)]")[0]
        # Comments name modules without depending on them.
        text = re.sub(r"//[^\n]*", "", text)
        graph.setdefault(module, set())
        for target in re.findall(r"crate::([a-z_][a-z0-9_]*)", text):
            is_module = (src / f"{target}.rs").exists() or (src / target).is_dir()
            if is_module and target != module:
                graph[module].add(target)
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
if failed:
    sys.exit(1)
print("module layering: no circles")
