"""Where the files that ship with the package live.

An installed wheel carries `templates/` and `static/` inside the `app` package
(see `force-include` in pyproject.toml); a source checkout keeps them at the top
of the repository. Both are found relative to this file, never to the current
directory.
"""

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def _shipped_dir(name: str) -> Path:
    for candidate in (PACKAGE_DIR / name, PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise RuntimeError(f"the {name}/ directory is missing from the installation")


TEMPLATES_DIR = _shipped_dir("templates")
STATIC_DIR = _shipped_dir("static")
MIGRATIONS_DIR = PACKAGE_DIR / "migrations"
