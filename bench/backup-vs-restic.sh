#!/usr/bin/env bash
# Coffer against restic, side by side in one run, through the `coffer` CLI that users run.
# Three data sets:
#   shared  the messaging-app set of ../shared/bench (~1 GiB): initial backup, unchanged
#           re-backup, backup after the one-day mutation, restore, check
#   tiny    300,000 files of ~30 bytes in 300 directories: the same, plus `tar -x` of the
#           same files (the floor for writing many small files on this machine)
#   rand    2 GiB of random bytes in 4 files
# For each: wall and CPU seconds, peak RSS (/usr/bin/time), bytes each backup added to the
# repository. Ratios matter, not absolute figures: the machine is shared and noisy.
#
#   bench/backup-vs-restic.sh [--scale 1.0] [--sets shared,tiny,rand] [--runs N] [--also NAME=BINARY]...
#
# COFFER_BIN=PATH uses that release build of `coffer` instead of building one.
# --also runs another coffer binary (say the build before a change) as one more tool, in
# the same run. --runs N repeats the initial backup (each time into a fresh repository)
# and the restore (each time into a fresh folder) N times per tool, the tools taking turns,
# and reports the run with the median time and the range: one timing per step moved a
# ratio by a third between runs here. Generated data is cached under bench/out/
# (gitignored). Needs python3;
# restic, time and tar come from apt.
set -euo pipefail
cd "$(dirname "$0")/.."
SCALE=1.0
SETS=shared,tiny,rand
RUNS=1
TOOLS=(coffer)
declare -A BIN
while [ $# -gt 0 ]; do
  case "$1" in
    --scale) SCALE="$2"; shift 2 ;;
    --sets) SETS="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    --also) TOOLS+=("${2%%=*}"); BIN[${2%%=*}]=$(realpath "${2#*=}"); shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
TOOLS+=(restic)
OUT=bench/out
GEN=../shared/bench
mkdir -p "$OUT"

for tool in restic /usr/bin/time tar; do
  command -v "$tool" >/dev/null || { apt-get update && apt-get install -y restic time tar; }
done

if [ -n "${COFFER_BIN:-}" ]; then
  BIN[coffer]=$(realpath "$COFFER_BIN")   # a release build made beforehand
else
  cargo build --release -p coffer-cli
  BIN[coffer]=$(realpath "${CARGO_TARGET_DIR:-target}/release/coffer")
fi

# ---- data sets (cached) ----
BASE="$OUT/base-$SCALE"
[ "$SCALE" = "1.0" ] && BASE="$OUT/base"
if [[ $SETS == *shared* ]] && [ ! -f "$BASE/.complete" ]; then
  rm -rf "$BASE"
  python3 "$GEN/gen_dataset.py" "$BASE" --scale "$SCALE"
  touch "$BASE/.complete"
fi
if [[ $SETS == *tiny* ]] && [ ! -f "$OUT/tiny/.complete" ]; then
  rm -rf "$OUT/tiny"
  python3 - "$OUT/tiny" <<'PY'
import os, sys
root = sys.argv[1]
for d in range(300):
    p = f"{root}/tiny/d{d:03}"
    os.makedirs(p)
    for f in range(1000):
        with open(f"{p}/m{f:04}.txt", "w") as fh:
            fh.write(f"message {d:03}-{f:04}: ok {d * f % 97:02}\n")
PY
  tar -cf "$OUT/tiny/tiny.tar" -C "$OUT/tiny" tiny
  touch "$OUT/tiny/.complete"
fi
if [[ $SETS == *rand* ]] && [ ! -f "$OUT/rand/.complete" ]; then
  rm -rf "$OUT/rand"
  mkdir -p "$OUT/rand/rand"
  for i in 1 2 3 4; do head -c 512M /dev/urandom > "$OUT/rand/rand/r$i.bin"; done
  touch "$OUT/rand/.complete"
fi

export RESTIC_PASSWORD=bench-password COFFER_KEY_STORE=file
size() { du -sb "$1" | cut -f1; }
# timed NAME CMD...: wall, user, sys seconds and peak RSS (KiB) into $OUT/NAME.time
timed() {
  local name=$1; shift
  sync
  /usr/bin/time -f "%e %U %S %M" -o "$OUT/$name.time" "$@" >/dev/null
}
# op TOOL SET STEP [ROUND]: one step of one tool (a coffer build, restic, or tar: the
# tiny set's restore only) on one data set. Round 1 is the
# repository and restore the later steps use; rounds 2.. of `init`, `backup` and
# `restore` use their own repository, configuration and target (suffix .rN).
op() {
  local tool=$1 set=$2 step=$3 round=${4:-1} data=$OUT/work-$set
  local sfx="" dir
  [ "$round" -gt 1 ] && sfx=".r$round"
  local repo=$OUT/repo-$tool-$set$sfx
  local target=$OUT/restore-$tool-$set$sfx
  dir=$(cd "$data" && pwd)/$set
  if [ "$tool" = tar ]; then   # restore only: the floor for writing the same files
    mkdir -p "$target"
    timed "$set-$tool-$step$sfx" tar -xf "$OUT/$set/$set.tar" -C "$target"
  elif [ "$tool" = restic ]; then
    case $step in
      init) restic init --repo "$repo" >/dev/null ;;
      backup*) timed "$set-$tool-$step$sfx" restic backup --quiet --repo "$repo" "$dir"
               size "$repo" > "$OUT/$set-$tool-$step$sfx.size" ;;
      restore) timed "$set-$tool-$step$sfx" restic restore --quiet --repo "$OUT/repo-$tool-$set" latest --target "$target" ;;
      check) timed "$set-$tool-$step" restic check --quiet --repo "$repo" ;;
    esac
  else
    local c=("${BIN[$tool]}" --config-dir "$OUT/cfg-$tool-$set$sfx")
    # Restores of every round read round 1's repository.
    [ "$step" = restore ] && c=("${BIN[$tool]}" --config-dir "$OUT/cfg-$tool-$set")
    case $step in
      init) "${c[@]}" init --repo "$repo" --recovery-key-only >/dev/null ;;
      backup*) timed "$set-$tool-$step$sfx" "${c[@]}" backup "$dir"
               size "$repo" > "$OUT/$set-$tool-$step$sfx.size" ;;
      restore) timed "$set-$tool-$step$sfx" "${c[@]}" restore --target "$target" latest
               diff -r -q "$dir" "$target/$set" >/dev/null \
                 || { echo "$tool restore of $set differs from the data" >&2; exit 1; } ;;
      check) timed "$set-$tool-$step" "${c[@]}" check ;;
    esac
  fi
}

