"""The team server's recipe: compose.yaml names real settings and commands, the README and
docs/team-server.md document every one of them, and `backup` on PostgreSQL says how in one
line."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from app.cli import main as cli
from app.core.config import Settings, env_name
from tests.conftest import DatabaseChoice

ROOT = Path(__file__).resolve().parent.parent
# Variables compose.yaml uses that are not the app's own settings.
NOT_SETTINGS = {
    "POSTGRES_PASSWORD",
    "PLAYGROUND_PORTS",
    "PLAYGROUND_WORKER_CONCURRENCY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_REGION",
}


def compose() -> dict[str, object]:
    loaded: dict[str, object] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_compose_runs_postgres_16_scalable_web_and_worker_roles_and_optional_minio() -> None:
    services = compose()["services"]
    assert isinstance(services, dict)
    assert services["db"]["image"] == "postgres:16"
    assert services["web"]["command"][-1] == "--no-worker"
    assert services["worker"]["command"][:2] == ["seedream-playground", "worker"]
    # Scaling needs no fixed container names and a port range, not one port.
    for name in ("web", "worker"):
        assert "container_name" not in services[name]
    assert re.fullmatch(r"\$\{PLAYGROUND_PORTS:-\d+-\d+\}:8000", services["web"]["ports"][0])
    assert services["minio"]["profiles"] == ["minio"]
    for name in ("db", "web", "worker"):
        assert "profiles" not in services[name]
    # The roles' commands exist and take what compose gives them.
    for args in (services["web"]["command"][1:], ["worker", "--concurrency", "8"]):
        command = cli.cli.commands[args[0]]
        assert command.make_context(args[0], list(args[1:])).params, args


def test_every_variable_compose_sets_is_a_setting_and_in_the_readme() -> None:
    text = (ROOT / "compose.yaml").read_text()
    readme = (ROOT / "README.md").read_text() + (ROOT / "docs" / "team-server.md").read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text)) | set(
        re.findall(r"^\s+((?:PLAYGROUND|PIXELDOJO)_[A-Z0-9_]+):", text, re.MULTILINE)
    )
    settings = {env_name(field) for field in Settings.model_fields}
    assert used - NOT_SETTINGS <= settings, used - NOT_SETTINGS - settings
    missing = sorted(name for name in used if f"`{name}" not in readme)
    assert not missing, f"README does not document {missing}"


def test_compose_hands_the_app_no_empty_variables() -> None:
    """`${VAR:-}` gives a container an empty string for a variable the host never set (an
    empty signing key, once); a name without a value passes the host's variable only if set."""
    text = (ROOT / "compose.yaml").read_text()
    assert re.findall(r"\$\{\w+:-\}", text) == []
    environment = compose()["x-playground"]["environment"]  # type: ignore[index]
    for name in (
        "PLAYGROUND_SECRET_KEY",
        "PLAYGROUND_FORWARDED_ALLOW_IPS",
        "PLAYGROUND_BLOB_URL",
        "PLAYGROUND_S3_ENDPOINT_URL",
        "AWS_SECRET_ACCESS_KEY",
    ):
        assert environment[name] is None, name


def test_backup_on_postgresql_says_in_one_line_how(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_database: DatabaseChoice
) -> None:
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(tmp_path / "data"))
    postgres_database.use_in_environment(monkeypatch)
    with pytest.raises(SystemExit) as said:
        cli.main(["backup", str(tmp_path / "gallery.tar")])
    message = str(said.value)
    assert "\n" not in message and "pg_dump" in message and "export" in message
    assert not (tmp_path / "gallery.tar").exists()
    assert f"pg_dump -Fc -f playground.dump '{postgres_database.url}'" in message
