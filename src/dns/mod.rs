//! Sans-IO DNS for a stub resolver: query encoding and reply parsing, TCP framing,
//! `/etc/resolv.conf` and `/etc/hosts`.
//!
//! This module owns the formats and the rules that decide what a reply means; the resolver
//! client in the driver owns the UDP and TCP sockets on the mio loop, timers, query IDs,
//! retries, the cache and the coalescing of identical lookups. Nothing here may touch a
//! socket, read a clock, pick a random number or block, except [`ResolvConf::system`] and
//! [`Hosts::system`], which read one small file each and are meant to be called once.
//!
//! The client's side of the contract:
//!
//! ```text
//!   ResolvConf::system(), Hosts::system()          once, when the resolver is built
//!   Hosts::lookup(host)                            answered locally? done
//!   ResolvConf::candidates(host) -> names          try each in order, for A and/or AAAA
//!     encode_query(random id, name, qtype, &mut buf)
//!     UDP: send buf                      TCP: frame_tcp(&buf, &mut out); send out
//!     UDP: recv datagram                 TCP: TcpFrameReader::push(bytes) -> message
//!     parse_response(message, id, name, qtype)
//!        Err(e) if e.is_mismatch()   -> drop it, keep waiting (UDP)
//!        Err(_)                      -> this server is broken: next server
//!        Ok(a) if a.truncated        -> same query again over TCP
//!        Ok(a) NoError, addrs        -> done (cache for a.ttl)
//!        Ok(a) NxDomain / NODATA     -> next candidate (cache for a.negative_ttl)
//!        Ok(a) ServFail, Refused ... -> next server
//! ```
//!
//! # Examples
//! ```
//! use parafetch::dns::conf::ResolvConf;
//! use parafetch::dns::message::{QType, encode_query};
//!
//! let conf = ResolvConf::parse("nameserver 192.0.2.53\nsearch corp.example\n");
//! let mut query = Vec::new();
//! for name in conf.candidates("intranet") {
//!     query.clear();
//!     encode_query(0x1234, &name, QType::Aaaa, &mut query).unwrap();
//!     // send `query` to conf.nameservers[0] ...
//! }
//! assert_eq!(conf.candidates("intranet"), ["intranet.corp.example", "intranet"]);
//! ```

pub mod conf;
mod error;
pub mod hosts;
pub mod message;
mod name;
mod tcp;

pub use conf::ResolvConf;
pub use hosts::Hosts;
pub use message::{
    Answer, DnsError, QType, Rcode, TcpFrameReader, encode_query, frame_tcp, parse_response,
};

/// Runs the parsers on arbitrary bytes, for the fuzz target: [`parse_response`] as a reply to
/// a fixed question (with the ID taken from the input, so the fuzzer gets past the ID check),
/// a [`TcpFrameReader`] fed the input, and, when the input is UTF-8, [`ResolvConf::parse`],
/// [`ResolvConf::candidates`] and [`Hosts::parse`]. None of them may panic.
#[doc(hidden)]
pub fn fuzz_parse(data: &[u8]) {
    // The message's own ID, so the fuzzer need not guess it.
    fn id_of(msg: &[u8]) -> u16 {
        match msg {
            [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
            _ => 0,
        }
    }
    for qtype in [QType::A, QType::Aaaa] {
        let _ = parse_response(data, id_of(data), "www.example.com", qtype);
    }
    let mut reader = TcpFrameReader::new();
    let mut next = reader.push(data);
    while let Some(msg) = next {
        let _ = parse_response(&msg, id_of(&msg), "www.example.com", QType::A);
        next = reader.push(&[]);
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let conf = ResolvConf::parse(text);
        let _ = conf.candidates(text);
        let _ = Hosts::parse(text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fuzz_parse_takes_anything() {
        let mut framed = Vec::new();
        let mut query = Vec::new();
        encode_query(1, "www.example.com", QType::A, &mut query).unwrap();
        frame_tcp(&query, &mut framed);
        frame_tcp(&query, &mut framed);
        for data in [
            &b""[..],
            b"\x00",
            b"\x00\x00\x80\x00\x00\x01",
            &query,
            &framed,
            b"nameserver ::1\nsearch a b\n127.0.0.1 localhost\n",
            b"\xff\xfe\xfd",
        ] {
            fuzz_parse(data);
        }
    }
}
