//! Content decoding (RFC 9110 §8.4.1): gzip and deflate bodies, decoded as they arrive.
//!
//! Pure: compressed bytes in, decoded bytes out, no I/O. Input is decoded in small steps so
//! the caller can apply its body limit to the *decoded* size between steps: a decompression
//! bomb stops at the limit, after at most one step's worth of output (deflate expands at
//! most ~1032:1, so a 512-byte step yields at most ~0.5 MiB).

use std::io::{self, Write};

use flate2::write::{DeflateDecoder, GzDecoder, ZlibDecoder};

enum Inner {
    Gzip(GzDecoder<Vec<u8>>),
    Zlib(ZlibDecoder<Vec<u8>>),
    RawDeflate(DeflateDecoder<Vec<u8>>),
    /// `deflate` whose first two bytes have not arrived yet: zlib-wrapped (what RFC 9110
    /// means) or raw (what some servers send) is decided by them.
    DeflateUndecided(Vec<u8>),
}

/// An incremental decoder for one `Content-Encoding`.
///
/// # Examples
/// ```
/// use std::io::Write;
/// let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
/// gz.write_all(b"hello hello hello").unwrap();
/// let wire = gz.finish().unwrap();
///
/// let mut d = parafetch::proto::ContentDecoder::for_encoding("gzip").unwrap();
/// let mut out = Vec::new();
/// for piece in wire.chunks(parafetch::proto::ContentDecoder::STEP) {
///     out.extend_from_slice(d.push(piece).unwrap());
/// }
/// out.extend_from_slice(d.finish().unwrap());
/// assert_eq!(out, b"hello hello hello");
/// ```
pub struct ContentDecoder {
    inner: Inner,
}

impl std::fmt::Debug for ContentDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.inner {
            Inner::Gzip(_) => "gzip",
            Inner::Zlib(_) => "deflate (zlib)",
            Inner::RawDeflate(_) => "deflate (raw)",
            Inner::DeflateUndecided(_) => "deflate",
        };
        f.debug_tuple("ContentDecoder").field(&name).finish()
    }
}

impl ContentDecoder {
    /// Compressed bytes to feed per [`push`](Self::push): this bounds the output of one
    /// step (see the module comment), so a body limit applied between steps stops a
    /// decompression bomb early.
    pub const STEP: usize = 512;

    /// A decoder for a `Content-Encoding` value we know (`gzip`, `x-gzip`, `deflate`), or
    /// `None` (identity, or a coding we do not decode: the body passes through as sent).
    pub fn for_encoding(content_encoding: &str) -> Option<ContentDecoder> {
        let coding = content_encoding.trim().to_ascii_lowercase();
        let inner = match coding.as_str() {
            "gzip" | "x-gzip" => Inner::Gzip(GzDecoder::new(Vec::new())),
            "deflate" => Inner::DeflateUndecided(Vec::new()),
            _ => return None,
        };
        Some(ContentDecoder { inner })
    }

    /// Decodes one step of input (at most [`STEP`](Self::STEP) bytes is what keeps output
    /// bounded) and returns what it decoded. The returned slice is valid until the next call.
    ///
    /// # Errors
    /// `InvalidData` when the bytes are not a valid stream of the coding.
    pub fn push(&mut self, input: &[u8]) -> io::Result<&[u8]> {
        if let Inner::DeflateUndecided(head) = &mut self.inner {
            head.extend_from_slice(input);
            if head.len() < 2 {
                return Ok(&[]);
            }
            let head = std::mem::take(head);
            // RFC 1950: CM = 8 and the 16-bit header is a multiple of 31.
            let zlib =
                head[0] & 0x0f == 8 && (u16::from(head[0]) << 8 | u16::from(head[1])) % 31 == 0;
            self.inner = if zlib {
                Inner::Zlib(ZlibDecoder::new(Vec::new()))
            } else {
                Inner::RawDeflate(DeflateDecoder::new(Vec::new()))
            };
            return self.write(&head);
        }
        self.write(input)
    }

