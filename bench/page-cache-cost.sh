#!/usr/bin/env bash
# What writing into the page cache costs on this machine, file after file: writes N files
# of 1 GiB (1 MiB writes of one random buffer, as a restore writes), keeps them cached, and
# prints each file's wall and system seconds. On the shared VMs here memory the guest has
# not touched lately costs faults on the host: 0.3-0.8 s of system time per GiB when the
# memory was recently used, 3-4 s when it was not. Run it before a benchmark to see which
# state the machine is in; bench/backup-vs-restic.sh (`evict`) says how it copes.
#
#   bench/page-cache-cost.sh [N=6] [DIR=bench/out/page-cache-cost]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-6}
DIR=${2:-bench/out/page-cache-cost}
mkdir -p "$DIR"
trap 'rm -rf "$DIR"' EXIT
python3 - "$N" "$DIR" <<'PY'
import os, resource, sys, time
n, d = int(sys.argv[1]), sys.argv[2]
buf = os.urandom(1 << 20)
for i in range(n):
    os.sync()
    t0, r0 = time.time(), resource.getrusage(resource.RUSAGE_SELF).ru_stime
    fd = os.open(os.path.join(d, f"f{i}"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for _ in range(1024):
        os.write(fd, buf)
    os.close(fd)
    sys_s = resource.getrusage(resource.RUSAGE_SELF).ru_stime - r0
    print(f"file {i + 1}: 1 GiB in {time.time() - t0:.2f} s, {sys_s:.2f} s of system time")
PY
