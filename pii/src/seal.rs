//! Sealing one value to a public key, and opening it with the keyring.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hpke::Deserializable;
use rustls::crypto::hpke::EncapsulatedSecret;

pub use eventwire_schema::pii::{is_sealed, SEALED_PATTERN};

use crate::key::{Keyring, PublicKey};
use crate::{Kem, INFO, SEALED_PREFIX};

/// Why sealing failed.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// The value could not be written as JSON text.
    #[error("the value is not JSON: {0}")]
    Json(String),
    /// HPKE refused (the public key's point was refused at encapsulation).
    #[error("sealing failed: {0}")]
    Hpke(String),
}

/// Why a sealed value did not open. None of them carries the plaintext.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    /// Not a sealed value of this format (not `ew1.<key id>.<enc>.<ciphertext>`, or not
    /// base64url).
    #[error("not a sealed value: {0}")]
    Malformed(&'static str),
    /// Sealed to a key the keyring does not hold.
    #[error("sealed to key {key_id}, which is not among the keys given")]
    UnknownKey {
        /// The key id the value carries.
        key_id: String,
    },
    /// The key is held but the value does not open: it was changed, or moved from another
    /// event, schema or field (the event id, the schema and the pointer are bound to it).
    #[error("does not open: changed, or moved from another event, schema or field")]
    DoesNotOpen,
    /// It opened, but the plaintext is not JSON text (sealed by something other than an
    /// eventwire tracker).
    #[error("opened, but the plaintext is not JSON")]
    NotJson,
}

/// Seals `value` (its JSON text) for the field at `pointer` (a JSON pointer into the event,
/// e.g. `/data/email`, `/entities/0/data/phone`) of the event `event_id`, whose schema (the
/// event's for `/data`, the entity's for an entity's field) is `schema`, to `key`. Returns
/// `ew1.<key id>.<enc>.<ciphertext>`; a new ephemeral key each call, so sealing the same
/// value twice gives two different strings.
///
/// # Errors
/// [`SealError`]: the value cannot be written as JSON, or HPKE refused.
pub fn seal(
    key: &PublicKey,
    event_id: &str,
    schema: &str,
    pointer: &str,
    value: &serde_json::Value,
) -> Result<String, SealError> {
    let plaintext = serde_json::to_vec(value).map_err(|e| SealError::Json(e.to_string()))?;
    // aws-lc, through rustls: a new ephemeral key from its random source each call.
    let (enc, ciphertext) = FAST
        .seal(
            INFO,
            &associated_data(event_id, schema, pointer),
            &plaintext,
            &key.hpke,
        )
        .map_err(|e| SealError::Hpke(e.to_string()))?;
    Ok(sealed_text(key, &enc.0, &ciphertext))
}

/// The suite on aws-lc (rustls's HPKE): an order of magnitude faster than RustCrypto's
/// P-256 arithmetic, which stays for keys and the test vectors (`docs/decisions.md`).
const FAST: &dyn rustls::crypto::hpke::Hpke =
    rustls::crypto::aws_lc_rs::hpke::DH_KEM_P256_HKDF_SHA256_AES_128;

/// `ew1.<key id>.<enc>.<ciphertext>`.
fn sealed_text(key: &PublicKey, enc: &[u8], ciphertext: &[u8]) -> String {
    format!(
        "{SEALED_PREFIX}{}.{}.{}",
        key.key_id(),
        URL_SAFE_NO_PAD.encode(enc),
        URL_SAFE_NO_PAD.encode(ciphertext)
    )
}

/// Opens `sealed`, the value of the field at `pointer` of the event `event_id` under
/// `schema` (as for [`seal`]), with the key of `keys` it names.
///
/// # Errors
/// [`OpenError`]: not a sealed value, a key not held, changed or moved, not JSON.
pub fn open(
    keys: &Keyring,
    event_id: &str,
    schema: &str,
    pointer: &str,
    sealed: &str,
) -> Result<serde_json::Value, OpenError> {
    let (key_id, enc, ciphertext) = parts(sealed)?;
    let key = keys.get(key_id).ok_or_else(|| OpenError::UnknownKey {
        key_id: key_id.to_owned(),
    })?;
    let enc = URL_SAFE_NO_PAD
        .decode(enc)
        .map_err(|_| OpenError::Malformed("the encapsulated key is not base64url"))?;
    if <Kem as hpke::Kem>::EncappedKey::from_bytes(&enc).is_err() {
        return Err(OpenError::Malformed(
            "the encapsulated key is not a P-256 point",
        ));
    }
    let ciphertext = URL_SAFE_NO_PAD
        .decode(ciphertext)
        .map_err(|_| OpenError::Malformed("the ciphertext is not base64url"))?;
    let plaintext = FAST
        .open(
            &EncapsulatedSecret(enc),
            INFO,
            &associated_data(event_id, schema, pointer),
            &ciphertext,
            &key.hpke(),
        )
        .map_err(|_| OpenError::DoesNotOpen)?;
    serde_json::from_slice(&plaintext).map_err(|_| OpenError::NotJson)
}

