#!/usr/bin/env bash
# Builds what `sam deploy` uploads: the five arm64 binaries for provided.al2023, cross-compiled by
# cargo-lambda (with the zig toolchain that comes with it), after `sam validate --lint`.
#
#   scripts/build-lambda.sh [dev|staging|prod]     validate and build (default dev; the build is
#                                                  the same for each environment)
#   scripts/build-lambda.sh validate               only `sam validate --lint` (the test suite runs it)
#
# Installs the AWS SAM CLI and cargo-lambda (pinned, from PyPI) into .venv/deploy, apart from the
# test tools in .venv (the SAM CLI pins its own cfn-lint and boto versions), and the Rust standard
# library for aarch64-unknown-linux-gnu through rustup. Calls no AWS API. Cold: about 14 minutes
# on 2 cores (every crate compiled in release for aarch64); later builds are incremental.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
venv="$root/.venv/deploy"

# Installs the named pinned packages into .venv/deploy unless they are there already.
install() {
  local stamp="$venv/.trimtab-$1"
  shift
  if [ "$(cat "$stamp" 2>/dev/null)" != "$*" ]; then
    echo "build-lambda: installing $* into .venv/deploy" >&2
    [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$@" >&2
    echo "$*" > "$stamp"
  fi
}

validate() {
  install sam "aws-sam-cli==1.170.0"
  # Linting needs a region name, not credentials.
  AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" SAM_CLI_TELEMETRY=0 \
    "$venv/bin/sam" validate --lint --template template.yaml
}

if [ "${1:-}" = "validate" ]; then
  validate
  exit 0
fi
env="${1:-dev}"
validate
install cargo-lambda "cargo-lambda==1.9.2"
if command -v rustup > /dev/null; then
  rustup target add aarch64-unknown-linux-gnu >&2
fi
PATH="$venv/bin:$PATH" SAM_CLI_TELEMETRY=0 sam build --config-env "$env"

echo
echo "function                       binary (bootstrap)"
for dir in .aws-sam/build/*/; do
  if [ -f "$dir/bootstrap" ]; then
    printf '%-30s %s\n' "$(basename "$dir")" "$(du -h "$dir/bootstrap" | cut -f1)"
  fi
done
echo "Deploy: .venv/deploy/bin/sam deploy --config-env $env"
