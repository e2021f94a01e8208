#!/usr/bin/env bash
# Coffer's backup engine against restic, side by side in one run, on the shared
# messaging-app data set: initial backup, incremental backup after the one-day mutation
# (repository growth), full restore, peak RSS. Ratios matter, not absolute figures: the
# machine is shared and noisy.
#
#   bench/backup-vs-restic.sh [--scale 1.0]
#
# Generated data is cached under bench/out/ (gitignored). Needs python3, apt for restic.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=1.0
[ "${1:-}" = "--scale" ] && SCALE="$2"
OUT=bench/out
GEN=/work/shared/bench
[ -d "$GEN" ] || GEN=../shared/bench
mkdir -p "$OUT"

if ! command -v restic >/dev/null; then
  apt-get update && apt-get install -y restic
fi
if [ ! -x /usr/bin/time ]; then
  apt-get update && apt-get install -y time
fi

cargo build --release -p coffer-backup --bin coffer-backup-bench
COFFER=target/release/coffer-backup-bench

BASE="$OUT/base-$SCALE"
[ "$SCALE" = "1.0" ] && [ -d "$OUT/base" ] && BASE="$OUT/base"
if [ ! -f "$BASE/.complete" ]; then
  rm -rf "$BASE"
  python3 "$GEN/gen_dataset.py" "$BASE" --scale "$SCALE"
  touch "$BASE/.complete"
fi

WORK="$OUT/work"
rm -rf "$WORK" "$OUT/repo-coffer" "$OUT/repo-restic" "$OUT/restore-coffer" "$OUT/restore-restic" "$OUT"/*.time
cp -a "$BASE" "$WORK"
rm -f "$WORK/.complete"
DATA_BYTES=$(du -sb --apparent-size "$WORK" | cut -f1)

export COFFER_KEY=$(python3 -c 'import os;print(os.urandom(32).hex())')
export RESTIC_PASSWORD=bench-password
"$COFFER" init "$OUT/repo-coffer" >/dev/null
restic init --repo "$OUT/repo-restic" >/dev/null

size() { du -sb "$1" | cut -f1; }
# run NAME CMD...: wall seconds, user+sys CPU and max RSS into $OUT/NAME.time
run() {
  local name=$1; shift
  sync
  /usr/bin/time -v -o "$OUT/$name.time" "$@" >/dev/null
}

ABS_WORK=$(cd "$WORK" && pwd)
echo "initial backup..." >&2
run coffer-initial "$COFFER" backup "$OUT/repo-coffer" "$ABS_WORK"
run restic-initial restic backup --quiet --repo "$OUT/repo-restic" "$ABS_WORK"
C0=$(size "$OUT/repo-coffer"); R0=$(size "$OUT/repo-restic")

echo "one-day mutation..." >&2
python3 "$GEN/mutate_dataset.py" "$WORK" --day 1 >/dev/null
echo "incremental backup..." >&2
run coffer-incr "$COFFER" backup "$OUT/repo-coffer" "$ABS_WORK"
run restic-incr restic backup --quiet --repo "$OUT/repo-restic" "$ABS_WORK"
C1=$(size "$OUT/repo-coffer"); R1=$(size "$OUT/repo-restic")

echo "full restore..." >&2
run coffer-restore "$COFFER" restore "$OUT/repo-coffer" latest "$OUT/restore-coffer"
run restic-restore restic restore --quiet --repo "$OUT/repo-restic" latest --target "$OUT/restore-restic"
diff -r -q "$WORK" "$OUT/restore-coffer/work" >/dev/null && echo "coffer restore: identical to the data set" >&2

python3 - "$OUT" "$DATA_BYTES" "$C0" "$C1" "$R0" "$R1" <<'PY'
import re, sys
out, data, c0, c1, r0, r1 = sys.argv[1], *map(int, sys.argv[2:])
def t(name):
    s = open(f"{out}/{name}.time").read()
    wall = s.split("Elapsed (wall clock) time (h:mm:ss or m:ss):")[1].split()[0].split(":")
    secs = sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall)))
    cpu = float(re.search(r"User time \(seconds\): ([\d.]+)", s)[1]) + float(re.search(r"System time \(seconds\): ([\d.]+)", s)[1])
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", s)[1]) / 1024
    return secs, cpu, rss
MB = 1e6
rows = []
for tool, a, b in (("coffer", c0, c1), ("restic", r0, r1)):
    i, n, r = t(f"{tool}-initial"), t(f"{tool}-incr"), t(f"{tool}-restore")
    rows.append((tool, i, n, r, a, b - a))
print(f"data set: {data/MB:.0f} MB")
print("| tool | initial backup | incremental: wall / bytes added | full restore | peak RSS | repo size |")
print("|---|---|---|---|---|---|")
for tool, i, n, r, size, added in rows:
    print(f"| {tool} | {i[0]:.2f} s ({data/MB/i[0]:.0f} MB/s), {i[1]:.1f} CPU-s | {n[0]:.2f} s / {added/MB:.1f} MB | "
          f"{r[0]:.2f} s ({data/MB/r[0]:.0f} MB/s), {r[1]:.1f} CPU-s | {max(i[2], n[2], r[2]):.0f} MiB | {size/MB:.0f} MB |")
c, rs = rows
print()
print(f"ratios coffer vs restic: initial backup throughput x{rs[1][0]/c[1][0]:.2f}, "
      f"incremental bytes {c[5]/max(rs[5],1):.3f} of restic's, restore throughput x{rs[3][0]/c[3][0]:.2f}, "
      f"peak RSS {max(c[1][2], c[2][2], c[3][2]):.0f} MiB vs {max(rs[1][2], rs[2][2], rs[3][2]):.0f} MiB")
PY
