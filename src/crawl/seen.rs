//! The set of URLs a crawler has seen, kept as 64-bit hashes in one flat table, and its
//! pause/resume file. Owns the table, the hash and the file format; it never decides what
//! to crawl and never stores a URL's text.

use super::normalize::normalize;
use std::fmt;
use std::io::{self, Read, Write};
use url::Url;
use xxhash_rust::xxh3::{Xxh3, xxh3_64};

/// The first bytes of a [`SeenSet`] file.
const MAGIC: &[u8; 6] = b"PFSEEN";

/// The version of the file format [`SeenSet::write_to`] writes and
/// [`SeenSet::read_from`] reads.
pub const SEEN_FORMAT_VERSION: u16 = 1;

/// An empty slot. A URL whose hash is 0 is stored as 1.
const EMPTY: u64 = 0;

/// The smallest table, in slots.
const MIN_SLOTS: usize = 16;

/// Hashes read or written per batch.
const BATCH: usize = 1024;

/// URLs seen, as the 64-bit XXH3 hash of their [`normalize`]d form: an open-addressing
/// table of `u64` with linear probing, doubled when it would pass 80 % full.
///
/// **Memory**: 8 bytes per slot, so 10 to 20 bytes per URL depending on where the load
/// sits between doublings. Measured (the `bytes_per_url_at_a_million` test): 1 000 000
/// URLs take 2²¹ slots, 16 MiB, **16.8 bytes per URL**; 10 000 000 take 2²⁴ slots,
/// 128 MiB, 13.4 bytes per URL. While it doubles, the old and the new table are both held
/// for a moment (1.5 × the new size at the peak). [`SeenSet::with_capacity`] sizes it once.
///
/// **Collisions**: two different URLs with the same hash look like one, so a new URL can
/// be taken for seen (a false positive; never a false negative). With 64-bit hashes and
/// n = 10 million URLs stored, the chance that a given new URL is wrongly reported seen is
/// n / 2⁶⁴ ≈ 5.4 × 10⁻¹³, and the chance that any two of the 10 million collide at all is
/// about n² / 2⁶⁵ ≈ 2.7 × 10⁻⁶.
///
/// **Stability**: XXH3-64 (seed 0) is a specified algorithm with fixed test vectors, from
/// the `xxhash-rust` crate, so a file written by one build, Rust version or machine reads
/// back in another (std's `DefaultHasher` promises none of that).
///
/// # Examples
/// ```
/// use parafetch::crawl::SeenSet;
/// use url::Url;
/// let mut seen = SeenSet::new();
/// assert!(seen.insert(&Url::parse("https://example.com/a#top")?));
/// assert!(!seen.insert(&Url::parse("HTTPS://EXAMPLE.com:443/a")?)); // same page
/// let mut file = Vec::new();
/// seen.write_to(&mut file)?;
/// let back = SeenSet::read_from(&file[..])?;
/// assert!(back.contains(&Url::parse("https://example.com/a")?));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SeenSet {
    /// A power of two long; `EMPTY` or a hash.
    slots: Vec<u64>,
    len: usize,
}

impl SeenSet {
    /// An empty set.
    pub fn new() -> SeenSet {
        SeenSet::with_capacity(0)
    }

    /// An empty set that holds `n` URLs before it grows.
    pub fn with_capacity(n: usize) -> SeenSet {
        SeenSet {
            slots: vec![EMPTY; slots_for(n)],
            len: 0,
        }
    }

    /// Adds `url` (normalised first); true if it was not in the set.
    pub fn insert(&mut self, url: &Url) -> bool {
        self.insert_hash(hash_url(url))
    }

    /// Whether `url` (normalised first) is in the set, or collides with one that is.
    pub fn contains(&self, url: &Url) -> bool {
        self.contains_hash(hash_url(url))
    }

