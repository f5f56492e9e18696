#!/usr/bin/env python3
"""No function over 80 lines outside tests, unless a `// Long: why` comment stands in the
lines just above it (between its doc comment and attributes). rustfmt puts a function's
closing brace at the indent of its `fn` line, which is what this counts by."""
import pathlib
import re
import sys

LIMIT = 80
FN = re.compile(r"^(\s*)(pub(\([^)]*\))? )?(const )?(async )?(unsafe )?(extern \"C\" )?fn \w+")
CRATES = ["pki", "firmware-config", "hsm", "state", "services", "appliance", "ctl"]


def long_functions(path):
    lines = path.read_text().splitlines()
    skip_until = None  # the indent of a `#[cfg(test)]` module being skipped
    for i, line in enumerate(lines):
        if skip_until is not None:
            if line == skip_until + "}":
                skip_until = None
            continue
        if line.strip() == "#[cfg(test)]" and i + 1 < len(lines) and re.match(r"\s*(pub )?mod \w+ \{", lines[i + 1]):
            skip_until = re.match(r"\s*", lines[i + 1]).group(0)
            continue
        m = FN.match(line)
        if not m:
            continue
        # A declaration (an `extern` block's, a trait's) ends with `;` before any body.
        head_end = next((j for j in range(i, len(lines)) if "{" in lines[j] or lines[j].rstrip().endswith(";")), i)
        if "{" not in lines[head_end]:
            continue
        indent = m.group(1)
        end = next((j for j in range(i, len(lines)) if lines[j] == indent + "}"), None)
        if end is None or end - i + 1 <= LIMIT:
            continue
        above = i - 1
        while above >= 0 and lines[above].strip().startswith(("//", "#[")):
            if lines[above].strip().startswith("// Long:"):
                break
            above -= 1
        else:
            yield i + 1, end - i + 1, line.strip()


def main():
    root = pathlib.Path(__file__).resolve().parent.parent
    failed = 0
    for crate in CRATES:
        for path in sorted((root / crate / "src").rglob("*.rs")):
            if path.name == "tests.rs" or "tests" in path.relative_to(root / crate / "src").parts:
                continue
            for line, length, text in long_functions(path):
                print(f"{path.relative_to(root)}:{line}: {length} lines: {text}")
                failed += 1
    if failed:
        print(f"{failed} function(s) over {LIMIT} lines without a `// Long: why` comment", file=sys.stderr)
        return 1
    print(f"every function is at most {LIMIT} lines, or says why not")
    return 0


sys.exit(main())
