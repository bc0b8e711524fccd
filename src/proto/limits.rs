//! The size limits of one exchange.
//!
//! Owns the numbers that bound the memory and work a response can cost, and their defaults.
//! It must not enforce them: the head reader and the chunked decoder do.

/// Size limits that bound the memory and work one response can cost.
///
/// Start from [`Limits::default`] and change what you need with the setters; the fields can
/// be read directly.
///
/// # Examples
/// ```
/// use parafetch::proto::Limits;
/// let limits = Limits::default().max_head_bytes(8 * 1024).max_headers(50);
/// assert_eq!((limits.max_head_bytes, limits.max_headers), (8 * 1024, 50));
/// assert_eq!(limits.max_trailer_bytes, Limits::DEFAULT_MAX_TRAILER_BYTES);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest response head, status line to the empty line included; each 1xx head has
    /// its own budget. Default [`Limits::DEFAULT_MAX_HEAD_BYTES`].
    pub max_head_bytes: usize,
    /// Most header fields in one response head. Default [`Limits::DEFAULT_MAX_HEADERS`].
    pub max_headers: usize,
    /// Longest chunk size line, extensions and line ending included. Default
    /// [`Limits::DEFAULT_MAX_CHUNK_LINE_BYTES`].
    pub max_chunk_line_bytes: usize,
    /// Longest trailer section (its field lines, line endings included). Default
    /// [`Limits::DEFAULT_MAX_TRAILER_BYTES`].
    pub max_trailer_bytes: usize,
}

impl Limits {
    /// Default [`Limits::max_head_bytes`], 64 KiB: far above real heads (a few hundred
    /// bytes to a few KiB with cookies), the same order as common servers' own limits.
    pub const DEFAULT_MAX_HEAD_BYTES: usize = 64 * 1024;
    /// Default [`Limits::max_headers`], 100: what httparse users commonly allow; this many
    /// fields are parsed without a heap allocation.
    pub const DEFAULT_MAX_HEADERS: usize = 100;
    /// Default [`Limits::max_chunk_line_bytes`], 4096: room for generous chunk extensions,
    /// which nobody sends in practice.
    pub const DEFAULT_MAX_CHUNK_LINE_BYTES: usize = 4096;
    /// Default [`Limits::max_trailer_bytes`], 16 KiB: trailers are skipped, so this only
    /// bounds the work they cost.
    pub const DEFAULT_MAX_TRAILER_BYTES: usize = 16 * 1024;

    /// Sets [`Limits::max_head_bytes`].
    #[must_use]
    pub const fn max_head_bytes(mut self, bytes: usize) -> Self {
        self.max_head_bytes = bytes;
        self
    }

    /// Sets [`Limits::max_headers`].
    #[must_use]
    pub const fn max_headers(mut self, fields: usize) -> Self {
        self.max_headers = fields;
        self
    }

    /// Sets [`Limits::max_chunk_line_bytes`].
    #[must_use]
    pub const fn max_chunk_line_bytes(mut self, bytes: usize) -> Self {
        self.max_chunk_line_bytes = bytes;
        self
    }

    /// Sets [`Limits::max_trailer_bytes`].
    #[must_use]
    pub const fn max_trailer_bytes(mut self, bytes: usize) -> Self {
        self.max_trailer_bytes = bytes;
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head_bytes: Self::DEFAULT_MAX_HEAD_BYTES,
            max_headers: Self::DEFAULT_MAX_HEADERS,
            max_chunk_line_bytes: Self::DEFAULT_MAX_CHUNK_LINE_BYTES,
            max_trailer_bytes: Self::DEFAULT_MAX_TRAILER_BYTES,
        }
    }
}