    fn contains_hash(&self, h: u64) -> bool {
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            match self.slots[i] {
                EMPTY => return false,
                x if x == h => return true,
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// How many URLs the set holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes the table takes on the heap (its slots; the set itself is two words more).
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<u64>()
    }

    /// Writes the set: a header (`PFSEEN`, the format version as a little-endian `u16`, the
    /// count as a little-endian `u64`), the hashes (little-endian `u64` each), then the
    /// XXH3-64 of those hash bytes, so a damaged file is told from a good one. About 8 bytes
    /// per URL.
    ///
    /// # Errors
    /// Whatever `w` returns.
    pub fn write_to(&self, mut w: impl Write) -> io::Result<()> {
        let mut head = Vec::with_capacity(16);
        head.extend_from_slice(MAGIC);
        head.extend_from_slice(&SEEN_FORMAT_VERSION.to_le_bytes());
        head.extend_from_slice(&(self.len as u64).to_le_bytes());
        w.write_all(&head)?;
        let mut sum = Xxh3::new();
        let mut buf = Vec::with_capacity(BATCH * 8);
        let hashes = self.slots.iter().filter(|&&h| h != EMPTY);
        for h in hashes {
            buf.extend_from_slice(&h.to_le_bytes());
            if buf.len() == BATCH * 8 {
                sum.update(&buf);
                w.write_all(&buf)?;
                buf.clear();
            }
        }
        sum.update(&buf);
        w.write_all(&buf)?;
        w.write_all(&sum.digest().to_le_bytes())?;
        w.flush()
    }

    /// Reads a set written by [`SeenSet::write_to`], consuming exactly what it wrote.
    ///
    /// # Errors
    /// - `UnexpectedEof`: the file ends early (truncated).
    /// - `InvalidData`: not a seen-set file, a format version this build does not read,
    ///   or damaged (the checksum does not match, or a hash is 0 or repeated).
    /// - Whatever else `r` returns.
    pub fn read_from(mut r: impl Read) -> io::Result<SeenSet> {
        let mut head = [0u8; 16];
        read_exact(&mut r, &mut head, "header")?;
        if &head[..6] != MAGIC {
            return Err(invalid("not a seen-set file (bad magic)".into()));
        }
        let version = u16::from_le_bytes([head[6], head[7]]);
        if version != SEEN_FORMAT_VERSION {
            return Err(invalid(format!(
                "seen-set file format version {version}; this build reads {SEEN_FORMAT_VERSION}"
            )));
        }
        let count = u64::from_le_bytes(head[8..16].try_into().expect("8 bytes"));
        // A damaged count must not allocate: start small (1 MiB of slots) and grow as
        // hashes really arrive, so a short file ends in `UnexpectedEof` having cost little.
        let mut set = SeenSet::with_capacity(count.min(1 << 16) as usize);
        let mut sum = Xxh3::new();
        let mut buf = vec![0u8; BATCH * 8];
        let mut left = count;
        while left > 0 {
            let n = left.min(BATCH as u64) as usize;
            let bytes = &mut buf[..n * 8];
            read_exact(&mut r, bytes, "hashes")?;
            sum.update(bytes);
            for h in bytes.chunks_exact(8) {
                let h = u64::from_le_bytes(h.try_into().expect("8 bytes"));
                if h == EMPTY || !set.insert_hash(h) {
                    return Err(invalid(
                        "damaged seen-set file (a zero or repeated hash)".into(),
                    ));
                }
            }
            left -= n as u64;
        }
        let mut tail = [0u8; 8];
        read_exact(&mut r, &mut tail, "checksum")?;
        if u64::from_le_bytes(tail) != sum.digest() {
            return Err(invalid("damaged seen-set file (checksum mismatch)".into()));
        }
        Ok(set)
    }

    /// Adds a hash (never `EMPTY`); true if new.
    fn insert_hash(&mut self, h: u64) -> bool {
        debug_assert_ne!(h, EMPTY);
        // Grow before passing 80 % full, so a probe always ends at an empty slot.
        if (self.len + 1) * 5 > self.slots.len() * 4 {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = h as usize & mask;
        loop {
            match self.slots[i] {
                EMPTY => {
                    self.slots[i] = h;
                    self.len += 1;
                    return true;
                }
                x if x == h => return false,
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn grow(&mut self) {
        let bigger = vec![EMPTY; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, bigger);
        let mask = self.slots.len() - 1;
        for h in old.into_iter().filter(|&h| h != EMPTY) {
            let mut i = h as usize & mask;
            while self.slots[i] != EMPTY {
                i = (i + 1) & mask;
            }
            self.slots[i] = h;
        }
    }
}

/// Equal when they hold the same hashes, however their tables are laid out.
impl PartialEq for SeenSet {
    fn eq(&self, other: &SeenSet) -> bool {
        self.len == other.len
            && self
                .slots
                .iter()
                .all(|&h| h == EMPTY || other.contains_hash(h))
    }
}

impl Eq for SeenSet {}

impl Default for SeenSet {
    fn default() -> SeenSet {
        SeenSet::new()
    }
}

impl fmt::Debug for SeenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SeenSet")
            .field("len", &self.len)
            .field("slots", &self.slots.len())
            .finish()
    }
}

/// Slots for `n` hashes at no more than 80 % load: a power of two, at least `MIN_SLOTS`.
fn slots_for(n: usize) -> usize {
    (n.saturating_mul(5) / 4 + 1)
        .checked_next_power_of_two()
        .unwrap_or(1 << (usize::BITS - 1))
        .max(MIN_SLOTS)
}

/// The stable hash of `url`'s normalised form (as written if it has none: not http(s)).
fn hash_url(url: &Url) -> u64 {
    let h = match normalize(url) {
        Some(n) => xxh3_64(n.as_str().as_bytes()),
        None => xxh3_64(url.as_str().as_bytes()),
    };
    if h == EMPTY { 1 } else { h }
}

fn read_exact(r: &mut impl Read, buf: &mut [u8], part: &str) -> io::Result<()> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("truncated seen-set file (ends in its {part})"),
        ),
        _ => e,
    })
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn insert_contains_len() {
        let mut s = SeenSet::new();
        assert!(s.is_empty() && !s.contains(&u("http://e.com/")));
        assert!(s.insert(&u("http://e.com/")));
        assert!(!s.insert(&u("http://e.com/")));
        assert!(
            !s.insert(&u("HTTP://E.COM:80/#x")),
            "normalised before hashing"
        );
        assert!(s.insert(&u("https://e.com/")));
        assert!(s.contains(&u("http://e.com")) && !s.contains(&u("http://e.com/a")));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn grows_past_many_doublings_and_keeps_everything() {
        let mut s = SeenSet::new();
        for i in 0..10_000 {
            assert!(s.insert(&u(&format!("http://e.com/{i}"))));
        }
        assert_eq!(s.len(), 10_000);
        assert_eq!(s.slots.len(), 16_384);
        for i in 0..10_000 {
            assert!(s.contains(&u(&format!("http://e.com/{i}"))));
            assert!(!s.insert(&u(&format!("http://e.com/{i}"))));
        }
        assert!(!s.contains(&u("http://e.com/10000")));
    }

    #[test]
    fn with_capacity_does_not_grow() {
        let mut s = SeenSet::with_capacity(1000);
        let slots = s.slots.len();
        for i in 0..1000 {
            s.insert_hash(i + 1);
        }
        assert_eq!((s.slots.len(), slots), (2048, 2048));
        assert_eq!(slots_for(0), MIN_SLOTS);
        assert_eq!(slots_for(12), 16);
        assert_eq!(slots_for(13), 32);
    }

    #[test]
    fn the_hash_is_pinned() {
        // XXH3-64's published value for empty input: the algorithm, not this build.
        assert_eq!(xxh3_64(b""), 0x2D06_8005_38D3_94C2);
        // And for a URL, so a changed hash or normalisation breaks old files loudly here.
        assert_eq!(
            hash_url(&u("HTTP://Example.com/a#x")),
            xxh3_64(b"http://example.com/a")
        );
        // The reference C implementation gives the same (checked with python-xxhash).
        assert_eq!(hash_url(&u("http://example.com/a")), 0x4A89_B0D7_5B58_10FC);
    }

    #[test]
    fn round_trip_through_a_file() {
        let mut s = SeenSet::new();
        for i in 0..3000 {
            s.insert(&u(&format!("https://e.com/p?{i}")));
        }
        let mut file = Vec::new();
        s.write_to(&mut file).unwrap();
        assert_eq!(file.len(), 16 + 3000 * 8 + 8);
        let mut r = &file[..];
        let back = SeenSet::read_from(&mut r).unwrap();
        assert!(r.is_empty(), "reads exactly what was written");
        assert_eq!(back.len(), 3000);
        for i in 0..3000 {
            assert!(back.contains(&u(&format!("https://e.com/p?{i}"))));
        }
        assert!(!back.contains(&u("https://e.com/p?3000")));
        assert_eq!(back, s);
        let mut other = s.clone();
        other.insert(&u("https://e.com/p?3000"));
        assert_ne!(back, other);
        let mut empty = Vec::new();
        SeenSet::new().write_to(&mut empty).unwrap();
        assert!(SeenSet::read_from(&empty[..]).unwrap().is_empty());
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_panic() {
        let mut s = SeenSet::new();
        for i in 0..100 {
            s.insert(&u(&format!("https://e.com/{i}")));
        }
        let mut file = Vec::new();
        s.write_to(&mut file).unwrap();
        let kind = |bytes: &[u8]| SeenSet::read_from(bytes).unwrap_err().kind();
        for cut in [0, 5, 15, 16, 17, 400, file.len() - 1] {
            assert_eq!(
                kind(&file[..cut]),
                io::ErrorKind::UnexpectedEof,
                "cut at {cut}"
            );
        }
        let mut bad = file.clone();
        bad[0] = b'X';
        assert_eq!(kind(&bad), io::ErrorKind::InvalidData);
        let mut bad = file.clone();
        bad[6] = 2;
        let e = SeenSet::read_from(&bad[..]).unwrap_err();
        assert!(e.to_string().contains("version 2"), "{e}");
        for at in [20, 16 + 99 * 8, file.len() - 3] {
            let mut bad = file.clone();
            bad[at] ^= 1;
            assert_eq!(kind(&bad), io::ErrorKind::InvalidData, "bit flip at {at}");
        }
        // A huge count allocates nothing much: the file just ends.
        let mut bad = file.clone();
        bad[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(kind(&bad), io::ErrorKind::UnexpectedEof);
        // A repeated hash, even with a checksum to match.
        let mut dup = Vec::new();
        dup.extend_from_slice(&file[..8]);
        dup.extend_from_slice(&2u64.to_le_bytes());
        dup.extend_from_slice(&[7u8; 16]);
        dup.extend_from_slice(&xxh3_64(&[7u8; 16]).to_le_bytes());
        assert_eq!(kind(&dup), io::ErrorKind::InvalidData);
    }

    #[test]
    fn bytes_per_url_at_a_million() {
        let mut s = SeenSet::new();
        for i in 0..1_000_000u64 {
            s.insert_hash(xxh3_64(&i.to_le_bytes()) | 1);
        }
        assert_eq!(s.len(), 1_000_000);
        let per_url = s.heap_bytes() as f64 / s.len() as f64;
        // 2^21 slots of 8 bytes: 16.78 bytes per URL (see the type's docs).
        assert!((16.7..16.8).contains(&per_url), "{per_url} bytes per URL");
        let ten_million_slots = slots_for(10_000_000);
        assert_eq!(ten_million_slots, 1 << 24);
        let per_url_10m = (ten_million_slots * 8) as f64 / 1e7;
        assert!((13.4..13.5).contains(&per_url_10m), "{per_url_10m}");
    }
}
