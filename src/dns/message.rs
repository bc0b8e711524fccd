//! DNS messages for a stub resolver: encode one address query, parse its reply.
//!
//! Owns the message format (RFC 1035 §4.1, EDNS0 from RFC 6891, negative answers from
//! RFC 2308) and the checks that keep a reply from lying about names we did not ask for. It
//! must not do I/O, read a clock or pick IDs: the resolver client owns sockets, timers,
//! randomness and the cache, and hands this module bytes.

use std::net::IpAddr;

use super::name::{self, HEADER_LEN};

pub use super::error::DnsError;
pub use super::name::{MAX_LABEL_LEN, MAX_NAME_TEXT_LEN, MAX_NAME_WIRE_LEN, MAX_POINTERS};
pub use super::tcp::{TcpFrameReader, frame_tcp};

/// The most records a reply may claim in any one section. A 64 KiB message could claim
/// about 6000; real address replies carry a few dozen. Past this the reply is refused rather
/// than walked.
pub const MAX_RECORDS: usize = 256;

/// The most CNAME records followed from the query name to the name that owns the addresses.
pub const MAX_CNAME_CHAIN: usize = 8;

/// The UDP payload size our queries advertise in their EDNS0 OPT record: the value DNS Flag
/// Day 2020 settled on, small enough to avoid IP fragmentation on common paths. A reply that
/// does not fit comes back with the TC bit set, and the client retries over TCP. A UDP receive
/// buffer of this size holds any reply a well-behaved server sends.
pub const EDNS_UDP_PAYLOAD: u16 = 1232;

const TYPE_A: u16 = 1;
const TYPE_CNAME: u16 = 5;
const TYPE_SOA: u16 = 6;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;

const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const OPCODE_SHIFT: u16 = 11;
const OPCODE_MASK: u16 = 0xf;
const RCODE_MASK: u16 = 0xf;

/// The address record type to ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QType {
    /// An IPv4 address (type 1).
    A,
    /// An IPv6 address (type 28, RFC 3596).
    Aaaa,
}

impl QType {
    /// The type's number on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            QType::A => TYPE_A,
            QType::Aaaa => TYPE_AAAA,
        }
    }
}

/// A reply's response code (RFC 1035 §4.1.1, extended by RFC 6891 §6.1.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rcode {
    /// 0: no error; with no addresses this is a NODATA answer.
    NoError,
    /// 1: the server could not interpret the query.
    FormErr,
    /// 2: the server failed; another server may do better.
    ServFail,
    /// 3: the name does not exist (authoritative NXDOMAIN).
    NxDomain,
    /// 4: the server does not support this kind of query.
    NotImp,
    /// 5: the server refuses to answer (policy).
    Refused,
    /// Any other code, including extended codes from the OPT record; codes above 255 (none
    /// are defined for replies to plain queries) read as `Other(255)`.
    Other(u8),
}

impl Rcode {
    /// The code for a number from the wire.
    pub fn from_u16(code: u16) -> Rcode {
        match code {
            0 => Rcode::NoError,
            1 => Rcode::FormErr,
            2 => Rcode::ServFail,
            3 => Rcode::NxDomain,
            4 => Rcode::NotImp,
            5 => Rcode::Refused,
            other => Rcode::Other(u8::try_from(other).unwrap_or(u8::MAX)),
        }
    }

    /// The code's number.
    pub fn to_u16(self) -> u16 {
        match self {
            Rcode::NoError => 0,
            Rcode::FormErr => 1,
            Rcode::ServFail => 2,
            Rcode::NxDomain => 3,
            Rcode::NotImp => 4,
            Rcode::Refused => 5,
            Rcode::Other(code) => u16::from(code),
        }
    }
}

/// What a reply says about the query's name, after the checks of [`parse_response`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The reply's response code. Only [`Rcode::NoError`] and [`Rcode::NxDomain`] replies
    /// have their records used; for any other code the rest of the answer is empty.
    pub rcode: Rcode,
    /// The TC bit: the reply did not fit in the UDP datagram; ask again over TCP. The records
    /// of a truncated reply are not read, so the rest of the answer is empty.
    pub truncated: bool,
    /// The addresses (A for [`QType::A`], AAAA for [`QType::Aaaa`], class IN) owned by
    /// [`Answer::canonical_name`], in reply order, without duplicates. Empty for NXDOMAIN.
    pub addrs: Vec<IpAddr>,
    /// The least TTL, in seconds, of the records used (the CNAMEs followed and the addresses);
    /// 0 when none were used. TTLs with the top bit set count as 0 (RFC 2181 §8).
    pub ttl: u32,
    /// For NXDOMAIN and NODATA (no error, no addresses): how long the answer may be cached,
    /// `min(SOA TTL, SOA MINIMUM)` of the first SOA record in the authority section whose
    /// owner is the final name or one of its ancestors (RFC 2308 §5). `None` when there is
    /// no such SOA (then RFC 2308 says not to cache the negative answer) and for positive
    /// answers.
    pub negative_ttl: Option<u32>,
    /// The name the addresses belong to: the end of the CNAME chain, or the query name when
    /// there was none. Lowercase, without the trailing dot; bytes that are not printable
    /// ASCII (and `.` or `\` inside a label) are written `\DDD`.
    pub canonical_name: String,
}

