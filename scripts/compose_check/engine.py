"""Step 2: the Docker daemon: the running one, or one of the run's own."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from .run import CheckFailed, Run, wait_until


def start_engine(run: Run) -> None:
    if run.docker_cmd("info", check=False, quiet=True).returncode == 0:
        run.say("a Docker daemon is running: using it, and removing only what this run adds")
        return
    root = run.work / "engine"
    root.mkdir()
    socket_path = root / "docker.sock"
    log = (run.work / "dockerd.log").open("w")
    dockerd = subprocess.Popen(
        [
            "dockerd",
            "--storage-driver=vfs",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            f"--data-root={root / 'data'}",
            f"--exec-root={root / 'x'}",
            f"--pidfile={root / 'dockerd.pid'}",
            f"--host=unix://{socket_path}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )

    def stop_engine() -> None:
        dockerd.terminate()
        try:
            dockerd.wait(timeout=60)
        except subprocess.TimeoutExpired:
            dockerd.kill()
            dockerd.wait()
        log.close()
        # dockerd leaves its network namespace mounted under its exec root.
        for mount in reversed(Path("/proc/mounts").read_text().splitlines()):
            target = mount.split()[1]
            if target.startswith(str(root)):
                subprocess.run(["umount", "--lazy", target], check=False)
        run.say("stopped the Docker daemon this run started; its data goes with the run's")

    def never_pulled() -> None:
        """The daemon's own log: it never asked a registry for anything."""
        asked = [
            line
            for line in (run.work / "dockerd.log").read_text().splitlines()
            if re.search(r"registry-1\.docker\.io|[Pp]ulling|/v2/", line)
        ]
        if asked:
            raise CheckFailed("the engine tried to reach a registry:\n" + "\n".join(asked[:5]))
        run.say("the engine's log: no registry was asked for anything")

    run.never_pulled = never_pulled

    run.later("stop dockerd", stop_engine)
    run.own_engine = True
    run.docker_env["DOCKER_HOST"] = f"unix://{socket_path}"

    def answers() -> bool:
        if dockerd.poll() is not None:
            raise CheckFailed(f"dockerd exited: {(run.work / 'dockerd.log').read_text()[-2000:]}")
        return run.docker_cmd("info", check=False, quiet=True).returncode == 0

    wait_until("dockerd to answer", answers, timeout=60, every=0.5)
    version = run.docker_cmd("version", "--format", "{{.Server.Version}}", quiet=True)
    run.say(f"started dockerd {version.stdout.strip()} (vfs, no bridge, no iptables)")
