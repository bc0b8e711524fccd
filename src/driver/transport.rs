//! The byte pipe under one connection: plain TCP or TLS over TCP, one small enum (wrk's
//! table of operations).
//!
//! Owns the socket and moves bytes; it must not parse HTTP.

use std::io::{self, Read, Write};

use mio::Registry;
use mio::net::TcpStream;

use crate::tls::TlsStream;

pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// The origin's TLS inside an https proxy's TLS.
    TlsInTls(Box<TlsStream<TlsStream<TcpStream>>>),
}

impl Transport {
    pub(crate) fn tcp(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => &mut t.sock,
            Transport::TlsInTls(t) => &mut t.sock.sock,
        }
    }

    pub(crate) fn deregister(&mut self, registry: &Registry) {
        let _ = registry.deregister(self.tcp());
    }

    /// Reads plaintext. `Ok(0)` is the end of the stream (for TLS: a clean `close_notify`).
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(t) => t.read(buf),
            Transport::TlsInTls(t) => t.read(buf),
        }
    }

    /// Writes plaintext; returns how many bytes were taken.
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(data),
            Transport::Tls(t) => t.write(data),
            Transport::TlsInTls(t) => t.write(data),
        }
    }

    /// Sends bytes buffered below the application (TLS records); plain TCP has none.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(t) => t.flush(),
            // The inner session's records go into the outer one, whose records may still
            // wait for the socket: both are flushed.
            Transport::TlsInTls(t) => {
                t.flush()?;
                t.sock.flush()
            }
        }
    }

    pub(crate) fn is_tls(&self) -> bool {
        !matches!(self, Transport::Plain(_))
    }
}
