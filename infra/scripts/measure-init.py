#!/usr/bin/env python3
"""Times each Lambda function's init locally, against a minimal Lambda Runtime API.

Starts the local host (for its embedded DynamoDB), then runs each built `bootstrap` as Lambda does:
AWS_LAMBDA_RUNTIME_API pointing at a tiny runtime-API server written here, SECRET_ID naming a secret
served by a tiny Secrets Manager written here (AWS_ENDPOINT_URL_SECRETS_MANAGER), no secret in the
environment. Init is the time from process start to the function's first
`GET /runtime/invocation/next` (the Secrets Manager read, config, DynamoDB client built and its
connection warmed); the first invocation is timed too.

    infra/scripts/build-lambdas.sh && python3 infra/scripts/measure-init.py
"""

import json
import queue
import re
import subprocess
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
from localhost import LocalHost  # noqa: E402

FUNCTIONS = ["fn-admin", "fn-auth", "fn-front-door", "fn-members", "fn-merchants", "fn-ecpay-callback", "fn-reconcile"]
# fn-reconcile is invoked by a schedule, not API Gateway.
SCHEDULE_EVENT = {"version": "0", "source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": {}}
EVENT = {
    "version": "2.0",
    "routeKey": "ANY /api/auth/{proxy+}",
    "pathParameters": {"proxy": "me/"},
    "rawPath": "/api/auth/me/",
    "rawQueryString": "",
    "headers": {"host": "localhost"},
    "requestContext": {
        "accountId": "123456789012", "apiId": "local", "domainName": "localhost", "domainPrefix": "local",
        "http": {"method": "GET", "path": "/api/auth/me/", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "measure"},
        "requestId": "measure-1", "routeKey": "ANY /api/auth/{proxy+}", "stage": "$default",
        "time": "26/Nov/2026:00:00:00 +0000", "timeEpoch": 1795660800000,
    },
    "isBase64Encoded": False,
}

# fn-front-door serves API Gateway's `$default` route: the API document.
DOCUMENT_EVENT = {
    **EVENT,
    "routeKey": "$default",
    "rawPath": "/api/openapi.json",
    "requestContext": {
        **EVENT["requestContext"],
        "http": {**EVENT["requestContext"]["http"], "path": "/api/openapi.json"},
        "routeKey": "$default",
    },
}
del DOCUMENT_EVENT["pathParameters"]


SECRET = {
    "JWT_SECRET": "measure-init-secret-measure-init-secret",
    "ECPAY_MERCHANT_ID": "3002607",
    "ECPAY_HASH_KEY": "pwFHCqoQZGmho4w6",
    "ECPAY_HASH_IV": "EkRm7iFT261dpevs",
}


def lambda_env(function, runtime_api, dynamodb_endpoint, secrets_endpoint, memory_mb=256):
    """What Lambda puts in a function's environment, plus the template's variables, with the SDK's
    endpoints pointed at the local emulator and the fake Secrets Manager."""
    return {
        "AWS_LAMBDA_RUNTIME_API": runtime_api,
        "AWS_LAMBDA_FUNCTION_NAME": function,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory_mb),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "local",
        "AWS_REGION": "ap-northeast-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_endpoint,
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": secrets_endpoint,
        "SECRET_ID": "measure",
        "TABLE_NAME": "points-redemption",
        "RUST_LOG": "warn",
    }


class SecretsManager(BaseHTTPRequestHandler):
    """GetSecretValue (JSON 1.1 protocol) for the one secret id "measure"."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        request = json.loads(self.rfile.read(length) or b"{}")
        if self.headers.get("X-Amz-Target") == "secretsmanager.GetSecretValue" and request.get("SecretId") == "measure":
            status, body = 200, {"ARN": "arn:aws:secretsmanager:ap-northeast-1:123456789012:secret:measure-AbCdEf",
                                 "Name": "measure", "VersionId": "v1", "SecretString": json.dumps(SECRET),
                                 "VersionStages": ["AWSCURRENT"], "CreatedDate": 1795660800.0}
        else:
            status, body = 400, {"__type": "ResourceNotFoundException", "message": "no such secret"}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class RuntimeApi(BaseHTTPRequestHandler):
    events: "queue.Queue" = queue.Queue()
    seen: "queue.Queue" = queue.Queue()

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next"):
            self.seen.put(("next", time.perf_counter()))
            event = self.events.get()
            body = json.dumps(event).encode()
            self.send_response(200)
            self.send_header("Lambda-Runtime-Aws-Request-Id", "measure-request")
            self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
            self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:ap-northeast-1:123456789012:function:measure")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        payload = self.rfile.read(length)
        self.seen.put(("response", time.perf_counter(), payload))
        self.send_response(202)
        self.end_headers()


def runtime_api_for_one_process():
    """A Runtime API of its own (queues included) for one process: a killed process's pending
    `GET /next` must not swallow the next process's first event."""
    api = type("OneProcessRuntimeApi", (RuntimeApi,), {"events": queue.Queue(), "seen": queue.Queue()})
    server = ThreadingHTTPServer(("127.0.0.1", 0), api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return api, server


def main() -> int:
    secrets = ThreadingHTTPServer(("127.0.0.1", 0), SecretsManager)
    threading.Thread(target=secrets.serve_forever, daemon=True).start()
    secrets_endpoint = f"http://127.0.0.1:{secrets.server_address[1]}"
    with LocalHost() as host:
        time.sleep(0.3)
        match = re.search(r'"dynamodb":"(http://127\.0\.0\.1:\d+)"', host.log_text())
        if not match:
            raise SystemExit("could not find the emulator's endpoint in the host log")
        endpoint = match.group(1)
        print(f"DynamoDB emulator at {endpoint}")
        for function in FUNCTIONS:
            built = ROOT / "target" / "lambda" / function
            bootstrap = built / "bootstrap"
            if not bootstrap.exists() and (built / "bootstrap.zip").exists():
                # The zip is what Lambda receives; run exactly that binary.
                unpacked = host.workdir / function
                zipfile.ZipFile(built / "bootstrap.zip").extractall(unpacked)
                bootstrap = unpacked / "bootstrap"
                bootstrap.chmod(0o755)
            if not bootstrap.exists():
                print(f"{function}: not built ({built})")
                continue
            api, server = runtime_api_for_one_process()
            env = lambda_env(function, f"127.0.0.1:{server.server_address[1]}", endpoint, secrets_endpoint)
            api.events.put({"fn-reconcile": SCHEDULE_EVENT, "fn-front-door": DOCUMENT_EVENT}.get(function, EVENT))
            started = time.perf_counter()
            process = subprocess.Popen([str(bootstrap)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            kind, first_next = api.seen.get(timeout=30)
            kind, answered, payload = api.seen.get(timeout=30)
            process.kill()
            process.wait()
            server.shutdown()
            answer = json.loads(payload)
            status = answer.get("statusCode", "report" if "checked" in answer else answer)
            print(
                f"{function:20s} init {1000 * (first_next - started):6.1f} ms   "
                f"first invocation {1000 * (answered - first_next):6.1f} ms (status {status})"
            )
    secrets.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
