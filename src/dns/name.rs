//! Domain names: text to wire form, wire form (with compression) to a flat lowercase wire
//! form, and back to text.
//!
//! Owns the name rules (RFC 1035 §2.3.4, §3.1, §4.1.4) and nothing else; it must not know
//! about records, sections or sockets.
//!
//! Names are compared in *flat wire form*: length-prefixed labels, lowercased, ending in the
//! zero root byte, no compression. Comparing labels rather than dotted text means a label
//! that itself contains a `.` byte can never be confused with two labels.

use super::error::DnsError;

/// The longest label, in bytes (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// The longest name on the wire, length bytes and root byte included (RFC 1035 §2.3.4). Written
/// out as text without the trailing dot that is 253 characters.
pub const MAX_NAME_WIRE_LEN: usize = 255;

/// The longest name as text, without the trailing dot.
pub const MAX_NAME_TEXT_LEN: usize = MAX_NAME_WIRE_LEN - 2;

/// The most compression pointers one name may follow. Each pointer must also point strictly
/// before the place its name (or the previous pointer's target) began, so pointers cannot
/// loop; this cap only bounds the work a hostile message can ask for.
pub const MAX_POINTERS: usize = 32;

/// The DNS header's length; no name may start inside it.
pub(crate) const HEADER_LEN: usize = 12;

/// Whether `b` may appear in a label of a name we put on the wire.
///
/// Lenient on purpose: hostnames from URLs may carry `_` (SRV-style and some internal
/// names) and other printable punctuation, and the DNS itself allows any byte in a label
/// (RFC 2181 §11). We refuse only what cannot be meant as a host name and would make the
/// text form ambiguous: control bytes, space, DEL, non-ASCII (IDNs must arrive as punycode,
/// as the `url` crate already gives them), `.` inside a label, and `\` (the escape character
/// of the presentation format).
fn is_label_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) && b != b'.' && b != b'\\'
}

/// Strips one trailing dot: `"example.com."` and `"example.com"` are the same name to us.
pub(crate) fn strip_root(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}

/// Checks a text name against the rules of [`to_wire`] without writing it.
///
/// # Errors
/// As [`to_wire`].
pub fn validate(name: &str) -> Result<(), DnsError> {
    to_wire_inner(name, None)
}

/// Appends the uncompressed wire form of a text name (absolute or not; one trailing dot is
/// ignored) to `out`, keeping its case. On error `out` is unchanged.
///
/// # Errors
/// [`DnsError::InvalidName`] for an empty name, an empty label or a byte refused by the
/// label rules; [`DnsError::LabelTooLong`] for a label over 63 bytes;
/// [`DnsError::NameTooLong`] for a name over 255 bytes on the wire.
pub fn to_wire(name: &str, out: &mut Vec<u8>) -> Result<(), DnsError> {
    to_wire_inner(name, Some(out))
}

fn to_wire_inner(name: &str, out: Option<&mut Vec<u8>>) -> Result<(), DnsError> {
    let name = strip_root(name);
    if name.is_empty() {
        return Err(DnsError::InvalidName);
    }
    let mut wire_len = 1; // the root byte
    for label in name.split('.') {
        let bytes = label.as_bytes();
        if bytes.is_empty() || !bytes.iter().all(|&b| is_label_byte(b)) {
            return Err(DnsError::InvalidName);
        }
        if bytes.len() > MAX_LABEL_LEN {
            return Err(DnsError::LabelTooLong);
        }
        wire_len += 1 + bytes.len();
        if wire_len > MAX_NAME_WIRE_LEN {
            return Err(DnsError::NameTooLong);
        }
    }
    if let Some(out) = out {
        out.reserve(wire_len);
        for label in name.split('.') {
            // Cast is exact: checked <= MAX_LABEL_LEN above.
            out.push(label.len() as u8);
            out.extend_from_slice(label.as_bytes());
        }
        out.push(0);
    }
    Ok(())
}

/// The flat lowercase wire form of a text name, for comparisons.
///
/// # Errors
/// As [`to_wire`].
pub fn to_flat(name: &str) -> Result<Vec<u8>, DnsError> {
    let mut out = Vec::new();
    to_wire(name, &mut out)?;
    out.make_ascii_lowercase(); // length bytes are <= 63, below b'A', so they are untouched
    Ok(out)
}

