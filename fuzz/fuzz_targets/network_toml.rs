//! A network file: any text is parsed and validated without panicking, and an error names a line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = compute::file::parse_network("fuzz.toml", text);
    }
});
