//! The chunked transfer coding decoder (RFC 9112 §7.1).
//!
//! Owns the byte-level state of a chunked body. It must never buffer chunk data: data comes
//! back as sub-slices of the input, and the only state kept between inputs is a few numbers.
//!
//! Line endings: RFC 9112 §2.2 lets a recipient take a bare LF as a line terminator, and the
//! head reader already does (httparse does), so every line here — size line, the end of
//! chunk data, trailer lines — ends with CRLF or a bare LF. A CR must always be followed by
//! LF. As the last recipient (a client, not a proxy), reading bare LF cannot desynchronise
//! anyone downstream.
//!
//! Trailer fields are skipped, not kept: the exchange has no event for them and no caller
//! has asked for them. Their bytes still count against `Limits::max_trailer_bytes`.

use super::{Limits, ProtoError};

/// Where the decoder stands; one small `read_*` method per state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size.
    Size,
    /// After the digits: BWS before an extension or the line end.
    SizeWs,
    /// Inside chunk extensions, skipped up to the line end.
    Extension,
    /// A CR in the size line: LF must follow.
    SizeLf,
    /// Inside chunk data.
    Data,
    /// Chunk data done: CRLF or LF must follow.
    DataCr,
    /// A CR after chunk data: LF must follow.
    DataLf,
    /// At the start of a trailer line (or the empty line that ends the body).
    TrailerStart,
    /// Inside a trailer field line, skipped.
    TrailerLine,
    /// A CR inside a trailer field line: LF must follow.
    TrailerLineLf,
    /// A CR at the start of a trailer line: LF must follow, and ends the body.
    EndLf,
    /// The body is complete.
    Done,
}

/// Decodes a chunked body from inputs of any size, byte by byte where needed.
///
/// # Examples
/// ```
/// use parafetch::proto::{__private::ChunkedDecoder, Limits};
/// let mut dec = ChunkedDecoder::new(&Limits::default());
/// let input = b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n";
/// let (n, data) = dec.decode(input).unwrap();
/// assert_eq!(data, Some(&b"hello"[..]));
/// let (m, data) = dec.decode(&input[n..]).unwrap();
/// assert_eq!((n + m, data, dec.is_done()), (input.len(), None, true));
/// ```
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// The size being read in `Size`, then the data bytes left in `Data`.
    size: u64,
    /// Hex digits read in the current size line: zero digits is not a size.
    digits: usize,
    /// Bytes of the current size line so far, line ending included.
    line_len: usize,
    /// Bytes of trailer field lines so far.
    trailer_len: usize,
    max_line: usize,
    max_trailer: usize,
}

