#!/usr/bin/env python3
"""Fuzz the API from its own OpenAPI document with schemathesis.

Starts a fresh local host (empty data directory, free port), registers and logs in one member and one
merchant, then runs schemathesis once with each role's access token. Exits non-zero on any failure.

    python3 tests/fuzz/run.py            # what .ci/run does
    FUZZ_EXAMPLES=20 python3 tests/fuzz/run.py   # a quicker local run
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

SCHEMATHESIS_VERSION = "4.32.5"
ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("FUZZ_VENV", ROOT / "target" / "fuzz-venv"))
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "100"))
CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "response_schema_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "negative_data_rejection",
        "unsupported_method",
        "ignored_auth",
    ]
)


def ensure_schemathesis() -> Path:
    exe = VENV / "bin" / "schemathesis"
    marker = VENV / f".schemathesis-{SCHEMATHESIS_VERSION}"
    if exe.exists() and marker.exists():
        return exe
    print(f"== installing schemathesis {SCHEMATHESIS_VERSION} into {VENV}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [str(VENV / "bin" / "pip"), "install", "--quiet", f"schemathesis=={SCHEMATHESIS_VERSION}"],
        check=True,
    )
    marker.touch()
    return exe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base: str, method: str, path: str, body=None, token=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method)
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


def sign_up(base: str, username: str, role: str) -> str:
    password = "fuzzing password 1"
    status, body = call(
        base,
        "POST",
        "/api/auth/register/",
        {"username": username, "email": f"{username}@example.com", "password": password, "role": role},
    )
    assert status == 201, (status, body)
    status, body = call(base, "POST", "/api/auth/login/", {"username": username, "password": password})
    assert status == 200, (status, body)
    return body["access"]


def main() -> int:
    schemathesis = ensure_schemathesis()
    print("== building the local host", flush=True)
    subprocess.run(["cargo", "build", "--quiet", "-p", "local-api"], cwd=ROOT, check=True)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    workdir = Path(tempfile.mkdtemp(prefix="points-fuzz-"))
    log_path = workdir / "host.log"
    env = dict(
        os.environ,
        PORT=str(port),
        DATA_DIR=str(workdir / "data"),
        # The run must not outlive its tokens.
        ACCESS_TOKEN_TTL_SECONDS="14400",
    )
    with open(log_path, "w") as log:
        host = subprocess.Popen([str(ROOT / "target" / "debug" / "local-api")], env=env, stdout=log, stderr=log)
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/api/openapi.json", timeout=2).read()
                break
            except OSError:
                if host.poll() is not None or time.time() > deadline:
                    print(log_path.read_text())
                    raise SystemExit("the local host did not start")
                time.sleep(0.1)

        tokens = {
            "MEMBER": sign_up(base, "fuzz_member", "MEMBER"),
            "MERCHANT": sign_up(base, "fuzz_merchant", "MERCHANT"),
        }
        failed = False
        for role, token in tokens.items():
            print(f"== schemathesis as {role}: {EXAMPLES} examples per operation", flush=True)
            result = subprocess.run(
                [
                    str(schemathesis),
                    "run",
                    f"{base}/api/openapi.json",
                    "--checks",
                    CHECKS,
                    "--max-examples",
                    str(EXAMPLES),
                    "--header",
                    f"Authorization: Bearer {token}",
                    "--seed",
                    os.environ.get("FUZZ_SEED", "20261126"),
                    "--workers",
                    "2",
                    "--suppress-health-check",
                    "too_slow",
                    "--no-color",
                ],
                cwd=workdir,
            )
            failed = failed or result.returncode != 0
    finally:
        host.terminate()
        try:
            host.wait(timeout=10)
        except subprocess.TimeoutExpired:
            host.kill()

    log_text = log_path.read_text()
    requests = len(re.findall(r'"message":"request"', log_text))
    server_errors = len(re.findall(r'"status":5\d\d', log_text))
    print(f"== fuzz sent {requests} requests; {server_errors} answered with 5xx; host log: {log_path}")
    if failed or server_errors:
        print("== FUZZ FAILED")
        return 1
    print("== fuzz passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
