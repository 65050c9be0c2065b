#!/usr/bin/env bash
# The layering rules no compiler checks: which modules may name which SDK.
#   aws_sdk_dynamodb: only the store (shared/src/store/). Everything else speaks in the store's own
#                     types, so a change of SDK or table layout stays in one directory.
#   lambda_http:      only the HTTP/Lambda edge: shared/src/http*, shared/src/lambda.rs,
#                     shared/src/observe.rs (the per-request span and metrics), the functions'
#                     routers, the local host (infra/local) and the tests that drive them. Never in
#                     services, domain, store, auth or config.
set -euo pipefail
cd "$(dirname "$0")/../.."

status=0
violations() {
  local crate_name="$1" allowed="$2"
  # Rust sources only, comments included (a path in a doc comment is a dependency of the reader).
  grep -rlw --include='*.rs' "$crate_name" shared functions infra tests \
    | grep -Ev "$allowed" || true
}

found=$(violations aws_sdk_dynamodb '^shared/src/store/')
if [ -n "$found" ]; then
  echo "aws_sdk_dynamodb is named outside shared/src/store:" >&2
  echo "$found" | sed 's/^/  /' >&2
  status=1
fi

found=$(violations lambda_http '^(shared/src/http(\.rs|/)|shared/src/lambda\.rs$|shared/src/observe\.rs$|functions/|infra/local/|tests/)')
if [ -n "$found" ]; then
  echo "lambda_http is named outside the HTTP/Lambda modules:" >&2
  echo "$found" | sed 's/^/  /' >&2
  status=1
fi

if [ "$status" = 0 ]; then
  echo "boundaries ok: aws_sdk_dynamodb only in shared/src/store, lambda_http only at the HTTP/Lambda edge"
fi
exit "$status"
