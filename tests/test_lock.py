"""The locks agree with pyproject.toml: every dependency is pinned at a version it allows,
nothing is pinned as ours that pyproject no longer asks for, the image's lock carries hashes
and the same versions CI tests with. `scripts/lock` writes them; this says when to run it."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
# What the image installs (Dockerfile), and what CI installs within (.ci/run).
IMAGE_LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
IMAGE_EXTRAS = ("postgres", "s3")
PROJECT = "seedream-playground"


@dataclass(frozen=True)
class Pin:
    version: str
    hashes: int
    # Whom the lock says it is there for: "pyproject" (a dependency of ours) or packages.
    via: frozenset[str]


def read_lock(path: Path) -> dict[str, Pin]:
    pins: dict[str, Pin] = {}
    for entry in re.split(r"\n(?=[a-zA-Z0-9])", path.read_text()):
        head = re.match(r"([A-Za-z0-9._-]+)==([^\s;\\]+)", entry)
        if head is None:
            continue
        via = {
            "pyproject" if "(pyproject.toml)" in name else canonicalize_name(name.strip())
            for name in re.findall(r"#\s+(?:via\s+)?(?:#\s+)?([^\n#]+?)\s*$", entry, re.M)
            if name.strip() and name.strip() != "via" and not name.startswith("-c ")
        }
        pins[canonicalize_name(head.group(1))] = Pin(
            head.group(2), entry.count("--hash=sha256:"), frozenset(via)
        )
    return pins


def requirements(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(text) for text in project["dependencies"]]
    for extra in extras:
        for text in project["optional-dependencies"][extra]:
            requirement = Requirement(text)
            if canonicalize_name(requirement.name) == PROJECT:
                found += requirements(*requirement.extras)  # [dev] brings [postgres,s3]
            else:
                found.append(requirement)
    return found


def check_lock(pins: dict[str, Pin], wanted: list[Requirement]) -> None:
    names = {canonicalize_name(requirement.name) for requirement in wanted}
    for requirement in wanted:
        pin = pins.get(canonicalize_name(requirement.name))
        assert pin is not None, f"{requirement.name} is not locked: run scripts/lock"
        assert requirement.specifier.contains(pin.version, prereleases=True), (
            f"{requirement} but the lock has {pin.version}: run scripts/lock"
        )
        for extra in requirement.extras:  # psycopg[binary] brings psycopg-binary
            assert any(canonicalize_name(requirement.name) in pin.via for pin in pins.values()), (
                f"{requirement.name}[{extra}] brings nothing into the lock"
            )
    stale = sorted(name for name, pin in pins.items() if "pyproject" in pin.via)
    stale = [name for name in stale if name not in names]
    assert not stale, f"locked as dependencies of ours but not in pyproject: {stale}"
    orphans = sorted(
        name for name, pin in pins.items() if pin.via and not pin.via & (set(pins) | {"pyproject"})
    )
    assert not orphans, f"locked for packages no longer locked: {orphans}"


def test_the_image_lock_pins_the_app_with_postgres_and_s3_with_hashes() -> None:
    pins = read_lock(IMAGE_LOCK)
    check_lock(pins, requirements(*IMAGE_EXTRAS))
    assert {"psycopg", "psycopg-binary", "boto3", "botocore", "prometheus-client"} <= set(pins)
    unhashed = sorted(name for name, pin in pins.items() if pin.hashes == 0)
    assert not unhashed, f"no hash for {unhashed}"
    assert "pytest" not in pins, "the image installs no test tools"


def test_the_dev_lock_pins_everything_dev_installs_at_the_images_versions() -> None:
    pins = read_lock(DEV_LOCK)
    check_lock(pins, requirements("dev"))
    image = read_lock(IMAGE_LOCK)
    differ = {name: (pin.version, pins[name].version) for name, pin in image.items()}
    differ = {name: versions for name, versions in differ.items() if len(set(versions)) > 1}
    assert not differ, f"the image would ship other versions than CI tests: {differ}"


def test_a_lock_that_misses_a_dependency_or_keeps_a_dropped_one_is_caught(tmp_path: Path) -> None:
    """The check itself: a lock without prometheus-client, or one that still pins a package
    pyproject dropped, fails it."""
    text = IMAGE_LOCK.read_text()
    without = re.sub(r"\nprometheus-client==[^\n]*(\n    [^\n]*)*", "", text)
    assert without != text
    (tmp_path / "without.lock").write_text(without)
    try:
        check_lock(read_lock(tmp_path / "without.lock"), requirements(*IMAGE_EXTRAS))
    except AssertionError as caught:
        assert "prometheus-client is not locked" in str(caught)
    else:
        raise AssertionError("a missing dependency went unnoticed")
    dropped = [r for r in requirements(*IMAGE_EXTRAS) if r.name != "tqdm"]
    try:
        check_lock(read_lock(IMAGE_LOCK), dropped)
    except AssertionError as caught:
        assert "tqdm" in str(caught)
    else:
        raise AssertionError("a dropped dependency still locked went unnoticed")
