"""The project keeps its promises to a newcomer: a README of about 300 lines whose settings
table is Settings' own, every command documented, vendored files that match their recorded
checksums, a Dockerfile that matches the team server's documentation."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from app.cli.main import cli
from app.core.config import Settings, env_name
from app.core.resources import STATIC_DIR, TEMPLATES_DIR

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
TEAM_SERVER = (ROOT / "docs" / "team-server.md").read_text()
# The command line's own settings (app/cli/credentials.py), beside the app's.
CLIENT_SETTINGS = {"PLAYGROUND_SERVER": "http://127.0.0.1:8000", "PLAYGROUND_TOKEN": None}


def test_the_readme_is_for_a_newcomer_and_short() -> None:
    assert len(README.splitlines()) <= 300
    headings = re.findall(r"^## (.+)$", README, flags=re.MULTILINE)
    assert headings[:3] == ["Quickstart", "Using the playground", "From the command line"]


def test_the_settings_table_is_settings_own() -> None:
    """Every row names a setting (the app's, or the command line's), every setting has a
    row, and a number or switch's default is the one the row gives."""
    section = README.split("## Settings", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([A-Z0-9_]+)` \| ([^|]*) \|", section, flags=re.MULTILINE)
    table = dict(rows)
    assert len(table) == len(rows), "each setting once"
    fields = {env_name(name): field for name, field in Settings.model_fields.items()}
    assert set(table) == set(fields) | set(CLIENT_SETTINGS)
    for name, field in fields.items():
        default = field.default
        if isinstance(default, bool):
            assert f"`{str(default).lower()}`" in table[name], name
        elif isinstance(default, int | float):
            shown = f"{default:g}" if isinstance(default, float) else str(default)
            assert f"`{shown}`" in table[name], (name, table[name])
    for name, default in CLIENT_SETTINGS.items():
        assert default is None or f"`{default}`" in table[name], name


def test_every_cli_command_is_documented_in_the_readme() -> None:
    subcommands = list(cli.commands)
    assert subcommands
    for name in subcommands:
        assert f"seedream-playground {name}" in README, name


def test_vendored_files_match_their_recorded_checksums() -> None:
    table = (STATIC_DIR / "vendor" / "README.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", table, flags=re.MULTILINE)
    assert rows
    for name, recorded in rows:
        actual = hashlib.sha256((STATIC_DIR / "vendor" / name).read_bytes()).hexdigest()
        assert actual == recorded, name
        assert f'static_url("vendor/{name}")' in (TEMPLATES_DIR / "base.html").read_text()


def test_the_dockerfile_installs_the_package_and_serves_on_all_interfaces() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"pip install --no-deps /build/src$", dockerfile, re.MULTILINE)
    assert 'CMD ["seedream-playground", "serve", "--host", "0.0.0.0"]' in dockerfile
    assert "docker run -p 8000:8000" in TEAM_SERVER
    assert "seedream-playground serve --host 0.0.0.0" in TEAM_SERVER


def test_the_readme_quickstart_is_two_commands_and_ci_runs_the_test_one() -> None:
    quickstart = README.split("## Quickstart", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line for line in quickstart.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2
    assert "seedream-playground serve" in commands[0]
    assert "pytest" in commands[1]
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
    labels = [line for line in quickstart.splitlines() if line.startswith("#")]
    assert "contributors" in labels[1], "the test suite is not a step of setting up"


def test_every_package_the_app_imports_is_a_declared_dependency() -> None:
    import ast
    import importlib.metadata
    import sys
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # The extras the app loads when a setting asks (app/core/extras.py) count; [dev] does not.
    requirements = [
        *project["dependencies"],
        *project["optional-dependencies"]["postgres"],
        *project["optional-dependencies"]["s3"],
    ]
    declared = {
        re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")
        for requirement in requirements
    }
    providers = importlib.metadata.packages_distributions()
    imported: set[str] = set()
    for source in (ROOT / "app").rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"app", "__future__"}
    assert third_party
    for module in sorted(third_party):
        dists = {name.lower().replace("_", "-") for name in providers.get(module, [])}
        assert dists & declared, f"app imports {module} ({dists}) but pyproject does not declare it"


def test_the_real_service_section_starts_with_doctor_and_its_output_fits_80_columns() -> None:
    section = README.split("## Using the real PixelDojo", 1)[1].split("\n## ", 1)[0]
    first_command = section.split("```sh", 1)[1].split("```", 1)[0].strip()
    assert first_command.endswith("seedream-playground doctor")
    assert section.index("doctor") < section.index("seedream-playground serve")
    captured = (ROOT / "docs" / "doctor.md").read_text()
    blocks = re.findall(r"```text\n(.*?)```", captured, flags=re.DOTALL)
    assert len(blocks) >= 3
    for block in blocks:
        assert "Seedream Playground doctor" in block
        assert max(len(line) for line in block.splitlines()) <= 80
