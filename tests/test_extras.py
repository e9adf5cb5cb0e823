"""PostgreSQL's driver and the S3 client are extras: a playground on SQLite starts without
either, and a setting that needs one that is missing is refused in one line naming it."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.cli import main as cli
from app.core.config import Settings
from app.core.errors import MissingExtra
from app.storage.db.engine import Database

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_URL = "postgresql://playground@127.0.0.1:9/playground"

# Run in a fresh interpreter in which psycopg, boto3 and botocore cannot be imported, as in
# `pip install seedream-playground` without extras: the app migrates, starts and answers.
WITHOUT_EXTRAS = """
import asyncio, sys
from importlib.abc import MetaPathFinder

class Absent(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("psycopg", "psycopg_binary", "boto3", "botocore"):
            raise ModuleNotFoundError(f"No module named {name!r}")
        return None

sys.meta_path.insert(0, Absent())

import httpx
from app.cli.main import main
from app.core.config import Settings
from app.web.factory import create_app

assert main(["migrate"]) == 0
app = create_app(Settings())

async def ask() -> None:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            answer = await client.get("/readyz")
            assert answer.status_code == 200, answer.text
            print("ready without extras")

asyncio.run(ask())
for module in ("psycopg", "boto3", "botocore"):
    assert module not in sys.modules, module
"""


@pytest.mark.slow
def test_a_sqlite_playground_starts_and_answers_without_either_extra(tmp_path: Path) -> None:
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("PLAYGROUND_")},
        "PLAYGROUND_DATA_DIR": str(tmp_path / "data"),
    }
    env.pop("PIXELDOJO_API_KEY", None)
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_EXTRAS],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "ready without extras" in result.stdout


def test_a_postgresql_url_without_the_postgres_extra_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` now fails
    expected = (
        "PLAYGROUND_DATABASE_URL names PostgreSQL, which needs the [postgres] extra: "
        "pip install 'seedream-playground[postgres]'"
    )
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, database_url=POSTGRES_URL)
    assert expected in str(refused.value)
    with pytest.raises(MissingExtra) as missing:
        Database(POSTGRES_URL)
    assert missing.value.message == expected
    # As a command says it: the setting's name and the extra, nothing from deep inside.
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PLAYGROUND_DATABASE_URL", POSTGRES_URL)
    with pytest.raises(SystemExit) as said:
        cli.main(["migrate"])
    assert expected in str(said.value)
    assert "Traceback" not in str(said.value) and "ModuleNotFoundError" not in str(said.value)


def test_an_s3_blob_url_without_the_s3_extra_is_refused_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, blob_url="s3://playground/gallery")
    assert (
        "PLAYGROUND_BLOB_URL names an S3 bucket, which needs the [s3] extra: "
        "pip install 'seedream-playground[s3]'"
    ) in str(refused.value)


def test_the_extras_are_optional_and_dev_brings_both() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = " ".join(project["dependencies"])
    for module in ("psycopg", "boto3", "botocore"):
        assert module not in names, f"{module} is a mandatory dependency"
    extras = project["optional-dependencies"]
    assert any(dep.startswith("psycopg[binary]") for dep in extras["postgres"])
    assert {dep.split(">")[0] for dep in extras["s3"]} == {"boto3", "botocore"}
    assert "seedream-playground[postgres,s3]" in extras["dev"]