impl ChunkedDecoder {
    /// A decoder at the start of a chunked body, enforcing `limits.max_chunk_line_bytes` and
    /// `limits.max_trailer_bytes`.
    pub fn new(limits: &Limits) -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            line_len: 0,
            trailer_len: 0,
            max_line: limits.max_chunk_line_bytes,
            max_trailer: limits.max_trailer_bytes,
        }
    }

    /// Decodes from the front of `input`; returns how many bytes it consumed and the chunk
    /// data among them, if any. It stops right after a data slice, at the end of the body, or
    /// when `input` is used up; call again with the rest.
    ///
    /// # Errors
    /// [`ProtoError::InvalidChunkSize`], [`ProtoError::ChunkSizeOverflow`],
    /// [`ProtoError::ChunkLineTooLong`], [`ProtoError::InvalidChunkEnd`],
    /// [`ProtoError::TrailersTooLarge`]. After an error the decoder must not be used again.
    pub fn decode<'a>(&mut self, input: &'a [u8]) -> Result<(usize, Option<&'a [u8]>), ProtoError> {
        let mut pos = 0;
        while pos < input.len() && self.state != State::Done {
            if self.state == State::Data {
                let n = usize::try_from(self.size)
                    .map_or(input.len() - pos, |size| size.min(input.len() - pos));
                self.size -= n as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                return Ok((pos + n, Some(&input[pos..pos + n])));
            }
            let b = input[pos];
            pos += 1;
            self.state = match self.state {
                State::Size | State::SizeWs | State::Extension | State::SizeLf => {
                    self.read_size_line(b)?
                }
                State::DataCr => read_data_cr(b)?,
                State::DataLf => read_data_lf(b)?,
                State::TrailerStart | State::TrailerLine | State::TrailerLineLf | State::EndLf => {
                    self.read_trailer(b)?
                }
                State::Data | State::Done => unreachable!("handled above"),
            };
        }
        Ok((pos, None))
    }

    /// Whether the last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// One byte of a size line: `1*HEXDIG [BWS] *( ";" chunk-ext ) (CRLF / LF)`.
    fn read_size_line(&mut self, b: u8) -> Result<State, ProtoError> {
        self.line_len += 1;
        if self.line_len > self.max_line {
            return Err(ProtoError::ChunkLineTooLong);
        }
        match self.state {
            State::Size => self.read_size(b),
            State::SizeWs => self.read_size_ws(b),
            State::Extension => self.read_extension(b),
            _ => self.read_size_lf(b),
        }
    }

    fn read_size(&mut self, b: u8) -> Result<State, ProtoError> {
        // By hand: `u64::from_str_radix("+5", 16)` succeeds, and httparse's
        // `parse_chunk_size(b"\r\n")` reads an empty line as size 0, the last chunk.
        if let Some(d) = hex_value(b) {
            self.digits += 1;
            self.size = self
                .size
                .checked_mul(16)
                .and_then(|s| s.checked_add(d))
                .ok_or(ProtoError::ChunkSizeOverflow)?;
            return Ok(State::Size);
        }
        if self.digits == 0 {
            return Err(ProtoError::InvalidChunkSize);
        }
        self.read_size_ws(b)
    }

    fn read_size_ws(&mut self, b: u8) -> Result<State, ProtoError> {
        match b {
            // BWS before ";" (RFC 9112 §7.1.1); some servers also pad before the line end.
            b' ' | b'\t' => Ok(State::SizeWs),
            b';' => Ok(State::Extension),
            _ => self.read_size_lf_or_cr(b),
        }
    }

    fn read_extension(&mut self, b: u8) -> Result<State, ProtoError> {
        match b {
            b'\r' | b'\n' => self.read_size_lf_or_cr(b),
            // Extensions are skipped, but a control byte cannot be part of one (tokens and
            // quoted-strings exclude CTLs but HTAB).
            b'\t' => Ok(State::Extension),
            0..=0x1f | 0x7f => Err(ProtoError::InvalidChunkSize),
            _ => Ok(State::Extension),
        }
    }

    fn read_size_lf_or_cr(&mut self, b: u8) -> Result<State, ProtoError> {
        match b {
            b'\r' => Ok(State::SizeLf),
            b'\n' => Ok(self.end_size_line()),
            _ => Err(ProtoError::InvalidChunkSize),
        }
    }

    fn read_size_lf(&mut self, b: u8) -> Result<State, ProtoError> {
        match b {
            b'\n' => Ok(self.end_size_line()),
            _ => Err(ProtoError::InvalidChunkSize),
        }
    }

    fn end_size_line(&mut self) -> State {
        self.digits = 0;
        self.line_len = 0;
        if self.size == 0 {
            // The last chunk (RFC 9112 §7.1): a trailer section follows.
            State::TrailerStart
        } else {
            State::Data
        }
    }

    /// One byte of the trailer section: `*( field-line CRLF ) CRLF`, field lines skipped.
    fn read_trailer(&mut self, b: u8) -> Result<State, ProtoError> {
        match (self.state, b) {
            (State::TrailerStart, b'\n') | (State::EndLf, b'\n') => return Ok(State::Done),
            (State::TrailerStart, b'\r') => return Ok(State::EndLf),
            (State::EndLf, _) => return Err(ProtoError::InvalidChunkEnd),
            _ => {}
        }
        // Inside a field line: count it against the limit.
        self.trailer_len += 1;
        if self.trailer_len > self.max_trailer {
            return Err(ProtoError::TrailersTooLarge);
        }
        match (self.state, b) {
            (State::TrailerLineLf, b'\n') | (State::TrailerLine, b'\n') => Ok(State::TrailerStart),
            (State::TrailerLineLf, _) => Err(ProtoError::InvalidChunkEnd),
            (_, b'\r') => Ok(State::TrailerLineLf),
            _ => Ok(State::TrailerLine),
        }
    }
}

/// The byte after chunk data: CR, or a bare LF.
fn read_data_cr(b: u8) -> Result<State, ProtoError> {
    match b {
        b'\r' => Ok(State::DataLf),
        b'\n' => Ok(State::Size),
        _ => Err(ProtoError::InvalidChunkEnd),
    }
}

/// The LF of the CRLF after chunk data.
fn read_data_lf(b: u8) -> Result<State, ProtoError> {
    match b {
        b'\n' => Ok(State::Size),
        _ => Err(ProtoError::InvalidChunkEnd),
    }
}

