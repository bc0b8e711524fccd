//! Content decoding (RFC 9110 §8.4): `gzip`, `deflate`, `br` (RFC 7932) and `zstd`
//! (RFC 8878) bodies, stacked codings included, decoded as they arrive.
//!
//! Pure: compressed bytes in, decoded bytes out, no I/O. Every call returns at most
//! [`ContentDecoder::OUT_STEP`] decoded bytes, whatever the input: brotli and zstd turn a
//! few bytes into megabytes, so only a bound on *output* lets the caller apply its body
//! limit to the decoded size between steps and stop a decompression bomb after at most one
//! step past the limit. Memory stays bounded too: one `OUT_STEP` buffer per coding plus
//! the coding's own window (deflate 32 KiB; br at most 16 MiB, the format's largest, with
//! Large-Window Brotli refused; zstd at most 8 MiB, window log 23 as RFC 9659 sets for
//! HTTP).
//!
//! ```text
//!  wire bytes ─▶ [last coding applied] ─▶ out ─▶ … ─▶ [first coding applied] ─▶ out ─▶ caller
//!                 stage 0                          stage n-1 (n ≤ MAX_CODINGS)
//! ```
//! Each stage reads the unread part of the one before's buffer; a step runs the stages in
//! turn until the last one's buffer is full or nothing moves.

use std::io;

use flate2::{Crc, Decompress, FlushDecompress, Status};

/// A decoder for a `Content-Encoding` list: each step hands back at most
/// [`OUT_STEP`](Self::OUT_STEP) decoded bytes.
///
/// Two methods, `(consumed, produced)` style:
/// - [`decode`](Self::decode)`(input)` takes some of `input` and returns how much it took
///   and up to `OUT_STEP` decoded bytes. Call it again with the rest (an empty rest too)
///   while it returns output; empty output means it took all of `input` and wants more.
/// - [`finish`](Self::finish)`()` at the end of the body: returns what is left, up to
///   `OUT_STEP` a call, until it returns nothing; then every coding must have ended.
///
/// # Examples
/// ```
/// use std::io::Write;
/// use parafetch::proto::ContentDecoder;
///
/// let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
/// gz.write_all(&[b'a'; 200_000]).unwrap();
/// let wire = gz.finish().unwrap();
///
/// let mut d = ContentDecoder::for_encoding("gzip").unwrap();
/// let mut body = Vec::new();
/// for packet in wire.chunks(1000) {
///     let mut rest = packet;
///     loop {
///         let (used, out) = d.decode(rest).unwrap();
///         rest = &rest[used..];
///         if out.is_empty() {
///             break; // `rest` is empty: the decoder wants the next packet
///         }
///         assert!(out.len() <= ContentDecoder::OUT_STEP);
///         body.extend_from_slice(out); // a body limit would be checked here
///     }
/// }
/// loop {
///     let out = d.finish().unwrap();
///     if out.is_empty() {
///         break;
///     }
///     body.extend_from_slice(out);
/// }
/// assert_eq!(body, [b'a'; 200_000]);
/// ```
pub struct ContentDecoder {
    /// The last coding applied first: stage 0 reads the wire, each later stage the output
    /// of the one before, and the caller reads the last.
    stages: Vec<Stage>,
    /// Any input came: an empty body is an empty body whatever its coding says (a server
    /// labels a `Content-Length: 0` answer `gzip`, as curl and browsers accept).
    fed: bool,
}

/// One coding and its output buffer.
struct Stage {
    codec: Codec,
    out: Box<[u8]>,
    /// `out[start..end]` is decoded and not yet taken by the next stage (or the caller).
    start: usize,
    end: usize,
}

enum Codec {
    Gzip(Box<Gzip>),
    Deflate(Box<Deflate>),
    #[cfg(feature = "brotli")]
    Brotli(Box<Brotli>),
    #[cfg(feature = "zstd")]
    Zstd(Zstd),
}

impl std::fmt::Debug for ContentDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // In Content-Encoding order: the first coding applied first.
        let names: Vec<&str> = self.stages.iter().rev().map(|s| s.codec.name()).collect();
        f.debug_tuple("ContentDecoder").field(&names).finish()
    }
}

impl ContentDecoder {
    /// The most decoded bytes one [`decode`](Self::decode) or [`finish`](Self::finish)
    /// returns: a body limit checked between calls is passed by at most this much.
    pub const OUT_STEP: usize = 64 * 1024;

    /// The most codings decoded in one `Content-Encoding` list; a longer list is left as
    /// sent (real servers stack two at most; more is an attack on our time).
    pub const MAX_CODINGS: usize = 4;

    /// The `Accept-Encoding` value for the codings this build decodes.
    pub const ACCEPT_ENCODING: &'static str =
        match (cfg!(feature = "brotli"), cfg!(feature = "zstd")) {
            (true, true) => "gzip, deflate, br, zstd",
            (true, false) => "gzip, deflate, br",
            (false, true) => "gzip, deflate, zstd",
            (false, false) => "gzip, deflate",
        };

