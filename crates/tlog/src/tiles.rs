//! The C2SP tlog-tiles layout (c2sp.org/tlog-tiles): paths, hash tiles and entry bundles.
//!
//! A tile at level `L`, index `N` is up to 256 consecutive tree nodes of height `8L`, starting
//! at node `256N`: 32 bytes each. A partial tile (`.p/W`) holds the first `W` of them. An entry
//! bundle is the entries of one level-0 tile, each as a big-endian u16 length and its bytes.

use crate::TlogError;
use crate::tree::Tree;

/// Tree levels a tile spans.
pub const TILE_HEIGHT: u32 = 8;
/// Hashes in a full tile.
pub const TILE_WIDTH: u64 = 256;
/// Largest entry a bundle can hold.
pub const MAX_ENTRY_BYTES: usize = u16::MAX as usize;

/// What a `tile/...` path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TilePath {
    Hashes { level: u8, index: u64, width: u16 },
    Entries { index: u64, width: u16 },
}

fn malformed(why: impl Into<String>) -> TlogError {
    TlogError::malformed("tile path", why)
}

/// `1234067` as `x001/x234/067`.
pub fn encode_index(n: u64) -> String {
    let digits = n.to_string();
    let pad = (3 - digits.len() % 3) % 3;
    let padded = format!("{}{digits}", "0".repeat(pad));
    let groups: Vec<&str> = padded.as_bytes().chunks(3).filter_map(|c| std::str::from_utf8(c).ok()).collect();
    let last = groups.len() - 1;
    groups.iter().enumerate().map(|(i, g)| if i == last { (*g).to_string() } else { format!("x{g}") }).collect::<Vec<_>>().join("/")
}

impl TilePath {
    /// The path below the log's prefix, as the spec writes it.
    pub fn to_path(&self) -> String {
        let (head, index, width) = match self {
            Self::Hashes { level, index, width } => (format!("tile/{level}"), *index, *width),
            Self::Entries { index, width } => ("tile/entries".to_string(), *index, *width),
        };
        let partial = if u64::from(width) == TILE_WIDTH { String::new() } else { format!(".p/{width}") };
        format!("{head}/{}{partial}", encode_index(index))
    }

    /// Reads a path below the prefix: `tile/<L>/<N>[.p/<W>]` or `tile/entries/<N>[.p/<W>]`.
    pub fn parse(path: &str) -> Result<Self, TlogError> {
        let rest = path.strip_prefix("tile/").ok_or_else(|| malformed("it must start with tile/"))?;
        let (kind, rest) = rest.split_once('/').ok_or_else(|| malformed("no tile index"))?;
        let (index_part, width) = match rest.split_once(".p/") {
            Some((i, w)) => {
                let ok = !w.is_empty() && !w.starts_with('0') && w.bytes().all(|b| b.is_ascii_digit());
                let w = w
                    .parse::<u16>()
                    .ok()
                    .filter(|w| ok && u64::from(*w) < TILE_WIDTH)
                    .ok_or_else(|| malformed("a partial width is 1 to 255"))?;
                (i, w)
            }
            None => (rest, TILE_WIDTH as u16),
        };
        let index = parse_index(index_part)?;
        if kind == "entries" {
            return Ok(Self::Entries { index, width });
        }
        let ok = !kind.is_empty() && (kind == "0" || !kind.starts_with('0')) && kind.bytes().all(|b| b.is_ascii_digit());
        let level = kind.parse::<u8>().ok().filter(|l| ok && *l <= 63).ok_or_else(|| malformed("the level is 0 to 63"))?;
        Ok(Self::Hashes { level, index, width })
    }
}

fn parse_index(s: &str) -> Result<u64, TlogError> {
    let parts: Vec<&str> = s.split('/').collect();
    let last = parts.len() - 1;
    let mut n: u64 = 0;
    for (i, p) in parts.iter().enumerate() {
        let digits =
            if i == last { *p } else { p.strip_prefix('x').ok_or_else(|| malformed("all but the last index element start with x"))? };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(malformed("index elements are three digits"));
        }
        let d: u64 = digits.parse().map_err(|_| malformed("index elements are three digits"))?;
        n = n.checked_mul(1000).and_then(|n| n.checked_add(d)).ok_or_else(|| malformed("the index is too large"))?;
    }
    Ok(n)
}

