//! BERT's tokenizer: the basic tokenizer (cleaning, CJK splitting, lower-casing, accent stripping,
//! whitespace and punctuation splitting) followed by WordPiece over `vocab.txt`.
//!
//! It follows Hugging Face's fast tokenizer (`BertNormalizer`, `BertPreTokenizer`, `WordPiece`),
//! because that is what sentence-transformers runs and so what the model's reference outputs come
//! from. Where that differs from Google's original Python code it is said below.

use std::collections::HashMap;
use std::path::Path;

use unicode_normalization::UnicodeNormalization;

use crate::EmbedError;
use crate::unicode_tables::{NONSPACING_MARK, OTHER, PUNCTUATION};

/// Words longer than this many characters become one `[UNK]`, as in BERT.
const MAX_WORD_CHARS: usize = 100;

/// WordPiece marks a piece that continues a word with this prefix.
const CONTINUATION: &str = "##";

/// How text is normalised before splitting, from `tokenizer_config.json` and
/// `sentence_bert_config.json`.
#[derive(Debug, Clone)]
pub(crate) struct TokenizerOptions {
    /// BERT's `do_lower_case`.
    pub(crate) lowercase: bool,
    /// BERT's `strip_accents`; `None` follows `lowercase`.
    pub(crate) strip_accents: Option<bool>,
    /// BERT's `tokenize_chinese_chars`.
    pub(crate) chinese_chars: bool,
    /// sentence-transformers' own `do_lower_case`, applied to the raw text before the tokenizer.
    pub(crate) lowercase_input: bool,
    /// Names of the special tokens: unknown, classifier, separator.
    pub(crate) unk: String,
    pub(crate) cls: String,
    pub(crate) sep: String,
    /// Special tokens recognised verbatim in the input (`[CLS]`, `[MASK]`, ...), as Hugging Face
    /// does for "added tokens" before normalising.
    pub(crate) literal_specials: Vec<String>,
    /// Tokens per sequence, `[CLS]` and `[SEP]` included.
    pub(crate) max_len: usize,
}

/// A loaded vocabulary with its options.
#[derive(Debug)]
pub(crate) struct Tokenizer {
    vocab: HashMap<String, u32>,
    lowercase: bool,
    strip_accents: bool,
    chinese_chars: bool,
    lowercase_input: bool,
    unk: u32,
    cls: u32,
    sep: u32,
    /// Literal special tokens and their ids, longest first so the longest match wins.
    specials: Vec<(String, u32)>,
    max_len: usize,
}

impl Tokenizer {
    /// Reads `vocab.txt`: one token per line, its id being the line number from zero.
    pub(crate) fn load(vocab_path: &Path, options: TokenizerOptions) -> Result<Self, EmbedError> {
        let text = std::fs::read_to_string(vocab_path).map_err(|source| EmbedError::Read { path: vocab_path.to_path_buf(), source })?;
        let mut vocab = HashMap::new();
        for (id, line) in text.lines().enumerate() {
            let id = u32::try_from(id).map_err(|_| EmbedError::Invalid {
                path: vocab_path.to_path_buf(),
                field: format!("line {}", id + 1),
                reason: "more tokens than fit in a u32 id".into(),
            })?;
            // A later duplicate wins, as in Hugging Face's `load_vocab`.
            vocab.insert(line.to_owned(), id);
        }
        let id_of = |token: &str| {
            vocab.get(token).copied().ok_or_else(|| EmbedError::Invalid {
                path: vocab_path.to_path_buf(),
                field: token.to_owned(),
                reason: "special token is missing from the vocabulary".into(),
            })
        };
        let unk = id_of(&options.unk)?;
        let cls = id_of(&options.cls)?;
        let sep = id_of(&options.sep)?;
        let mut specials: Vec<(String, u32)> =
            options.literal_specials.iter().filter(|s| !s.is_empty()).filter_map(|s| vocab.get(s).map(|&id| (s.clone(), id))).collect();
        specials.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        Ok(Self {
            vocab,
            lowercase: options.lowercase,
            strip_accents: options.strip_accents.unwrap_or(options.lowercase),
            chinese_chars: options.chinese_chars,
            lowercase_input: options.lowercase_input,
            unk,
            cls,
            sep,
            specials,
            max_len: options.max_len,
        })
    }