    /// A decoder for a `Content-Encoding` list (RFC 9110 §8.4: codings in the order they
    /// were applied; `identity` and empty elements skipped), or `None` when there is
    /// nothing to decode or we cannot decode all of it: no coding, more than
    /// [`MAX_CODINGS`](Self::MAX_CODINGS), or one we do not know (or whose feature,
    /// `brotli` or `zstd`, is off). With `None` the body passes through as sent.
    ///
    /// Known: `gzip` (and `x-gzip`), `deflate` (zlib-wrapped as RFC 9110 says, or raw as
    /// some servers send, told apart by the first two bytes), `br`, `zstd`.
    pub fn for_encoding(content_encoding: &str) -> Option<ContentDecoder> {
        let mut stages = Vec::new();
        for name in codings(content_encoding) {
            if stages.len() == Self::MAX_CODINGS {
                return None;
            }
            stages.push(Stage {
                codec: Codec::named(name)?,
                out: vec![0; Self::OUT_STEP].into_boxed_slice(),
                start: 0,
                end: 0,
            });
        }
        if stages.is_empty() {
            return None;
        }
        // Decoded in the reverse order of application.
        stages.reverse();
        Some(ContentDecoder { stages, fed: false })
    }

    /// Whether a `Content-Encoding` value names no coding (empty, or only `identity`):
    /// the body is as the resource is, with nothing to decode.
    pub fn is_identity(content_encoding: &str) -> bool {
        codings(content_encoding).next().is_none()
    }

    /// Decodes from `input`: returns how many of its bytes were taken and at most
    /// [`OUT_STEP`](Self::OUT_STEP) decoded bytes (valid until the next call). While the
    /// output is not empty, call again with the bytes not taken (an empty slice when all
    /// were): the decoder may hold more output. Empty output means all of `input` was
    /// taken and more is needed.
    ///
    /// # Errors
    /// `InvalidData` when the bytes are not a valid stream of a coding (the message names
    /// it), or go on past the end of one.
    pub fn decode(&mut self, input: &[u8]) -> io::Result<(usize, &[u8])> {
        self.fed |= !input.is_empty();
        self.step(input, false)
    }

    /// The body ended: returns decoded bytes still held, at most
    /// [`OUT_STEP`](Self::OUT_STEP) a call; call until it returns an empty slice.
    ///
    /// # Errors
    /// `InvalidData` when a coding's stream is corrupt or was cut short (the message names
    /// the coding).
    pub fn finish(&mut self) -> io::Result<&[u8]> {
        if !self.fed {
            return Ok(&[]);
        }
        Ok(self.step(&[], true)?.1)
    }

    /// Runs the stages in turn until the last one's buffer is full or none moves.
    fn step(&mut self, input: &[u8], end: bool) -> io::Result<(usize, &[u8])> {
        let last = self.stages.len() - 1;
        // What the previous call returned has been handed over.
        self.stages[last].start = 0;
        self.stages[last].end = 0;
        let mut used = 0;
        loop {
            let mut moved = false;
            for i in 0..=last {
                let (before, after) = self.stages.split_at_mut(i);
                let stage = &mut after[0];
                if stage.start == stage.end {
                    stage.start = 0;
                    stage.end = 0;
                }
                if stage.end == stage.out.len() {
                    continue; // full: the next stage takes from it first
                }
                let (read, wrote) = match before.last_mut() {
                    None => {
                        let r = stage
                            .codec
                            .run(&input[used..], &mut stage.out[stage.end..])?;
                        used += r.0;
                        r
                    }
                    Some(prev) => {
                        let src = &prev.out[prev.start..prev.end];
                        let r = stage.codec.run(src, &mut stage.out[stage.end..])?;
                        prev.start += r.0;
                        r
                    }
                };
                stage.end += wrote;
                moved |= read > 0 || wrote > 0;
            }
            let tail = &self.stages[last];
            if !moved || tail.end == tail.out.len() {
                break;
            }
        }
        let tail = &self.stages[last];
        if tail.end == 0 {
            if used < input.len() {
                // Every codec takes input while it has room for output or reports an error.
                let name = self.stages[0].codec.name();
                return Err(invalid(format!("the {name} decoder stalled")));
            }
            if end {
                if let Some(s) = self.stages.iter().find(|s| !s.codec.ended()) {
                    return Err(invalid(format!("truncated {} stream", s.codec.name())));
                }
            }
        }
        let tail = &self.stages[last];
        Ok((used, &tail.out[..tail.end]))
    }
}

/// The codings of a `Content-Encoding` value, in the order applied (RFC 9110 §5.6.1 list
/// rule: empty elements and `identity` skipped).
fn codings(content_encoding: &str) -> impl Iterator<Item = &str> {
    content_encoding
        .split(',')
        .map(|t| t.trim_matches([' ', '\t']))
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("identity"))
}