fn hex_value(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::split_everywhere;
    use super::*;

    /// Decodes `pieces` in order, as the exchange would; returns (data, done) or the error,
    /// and the bytes left unconsumed after the end.
    fn decode_pieces(
        pieces: &[&[u8]],
        limits: &Limits,
    ) -> (Result<(Vec<u8>, bool), ProtoError>, usize) {
        let mut dec = ChunkedDecoder::new(limits);
        let mut data = Vec::new();
        let mut left = 0;
        for piece in pieces {
            let mut rest = *piece;
            while !rest.is_empty() {
                if dec.is_done() {
                    left += rest.len();
                    break;
                }
                match dec.decode(rest) {
                    Ok((n, slice)) => {
                        if let Some(slice) = slice {
                            assert!(!slice.is_empty(), "no empty data slices");
                            // Zero copy: the data lies inside the input.
                            let range = rest.as_ptr_range();
                            assert!(range.contains(&slice.as_ptr()));
                            data.extend_from_slice(slice);
                        } else {
                            assert!(
                                n == rest.len() || dec.is_done(),
                                "stops early only at the end"
                            );
                        }
                        assert!(n > 0, "progress on non-empty input");
                        rest = &rest[n..];
                    }
                    Err(e) => return (Err(e), 0),
                }
            }
        }
        (Ok((data, dec.is_done())), left)
    }

    /// Decodes `wire` whole, byte by byte and split at every point; all must agree.
    fn decode_all_ways(
        wire: &[u8],
        limits: &Limits,
    ) -> (Result<(Vec<u8>, bool), ProtoError>, usize) {
        split_everywhere(wire, |pieces| decode_pieces(pieces, limits))
    }

    fn decode_ok(wire: &[u8]) -> Vec<u8> {
        match decode_all_ways(wire, &Limits::default()) {
            (Ok((data, true)), 0) => data,
            other => panic!("{other:?}"),
        }
    }

    fn decode_err(wire: &[u8]) -> ProtoError {
        decode_all_ways(wire, &Limits::default()).0.unwrap_err()
    }

    fn decode_unfinished(wire: &[u8]) -> Vec<u8> {
        match decode_all_ways(wire, &Limits::default()) {
            (Ok((data, false)), 0) => data,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn simple_chunks() {
        assert_eq!(
            decode_ok(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
            b"hello world"
        );
        assert_eq!(decode_ok(b"0\r\n\r\n"), b"");
        assert_eq!(
            decode_ok(b"A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n").len(),
            20
        );
        assert_eq!(
            decode_ok(b"000010\r\n0123456789abcdef\r\n0000\r\n\r\n").len(),
            16
        );
    }

    #[test]
    fn extensions_and_whitespace_skipped() {
        assert_eq!(
            decode_ok(b"5;a=b;c=\"d;e\"\r\nhello\r\n5 ; x\r\nworld\r\n0;last\r\n\r\n"),
            b"helloworld"
        );
        assert_eq!(decode_ok(b"5 \t\r\nhello\r\n0\r\n\r\n"), b"hello");
    }

    #[test]
    fn trailers_skipped_and_counted() {
        assert_eq!(
            decode_ok(b"5\r\nhello\r\n0\r\nExpires: never\r\nX: y\r\n\r\n"),
            b"hello"
        );
        let wire = b"0\r\nAB: 12\r\n\r\n"; // 8 bytes of trailer field lines
        let limits = |max_trailer_bytes| Limits {
            max_trailer_bytes,
            ..Limits::default()
        };
        assert!(decode_all_ways(wire, &limits(8)).0.is_ok());
        assert_eq!(
            decode_all_ways(wire, &limits(7)).0,
            Err(ProtoError::TrailersTooLarge)
        );
        // Without trailers a zero limit is fine: the final empty line is not counted.
        assert!(decode_all_ways(b"0\r\n\r\n", &limits(0)).0.is_ok());
    }

    #[test]
    fn bare_lf_accepted_everywhere() {
        assert_eq!(decode_ok(b"5\nhello\n0\nX: y\n\n"), b"hello");
        assert_eq!(decode_ok(b"5;e\nhello\r\n0\r\nX: y\n\r\n"), b"hello");
    }

    #[test]
    fn bytes_after_end_not_consumed() {
        let (res, left) = decode_all_ways(b"1\r\na\r\n0\r\n\r\nHTTP/1.1", &Limits::default());
        assert_eq!(res, Ok((b"a".to_vec(), true)));
        assert_eq!(left, 8);
    }

    #[test]
    fn plus_sign_chunk_size_is_invalid() {
        assert_eq!(
            decode_err(b"+5\r\nhello\r\n0\r\n\r\n"),
            ProtoError::InvalidChunkSize
        );
        assert_eq!(
            decode_err(b"-5\r\nhello\r\n0\r\n\r\n"),
            ProtoError::InvalidChunkSize
        );
        assert_eq!(
            decode_err(b"0x5\r\nhello\r\n0\r\n\r\n"),
            ProtoError::InvalidChunkSize
        );
    }

    #[test]
    fn empty_chunk_size_line_is_not_last_chunk() {
        assert_eq!(decode_err(b"\r\n\r\n"), ProtoError::InvalidChunkSize);
        assert_eq!(decode_err(b"\n"), ProtoError::InvalidChunkSize);
        assert_eq!(decode_err(b";ext\r\n"), ProtoError::InvalidChunkSize);
        assert_eq!(decode_err(b" 5\r\nhello\r\n"), ProtoError::InvalidChunkSize);
        assert_eq!(
            decode_err(b"5\r\nhello\r\n\r\n0\r\n\r\n"),
            ProtoError::InvalidChunkSize
        );
    }

    #[test]
    fn invalid_chunk_size_lines() {
        for wire in [
            &b"g\r\n"[..],
            b"5x\r\nhello\r\n",
            b"5 5\r\nhello\r\n",
            b"5\rhello\r\n",
            b"5\r\r\n",
            b"5;a\rb\r\n",
            b"5;a\0\r\n",
            b"5;a\x7f\r\n",
        ] {
            assert_eq!(
                decode_err(wire),
                ProtoError::InvalidChunkSize,
                "{:?}",
                String::from_utf8_lossy(wire)
            );
        }
    }

    #[test]
    fn chunk_size_overflow() {
        // 16 hex digits fit in a u64, a 17th overflows.
        let (res, _) = decode_all_ways(b"ffffffffffffffff\r\nabc", &Limits::default());
        assert_eq!(res, Ok((b"abc".to_vec(), false)));
        assert_eq!(
            decode_err(b"10000000000000000\r\n"),
            ProtoError::ChunkSizeOverflow
        );
        assert_eq!(
            decode_err(b"fffffffffffffffff\r\n"),
            ProtoError::ChunkSizeOverflow
        );
        // Leading zeros are not an overflow.
        assert_eq!(
            decode_ok(b"00000000000000000000001\r\nx\r\n0\r\n\r\n"),
            b"x"
        );
    }

    #[test]
    fn chunk_line_too_long() {
        let limits = Limits {
            max_chunk_line_bytes: 8,
            ..Limits::default()
        };
        // "5;abcd\r\n" is exactly 8 bytes: fine; one more byte is over.
        assert!(
            decode_all_ways(b"5;abcd\r\nhello\r\n0\r\n\r\n", &limits)
                .0
                .is_ok()
        );
        assert_eq!(
            decode_all_ways(b"5;abcde\r\nhello\r\n0\r\n\r\n", &limits).0,
            Err(ProtoError::ChunkLineTooLong)
        );
        // The limit is per line, not cumulative.
        assert!(
            decode_all_ways(b"1;abcd\r\na\r\n1;abcd\r\nb\r\n0;abcd\r\n\r\n", &limits)
                .0
                .is_ok()
        );
        // Endless zeros fail at the limit rather than spinning.
        assert_eq!(
            decode_all_ways(&[b'0'; 9], &limits).0,
            Err(ProtoError::ChunkLineTooLong)
        );
    }

    #[test]
    fn invalid_chunk_end() {
        assert_eq!(
            decode_err(b"5\r\nhelloX\r\n0\r\n\r\n"),
            ProtoError::InvalidChunkEnd
        );
        assert_eq!(
            decode_err(b"5\r\nhello\rX0\r\n\r\n"),
            ProtoError::InvalidChunkEnd
        );
        assert_eq!(
            decode_err(b"3\r\nhello\r\n0\r\n\r\n"),
            ProtoError::InvalidChunkEnd
        );
        assert_eq!(
            decode_err(b"0\r\nX: y\rz\r\n\r\n"),
            ProtoError::InvalidChunkEnd
        );
        assert_eq!(decode_err(b"0\r\n\rX"), ProtoError::InvalidChunkEnd);
    }

    #[test]
    fn unfinished_bodies_are_not_done() {
        assert_eq!(decode_unfinished(b""), b"");
        assert_eq!(decode_unfinished(b"5\r\nhel"), b"hel");
        assert_eq!(decode_unfinished(b"5\r\nhello\r\n"), b"hello");
        assert_eq!(decode_unfinished(b"5\r\nhello\r\n0\r\n"), b"hello");
        assert_eq!(decode_unfinished(b"5\r\nhello\r\n0\r\nX: y\r\n"), b"hello");
        assert_eq!(decode_unfinished(b"5\r\nhello\r\n0\r\n\r"), b"hello");
    }

    #[test]
    fn huge_chunk_is_streamed_not_buffered() {
        let mut dec = ChunkedDecoder::new(&Limits::default());
        assert_eq!(dec.decode(b"ffffffffffffffff\r\n").unwrap(), (18, None));
        let input = [7u8; 1000];
        let (n, data) = dec.decode(&input).unwrap();
        assert_eq!((n, data.map(<[u8]>::len)), (1000, Some(1000)));
        assert_eq!(dec.size, u64::MAX - 1000);
    }
}
