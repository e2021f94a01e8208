//! `uniffi-bindgen`: writes the Kotlin, Swift and Python bindings of `libcoffer_ffi`
//! (scripts/bindings.sh runs it in library mode).

fn main() {
    uniffi::uniffi_bindgen_main()
}