impl Codec {
    fn named(coding: &str) -> Option<Codec> {
        let coding = coding.to_ascii_lowercase();
        Some(match coding.as_str() {
            "gzip" | "x-gzip" => Codec::Gzip(Box::new(Gzip::new())),
            "deflate" => Codec::Deflate(Box::default()),
            #[cfg(feature = "brotli")]
            "br" => Codec::Brotli(Box::new(Brotli::new())),
            // Only allocation can fail here; then the body is left as sent.
            #[cfg(feature = "zstd")]
            "zstd" => Codec::Zstd(Zstd::new().ok()?),
            _ => return None,
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Codec::Gzip(_) => "gzip",
            Codec::Deflate(_) => "deflate",
            #[cfg(feature = "brotli")]
            Codec::Brotli(_) => "br",
            #[cfg(feature = "zstd")]
            Codec::Zstd(_) => "zstd",
        }
    }

    /// Decodes from `input` into `out` (not empty): `(bytes read, bytes written)`.
    fn run(&mut self, input: &[u8], out: &mut [u8]) -> io::Result<(usize, usize)> {
        match self {
            Codec::Gzip(g) => g.run(input, out),
            Codec::Deflate(d) => d.run(input, out),
            #[cfg(feature = "brotli")]
            Codec::Brotli(b) => b.run(input, out),
            #[cfg(feature = "zstd")]
            Codec::Zstd(z) => z.run(input, out),
        }
    }

    /// Whether the stream ended where it may (trailer included).
    fn ended(&self) -> bool {
        match self {
            Codec::Gzip(g) => g.part == GzPart::Done,
            Codec::Deflate(d) => d.ended(),
            #[cfg(feature = "brotli")]
            Codec::Brotli(b) => b.done,
            #[cfg(feature = "zstd")]
            Codec::Zstd(z) => z.ended,
        }
    }
}

fn invalid(msg: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

fn trailing(coding: &str) -> io::Error {
    invalid(format!("data after the end of the {coding} stream"))
}

/// One run of an inflater: `(read, written, stream ended)`.
fn inflate(d: &mut Decompress, input: &[u8], out: &mut [u8]) -> io::Result<(usize, usize, bool)> {
    let (in0, out0) = (d.total_in(), d.total_out());
    let status = d
        .decompress(input, out, FlushDecompress::None)
        .map_err(|e| invalid(format!("corrupt deflate stream: {e}")))?;
    let read = (d.total_in() - in0) as usize;
    let wrote = (d.total_out() - out0) as usize;
    Ok((read, wrote, status == Status::StreamEnd))
}

// ---------------------------------------------------------------- gzip (RFC 1952)

/// Where a gzip member is: its header's parts in order, the deflate body, the trailer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum GzPart {
    Fixed,
    ExtraLen,
    Extra,
    Name,
    Comment,
    HeaderCrc,
    Body,
    Trailer,
    Done,
}

const FHCRC: u8 = 0x02;
const FEXTRA: u8 = 0x04;
const FNAME: u8 = 0x08;
const FCOMMENT: u8 = 0x10;
const FRESERVED: u8 = 0xe0;
/// The longest file name or comment accepted (flate2's limit, so behaviour is unchanged).
const MAX_GZ_FIELD: usize = 65_535;

/// One gzip member (a second member, or any byte after the first, is an error, as it was
/// with flate2's `write::GzDecoder`).
struct Gzip {
    part: GzPart,
    flags: u8,
    /// A fixed-size field being gathered (the 10-byte header, XLEN, the header CRC, the
    /// 8-byte trailer) and how much of it has arrived.
    field: [u8; 10],
    have: usize,
    /// Bytes left of the extra field, or read of the name or comment.
    count: usize,
    /// CRC-32 of the header so far (FHCRC keeps its low 16 bits).
    header_crc: Crc,
    inflate: Decompress,
    /// CRC-32 and length of the decoded data, for the trailer.
    crc: Crc,
}

impl Gzip {
    fn new() -> Gzip {
        Gzip {
            part: GzPart::Fixed,
            flags: 0,
            field: [0; 10],
            have: 0,
            count: 0,
            header_crc: Crc::new(),
            inflate: Decompress::new(false),
            crc: Crc::new(),
        }
    }

    /// Gathers a field of `n` bytes from `input`: how many bytes it took; the field is
    /// complete when `have == n`.
    fn gather(&mut self, input: &[u8], n: usize) -> usize {
        let take = (n - self.have).min(input.len());
        self.field[self.have..self.have + take].copy_from_slice(&input[..take]);
        self.have += take;
        take
    }

