#!/usr/bin/env python3
"""No import cycle between the top-level modules of any crate of ours: module A naming
`crate::b` (or `super::b` from a file directly under A) while b names `crate::a`, directly or
around a longer loop, fails here. Test code is left out (`tests.rs`, `#[cfg(test)] mod`)."""
import pathlib
import re
import sys

CRATES = ["pki", "firmware-config", "hsm", "state", "services", "appliance", "ctl"]
# `crate::name`, or a `use crate::{a, b::c}` group.
PATH = re.compile(r"\bcrate::(\{[^}]*\}|\w+)")


def without_tests(text):
    """The text up to its `#[cfg(test)] mod ... {` block, which rustfmt puts last."""
    m = re.search(r"^#\[cfg\(test\)\]\s*\n\s*mod \w+ \{", text, re.M)
    return text[: m.start()] if m else text


def edges(src):
    modules = {p.stem for p in src.glob("*.rs")} | {p.name for p in src.iterdir() if p.is_dir()}
    modules -= {"lib", "main", "tests"}
    graph = {m: set() for m in modules}
    for path in src.rglob("*.rs"):
        rel = path.relative_to(src)
        if path.name == "tests.rs" or "bin" in rel.parts:
            continue
        top = rel.parts[0].removesuffix(".rs")
        if top not in modules:
            continue
        for m in PATH.finditer(without_tests(path.read_text())):
            names = re.findall(r"(?:^|[{,]\s*)(\w+)", m.group(1).strip("{}") if m.group(1).startswith("{") else m.group(1))
            for name in names:
                if name in modules and name != top:
                    graph[top].add(name)
    return graph


def cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    failed = False
    for crate in CRATES:
        graph = edges(root / crate / "src")
        for comp in cycles(graph):
            failed = True
            links = ", ".join(f"{a} -> {b}" for a in comp for b in sorted(graph[a]) if b in comp)
            print(f"{crate}: import cycle between {', '.join(comp)}: {links}", file=sys.stderr)
    if failed:
        return 1
    print("no import cycle between the modules of any crate")
    return 0


sys.exit(main())
