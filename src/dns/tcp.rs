//! DNS over TCP framing (RFC 1035 §4.2.2, RFC 7766 §8): each message is preceded by its
//! length as a two-byte big-endian number.
//!
//! Owns the framing only; it must not touch the socket it is fed from.

/// Appends `msg` to `out`, preceded by its two-byte length.
///
/// # Panics
/// If `msg` is longer than 65535 bytes, which no DNS message can be (a query from
/// `encode_query` is at most a few hundred bytes).
pub fn frame_tcp(msg: &[u8], out: &mut Vec<u8>) {
    let len = u16::try_from(msg.len()).expect("a dns message is at most 65535 bytes");
    out.reserve(2 + msg.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(msg);
}

/// Collects the bytes of a TCP stream and yields each length-prefixed message once it is
/// complete.
///
/// It never holds more than the bytes pushed and not yet returned; one frame is at most
/// 2 + 65535 bytes, so a client that stops pushing once it has its reply stays bounded.
///
/// # Examples
/// ```
/// use parafetch::dns::message::TcpFrameReader;
///
/// let mut reader = TcpFrameReader::new();
/// assert_eq!(reader.push(b"\x00\x03ab"), None);
/// assert_eq!(reader.push(b"c\x00"), Some(b"abc".to_vec()));
/// assert_eq!(reader.push(b"\x01z"), Some(b"z".to_vec()));
/// ```
#[derive(Clone, Debug, Default)]
pub struct TcpFrameReader {
    buf: Vec<u8>,
}

impl TcpFrameReader {
    /// A reader with nothing buffered.
    pub fn new() -> Self {
        TcpFrameReader { buf: Vec::new() }
    }

    /// Adds `bytes` from the stream and returns the next complete message, if there is one
    /// now, without its length prefix. Each message is returned once. Bytes past it stay
    /// buffered: call `push(&[])` again to take a further message already received.
    pub fn push(&mut self, bytes: &[u8]) -> Option<Vec<u8>> {
        self.buf.extend_from_slice(bytes);
        let &[hi, lo, ..] = self.buf.as_slice() else {
            return None;
        };
        let end = 2 + usize::from(u16::from_be_bytes([hi, lo]));
        if self.buf.len() < end {
            return None;
        }
        let msg = self.buf[2..end].to_vec();
        self.buf.drain(..end);
        Some(msg)
    }

    /// How many bytes are buffered and not yet returned (length prefixes included). Non-zero
    /// at the end of the stream means the peer closed inside a message.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_prefixes_the_length() {
        let mut out = b"x".to_vec();
        frame_tcp(b"abc", &mut out);
        assert_eq!(out, b"x\x00\x03abc");
        let mut out = Vec::new();
        frame_tcp(&[7; 300], &mut out);
        assert_eq!(&out[..2], b"\x01\x2c");
        assert_eq!(out.len(), 302);
    }

    #[test]
    fn reader_fed_byte_by_byte_yields_each_message_once() {
        let mut stream = Vec::new();
        frame_tcp(b"first message", &mut stream);
        frame_tcp(b"", &mut stream);
        frame_tcp(&[0xab; 1000], &mut stream);
        let mut got = Vec::new();
        let mut reader = TcpFrameReader::new();
        for &b in &stream {
            if let Some(msg) = reader.push(&[b]) {
                got.push(msg);
            }
        }
        assert_eq!(
            got,
            [b"first message".to_vec(), Vec::new(), vec![0xab; 1000]]
        );
        assert_eq!(reader.buffered(), 0);
        assert_eq!(reader.push(&[]), None);
    }

    #[test]
    fn reader_split_at_every_point_and_drained_with_empty_pushes() {
        let mut stream = Vec::new();
        frame_tcp(b"one", &mut stream);
        frame_tcp(b"two!", &mut stream);
        for split in 0..=stream.len() {
            let mut reader = TcpFrameReader::new();
            let mut got = Vec::new();
            for part in [&stream[..split], &stream[split..]] {
                let mut next = reader.push(part);
                while let Some(msg) = next {
                    got.push(msg);
                    next = reader.push(&[]);
                }
            }
            assert_eq!(got, [b"one".to_vec(), b"two!".to_vec()], "split {split}");
            assert_eq!(reader.buffered(), 0);
        }
    }

    #[test]
    fn reader_reports_a_stream_cut_inside_a_message() {
        let mut reader = TcpFrameReader::new();
        assert_eq!(reader.push(b"\x00\x05abc"), None);
        assert_eq!(reader.buffered(), 5);
        let mut reader = TcpFrameReader::new();
        assert_eq!(reader.push(b"\x00"), None);
        assert_eq!(reader.buffered(), 1);
    }

    #[test]
    fn reader_takes_the_largest_frame() {
        let big = vec![1u8; 65535];
        let mut stream = Vec::new();
        frame_tcp(&big, &mut stream);
        let mut reader = TcpFrameReader::new();
        assert_eq!(reader.push(&stream[..65536]), None);
        assert_eq!(reader.push(&stream[65536..]), Some(big));
    }
}
