"""An S3-compatible service for the tests: moto's server mode, on loopback, in a process of its own.

Its own process, so what it holds (every object, whole, in memory) never counts
against the memory the tests measure of ours. Run as a script it starts
`ThreadedMotoServer` on 127.0.0.1 on a free port, prints the port and serves
until its standard input closes.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

# Credentials moto accepts; nothing leaves this machine.
AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "playground-tests",
    "AWS_SECRET_ACCESS_KEY": "playground-tests-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    # Never read a developer's own AWS files, nor ask an instance-metadata service.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
START_TIMEOUT_SECONDS = 60


class S3Server:
    def __init__(self, process: subprocess.Popen[str], port: int, log: Path) -> None:
        self.process = process
        self.port = port
        self.log = log
        self._client: Any = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls) -> S3Server:
        # Its request log goes to a file: read it when a test needs to know what was asked.
        log = Path(tempfile.mkstemp(prefix="playground-s3-", suffix=".log")[1])
        with log.open("w") as log_stream:
            process = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve())],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log_stream,
                text=True,
                env={**os.environ, **AWS_ENVIRONMENT},
            )
        stdout = process.stdout
        assert stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line = lines.get(timeout=START_TIMEOUT_SECONDS)
        except queue.Empty:
            line = ""
        if not line.strip().isdigit():
            process.kill()
            process.wait()
            stdout.close()
            raise RuntimeError(f"the S3 test server did not start: {log.read_text()[-2000:]}")
        return cls(process, int(line), log)

    def create_bucket(self) -> str:
        if self._client is None:
            import boto3

            self._client = boto3.session.Session(
                aws_access_key_id=AWS_ENVIRONMENT["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=AWS_ENVIRONMENT["AWS_SECRET_ACCESS_KEY"],
                region_name=AWS_ENVIRONMENT["AWS_DEFAULT_REGION"],
            ).client("s3", endpoint_url=self.endpoint_url)
        name = f"gallery-{uuid.uuid4().hex[:12]}"
        self._client.create_bucket(Bucket=name)
        return name

    def stop(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        if self._client is not None:
            self._client.close()
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self.log.unlink(missing_ok=True)


def _serve() -> None:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    print(server.get_host_and_port()[1], flush=True)
    sys.stdin.read()  # until the tests close it
    server.stop()


if __name__ == "__main__":
    _serve()