/// Appends a standard recursive query (RD set, opcode 0, one question of class IN) for `name`
/// to `out`, with an EDNS0 OPT record advertising [`EDNS_UDP_PAYLOAD`] bytes. The same bytes
/// go over UDP as they are, or over TCP after [`frame_tcp`].
///
/// `name` may be absolute or not; one trailing dot is ignored. Its labels must be 1 to 63
/// bytes of printable ASCII other than `.` and `\` (so `_` and other punctuation are allowed;
/// internationalized names must already be punycode), and the whole name at most 253
/// characters (255 bytes on the wire). The case of `name` is kept.
///
/// # Errors
/// [`DnsError::InvalidName`], [`DnsError::LabelTooLong`] or [`DnsError::NameTooLong`] when
/// `name` breaks those rules; `out` is then unchanged.
///
/// # Examples
/// ```
/// use parafetch::dns::message::{QType, encode_query};
///
/// let mut query = Vec::new();
/// encode_query(0xbeef, "example.com.", QType::A, &mut query).unwrap();
/// assert_eq!(&query[..4], b"\xbe\xef\x01\x00"); // ID, then RD
/// assert_eq!(&query[12..29], b"\x07example\x03com\x00\x00\x01\x00\x01");
/// ```
pub fn encode_query(id: u16, name: &str, qtype: QType, out: &mut Vec<u8>) -> Result<(), DnsError> {
    name::validate(name)?;
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&FLAG_RD.to_be_bytes());
    // QDCOUNT 1, ANCOUNT 0, NSCOUNT 0, ARCOUNT 1 (the OPT record).
    out.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 1]);
    name::to_wire(name, out)?;
    out.extend_from_slice(&qtype.to_u16().to_be_bytes());
    out.extend_from_slice(&CLASS_IN.to_be_bytes());
    // OPT (RFC 6891 §6.1.2): root owner, TYPE 41, CLASS = UDP payload size, TTL = extended
    // RCODE 0, version 0, no DO bit; no options.
    out.push(0);
    out.extend_from_slice(&TYPE_OPT.to_be_bytes());
    out.extend_from_slice(&EDNS_UDP_PAYLOAD.to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    Ok(())
}

/// One resource record as it sits in the message: its owner read out, its data left in place.
struct Record {
    owner: Vec<u8>,
    rtype: u16,
    class: u16,
    /// As on the wire; for OPT this holds the extended RCODE and flags, not a TTL.
    raw_ttl: u32,
    data: usize,
    len: usize,
}

impl Record {
    /// The TTL, with values that have the top bit set read as 0 (RFC 2181 §8).
    fn ttl(&self) -> u32 {
        if self.raw_ttl > i32::MAX as u32 {
            0
        } else {
            self.raw_ttl
        }
    }

    fn is_in(&self, rtype: u16, owner: &[u8]) -> bool {
        self.class == CLASS_IN && self.rtype == rtype && self.owner == owner
    }
}

fn read_u16(msg: &[u8], pos: usize) -> Result<u16, DnsError> {
    match msg.get(pos..pos + 2) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err(DnsError::Short),
    }
}

fn read_u32(msg: &[u8], pos: usize) -> Result<u32, DnsError> {
    match msg.get(pos..pos + 4) {
        Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d])),
        _ => Err(DnsError::Short),
    }
}

/// Reads `count` records starting at `*pos`, advancing `*pos` past them.
fn read_section(msg: &[u8], pos: &mut usize, count: u16) -> Result<Vec<Record>, DnsError> {
    let mut records = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let mut owner = Vec::new();
        let at = name::read(msg, *pos, &mut owner)?;
        let rtype = read_u16(msg, at)?;
        let class = read_u16(msg, at + 2)?;
        let raw_ttl = read_u32(msg, at + 4)?;
        let len = usize::from(read_u16(msg, at + 8)?);
        let data = at + 10;
        if data + len > msg.len() {
            return Err(DnsError::Short);
        }
        records.push(Record {
            owner,
            rtype,
            class,
            raw_ttl,
            data,
            len,
        });
        *pos = data + len;
    }
    Ok(records)
}

/// Reads a name that must lie wholly inside a record's data (a CNAME target, an SOA name).
/// Returns the offset past it.
fn read_name_in(msg: &[u8], at: usize, rec: &Record, out: &mut Vec<u8>) -> Result<usize, DnsError> {
    // Bound the read by the record so a name cannot run on into the next record.
    let within = msg.get(..rec.data + rec.len).ok_or(DnsError::Short)?;
    let next = name::read(within, at, out).map_err(|e| match e {
        // Pointers back before the record are fine; running off its end is its own fault.
        DnsError::Short => DnsError::BadRecord,
        other => other,
    })?;
    Ok(next)
}