/// What binds a sealed value to its event, schema and field: the event id, the schema URI
/// and the pointer, each as a 4-byte big-endian length and its UTF-8 bytes (no separator a
/// value could contain).
fn associated_data(event_id: &str, schema: &str, pointer: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(12 + event_id.len() + schema.len() + pointer.len());
    for part in [event_id, schema, pointer] {
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        aad.extend_from_slice(&len.to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

/// The key id, the encapsulated key and the ciphertext of a sealed value, checked for
/// shape only ([`is_sealed`]).
fn parts(sealed: &str) -> Result<(&str, &str, &str), OpenError> {
    let mut it = sealed.splitn(4, '.').skip(1);
    match (is_sealed(sealed), it.next(), it.next(), it.next()) {
        (true, Some(key_id), Some(enc), Some(ciphertext)) => Ok((key_id, enc, ciphertext)),
        _ => Err(OpenError::Malformed(
            "not ew1.<key id>.<enc>.<ciphertext> (11, 87 and 23 or more base64url characters)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PrivateKey;
    use serde_json::json;

    const S: &str = "iglu:com.example.health/symptom/jsonschema/1-0-0";

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Yields fixed bytes: the RFC's `ikmE`, so the ephemeral key is the vector's.
    struct Fixed(Vec<u8>);

    impl hpke::rand_core::TryRng for Fixed {
        type Error = std::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            unreachable!("only fill_bytes is used")
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            unreachable!("only fill_bytes is used")
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            let n = dst.len();
            dst.copy_from_slice(&self.0[..n]);
            self.0.drain(..n);
            Ok(())
        }
    }

    impl hpke::rand_core::TryCryptoRng for Fixed {}

    // RFC 9180, Appendix A.3.1: DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-128-GCM, base
    // mode, the first encryption (sequence number 0).
    const INFO_A31: &str = "4f6465206f6e2061204772656369616e2055726e";
    const IKM_E: &str = "4270e54ffd08d79d5928020af4686d8f6b7d35dbe470265f1f5aa22816ce860e";
    const PK_EM: &str = "04a92719c6195d5085104f469a8b9814d5838ff72b60501e2c4466e5e67b325ac98536d7b61a1af4b78e5b7f951c0900be863c403ce65c9bfcb9382657222d18c4";
    const IKM_R: &str = "668b37171f1072f3cf12ea8a236a45df23fc13b82af3609ad1e354f6ef817550";
    const PK_RM: &str = "04fe8c19ce0905191ebc298a9245792531f26f0cece2460639e8bc39cb7f706a826a779b4cf969b8a0e539c7f62fb3d30ad6aa8f80e30f1d128aafd68a2ce72ea0";
    const SK_RM: &str = "f3ce7fdae57e1a310d87f1ebbde6f328be0a99cdbcadf4d6589cf29de4b8ffd2";
    const PT: &str = "4265617574792069732074727574682c20747275746820626561757479";
    const AAD_0: &str = "436f756e742d30";
    const CT_0: &str = "5ad590bb8baa577f8619db35a36311226a896e7342a6d836d8b7bcd2f20b6c7f9076ac232e3ab2523f39513434";

    /// The vectors through both implementations: RustCrypto's `hpke` (which takes a fixed
    /// ephemeral key, so its sealing is checked too) and aws-lc's (which opens the vector),
    /// and each opens what the other sealed.
    #[test]
    fn rfc_9180_a_3_1_vectors() {
        use crate::{Aead, Kdf};
        use hpke::{OpModeR, OpModeS, Serializable};
        let recipient = PrivateKey::derive(&hex(IKM_R));
        assert_eq!(recipient.public_key().to_bytes(), hex(PK_RM));
        assert_eq!(recipient.key.to_bytes().to_vec(), hex(SK_RM));
        let public = <Kem as hpke::Kem>::PublicKey::from_bytes(&hex(PK_RM)).unwrap();
        let (enc, ct) = hpke::single_shot_seal_with_rng::<Aead, Kdf, Kem>(
            &OpModeS::Base,
            &public,
            &hex(INFO_A31),
            &hex(PT),
            &hex(AAD_0),
            &mut Fixed(hex(IKM_E)),
        )
        .unwrap();
        assert_eq!(enc.to_bytes().to_vec(), hex(PK_EM));
        assert_eq!(ct, hex(CT_0));
        let rust_crypto_open = |enc: &[u8], ct: &[u8], aad: &[u8]| {
            hpke::single_shot_open::<Aead, Kdf, Kem>(
                &OpModeR::Base,
                &recipient.key,
                &<Kem as hpke::Kem>::EncappedKey::from_bytes(enc).unwrap(),
                &hex(INFO_A31),
                ct,
                aad,
            )
            .unwrap()
        };
        assert_eq!(
            rust_crypto_open(&hex(PK_EM), &hex(CT_0), &hex(AAD_0)),
            hex(PT)
        );
        let aws_lc_open = |enc: Vec<u8>, ct: &[u8], aad: &[u8]| {
            FAST.open(
                &EncapsulatedSecret(enc),
                &hex(INFO_A31),
                aad,
                ct,
                &recipient.hpke(),
            )
            .unwrap()
        };
        assert_eq!(aws_lc_open(hex(PK_EM), &hex(CT_0), &hex(AAD_0)), hex(PT));
        // Across: aws-lc seals, RustCrypto opens; RustCrypto seals, aws-lc opens.
        let (enc, ct) = FAST
            .seal(
                &hex(INFO_A31),
                b"across",
                &hex(PT),
                &recipient.public_key().hpke,
            )
            .unwrap();
        assert_eq!(rust_crypto_open(&enc.0, &ct, b"across"), hex(PT));
        let (enc, ct) = hpke::single_shot_seal::<Aead, Kdf, Kem>(
            &OpModeS::Base,
            &public,
            &hex(INFO_A31),
            &hex(PT),
            b"across",
        )
        .unwrap();
        assert_eq!(
            aws_lc_open(enc.to_bytes().to_vec(), &ct, b"across"),
            hex(PT)
        );
    }

    #[test]
    fn a_sealed_value_opens_with_its_key_event_and_field_only() {
        let key = PrivateKey::generate();
        let ring = Keyring::from(key.clone());
        let id = "01a22d46-ab9a-75df-811d-7c71a1b9e1d1";
        for value in [
            json!("jane@example.com"),
            json!(42),
            json!(null),
            json!({"street": "1 Main St", "zip": ["12345"]}),
            json!("é 🙂 \u{0}"),
        ] {
            let sealed = seal(key.public_key(), id, S, "/data/email", &value).unwrap();
            assert!(is_sealed(&sealed), "{sealed}");
            assert!(!sealed.contains("jane"), "{sealed}");
            assert_eq!(open(&ring, id, S, "/data/email", &sealed).unwrap(), value);
            // Moved to another field, or to another event.
            assert_eq!(
                open(&ring, id, S, "/data/name", &sealed),
                Err(OpenError::DoesNotOpen)
            );
            assert_eq!(
                open(
                    &ring,
                    "01a22d46-ab9a-75df-811d-7c71a1b9e1d2",
                    S,
                    "/data/email",
                    &sealed
                ),
                Err(OpenError::DoesNotOpen)
            );
            // Relabelled: the same event and field under another schema.
            assert_eq!(
                open(
                    &ring,
                    id,
                    "iglu:com.example.health/other/jsonschema/1-0-0",
                    "/data/email",
                    &sealed
                ),
                Err(OpenError::DoesNotOpen)
            );
        }
        // The parts are length-prefixed: moving a boundary between them does not open.
        let sealed = seal(key.public_key(), "e5", S, "/data/a\n/data/x", &json!(1)).unwrap();
        assert_eq!(
            open(&ring, "e5\n/data/a", S, "/data/x", &sealed),
            Err(OpenError::DoesNotOpen)
        );
        // Two seals of one value differ (a new ephemeral key each time).
        let v = json!("x");
        assert_ne!(
            seal(key.public_key(), id, S, "/data/a", &v).unwrap(),
            seal(key.public_key(), id, S, "/data/a", &v).unwrap()
        );
    }

    #[test]
    fn every_changed_character_is_caught() {
        let key = PrivateKey::generate();
        let ring = Keyring::from(key.clone());
        let sealed = seal(
            key.public_key(),
            "e",
            S,
            "/data/email",
            &json!("jane@example.com"),
        )
        .unwrap();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        for i in 0..sealed.len() {
            let mut bytes = sealed.clone().into_bytes();
            let was = bytes[i];
            if was == b'.' {
                continue;
            }
            bytes[i] = alphabet[(alphabet.iter().position(|&c| c == was).unwrap_or(0) + 1) % 64];
            let changed = String::from_utf8(bytes).unwrap();
            let got = open(&ring, "e", S, "/data/email", &changed);
            assert!(
                matches!(
                    got,
                    Err(OpenError::DoesNotOpen
                        | OpenError::Malformed(_)
                        | OpenError::UnknownKey { .. })
                ),
                "character {i} changed: {got:?}"
            );
        }
    }

    #[test]
    fn the_wrong_key_and_bad_shapes_say_so() {
        let (key, other) = (PrivateKey::generate(), PrivateKey::generate());
        let sealed = seal(key.public_key(), "e", S, "/p", &json!(1)).unwrap();
        assert_eq!(
            open(&Keyring::from(other), "e", S, "/p", &sealed),
            Err(OpenError::UnknownKey {
                key_id: key.public_key().key_id().to_owned()
            })
        );
        let ring = Keyring::from(key.clone());
        for bad in [
            "",
            "jane@example.com",
            "ew1.",
            "ew1.a.b.c",
            "ew2.AAAAAAAAAAA.AAAA.AAAA",
            &sealed.replace("ew1.", "ew1.x"),
            &format!("{sealed}.more"),
            &sealed[..sealed.len() - 30],
        ] {
            assert!(!is_sealed(bad), "{bad}");
            assert!(
                matches!(open(&ring, "e", S, "/p", bad), Err(OpenError::Malformed(_))),
                "{bad}"
            );
        }
    }
}