# evict PATH...: drops the files under PATH from the page cache once they are on disk.
# Every restore and every extra round's backup is evicted after it is timed (and
# checked), each before the next tool's turn, so each timed step starts from the same
# memory state: the repository and the data cached (both are read before the restores),
# nothing else. On this VM memory the guest has not touched before costs about
# 4 s of system time per GB the first time (faults on the host side), and keeping five
# rounds of restores cached (15 GB of page cache) pushed later restores into such memory:
# restore system time moved between 1 and 8 s for the same restore. Evicted pages are
# reused by the next step.
evict() {
  sync
  python3 - "$@" <<'PY'
import os, sys
for top in sys.argv[1:]:
    for d, _, files in os.walk(top):
        for f in files:
            p = os.path.join(d, f)
            if os.path.isfile(p) and not os.path.islink(p):
                fd = os.open(p, os.O_RDONLY)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                os.close(fd)
PY
}

# The tools take turns going first: on a VM whose host backs guest memory lazily, the first
# tool to write a step's gigabyte into fresh page cache pays system time the next one does
# not (800 MB by dd: 3.3 s of system time the first time, 0.5 s right after).
TURN=0
turns() {
  local all=("${TOOLS[@]}" "$@") i
  local n=${#all[@]}
  for ((i = 0; i < n; i++)); do echo "${all[(TURN + i) % n]}"; done
}

IFS=, read -ra SETLIST <<< "$SETS"
for set in "${SETLIST[@]}"; do
  echo "== $set" >&2
  rm -rf "$OUT/work-$set" "$OUT"/repo-*-"$set"* "$OUT"/restore-*-"$set"* "$OUT"/cfg-*-"$set"* "$OUT/$set"-*
  mkdir -p "$OUT/work-$set"
  case $set in
    shared) cp -a "$BASE" "$OUT/work-$set/$set" ;;
    *) cp -a "$OUT/$set/$set" "$OUT/work-$set/$set" ;;
  esac
  rm -f "$OUT/work-$set/$set/.complete"
  du -sb --apparent-size "$OUT/work-$set/$set" | cut -f1 > "$OUT/$set-data.size"
  find "$OUT/work-$set/$set" -type f | wc -l > "$OUT/$set-data.files"
  for t in "${TOOLS[@]}"; do op "$t" "$set" init; done
  for t in "${TOOLS[@]}"; do size "$OUT/repo-$t-$set" > "$OUT/$set-$t-init.size"; done
  echo "   backup" >&2
  for ((r = 1; r <= RUNS; r++)); do
    if [ "$r" -gt 1 ]; then for t in "${TOOLS[@]}"; do op "$t" "$set" init "$r"; done; fi
    for t in $(turns); do
      op "$t" "$set" backup "$r"
      if [ "$r" -gt 1 ]; then evict "$OUT/repo-$t-$set.r$r"; fi
    done
    TURN=$((TURN + 1))
  done
  # The extra rounds' repositories served only to time a backup.
  rm -rf "$OUT"/repo-*-"$set".r* "$OUT"/cfg-*-"$set".r*
  echo "   backup-same" >&2
  for t in $(turns); do op "$t" "$set" backup-same; done
  TURN=$((TURN + 1))
  if [ "$set" = shared ]; then
    python3 "$GEN/mutate_dataset.py" "$OUT/work-$set/$set" --day 1 >/dev/null
    echo "   backup-day1" >&2
    for t in $(turns); do op "$t" "$set" backup-day1; done
    TURN=$((TURN + 1))
  fi
  # Every round restores into a folder of its own, all removed at the end: removing a
  # restored tree between restores made the next tool's file creation slower (ext4
  # searches its inode tables past recently deleted inodes).
  # Restores read a cached repository, every tool's: Coffer writes its data packs past the
  # page cache (O_DIRECT), restic through it, so both are read once here.
  find "$OUT"/repo-*-"$set" -type f -exec cat {} + > /dev/null
  echo "   restore" >&2
  # On the tiny set `tar -x` of the same files takes its turn among the tools, in the
  # same conditions (the file system's inode tables fill up round after round).
  extra=(); [ "$set" = tiny ] && extra=(tar)
  for ((r = 1; r <= RUNS; r++)); do
    for t in $(turns "${extra[@]}"); do
      op "$t" "$set" restore "$r"
      sfx=""; [ "$r" -gt 1 ] && sfx=".r$r"
      evict "$OUT/restore-$t-$set$sfx"
    done
    TURN=$((TURN + 1))
  done
  echo "   check" >&2
  for t in $(turns); do op "$t" "$set" check; done
  TURN=$((TURN + 1))
  rm -rf "$OUT"/restore-*-"$set"*
