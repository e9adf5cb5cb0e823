"""`python -m scripts.compose_check` (scripts/compose-check runs it as root)."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence

from .engine import start_engine
from .images import (
    build_app_image,
    build_base_image,
    check_context,
    debian_release,
    image_exists,
    remove_images,
    serve_wheels,
)
from .lints import check_config, lint
from .run import APP_IMAGE, BASE_IMAGE, CheckFailed, Run
from .stack import Stack
from .verify import check_stack


def main(argv: Sequence[str]) -> int:
    # For working on this script: keep the images between runs on a daemon left running.
    reuse = "--reuse-images" in argv
    if os.geteuid() != 0:
        print("compose-check: run it as root (it starts dockerd and debootstraps)", file=sys.stderr)
        return 2
    # A SIGTERM (CI's timeout) runs the clean-ups as Ctrl+C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    run = Run()
    images: list[str] = []
    status = 0
    try:
        run.work_in_memory()
        with run.step("lints and docker-compose config"):
            lint(run)
            check_config(run)
        with run.step("the engine"):
            start_engine(run)
        if not reuse:
            run.later("remove the images this run built", lambda: remove_images(run, images))
        release, _ = debian_release()
        base = f"{BASE_IMAGE}:{release}"
        if not (reuse and image_exists(run, base)):
            with run.step("the base image (debootstrap, docker import)"):
                base = build_base_image(run, images)
        if not (reuse and image_exists(run, APP_IMAGE)):
            with run.step("the app image (wheels on the host, docker build)"):
                wheels = serve_wheels(run)
                check_context(run)
                build_app_image(run, base, wheels, images)
        stack = Stack(run, base)
        with run.step("PostgreSQL, S3 and the emulator on the host"):
            stack.start_host_services()
        check_stack(run, stack)
        if run.never_pulled is not None:
            run.never_pulled()
    except CheckFailed as failure:
        run.say(f"FAILED: {failure}")
        status = 1
    finally:
        run.say("cleaning up")
        cleaning = time.monotonic()
        run.clean_up()
        run.timings.append(("clean-up", time.monotonic() - cleaning))
    total = time.monotonic() - run.started
    summary = ", ".join(
        f"{name.split(' (')[0].split(':')[0]} {took:.0f}s" for name, took in run.timings
    )
    run.say(f"{'passed' if status == 0 else 'FAILED'} in {total:.0f}s ({summary})")
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
