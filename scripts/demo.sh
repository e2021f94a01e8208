#!/usr/bin/env bash
# Coffer's main job, end to end, on a fresh machine with the embedded defaults:
# a local vault (single-file database) and a local folder standing in for the cloud.
#
#   1. build coffer and coffer-vault (release)
#   2. start a vault on loopback in a temp dir, mint a token for one account
#   3. make a sample "chat app" folder (an SQLite database plus media files)
#   4. old device: coffer init (password from stdin), coffer backup
#   5. NEW device (a second config dir, nothing copied): coffer connect with only the
#      password, coffer restore latest
#   6. diff -r the restored folder against the original
#
# The real Argon2id profile is used (COFFER_KSF_PROFILE is unset): this is the real flow.
# Usage: scripts/demo.sh            (run from anywhere inside the repository)
#        COFFER_DEMO_PROFILE=debug scripts/demo.sh   (reuse a debug build; slower Argon2id)
set -euo pipefail
unset COFFER_KSF_PROFILE COFFER_CONFIG_DIR COFFER_VAULT_TOKEN

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

profile="${COFFER_DEMO_PROFILE:-release}"
step "building coffer and coffer-vault ($profile)"
if [ "$profile" = release ]; then
    cargo build --release --manifest-path "$root/Cargo.toml" -p coffer-cli -p coffer-vault
    bin="$root/target/release"
else
    cargo build --manifest-path "$root/Cargo.toml" -p coffer-cli -p coffer-vault
    bin="$root/target/debug"
fi
coffer="$bin/coffer"
vaultbin="$bin/coffer-vault"

work="$(mktemp -d "${TMPDIR:-/tmp}/coffer-demo.XXXXXX")"
vault_pid=""
cleanup() {
    if [ -n "$vault_pid" ]; then kill "$vault_pid" 2>/dev/null || true; wait "$vault_pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
echo "working in $work"

step "starting a local vault"
"$vaultbin" init --data "$work/vault"
"$vaultbin" serve --listen 127.0.0.1:0 --data "$work/vault" >"$work/vault.log" 2>&1 &
vault_pid=$!
url=""
for _ in $(seq 1 100); do
    url="$(grep -o 'listening on http://[^ ]*' "$work/vault.log" | head -n1 | sed 's/^listening on //' || true)"
    [ -n "$url" ] && break
    sleep 0.1
done
[ -n "$url" ] || { echo "the vault did not start:"; cat "$work/vault.log"; exit 1; }
echo "vault listening at $url"
"$vaultbin" token --data "$work/vault" --account alice | tail -n1 >"$work/token"
echo "token for account alice in $work/token"

step "making a sample folder (an SQLite chat database and media)"
src="$work/chat"
mkdir -p "$src/media"
if command -v sqlite3 >/dev/null 2>&1; then
    sqlite3 "$src/msgstore.db" "create table messages(id integer primary key, body text);
        with recursive n(i) as (select 1 union all select i+1 from n where i < 5000)
        insert into messages(body) select 'message number ' || i from n;"
else
    python3 - "$src/msgstore.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("create table messages(id integer primary key, body text)")
db.executemany("insert into messages(body) values (?)", [(f"message number {i}",) for i in range(5000)])
db.commit()
PY
fi
head -c 300000 /dev/urandom >"$src/media/photo.jpg"
echo "hello from the old phone" >"$src/notes.txt"
ls -lR "$src"

password="correct horse battery staple"
repo="$work/cloud"

step "OLD device: coffer init (password from stdin), then backup"
printf '%s\n' "$password" | "$coffer" --config-dir "$work/old-device" init \
    --repo "$repo" --vault "$url" --account alice --token-file "$work/token" --password-stdin
"$coffer" --config-dir "$work/old-device" backup "$src"

step "NEW device: coffer connect with only the password"
printf '%s\n' "$password" | "$coffer" --config-dir "$work/new-device" connect \
    --repo "$repo" --vault "$url" --account alice --token-file "$work/token" --password-stdin
"$coffer" --config-dir "$work/new-device" status

step "NEW device: coffer restore latest"
"$coffer" --config-dir "$work/new-device" restore latest --target "$work/restored"

step "verifying: diff -r original restored"
diff -r "$src" "$work/restored/chat"
echo "OK: the new device restored every byte with only the password"