/// Parses the reply `msg` to the query `(id, name, qtype)` that [`encode_query`] built.
///
/// Checks, in order: the header is complete; the ID is `id`; QR is set; the opcode is 0;
/// there is exactly one question and it is `name` (ASCII case and one trailing dot ignored)
/// with type `qtype` and class IN; no section claims more than [`MAX_RECORDS`] records.
/// A reply with TC set stops there ([`Answer::truncated`]). Otherwise every record is read
/// and bounds-checked (the RCODE is completed from an OPT record, RFC 6891 §6.1.3). A reply
/// whose RCODE is neither NOERROR nor NXDOMAIN stops there, and is returned even when its
/// records are malformed, since only its code is used. Otherwise:
///
/// 1. From the query name, CNAME records (class IN) in the answer section are followed to the
///    final name: at most [`MAX_CNAME_CHAIN`] of them, never back to a name already visited.
///    When one name has several CNAMEs the first wins.
/// 2. Only address records of the asked type owned by the final name are collected. Records
///    for any other name are ignored, so a server cannot slip in addresses for names nobody
///    asked about (cache poisoning).
/// 3. For NXDOMAIN and NODATA, the negative TTL comes from an SOA in the authority section
///    whose owner is at or above the final name.
///
/// Compression pointers must point backwards (see [`MAX_POINTERS`]). Bytes after the last
/// record are ignored. This function never panics, whatever `msg` holds.
///
/// # Errors
/// [`DnsError::is_mismatch`] errors when the message is not a reply to this query (a UDP
/// client should keep waiting); [`DnsError::InvalidName`] and the other name errors of
/// [`encode_query`] when `name` itself is not valid; any other [`DnsError`] when the reply is
/// malformed.
///
/// # Examples
/// ```
/// use parafetch::dns::message::{QType, Rcode, encode_query, parse_response};
///
/// let mut reply = Vec::new();
/// encode_query(7, "example.com", QType::A, &mut reply).unwrap();
/// reply.truncate(reply.len() - 11); // drop the OPT record
/// reply[2] |= 0x80; // QR: a reply
/// reply[7] = 1; // ANCOUNT 1
/// reply[11] = 0; // ARCOUNT 0
/// // example.com (a pointer to the question's name) A IN, TTL 300, 93.184.215.14
/// reply.extend_from_slice(b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x01\x2c\x00\x04\x5d\xb8\xd7\x0e");
///
/// let answer = parse_response(&reply, 7, "example.com", QType::A).unwrap();
/// assert_eq!(answer.rcode, Rcode::NoError);
/// assert_eq!(answer.addrs, ["93.184.215.14".parse::<std::net::IpAddr>().unwrap()]);
/// assert_eq!(answer.ttl, 300);
/// ```
pub fn parse_response(msg: &[u8], id: u16, name: &str, qtype: QType) -> Result<Answer, DnsError> {
    let qname = name::to_flat(name)?;
    if msg.len() < HEADER_LEN {
        return Err(DnsError::Short);
    }
    // Cannot fail past the length check; `?` keeps the no-panic promise obvious.
    let flags = read_u16(msg, 2)?;
    if read_u16(msg, 0)? != id {
        return Err(DnsError::IdMismatch);
    }
    if flags & FLAG_QR == 0 {
        return Err(DnsError::NotAResponse);
    }
    if (flags >> OPCODE_SHIFT) & OPCODE_MASK != 0 {
        return Err(DnsError::BadOpcode);
    }
    let counts = [
        read_u16(msg, 4)?,
        read_u16(msg, 6)?,
        read_u16(msg, 8)?,
        read_u16(msg, 10)?,
    ];
    if counts[0] != 1 {
        return Err(DnsError::QuestionMismatch);
    }
    if counts[1..].iter().any(|&n| usize::from(n) > MAX_RECORDS) {
        return Err(DnsError::TooManyRecords);
    }

    let mut scratch = Vec::new();
    let mut pos = name::read(msg, HEADER_LEN, &mut scratch)?;
    let question = (read_u16(msg, pos)?, read_u16(msg, pos + 2)?);
    pos += 4;
    if scratch != qname || question != (qtype.to_u16(), CLASS_IN) {
        return Err(DnsError::QuestionMismatch);
    }

    let mut answer = Answer {
        rcode: Rcode::from_u16(flags & RCODE_MASK),
        truncated: flags & FLAG_TC != 0,
        addrs: Vec::new(),
        ttl: 0,
        negative_ttl: None,
        canonical_name: name::to_text(&qname),
    };
    if answer.truncated {
        return Ok(answer);
    }

    let sections = read_section(msg, &mut pos, counts[1]).and_then(|answers| {
        let authority = read_section(msg, &mut pos, counts[2])?;
        let additional = read_section(msg, &mut pos, counts[3])?;
        Ok((answers, authority, additional))
    });
    let header_ok = matches!(answer.rcode, Rcode::NoError | Rcode::NxDomain);
    let (answers, authority, additional) = match sections {
        Ok(sections) => sections,
        // An error reply is an answer even if its records are broken: the code is all we use.
        Err(_) if !header_ok => return Ok(answer),
        Err(e) => return Err(e),
    };
    if let Some(opt) = additional.iter().find(|r| r.rtype == TYPE_OPT) {
        // RFC 6891 §6.1.3: the OPT TTL's top byte holds the upper 8 bits of a 12-bit RCODE.
        let high = u16::try_from(opt.raw_ttl >> 24).unwrap_or(0);
        answer.rcode = Rcode::from_u16(high << 4 | (flags & RCODE_MASK));
    }
    if !matches!(answer.rcode, Rcode::NoError | Rcode::NxDomain) {
        return Ok(answer);
    }

    let mut min_ttl: Option<u32> = None;
    let mut visited = vec![qname];
    loop {
        let current = visited.last().map(Vec::as_slice).unwrap_or_default();
        let Some(cname) = answers.iter().find(|r| r.is_in(TYPE_CNAME, current)) else {
            break;
        };
        if visited.len() > MAX_CNAME_CHAIN {
            return Err(DnsError::CnameChainTooLong);
        }
        let mut target = Vec::new();
        read_name_in(msg, cname.data, cname, &mut target)?;
        if visited.contains(&target) {
            return Err(DnsError::CnameLoop);
        }
        min_ttl = Some(min_ttl.map_or(cname.ttl(), |t| t.min(cname.ttl())));
        visited.push(target);
    }
    let last = visited.pop().unwrap_or_default();

    if answer.rcode == Rcode::NoError {
        for rec in answers.iter().filter(|r| r.is_in(qtype.to_u16(), &last)) {
            let data = msg.get(rec.data..rec.data + rec.len).unwrap_or_default();
            let addr = match qtype {
                QType::A => <[u8; 4]>::try_from(data).map(IpAddr::from),
                QType::Aaaa => <[u8; 16]>::try_from(data).map(IpAddr::from),
            }
            .map_err(|_| DnsError::BadRecord)?;
            if !answer.addrs.contains(&addr) {
                answer.addrs.push(addr);
            }
            min_ttl = Some(min_ttl.map_or(rec.ttl(), |t| t.min(rec.ttl())));
        }
    }
    answer.ttl = min_ttl.unwrap_or(0);

    if answer.addrs.is_empty() {
        let soa = authority.iter().find(|r| {
            r.class == CLASS_IN && r.rtype == TYPE_SOA && name::is_at_or_below(&last, &r.owner)
        });
        if let Some(soa) = soa {
            // SOA RDATA (RFC 1035 §3.3.13): MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE
            // MINIMUM, 32 bits each.
            let at = read_name_in(msg, soa.data, soa, &mut scratch)?;
            let at = read_name_in(msg, at, soa, &mut scratch)?;
            if at + 20 > soa.data + soa.len {
                return Err(DnsError::BadRecord);
            }
            let minimum = read_u32(msg, at + 16)?;
            answer.negative_ttl = Some(soa.ttl().min(minimum));
        }
    }
    answer.canonical_name = name::to_text(&last);
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: u16 = 0x4242;
    const QNAME: &str = "www.example.com";
    /// A compression pointer to the question's name, which always starts at offset 12.
    const AT_QNAME: &[u8] = b"\xc0\x0c";

    fn wire(name: &str) -> Vec<u8> {
        let mut out = Vec::new();
        name::to_wire(name, &mut out).unwrap();
        out
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// A reply header (QR set, RD and RA set, plus `flags`) and the question for `qname`.
    /// `counts` are ANCOUNT, NSCOUNT, ARCOUNT.
    fn reply(flags: u16, qname: &str, qtype: QType, counts: [u16; 3]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&ID.to_be_bytes());
        m.extend_from_slice(&(FLAG_QR | FLAG_RD | 0x0080 | flags).to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        for n in counts {
            m.extend_from_slice(&n.to_be_bytes());
        }
        m.extend_from_slice(&wire(qname));
        m.extend_from_slice(&qtype.to_u16().to_be_bytes());
        m.extend_from_slice(&CLASS_IN.to_be_bytes());
        m
    }

    fn rr_class(m: &mut Vec<u8>, owner: &[u8], rtype: u16, class: u16, ttl: u32, data: &[u8]) {
        m.extend_from_slice(owner);
        m.extend_from_slice(&rtype.to_be_bytes());
        m.extend_from_slice(&class.to_be_bytes());
        m.extend_from_slice(&ttl.to_be_bytes());
        m.extend_from_slice(&u16::try_from(data.len()).unwrap().to_be_bytes());
        m.extend_from_slice(data);
    }

    fn rr(m: &mut Vec<u8>, owner: &[u8], rtype: u16, ttl: u32, data: &[u8]) {
        rr_class(m, owner, rtype, CLASS_IN, ttl, data);
    }

    fn a(m: &mut Vec<u8>, owner: &[u8], ttl: u32, addr: [u8; 4]) {
        rr(m, owner, TYPE_A, ttl, &addr);
    }

    fn cname(m: &mut Vec<u8>, owner: &[u8], ttl: u32, target: &str) {
        rr(m, owner, TYPE_CNAME, ttl, &wire(target));
    }

    fn soa(m: &mut Vec<u8>, zone: &str, ttl: u32, minimum: u32) {
        let mut data = wire(&format!("ns1.{zone}"));
        data.extend_from_slice(&wire(&format!("hostmaster.{zone}")));
        for n in [2024010101, 7200, 3600, 1209600, minimum] {
            data.extend_from_slice(&u32::to_be_bytes(n));
        }
        rr(m, &wire(zone), TYPE_SOA, ttl, &data);
    }

    fn parse(m: &[u8]) -> Result<Answer, DnsError> {
        parse_response(m, ID, QNAME, QType::A)
    }

    /// A NOERROR reply with a CNAME, two A records, an SOA and an OPT: every section used.
    fn full_reply() -> Vec<u8> {
        let mut m = reply(0, QNAME, QType::A, [3, 1, 1]);
        cname(&mut m, AT_QNAME, 300, "edge.example.net");
        let edge = 12 + wire(QNAME).len() + 4 + 12; // the CNAME's RDATA
        let at_edge = (0xc000 | edge as u16).to_be_bytes();
        a(&mut m, &at_edge, 60, [192, 0, 2, 1]);
        a(&mut m, &at_edge, 120, [192, 0, 2, 2]);
        soa(&mut m, "example.net", 3600, 600);
        rr_class(&mut m, b"\x00", TYPE_OPT, 1232, 0, b"");
        m
    }

    #[test]
    fn encode_query_writes_header_question_and_opt() {
        let mut q = b"prefix".to_vec();
        encode_query(0xabcd, "www.Example.com", QType::Aaaa, &mut q).unwrap();
        let mut want = b"prefix".to_vec();
        want.extend_from_slice(b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x01");
        want.extend_from_slice(b"\x03www\x07Example\x03com\x00\x00\x1c\x00\x01");
        want.extend_from_slice(b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00");
        assert_eq!(q, want);
    }

    #[test]
    fn encode_query_refuses_bad_names_and_leaves_out_alone() {
        let mut q = Vec::new();
        for (name, err) in [
            ("", DnsError::InvalidName),
            ("a..b", DnsError::InvalidName),
            ("has space.example", DnsError::InvalidName),
            (&"x".repeat(64), DnsError::LabelTooLong),
            (&[&*"y".repeat(63); 5].join("."), DnsError::NameTooLong),
        ] {
            assert_eq!(encode_query(1, name, QType::A, &mut q), Err(err), "{name}");
            assert!(q.is_empty());
        }
        // Lenient: underscores, a trailing dot, and a single label are fine.
        encode_query(1, "_dmarc.example.", QType::A, &mut q).unwrap();
        encode_query(1, "localhost", QType::A, &mut q).unwrap();
    }

    #[test]
    fn round_trip_a_and_aaaa() {
        for (qtype, addr) in [
            (QType::A, ip("192.0.2.7")),
            (QType::Aaaa, ip("2001:db8::7")),
        ] {
            let mut m = Vec::new();
            encode_query(ID, QNAME, qtype, &mut m).unwrap();
            m.truncate(m.len() - 11); // drop the OPT record
            m[2] |= 0x80;
            m[7] = 1;
            m[11] = 0;
            let data = match addr {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            };
            rr(&mut m, AT_QNAME, qtype.to_u16(), 42, &data);
            let answer = parse_response(&m, ID, QNAME, qtype).unwrap();
            assert_eq!(
                answer,
                Answer {
                    rcode: Rcode::NoError,
                    truncated: false,
                    addrs: vec![addr],
                    ttl: 42,
                    negative_ttl: None,
                    canonical_name: QNAME.to_string(),
                }
            );
        }
    }

    #[test]
    fn addresses_are_deduplicated_in_order_with_the_least_ttl() {
        let mut m = reply(0, QNAME, QType::A, [4, 0, 0]);
        a(&mut m, AT_QNAME, 300, [192, 0, 2, 2]);
        a(&mut m, AT_QNAME, 100, [192, 0, 2, 1]);
        a(&mut m, AT_QNAME, 200, [192, 0, 2, 2]);
        a(&mut m, &wire("WWW.EXAMPLE.COM"), 400, [192, 0, 2, 3]);
        let answer = parse(&m).unwrap();
        assert_eq!(
            answer.addrs,
            [ip("192.0.2.2"), ip("192.0.2.1"), ip("192.0.2.3")]
        );
        assert_eq!(answer.ttl, 100);
    }

    #[test]
    fn only_the_asked_type_and_class_in_are_collected() {
        let mut m = reply(0, QNAME, QType::A, [3, 0, 0]);
        rr(&mut m, AT_QNAME, TYPE_AAAA, 5, &[0; 16]);
        rr_class(&mut m, AT_QNAME, TYPE_A, 3, 5, &[10, 0, 0, 1]); // class CH
        a(&mut m, AT_QNAME, 50, [192, 0, 2, 1]);
        let answer = parse(&m).unwrap();
        assert_eq!(answer.addrs, [ip("192.0.2.1")]);
        assert_eq!(answer.ttl, 50);
    }

    #[test]
    fn records_for_other_names_are_ignored() {
        let mut m = reply(0, QNAME, QType::A, [3, 1, 1]);
        a(&mut m, &wire("bank.example"), 9999, [6, 6, 6, 6]);
        cname(&mut m, &wire("example.com"), 9999, "evil.example");
        a(&mut m, AT_QNAME, 30, [192, 0, 2, 1]);
        a(&mut m, &wire("www.example.com.evil"), 9999, [6, 6, 6, 6]);
        a(&mut m, &wire("ns.example.com"), 9999, [6, 6, 6, 7]);
        let answer = parse(&m).unwrap();
        assert_eq!(answer.addrs, [ip("192.0.2.1")]);
        assert_eq!(answer.ttl, 30);
        assert_eq!(answer.canonical_name, QNAME);
    }

    #[test]
    fn a_cname_chain_is_followed_to_the_final_name() {
        // An A record for the query name itself must not be used once it has a CNAME, nor
        // one for the intermediate name; a CNAME may come after the records it leads to.
        let mut m = reply(0, QNAME, QType::A, [5, 0, 0]);
        a(&mut m, AT_QNAME, 1, [6, 6, 6, 6]);
        cname(&mut m, AT_QNAME, 300, "cdn.example.org");
        a(&mut m, &wire("edge.example.net"), 60, [192, 0, 2, 1]);
        cname(&mut m, &wire("CDN.example.org"), 200, "edge.example.net.");
        a(&mut m, &wire("edge.example.net"), 90, [192, 0, 2, 2]);
        let answer = parse(&m).unwrap();
        assert_eq!(answer.addrs, [ip("192.0.2.1"), ip("192.0.2.2")]);
        assert_eq!(answer.canonical_name, "edge.example.net");
        assert_eq!(answer.ttl, 60);
    }

    #[test]
    fn cname_ttls_count_towards_the_minimum() {
        let mut m = reply(0, QNAME, QType::A, [2, 0, 0]);
        cname(&mut m, AT_QNAME, 7, "target.example");
        a(&mut m, &wire("target.example"), 60, [192, 0, 2, 1]);
        assert_eq!(parse(&m).unwrap().ttl, 7);
    }

    #[test]
    fn compressed_names_in_a_full_reply() {
        let answer = parse(&full_reply()).unwrap();
        assert_eq!(
            answer,
            Answer {
                rcode: Rcode::NoError,
                truncated: false,
                addrs: vec![ip("192.0.2.1"), ip("192.0.2.2")],
                ttl: 60,
                negative_ttl: None,
                canonical_name: "edge.example.net".to_string(),
            }
        );
    }

    #[test]
    fn cname_loops_are_refused() {
        let mut m = reply(0, QNAME, QType::A, [1, 0, 0]);
        cname(&mut m, AT_QNAME, 60, "WWW.example.com.");
        assert_eq!(parse(&m), Err(DnsError::CnameLoop));

        let mut m = reply(0, QNAME, QType::A, [3, 0, 0]);
        cname(&mut m, AT_QNAME, 60, "a.example");
        cname(&mut m, &wire("a.example"), 60, "b.example");
        cname(&mut m, &wire("b.example"), 60, "a.example");
        assert_eq!(parse(&m), Err(DnsError::CnameLoop));
    }

    fn chain(len: usize) -> Vec<u8> {
        let mut m = reply(0, QNAME, QType::A, [len as u16 + 1, 0, 0]);
        let mut owner = wire(QNAME);
        for i in 0..len {
            let target = format!("hop{i}.example");
            cname(&mut m, &owner, 10, &target);
            owner = wire(&target);
        }
        a(&mut m, &owner, 10, [192, 0, 2, 1]);
        m
    }

    #[test]
    fn cname_chains_are_capped() {
        let answer = parse(&chain(MAX_CNAME_CHAIN)).unwrap();
        assert_eq!(answer.addrs, [ip("192.0.2.1")]);
        assert_eq!(
            answer.canonical_name,
            format!("hop{}.example", MAX_CNAME_CHAIN - 1)
        );
        assert_eq!(
            parse(&chain(MAX_CNAME_CHAIN + 1)),
            Err(DnsError::CnameChainTooLong)
        );
    }

    #[test]
    fn bad_compression_pointers_are_refused() {
        // Forward: the answer's owner points at its own RDATA.
        let mut m = reply(0, QNAME, QType::A, [1, 0, 0]);
        let here = m.len() as u16;
        a(
            &mut m,
            &(0xc000 | (here + 12)).to_be_bytes(),
            60,
            [192, 0, 2, 1],
        );
        assert_eq!(parse(&m), Err(DnsError::BadPointer));
        // Self.
        let mut m = reply(0, QNAME, QType::A, [1, 0, 0]);
        let here = m.len() as u16;
        a(&mut m, &(0xc000 | here).to_be_bytes(), 60, [192, 0, 2, 1]);
        assert_eq!(parse(&m), Err(DnsError::BadPointer));
        // Out of bounds.
        let mut m = reply(0, QNAME, QType::A, [1, 0, 0]);
        a(&mut m, b"\xff\xff", 60, [192, 0, 2, 1]);
        assert_eq!(parse(&m), Err(DnsError::BadPointer));
        // Into the header.
        let mut m = reply(0, QNAME, QType::A, [1, 0, 0]);
        a(&mut m, b"\xc0\x02", 60, [192, 0, 2, 1]);
        assert_eq!(parse(&m), Err(DnsError::BadPointer));
        // A loop: an owner "x" + pointer to itself.
        let mut m = reply(0, QNAME, QType::A, [1, 0, 0]);
        let here = m.len() as u16;
        let mut owner = b"\x01x".to_vec();
        owner.extend_from_slice(&(0xc000 | here).to_be_bytes());
        a(&mut m, &owner, 60, [192, 0, 2, 1]);
        assert_eq!(parse(&m), Err(DnsError::BadPointer));
        // A CNAME target whose name runs past its RDATA into the next record.
        let mut m = reply(0, QNAME, QType::A, [2, 0, 0]);
        rr(&mut m, AT_QNAME, TYPE_CNAME, 60, b"\x04edge");
        a(&mut m, b"\x00", 60, [192, 0, 2, 1]);
        assert_eq!(parse(&m), Err(DnsError::BadRecord));
    }

    #[test]
    fn a_reply_cut_anywhere_is_short_and_never_panics() {
        for full in [full_reply(), chain(3)] {
            assert!(parse(&full).is_ok());
            for cut in 0..full.len() {
                assert_eq!(parse(&full[..cut]), Err(DnsError::Short), "cut at {cut}");
            }
        }
    }

    #[test]
    fn every_byte_changed_never_panics() {
        let full = full_reply();
        for i in 0..full.len() {
            for v in [0x00, 0x01, 0x3f, 0x40, 0x7f, 0x80, 0xc0, 0xc1, 0xfe, 0xff] {
                let mut m = full.clone();
                m[i] = v;
                let _ = parse(&m);
                let _ = parse_response(&m, ID, QNAME, QType::Aaaa);
                super::super::fuzz_parse(&m);
            }
        }
    }

    #[test]
    fn replies_to_other_queries_are_mismatches() {
        let good = reply(0, QNAME, QType::A, [0, 0, 0]);
        assert!(parse(&good).is_ok());
        assert_eq!(
            parse_response(&good, ID + 1, QNAME, QType::A),
            Err(DnsError::IdMismatch)
        );
        assert_eq!(
            parse_response(&good, ID, "example.com", QType::A),
            Err(DnsError::QuestionMismatch)
        );
        assert_eq!(
            parse_response(&good, ID, "www.example.com.evil", QType::A),
            Err(DnsError::QuestionMismatch)
        );
        assert_eq!(
            parse_response(&good, ID, QNAME, QType::Aaaa),
            Err(DnsError::QuestionMismatch)
        );
        // Case and one trailing dot do not matter.
        assert!(parse_response(&good, ID, "WWW.EXAMPLE.COM.", QType::A).is_ok());
        let upper = reply(0, "Www.ExAmple.COM", QType::A, [0, 0, 0]);
        assert!(parse(&upper).is_ok());

        let mut m = good.clone();
        m[2] &= 0x7f; // QR clear: a query
        assert_eq!(parse(&m), Err(DnsError::NotAResponse));
        for qdcount in [0u8, 2] {
            let mut m = good.clone();
            m[5] = qdcount;
            assert_eq!(parse(&m), Err(DnsError::QuestionMismatch));
        }
        let mut m = good.clone();
        let class = m.len() - 1;
        m[class] = 3; // class CH
        assert_eq!(parse(&m), Err(DnsError::QuestionMismatch));
        let mut m = good.clone();
        m[2] |= 2 << 3; // opcode 2 (status)
        assert_eq!(parse(&m), Err(DnsError::BadOpcode));
    }

    #[test]
    fn parse_checks_the_callers_name_too() {
        let good = reply(0, QNAME, QType::A, [0, 0, 0]);
        assert_eq!(
            parse_response(&good, ID, "a..b", QType::A),
            Err(DnsError::InvalidName)
        );
    }

    #[test]
    fn nxdomain_takes_its_negative_ttl_from_the_soa() {
        for (ttl, minimum, want) in [(3600, 300, 300), (60, 300, 60)] {
            let mut m = reply(3, QNAME, QType::A, [0, 1, 0]);
            soa(&mut m, "example.com", ttl, minimum);
            let answer = parse(&m).unwrap();
            assert_eq!(answer.rcode, Rcode::NxDomain);
            assert!(answer.addrs.is_empty());
            assert_eq!(answer.negative_ttl, Some(want));
            assert_eq!(answer.ttl, 0);
        }
        // Without an SOA there is no negative TTL.
        let m = reply(3, QNAME, QType::A, [0, 0, 0]);
        assert_eq!(parse(&m).unwrap().negative_ttl, None);
    }

    #[test]
    fn nxdomain_after_a_cname_is_about_the_target() {
        let mut m = reply(3, QNAME, QType::A, [2, 1, 0]);
        cname(&mut m, AT_QNAME, 120, "gone.example.net");
        a(&mut m, &wire("gone.example.net"), 60, [6, 6, 6, 6]); // contradicts NXDOMAIN: unused
        soa(&mut m, "example.net", 900, 30);
        let answer = parse(&m).unwrap();
        assert!(answer.addrs.is_empty());
        assert_eq!(answer.canonical_name, "gone.example.net");
        assert_eq!(answer.negative_ttl, Some(30));
        assert_eq!(answer.ttl, 120);
    }

    #[test]
    fn nodata_with_and_without_an_soa() {
        let mut m = reply(0, QNAME, QType::A, [1, 1, 0]);
        rr(&mut m, AT_QNAME, TYPE_AAAA, 60, &[0; 16]); // the other type: not for us
        soa(&mut m, "com", 900, 120);
        let answer = parse(&m).unwrap();
        assert_eq!((answer.rcode, answer.addrs.len()), (Rcode::NoError, 0));
        assert_eq!(answer.negative_ttl, Some(120));

        let m = reply(0, QNAME, QType::A, [0, 0, 0]);
        let answer = parse(&m).unwrap();
        assert_eq!(
            (answer.addrs.len(), answer.negative_ttl, answer.ttl),
            (0, None, 0)
        );
    }

    #[test]
    fn an_soa_for_an_unrelated_zone_is_ignored() {
        let mut m = reply(3, QNAME, QType::A, [0, 2, 0]);
        soa(&mut m, "other.example", 9999, 9999);
        soa(&mut m, "ample.com", 9999, 9999);
        assert_eq!(parse(&m).unwrap().negative_ttl, None);
        let mut m = reply(3, QNAME, QType::A, [0, 2, 0]);
        soa(&mut m, "other.example", 9999, 9999);
        soa(&mut m, "example.com", 50, 9999);
        assert_eq!(parse(&m).unwrap().negative_ttl, Some(50));
    }

    #[test]
    fn a_positive_answer_has_no_negative_ttl() {
        let mut m = reply(0, QNAME, QType::A, [1, 1, 0]);
        a(&mut m, AT_QNAME, 60, [192, 0, 2, 1]);
        soa(&mut m, "example.com", 60, 60);
        assert_eq!(parse(&m).unwrap().negative_ttl, None);
    }

    #[test]
    fn other_rcodes_are_answers_even_with_broken_records() {
        for (code, rcode) in [
            (1, Rcode::FormErr),
            (2, Rcode::ServFail),
            (4, Rcode::NotImp),
            (5, Rcode::Refused),
            (9, Rcode::Other(9)),
        ] {
            // The counts claim records that are not there: only the code is used.
            let m = reply(code, QNAME, QType::A, [5, 5, 5]);
            let answer = parse(&m).unwrap();
            assert_eq!(answer.rcode, rcode);
            assert_eq!(
                (answer.addrs.len(), answer.ttl, answer.negative_ttl),
                (0, 0, None)
            );
            assert_eq!(answer.canonical_name, QNAME);
        }
    }

    #[test]
    fn the_tc_bit_stops_after_the_question() {
        let mut m = reply(FLAG_TC, QNAME, QType::A, [3, 0, 0]);
        a(&mut m, AT_QNAME, 60, [192, 0, 2, 1]);
        m.extend_from_slice(b"\xc0\x0c\x00"); // cut mid-record, as a truncating server may
        let answer = parse(&m).unwrap();
        assert!(answer.truncated);
        assert!(answer.addrs.is_empty());
        // But the question is still checked.
        assert_eq!(
            parse_response(&m, ID, "example.org", QType::A),
            Err(DnsError::QuestionMismatch)
        );
    }

    #[test]
    fn an_extended_rcode_comes_from_the_opt_record() {
        let mut m = reply(0, QNAME, QType::A, [0, 0, 1]);
        rr_class(&mut m, b"\x00", TYPE_OPT, 1232, 0x0100_0000, b""); // BADVERS = 16
        assert_eq!(parse(&m).unwrap().rcode, Rcode::Other(16));
        let mut m = reply(3, QNAME, QType::A, [0, 0, 1]);
        rr_class(&mut m, b"\x00", TYPE_OPT, 1232, 0, b"");
        assert_eq!(parse(&m).unwrap().rcode, Rcode::NxDomain);
    }

    #[test]
    fn ttls_with_the_top_bit_set_read_as_zero() {
        let mut m = reply(0, QNAME, QType::A, [2, 0, 0]);
        a(&mut m, AT_QNAME, 0x8000_0000, [192, 0, 2, 1]);
        a(&mut m, AT_QNAME, 100, [192, 0, 2, 2]);
        assert_eq!(parse(&m).unwrap().ttl, 0);
        let mut m = reply(0, QNAME, QType::A, [1, 0, 0]);
        a(&mut m, AT_QNAME, i32::MAX as u32, [192, 0, 2, 1]);
        assert_eq!(parse(&m).unwrap().ttl, i32::MAX as u32);
    }

    #[test]
    fn too_many_records_are_refused_before_reading_them() {
        for counts in [[257, 0, 0], [0, 257, 0], [0, 0, 257], [u16::MAX, 0, 0]] {
            let m = reply(0, QNAME, QType::A, counts);
            assert_eq!(parse(&m), Err(DnsError::TooManyRecords), "{counts:?}");
        }
        let mut m = reply(0, QNAME, QType::A, [MAX_RECORDS as u16, 0, 0]);
        for i in 0..MAX_RECORDS {
            a(&mut m, AT_QNAME, 60, [10, 0, (i / 256) as u8, i as u8]);
        }
        assert_eq!(parse(&m).unwrap().addrs.len(), MAX_RECORDS);
    }

    #[test]
    fn malformed_record_data_is_refused() {
        let mut m = reply(0, QNAME, QType::A, [1, 0, 0]);
        rr(&mut m, AT_QNAME, TYPE_A, 60, &[192, 0, 2, 1, 0]);
        assert_eq!(parse(&m), Err(DnsError::BadRecord));
        let mut m = reply(0, QNAME, QType::Aaaa, [1, 0, 0]);
        rr(&mut m, AT_QNAME, TYPE_AAAA, 60, &[0; 4]);
        assert_eq!(
            parse_response(&m, ID, QNAME, QType::Aaaa),
            Err(DnsError::BadRecord)
        );
        // An SOA without room for its five numbers.
        let mut m = reply(3, QNAME, QType::A, [0, 1, 0]);
        let mut data = wire("ns.example.com");
        data.extend_from_slice(&wire("h.example.com"));
        data.extend_from_slice(&[0; 19]);
        rr(&mut m, &wire("example.com"), TYPE_SOA, 60, &data);
        assert_eq!(parse(&m), Err(DnsError::BadRecord));
    }

    #[test]
    fn bytes_after_the_last_record_are_ignored() {
        let mut m = full_reply();
        m.extend_from_slice(b"\x00\x00\xff padding");
        assert_eq!(parse(&m).unwrap().addrs.len(), 2);
    }

    #[test]
    fn rcode_numbers_round_trip() {
        for code in 0..=300u16 {
            let rcode = Rcode::from_u16(code);
            assert_eq!(rcode.to_u16(), code.min(255), "{code}");
        }
        assert_eq!(Rcode::from_u16(3), Rcode::NxDomain);
        assert_eq!(Rcode::from_u16(4095), Rcode::Other(255));
    }
}
