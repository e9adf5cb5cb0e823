"""The layers written down in pyproject.toml hold: every package imports only from those
below it (imports made for type checking included), no two sibling packages import each
other at any depth, as `lint-imports` checks in CI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