/// Reads the (possibly compressed) name starting at `start` in `msg` into `out` as flat
/// lowercase wire form, and returns the offset just past the name as it sits at `start`
/// (after its first pointer, if any).
///
/// Every pointer must point at or after the header and strictly before the place where the
/// current run of labels began; so each jump goes further back than the last, which rules
/// out loops however the labels are laid out (RFC 1035 §4.1.4 only ever needs backward
/// pointers).
///
/// # Errors
/// [`DnsError::Short`] when the message ends inside the name, [`DnsError::BadPointer`],
/// [`DnsError::PointerLoop`] past [`MAX_POINTERS`], [`DnsError::BadLabel`] for reserved label
/// types, [`DnsError::NameTooLong`] past 255 bytes.
pub fn read(msg: &[u8], start: usize, out: &mut Vec<u8>) -> Result<usize, DnsError> {
    out.clear();
    let mut pos = start;
    let mut run_start = start;
    let mut end = None;
    let mut pointers = 0;
    loop {
        let len = *msg.get(pos).ok_or(DnsError::Short)?;
        match len & 0xc0 {
            0x00 if len == 0 => {
                out.push(0);
                return Ok(end.unwrap_or(pos + 1));
            }
            0x00 => {
                let n = usize::from(len);
                let label = msg.get(pos + 1..pos + 1 + n).ok_or(DnsError::Short)?;
                // Room for this label and the root byte still to come.
                if out.len() + 1 + n + 1 > MAX_NAME_WIRE_LEN {
                    return Err(DnsError::NameTooLong);
                }
                out.push(len);
                out.extend(label.iter().map(u8::to_ascii_lowercase));
                pos += 1 + n;
            }
            0xc0 => {
                let low = *msg.get(pos + 1).ok_or(DnsError::Short)?;
                let target = usize::from(len & 0x3f) << 8 | usize::from(low);
                if target < HEADER_LEN || target >= run_start {
                    return Err(DnsError::BadPointer);
                }
                pointers += 1;
                if pointers > MAX_POINTERS {
                    return Err(DnsError::PointerLoop);
                }
                end.get_or_insert(pos + 2);
                run_start = target;
                pos = target;
            }
            _ => return Err(DnsError::BadLabel),
        }
    }
}

/// Whether flat name `child` equals `parent` or lies below it (`a.b.example` under
/// `example`), comparing whole labels.
pub fn is_at_or_below(child: &[u8], parent: &[u8]) -> bool {
    let mut pos = 0;
    while pos < child.len() {
        if child[pos..] == *parent {
            return true;
        }
        pos += 1 + usize::from(child[pos]);
    }
    false
}