    fn run(&mut self, input: &[u8], out: &mut [u8]) -> io::Result<(usize, usize)> {
        let mut used = 0;
        let mut wrote = 0;
        loop {
            let rest = &input[used..];
            if rest.is_empty() && self.part != GzPart::Body {
                return Ok((used, wrote));
            }
            let before = self.part;
            let took = match self.part {
                GzPart::Fixed => {
                    let took = self.gather(rest, 10);
                    if self.have == 10 {
                        let f = self.field;
                        if f[0] != 0x1f || f[1] != 0x8b || f[2] != 8 || f[3] & FRESERVED != 0 {
                            return Err(invalid("invalid gzip header"));
                        }
                        self.flags = f[3];
                        self.next_header_part(GzPart::ExtraLen);
                    }
                    took
                }
                GzPart::ExtraLen => {
                    let took = self.gather(rest, 2);
                    if self.have == 2 {
                        self.count =
                            usize::from(u16::from_le_bytes([self.field[0], self.field[1]]));
                        if self.count == 0 {
                            self.next_header_part(GzPart::Name);
                        } else {
                            self.part = GzPart::Extra;
                        }
                    }
                    took
                }
                GzPart::Extra => {
                    let took = self.count.min(rest.len());
                    self.count -= took;
                    if self.count == 0 {
                        self.next_header_part(GzPart::Name);
                    }
                    took
                }
                GzPart::Name | GzPart::Comment => {
                    let (took, nul) = match rest.iter().position(|&b| b == 0) {
                        Some(i) => (i + 1, true),
                        None => (rest.len(), false),
                    };
                    self.count += took - usize::from(nul);
                    if self.count > MAX_GZ_FIELD {
                        return Err(invalid("gzip header field too long"));
                    }
                    if nul {
                        let next = if self.part == GzPart::Name {
                            GzPart::Comment
                        } else {
                            GzPart::HeaderCrc
                        };
                        self.next_header_part(next);
                    }
                    took
                }
                GzPart::HeaderCrc => {
                    let took = self.gather(rest, 2);
                    if self.have == 2 {
                        let stored = u16::from_le_bytes([self.field[0], self.field[1]]);
                        if stored != self.header_crc.sum() as u16 {
                            return Err(invalid("corrupt gzip header: bad header checksum"));
                        }
                        self.part = GzPart::Body;
                    }
                    took
                }
                GzPart::Body => {
                    let (read, w, ended) = inflate(&mut self.inflate, rest, &mut out[wrote..])?;
                    self.crc.update(&out[wrote..wrote + w]);
                    wrote += w;
                    if !ended {
                        return Ok((used + read, wrote));
                    }
                    self.part = GzPart::Trailer;
                    self.have = 0;
                    read
                }
                GzPart::Trailer => {
                    let took = self.gather(rest, 8);
                    if self.have == 8 {
                        let f = self.field;
                        let crc = u32::from_le_bytes([f[0], f[1], f[2], f[3]]);
                        let size = u32::from_le_bytes([f[4], f[5], f[6], f[7]]);
                        if crc != self.crc.sum() || size != self.crc.amount() {
                            return Err(invalid(
                                "corrupt gzip stream: the checksum does not match",
                            ));
                        }
                        self.part = GzPart::Done;
                    }
                    took
                }
                GzPart::Done => return Err(trailing("gzip")),
            };
            if before < GzPart::HeaderCrc {
                // FHCRC covers every header byte before it.
                self.header_crc.update(&rest[..took]);
            }
            used += took;
        }
    }

    /// Moves to `part`, or past it when the flags say it is absent.
    fn next_header_part(&mut self, mut part: GzPart) {
        let present = |p: GzPart, flags: u8| match p {
            GzPart::ExtraLen => flags & FEXTRA != 0,
            GzPart::Name => flags & FNAME != 0,
            GzPart::Comment => flags & FCOMMENT != 0,
            GzPart::HeaderCrc => flags & FHCRC != 0,
            _ => true,
        };
        while !present(part, self.flags) {
            part = match part {
                GzPart::ExtraLen => GzPart::Name,
                GzPart::Name => GzPart::Comment,
                GzPart::Comment => GzPart::HeaderCrc,
                _ => GzPart::Body,
            };
        }
        self.part = part;
        self.have = 0;
        self.count = 0;
    }
}

// ---------------------------------------------------------------- deflate

/// `deflate`: zlib-wrapped (RFC 1950, what RFC 9110 means) or raw (RFC 1951, what some
/// servers send), decided by the first two bytes.
#[derive(Default)]
struct Deflate {
    /// The first two bytes, gathered before deciding, then fed to the inflater first.
    head: [u8; 2],
    head_len: usize,
    head_fed: usize,
    inflate: Option<Decompress>,
    done: bool,
}

impl Deflate {
    fn run(&mut self, input: &[u8], out: &mut [u8]) -> io::Result<(usize, usize)> {
        let mut used = 0;
        if self.inflate.is_none() {
            let take = (2 - self.head_len).min(input.len());
            self.head[self.head_len..self.head_len + take].copy_from_slice(&input[..take]);
            self.head_len += take;
            used = take;
            if self.head_len < 2 {
                return Ok((used, 0));
            }
            let [a, b] = self.head;
            // RFC 1950: CM = 8 and the 16-bit header is a multiple of 31.
            let zlib = a & 0x0f == 8 && (u16::from(a) << 8 | u16::from(b)) % 31 == 0;
            self.inflate = Some(Decompress::new(zlib));
        }
        let Some(inflater) = self.inflate.as_mut() else {
            unreachable!("decided above");
        };
        let mut wrote = 0;
        if self.head_fed < 2 {
            let (read, w, ended) = inflate(inflater, &self.head[self.head_fed..], out)?;
            self.head_fed += read;
            wrote = w;
            self.done = ended;
            if self.head_fed < 2 || wrote == out.len() {
                return Ok((used, wrote));
            }
        }
        let rest = &input[used..];
        if self.done {
            return match rest.is_empty() {
                true => Ok((used, wrote)),
                false => Err(trailing("deflate")),
            };
        }
        let (read, w, ended) = inflate(inflater, rest, &mut out[wrote..])?;
        self.done = ended;
        Ok((used + read, wrote + w))
    }

