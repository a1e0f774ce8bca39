//! A chat or completion request body: the gateway reads any bytes without panicking, and what it
//! counts of the input stays within the request's size.
#![no_main]

use gateway::proxy::{Kind, input_of, inspect};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for kind in [Kind::Chat, Kind::Completion] {
        let seen = inspect(kind, data);
        if let Ok(req) = &seen.parsed {
            let (_, text, answer_tokens) = input_of(kind, req);
            assert!(text.len() <= data.len() * 4, "the input text comes from the body");
            assert!(answer_tokens <= 1 << 20);
        }
    }
});
