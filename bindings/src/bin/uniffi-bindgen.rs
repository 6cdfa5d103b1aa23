//! `uniffi-bindgen`, built from the same UniFFI version as the library (see scripts/bindings.sh).

fn main() {
    uniffi::uniffi_bindgen_main()
}
