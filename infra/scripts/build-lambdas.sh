#!/usr/bin/env bash
# Builds every Lambda function with cargo-lambda and zips each bootstrap, printing the sizes.
#   infra/scripts/build-lambdas.sh            # x86_64 (what CI can build on these machines)
#   ARCH=arm64 infra/scripts/build-lambdas.sh # what template.yaml deploys (needs the aarch64 std:
#                                             # rustup target add aarch64-unknown-linux-gnu)
set -euo pipefail
cd "$(dirname "$0")/../.."

ARCH="${ARCH:-x86-64}"
CARGO_LAMBDA="${CARGO_LAMBDA:-cargo-lambda}"
if ! command -v "$CARGO_LAMBDA" >/dev/null; then
  VENV=target/infra-venv
  [ -x "$VENV/bin/cargo-lambda" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q cargo-lambda==1.9.2; }
  CARGO_LAMBDA="$VENV/bin/cargo-lambda"
  export PATH="$PWD/$VENV/bin:$PATH"
fi

# Packages, and the binaries they make (fn-webhooks makes the dispatcher and the sender).
PACKAGES=(fn-admin fn-auth fn-front-door fn-members fn-merchants fn-ecpay-callback fn-reconcile fn-webhooks)
FUNCTIONS=(fn-admin fn-auth fn-front-door fn-members fn-merchants fn-ecpay-callback fn-reconcile fn-webhook-dispatcher fn-webhook-sender)
args=()
for p in "${PACKAGES[@]}"; do args+=(--package "$p"); done
"$CARGO_LAMBDA" lambda build --release "--$ARCH" --output-format zip "${args[@]}"

for f in "${FUNCTIONS[@]}"; do
  zip="target/lambda/$f/bootstrap.zip"
  [ -f "$zip" ] || { echo "missing $zip" >&2; exit 1; }
  printf '%-20s %8d bytes zipped\n' "$f" "$(stat -c %s "$zip")"
done
