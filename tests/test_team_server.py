"""The team server's recipe: compose.yaml names real settings and commands, the README and
docs/team-server.md document every one of them, every image is pinned and every service
hardened, the Dockerfile builds from the lock as a numeric user, and `backup` on PostgreSQL
says how in one line. scripts/compose-check runs the recipe for real (from .ci/run)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.cli import main as cli
from app.core.config import Settings, env_name
from tests.support.apps import RunningApp
from tests.support.databases import DatabaseChoice

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
    assert services["db"]["image"].startswith("postgres:16.")
    assert services["web"]["command"][-1] == "--no-worker"
    assert services["worker"]["command"][:2] == ["seedream-playground", "worker"]
    # Scaling needs no fixed container names and a port range, not one port.
    for name in ("web", "worker"):
        assert "container_name" not in services[name]
    assert re.fullmatch(
        r"127\.0\.0\.1:\$\{PLAYGROUND_PORTS:-\d+-\d+\}:8000", services["web"]["ports"][0]
    )
    assert services["minio"]["profiles"] == ["minio"]
    for name in ("db", "web", "worker"):
        assert "profiles" not in services[name]
    # The roles' commands exist and take what compose gives them.
    worker_args = [
        arg.replace("${PLAYGROUND_WORKER_CONCURRENCY:-8}", "8")
        for arg in services["worker"]["command"][1:]
    ]
    for args in (services["web"]["command"][1:], worker_args):
        command = cli.cli.commands[args[0]]
        assert command.make_context(args[0], list(args[1:])).params, args
    worker = cli.cli.commands["worker"].make_context("worker", list(worker_args[1:]))
    assert worker.params["health_port"] == 8001


def test_every_image_is_pinned_to_a_version_the_apps_own_included() -> None:
    from app import __version__

    for name, service in services_of(compose()).items():
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag, f"{name}: {image} has no tag"
        assert tag != "latest" and re.search(r"\d", tag), f"{name}: {image} is not a version"
    assert compose()["x-playground"]["image"] == f"seedream-playground:{__version__}"  # type: ignore[index]


def test_compose_passes_nothing_blank_and_profile_services_require_nothing() -> None:
    text = (ROOT / "compose.yaml").read_text()
    # ${X:-} and ${X-} would pass a blank when the host has no X.
    assert not re.findall(r"\$\{[A-Z0-9_]+:?-\}", text)
    # Compose interpolates every service before it filters by profile: a required variable
    # (${X:?...}) in a profile's service would stop `up` without the profile.
    for name, service in services_of(compose()).items():
        if service.get("profiles"):
            rendered = yaml.safe_dump(service)
            assert not re.findall(r"(?<!\$)\$\{[A-Z0-9_]+:\?", rendered), name


def test_every_service_is_hardened_limited_and_checked() -> None:
    for name, service in services_of(compose()).items():
        assert service["security_opt"] == ["no-new-privileges:true"], name
        assert service["cap_drop"] == ["ALL"], name
        assert service["mem_limit"] and service["cpus"], name
        if name != "minio-bucket":  # runs once and exits
            test = service["healthcheck"]["test"]
            assert test[0] == "CMD" and not service["healthcheck"].get("disable"), name
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
    services = services_of(compose())
    # The app's probes: a web process's /readyz, a worker's on its health port.
    assert services["web"]["healthcheck"]["test"][-1] == "http://127.0.0.1:8000/readyz"
    assert services["worker"]["healthcheck"]["test"][-1] == "http://127.0.0.1:8001/readyz"
    for name in ("db", "web", "worker", "minio-bucket"):
        assert services[name]["read_only"] is True, name
    # MinIO's console never opens: nothing published, and the console itself off.
    assert "ports" not in services["minio"]
    assert services["minio"]["environment"]["MINIO_BROWSER"] == "off"


# What compose.ci.yaml may change, and why (its comments): images that cannot be pulled,
# never pulling, host networking, and what host networking forces (the app's addresses of
# db and minio, one port per container, so one container per project, and the
# healthchecks that follow those ports).
OVERRIDE_MAY_SET = {
    "image",
    "pull_policy",
    "network_mode",
    "entrypoint",
    "command",
    "environment",
    "healthcheck",
    "deploy",
}


def test_the_ci_override_only_swaps_images_and_sets_host_networking() -> None:
    from app import __version__

    override: dict[str, Any] = yaml.safe_load((ROOT / "compose.ci.yaml").read_text())
    services: dict[str, dict[str, Any]] = override["services"]
    assert set(services) <= set(services_of(compose()))
    for name, service in services.items():
        assert set(service) <= OVERRIDE_MAY_SET, f"{name} changes {set(service) - OVERRIDE_MAY_SET}"
        assert service["network_mode"] == "host", name
        assert service["pull_policy"] == "never", name
        # Only images made on the machine: the app's own, or the base made from Debian's.
        assert service.get("image", f"seedream-playground:{__version__}") in {
            f"seedream-playground:{__version__}",
            "${CHECK_BASE_IMAGE}",
        }, name
        assert service.get("deploy", {}).keys() <= {"replicas"}, name
        assert not service.get("healthcheck", {}).get("disable") or name == "minio-bucket", name


def test_the_dockerfile_builds_from_the_lock_on_a_pinned_base_as_a_numeric_user() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    base = re.search(r"^ARG BASE=(\S+)$", dockerfile, re.MULTILINE)
    assert base is not None and re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base.group(1))
    assert re.search(r"^USER \d+:\d+$", dockerfile, re.MULTILINE)
    # The dependency layer comes from the lock alone, before any of the app is copied.
    lock = dockerfile.index("COPY requirements.lock")
    install = dockerfile.index("--require-hashes -r /build/requirements.lock")
    assert lock < install < dockerfile.index("COPY app ")
    assert "COPY . " not in dockerfile, "the whole context would sit in a layer"
    healthcheck = re.search(r"^HEALTHCHECK .*\n?.*CMD (\[.*\])$", dockerfile, re.MULTILINE)
    assert healthcheck is not None, "an exec-form HEALTHCHECK"
    assert json.loads(healthcheck.group(1))[-1] == "http://127.0.0.1:8000/readyz"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for pattern in (
        "**/.env",
        "**/.env.*",
        "**/data/",
        "**/*.db",
        "**/*.zip",
        "**/*.tar",
        "**/test-artifacts/",
    ):
        assert pattern in ignored, pattern


def test_the_probe_command_says_in_one_line_why_a_container_is_unhealthy(
    app: RunningApp, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli import probe

    assert probe.main([app.url + "/readyz"]) == 0
    assert probe.main(["http://127.0.0.1:9/readyz"]) == 1
    assert probe.main([app.url + "/no-such-page"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{app.url}/readyz: 200"
    assert lines[1].startswith("http://127.0.0.1:9/readyz: no answer (")
    assert lines[2].startswith(f"{app.url}/no-such-page: 404")


def services_of(document: dict[str, object]) -> dict[str, dict[str, Any]]:
    services = document["services"]
    assert isinstance(services, dict)
    return services


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
