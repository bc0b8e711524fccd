//! The layout of a `mio::Token`, one for every source the loop waits on: connections, DNS
//! query sockets and the waker.
//!
//! ```text
//!  bit 63   62    61..56   55..32        31..0
//!  [ 0 ] [ dns ] [ lane ] [ generation ] [ slab key ]     connection or DNS query
//!  all ones                                              the waker
//! ```
//! The generation makes an event for a closed connection (or finished query) miss the
//! entry that reused its slab slot; the lane tells apart the racing connection attempts of
//! one slot (Happy Eyeballs), so a loser's queued event never reaches the winner.

use mio::Token;

#[cfg(not(target_pointer_width = "64"))]
compile_error!("parafetch packs a slab key and a generation into a mio Token: 64-bit only");

/// The waker's token; no connection or query can have it (bit 63 is never set for them).
pub(crate) const WAKER: Token = Token(usize::MAX);
/// Generations wrap at 24 bits (a stale event would need 16 million reuses of one slot).
pub(crate) const GENERATION_MASK: u32 = (1 << 24) - 1;
/// Lanes wrap at 6 bits: at most 64 racing attempts are told apart per connection.
pub(crate) const LANES: u8 = 64;
const DNS_BIT: usize = 1 << 62;
const KEY_MASK: usize = 0xFFFF_FFFF;

/// Whom an event is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    Waker,
    Conn {
        key: usize,
        generation: u32,
        lane: u8,
    },
    Dns {
        key: usize,
        generation: u32,
    },
}

/// The next generation after `g`.
pub(crate) fn next_generation(g: u32) -> u32 {
    g.wrapping_add(1) & GENERATION_MASK
}

pub(crate) fn conn(key: usize, generation: u32, lane: u8) -> Token {
    debug_assert!(key <= KEY_MASK && lane < LANES);
    Token(
        (key & KEY_MASK)
            | ((generation & GENERATION_MASK) as usize) << 32
            | (usize::from(lane) & 0x3f) << 56,
    )
}

pub(crate) fn dns(key: usize, generation: u32) -> Token {
    debug_assert!(key <= KEY_MASK);
    Token(DNS_BIT | (key & KEY_MASK) | ((generation & GENERATION_MASK) as usize) << 32)
}

pub(crate) fn decode(t: Token) -> Source {
    if t == WAKER {
        return Source::Waker;
    }
    let key = t.0 & KEY_MASK;
    let generation = (t.0 >> 32) as u32 & GENERATION_MASK;
    if t.0 & DNS_BIT != 0 {
        Source::Dns { key, generation }
    } else {
        Source::Conn {
            key,
            generation,
            lane: (t.0 >> 56) as u8 & 0x3f,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for key in [0, 1, 4095, KEY_MASK] {
            for generation in [0, 1, GENERATION_MASK] {
                for lane in [0, 1, LANES - 1] {
                    let t = conn(key, generation, lane);
                    assert_ne!(t, WAKER);
                    let want = Source::Conn {
                        key,
                        generation,
                        lane,
                    };
                    assert_eq!(decode(t), want);
                }
                let t = dns(key, generation);
                assert_ne!(t, WAKER);
                assert_eq!(decode(t), Source::Dns { key, generation });
            }
        }
        assert_eq!(decode(WAKER), Source::Waker);
    }

    #[test]
    fn generations_wrap_within_their_bits() {
        assert_eq!(next_generation(GENERATION_MASK), 0);
        assert_eq!(next_generation(7), 8);
    }
}
