//! Monthly columnar segments: the rows of one source file that fall in one month, stored column by
//! column and compressed, with the names behind their ids.
//!
//! Layout: the magic `AIPOSEG1`, the length of the compressed body (u64, little-endian), the body
//! (deflate), then the SHA-256 of everything before it. The body holds the row count, each column
//! as fixed-width little-endian values, then the names as JSON. A segment is written to a
//! temporary name and renamed into place, so a reader sees a whole segment or none, and a torn or
//! edited one fails its hash.

use std::io::{Read as _, Write as _};
use std::path::Path;

use flate2::Compression;
use oss_core::event::Kind;
use oss_core::row::{Action, Names, Row};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

const MAGIC: &[u8; 8] = b"AIPOSEG1";

/// Most rows one segment may hold (an hour of GitHub is about 200,000 events).
pub const MAX_ROWS: usize = 50_000_000;

/// Names as stored: JSON objects keyed by id.
#[derive(Serialize, Deserialize, Default)]
struct StoredNames {
    actors: Vec<(u64, i64, String)>,
    repos: Vec<(u64, i64, String)>,
    orgs: Vec<(u64, i64, String)>,
    other_types: Vec<String>,
}

fn flat(m: &std::collections::BTreeMap<u64, (i64, String)>) -> Vec<(u64, i64, String)> {
    m.iter().map(|(id, (at, n))| (*id, *at, n.clone())).collect()
}

/// Encodes rows and their names.
pub fn encode(rows: &[Row], names: &Names) -> Result<Vec<u8>, Error> {
    let mut body = Vec::with_capacity(rows.len() * 96 + 64);
    body.extend((rows.len() as u64).to_le_bytes());
    let col = |body: &mut Vec<u8>, f: &dyn Fn(&Row) -> u64, width: usize| {
        for r in rows {
            body.extend(&f(r).to_le_bytes()[..width]);
        }
    };
    col(&mut body, &|r| r.at_s as u64, 8);
    col(&mut body, &|r| u64::from(r.kind.code()), 1);
    col(&mut body, &|r| u64::from(r.other_type), 2);
    col(&mut body, &|r| r.action as u64, 1);
    col(&mut body, &|r| u64::from(r.merged) | (u64::from(r.snyk) << 1), 1);
    col(&mut body, &|r| u64::from(r.number), 4);
    let ids: [fn(&Row) -> u64; 8] =
        [|r| r.actor, |r| r.repo, |r| r.org, |r| r.event_id, |r| r.issue, |r| r.comment, |r| r.push, |r| r.author];
    for f in ids {
        col(&mut body, &f, 8);
    }
    let stored = StoredNames {
        actors: flat(&names.actors),
        repos: flat(&names.repos),
        orgs: flat(&names.orgs),
        other_types: names.other_types.clone(),
    };
    serde_json::to_writer(&mut body, &stored).map_err(|e| Error::Corrupt(e.to_string()))?;
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), Compression::fast());
    z.write_all(&body).map_err(Error::io("segment"))?;
    let packed = z.finish().map_err(Error::io("segment"))?;
    let mut out = Vec::with_capacity(packed.len() + 48);
    out.extend(MAGIC);
    out.extend((packed.len() as u64).to_le_bytes());
    out.extend(&packed);
    let hash = Sha256::digest(&out);
    out.extend(hash);
    Ok(out)
}

/// A cursor over the body's columns.
struct Cols<'a> {
    body: &'a [u8],
    at: usize,
    n: usize,
}

impl<'a> Cols<'a> {
    fn next(&mut self, width: usize) -> Result<&'a [u8], Error> {
        let len = self.n.checked_mul(width).ok_or_else(|| Error::Corrupt("row count".into()))?;
        let s = self.body.get(self.at..self.at + len).ok_or_else(|| Error::Corrupt("a column is cut short".into()))?;
        self.at += len;
        Ok(s)
    }

    fn u64s(&mut self, width: usize) -> Result<Vec<u64>, Error> {
        Ok(self
            .next(width)?
            .chunks_exact(width)
            .map(|c| {
                let mut b = [0u8; 8];
                b[..width].copy_from_slice(c);
                u64::from_le_bytes(b)
            })
            .collect())
    }
}

/// Decodes a segment, checking its hash.
pub fn decode(bytes: &[u8]) -> Result<(Vec<Row>, Names), Error> {
    if bytes.len() < 48 || &bytes[..8] != MAGIC {
        return Err(Error::Corrupt("not a segment".into()));
    }
    let (data, hash) = bytes.split_at(bytes.len() - 32);
    if Sha256::digest(data)[..] != *hash {
        return Err(Error::Corrupt("the segment's hash does not match its contents".into()));
    }
    let mut body = Vec::new();
    flate2::read::DeflateDecoder::new(&data[16..]).read_to_end(&mut body).map_err(|e| Error::Corrupt(e.to_string()))?;
    let n = u64::from_le_bytes(body.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(|| Error::Corrupt("empty body".into()))?);
    let n = usize::try_from(n).ok().filter(|n| *n <= MAX_ROWS).ok_or_else(|| Error::Corrupt("too many rows".into()))?;
    let mut c = Cols { body: &body, at: 8, n };
    let at = c.u64s(8)?;
    let kind = c.next(1)?.to_vec();
    let other = c.u64s(2)?;
    let action = c.next(1)?.to_vec();
    let flags = c.next(1)?.to_vec();
    let number = c.u64s(4)?;
    let mut ids = Vec::with_capacity(8);
    for _ in 0..8 {
        ids.push(c.u64s(8)?);
    }
    let stored: StoredNames = serde_json::from_slice(&body[c.at..]).map_err(|e| Error::Corrupt(e.to_string()))?;
    let rows = (0..n)
        .map(|i| Row {
            at_s: at[i] as i64,
            kind: Kind::from_code(kind[i]),
            other_type: other[i] as u16,
            action: Action::from_code(action[i]),
            merged: flags[i] & 1 != 0,
            snyk: flags[i] & 2 != 0,
            number: number[i] as u32,
            actor: ids[0][i],
            repo: ids[1][i],
            org: ids[2][i],
            event_id: ids[3][i],
            issue: ids[4][i],
            comment: ids[5][i],
            push: ids[6][i],
            author: ids[7][i],
        })
        .collect();
    let mut names = Names { other_types: stored.other_types, ..Names::default() };
    for (id, at, n) in stored.actors {
        names.actor(id, at, &n);
    }
    for (id, at, n) in stored.repos {
        names.repo(id, at, &n);
    }
    for (id, at, n) in stored.orgs {
        names.org(id, at, &n);
    }
    Ok((rows, names))
}

/// Writes a file whole or not at all: a temporary name in the same directory (`.NAME.PID.N.tmp`,
/// so that two writers of the same file never share one), synced, renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = path.parent().ok_or_else(|| Error::Corrupt(format!("{}: no directory", path.display())))?;
    std::fs::create_dir_all(dir).map_err(Error::io(dir.display().to_string()))?;
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(Error::io(tmp.display().to_string()))?;
    f.write_all(bytes).map_err(Error::io(tmp.display().to_string()))?;
    f.sync_all().map_err(Error::io(tmp.display().to_string()))?;
    std::fs::rename(&tmp, path).map_err(Error::io(path.display().to_string()))?;
    // The rename is durable only once the directory is synced; a manifest written after this
    // never outlives the segments it lists.
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(Error::io(dir.display().to_string()))?;
    Ok(())
}
