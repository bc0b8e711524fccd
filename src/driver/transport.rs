//! The byte pipe under one connection: plain TCP (TLS joins as another variant).
//!
//! Owns the socket and moves bytes; it must not parse HTTP.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

pub(crate) enum Transport {
    Plain(TcpStream),
}

impl Transport {
    pub(crate) fn tcp(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(s) => s,
        }
    }

    pub(crate) fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(self.tcp(), token, Interest::READABLE | Interest::WRITABLE)
    }

    pub(crate) fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(self.tcp());
    }

    /// Reads decrypted (or plain) bytes. `Ok(0)` is the end of the stream.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
        }
    }

    /// Writes application bytes; returns how many were taken.
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(data),
        }
    }

    pub(crate) fn peer_addr(&mut self) -> io::Result<SocketAddr> {
        self.tcp().peer_addr()
    }
}
