#!/usr/bin/env bash
# Fuzzes every cargo-fuzz target of the workspace for SECS seconds each (default 10),
# starting from the kept corpora without writing into them (new inputs go to a temporary
# directory; docs/FUZZING.md says how to keep them). A crash fails the run and leaves its
# input in the crate's fuzz/artifacts/<target>/. Needs the nightly toolchain and
# cargo-fuzz; .ci/run installs both.
#
#   scripts/fuzz.sh            # every target, 10 s each (what CI runs)
#   SECS=600 scripts/fuzz.sh   # a longer campaign
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${SECS:-10}"
# One target directory for both fuzz crates: they share most dependencies.
export CARGO_TARGET_DIR="$PWD/target/fuzz"
for crate in crates/coffer-vault crates/coffer-backup; do
    for f in "$crate"/fuzz/fuzz_targets/*.rs; do
        t="$(basename "$f" .rs)"
        scratch="$(mktemp -d)"
        echo "== fuzz $crate $t (${secs} s)"
        # -s none: no AddressSanitizer (safe Rust; it would double the build), -O: release.
        (cd "$crate" && cargo +nightly fuzz run -s none -O "$t" "$scratch" "fuzz/corpus/$t" -- \
            -max_total_time="$secs" -rss_limit_mb=2048 -print_final_stats=0 2>&1 | tail -n 3)
        rm -rf "$scratch"
    done
done
echo "fuzz: every target ran ${secs} s without a crash"
