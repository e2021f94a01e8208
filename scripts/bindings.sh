#!/usr/bin/env bash
# Builds the Coffer SDK's native library (crates/coffer-ffi) and writes its bindings:
#
#   target/bindings/kotlin/coffer/coffer.kt      Kotlin (JNA), package `coffer`
#   target/bindings/kotlin/libcoffer_ffi.so      the library the Kotlin code loads
#   target/bindings/python/coffer.py             Python: PYTHONPATH=target/bindings/python,
#   target/bindings/python/libcoffer_ffi.so        then `import coffer`
#   target/bindings/swift/coffer.swift           Swift, module `coffer`
#   target/bindings/swift/cofferFFI.h            the C header and its module map
#   target/bindings/swift/cofferFFI.modulemap      (iOS links libcoffer_ffi.a: docs/SDK.md)
#
# The generator is this workspace's own `uniffi-bindgen` (a binary of coffer-ffi, built
# from Cargo.lock), so the bindings always match the library's uniffi version.
#
# Usage: scripts/bindings.sh              (debug build; fine for tests)
#        scripts/bindings.sh --release    (what an app ships)
# With COFFER_BINDINGS_PREBUILT=1 nothing is built: the library and the generator that
# `cargo test --workspace` built are used (scripts/test.sh does this).
# Honours CARGO_TARGET_DIR for the build; the bindings always go to target/bindings in
# the repository (COFFER_BINDINGS_DIR overrides it).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
profile=debug
cargo_profile=()
case "${1:-}" in
    --release) profile=release; cargo_profile=(--release) ;;
    "") ;;
    *) echo "usage: $0 [--release]" >&2; exit 2 ;;
esac
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac

# The library is built without the generator's dependencies; the generator is built
# separately (the `bindgen` feature) and only reads the library's metadata.
# `cargo build -p coffer-ffi` leaves the library in target/<profile>; `cargo test` (built
# as a dependency of coffer-ffi's tests) leaves it in target/<profile>/deps.
if [ "${COFFER_BINDINGS_PREBUILT:-0}" = 1 ]; then
    libdir="$target/$profile/deps"
else
    cargo build --manifest-path "$root/Cargo.toml" -p coffer-ffi --lib "${cargo_profile[@]}"
    cargo build --manifest-path "$root/Cargo.toml" -p coffer-ffi --features bindgen \
        --bin uniffi-bindgen "${cargo_profile[@]}"
    libdir="$target/$profile"
fi

case "$(uname -s)" in
    Darwin) lib="$libdir/libcoffer_ffi.dylib" ;;
    *) lib="$libdir/libcoffer_ffi.so" ;;
esac
bindgen="$target/$profile/uniffi-bindgen"
out="${COFFER_BINDINGS_DIR:-$root/target/bindings}"
rm -rf "$out"
mkdir -p "$out"

for lang in kotlin python swift; do
    # Library mode: the exported API is read from the library itself; uniffi.toml
    # (package and module names) is found through cargo metadata.
    (cd "$root" && "$bindgen" generate --library "$lib" --language "$lang" \
        --out-dir "$out/$lang" --no-format)
done
# The loaders look for the library next to the generated code (Python) or on the JNA
# library path (Kotlin: -Djna.library.path=target/bindings/kotlin).
cp "$lib" "$out/kotlin/"
cp "$lib" "$out/python/"
# A debug build carries hundreds of MiB of debug info the copies do not need.
if [ "$profile" = debug ] && command -v strip >/dev/null 2>&1; then
    strip --strip-debug "$out/kotlin/$(basename "$lib")" "$out/python/$(basename "$lib")" 2>/dev/null || true
fi
echo "bindings written to $out/{kotlin,python,swift} (library: $lib)"
