"""Shared by the end-to-end scripts: build and start a fresh local host, and talk JSON to it."""

import json
import os
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "end to end password 1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalHost:
    """`cargo run -p local-api` on a free port with an empty data directory; stopped on exit."""

    def __init__(self, extra_env=None, admins=()):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.workdir = Path(tempfile.mkdtemp(prefix="points-e2e-"))
        self.log_path = self.workdir / "host.log"
        self.env = dict(os.environ, PORT=str(self.port), DATA_DIR=str(self.workdir / "data"), **(extra_env or {}))
        self.process = None
        # Operators to create with `local-api create-admin` before the host starts (it must be
        # stopped: the command takes the data directory's lock).
        self.admins = list(admins)

    def __enter__(self):
        subprocess.run(["cargo", "build", "--quiet", "-p", "local-api"], cwd=ROOT, check=True)
        for admin in self.admins:
            subprocess.run(
                [str(ROOT / "target" / "debug" / "local-api"), "create-admin", admin, f"{admin}@example.com"],
                env=dict(self.env, ADMIN_PASSWORD=PASSWORD),
                check=True,
            )
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [str(ROOT / "target" / "debug" / "local-api")], env=self.env, stdout=log, stderr=log
            )
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(self.base + "/api/openapi.json", timeout=2).read()
                return self
            except OSError:
                if self.process.poll() is not None or time.time() > deadline:
                    print(self.log_path.read_text())
                    raise SystemExit("the local host did not start")
                time.sleep(0.1)

    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def call(self, method: str, path: str, body=None, token=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as err:
            raw = err.read()
            return err.code, json.loads(raw) if raw else None

    def sign_up(self, username: str, role: str) -> str:
        """Registers and logs in; returns the access token."""
        status, body = self.call(
            "POST",
            "/api/auth/register/",
            {"username": username, "email": f"{username}@example.com", "password": PASSWORD, "role": role},
        )
        assert status == 201, (status, body)
        status, body = self.call("POST", "/api/auth/login/", {"username": username, "password": PASSWORD})
        assert status == 200, (status, body)
        return body["access"]

    def log_in(self, username: str) -> str:
        status, body = self.call("POST", "/api/auth/login/", {"username": username, "password": PASSWORD})
        assert status == 200, (status, body)
        return body["access"]

    def log_text(self) -> str:
        return self.log_path.read_text()
