#!/usr/bin/env bash
# A replicated vault on one machine, for development, tests and the benchmark
# (docs/VAULT-GROUP.md). Loopback only; every member and the host log to DIR/*.log.
#
#   scripts/vault-group.sh up N DIR        N cores (3 or 5) and one host; writes each core's
#                                          pid to DIR/core-<i>.pid (i from 1) and prints the
#                                          host's URL as the last line. On an existing DIR
#                                          it starts the same group again (its disks resume).
#   scripts/vault-group.sh restart DIR I   restarts core I after it died (it joins the
#                                          group as a new member and catches up)
#   scripts/vault-group.sh token DIR ACCOUNT   prints a development token as the last line
#   scripts/vault-group.sh down DIR        stops everything started in DIR
#
# Knobs: COFFER_VAULT_BIN (default: builds target/debug/coffer-vault), VAULT_GROUP_ARGS
# (extra flags for every core, e.g. "--max-guesses 3 --ram-only"), VAULT_HOST_ARGS
# (extra flags for the host).
set -euo pipefail

usage() {
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

root="$(cd "$(dirname "$0")/.." && pwd)"
bin() {
    if [ -n "${COFFER_VAULT_BIN:-}" ]; then
        echo "$COFFER_VAULT_BIN"
        return
    fi
    (cd "$root" && cargo build -q -p coffer-vault --bin coffer-vault) >&2
    echo "${CARGO_TARGET_DIR:-$root/target}/debug/coffer-vault"
}

# A process that exists and is not a zombie (a killed core whose parent is gone may stay a
# zombie until reaped; it is dead all the same).
alive() {
    [ -r "/proc/$1/stat" ] && ! awk '{ exit ($3 == "Z") ? 0 : 1 }' "/proc/$1/stat"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits until FILE holds a line matching PATTERN (a process printed its address).
wait_for() {
    local file=$1 pattern=$2 pid=$3
    for _ in $(seq 1 300); do
        if grep -q "$pattern" "$file" 2>/dev/null; then return 0; fi
        if ! alive "$pid"; then
            echo "vault-group: process $pid exited; its log $file says:" >&2
            tail -20 "$file" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "vault-group: timed out waiting for '$pattern' in $file" >&2
    exit 1
}

start_core() {
    local dir=$1 i=$2 vault peers=()
    vault=$(bin)
    local n
    n=$(cat "$dir/members")
    for j in $(seq 1 "$n"); do peers+=(--peer "$j=127.0.0.1:$(cat "$dir/core-$j.port")"); done
    rm -f "$dir/core-$i.sock"
    # shellcheck disable=SC2086
    setsid "$vault" core --data "$dir/core-$i" --listen "unix:$dir/core-$i.sock" \
        --member "$i" --group-listen "127.0.0.1:$(cat "$dir/core-$i.port")" "${peers[@]}" \
        ${VAULT_GROUP_ARGS:-} >>"$dir/core-$i.log" 2>&1 </dev/null &
    echo $! >"$dir/core-$i.pid"
}

cmd=${1:-}
case "$cmd" in
up)
    [ $# -eq 3 ] || usage
    n=$2 dir=$3
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    vault=$(bin)
    if [ ! -f "$dir/members" ]; then
        "$vault" group-init --data "$dir/vault" --members "$n" >/dev/null
        echo "$n" >"$dir/members"
        for i in $(seq 1 "$n"); do
            ln -s "vault/core-$i" "$dir/core-$i"
            free_port >"$dir/core-$i.port"
        done
    elif [ "$(cat "$dir/members")" != "$n" ]; then
        echo "vault-group: $dir holds a group of $(cat "$dir/members"), not $n" >&2
        exit 1
    fi
    for i in $(seq 1 "$n"); do start_core "$dir" "$i"; done
    for i in $(seq 1 "$n"); do wait_for "$dir/core-$i.log" "core listening on" "$(cat "$dir/core-$i.pid")"; done
    cores=""
    for i in $(seq 1 "$n"); do cores="$cores${cores:+,}unix:$dir/core-$i.sock"; done
    : >"$dir/host.log"
    # shellcheck disable=SC2086
    setsid "$vault" serve --data "$dir/vault" --listen 127.0.0.1:0 --core "$cores" \
        --records-in-core ${VAULT_HOST_ARGS:-} >>"$dir/host.log" 2>&1 </dev/null &
    echo $! >"$dir/host.pid"
    wait_for "$dir/host.log" "listening on" "$(cat "$dir/host.pid")"
    url=$(grep -o 'listening on https\{0,1\}://[^ ]*' "$dir/host.log" | tail -1 | awk '{print $3}')
    # Ready when the group has a leader and every member joined: a status call that the
    # group answers (any account; unknown is fine).
    tok=$("$vault" token --data "$dir/vault" --account vault-group-probe | tail -1)
    for _ in $(seq 1 200); do
        if curl -fsS -H "Authorization: Bearer $tok" "$url/v1/status" >/dev/null 2>&1 \
            && [ "$(grep -l 'joined the group as a voter\|founded the group\|resuming from' "$dir"/core-*.log 2>/dev/null | wc -l)" -ge "$n" ]; then
            break
        fi
        sleep 0.1
    done
    echo "$url"
    ;;
restart)
    [ $# -eq 3 ] || usage
    dir=$(cd "$2" && pwd) i=$3
    if [ -f "$dir/core-$i.pid" ] && alive "$(cat "$dir/core-$i.pid")"; then
        echo "vault-group: core $i (pid $(cat "$dir/core-$i.pid")) is still running" >&2
        exit 1
    fi
    start_core "$dir" "$i"
    wait_for "$dir/core-$i.log" "core listening on" "$(cat "$dir/core-$i.pid")"
    ;;
token)
    [ $# -eq 3 ] || usage
    "$(bin)" token --data "$2/vault" --account "$3" | tail -1
    ;;
down)
    [ $# -eq 2 ] || usage
    dir=$2
    for f in "$dir"/host.pid "$dir"/core-*.pid; do
        [ -f "$f" ] || continue
        kill "$(cat "$f")" 2>/dev/null || true
    done
    sleep 0.3
    for f in "$dir"/host.pid "$dir"/core-*.pid; do
        [ -f "$f" ] || continue
        kill -9 "$(cat "$f")" 2>/dev/null || true
    done
    ;;
*)
    usage
    ;;
esac
