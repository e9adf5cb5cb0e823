"""The layers written down in pyproject.toml hold: every package imports only from those
below it (imports made for type checking included), no two sibling packages import each
other at any depth, as `lint-imports` checks in CI."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel

from app.storage.db import tables
from app.web import schemas

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_are_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "BROKEN" not in result.stdout
    assert "Dependencies point down KEPT" in result.stdout
    assert "No package imports a sibling that imports it back, at any depth KEPT" in result.stdout


def test_the_tables_module_holds_rows_and_the_web_the_answers() -> None:
    """Tables hold rows; what leaves the server is shaped in app/web/schemas.py, so a change
    to an answer is never a change to the storage layer."""

    def models(module: object) -> dict[str, type[BaseModel]]:
        return {
            name: value
            for name, value in vars(module).items()
            if inspect.isclass(value)
            and issubclass(value, BaseModel)
            and value.__module__ == getattr(module, "__name__", None)
        }

    not_tables = sorted(
        name for name, model in models(tables).items() if not hasattr(model, "__table__")
    )
    assert not_tables == []

    assert "JobPublic" in models(schemas)
    assert all(not hasattr(model, "__table__") for model in models(schemas).values())
