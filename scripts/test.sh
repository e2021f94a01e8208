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

# Everything is built once, by one `cargo test --workspace`, so every dependency is
# compiled with one set of features. Cargo unifies features over the packages a command
# selects: `cargo test -p coffer-vault` or `cargo build -p coffer-ffi` each compiled about
# seventy dependencies again (six to seven minutes each of a cold CI run). So step 1 runs
# the vault's test binaries from this build, as cargo would (from the package's
# directory), and step 2 uses the library, the bindings generator and coffer-vault that
# this build made (coffer-ffi's own tests need the first two, the vault's the third).
# The build prints its progress and diagnostics as usual on stderr; its JSON on stdout
# names the vault's test binaries.
echo "== build the tests (at ${SECONDS} s)"
vault_tests=$(cargo test --workspace --locked --no-run --message-format=json-render-diagnostics |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") \
            and m["profile"]["test"] and m["target"]["src_path"].startswith(sys.argv[1]):
        print(m["executable"])
' "$PWD/crates/coffer-vault/")
[ -n "$vault_tests" ] || { echo "no coffer-vault test binaries found" >&2; exit 1; }

echo "== vault suite over the split deployment (core process + host) (at ${SECONDS} s)"
for t in $vault_tests; do
    echo "-- $(basename "$t")"
    (cd crates/coffer-vault && COFFER_VAULT_SPLIT=1 "$t" -q)
done

echo "== SDK bindings (Kotlin, Python) (at ${SECONDS} s)"
kotlinc="${KOTLINC:-$(command -v kotlinc || true)}"
have_bindings_tools() {
    [ -n "$kotlinc" ] && [ -x "$kotlinc" ] && [ -f "${JNA_JAR:-/usr/share/java/jna.jar}" ] &&
        python3 -c 'import pytest' 2>/dev/null
}
if have_bindings_tools; then
    # The library, the generator and coffer-vault are already built (step "build").
    COFFER_BINDINGS_PREBUILT=1 scripts/bindings.sh
    KOTLINC="$kotlinc" COFFER_TEST_SKIP_BUILD=1 tests/bindings/kotlin/run.sh
    COFFER_TEST_SKIP_BUILD=1 tests/bindings/python/run.sh
elif [ "${COFFER_REQUIRE_BINDINGS_TESTS:-0}" = 1 ]; then
    echo "bindings tests need kotlinc (KOTLINC), JNA (JNA_JAR or /usr/share/java/jna.jar) and pytest; see .ci/run" >&2
    exit 1
else
    echo "SKIP: bindings tests (install kotlinc, libjna-java and pytest as .ci/run does)"
fi

echo "== cargo test --workspace (at ${SECONDS} s)"
cargo test --workspace --locked "$@"
echo "== done (at ${SECONDS} s)"
