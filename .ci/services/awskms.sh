# shellcheck shell=bash
# A local AWS KMS for the crypto-envelope `awskms` tests: moto's server mode (PyPI
# `moto[server]`) on 127.0.0.1. SOURCED by .ci/run (or by hand) with `set -euo pipefail`
# in effect: it uses `return`, never `exit`.
#
# Idempotent: a moto already answering on the port is reused. The virtual environment,
# pip's download cache and the server log live under
# "$CARGO_TARGET_DIR/services/awskms", so a second run installs nothing.
#
# Exports what the tests and `AwsKms::from_env` read: AWS_ENDPOINT_URL, AWS_REGION,
# AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (moto accepts any; "testing" by convention)
# and STRONGROOM_KMS_ENDPOINT, the marker the ignored tests require.

awskms_start() {
  local moto_version="5.2.5"
  local port="${STRONGROOM_KMS_PORT:-4599}"
  local dir="${CARGO_TARGET_DIR:?CARGO_TARGET_DIR must be set}/services/awskms"
  local url="http://127.0.0.1:${port}"
  mkdir -p "$dir"

  # moto answers its own API at /moto-api/; anything else on the port is not ours.
  if ! curl -fsS -o /dev/null --max-time 2 "$url/moto-api/" 2>/dev/null; then
    if [ ! -x "$dir/venv/bin/moto_server" ] ||
      ! "$dir/venv/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$moto_version')" 2>/dev/null; then
      echo "awskms: installing moto[server]==$moto_version into $dir/venv"
      python3 -m venv "$dir/venv" || { echo "awskms: python3 -m venv failed (Debian: apt-get -y install python3-venv)"; return 1; }
      "$dir/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --cache-dir "$dir/pip-cache" "moto[server]==$moto_version" ||
        { echo "awskms: pip could not install moto[server]==$moto_version"; return 1; }
    fi
    echo "awskms: starting moto_server on $url (log: $dir/moto.log)"
    nohup "$dir/venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$dir/moto.log" 2>&1 &
    echo $! >"$dir/moto.pid"
    local ready=""
    for _ in $(seq 1 60); do
      if curl -fsS -o /dev/null --max-time 2 "$url/moto-api/" 2>/dev/null; then
        ready=yes
        break
      fi
      sleep 0.5
    done
    if [ -z "$ready" ]; then
      echo "awskms: moto_server did not answer on $url within 30 s; its log:"
      tail -n 40 "$dir/moto.log" || true
      return 1
    fi
  fi

  export AWS_ENDPOINT_URL="$url"
  export AWS_REGION="us-east-1"
  export AWS_ACCESS_KEY_ID="testing"
  export AWS_SECRET_ACCESS_KEY="testing"
  export STRONGROOM_KMS_ENDPOINT="$url"
  # The moto server's port and pid file, for the test that stops and restarts it.
  export STRONGROOM_KMS_MOTO_DIR="$dir"
  echo "awskms: moto ready on $url"
}

awskms_start || return 1
