"""No module is over 450 lines unless it is one concern and its docstring (for a script, its
opening comment) says why, in a sentence with "stays one module": past that size a module
is read in parts, and a reader should learn at the top whether it is one thing or several."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 450
PHRASE = "stays one module"


def checked_files() -> list[Path]:
    python = [
        path for folder in ("app", "bench", "tests") for path in (ROOT / folder).rglob("*.py")
    ]
    scripts = list((ROOT / "app" / "web" / "static").glob("*.js"))
    return sorted(path for path in python + scripts if "migrations" not in path.parts)


def opening_text(path: Path, source: str) -> str:
    """A Python module's docstring, or a script's comment lines before its first code."""
    if path.suffix == ".py":
        return ast.get_docstring(ast.parse(source)) or ""
    opening = []
    for line in source.splitlines():
        if not line.startswith("//"):
            break
        opening.append(line.removeprefix("//").strip())
    return " ".join(opening)


def says_why(path: Path, source: str) -> bool:
    return PHRASE in " ".join(opening_text(path, source).split())


def test_the_check_reads_docstrings_and_opening_comments_only() -> None:
    module = '"""Long.\n\nIt stays one\nmodule, long as it is: one concern."""\nx = 1\n'
    assert says_why(Path("a.py"), module)
    assert not says_why(Path("a.py"), '"""Long."""\n# It stays one module.\n')
    assert says_why(Path("a.js"), "// One thing: it stays one\n// module.\n(function () {})();\n")
    assert not says_why(Path("a.js"), "(function () {\n  // it stays one module\n})();\n")


def test_every_long_module_says_why_it_stays_one_module() -> None:
    assert len(checked_files()) > 300
    unexplained = []
    for path in checked_files():
        source = path.read_text(encoding="utf-8")
        name = str(path.relative_to(ROOT))
        lines = len(source.splitlines())
        if lines > LIMIT and not says_why(path, source):
            unexplained.append(f"{name} ({lines} lines)")
    assert unexplained == [], (
        f"over {LIMIT} lines: split each by concern, or say in its docstring why it "
        f'"{PHRASE}": {unexplained}'
    )
