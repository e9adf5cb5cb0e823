"""Step 3: the images, never pulled: a Debian base, then the app's from its Dockerfile."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from .run import (
    APP_IMAGE,
    BAIT,
    BASE_IMAGE,
    ROOT,
    CheckFailed,
    Run,
    free_port,
    stop_process,
    url_answers,
    wait_until,
)


def debian_release() -> tuple[str, str]:
    """This machine's release and the mirror apt uses for it."""
    release = re.search(
        r"^VERSION_CODENAME=(\w+)", Path("/etc/os-release").read_text(), re.MULTILINE
    )
    if release is None:
        raise CheckFailed("no VERSION_CODENAME in /etc/os-release: not Debian?")
    sources = Path("/etc/apt/sources.list.d/debian.sources")
    text = sources.read_text() if sources.exists() else ""
    found = re.search(r"^URIs:\s*(\S+)", text, re.MULTILINE)
    if found is None and Path("/etc/apt/sources.list").exists():
        found = re.search(
            r"^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+" + release.group(1) + r"\s",
            Path("/etc/apt/sources.list").read_text(),
            re.MULTILINE,
        )
    return release.group(1), found.group(1) if found else "http://deb.debian.org/debian"


def build_base_image(run: Run, images: list[str]) -> str:
    release, mirror = debian_release()
    rootfs = run.work / "rootfs"
    run.run(
        [
            "debootstrap",
            "--variant=minbase",
            # apt's own cache: a second run (or a machine that installed these) downloads
            # nothing again.
            "--cache-dir=/var/cache/apt/archives",
            "--include=python3,python3-venv,ca-certificates",
            release,
            str(rootfs),
            mirror,
        ],
        quiet=True,
    )
    # Fewer bytes for vfs to copy at every layer: documentation, locales and apt's lists.
    for garbage in ("usr/share/doc", "usr/share/man", "usr/share/locale", "var/lib/apt/lists"):
        shutil.rmtree(rootfs / garbage, ignore_errors=True)
    tag = f"{BASE_IMAGE}:{release}"
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run(
        [
            run.docker,
            "import",
            "--change",
            "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "-",
            tag,
        ],
        stdin=tar.stdout,
        env=run.docker_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tar.stdout is not None
    tar.stdout.close()
    tar.wait()
    if imported.returncode != 0:
        raise CheckFailed(f"docker import: {imported.stderr}")
    images.append(tag)
    shutil.rmtree(rootfs, ignore_errors=True)
    run.say(f"base image {tag}: Debian {release} from {mirror}, {image_size(run, tag)}")
    return tag


def image_exists(run: Run, image: str) -> bool:
    return run.docker_cmd("image", "inspect", image, check=False, quiet=True).returncode == 0


def image_size(run: Run, image: str) -> str:
    size = int(
        run.docker_cmd("image", "inspect", "--format", "{{.Size}}", image, quiet=True).stdout
    )
    return f"{size / 1e6:.0f} MB"


def serve_wheels(run: Run) -> str:
    """Every wheel the image installs, downloaded here (this machine's pip reaches PyPI and
    trusts its certificates; a container's would not), served on loopback for the build."""
    wheels = run.work / "wheels"
    pip = [str(ROOT / ".venv" / "bin" / "pip"), "wheel", "--quiet", "--wheel-dir", str(wheels)]
    run.run([*pip, "--no-deps", "--require-hashes", "-r", "requirements.lock"], quiet=True)
    # What pip builds the app's own wheel with (pyproject.toml's build-system).
    run.run([*pip, "hatchling>=1.25"], quiet=True)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            "--directory",
            str(wheels),
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    run.later("stop the wheel server", lambda: stop_process(server))
    url = f"http://127.0.0.1:{port}/"
    wait_until("the wheel server", lambda: url_answers(url), timeout=30, every=0.2)
    run.say(f"{len(list(wheels.glob('*.whl')))} wheels served at {url}")
    return url


def check_context(run: Run) -> None:
    """Build a copy of the context, with bait planted in it, into a tar and read it: only the
    package's own files may be there."""
    copy = run.work / "context"
    listed = run.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], quiet=True
    )
    for name in filter(None, listed.stdout.split("\0")):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    for name in BAIT:
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        (copy / name).write_text("must not reach the image\n")
    tar = run.work / "context.tar"
    env = {**run.docker_env, "DOCKER_BUILDKIT": "1"}
    run.run(
        [
            run.docker,
            "build",
            "--pull=false",
            "--file",
            "-",
            "--output",
            f"type=tar,dest={tar}",
            str(copy),
        ],
        env=env,
        input="FROM scratch\nCOPY . /context/\n",
        quiet=True,
    )
    names = subprocess.run(["tar", "-tf", str(tar)], capture_output=True, text=True, check=True)
    inside = {name.removeprefix("context/").rstrip("/") for name in names.stdout.split()}
    leaked = sorted(name for name in BAIT if name in inside)
    if leaked:
        raise CheckFailed(f".dockerignore lets these into the build context: {leaked}")
    tops = sorted({name.split("/")[0] for name in inside if name and name != "context"})
    run.say(f"build context: {tops}; none of the {len(BAIT)} planted files")
    shutil.rmtree(copy)
    tar.unlink()


def build_app_image(run: Run, base: str, wheels: str, images: list[str]) -> None:
    env = {**run.docker_env, "DOCKER_BUILDKIT": "1"}
    run.run(
        [
            run.docker,
            "build",
            "--pull=false",
            "--network=host",
            "--progress=plain",
            f"--build-arg=BASE={base}",
            "--build-arg=PIP_NO_INDEX=1",
            f"--build-arg=PIP_FIND_LINKS={wheels}",
            f"--tag={APP_IMAGE}",
            ".",
        ],
        env=env,
        quiet=True,
    )
    images.append(APP_IMAGE)
    user = run.docker_cmd("image", "inspect", "--format", "{{.Config.User}}", APP_IMAGE, quiet=True)
    if not re.fullmatch(r"\d+(:\d+)?", user.stdout.strip()):
        raise CheckFailed(f"the image's user is not numeric: {user.stdout.strip()!r}")
    run.say(f"app image {APP_IMAGE}: {image_size(run, APP_IMAGE)}, user {user.stdout.strip()}")


def remove_images(run: Run, images: list[str]) -> None:
    if run.own_engine:
        return  # its data root goes, with every image in it
    for image in reversed(images):
        run.docker_cmd("image", "rm", "--force", image, check=False, quiet=True)
    # The daemon's build cache is shared with whoever else uses it: left as it is.
    run.say(f"removed the images this run built: {images}")
