# Sourced by the bindings tests' runners (kotlin/run.sh, python/run.sh): builds the
# bindings and coffer-vault, starts a vault on loopback in a temporary folder, mints a
# token for one account, and exports where they are:
#
#   COFFER_TEST_WORK        the temporary folder (removed on exit)
#   COFFER_TEST_VAULT_URL   http://127.0.0.1:PORT
#   COFFER_TEST_TOKEN_FILE  a file holding the JWT for account "alice"
#   COFFER_BINDINGS         target/bindings (kotlin/, python/, swift/)
#
# Set COFFER_TEST_SKIP_BUILD=1 to reuse what an earlier run built.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
export COFFER_BINDINGS="$root/target/bindings"

if [ "${COFFER_TEST_SKIP_BUILD:-0}" != 1 ]; then
    "$root/scripts/bindings.sh"
    cargo build --manifest-path "$root/Cargo.toml" -p coffer-vault --bin coffer-vault
fi
vaultbin="$target/debug/coffer-vault"

COFFER_TEST_WORK="$(mktemp -d "${TMPDIR:-/tmp}/coffer-bindings.XXXXXX")"
export COFFER_TEST_WORK
vault_pid=""
cleanup() {
    if [ -n "$vault_pid" ]; then kill "$vault_pid" 2>/dev/null || true; wait "$vault_pid" 2>/dev/null || true; fi
    rm -rf "$COFFER_TEST_WORK"
}
trap cleanup EXIT INT TERM

"$vaultbin" init --data "$COFFER_TEST_WORK/vault" >/dev/null
: >"$COFFER_TEST_WORK/vault.log"
"$vaultbin" serve --listen 127.0.0.1:0 --data "$COFFER_TEST_WORK/vault" >"$COFFER_TEST_WORK/vault.log" 2>&1 &
vault_pid=$!
COFFER_TEST_VAULT_URL=""
for _ in $(seq 1 100); do
    COFFER_TEST_VAULT_URL="$(grep -o 'listening on http://[^ ]*' "$COFFER_TEST_WORK/vault.log" | head -n1 | sed 's/^listening on //' || true)"
    [ -n "$COFFER_TEST_VAULT_URL" ] && break
    sleep 0.1
done
[ -n "$COFFER_TEST_VAULT_URL" ] || { echo "the vault did not start:" >&2; cat "$COFFER_TEST_WORK/vault.log" >&2; exit 1; }
export COFFER_TEST_VAULT_URL
export COFFER_TEST_TOKEN_FILE="$COFFER_TEST_WORK/token"
"$vaultbin" token --data "$COFFER_TEST_WORK/vault" --account alice | tail -n1 >"$COFFER_TEST_TOKEN_FILE"
# Test devices never touch a developer's keyring: no session bus, so `auto` means file.
export DBUS_SESSION_BUS_ADDRESS="unix:path=$COFFER_TEST_WORK/no-bus"
