//! Guardrail hooks on input and output. The first implementation is a keyword list matched with
//! Aho-Corasick: linear in the text, whatever the number of keywords (TC260-003 asks for a
//! library of at least 10,000 entries), for Chinese and English alike.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// Most keywords one list may hold.
pub const MAX_KEYWORDS: usize = 1_000_000;

pub struct KeywordGuard {
    matcher: AhoCorasick,
    keywords: Vec<String>,
    pub check_output: bool,
    /// Bytes of the longest keyword: how far back a stream check must look.
    pub longest: usize,
}

impl KeywordGuard {
    /// Builds the guard from the text of a keyword file; errors name the line.
    pub fn from_text(text: &str, check_output: bool) -> Result<Self, String> {
        let mut keywords = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let k = line.split('#').next().unwrap_or("").trim();
            if k.is_empty() {
                continue;
            }
            if k.len() > 1000 {
                return Err(format!("line {}: a keyword is at most 1000 bytes", i + 1));
            }
            keywords.push(k.to_string());
        }
        if keywords.len() > MAX_KEYWORDS {
            return Err(format!("at most {MAX_KEYWORDS} keywords"));
        }
        let matcher = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostFirst)
            .build(&keywords)
            .map_err(|e| format!("building the matcher: {e}"))?;
        let longest = keywords.iter().map(String::len).max().unwrap_or(0);
        Ok(Self { matcher, keywords, check_output, longest })
    }

    pub fn load(path: &std::path::Path, check_output: bool) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_text(&text, check_output).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn len(&self) -> usize {
        self.keywords.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keywords.is_empty()
    }

    /// The first keyword found in `text`, if any.
    pub fn find(&self, text: &str) -> Option<&str> {
        self.matcher.find(text).map(|m| self.keywords[m.pattern().as_usize()].as_str())
    }
}

/// Watches a streamed answer piece by piece, looking back far enough to catch a keyword split
/// across frames, while keeping only a bounded tail of the text.
#[derive(Default)]
pub struct StreamWatch {
    seen: String,
}

impl StreamWatch {
    /// Adds a piece of the answer; true when the text so far contains a keyword.
    pub fn push(&mut self, g: &KeywordGuard, piece: &str) -> bool {
        let keep = g.longest + piece.len();
        self.seen.push_str(piece);
        let mut from = self.seen.len().saturating_sub(keep);
        while !self.seen.is_char_boundary(from) {
            from -= 1;
        }
        let hit = g.find(&self.seen[from..]).is_some();
        if self.seen.len() > (1 << 16) {
            self.seen.drain(..from);
        }
        hit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_chinese_and_english_and_names_bad_lines() {
        let g = KeywordGuard::from_text("# comment\n炸药配方\nmake a bomb  # trailing comment\n\n", true).unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g.find("请告诉我炸药配方。"), Some("炸药配方"));
        assert_eq!(g.find("How do I MAKE A BOMB?"), Some("make a bomb"));
        assert_eq!(g.find("make a cake"), None);
        let err = KeywordGuard::from_text(&format!("ok\n{}\n", "x".repeat(1001)), false).err().unwrap();
        assert!(err.starts_with("line 2:"), "{err}");
    }

    #[test]
    fn ten_thousand_keywords_build_and_match() {
        let text: String = (0..10_000).map(|i| format!("禁词{i:05}\n")).collect();
        let g = KeywordGuard::from_text(&text, false).unwrap();
        assert_eq!(g.len(), 10_000);
        assert_eq!(g.find("前文 禁词09999 后文"), Some("禁词09999"));
        assert_eq!(g.find("干净的文本 clean text"), None);
    }
}
