# SoftHSM2 for the crypto-envelope PKCS#11 backend tests (sourced by .ci/run; also
# `source .ci/services/softhsm.sh` by hand). SoftHSM2 is a library, not a server: this
# installs it if missing, keeps a token directory under
# $CARGO_TARGET_DIR/services/softhsm, initialises the token `strongroom-ci` once, and
# exports what the tests read. Idempotent: a token already there is reused.
# Sourced with `set -euo pipefail` in effect: return, never exit.

softhsm_setup() {
  local dir conf module
  dir="${CARGO_TARGET_DIR:?CARGO_TARGET_DIR must be set}/services/softhsm"

  if ! command -v softhsm2-util >/dev/null 2>&1; then
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq >/dev/null || true
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2 >/dev/null || {
      echo "softhsm.sh: could not install softhsm2" >&2
      return 1
    }
  fi

  module=""
  for candidate in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so; do
    if [ -f "$candidate" ]; then module="$candidate"; break; fi
  done
  if [ -z "$module" ]; then
    module="$(dpkg -L libsofthsm2 2>/dev/null | grep '/libsofthsm2\.so$' | head -n 1 || true)"
  fi
  if [ -z "$module" ] || [ ! -f "$module" ]; then
    echo "softhsm.sh: libsofthsm2.so not found" >&2
    return 1
  fi

  mkdir -p "$dir/tokens"
  chmod 700 "$dir" "$dir/tokens"
  conf="$dir/softhsm2.conf"
  cat >"$conf" <<EOF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
  export SOFTHSM2_CONF="$conf"

  # CI-only PINs for a throwaway token that holds only test keys.
  local pin="strongroom-ci-user-pin" so_pin="strongroom-ci-so-pin" label="strongroom-ci"
  local slots
  slots="$(softhsm2-util --show-slots 2>/dev/null || true)"
  if ! grep -Eq "Label:[[:space:]]*$label[[:space:]]*\$" <<<"$slots"; then
    softhsm2-util --init-token --free --label "$label" --pin "$pin" --so-pin "$so_pin" >/dev/null || {
      echo "softhsm.sh: could not initialise the token" >&2
      return 1
    }
  fi

  export STRONGROOM_PKCS11_MODULE="$module"
  export STRONGROOM_PKCS11_TOKEN_LABEL="$label"
  export STRONGROOM_PKCS11_PIN="$pin"
  echo "softhsm.sh: token $label in $dir/tokens, module $module"
}

softhsm_setup || return 1
unset -f softhsm_setup
