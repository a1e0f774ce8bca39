//! The OpenB trace reader (nodes and pods CSV): any bytes give rows or an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sim::trace::read_nodes("nodes.csv", Box::new(std::io::Cursor::new(data.to_vec())));
    let _ = sim::trace::read_pods("pods.csv", Box::new(std::io::Cursor::new(data.to_vec())));
});
