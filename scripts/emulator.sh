#!/usr/bin/env bash
# The local AWS emulator (moto server) and the template linter, in a project-local virtualenv.
#
#   scripts/emulator.sh install        create .venv with pinned moto[server], cfn-lint and checkov if missing
#   scripts/emulator.sh start          start moto on a free loopback port; prints the endpoint URL
#   scripts/emulator.sh stop           stop the server that `start` started
#
# Nothing here talks to AWS. The server listens on 127.0.0.1 only.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="$root/.venv"
state="$root/.emulator"
# moto 5.2.5: the newest 5.2.x; see the aws-sdk-cloudwatch pin in Cargo.toml for why this matters.
# cfn-lint 1.58 knows AWS::Lambda::ResourcePolicy; checkov checks the template's security.
requirements=("moto[server]==5.2.5" "cfn-lint==1.58.0" "checkov==3.3.30")

install() {
  if [ -x "$venv/bin/moto_server" ] && [ -x "$venv/bin/cfn-lint" ] && [ -x "$venv/bin/checkov" ] \
     && [ "$(cat "$venv/.trimtab-requirements" 2>/dev/null)" = "${requirements[*]}" ]; then
    return 0
  fi
  echo "emulator: installing ${requirements[*]} into .venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}" >&2
  echo "${requirements[*]}" > "$venv/.trimtab-requirements"
}

free_port() {
  "$venv/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  install
  mkdir -p "$state"
  local port
  port="$(free_port)"
  (cd "$state" && exec "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > "$state/moto.log" 2>&1) &
  echo $! > "$state/pid"
  for _ in $(seq 1 100); do
    if "$venv/bin/python" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/moto-api/data.json', timeout=1)" 2>/dev/null; then
      echo "http://127.0.0.1:$port"
      return 0
    fi
    sleep 0.1
  done
  echo "emulator: moto did not start; see $state/moto.log" >&2
  return 1
}

stop() {
  if [ -f "$state/pid" ]; then
    kill "$(cat "$state/pid")" 2>/dev/null || true
    rm -f "$state/pid"
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
