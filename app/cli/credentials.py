"""Which playground the command line talks to, and the API token it shows there.

The server: `--server`, else `PLAYGROUND_SERVER` (from the environment, or a `.env` in
the folder the command runs from), else http://127.0.0.1:8000. The token: the
environment's or `.env`'s `PLAYGROUND_TOKEN`, else the one `seedream-playground login`
kept for that server in the person's own config folder (a file only they may read,
0600). A token is never printed, and never sent anywhere but the server it was made on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlsplit

import platformdirs
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core.config import APP_NAME

DEFAULT_SERVER = "http://127.0.0.1:8000"
SERVER_VARIABLE = "PLAYGROUND_SERVER"
TOKEN_VARIABLE = "PLAYGROUND_TOKEN"
CREDENTIALS_FILE = "credentials.json"


class BadServer(ValueError):
    """A server address the command line cannot use; the message says why."""


class ClientSettings(BaseSettings):
    """The command line's own settings, read like the app's: environment, then `.env`."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    server: str | None = Field(None, validation_alias=AliasChoices(SERVER_VARIABLE))
    token: SecretStr | None = Field(None, validation_alias=AliasChoices(TOKEN_VARIABLE))


def normalised_server(text: str) -> str:
    """`localhost:8000` as `http://localhost:8000`; anything but http(s) refused."""
    text = text.strip().rstrip("/")
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    try:
        parts.port  # noqa: B018 (reading it checks it)
    except ValueError:
        raise BadServer(f"{text!r} has a port that is not a number") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadServer(f"{text!r} is not a playground's address, like {DEFAULT_SERVER}")
    if parts.query or parts.fragment:
        raise BadServer(f"{text!r}: give the playground's address alone, like {DEFAULT_SERVER}")
    return text


def server_from(option: str | None) -> str:
    """The server to talk to (see the module docstring); BadServer if it is not one."""
    if option:
        return normalised_server(option)
    configured = ClientSettings().server
    return normalised_server(configured) if configured else DEFAULT_SERVER


def config_dir() -> Path:
    """The person's own config folder (~/.config/seedream-playground on Linux)."""
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def credentials_path() -> Path:
    return config_dir() / CREDENTIALS_FILE


def _stored() -> dict[str, dict[str, str]]:
    try:
        document = json.loads(credentials_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    servers = document.get("servers") if isinstance(document, dict) else None
    return {
        str(url): dict(entry)
        for url, entry in (servers or {}).items()
        if isinstance(entry, dict) and isinstance(entry.get("token"), str)
    }


def token_for(server: str) -> str | None:
    """The token to show `server`: the environment's or `.env`'s, else the one kept by login."""
    configured = ClientSettings().token
    if configured is not None and configured.get_secret_value().strip():
        return configured.get_secret_value().strip()
    entry = _stored().get(server)
    return entry["token"] if entry else None


def store_token(server: str, *, token: str, name: str) -> Path:
    """Keep `token` for `server` (replacing any other), in a file only this person may
    read: written aside at 0600 and renamed, so no other mode is ever seen."""
    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    servers = _stored()
    servers[server] = {"token": token, "name": name}
    path = folder / CREDENTIALS_FILE
    partial = folder / f".{CREDENTIALS_FILE}.part"
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        json.dump({"servers": servers}, stream, indent=2)
    os.chmod(partial, 0o600)  # whatever the umask, or an older file's mode
    os.replace(partial, path)
    return path
