#!/usr/bin/env bash
# The whole test suite (the README's test command; .ci/run calls it after installing what
# it needs):
#   1. the vault suite once more over the split deployment: `coffer-vault core` as its own
#      process and `serve --core` in front of it (docs/VAULT-CORE.md);
#   2. the SDK bindings from foreign code: the Kotlin test on the JVM and the Python
#      pytest flow, against a real vault on loopback (docs/SDK.md). They need kotlinc (npm
#      `kotlin-compiler`), JNA (Debian `libjna-java`) and pytest; without them they print
#      SKIP, unless COFFER_REQUIRE_BINDINGS_TESTS=1 (CI) makes a missing tool a failure;
#   3. `cargo test --workspace`, last, so its summary closes the log.
# Arguments go to step 3's `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== vault suite over the split deployment (core process + host)"
COFFER_VAULT_SPLIT=1 cargo test -p coffer-vault --locked

echo "== SDK bindings (Kotlin, Python)"
kotlinc="${KOTLINC:-$(command -v kotlinc || true)}"
have_bindings_tools() {
    [ -n "$kotlinc" ] && [ -x "$kotlinc" ] && [ -f "${JNA_JAR:-/usr/share/java/jna.jar}" ] &&
        python3 -c 'import pytest' 2>/dev/null
}
if have_bindings_tools; then
    KOTLINC="$kotlinc" tests/bindings/kotlin/run.sh
    COFFER_TEST_SKIP_BUILD=1 tests/bindings/python/run.sh
elif [ "${COFFER_REQUIRE_BINDINGS_TESTS:-0}" = 1 ]; then
    echo "bindings tests need kotlinc (KOTLINC), JNA (JNA_JAR or /usr/share/java/jna.jar) and pytest; see .ci/run" >&2
    exit 1
else
    echo "SKIP: bindings tests (install kotlinc, libjna-java and pytest as .ci/run does)"
fi

echo "== cargo test --workspace"
cargo test --workspace --locked "$@"
