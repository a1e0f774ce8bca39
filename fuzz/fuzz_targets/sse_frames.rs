//! An upstream's event stream cut into chunks at fuzzer-chosen places: reading it never panics,
//! and how it is cut never changes what is read.
#![no_main]

use gateway::sse::DataLines;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else { return };
    let whole: Vec<_> = DataLines::default().feed(stream).collect();
    let at = usize::from(cut).min(stream.len());
    let mut lines = DataLines::default();
    let mut pieces: Vec<_> = lines.feed(&stream[..at]).collect();
    pieces.extend(lines.feed(&stream[at..]));
    assert_eq!(whole, pieces);
});