/// The bytes of a hash tile, if every hash in it exists in `tree`.
pub fn hash_tile(tree: &Tree, level: u8, index: u64, width: u16) -> Option<Vec<u8>> {
    let height = usize::try_from(u32::from(level) * TILE_HEIGHT).ok()?;
    let first = index.checked_mul(TILE_WIDTH)?;
    let mut out = Vec::with_capacity(usize::from(width) * 32);
    for i in 0..u64::from(width) {
        out.extend_from_slice(&tree.node(height, first + i)?.0);
    }
    Some(out)
}

/// An entry bundle of `entries` (each at most [`MAX_ENTRY_BYTES`]).
pub fn entry_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>, TlogError> {
    let mut out = Vec::new();
    for e in entries {
        let len = u16::try_from(e.len()).map_err(|_| TlogError::malformed("entry", "longer than 65,535 bytes"))?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(e);
    }
    Ok(out)
}

/// The entries of a bundle.
pub fn read_bundle(mut b: &[u8]) -> Result<Vec<&[u8]>, TlogError> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let bad = || TlogError::malformed("entry bundle", "an entry runs past the end");
        let (len, rest) = b.split_first_chunk::<2>().ok_or_else(bad)?;
        let len = usize::from(u16::from_be_bytes(*len));
        let (entry, rest) = rest.split_at_checked(len).ok_or_else(bad)?;
        out.push(entry);
        b = rest;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn paths_follow_the_spec_examples() {
        assert_eq!(encode_index(1_234_067), "x001/x234/067");
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(1000), "x001/000");
        let p = TilePath::Hashes { level: 1, index: 1_234_067, width: 17 };
        assert_eq!(p.to_path(), "tile/1/x001/x234/067.p/17");
        assert_eq!(TilePath::parse(&p.to_path()).unwrap(), p);
        assert_eq!(TilePath::parse("tile/entries/x001/002").unwrap(), TilePath::Entries { index: 1002, width: 256 });
        for bad in
            ["tile/01/000", "tile/0/1", "tile/0/001/002", "tile/0/000.p/0", "tile/0/000.p/256", "tile/0/000.p/05", "tile/64/000", "x/0/000"]
        {
            assert!(TilePath::parse(bad).is_err(), "{bad}");
        }
    }

    /// The spec's example: a tree of 70,000 entries has 273 full level-0 tiles and a partial
    /// one of 112, one full level-1 tile and a partial one of 17, and a level-2 tile of 1.
    #[test]
    fn a_tree_of_70000_has_the_tiles_the_spec_lists() {
        let mut t = Tree::new();
        for i in 0u32..70_000 {
            t.push(crate::hash::leaf_hash(&i.to_be_bytes()));
        }
        assert!(hash_tile(&t, 0, 272, 256).is_some());
        assert!(hash_tile(&t, 0, 273, 256).is_none());
        assert_eq!(hash_tile(&t, 0, 273, 112).map(|b| b.len()), Some(112 * 32));
        assert!(hash_tile(&t, 0, 273, 113).is_none());
        assert!(hash_tile(&t, 1, 0, 256).is_some());
        assert!(hash_tile(&t, 1, 1, 17).is_some() && hash_tile(&t, 1, 1, 18).is_none());
        assert!(hash_tile(&t, 2, 0, 1).is_some() && hash_tile(&t, 2, 0, 2).is_none());
        // A level-1 hash is the root of the 256 entries below it.
        let h = hash_tile(&t, 1, 0, 1).unwrap();
        assert_eq!(h, t.root(256).unwrap().0.to_vec());
    }

    #[test]
    fn bundles_round_trip_and_refuse_truncation() {
        let b = entry_bundle([&b"ab"[..], b"", b"xyz"]).unwrap();
        assert_eq!(read_bundle(&b).unwrap(), vec![&b"ab"[..], b"", b"xyz"]);
        assert!(read_bundle(&b[..b.len() - 1]).is_err());
        assert!(entry_bundle([&vec![0u8; 70_000][..]]).is_err());
    }
}
