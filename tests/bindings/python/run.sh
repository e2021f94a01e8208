#!/usr/bin/env bash
# Runs the Python flow test (test_flow.py, pytest) against a real coffer-vault on
# loopback, with target/bindings/python on PYTHONPATH. Needs `pip install pytest`.
# Extra arguments go to pytest (e.g. -k cancelled).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../vault.sh"

export PYTHONPATH="$COFFER_BINDINGS/python${PYTHONPATH:+:$PYTHONPATH}"
python3 -m pytest -q -p no:cacheprovider "$here/test_flow.py" "$@"
