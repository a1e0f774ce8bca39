//! The keyword guardrail: any keyword list and text are handled without panicking, a keyword
//! found in the whole text is also caught when the text streams in two pieces, and a text that
//! contains a keyword is always caught.
#![no_main]

use gateway::guardrail::{KeywordGuard, StreamWatch};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(all) = std::str::from_utf8(data) else { return };
    let Some((list, text)) = all.split_once('\u{0}') else { return };
    let Ok(guard) = KeywordGuard::from_text(list, true) else { return };
    let whole = guard.find(text).is_some();
    if let Some(first) = list.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')) {
        let planted = format!("{text}{first}");
        assert!(guard.find(&planted).is_some(), "a listed keyword is found");
    }
    let mid = (0..=text.len()).rev().find(|&i| text.is_char_boundary(i) && i <= text.len() / 2).unwrap_or(0);
    let mut watch = StreamWatch::default();
    let streamed = watch.push(&guard, &text[..mid]) | watch.push(&guard, &text[mid..]);
    assert_eq!(whole, streamed, "streaming in two pieces finds what the whole text has");
});
