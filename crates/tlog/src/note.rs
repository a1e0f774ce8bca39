//! C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, and the key encodings of
//! golang.org/x/mod/sumdb/note, so that `note` tools and witnesses read ours:
//!
//! - verifier key: `<name>+<hex key id>+<base64(0x01 || public key)>`;
//! - signer key: `PRIVATE+KEY+<name>+<hex key id>+<base64(0x01 || seed)>`;
//! - key id: the first four bytes of SHA-256(name || "\n" || 0x01 || public key).

use base64::Engine;
use ed25519_dalek::{Signer, Verifier};
use sha2::{Digest, Sha256};

use crate::TlogError;

/// The signature type byte of Ed25519.
const ED25519: u8 = 0x01;
/// Largest note we parse; a checkpoint is a few hundred bytes.
pub const MAX_NOTE_BYTES: usize = 64 * 1024;
/// Most signature lines we parse (the spec asks for at least 16).
pub const MAX_SIGNATURES: usize = 100;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn malformed(what: &'static str, why: impl Into<String>) -> TlogError {
    TlogError::malformed(what, why)
}

/// A key name: non-empty, with no Unicode space and no `+`.
fn check_name(name: &str) -> Result<(), TlogError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(malformed("key name", format!("{name:?} is empty or has a space or a '+'")));
    }
    Ok(())
}

/// The key id of an Ed25519 key under `name`.
pub fn key_id(name: &str, public: &[u8; 32]) -> u32 {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update([b'\n', ED25519]);
    h.update(public);
    let d = h.finalize();
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// The log's private key.
pub struct SignerKey {
    name: String,
    id: u32,
    key: ed25519_dalek::SigningKey,
}

impl SignerKey {
    /// The key of a 32-byte Ed25519 seed (RFC 8032), which the caller draws: the binary from
    /// the operating system's randomness, once, when it makes the log's key.
    pub fn from_seed(name: &str, seed: [u8; 32]) -> Result<Self, TlogError> {
        check_name(name)?;
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        Ok(Self { name: name.to_string(), id: key_id(name, key.verifying_key().as_bytes()), key })
    }

    /// Reads `PRIVATE+KEY+<name>+<id>+<base64>`.
    pub fn parse(s: &str) -> Result<Self, TlogError> {
        let rest = s.trim().strip_prefix("PRIVATE+KEY+").ok_or_else(|| malformed("signer key", "it must start with PRIVATE+KEY+"))?;
        let (name, id, key) = split_key(rest, "signer key")?;
        let seed: [u8; 32] = key.try_into().map_err(|_| malformed("signer key", "the seed is not 32 bytes"))?;
        let k = Self::from_seed(name, seed)?;
        if k.id != id {
            return Err(malformed("signer key", "the key id does not match the key"));
        }
        Ok(k)
    }

    pub fn encode(&self) -> String {
        format!("PRIVATE+KEY+{}", encode_key(&self.name, self.id, self.key.as_bytes()))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A digest only the key's holder can compute (SHA-256 of a label, the seed and `data`).
    /// It salts the log's stored records, so that nobody can find a low-entropy record from
    /// its public digest by guessing.
    pub fn keyed_digest(&self, data: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"aiplus tlog record salt\n");
        h.update(self.key.to_bytes());
        h.update(data);
        h.finalize().into()
    }

    pub fn verifier(&self) -> VerifierKey {
        VerifierKey { name: self.name.clone(), id: self.id, key: self.key.verifying_key() }
    }

    /// The signed note of `text` (which must end in a newline).
    pub fn sign(&self, text: &str) -> Result<String, TlogError> {
        check_text(text)?;
        let sig = self.key.sign(text.as_bytes());
        let mut blob = self.id.to_be_bytes().to_vec();
        blob.extend_from_slice(&sig.to_bytes());
        Ok(format!("{text}\n\u{2014} {} {}\n", self.name, B64.encode(blob)))
    }
}

/// A public key that checks notes.
#[derive(Clone, Debug)]
pub struct VerifierKey {
    name: String,
    id: u32,
    key: ed25519_dalek::VerifyingKey,
}

impl VerifierKey {
    /// Reads `<name>+<id>+<base64>`.
    pub fn parse(s: &str) -> Result<Self, TlogError> {
        let (name, id, key) = split_key(s.trim(), "verifier key")?;
        let public: [u8; 32] = key.try_into().map_err(|_| malformed("verifier key", "the public key is not 32 bytes"))?;
        if key_id(name, &public) != id {
            return Err(malformed("verifier key", "the key id does not match the key"));
        }
        let key = ed25519_dalek::VerifyingKey::from_bytes(&public).map_err(|e| malformed("verifier key", e.to_string()))?;
        Ok(Self { name: name.to_string(), id, key })
    }

    pub fn encode(&self) -> String {
        encode_key(&self.name, self.id, self.key.as_bytes())
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u32 {
        self.id
    }
}

/// `<name>+<8 hex>+<base64(0x01 || 32 bytes)>`.
fn encode_key(name: &str, id: u32, key: &[u8; 32]) -> String {
    let mut material = vec![ED25519];
    material.extend_from_slice(key);
    format!("{name}+{id:08x}+{}", B64.encode(material))
}

/// `<name>+<8 hex>+<base64(0x01 || 32 bytes)>` into its parts.
fn split_key<'a>(s: &'a str, what: &'static str) -> Result<(&'a str, u32, Vec<u8>), TlogError> {
    // The base64 key may itself hold '+': only the first two split.
    let mut parts = s.splitn(3, '+');
    let (Some(name), Some(id), Some(material)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(malformed(what, "it must be <name>+<key id>+<key>"));
    };
    check_name(name)?;
    if id.len() != 8 {
        return Err(malformed(what, "the key id must be 8 hex digits"));
    }
    let id = u32::from_str_radix(id, 16).map_err(|_| malformed(what, "the key id must be 8 hex digits"))?;
    let material = B64.decode(material).map_err(|_| malformed(what, "the key is not base64"))?;
    match material.split_first() {
        Some((&ED25519, key)) => Ok((name, id, key.to_vec())),
        _ => Err(malformed(what, "only Ed25519 keys (type 0x01) are known")),
    }
}

/// Note text: UTF-8 ending in a newline, no control character but newline.
fn check_text(text: &str) -> Result<(), TlogError> {
    if !text.ends_with('\n') {
        return Err(malformed("note", "the text must end in a newline"));
    }
    if text.chars().any(|c| (c < ' ' && c != '\n') || c == '\u{7f}') {
        return Err(malformed("note", "the text has a control character"));
    }
    Ok(())
}

/// One signature line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoteSignature {
    pub name: String,
    pub id: u32,
    pub signature: Vec<u8>,
}

