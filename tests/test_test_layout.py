"""The tests share helpers through tests/support and fixtures through tests/conftest.py and
its plugins, never by importing conftest or another test module: an import of a test module
runs its module-level code and collects its tests twice, and conftest is loaded by pytest
under a name of its own, so importing it makes a second copy of every constant in it."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _forbidden(module: str) -> bool:
    """Whether a dotted module name is conftest or a test module."""
    last = module.rsplit(".", 1)[-1]
    return last == "conftest" or last.startswith("test_")


def forbidden_imports(source: str) -> list[str]:
    """The modules `source` imports that a test file must not: conftest and test modules,
    however they are spelled (`from tests.conftest import x`, `from tests import conftest`,
    `import tests.test_x`, `from . import test_x`), at any depth in the file."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if _forbidden(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            module = "." * node.level + (node.module or "")
            if node.module and _forbidden(node.module):
                found.append(module)
            else:
                parent = module + "." if node.module else module
                found += [parent + alias.name for alias in node.names if _forbidden(alias.name)]
    return found


def test_the_check_sees_every_spelling() -> None:
    source = """
from tests.conftest import make_settings
from tests import conftest
import tests.test_jobs
from . import test_gallery_api
def later():
    from tests.test_roles import helper
from tests.support.apps import make_settings
from tests.support import jobs
import contest
"""
    assert forbidden_imports(source) == [
        "tests.conftest",
        "tests.conftest",
        "tests.test_jobs",
        ".test_gallery_api",
        "tests.test_roles",
    ]


def test_no_test_file_imports_conftest_or_another_test_module() -> None:
    offenders = {
        str(path.relative_to(TESTS.parent)): found
        for path in sorted(TESTS.rglob("*.py"))
        if (found := forbidden_imports(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}, "import these from tests/support instead: " + repr(offenders)