    fn ended(&self) -> bool {
        // An empty body is an empty deflate body (as before): nothing to decode.
        self.done || self.head_len == 0
    }
}

// ---------------------------------------------------------------- br (RFC 7932)

#[cfg(feature = "brotli")]
use brotli_decompressor::{BrotliDecompressStream, BrotliResult, BrotliState, StandardAlloc};

#[cfg(feature = "brotli")]
struct Brotli {
    state: BrotliState<StandardAlloc, StandardAlloc, StandardAlloc>,
    done: bool,
}

#[cfg(feature = "brotli")]
impl Brotli {
    fn new() -> Brotli {
        // `new_strict`: RFC 7932 windows only (at most 16 MiB). `new` would also accept
        // Large-Window Brotli, whose window a hostile stream could set to 1 GiB.
        let state = BrotliState::new_strict(
            StandardAlloc::default(),
            StandardAlloc::default(),
            StandardAlloc::default(),
        );
        Brotli { state, done: false }
    }

    fn run(&mut self, input: &[u8], out: &mut [u8]) -> io::Result<(usize, usize)> {
        if self.done {
            return match input.is_empty() {
                true => Ok((0, 0)),
                false => Err(trailing("br")),
            };
        }
        let (mut avail_in, mut read) = (input.len(), 0);
        let (mut avail_out, mut wrote, mut total) = (out.len(), 0, 0);
        let result = BrotliDecompressStream(
            &mut avail_in,
            &mut read,
            input,
            &mut avail_out,
            &mut wrote,
            out,
            &mut total,
            &mut self.state,
        );
        match result {
            BrotliResult::ResultSuccess => self.done = true,
            BrotliResult::NeedsMoreInput | BrotliResult::NeedsMoreOutput => {}
            BrotliResult::ResultFailure => {
                return Err(invalid(format!(
                    "corrupt br stream ({:?})",
                    self.state.error_code
                )));
            }
        }
        Ok((read, wrote))
    }
}

// ---------------------------------------------------------------- zstd (RFC 8878)

/// RFC 9659 §3: HTTP's `zstd` uses windows of at most 8 MiB, and a decoder may refuse
/// more; so a hostile frame cannot make us allocate more.
#[cfg(feature = "zstd")]
const ZSTD_WINDOW_LOG_MAX: u32 = 23;

#[cfg(feature = "zstd")]
struct Zstd {
    decoder: zstd::stream::raw::Decoder<'static>,
    /// The last frame ended and was flushed (one or more frames may follow each other).
    ended: bool,
}

#[cfg(feature = "zstd")]
impl Zstd {
    fn new() -> io::Result<Zstd> {
        use zstd::stream::raw::DParameter;
        let mut decoder = zstd::stream::raw::Decoder::new()?;
        decoder.set_parameter(DParameter::WindowLogMax(ZSTD_WINDOW_LOG_MAX))?;
        Ok(Zstd {
            decoder,
            ended: false,
        })
    }

