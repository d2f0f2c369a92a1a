//! Keys: the backend's key pair as text, its key id, and the keyring an opener holds.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hpke::{Deserializable, Kem as _, Serializable};
use sha2::{Digest, Sha256};

use crate::Kem;

const PUBLIC_PREFIX: &str = "ewpk1.";
const PRIVATE_PREFIX: &str = "ewsk1.";

/// Why a key's text was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyError {
    /// Not `ewpk1.…` (public) or `ewsk1.…` (private).
    #[error("not an eventwire {expected} key: it should start with {prefix}")]
    Prefix {
        /// `public` or `private`.
        expected: &'static str,
        /// The prefix expected.
        prefix: &'static str,
    },
    /// The part after the prefix is not base64url.
    #[error("the key is not base64url text: {0}")]
    Encoding(String),
    /// The bytes are not a P-256 key (a public key is a 65-byte uncompressed SEC1 point on
    /// the curve, a private key a 32-byte scalar in range).
    #[error("not a P-256 {0} key")]
    Curve(&'static str),
}

/// The backend's public key: what trackers seal to.
#[derive(Clone)]
pub struct PublicKey {
    /// The point, for the sealing on aws-lc.
    pub(crate) hpke: rustls::crypto::hpke::HpkePublicKey,
    bytes: Vec<u8>,
    key_id: String,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for PublicKey {}

impl PublicKey {
    fn from_key(key: <Kem as hpke::Kem>::PublicKey) -> Self {
        let bytes = key.to_bytes().to_vec();
        let key_id = key_id(&bytes);
        let hpke = rustls::crypto::hpke::HpkePublicKey(bytes.clone());
        PublicKey {
            hpke,
            bytes,
            key_id,
        }
    }

    /// Reads `ewpk1.<base64url of the 65-byte uncompressed SEC1 point>` (surrounding
    /// whitespace ignored, so a key file's trailing newline is fine).
    ///
    /// # Errors
    /// [`KeyError`] naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bytes = decode(text, PUBLIC_PREFIX, "public")?;
        let key = <Kem as hpke::Kem>::PublicKey::from_bytes(&bytes)
            .map_err(|_| KeyError::Curve("public"))?;
        Ok(Self::from_key(key))
    }

    /// The text form, `ewpk1.…` (93 characters).
    #[must_use]
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_PREFIX}{}", URL_SAFE_NO_PAD.encode(&self.bytes))
    }

    /// The key id carried by every value sealed to this key: the first 8 bytes of the
    /// SHA-256 of the SEC1 point, base64url (11 characters).
    #[must_use]
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The 65-byte uncompressed SEC1 point (RFC 9180's `SerializePublicKey`).
    #[must_use]
    pub fn to_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The backend's private key: what `eventwire pii open` opens with. Its scalar is zeroed
/// when it is dropped (RustCrypto's `p256`).
#[derive(Clone)]
pub struct PrivateKey {
    pub(crate) key: <Kem as hpke::Kem>::PrivateKey,
    public: PublicKey,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey")
            .field("key_id", &self.public.key_id)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// A new key pair from the operating system's random source.
    #[must_use]
    pub fn generate() -> Self {
        let (key, public) = Kem::gen_keypair();
        PrivateKey {
            key,
            public: PublicKey::from_key(public),
        }
    }

    /// The key pair RFC 9180's `DeriveKeyPair` makes from `ikm` (at least 32 bytes of
    /// secret randomness): for test vectors, and for keys kept as seeds.
    #[must_use]
    pub fn derive(ikm: &[u8]) -> Self {
        let (key, public) = Kem::derive_keypair(ikm);
        PrivateKey {
            key,
            public: PublicKey::from_key(public),
        }
    }

    /// Reads `ewsk1.<base64url of the 32-byte scalar>`.
    ///
    /// # Errors
    /// [`KeyError`] naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, KeyError> {
        let bytes = decode(text, PRIVATE_PREFIX, "private")?;
        let key = <Kem as hpke::Kem>::PrivateKey::from_bytes(&bytes)
            .map_err(|_| KeyError::Curve("private"))?;
        let public = PublicKey::from_key(Kem::sk_to_pk(&key));
        Ok(PrivateKey { key, public })
    }

    /// The text form, `ewsk1.…`: a secret; keep it in a file only its owner can read.
    #[must_use]
    pub fn to_text(&self) -> String {
        format!(
            "{PRIVATE_PREFIX}{}",
            URL_SAFE_NO_PAD.encode(self.key.to_bytes())
        )
    }

    /// Its public key.
    #[must_use]
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The scalar, for the opening on aws-lc (zeroed when dropped).
    pub(crate) fn hpke(&self) -> rustls::crypto::hpke::HpkePrivateKey {
        rustls::crypto::hpke::HpkePrivateKey::from(self.key.to_bytes().to_vec())
    }
}

