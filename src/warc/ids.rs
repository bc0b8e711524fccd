//! WARC-Record-ID values: `<urn:uuid:…>` with a random (version 4) UUID (RFC 9562 §5.4).
//!
//! Owns a small generator: SplitMix64, seeded once per writer from std's `RandomState`
//! (whose keys come from the operating system's randomness), the clock, the process id and
//! a process-wide counter. Record IDs must be unique, not secret, so this needs no CSPRNG
//! and no uuid crate. It must not be used for anything that must be unpredictable.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of record IDs.
#[derive(Debug)]
pub(crate) struct RecordIds {
    state: u64,
}

impl RecordIds {
    /// A generator seeded so that two writers (in one process or in two) start apart.
    pub(crate) fn new() -> RecordIds {
        static WRITERS: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let writer = WRITERS.fetch_add(1, Ordering::Relaxed);
        let seed = RandomState::new().hash_one((nanos, std::process::id(), writer));
        RecordIds { state: seed }
    }

    /// A generator that starts from `seed`: the same IDs every time (tests).
    #[cfg(test)]
    pub(crate) fn seeded(seed: u64) -> RecordIds {
        RecordIds { state: seed }
    }

    /// SplitMix64 (Steele, Lea and Flood 2014): a full-period 64-bit sequence whose outputs
    /// pass BigCrush.
    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The next record ID, e.g. `<urn:uuid:3f1c9a2e-5b7d-4c0e-9a61-0d2f8e4b7c35>`.
    pub(crate) fn next_id(&mut self) -> String {
        let high = self.next_u64().to_be_bytes();
        let low = self.next_u64().to_be_bytes();
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&high);
        bytes[8..].copy_from_slice(&low);
        record_id(bytes)
    }
}

/// `random` as a version 4 UUID URN in angle brackets: the version nibble set to 4 and the
/// variant bits to `10` (RFC 9562 §4.1, §4.2), the other 122 bits kept.
fn record_id(mut random: [u8; 16]) -> String {
    random[6] = (random[6] & 0x0f) | 0x40;
    random[8] = (random[8] & 0x3f) | 0x80;
    let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "<urn:uuid:{}-{}-{}-{}-{}>",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// `<urn:uuid:xxxxxxxx-xxxx-4xxx-[89ab]xxx-xxxxxxxxxxxx>`, lowercase hex.
    fn is_v4_record_id(id: &str) -> bool {
        let Some(uuid) = id
            .strip_prefix("<urn:uuid:")
            .and_then(|s| s.strip_suffix('>'))
        else {
            return false;
        };
        let groups: Vec<&str> = uuid.split('-').collect();
        let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        lengths == [8, 4, 4, 4, 12]
            && uuid
                .bytes()
                .all(|b| b == b'-' || b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && groups[2].starts_with('4')
            && groups[3].starts_with(['8', '9', 'a', 'b'])
    }

    #[test]
    fn version_and_variant_bits() {
        assert_eq!(
            record_id([0xff; 16]),
            "<urn:uuid:ffffffff-ffff-4fff-bfff-ffffffffffff>"
        );
        assert_eq!(
            record_id([0; 16]),
            "<urn:uuid:00000000-0000-4000-8000-000000000000>"
        );
        let id = record_id(*b"\x01\x23\x45\x67\x89\xab\xcd\xef\x01\x23\x45\x67\x89\xab\xcd\xef");
        assert_eq!(id, "<urn:uuid:01234567-89ab-4def-8123-456789abcdef>");
    }

    #[test]
    fn ids_are_well_formed_and_distinct() {
        let mut ids = RecordIds::new();
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let id = ids.next_id();
            assert!(is_v4_record_id(&id), "{id}");
            assert!(seen.insert(id));
        }
        // A second writer, started at once, does not repeat the first one's IDs.
        let mut other = RecordIds::new();
        assert!((0..1000).all(|_| !seen.contains(&other.next_id())));
    }

    #[test]
    fn a_seed_gives_the_same_ids() {
        let (mut a, mut b) = (RecordIds::seeded(7), RecordIds::seeded(7));
        assert_eq!(a.next_id(), b.next_id());
        assert_ne!(a.next_id(), RecordIds::seeded(8).next_id());
    }
}