    fn write(&mut self, input: &[u8]) -> io::Result<&[u8]> {
        let out = match &mut self.inner {
            Inner::Gzip(d) => {
                d.get_mut().clear();
                d.write_all(input).map_err(bad_data)?;
                d.get_ref()
            }
            Inner::Zlib(d) => {
                d.get_mut().clear();
                d.write_all(input).map_err(bad_data)?;
                d.get_ref()
            }
            Inner::RawDeflate(d) => {
                d.get_mut().clear();
                d.write_all(input).map_err(bad_data)?;
                d.get_ref()
            }
            Inner::DeflateUndecided(_) => return Ok(&[]),
        };
        Ok(out)
    }

    /// The body ended: flushes what is left.
    ///
    /// # Errors
    /// `InvalidData` when the compressed stream is incomplete or corrupt.
    pub fn finish(&mut self) -> io::Result<&[u8]> {
        let out = match &mut self.inner {
            Inner::Gzip(d) => {
                d.get_mut().clear();
                d.try_finish().map_err(bad_data)?;
                d.get_ref()
            }
            Inner::Zlib(d) => {
                d.get_mut().clear();
                d.try_finish().map_err(bad_data)?;
                d.get_ref()
            }
            Inner::RawDeflate(d) => {
                d.get_mut().clear();
                d.try_finish().map_err(bad_data)?;
                d.get_ref()
            }
            Inner::DeflateUndecided(head) if head.is_empty() => return Ok(&[]),
            Inner::DeflateUndecided(_) => {
                return Err(bad_data(io::Error::other(
                    "deflate body shorter than its header",
                )));
            }
        };
        Ok(out)
    }
}

fn bad_data(e: io::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    const STEP: usize = ContentDecoder::STEP;
    use flate2::Compression;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};

    fn decode_all(enc: &str, wire: &[u8], step: usize) -> io::Result<Vec<u8>> {
        let mut d = ContentDecoder::for_encoding(enc).expect("known coding");
        let mut out = Vec::new();
        for piece in wire.chunks(step.max(1)) {
            out.extend_from_slice(d.push(piece)?);
        }
        out.extend_from_slice(d.finish()?);
        Ok(out)
    }

    fn sample() -> Vec<u8> {
        (0..50_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect()
    }

    #[test]
    fn gzip_zlib_and_raw_deflate_decode_at_any_step() {
        let plain = sample();
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        let mut zl = ZlibEncoder::new(Vec::new(), Compression::default());
        zl.write_all(&plain).unwrap();
        let zl = zl.finish().unwrap();
        let mut raw = DeflateEncoder::new(Vec::new(), Compression::default());
        raw.write_all(&plain).unwrap();
        let raw = raw.finish().unwrap();
        for step in [1, 7, STEP, 100_000] {
            assert_eq!(
                decode_all("gzip", &gz, step).unwrap(),
                plain,
                "gzip step {step}"
            );
            assert_eq!(decode_all("x-gzip", &gz, step).unwrap(), plain);
            assert_eq!(
                decode_all("deflate", &zl, step).unwrap(),
                plain,
                "zlib step {step}"
            );
            assert_eq!(
                decode_all("deflate", &raw, step).unwrap(),
                plain,
                "raw step {step}"
            );
        }
    }

    #[test]
    fn unknown_codings_pass_through() {
        assert!(ContentDecoder::for_encoding("br").is_none());
        assert!(ContentDecoder::for_encoding("identity").is_none());
        assert!(ContentDecoder::for_encoding(" GZIP ").is_some());
    }

    #[test]
    fn corrupt_and_truncated_streams_are_errors() {
        assert!(decode_all("gzip", b"this is not gzip at all", 4).is_err());
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&sample()).unwrap();
        let gz = gz.finish().unwrap();
        assert!(decode_all("gzip", &gz[..gz.len() / 2], STEP).is_err());
    }

    #[test]
    fn one_step_of_a_bomb_yields_bounded_output() {
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(&vec![0u8; 16 << 20]).unwrap();
        let bomb = gz.finish().unwrap();
        let mut d = ContentDecoder::for_encoding("gzip").unwrap();
        let mut most = 0;
        for piece in bomb.chunks(STEP) {
            most = most.max(d.push(piece).unwrap().len());
        }
        assert!(most <= STEP * 1100, "one step gave {most} bytes");
    }
}
