"""A hostile gallery export is refused whole, in one clear line: HTML and JavaScript labelled
as images, zip bombs, a 1 GB member, traversal names, a 50,000 × 50,000 thumbnail, a
missing member, bad JSON, megabytes of blank lines, a row repeated, and fields past the
limits the app holds its own input to. The gallery it was imported into is unchanged, and
nothing is written outside its data dir's tmp/, which is left empty."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import main as cli
from tests.support.apps import in_process, make_settings
from tests.support.databases import DatabaseChoice
from tests.support.emulators import serve_emulator
from tests.support.hostile_exports import (
    HOSTILE,
    Export,
    files_under,
    gallery_state,
    missing_member,
    rebuilt,
)
from tests.support.hostile_zip import RawZip
from tests.support.jobs import wait_for_job


@pytest.mark.parametrize("hostility", list(HOSTILE))
def test_a_hostile_export_is_refused_whole(
    hostility: str,
    export_and_target: tuple[Export, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    export, template = export_and_target
    change, expected = HOSTILE[hostility]
    data_dir = tmp_path / "data"
    shutil.copytree(template, data_dir)
    hostile = tmp_path / "hostile.zip"
    rebuilt(export, change).write(hostile)
    before = gallery_state(data_dir)
    around = files_under(tmp_path, leaving_out=data_dir)

    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(data_dir))
    with pytest.raises(SystemExit) as refused:
        cli.main(["import", str(hostile)])
    message = str(refused.value)
    assert message.startswith("Import failed, nothing was changed: ")
    assert "\n" not in message
    assert re.search(expected, message), message
    assert str(data_dir) not in message, "no path on this machine (the scratch file's)"

    assert gallery_state(data_dir) == before, "the gallery is as it was"
    assert list((data_dir / "tmp").iterdir()) == [], "tmp/ is left empty"
    assert files_under(tmp_path, leaving_out=data_dir) == around, "nothing written elsewhere"


def test_every_hostility_at_once_fails_in_one_line_and_writes_nothing(
    export_and_target: tuple[Export, Path], tmp_path: Path
) -> None:
    """From the command line, as a person runs it: one line, no traceback, exit status 1."""
    export, template = export_and_target
    data_dir = tmp_path / "data"
    shutil.copytree(template, data_dir)

    def everything(members: dict[str, bytes], extra: RawZip) -> None:
        for change, _ in HOSTILE.values():
            if change is not missing_member:
                change(members, extra)

    hostile = tmp_path / "hostile.zip"
    rebuilt(export, everything).write(hostile)
    assert hostile.stat().st_size < 5 * 1024 * 1024
    before = gallery_state(data_dir)
    home, temp, cwd = (tmp_path / name for name in ("home", "temp", "cwd"))
    for folder in (home, temp, cwd):
        folder.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "app", "import", str(hostile)],
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "TMPDIR": str(temp),
            "PLAYGROUND_DATA_DIR": str(data_dir),
        },
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    # Every command first says which data dir it uses; the failure is the one line after.
    lines = [
        line for line in result.stderr.strip().splitlines() if not line.startswith("Data dir:")
    ]
    assert len(lines) == 1 and lines[0].startswith("Import failed, nothing was changed: "), (
        result.stderr
    )
    assert "Traceback" not in result.stderr
    assert gallery_state(data_dir) == before
    assert list((data_dir / "tmp").iterdir()) == []
    for folder in (home, temp, cwd):
        assert list(folder.iterdir()) == [], folder


def test_the_honest_export_still_imports(
    export_and_target: tuple[Export, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export, template = export_and_target
    data_dir = tmp_path / "data"
    shutil.copytree(template, data_dir)
    honest = tmp_path / "honest.zip"
    rebuilt(export, lambda members, extra: None).write(honest)
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(data_dir))
    assert cli.main(["import", str(honest)]) == 0
    state = gallery_state(data_dir)
    assert len(state["rows"]["jobs"]) == 3 and len(state["rows"]["images"]) == 6
    assert list((data_dir / "tmp").iterdir()) == []


def test_a_hostile_export_changes_nothing_in_a_postgresql_gallery(
    export_and_target: tuple[Export, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    postgres_database: DatabaseChoice,
) -> None:
    """Refused while its images are stored (their bytes go again) and while its rows are
    written (the transaction goes): a PostgreSQL gallery, and the images it keeps in
    PostgreSQL, are as they were; an honest export then imports."""
    export, _ = export_and_target
    data_dir = tmp_path / "data"
    with serve_emulator() as emulator:
        settings = make_settings(data_dir, emulator, database=postgres_database)
        with in_process(settings) as client:
            job = client.post("/api/jobs", json={"prompt": "mine", "num_images": 2})
            wait_for_job(client, job.json()["id"])
    shutil.rmtree(data_dir / "tmp", ignore_errors=True)
    monkeypatch.setenv("PLAYGROUND_DATA_DIR", str(data_dir))
    postgres_database.use_in_environment(monkeypatch)
    before = gallery_state(data_dir, postgres_database)
    assert len(before["rows"]["images"]) == 2 and len(before["blobs"]) == 2
    for hostility in ("html labelled as an image", "bad JSON"):
        change, expected = HOSTILE[hostility]
        hostile = tmp_path / "hostile.zip"
        rebuilt(export, change).write(hostile)
        with pytest.raises(SystemExit) as refused:
            cli.main(["import", str(hostile)])
        assert re.search(expected, str(refused.value)), refused.value
        assert gallery_state(data_dir, postgres_database) == before, hostility
        assert list((data_dir / "tmp").iterdir()) == [], hostility

    honest = tmp_path / "honest.zip"
    rebuilt(export, lambda members, extra: None).write(honest)
    assert cli.main(["import", str(honest)]) == 0
    state = gallery_state(data_dir, postgres_database)
    assert len(state["rows"]["jobs"]) == 3 and len(state["rows"]["images"]) == 6
    assert len(state["blobs"]) == 6