done

python3 - "$OUT" "$SETS" "${TOOLS[@]}" <<'PY'
import os, sys
out, sets, tools = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
MB = 1e6
def t1(p):
    wall, user, sys_, rss = open(p).read().split()[-4:]
    return float(wall), float(user) + float(sys_), int(rss) / 1024
spread = {}
def rng(name):
    sp = spread.get(name)
    return f" (median of {sp[2]}: {sp[0]:.2f}-{sp[1]:.2f} s)" if sp else ""
def t(name):
    """The round with the median wall time (rounds: NAME.time, NAME.r2.time, ...)."""
    rounds, r = [], 1
    while os.path.exists(p := f"{out}/{name}{'' if r == 1 else f'.r{r}'}.time"):
        rounds.append(t1(p))
        r += 1
    if not rounds:
        return None
    rounds.sort()
    if len(rounds) > 1:
        spread[name] = (rounds[0][0], rounds[-1][0], len(rounds))
    return rounds[(len(rounds) - 1) // 2]
def size(name):
    return int(open(f"{out}/{name}.size").read())
for s in sets:
    data, files = size(f"{s}-data"), int(open(f"{out}/{s}-data.files").read())
    print(f"\n### {s}: {data / MB:.0f} MB in {files} files\n")
    steps = ["backup", "backup-same"] + (["backup-day1"] if s == "shared" else []) + ["restore", "check"]
    print("| tool | " + " | ".join(steps) + " | repo size |")
    print("|---|" + "---|" * (len(steps) + 1))
    res = {}
    for tool in tools:
        cells, prev = [], size(f"{s}-{tool}-init")
        for st in steps:
            r = t(f"{s}-{tool}-{st}")
            res[tool, st] = r
            cell = f"{r[0]:.2f} s, {r[1]:.1f} CPU-s, {r[2]:.0f} MiB"
            cell += rng(f"{s}-{tool}-{st}")
            if st in ("backup", "restore"):
                cell += f", {data / MB / r[0]:.0f} MB/s"
            if st.startswith("backup"):
                now = size(f"{s}-{tool}-{st}")
                cell += f", +{(now - prev) / MB:.3f} MB" if st != "backup" else ""
                prev = now
            cells.append(cell)
        print(f"| {tool} | " + " | ".join(cells) + f" | {prev / MB:.0f} MB |")
    if s == "tiny":
        r = t("tiny-tar-restore")
        print(f"| tar -x | | | {r[0]:.2f} s, {r[1]:.1f} CPU-s, {r[2]:.0f} MiB{rng('tiny-tar-restore')} | | |")
    print()
    for tool in tools:
        if tool == "restic":
            continue
        ratio = lambda st: res["restic", st][0] / res[tool, st][0]
        line = (f"{tool} vs restic: backup x{ratio('backup'):.2f}, unchanged re-backup x{ratio('backup-same'):.2f}, "
                f"restore x{ratio('restore'):.2f}, check x{ratio('check'):.2f} (throughput); peak RSS "
                f"{max(res[tool, st][2] for st in steps):.0f} vs {max(res['restic', st][2] for st in steps):.0f} MiB")
        if s == "tiny":
            line += f"; restore / tar -x = {res[tool, 'restore'][0] / t('tiny-tar-restore')[0]:.2f}"
        print(line + "  ")
PY
