"""The command line keeps the conventions of the ones people know (gh, llm, datasette): the
server and token from the environment or `.env`, `login` keeping a token only its owner
can read, `models`, `presets` and `jobs`, help with a description, defaults and an
example for every command, and shell completion."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import click
import pytest

from app.cli.main import cli
from app.features.people import accounts
from app.storage.db.engine import Database
from tests.support.apps import RunningApp, make_settings, serve_app
from tests.support.cli import cli_env, one_line_error, run_cli
from tests.support.emulators import RunningEmulator

pytestmark = pytest.mark.slow


def every_command() -> list[tuple[str, click.Command]]:
    found: list[tuple[str, click.Command]] = []
    for name, command in cli.commands.items():
        if isinstance(command, click.Group):
            found += [(f"{name} {sub}", each) for sub, each in command.commands.items()]
        else:
            found.append((name, command))
    return found


def test_every_command_has_a_description_an_example_and_its_defaults() -> None:
    for name, command in every_command():
        with click.Context(command, info_name=f"seedream-playground {name}") as context:
            text = command.get_help(context)
        assert command.help and len(command.help.split()) >= 4, name
        if name != "completion":
            assert "Examples:" in text and f"seedream-playground {name}" in text, name
        assert max(len(line) for line in text.splitlines()) <= 100, name
        for option in command.params:
            if isinstance(option, click.Option) and option.show_default:
                assert "[default:" in text, (name, option.name)
    with click.Context(cli.commands["generate"]) as context:
        generate = " ".join(cli.commands["generate"].get_help(context).split())
    for shown in ("[default: auto_2K", "[default: 1]", "[default: .]", "-n, --num-images"):
        assert shown in generate, shown


def test_completion_scripts_are_printed_for_each_shell(tmp_path: Path) -> None:
    bash = run_cli("completion", "bash", cwd=tmp_path)
    assert bash.returncode == 0 and "_SEEDREAM_PLAYGROUND_COMPLETE" in bash.stdout
    completed = run_cli(
        cwd=tmp_path,
        env=cli_env(
            _SEEDREAM_PLAYGROUND_COMPLETE="bash_complete", COMP_WORDS="seedream-playground gen",
            COMP_CWORD="1",
        ),
    )  # fmt: skip
    assert "generate" in completed.stdout


def test_the_server_and_token_come_from_a_dot_env_and_login_keeps_one(
    tmp_path: Path, emulator: RunningEmulator
) -> None:
    settings = make_settings(tmp_path / "data", emulator)
    db = Database.at_path(settings.database_path)
    db.migrate()
    ada = accounts.create_user(db, name="Ada", password="correct horse battery")
    assert ada.id is not None
    token = accounts.create_api_token(db, user_id=ada.id, name="laptop").secret
    db.dispose()
    with serve_app(settings) as app:
        work = tmp_path / "work"
        work.mkdir()
        (work / ".env").write_text(f"PLAYGROUND_SERVER={app.url}\nPLAYGROUND_TOKEN={token}\n")
        made = run_cli("generate", "a fox", "--json", cwd=work)
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout)["job"]["author"] == "Ada"

        # No .env here: the server from the environment, the token from login.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        env = cli_env(PLAYGROUND_SERVER=app.url)
        refused = run_cli("models", cwd=elsewhere, env=env)
        assert "seedream-playground login" in one_line_error(refused)
        wrong = run_cli(
            "login", "--name", "Ada", "--password-stdin", cwd=elsewhere, env=env, stdin="nope\n"
        )
        assert "Wrong name or password" in one_line_error(wrong)
        signed_in = run_cli(
            "login", "--name", "Ada", "--password-stdin", cwd=elsewhere, env=env,
            stdin="correct horse battery\n",
        )  # fmt: skip
        assert signed_in.returncode == 0, signed_in.stderr
        kept = tmp_path / "config" / "seedream-playground" / "credentials.json"
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        assert token not in kept.read_text(), "a new token, not the .env's"
        assert token not in signed_in.stdout + signed_in.stderr
        listed = run_cli("models", "--json", cwd=elsewhere, env=env)
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout)["models"][0]["api_id"] == "seedream-4"


def test_jobs_models_and_presets_read_what_the_server_has(app: RunningApp, tmp_path: Path) -> None:
    made = run_cli("generate", "a red kite", "--server", app.url, "--json", "-O", "a", cwd=tmp_path)
    job_id = json.loads(made.stdout)["job"]["id"]
    listed = run_cli("jobs", "list", "--server", app.url, cwd=tmp_path)
    assert listed.stdout.split()[:4] == [str(job_id), "Done", "1", "image"]
    shown = run_cli("jobs", "show", str(job_id), "--server", app.url, "--json", cwd=tmp_path)
    assert json.loads(shown.stdout)["job"]["parameters"]["prompt"] == "a red kite"
    waited = run_cli("jobs", "wait", str(job_id), "--server", app.url, cwd=tmp_path)
    assert waited.returncode == 0 and waited.stdout.strip() == f"Job {job_id}: Done"
    fetched = run_cli("jobs", "download", str(job_id), "-O", "b", "--server", app.url, cwd=tmp_path)
    assert (tmp_path / fetched.stdout.strip()).read_bytes() == (
        tmp_path / json.loads(made.stdout)["files"][0]
    ).read_bytes()
    models = run_cli("models", "--server", app.url, cwd=tmp_path)
    assert models.stdout.splitlines()[0].split()[:2] == ["*", "seedream-4"]
    assert "seedance" not in models.stdout, "image models only"
    presets = run_cli("presets", "--server", app.url, cwd=tmp_path)
    assert presets.stdout.split()[:2] == ["childrens-storybook", "landscape_4_3"]
    missing = run_cli("jobs", "show", "999", "--server", app.url, cwd=tmp_path)
    assert "There is no job 999." in one_line_error(missing)


def test_a_grid_plan_counts_in_words(app: RunningApp, tmp_path: Path) -> None:
    plan = run_cli(
        "grid", "a lighthouse at dawn", "--x", "preset=cyberpunk-street", "--server", app.url,
        cwd=tmp_path,
    )  # fmt: skip
    assert "1 job, 1 image, 1 credit (model seedream-4)" in plan.stderr
    assert "pass --yes" in one_line_error(plan)