/// The text form of a flat name: labels joined by `.`, no trailing dot (`"."` for the root).
/// Bytes that are not plain printable ASCII, and `.` or `\` inside a label, are written as
/// `\DDD` (RFC 1035 §5.1), so the text never mistakes one label for two.
pub fn to_text(flat: &[u8]) -> String {
    let mut text = String::new();
    let mut pos = 0;
    while let Some(&len) = flat.get(pos) {
        if len == 0 {
            break;
        }
        let label = flat.get(pos + 1..pos + 1 + usize::from(len)).unwrap_or(&[]);
        if !text.is_empty() {
            text.push('.');
        }
        for &b in label {
            if is_label_byte(b) {
                text.push(char::from(b));
            } else {
                text.push('\\');
                text.push(char::from(b'0' + b / 100));
                text.push(char::from(b'0' + b / 10 % 10));
                text.push(char::from(b'0' + b % 10));
            }
        }
        pos += 1 + usize::from(len);
    }
    if text.is_empty() {
        text.push('.');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(name: &str) -> Result<Vec<u8>, DnsError> {
        let mut out = Vec::new();
        to_wire(name, &mut out).map(|()| out)
    }

    #[test]
    fn to_wire_writes_labels_and_root_and_ignores_one_trailing_dot() {
        assert_eq!(wire("Example.com").unwrap(), b"\x07Example\x03com\x00");
        assert_eq!(wire("example.com.").unwrap(), b"\x07example\x03com\x00");
        assert_eq!(wire("a").unwrap(), b"\x01a\x00");
        assert_eq!(wire("_srv-x.a1").unwrap(), b"\x06_srv-x\x02a1\x00");
    }

    #[test]
    fn to_wire_refuses_empty_names_labels_and_odd_bytes() {
        for bad in [
            "",
            ".",
            "..",
            "a..b",
            ".a",
            "a.b..",
            "a b",
            "a\tb",
            "a\\b",
            "caf\u{e9}",
            "a\0",
            "a\x7f",
        ] {
            assert_eq!(wire(bad), Err(DnsError::InvalidName), "{bad:?}");
        }
    }

    #[test]
    fn to_wire_enforces_label_and_name_lengths() {
        let l63 = "a".repeat(63);
        assert!(wire(&l63).is_ok());
        assert_eq!(wire(&"a".repeat(64)), Err(DnsError::LabelTooLong));
        // 4 labels of 63 + 3 dots = 255 text chars: 4 * 64 + 1 = 257 wire bytes.
        let long = [l63.as_str(); 4].join(".");
        assert_eq!(wire(&long), Err(DnsError::NameTooLong));
        // 253 text characters is the longest that fits: 255 wire bytes.
        let max = format!("{}.{}.{}.{}", l63, l63, l63, "a".repeat(61));
        assert_eq!(max.len(), MAX_NAME_TEXT_LEN);
        assert_eq!(wire(&max).unwrap().len(), MAX_NAME_WIRE_LEN);
        assert_eq!(wire(&format!("{max}.")).unwrap().len(), MAX_NAME_WIRE_LEN);
        assert_eq!(wire(&format!("{max}a")), Err(DnsError::NameTooLong));
    }

    #[test]
    fn to_wire_leaves_out_unchanged_on_error() {
        let mut out = b"keep".to_vec();
        assert_eq!(
            to_wire("ok.bad label", &mut out),
            Err(DnsError::InvalidName)
        );
        assert_eq!(out, b"keep");
    }

    fn msg_with(tail: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; HEADER_LEN];
        m.extend_from_slice(tail);
        m
    }

    #[test]
    fn read_follows_backward_pointers_and_lowercases() {
        // 12: "\x03COM\x00", 17: "\x07example" + ptr 12, 27: "\x03www" + ptr 17
        let m = msg_with(b"\x03COM\x00\x07Example\xc0\x0c\x03www\xc0\x11");
        let mut out = Vec::new();
        assert_eq!(read(&m, 12, &mut out), Ok(17));
        assert_eq!(out, b"\x03com\x00");
        assert_eq!(read(&m, 17, &mut out), Ok(27));
        assert_eq!(out, b"\x07example\x03com\x00");
        assert_eq!(read(&m, 27, &mut out), Ok(33));
        assert_eq!(out, b"\x03www\x07example\x03com\x00");
        assert_eq!(to_text(&out), "www.example.com");
    }

    #[test]
    fn read_refuses_forward_self_header_and_out_of_bounds_pointers() {
        let mut out = Vec::new();
        // Forward: a pointer at 12 to 14.
        let m = msg_with(b"\xc0\x0e\x01a\x00");
        assert_eq!(read(&m, 12, &mut out), Err(DnsError::BadPointer));
        // Self.
        let m = msg_with(b"\xc0\x0c");
        assert_eq!(read(&m, 12, &mut out), Err(DnsError::BadPointer));
        // Into the header.
        let m = msg_with(b"\x01a\xc0\x00");
        assert_eq!(read(&m, 12, &mut out), Err(DnsError::BadPointer));
        // Past the end.
        let m = msg_with(b"\x01a\x00\xff\xff");
        assert_eq!(read(&m, 15, &mut out), Err(DnsError::BadPointer));
        // A pointer cut in half.
        let m = msg_with(b"\x01a\x00\xc0");
        assert_eq!(read(&m, 15, &mut out), Err(DnsError::Short));
    }

    #[test]
    fn read_refuses_a_pointer_that_would_loop() {
        // 12: the label "ab"; 15: a pointer back to 12. Reading from 15 jumps back to 12
        // (allowed), reads "ab", and meets the same pointer again: it points to 12, not
        // before the run of labels that began at 12, so it is refused instead of looping.
        let m = msg_with(b"\x02ab\xc0\x0c");
        let mut out = Vec::new();
        assert_eq!(read(&m, 15, &mut out), Err(DnsError::BadPointer));
        assert_eq!(read(&m, 12, &mut out), Err(DnsError::BadPointer));
    }

    #[test]
    fn read_caps_the_number_of_pointers() {
        // A chain of 40 pointers, each to the one before it, ending at a root name at 12.
        let mut tail = vec![0u8];
        for i in 0..40u16 {
            let target = 12 + if i == 0 { 0 } else { 1 + 2 * (i - 1) };
            tail.extend_from_slice(&(0xc000 | target).to_be_bytes());
        }
        let m = msg_with(&tail);
        let mut out = Vec::new();
        // Pointer k (at 13 + 2k) needs k + 1 jumps.
        let at = |k: usize| 13 + 2 * k;
        assert_eq!(
            read(&m, at(MAX_POINTERS - 1), &mut out),
            Ok(at(MAX_POINTERS))
        );
        assert_eq!(out, b"\x00");
        assert_eq!(
            read(&m, at(MAX_POINTERS), &mut out),
            Err(DnsError::PointerLoop)
        );
    }

    #[test]
    fn read_refuses_reserved_label_types_and_long_names() {
        let mut out = Vec::new();
        for first in [0x40u8, 0x41, 0x80, 0xbf] {
            let m = msg_with(&[first, 0, 0]);
            assert_eq!(read(&m, 12, &mut out), Err(DnsError::BadLabel));
        }
        // 5 labels of 63: 320 bytes.
        let mut tail = Vec::new();
        for _ in 0..5 {
            tail.push(63);
            tail.extend_from_slice(&[b'a'; 63]);
        }
        tail.push(0);
        let m = msg_with(&tail);
        assert_eq!(read(&m, 12, &mut out), Err(DnsError::NameTooLong));
        // Long names built from pointers are caught too: each name is one 63-byte label and
        // a pointer to the name before; the fourth holds 4 * 64 + 1 = 257 bytes.
        let mut tail = vec![63];
        tail.extend_from_slice(&[b'a'; 63]);
        tail.push(0);
        let mut starts = vec![12u16];
        for _ in 0..3 {
            starts.push(12 + tail.len() as u16);
            tail.push(63);
            tail.extend_from_slice(&[b'b'; 63]);
            tail.extend_from_slice(&(0xc000 | starts[starts.len() - 2]).to_be_bytes());
        }
        let m = msg_with(&tail);
        assert!(read(&m, usize::from(starts[2]), &mut out).is_ok());
        assert_eq!(out.len(), 193);
        assert_eq!(
            read(&m, usize::from(starts[3]), &mut out),
            Err(DnsError::NameTooLong)
        );
    }

    #[test]
    fn read_of_a_cut_name_is_short_at_every_length() {
        let full = msg_with(b"\x03www\x07example\x03com\x00");
        let mut out = Vec::new();
        assert!(read(&full, 12, &mut out).is_ok());
        for cut in 12..full.len() {
            assert_eq!(
                read(&full[..cut], 12, &mut out),
                Err(DnsError::Short),
                "{cut}"
            );
        }
    }

    #[test]
    fn flat_names_compare_by_whole_labels() {
        let www = to_flat("WWW.Example.com.").unwrap();
        let zone = to_flat("example.com").unwrap();
        assert!(is_at_or_below(&www, &zone));
        assert!(is_at_or_below(&zone, &zone));
        assert!(is_at_or_below(&zone, b"\x00"));
        assert!(!is_at_or_below(&zone, &www));
        assert!(!is_at_or_below(&to_flat("badexample.com").unwrap(), &zone));
        assert!(!is_at_or_below(&to_flat("xample.com").unwrap(), &zone));
    }

    #[test]
    fn to_text_escapes_what_a_label_may_not_hold_as_text() {
        assert_eq!(to_text(b"\x00"), ".");
        assert_eq!(to_text(b"\x03a.b\x01c\x00"), "a\\046b.c");
        assert_eq!(to_text(b"\x02\x00\xff\x00"), "\\000\\255");
        assert_eq!(
            to_text(&to_flat("Host_1.EXAMPLE").unwrap()),
            "host_1.example"
        );
    }
}
