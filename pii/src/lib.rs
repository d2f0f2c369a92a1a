//! Personal data sealed on the device.
//!
//! A property whose schema carries `"x-pii": true` is personal data. The tracker replaces
//! its value by a *sealed value*, a string only the holder of the backend's private key can
//! open:
//!
//! ```text
//! ew1.<key id>.<enc>.<ciphertext>
//! ```
//!
//! - `ew1`: this format, and its one suite: HPKE (RFC 9180) base mode with
//!   DHKEM(P-256, HKDF-SHA256), HKDF-SHA256 and AES-128-GCM ([`Suite`]), the suite every
//!   browser runs on WebCrypto;
//! - `<key id>`: which key it was sealed to, 11 characters ([`PublicKey::key_id`]), so keys
//!   can rotate: an opener holds several and picks by id;
//! - `<enc>`: the encapsulated key, 65 bytes, base64url without padding (87 characters);
//! - `<ciphertext>`: the value's JSON text sealed with AES-128-GCM, tag included,
//!   base64url without padding.
//!
//! The HPKE `info` is [`INFO`]; the associated data is the event id, the schema URI (the
//! event's, or the entity's for an entity's field) and the field's JSON pointer into the
//! event, each as a 4-byte big-endian length and its UTF-8 bytes: a sealed value moved to
//! another event, schema or field does not open. The plaintext is the value's JSON text,
//! so a value of any type can be marked.
//!
//! Base mode does not authenticate the sender: anyone holding the public key (every app
//! ships it) can seal any value for any event and field. The binding stops a captured
//! sealed value from being replayed elsewhere, not forgery.
//!
//! Keys travel as text: a public key `ewpk1.<base64url of its 65-byte SEC1 point>`, a
//! private key `ewsk1.<base64url of its 32-byte scalar>` ([`PublicKey::parse`],
//! [`PrivateKey::parse`]).
//!
//! No primitive is written here: HPKE comes from the `hpke` crate on RustCrypto's `p256`,
//! `hkdf`, `sha2` and `aes-gcm`.

mod key;
mod seal;

pub use key::{KeyError, Keyring, PrivateKey, PublicKey};
pub use seal::{is_sealed, open, seal, OpenError, SealError, SEALED_PATTERN};

/// The KEM of the suite: DHKEM(P-256, HKDF-SHA256), RFC 9180 `kem_id` 0x0010.
pub type Kem = hpke::kem::DhP256HkdfSha256;
/// The KDF of the suite: HKDF-SHA256, RFC 9180 `kdf_id` 0x0001.
pub type Kdf = hpke::kdf::HkdfSha256;
/// The AEAD of the suite: AES-128-GCM, RFC 9180 `aead_id` 0x0001.
pub type Aead = hpke::aead::AesGcm128;

/// The suite, named as RFC 9180 names it (for key files, logs and docs).
pub struct Suite;

impl Suite {
    /// `DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM`.
    pub const NAME: &'static str = "DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM";
}

/// The HPKE `info` of every sealed value of format `ew1`.
pub const INFO: &[u8] = b"eventwire pii ew1";

/// The prefix of a sealed value of this format.
pub const SEALED_PREFIX: &str = "ew1.";
