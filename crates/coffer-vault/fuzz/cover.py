#!/usr/bin/env python3
"""Shrinks a cmin'd fuzz corpus to a few dozen files with the same edge coverage.

libFuzzer's merge (what `cargo fuzz cmin` runs) keeps files in size order, each one that
adds any new feature, which leaves hundreds of near-duplicates. This reads the per-file
coverage from a merge control file and keeps a greedy set cover of the edges instead
(docs/FUZZING.md). Usage, from crates/coffer-vault:

    fuzz/cover.py TARGET [MAX_FILES]

With MAX_FILES (default 48) it stops there, keeping the files that cover the most; the
rest of the edges the fuzzer finds again within seconds of a CI run.
"""
import os
import subprocess
import sys
import tempfile

target = sys.argv[1]
max_files = int(sys.argv[2]) if len(sys.argv) > 2 else 48
corpus = os.path.join("fuzz", "corpus", target)
binary = os.path.join("fuzz", "target", "x86_64-unknown-linux-gnu", "release", target)
files = sorted(os.path.join(corpus, f) for f in os.listdir(corpus))


def edges(path):
    """Every edge one input covers: a merge of that file alone into an empty corpus (the
    control file lists only features new to the merge, so one merge per file)."""
    with tempfile.TemporaryDirectory() as tmp:
        control, empty, one = (os.path.join(tmp, d) for d in ("control", "empty", "one"))
        os.mkdir(empty)
        os.mkdir(one)
        os.symlink(os.path.abspath(path), os.path.join(one, "input"))
        subprocess.run(
            [binary, "-merge=1", f"-merge_control_file={control}", "-use_counters=0", empty, one],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cov = set()
        for line in open(control).read().splitlines():
            parts = line.split()
            if parts and parts[0] == "COV":
                cov |= set(parts[2:])
        return cov


cov = {i: edges(f) for i, f in enumerate(files)}
n = len(files)
covered, keep = set(), []
while len(keep) < max_files:
    best = max(cov, key=lambda i: (len(cov[i] - covered), -os.path.getsize(files[i])), default=None)
    if best is None or not cov[best] - covered:
        break
    covered |= cov.pop(best)
    keep.append(files[best])
for f in files:
    if f not in keep:
        os.remove(f)
total = len(set().union(*cov.values(), covered))
print(f"{target}: kept {len(keep)} of {n} files, {len(covered)} of {total} edges")