    /// Number of entries in the vocabulary, which bounds every id this tokenizer emits.
    pub(crate) fn vocab_len(&self) -> usize {
        self.vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0)
    }

    /// Tokens per sequence, `[CLS]` and `[SEP]` included.
    pub(crate) fn max_len(&self) -> usize {
        self.max_len
    }

    /// The ids the model sees: `[CLS]`, the word pieces cut to fit, `[SEP]`.
    pub(crate) fn encode(&self, text: &str) -> Vec<u32> {
        // The loader guarantees room for `[CLS]` and `[SEP]`; saturating keeps this total.
        let budget = self.max_len.saturating_sub(2);
        let mut ids = Vec::with_capacity(16);
        ids.push(self.cls);
        let lowered;
        let text = if self.lowercase_input {
            lowered = text.to_lowercase();
            lowered.as_str()
        } else {
            text
        };
        let mut scratch = Scratch::default();
        for segment in self.split_specials(text) {
            if ids.len() > budget {
                break;
            }
            match segment {
                Segment::Special(id) => ids.push(id),
                Segment::Text(t) => self.encode_text(t, &mut ids, budget + 1, &mut scratch),
            }
        }
        ids.truncate(budget + 1);
        ids.push(self.sep);
        ids
    }

    /// Cuts `text` at every verbatim special token, leftmost first and longest at a position.
    fn split_specials<'t>(&self, text: &'t str) -> Vec<Segment<'t>> {
        let mut out = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i < text.len() {
            let rest = &text[i..];
            if let Some((s, id)) = self.specials.iter().find(|(s, _)| rest.starts_with(s)) {
                if start < i {
                    out.push(Segment::Text(&text[start..i]));
                }
                out.push(Segment::Special(*id));
                i += s.len();
                start = i;
            } else {
                i += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
        if start < text.len() {
            out.push(Segment::Text(&text[start..]));
        }
        out
    }

    /// Appends the word pieces of ordinary text to `ids`, stopping once `ids` holds `limit`.
    fn encode_text(&self, text: &str, ids: &mut Vec<u32>, limit: usize, scratch: &mut Scratch) {
        self.normalize(text, &mut scratch.normalized);
        let normalized = std::mem::take(&mut scratch.normalized);
        for word in pre_tokenize(&normalized) {
            if ids.len() >= limit {
                break;
            }
            self.word_piece(word, ids, &mut scratch.piece);
        }
        scratch.normalized = normalized;
    }

    /// BERT's normaliser, in the fast tokenizer's order: clean, space out CJK, strip accents
    /// (NFD, then drop non-spacing marks), lower-case character by character.
    fn normalize(&self, text: &str, out: &mut String) {
        out.clear();
        let mut cleaned = String::with_capacity(text.len());
        for c in text.chars() {
            if c == '\0' || c == '\u{FFFD}' || is_control(c) {
                continue;
            }
            if is_whitespace(c) {
                cleaned.push(' ');
            } else if self.chinese_chars && is_cjk(c) {
                cleaned.push(' ');
                cleaned.push(c);
                cleaned.push(' ');
            } else {
                cleaned.push(c);
            }
        }
        let push_lowered = |out: &mut String, c: char| {
            if self.lowercase {
                out.extend(c.to_lowercase());
            } else {
                out.push(c);
            }
        };
        if self.strip_accents {
            for c in cleaned.nfd().filter(|&c| !in_table(NONSPACING_MARK, c)) {
                push_lowered(out, c);
            }
        } else {
            for c in cleaned.chars() {
                push_lowered(out, c);
            }
        }
    }

    /// Greedy longest-match-first WordPiece; a word with any unmatched rest is one `[UNK]`.
    fn word_piece(&self, word: &str, ids: &mut Vec<u32>, piece: &mut String) {
        if word.chars().count() > MAX_WORD_CHARS {
            ids.push(self.unk);
            return;
        }
        let first_new = ids.len();
        let mut start = 0;
        while start < word.len() {
            let mut end = word.len();
            let mut found = None;
            while start < end {
                piece.clear();
                if start > 0 {
                    piece.push_str(CONTINUATION);
                }
                piece.push_str(&word[start..end]);
                if let Some(&id) = self.vocab.get(piece.as_str()) {
                    found = Some((id, end));
                    break;
                }
                // Step back one whole character, never into the middle of one.
                end -= word[start..end].chars().next_back().map_or(1, char::len_utf8);
            }
            match found {
                Some((id, next)) => {
                    ids.push(id);
                    start = next;
                }
                None => {
                    ids.truncate(first_new);
                    ids.push(self.unk);
                    return;
                }
            }
        }
    }
}

