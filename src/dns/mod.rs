//! Sans-IO DNS for a stub resolver: query encoding, reply parsing, TCP framing
//! and `/etc/resolv.conf`.
//!
//! This module owns the formats and the rules that decide what a reply means; the resolver
//! client in the driver owns the UDP and TCP sockets on the mio loop, timers, query IDs,
//! retries, the cache and the coalescing of identical lookups. Nothing here may touch a
//! socket, read a clock, pick a random number or block, except [`ResolvConf::system`], which
//! reads one small file and is meant to be called once.

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
