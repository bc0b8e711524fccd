//! Base32 (RFC 4648 §6), the form WARC digests take: `sha1:` and 32 letters and digits.
//!
//! Owns the encoding only. It must not decode (nothing here reads WARC files) or know
//! about digests.

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// `bytes` in Base32 with `=` padding to a multiple of 8 characters. A SHA-1 digest (20
/// bytes, 160 bits) comes out as exactly 32 characters, without padding.
pub(crate) fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    for group in bytes.chunks(5) {
        // Five bytes are forty bits, eight characters of five bits each.
        let mut buf = [0u8; 5];
        buf[..group.len()].copy_from_slice(group);
        let bits = buf.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
        // Characters that carry at least one bit of input; the rest is padding.
        let chars = (group.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                let index = (bits >> (35 - 5 * i)) & 0x1f;
                out.push(char::from(ALPHABET[index as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn rfc_4648_test_vectors() {
        // RFC 4648 §10.
        for (input, output) in [
            ("", ""),
            ("f", "MY======"),
            ("fo", "MZXQ===="),
            ("foo", "MZXW6==="),
            ("foob", "MZXW6YQ="),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI======"),
        ] {
            assert_eq!(encode(input.as_bytes()), output, "{input:?}");
        }
    }

    #[test]
    fn every_symbol_and_a_digest_length() {
        // 0x00 0x44 0x32 0x14 0xc7 0x42 0x54 0xb6 0x35 0xcf 0x84 0x65 0x3a 0x56 0xd7 0xc6
        // 0x75 0xbe 0x77 0xdf: the 32 symbols in order, five bits each.
        let bytes = [
            0x00, 0x44, 0x32, 0x14, 0xc7, 0x42, 0x54, 0xb6, 0x35, 0xcf, 0x84, 0x65, 0x3a, 0x56,
            0xd7, 0xc6, 0x75, 0xbe, 0x77, 0xdf,
        ];
        assert_eq!(encode(&bytes), "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567");
        assert_eq!(encode(&[0xff; 20]), "7".repeat(32));
    }
}
