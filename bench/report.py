"""Write a generated markdown section into a doc, between `<!-- NAME:start -->` and `<!-- NAME:end -->`."""

from __future__ import annotations

import json
import os


def replace_section(path: str, name: str, body: str) -> None:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + ("\n\n" if text else "") + block + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def measure_or_render(out: str, render_only: bool, measure, render, section: str) -> None:
    """Measure (keeping the record in `out`, a JSON file) or, with `render_only`, read the record kept; then write
    its section of docs/benchmarks.md and print it."""
    if render_only:
        with open(out, encoding="utf-8") as f:
            result = json.load(f)
    else:
        result = measure()
        with open(out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    replace_section("docs/benchmarks.md", section, render(result))
    print(render(result))
