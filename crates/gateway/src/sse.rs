//! Reading an upstream's server-sent events: the `data:` lines of a byte stream that arrives in
//! chunks of any size, each parsed as JSON. The upstream is not trusted: a line longer than
//! [`MAX_LINE_BYTES`] is skipped whole rather than held, and a line that is not JSON (`[DONE]`,
//! a comment, garbage) is passed over.

use serde_json::Value;

/// Longest line kept while waiting for its end.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// The unfinished line between chunks.
#[derive(Default)]
pub struct DataLines {
    line: Vec<u8>,
    overlong: bool,
}

impl DataLines {
    /// The JSON of every `data:` line that `chunk` completes, in order.
    pub fn feed<'a>(&'a mut self, chunk: &'a [u8]) -> impl Iterator<Item = Value> + 'a {
        let mut rest = chunk;
        std::iter::from_fn(move || {
            while !rest.is_empty() {
                let (part, done) = match rest.iter().position(|&b| b == b'\n') {
                    Some(i) => (&rest[..i], true),
                    None => (rest, false),
                };
                rest = if done { &rest[part.len() + 1..] } else { &[] };
                if self.line.len() + part.len() > MAX_LINE_BYTES {
                    self.overlong = true;
                    self.line.clear();
                } else if !self.overlong {
                    self.line.extend_from_slice(part);
                }
                if !done {
                    continue;
                }
                let skip = std::mem::take(&mut self.overlong);
                let parsed = if skip { None } else { parse(&self.line) };
                self.line.clear();
                if parsed.is_some() {
                    return parsed;
                }
            }
            None
        })
    }
}

/// The JSON of one `data:` line (`data:` and one optional space, then JSON; a trailing `\r` of
/// a CRLF line ending is whitespace to JSON).
fn parse(line: &[u8]) -> Option<Value> {
    let data = line.strip_prefix(b"data:")?;
    let data = data.strip_prefix(b" ").unwrap_or(data);
    serde_json::from_slice(data).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(chunks: &[&[u8]]) -> Vec<Value> {
        let mut d = DataLines::default();
        chunks.iter().flat_map(|c| d.feed(c).collect::<Vec<_>>()).collect()
    }

    #[test]
    fn data_lines_are_json_and_everything_else_is_passed_over() {
        let stream = b"event: x\ndata: {\"a\":1}\n\n: comment\ndata:{\"b\":2}\r\ndata: [DONE]\ndata: not json\n";
        assert_eq!(all(&[stream]), vec![serde_json::json!({"a": 1}), serde_json::json!({"b": 2})]);
    }

    #[test]
    fn an_overlong_line_is_skipped_whole_and_the_next_one_read() {
        let mut long = b"data: \"".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES));
        long.extend_from_slice(b"\"\ndata: 7\n");
        let out = all(&[&long[..10], &long[10..]]);
        assert_eq!(out, vec![serde_json::json!(7)]);
    }

    proptest! {
        /// However a stream is cut into chunks, the same values come out.
        #[test]
        fn chunking_does_not_change_what_is_read(values in proptest::collection::vec(0u32..1000, 0..20), cuts in proptest::collection::vec(0usize..400, 0..10)) {
            let text: String = values.iter().map(|v| format!("data: {{\"v\":{v}}}\n\n")).collect();
            let bytes = text.as_bytes();
            let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut at = 0;
            for p in points {
                chunks.push(&bytes[at..p]);
                at = p;
            }
            chunks.push(&bytes[at..]);
            let got: Vec<u64> = all(&chunks).iter().map(|v| v["v"].as_u64().unwrap()).collect();
            prop_assert_eq!(got, values.iter().map(|&v| u64::from(v)).collect::<Vec<_>>());
        }
    }
}
