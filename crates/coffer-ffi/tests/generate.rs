//! The bindings of all three languages generate from the library as cargo built it, and
//! carry the SDK's entry points. The Kotlin and Python tests (scripts/test.sh) then run
//! what scripts/bindings.sh generates the same way; Swift is generated but not compiled
//! here (no Swift toolchain on Linux CI), so this is its only check.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The library cargo built for this test: the cdylib of a package that a test depends on
/// sits beside the test's own executable (`target/<profile>/deps`).
fn library() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let name = if cfg!(target_os = "macos") {
        "libcoffer_ffi.dylib"
    } else if cfg!(windows) {
        "coffer_ffi.dll"
    } else {
        "libcoffer_ffi.so"
    };
    exe.with_file_name(name)
}

fn generate(language: &str, out: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_uniffi-bindgen"))
        .args(["generate", "--library"])
        .arg(library())
        .args(["--language", language, "--no-format", "--out-dir"])
        .arg(out)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run uniffi-bindgen");
    assert!(status.success(), "uniffi-bindgen failed for {language}");
}

/// Every file under `dir`, read as text, concatenated.
fn text_under(dir: &Path) -> String {
    let mut all = String::new();
    for e in std::fs::read_dir(dir).expect("read output dir") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            all.push_str(&text_under(&p));
        } else {
            all.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
        }
    }
    all
}

#[test]
fn kotlin_python_and_swift_bindings_carry_the_sdk() {
    assert!(library().is_file(), "no library at {}", library().display());
    let tmp = tempfile::tempdir().expect("tempdir");
    for (language, wanted) in [
        // Kotlin quotes every name in backticks.
        (
            "kotlin",
            [
                "class Coffer",
                "fun `backup`(",
                "fun `restore`(",
                "fun `changePassword`(",
            ],
        ),
        (
            "python",
            [
                "class Coffer",
                "def backup(",
                "def restore(",
                "def change_password(",
            ],
        ),
        (
            "swift",
            [
                "class Coffer",
                "func backup(",
                "func restore(",
                "func changePassword(",
            ],
        ),
    ] {
        let out = tmp.path().join(language);
        generate(language, &out);
        let text = text_under(&out);
        for w in wanted {
            assert!(text.contains(w), "{language} bindings lack `{w}`");
        }
    }
}
