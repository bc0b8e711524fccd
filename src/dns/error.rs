//! The DNS codec's error type.
//!
//! Owns only the list of ways a DNS message can be refused (on the way in) or a name can be
//! refused (on the way out); it must not carry I/O errors, timeouts or which server answered
//! (that is the resolver client's business).

use std::fmt;

/// Why the codec refused a name or a reply.
///
/// Small and `Copy` so the resolver can store it and report it again. `encode_query` returns
/// only the caller's errors ([`DnsError::InvalidName`], [`DnsError::LabelTooLong`],
/// [`DnsError::NameTooLong`]); `parse_response` returns the peer's. Among those,
/// [`DnsError::is_mismatch`] picks out the ones that mean "this is not a reply to our query"
/// (a late reply to an earlier query, or an off-path forgery), which a UDP client should drop
/// while it keeps waiting for the real reply (RFC 5452 §9.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DnsError {
    /// Peer: the message ends inside the header, a name, a record or its data, or a record's
    /// data is shorter than its type requires.
    Short,
    /// Peer: a compression pointer points into the header, past the end of the message, or not
    /// strictly before the place its name began (forward and self pointers, and any pointer
    /// that could start a loop).
    BadPointer,
    /// Peer: a name follows more than [`MAX_POINTERS`](super::message::MAX_POINTERS)
    /// compression pointers.
    PointerLoop,
    /// Caller: a label of the name to query is longer than 63 bytes (RFC 1035 §2.3.4).
    LabelTooLong,
    /// Caller or peer: a name is longer than 255 bytes on the wire (253 characters written
    /// out without the trailing dot).
    NameTooLong,
    /// Peer: a label uses one of the reserved label types (first byte `0b01xxxxxx` or
    /// `0b10xxxxxx`, RFC 6891 §5).
    BadLabel,
    /// Peer (or a forger): the reply's ID is not the query's.
    IdMismatch,
    /// Peer: the QR bit is clear, so the message is a query, not a reply.
    NotAResponse,
    /// Peer (or a forger): the reply does not carry exactly one question equal to ours (name,
    /// type and class IN).
    QuestionMismatch,
    /// Peer: the reply's opcode is not 0 (standard query).
    BadOpcode,
    /// Peer: a section claims more than [`MAX_RECORDS`](super::message::MAX_RECORDS) records.
    TooManyRecords,
    /// Peer: the CNAME chain from the query name comes back to a name it already visited.
    CnameLoop,
    /// Peer: the CNAME chain from the query name is longer than
    /// [`MAX_CNAME_CHAIN`](super::message::MAX_CNAME_CHAIN).
    CnameChainTooLong,
    /// Peer: an A record's data is not 4 bytes, an AAAA record's not 16 bytes, or an SOA
    /// record's data does not hold its two names and five numbers.
    BadRecord,
    /// Caller: the name to query is empty, has an empty label (`a..b`, `.a`), or contains a
    /// byte outside printable ASCII, a space or a backslash.
    InvalidName,
}

impl DnsError {
    /// A short lowercase message, e.g. `"dns message too short"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            DnsError::Short => "dns message too short",
            DnsError::BadPointer => "bad dns compression pointer",
            DnsError::PointerLoop => "too many dns compression pointers in one name",
            DnsError::LabelTooLong => "dns label longer than 63 bytes",
            DnsError::NameTooLong => "dns name longer than 255 bytes",
            DnsError::BadLabel => "reserved dns label type",
            DnsError::IdMismatch => "dns reply id does not match the query",
            DnsError::NotAResponse => "dns message is not a reply",
            DnsError::QuestionMismatch => "dns reply question does not match the query",
            DnsError::BadOpcode => "dns reply opcode is not a standard query",
            DnsError::TooManyRecords => "too many records in a dns reply section",
            DnsError::CnameLoop => "cname loop in dns reply",
            DnsError::CnameChainTooLong => "cname chain too long in dns reply",
            DnsError::BadRecord => "malformed dns record data",
            DnsError::InvalidName => "invalid host name for dns",
        }
    }

    /// Whether the message is simply not a reply to this query (wrong ID, wrong question, or
    /// a query rather than a reply). A UDP client should drop such a datagram and keep
    /// waiting; any other error means the server sent a broken reply.
    pub fn is_mismatch(&self) -> bool {
        matches!(
            self,
            DnsError::IdMismatch | DnsError::QuestionMismatch | DnsError::NotAResponse
        )
    }
}

impl fmt::Display for DnsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for DnsError {}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [DnsError; 15] = [
        DnsError::Short,
        DnsError::BadPointer,
        DnsError::PointerLoop,
        DnsError::LabelTooLong,
        DnsError::NameTooLong,
        DnsError::BadLabel,
        DnsError::IdMismatch,
        DnsError::NotAResponse,
        DnsError::QuestionMismatch,
        DnsError::BadOpcode,
        DnsError::TooManyRecords,
        DnsError::CnameLoop,
        DnsError::CnameChainTooLong,
        DnsError::BadRecord,
        DnsError::InvalidName,
    ];

    #[test]
    fn messages_are_lowercase_distinct_and_displayed() {
        let mut seen = std::collections::HashSet::new();
        for e in ALL {
            let msg = e.to_string();
            assert_eq!(msg, e.as_str());
            assert_eq!(msg, msg.to_lowercase(), "{e:?}");
            assert!(seen.insert(msg), "duplicate message for {e:?}");
        }
    }

    #[test]
    fn mismatches_are_the_not_for_us_ones() {
        let m: Vec<_> = ALL.into_iter().filter(DnsError::is_mismatch).collect();
        assert_eq!(
            m,
            [
                DnsError::IdMismatch,
                DnsError::NotAResponse,
                DnsError::QuestionMismatch
            ]
        );
    }
}