/// The private keys an opener holds (the current one and those rotated out), found by the
/// key id a sealed value carries.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<PrivateKey>,
}

impl Keyring {
    /// An empty keyring.
    #[must_use]
    pub fn new() -> Self {
        Keyring::default()
    }

    /// Adds `key` (a key already held is not added twice).
    pub fn add(&mut self, key: PrivateKey) {
        if self.get(key.public_key().key_id()).is_none() {
            self.keys.push(key);
        }
    }

    /// The key with this key id.
    #[must_use]
    pub fn get(&self, key_id: &str) -> Option<&PrivateKey> {
        self.keys.iter().find(|k| k.public_key().key_id() == key_id)
    }

    /// Number of keys held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when it holds no key.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl From<PrivateKey> for Keyring {
    fn from(key: PrivateKey) -> Self {
        Keyring { keys: vec![key] }
    }
}

fn key_id(point: &[u8]) -> String {
    let digest = Sha256::digest(point);
    URL_SAFE_NO_PAD.encode(&digest[..8])
}

fn decode(text: &str, prefix: &'static str, expected: &'static str) -> Result<Vec<u8>, KeyError> {
    let rest = text
        .trim()
        .strip_prefix(prefix)
        .ok_or(KeyError::Prefix { expected, prefix })?;
    URL_SAFE_NO_PAD
        .decode(rest)
        .map_err(|e| KeyError::Encoding(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_as_text() {
        let key = PrivateKey::generate();
        let text = key.to_text();
        assert!(text.starts_with("ewsk1.") && text.len() == 6 + 43, "{text}");
        let again = PrivateKey::parse(&format!("{text}\n")).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let public = key.public_key().to_text();
        assert_eq!(public.len(), 93, "{public}");
        assert_eq!(&PublicKey::parse(&public).unwrap(), key.public_key());
        assert_eq!(key.public_key().key_id().len(), 11);
    }

    #[test]
    fn bad_key_text_says_what_is_wrong() {
        let public = PrivateKey::generate().public_key().to_text();
        for (text, want) in [
            (
                "ewsk1.AAAA".to_owned(),
                KeyError::Prefix {
                    expected: "public",
                    prefix: "ewpk1.",
                },
            ),
            ("ewpk1.@@@".to_owned(), KeyError::Encoding(String::new())),
            ("ewpk1.AAAA".to_owned(), KeyError::Curve("public")),
            // A point off the curve: the last coordinate byte changed.
            (
                {
                    let mut b = PublicKey::parse(&public).unwrap().to_bytes().to_vec();
                    b[64] ^= 1;
                    format!("ewpk1.{}", URL_SAFE_NO_PAD.encode(b))
                },
                KeyError::Curve("public"),
            ),
        ] {
            let got = PublicKey::parse(&text).unwrap_err();
            match (&got, &want) {
                (KeyError::Encoding(_), KeyError::Encoding(_)) => {}
                _ => assert_eq!(got, want, "{text}"),
            }
        }
        // The zero scalar is not a private key.
        let zero = format!("ewsk1.{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
        assert_eq!(
            PrivateKey::parse(&zero).unwrap_err(),
            KeyError::Curve("private")
        );
    }

    #[test]
    fn a_keyring_finds_keys_by_id() {
        let (a, b) = (PrivateKey::generate(), PrivateKey::generate());
        let mut ring = Keyring::from(a.clone());
        ring.add(b.clone());
        ring.add(a.clone());
        assert_eq!(ring.len(), 2);
        assert_eq!(
            ring.get(b.public_key().key_id())
                .map(PrivateKey::public_key),
            Some(b.public_key())
        );
        assert!(ring.get("AAAAAAAAAAA").is_none());
    }
}
