#!/usr/bin/env bash
# Compiles and runs the Kotlin flow test (FlowTest.kt) on the JVM against a real
# coffer-vault on loopback. Exits non-zero on failure.
#
# Needs: a JDK (17), kotlinc from the npm package `kotlin-compiler` and JNA from Debian's
# `libjna-java`:
#   npm install --prefix /opt/kotlin kotlin-compiler   # KOTLINC=/opt/kotlin/node_modules/kotlin-compiler/bin/kotlinc
#   apt-get install -y libjna-java                     # JNA_JAR=/usr/share/java/jna.jar
# KOTLINC defaults to `kotlinc` on PATH, JNA_JAR to /usr/share/java/jna.jar.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/../vault.sh"

kotlinc="${KOTLINC:-$(command -v kotlinc || true)}"
[ -x "$kotlinc" ] || { echo "kotlinc not found: set KOTLINC (npm install kotlin-compiler)" >&2; exit 1; }
jna="${JNA_JAR:-/usr/share/java/jna.jar}"
[ -f "$jna" ] || { echo "JNA not found at $jna: apt-get install libjna-java, or set JNA_JAR" >&2; exit 1; }

build="$COFFER_TEST_WORK/kotlin"
mkdir -p "$build"
# The generated bindings and the test in one jar; kotlin-stdlib is bundled into it.
"$kotlinc" -nowarn -cp "$jna" -include-runtime -d "$build/flow.jar" \
    "$COFFER_BINDINGS/kotlin/coffer/coffer.kt" "$here/FlowTest.kt"
java -Djna.library.path="$COFFER_BINDINGS/kotlin" -cp "$build/flow.jar:$jna" FlowTestKt