    fn run(&mut self, input: &[u8], out: &mut [u8]) -> io::Result<(usize, usize)> {
        use zstd::stream::raw::Operation;
        let status = self
            .decoder
            .run_on_buffers(input, out)
            .map_err(|e| invalid(format!("corrupt zstd stream: {e}")))?;
        if status.bytes_read > 0 || status.bytes_written > 0 {
            // 0: a frame was completed and fully flushed.
            self.ended = status.remaining == 0;
        }
        Ok((status.bytes_read, status.bytes_written))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::Compression;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use std::io::Write;
    const OUT_STEP: usize = ContentDecoder::OUT_STEP;

    /// Decodes `wire` given in pieces of `step` bytes, checking the step bound on every call.
    fn decode_all(enc: &str, wire: &[u8], step: usize) -> io::Result<Vec<u8>> {
        let mut d = ContentDecoder::for_encoding(enc).expect("known coding");
        let mut out = Vec::new();
        for piece in wire.chunks(step.max(1)) {
            let mut rest = piece;
            loop {
                let (used, got) = d.decode(rest)?;
                assert!(got.len() <= OUT_STEP);
                rest = &rest[used..];
                if got.is_empty() {
                    assert!(rest.is_empty());
                    break;
                }
                out.extend_from_slice(got);
            }
        }
        loop {
            let got = d.finish()?;
            assert!(got.len() <= OUT_STEP);
            if got.is_empty() {
                return Ok(out);
            }
            out.extend_from_slice(got);
        }
    }

    fn sample() -> Vec<u8> {
        (0..50_000u32)
            .flat_map(|i| format!("line {i}\n").into_bytes())
            .collect()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn zlib(data: &[u8]) -> Vec<u8> {
        let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn raw_deflate(data: &[u8]) -> Vec<u8> {
        let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[cfg(feature = "brotli")]
    fn br(data: &[u8]) -> Vec<u8> {
        let mut e = brotli_encoder::CompressorWriter::new(Vec::new(), 4096, 5, 22);
        e.write_all(data).unwrap();
        e.into_inner()
    }

    #[cfg(feature = "zstd")]
    fn zst(data: &[u8]) -> Vec<u8> {
        zstd::bulk::compress(data, 3).unwrap()
    }

    /// What flate2's `write` decoders made of a whole body, as the decoder did before output
    /// steps: the behaviour to keep.
    fn flate2_oracle(enc: &str, wire: &[u8]) -> io::Result<Vec<u8>> {
        fn run<W: Write>(
            mut w: W,
            wire: &[u8],
            finish: impl FnOnce(W) -> io::Result<Vec<u8>>,
        ) -> io::Result<Vec<u8>> {
            w.write_all(wire)?;
            finish(w)
        }
        match enc {
            "gzip" => run(flate2::write::GzDecoder::new(Vec::new()), wire, |w| {
                w.finish()
            }),
            _ if wire.is_empty() => Ok(Vec::new()),
            _ if wire.len() < 2 => Err(io::ErrorKind::InvalidData.into()),
            _ => {
                let (a, b) = (wire[0], wire[1]);
                if a & 0x0f == 8 && (u16::from(a) << 8 | u16::from(b)) % 31 == 0 {
                    run(flate2::write::ZlibDecoder::new(Vec::new()), wire, |w| {
                        w.finish()
                    })
                } else {
                    run(flate2::write::DeflateDecoder::new(Vec::new()), wire, |w| {
                        w.finish()
                    })
                }
            }
        }
    }

    #[test]
    fn gzip_zlib_and_raw_deflate_decode_at_any_step() {
        let plain = sample();
        let (gz, zl, raw) = (gzip(&plain), zlib(&plain), raw_deflate(&plain));
        for step in [1, 7, 512, 100_000, 1 << 30] {
            assert_eq!(
                decode_all("gzip", &gz, step).unwrap(),
                plain,
                "gzip step {step}"
            );
            assert_eq!(decode_all("x-gzip", &gz, step).unwrap(), plain);
            assert_eq!(
                decode_all("deflate", &zl, step).unwrap(),
                plain,
                "zlib {step}"
            );
            assert_eq!(
                decode_all("deflate", &raw, step).unwrap(),
                plain,
                "raw {step}"
            );
        }
    }

    /// The gzip framing is ours now (flate2's inflater underneath): every header field, and
    /// every way to be wrong, must end as flate2's `GzDecoder` ended.
    #[test]
    fn gzip_and_deflate_behave_as_flate2_did() {
        let plain = b"hello, hello, hello, content decoding".repeat(40);
        let full = flate2::GzBuilder::new()
            .filename("index.html")
            .comment("a comment")
            .extra(vec![1, 2, 3, 4, 5])
            .mtime(1_700_000_000)
            .write(Vec::new(), Compression::default());
        let mut full = full;
        full.write_all(&plain).unwrap();
        let full = full.finish().unwrap();
        // FHCRC by hand: flag bit 1, then the low 16 bits of the header's CRC-32.
        let mut hcrc = gzip(&plain);
        hcrc[3] |= FHCRC;
        let mut crc = Crc::new();
        crc.update(&hcrc[..10]);
        let sum = (crc.sum() as u16).to_le_bytes();
        hcrc.splice(10..10, sum);
        let mut bad_hcrc = hcrc.clone();
        bad_hcrc[10] ^= 1;

        let gz = gzip(&plain);
        let mut cases: Vec<(&str, Vec<u8>)> = vec![
            ("gzip", gz.clone()),
            ("gzip", full.clone()),
            ("gzip", hcrc),
            ("gzip", bad_hcrc),
            ("gzip", Vec::new()),
            ("gzip", [gz.clone(), gz.clone()].concat()), // a second member
            ("gzip", [gz.clone(), b"x".to_vec()].concat()),
            ("deflate", Vec::new()),
            ("deflate", vec![0x78]),
            ("deflate", [zlib(&plain), b"x".to_vec()].concat()),
            ("deflate", [raw_deflate(&plain), b"x".to_vec()].concat()),
            ("gzip", b"this is not gzip at all".to_vec()),
        ];
        for (i, at) in [
            (4, 0x40),
            (8, 1),
            (gz.len() - 6, 1),
            (gz.len() - 2, 1),
            (20, 0x55),
        ] {
            let mut bad = gz.clone();
            bad[i] ^= at;
            cases.push(("gzip", bad));
        }
        for end in 0..full.len() {
            cases.push(("gzip", full[..end].to_vec()));
        }
        let zl = zlib(&plain);
        for end in 0..zl.len() {
            cases.push(("deflate", zl[..end].to_vec()));
        }
        for (enc, wire) in &cases {
            // flate2 calls an empty gzip body an error; an empty body is an empty body
            // to us (as to curl and browsers).
            let want = match wire.is_empty() {
                true => Some(Vec::new()),
                false => flate2_oracle(enc, wire).ok(),
            };
            for step in [1, 3, 1 << 20] {
                let got = decode_all(enc, wire, step).ok();
                assert_eq!(
                    got,
                    want,
                    "{enc} {} bytes, step {step}: {wire:?}",
                    wire.len()
                );
            }
        }
    }

    #[cfg(feature = "brotli")]
    #[test]
    fn br_decodes_at_any_step() {
        let plain = sample();
        let wire = br(&plain);
        for step in [1, 7, 512, 1 << 30] {
            assert_eq!(decode_all("br", &wire, step).unwrap(), plain, "step {step}");
        }
        assert_eq!(decode_all("BR", &br(b""), 1).unwrap(), b"");
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn zstd_decodes_at_any_step_and_frames_follow_each_other() {
        let plain = sample();
        let wire = zst(&plain);
        for step in [1, 7, 512, 1 << 30] {
            assert_eq!(
                decode_all("zstd", &wire, step).unwrap(),
                plain,
                "step {step}"
            );
        }
        let two = [zst(b"one "), zst(b"two")].concat();
        assert_eq!(decode_all("zstd", &two, 1).unwrap(), b"one two");
    }

    #[cfg(all(feature = "brotli", feature = "zstd"))]
    #[test]
    fn stacked_codings_decode_in_reverse_order() {
        let plain = sample();
        // "gzip, br": gzip applied first, then br.
        let gzip_br = br(&gzip(&plain));
        let br_zstd = zst(&br(&plain));
        let four = zst(&br(&zlib(&gzip(&plain))));
        for step in [1, 100, 1 << 30] {
            assert_eq!(decode_all("gzip, br", &gzip_br, step).unwrap(), plain);
            assert_eq!(decode_all("br,zstd", &br_zstd, step).unwrap(), plain);
            assert_eq!(
                decode_all("identity, br , identity, zstd", &br_zstd, step).unwrap(),
                plain
            );
            assert_eq!(
                decode_all("gzip, deflate, br, zstd", &four, step).unwrap(),
                plain
            );
        }
        let d = ContentDecoder::for_encoding("gzip, br").unwrap();
        assert_eq!(format!("{d:?}"), r#"ContentDecoder(["gzip", "br"])"#);
        // Corrupt or cut short inside an inner coding is still an error.
        let inner_cut = br(&gzip(&plain)[..1000]);
        let e = decode_all("gzip, br", &inner_cut, 64).unwrap_err();
        assert_eq!(e.to_string(), "truncated gzip stream");
        let e = decode_all("gzip, br", &gzip_br[..gzip_br.len() / 2], 64).unwrap_err();
        assert_eq!(e.to_string(), "truncated br stream");
    }

    #[test]
    fn which_lists_decode() {
        assert!(ContentDecoder::for_encoding(" GZIP ").is_some());
        assert!(ContentDecoder::for_encoding("identity").is_none());
        assert!(ContentDecoder::for_encoding("").is_none());
        assert!(ContentDecoder::for_encoding("foo").is_none());
        assert!(
            ContentDecoder::for_encoding("gzip, foo").is_none(),
            "all or nothing"
        );
        assert!(ContentDecoder::for_encoding("compress").is_none());
        let four = "gzip, identity, gzip, deflate, ,gzip";
        assert!(ContentDecoder::for_encoding(four).is_some());
        assert!(ContentDecoder::for_encoding("gzip, gzip, gzip, gzip, gzip").is_none());
        assert!(ContentDecoder::is_identity(" identity, ,"));
        assert!(!ContentDecoder::is_identity("identity, foo"));
        assert_eq!(
            ContentDecoder::for_encoding("br").is_some(),
            cfg!(feature = "brotli")
        );
        assert_eq!(
            ContentDecoder::for_encoding("zstd").is_some(),
            cfg!(feature = "zstd")
        );
        let accepted: Vec<&str> = ContentDecoder::ACCEPT_ENCODING.split(", ").collect();
        for coding in &accepted {
            assert!(ContentDecoder::for_encoding(coding).is_some(), "{coding}");
        }
    }

    #[test]
    fn corrupt_and_truncated_streams_are_errors_naming_the_coding() {
        let e = decode_all("gzip", b"this is not gzip at all", 4).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let gz = gzip(&sample());
        let e = decode_all("gzip", &gz[..gz.len() / 2], 512).unwrap_err();
        assert_eq!(e.to_string(), "truncated gzip stream");
        #[cfg(feature = "brotli")]
        {
            let wire = br(&sample());
            let e = decode_all("br", &wire[..wire.len() / 2], 512).unwrap_err();
            assert_eq!(e.to_string(), "truncated br stream");
            let mut bad = wire.clone();
            bad[wire.len() / 3] ^= 0xff;
            let e = decode_all("br", &bad, 512).unwrap_err();
            assert!(e.to_string().contains(" br stream"), "{e}");
            let e = decode_all("br", &[wire.clone(), b"x".to_vec()].concat(), 512).unwrap_err();
            assert_eq!(e.to_string(), "data after the end of the br stream");
            assert_eq!(
                decode_all("br", b"", 1).unwrap(),
                b"",
                "an empty body is an empty body"
            );
        }
        #[cfg(feature = "zstd")]
        {
            let wire = zst(&sample());
            let e = decode_all("zstd", &wire[..wire.len() / 2], 512).unwrap_err();
            assert_eq!(e.to_string(), "truncated zstd stream");
            let mut bad = wire.clone();
            bad[wire.len() / 3] ^= 0xff;
            let e = decode_all("zstd", &bad, 512).unwrap_err();
            assert!(e.to_string().contains(" zstd stream"), "{e}");
            let e = decode_all("zstd", b"not zstd", 512).unwrap_err();
            assert!(e.to_string().starts_with("corrupt zstd stream"), "{e}");
            assert_eq!(
                decode_all("zstd", b"", 1).unwrap(),
                b"",
                "an empty body is an empty body"
            );
        }
    }

    /// A bomb of `n` zero bytes in `enc`.
    fn bomb(enc: &str, n: usize) -> Vec<u8> {
        let zeros = vec![0u8; n];
        match enc {
            "gzip" => gzip(&zeros),
            #[cfg(feature = "brotli")]
            "br" => br(&zeros),
            #[cfg(feature = "zstd")]
            "zstd" => zstd::bulk::compress(&zeros, 19).unwrap(),
            _ => unreachable!(),
        }
    }

    #[test]
    fn every_call_returns_at_most_one_output_step() {
        let mut encs = vec!["gzip"];
        if cfg!(feature = "brotli") {
            encs.push("br");
        }
        if cfg!(feature = "zstd") {
            encs.push("zstd");
        }
        for enc in encs {
            let n = 64 << 20;
            let wire = bomb(enc, n);
            assert!(wire.len() < 100_000, "{enc}: {} bytes", wire.len());
            // The whole bomb at once: still one step at a time.
            let mut d = ContentDecoder::for_encoding(enc).unwrap();
            let (mut total, mut calls, mut rest) = (0, 0, &wire[..]);
            loop {
                let (used, out) = d.decode(rest).unwrap();
                assert!(
                    out.len() <= OUT_STEP,
                    "{enc}: {} bytes in one call",
                    out.len()
                );
                rest = &rest[used..];
                total += out.len();
                calls += 1;
                if out.is_empty() {
                    break;
                }
            }
            assert!(d.finish().unwrap().is_empty());
            assert_eq!(total, n, "{enc}");
            assert!(calls > n / OUT_STEP, "{enc}: {calls} calls");
        }
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn zstd_windows_over_8_mib_are_refused() {
        use zstd::stream::raw::{CParameter, Encoder, Operation};
        let data = sample();
        let frame = |log: u32| {
            let mut e = Encoder::new(3).unwrap();
            e.set_parameter(CParameter::WindowLog(log)).unwrap();
            let mut out = vec![0; data.len() + 1024];
            let st = e.run_on_buffers(&data, &mut out).unwrap();
            let mut n = st.bytes_written;
            let mut buf = zstd::stream::raw::OutBuffer::around(&mut out[n..]);
            while e.finish(&mut buf, true).unwrap() != 0 {}
            n += buf.pos();
            out.truncate(n);
            out
        };
        assert_eq!(decode_all("zstd", &frame(23), 4096).unwrap(), data);
        let e = decode_all("zstd", &frame(24), 4096).unwrap_err();
        assert!(e.to_string().starts_with("corrupt zstd stream"), "{e}");
    }

    #[cfg(feature = "brotli")]
    #[test]
    fn large_window_brotli_is_refused() {
        let params = brotli_encoder::enc::BrotliEncoderParams {
            large_window: true,
            lgwin: 26,
            quality: 5,
            ..Default::default()
        };
        let plain = sample();
        let mut wire = Vec::new();
        brotli_encoder::BrotliCompress(&mut &plain[..], &mut wire, &params).unwrap();
        let e = decode_all("br", &wire, 4096).unwrap_err();
        assert!(e.to_string().starts_with("corrupt br stream"), "{e}");
    }
}
