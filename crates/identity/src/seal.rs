//! Secrets at rest. What aiplus must be able to read back (upstream model keys today; tenants'
//! tool credentials next) is stored sealed with XChaCha20-Poly1305 under one 256-bit key that
//! is never in the database: `AIPLUS_SECRET_KEY` (64 hex digits) when set, otherwise
//! `<data dir>/secret.key` (mode 0600), made on first start. A copy of the database alone opens
//! nothing. Several instances sharing one PostgreSQL database must share the key, through the
//! variable or a copy of the file.
//!
//! A sealed value is `sealed:v1:` and the base64 of a random 24-byte nonce and the ciphertext.
//! Each value is bound to where it is stored (`context`, the associated data), so a value copied
//! into another row does not open there.

use std::path::{Path, PathBuf};

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::secret::{digest_of, hex};

/// The key file's name in the data directory.
pub const SECRET_KEY_FILE: &str = "secret.key";
/// The variable that gives the key instead of the file.
pub const SECRET_KEY_ENV: &str = "AIPLUS_SECRET_KEY";

const PREFIX: &str = "sealed:v1:";
const NONCE_BYTES: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("{0}: not a 256-bit key (64 lowercase hex digits)")]
    BadKey(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("a stored secret does not open with this key: was the secret key replaced, or is this another instance's?")]
    Open,
    #[error("the operating system gave no random bytes: {0}")]
    Random(String),
}

/// Seals and opens secrets with the server's key.
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    pub fn new(key: [u8; 32]) -> Self {
        Self { cipher: XChaCha20Poly1305::new(&key.into()) }
    }

    /// The key from `env` (the value of [`SECRET_KEY_ENV`]) when given, else from
    /// `<data dir>/secret.key`, which is made (0600) if it does not exist yet.
    pub fn load(data_dir: &Path, env: Option<&str>) -> Result<Self, SealError> {
        if let Some(v) = env {
            return digest_of(v.trim()).map(Self::new).ok_or_else(|| SealError::BadKey(SECRET_KEY_ENV.into()));
        }
        let path = data_dir.join(SECRET_KEY_FILE);
        let io = |source| SealError::Io { path: path.clone(), source };
        match std::fs::read_to_string(&path) {
            Ok(text) => digest_of(text.trim()).map(Self::new).ok_or_else(|| SealError::BadKey(path.display().to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| SealError::Random(e.to_string()))?;
                crate::write_secret_file(&path, &hex(&key)).map_err(io)?;
                Ok(Self::new(key))
            }
            Err(e) => Err(io(e)),
        }
    }

    /// Seals `plaintext` for the place `context` names.
    pub fn seal(&self, context: &str, plaintext: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| SealError::Random(e.to_string()))?;
        let payload = Payload { msg: plaintext.as_bytes(), aad: context.as_bytes() };
        // Encryption fails only for messages longer than the cipher allows (256 GiB).
        let sealed = self.cipher.encrypt(&XNonce::from(nonce), payload).map_err(|_| SealError::Open)?;
        let mut raw = nonce.to_vec();
        raw.extend_from_slice(&sealed);
        Ok(format!("{PREFIX}{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(raw)))
    }

    /// Opens a value sealed for `context`.
    pub fn open(&self, context: &str, sealed: &str) -> Result<String, SealError> {
        let body = sealed.strip_prefix(PREFIX).ok_or(SealError::Open)?;
        let raw = base64::engine::general_purpose::STANDARD_NO_PAD.decode(body).map_err(|_| SealError::Open)?;
        if raw.len() < NONCE_BYTES {
            return Err(SealError::Open);
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_BYTES);
        let nonce: [u8; NONCE_BYTES] = nonce.try_into().map_err(|_| SealError::Open)?;
        let plain =
            self.cipher.decrypt(&XNonce::from(nonce), Payload { msg: ciphertext, aad: context.as_bytes() }).map_err(|_| SealError::Open)?;
        String::from_utf8(plain).map_err(|_| SealError::Open)
    }

    /// Whether a stored value is sealed (values stored before sealing existed are not).
    pub fn is_sealed(value: &str) -> bool {
        value.starts_with(PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_in_its_place() {
        let s = Sealer::new([7; 32]);
        let sealed = s.seal("gateway_models/qwen/d1", "sk-upstream").unwrap();
        assert!(Sealer::is_sealed(&sealed) && !sealed.contains("sk-upstream"));
        assert_eq!(s.open("gateway_models/qwen/d1", &sealed).unwrap(), "sk-upstream");
        assert!(matches!(s.open("gateway_models/qwen/d2", &sealed), Err(SealError::Open)), "bound to its place");
        assert!(matches!(Sealer::new([8; 32]).open("gateway_models/qwen/d1", &sealed), Err(SealError::Open)));
        assert_ne!(s.seal("c", "x").unwrap(), s.seal("c", "x").unwrap(), "a fresh nonce each time");
        let mut tampered = sealed.clone();
        tampered.pop();
        tampered.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(s.open("gateway_models/qwen/d1", &tampered).is_err());
        assert!(s.open("c", "sealed:v1:").is_err() && s.open("c", "plain").is_err());
    }

    #[test]
    fn the_key_file_is_made_once_0600_and_the_variable_wins() {
        let dir = std::env::temp_dir().join(format!("aiplus-seal-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let a = Sealer::load(&dir, None).unwrap();
        let sealed = a.seal("c", "v").unwrap();
        let b = Sealer::load(&dir, None).unwrap();
        assert_eq!(b.open("c", &sealed).unwrap(), "v", "the second start reads the same key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join(SECRET_KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let from_env = Sealer::load(&dir, Some(&"ab".repeat(32))).unwrap();
        assert!(from_env.open("c", &sealed).is_err(), "the variable's key, not the file's");
        assert!(matches!(Sealer::load(&dir, Some("short")), Err(SealError::BadKey(v)) if v == SECRET_KEY_ENV));
        std::fs::write(dir.join(SECRET_KEY_FILE), "not hex\n").unwrap();
        assert!(matches!(Sealer::load(&dir, None), Err(SealError::BadKey(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
