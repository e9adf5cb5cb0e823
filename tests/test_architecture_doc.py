"""docs/architecture.md is the map of the package: every package is on it, and every
package and module it names exists, so the map cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "app"
MAP = (ROOT / "docs" / "architecture.md").read_text()


def packages() -> set[str]:
    """Every Python package under app/ (templates, static files and migrations are data)."""
    found = set()
    for init in APP.rglob("__init__.py"):
        dotted = ".".join(init.parent.relative_to(ROOT).parts)
        if "migrations" not in dotted and dotted != "app":
            found.add(dotted)
    return found


def named_packages() -> set[str]:
    return set(re.findall(r"`(app(?:\.[a-z_]+)+)`", MAP)) | set(
        re.findall(r"^\s+(app\.[a-z_.]+)\s", MAP, flags=re.MULTILINE)
    )


def test_every_package_is_on_the_map() -> None:
    named = named_packages()
    missing = sorted(package for package in packages() if package not in named)
    assert not missing, f"docs/architecture.md does not name {missing}"


def test_every_package_the_map_names_exists() -> None:
    ghosts = sorted(name for name in named_packages() if name not in packages())
    assert not ghosts, f"docs/architecture.md names packages that do not exist: {ghosts}"


def test_every_file_the_map_names_exists() -> None:
    paths = set(re.findall(r"`(app/[\w/.]+)`", MAP)) | set(
        re.findall(r"`(docs/[\w/.-]+|pyproject\.toml|tests/[\w/.]+)`", MAP)
    )
    assert len(paths) > 20  # the job's path alone names more
    ghosts = sorted(path for path in paths if not (ROOT / path.rstrip("/")).exists())
    assert not ghosts, f"docs/architecture.md names files that do not exist: {ghosts}"


def test_every_module_named_in_a_package_row_exists() -> None:
    """In the table, a row's bare file names (`queue.py`) are modules of that row's package."""
    rows = re.findall(r"^\| `(app[\w.]*)` \| (.*) \|$", MAP, flags=re.MULTILINE)
    assert len(rows) >= 10
    ghosts = []
    for package, text in rows:
        folder = ROOT / package.replace(".", "/")
        for module in re.findall(r"`([a-z_]+\.py|[a-z_]+/)`", text):
            if not (folder / module).exists():
                ghosts.append(f"{package}: {module}")
    assert not ghosts, f"docs/architecture.md names modules that do not exist: {ghosts}"
