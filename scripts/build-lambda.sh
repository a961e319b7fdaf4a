#!/usr/bin/env bash
# Builds what `sam deploy` uploads: the five arm64 binaries for provided.al2023, cross-compiled by
# cargo-lambda (with the zig toolchain that comes with it), after `sam validate --lint`.
#
#   scripts/build-lambda.sh [dev|staging|prod]     (default dev; the build is the same for each)
#
# Installs the AWS SAM CLI and cargo-lambda (pinned, from PyPI) into .venv/deploy, apart from the
# test tools in .venv (the SAM CLI pins its own cfn-lint and boto versions), and the Rust standard
# library for aarch64-unknown-linux-gnu through rustup. Calls no AWS API. Cold: about 14 minutes
# on 2 cores (every crate compiled in release for aarch64); later builds are incremental.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
env="${1:-dev}"
venv="$root/.venv/deploy"
requirements=("aws-sam-cli==1.170.0" "cargo-lambda==1.9.2")

if [ ! -x "$venv/bin/sam" ] || [ ! -x "$venv/bin/cargo-lambda" ] \
   || [ "$(cat "$venv/.trimtab-requirements" 2>/dev/null)" != "${requirements[*]}" ]; then
  echo "build-lambda: installing ${requirements[*]} into .venv/deploy" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}" >&2
  echo "${requirements[*]}" > "$venv/.trimtab-requirements"
fi
if command -v rustup > /dev/null; then
  rustup target add aarch64-unknown-linux-gnu >&2
fi

export PATH="$venv/bin:$PATH"
export SAM_CLI_TELEMETRY=0
# Linting needs a region name, not credentials.
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"

sam validate --lint --template template.yaml
sam build --config-env "$env"

echo
echo "function                       binary (bootstrap)"
for dir in .aws-sam/build/*/; do
  if [ -f "$dir/bootstrap" ]; then
    printf '%-30s %s\n' "$(basename "$dir")" "$(du -h "$dir/bootstrap" | cut -f1)"
  fi
done
echo "Deploy: sam deploy --config-env $env"