/// Buffers reused across the segments of one text.
#[derive(Default)]
struct Scratch {
    normalized: String,
    piece: String,
}

/// A stretch of input: a verbatim special token or text to normalise.
enum Segment<'t> {
    Special(u32),
    Text(&'t str),
}

/// Splits normalised text into words: whitespace separates and is dropped, and every
/// punctuation character is a word of its own.
fn pre_tokenize(text: &str) -> impl Iterator<Item = &str> {
    text.split(char::is_whitespace).flat_map(|chunk| {
        let mut pieces = Vec::new();
        let mut start = 0;
        for (i, c) in chunk.char_indices() {
            if is_punctuation(c) {
                if start < i {
                    pieces.push(&chunk[start..i]);
                }
                pieces.push(&chunk[i..i + c.len_utf8()]);
                start = i + c.len_utf8();
            }
        }
        if start < chunk.len() {
            pieces.push(&chunk[start..]);
        }
        pieces
    })
}

/// Whether `c` lies in one of the sorted inclusive ranges of `table`.
fn in_table(table: &[(u32, u32)], c: char) -> bool {
    let c = u32::from(c);
    table
        .binary_search_by(|&(lo, hi)| {
            if hi < c {
                std::cmp::Ordering::Less
            } else if lo > c {
                std::cmp::Ordering::Greater
            } else {
                std::cmp::Ordering::Equal
            }
        })
        .is_ok()
}

/// Whitespace as the fast tokenizer sees it: Unicode `White_Space`. Google's original code used
/// category Zs plus tab, newline and carriage return; the two differ only on a few line and
/// paragraph separators, which become spaces either way after cleaning.
fn is_whitespace(c: char) -> bool {
    c.is_whitespace()
}

/// Control and format characters (Cc, Cf, Co), which cleaning drops; tab, newline and carriage
/// return are whitespace instead.
fn is_control(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r') && in_table(OTHER, c)
}

/// Punctuation as BERT splits it: all of ASCII's non-alphanumeric printable characters (so `$`,
/// `+`, `<`, `^` and `|` count though Unicode calls them symbols) and Unicode's P* categories.
fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation() || in_table(PUNCTUATION, c)
}

/// The CJK Unified Ideograph blocks that BERT surrounds with spaces, so each ideograph is a word.
/// Like BERT it leaves out Hangul, kana and CJK punctuation, which are written with spaces or
/// split as punctuation anyway.
fn is_cjk(c: char) -> bool {
    matches!(u32::from(c),
        0x4E00..=0x9FFF
        | 0x3400..=0x4DBF
        | 0x20000..=0x2A6DF
        | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F
        | 0x2B820..=0x2CEAF
        | 0xF900..=0xFAFF
        | 0x2F800..=0x2FA1F)
}

#[cfg(test)]
mod tests {
    use super::{in_table, is_cjk, is_control, is_punctuation, pre_tokenize};
    use crate::unicode_tables::NONSPACING_MARK;

    #[test]
    fn character_classes() {
        assert!(is_punctuation('，') && is_punctuation('。') && is_punctuation('$'));
        assert!(is_punctuation('\u{2014}') && !is_punctuation('a') && !is_punctuation('人'));
        assert!(is_control('\u{200B}') && is_control('\u{7}') && !is_control('\n'));
        assert!(in_table(NONSPACING_MARK, '\u{0301}') && !in_table(NONSPACING_MARK, 'e'));
        assert!(is_cjk('人') && !is_cjk('a') && !is_cjk('，'));
    }

    #[test]
    fn pre_tokenize_isolates_punctuation() {
        let words: Vec<&str> = pre_tokenize("hello,  world!! a.b").collect();
        assert_eq!(words, ["hello", ",", "world", "!", "!", "a", ".", "b"]);
    }
}
