#!/usr/bin/env bash
# Property-based API tests of the reference backend against its own OpenAPI document
# (examples/trading-backend/openapi.json, served at GET /openapi.json): schemathesis
# (PyPI) generates requests for every operation of the document and checks each answer:
# no 5xx, a documented status, a documented media type, a body that matches the
# documented schema. Run by `.ci/run`; by hand: `.ci/schemathesis.sh` (needs python3).
#
# The server is the debug `trading-backend serve` on a free loopback port with a
# temporary data directory; a user is created with the CLI and logged in over the API,
# and every request carries that session (`Authorization: Bearer`). The request limits
# are off (STRONGROOM_RATE_LIMITS=0): their 429 is documented, but would otherwise
# answer most of the run.
#
# Excluded from the run, because they end the session every other request uses (the run
# would then only see 401/403): `POST /api/auth/logout`, `POST /api/auth/logout-all` and
# `POST /api/auth/password` (a successful change ends every session of the user).
# Their answers are covered by the integration tests (tests/journey.rs, tests/tokens.rs,
# tests/openapi.rs). `/internal/exchange-credentials` takes only `X-Internal-Secret`: the
# session's run sees its refusals, and a second, short run sends the internal secret.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/strongroom-target}"
examples="${STRONGROOM_SCHEMATHESIS_EXAMPLES:-25}"
max_time="${STRONGROOM_SCHEMATHESIS_SECONDS:-180}"

# schemathesis 4 in a virtual environment under the target directory (reused).
venv="$CARGO_TARGET_DIR/schemathesis-venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  "$venv/bin/python" -m pip install --quiet 'schemathesis>=4.32,<5'
fi
"$venv/bin/schemathesis" --version

cargo build -p trading-backend --all-features
bin="$CARGO_TARGET_DIR/debug/trading-backend"

data="$(mktemp -d)"
log="$data/server.log"
server=""
cleanup() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$data"
}
trap cleanup EXIT

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
base="http://127.0.0.1:$port"
internal_secret="$(head -c 32 /dev/urandom | base64 | tr -d '/+=')"
export STRONGROOM_DATA_DIR="$data" STRONGROOM_RATE_LIMITS=0 RUST_LOG="${RUST_LOG:-warn}"
export INTERNAL_SECRET="$internal_secret"
"$bin" serve --listen-addr "127.0.0.1:$port" >"$log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -fsS "$base/healthz" >/dev/null || { cat "$log"; echo "the server did not start"; exit 1; }

# A user and its session. The password comes from the kernel's randomness and never
# reaches the command line of a long-lived process.
email="schemathesis@example.com"
password="$(head -c 24 /dev/urandom | base64 | tr -d '/+=')"
"$bin" create-user "$email" --password "$password" --no-reset >/dev/null
token="$(
  EMAIL="$email" PASSWORD="$password" python3 -c '
import json, os, sys, urllib.request
body = json.dumps({"email": os.environ["EMAIL"], "password": os.environ["PASSWORD"]}).encode()
req = urllib.request.Request(sys.argv[1] + "/api/auth/login", body, {"Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req))["token"])
' "$base"
)"

# The served document must be the committed one.
curl -fsS "$base/openapi.json" | cmp -s - examples/trading-backend/openapi.json || {
  echo "GET /openapi.json differs from examples/trading-backend/openapi.json"
  exit 1
}

checks=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance
# Run from the temporary directory: schemathesis keeps a cache in `.schemathesis/` of
# its working directory.
st() { (cd "$data" && "$venv/bin/schemathesis" run "$@"); }
status=0
st "$base/openapi.json" \
  --header "Authorization: Bearer $token" \
  --checks "$checks" \
  --exclude-path /api/auth/logout \
  --exclude-path /api/auth/logout-all \
  --exclude-path /api/auth/password \
  --generation-with-security-parameters false \
  --generation-database none \
  --max-examples "$examples" \
  --max-time "$max_time" \
  --seed "${STRONGROOM_SCHEMATHESIS_SEED:-1}" \
  --no-color \
  --warnings off \
  --continue-on-failure || status=$?

st "$base/openapi.json" \
  --header "X-Internal-Secret: $internal_secret" \
  --checks "$checks" \
  --include-path /internal/exchange-credentials \
  --generation-with-security-parameters false \
  --generation-database none \
  --max-examples "$examples" \
  --max-time 30 \
  --seed "${STRONGROOM_SCHEMATHESIS_SEED:-1}" \
  --no-color \
  --warnings off \
  --continue-on-failure || status=$?

# The session must have lasted the whole run, or most answers were refusals.
if ! curl -fsS -o /dev/null -H "Authorization: Bearer $token" "$base/api/auth/me"; then
  echo "the session ended during the run: the results above are mostly refusals"
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "last lines of the server's log:"
  tail -n 20 "$log"
fi
exit "$status"
