//! Identifiers a partner already normalised and hashed with SHA-256.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// Decoding accepts padded and unpadded text but rejects non-canonical trailing bits, so each
/// digest has exactly one accepted spelling per alphabet.
const CONFIG: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
/// Standard Base64 alphabet (`+`, `/`).
const STANDARD: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, CONFIG);
/// URL-safe Base64 alphabet (`-`, `_`).
const URL_SAFE: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, CONFIG);

/// Decodes 64 hex characters (any case) or Base64 (standard or URL-safe, padding optional) of
/// exactly 32 bytes.
pub(crate) fn decode(raw: &str) -> Result<[u8; 32], String> {
    let text = raw.trim();
    let mut digest = [0u8; 32];
    if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode_to_slice(text, &mut digest).map_err(|e| e.to_string())?;
        return Ok(digest);
    }
    let engine = if text.contains(['-', '_']) {
        &URL_SAFE
    } else {
        &STANDARD
    };
    let bytes = engine
        .decode(text)
        .map_err(|_| "expected 64 hex characters or Base64 of 32 bytes".to_owned())?;
    if bytes.len() != digest.len() {
        return Err(format!(
            "expected 64 hex characters or Base64 of 32 bytes, found Base64 of {} bytes",
            bytes.len()
        ));
    }
    digest.copy_from_slice(&bytes);
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::decode;

    const HEX: &str = "b4c9a289323b21a01c3e940f150eb9b8c542587f1abfd8f0e1cc1ffc5e475514";

    fn expected() -> [u8; 32] {
        let mut out = [0u8; 32];
        hex::decode_to_slice(HEX, &mut out).unwrap();
        out
    }

    #[test]
    fn hex_any_case() {
        assert_eq!(decode(HEX).unwrap(), expected());
        assert_eq!(decode(&HEX.to_uppercase()).unwrap(), expected());
        assert_eq!(decode(&format!(" {HEX} ")).unwrap(), expected());
    }

    #[test]
    fn base64_alphabets_and_padding() {
        for text in [
            "tMmiiTI7IaAcPpQPFQ65uMVCWH8av9jw4cwf/F5HVRQ=",
            "tMmiiTI7IaAcPpQPFQ65uMVCWH8av9jw4cwf/F5HVRQ",
            "tMmiiTI7IaAcPpQPFQ65uMVCWH8av9jw4cwf_F5HVRQ=",
            "tMmiiTI7IaAcPpQPFQ65uMVCWH8av9jw4cwf_F5HVRQ",
        ] {
            assert_eq!(decode(text).unwrap(), expected(), "{text}");
        }
    }

    #[test]
    fn rejections_name_their_reason() {
        let generic = "expected 64 hex characters or Base64 of 32 bytes";
        let cases = [
            ("", format!("{generic}, found Base64 of 0 bytes")),
            ("abc", format!("{generic}, found Base64 of 2 bytes")),
            ("abcde", generic.to_owned()),
            (&HEX[..62], generic.to_owned()),
            (&HEX[..60], format!("{generic}, found Base64 of 45 bytes")),
            (
                "dXNlckBleGFtcGxlLmNvbQ==",
                format!("{generic}, found Base64 of 16 bytes"),
            ),
            // mixed alphabets
            (
                "tMmiiTI7IaAcPpQPFQ65uMVCWH8av9jw4cwf/F5HVR-",
                generic.to_owned(),
            ),
            // non-canonical trailing bits
            (
                "tMmiiTI7IaAcPpQPFQ65uMVCWH8av9jw4cwf/F5HVRR=",
                generic.to_owned(),
            ),
            ("user@example.com", generic.to_owned()),
        ];
        for (raw, reason) in cases {
            assert_eq!(decode(raw), Err(reason.clone()), "{raw:?}");
        }
    }
}