/// A note whose signature by a trusted key checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub text: String,
    /// The signatures that checked, by known keys.
    pub verified: Vec<NoteSignature>,
    /// Signatures by keys not given (ignored, as the spec says).
    pub unverified: Vec<NoteSignature>,
}

/// Splits a signed note into its text and signature lines, without checking them.
pub fn split(msg: &str) -> Result<(&str, Vec<NoteSignature>), TlogError> {
    if msg.len() > MAX_NOTE_BYTES {
        return Err(malformed("note", format!("longer than {MAX_NOTE_BYTES} bytes")));
    }
    if msg.chars().any(|c| (c < ' ' && c != '\n') || c == '\u{7f}') {
        return Err(malformed("note", "it has a control character"));
    }
    let blank = msg.rfind("\n\n").ok_or_else(|| malformed("note", "no blank line before the signatures"))?;
    let (text, sigs) = (&msg[..=blank], &msg[blank + 2..]);
    if !sigs.ends_with('\n') {
        return Err(malformed("note", "the signatures must end in a newline"));
    }
    let mut out = Vec::new();
    for line in sigs[..sigs.len() - 1].split('\n') {
        if out.len() == MAX_SIGNATURES {
            return Err(malformed("note", format!("more than {MAX_SIGNATURES} signatures")));
        }
        let rest = line
            .strip_prefix("\u{2014} ")
            .ok_or_else(|| malformed("note", format!("signature line {line:?} must start with an em dash and a space")))?;
        let (name, b64) = rest.split_once(' ').ok_or_else(|| malformed("note", format!("signature line {line:?} has no signature")))?;
        check_name(name)?;
        let blob = B64.decode(b64).map_err(|_| malformed("note", format!("signature of {name} is not base64")))?;
        if blob.len() < 5 {
            return Err(malformed("note", format!("signature of {name} is too short")));
        }
        let id = u32::from_be_bytes([blob[0], blob[1], blob[2], blob[3]]);
        out.push(NoteSignature { name: name.to_string(), id, signature: blob[4..].to_vec() });
    }
    Ok((text, out))
}

/// Opens a signed note: at least one signature by one of `keys` must check, and any signature
/// that claims one of `keys` (by name and id) and does not check rejects the note.
pub fn open(msg: &str, keys: &[VerifierKey]) -> Result<Note, TlogError> {
    let (text, sigs) = split(msg)?;
    let mut note = Note { text: text.to_string(), verified: Vec::new(), unverified: Vec::new() };
    for s in sigs {
        let Some(k) = keys.iter().find(|k| k.name == s.name && k.id == s.id) else {
            note.unverified.push(s);
            continue;
        };
        let sig = ed25519_dalek::Signature::from_slice(&s.signature)
            .map_err(|_| TlogError::Signature(format!("{}: not an Ed25519 signature", s.name)))?;
        k.key
            .verify(text.as_bytes(), &sig)
            .map_err(|_| TlogError::Signature(format!("{}: the signature does not match the text", s.name)))?;
        note.verified.push(s);
    }
    if note.verified.is_empty() {
        return Err(TlogError::Signature("no signature by a known key".into()));
    }
    Ok(note)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn keys_round_trip_and_sign_what_opens() {
        let k = SignerKey::from_seed("aiplus.example/log", [7; 32]).unwrap();
        let again = SignerKey::parse(&k.encode()).unwrap();
        assert_eq!(again.verifier().encode(), k.verifier().encode());
        let v = VerifierKey::parse(&k.verifier().encode()).unwrap();
        let msg = k.sign("hello\n").unwrap();
        assert_eq!(open(&msg, std::slice::from_ref(&v)).unwrap().text, "hello\n");
        // A changed text, or no known key, is refused.
        assert!(open(&msg.replace("hello", "hellp"), &[v]).is_err());
        let other = SignerKey::from_seed("aiplus.example/log", [8; 32]).unwrap().verifier();
        assert!(open(&msg, &[other]).is_err());
        assert!(k.sign("no newline").is_err());
        assert!(SignerKey::from_seed("has space", [7; 32]).is_err());
    }
}
