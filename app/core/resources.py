"""Where the files that ship with the package live.

Templates, static files and migrations are inside the `app` package, so a wheel
carries them and an installed app finds them next to its code whatever the current
directory is: paths are relative to this file, never to the working directory.
"""

from pathlib import Path

APP_DIR = Path(__file__).resolve().parent.parent

TEMPLATES_DIR = APP_DIR / "web" / "templates"
STATIC_DIR = APP_DIR / "web" / "static"
MIGRATIONS_DIR = APP_DIR / "storage" / "db" / "migrations"
