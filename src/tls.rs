//! TLS for the driver: one shared `rustls::ClientConfig` per fetcher, and a non-blocking
//! client stream over any byte pipe (a mio `TcpStream` in the driver, memory in tests).
//!
//! Owns certificate policy and the rustls record pump. It must not parse HTTP, and it
//! never blocks: every socket call may return `WouldBlock`, which is passed up.
//!
//! Pump rules (from rustls' mio example): after every `read_tls`, call
//! `process_new_packets` and drain the plaintext `reader()`; write whatever rustls wants to
//! write after reading (handshake replies are produced by input); a `0` from `read_tls` is
//! the peer's TCP EOF, after which `reader()` says `Ok(0)` for a clean `close_notify` and
//! `UnexpectedEof` otherwise.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::error::{Error, ErrorKind, Phase};
use crate::response::TlsInfo;

/// Certificate policy, as the builder set it.
#[derive(Clone, Default)]
pub(crate) struct TlsOptions {
    pub extra_roots: Vec<CertificateDer<'static>>,
    pub no_default_roots: bool,
    pub custom: Option<Arc<ClientConfig>>,
    pub danger_accept_invalid_certs: bool,
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("extra_roots", &self.extra_roots.len())
            .field("no_default_roots", &self.no_default_roots)
            .field("custom", &self.custom.is_some())
            .field(
                "danger_accept_invalid_certs",
                &self.danger_accept_invalid_certs,
            )
            .finish()
    }
}

/// Parses every certificate in a PEM bundle.
///
/// # Errors
/// Kind `tls`, phase `prepare`, when the bundle holds no certificate or a bad one.
pub(crate) fn parse_pem_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            Error::new(
                ErrorKind::Tls,
                Phase::Prepare,
                format!("bad PEM certificate: {e}"),
            )
        })?;
    if certs.is_empty() {
        return Err(Error::new(
            ErrorKind::Tls,
            Phase::Prepare,
            "no certificate found in PEM data",
        ));
    }
    Ok(certs)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the one config all connections of a fetcher share, so TLS sessions resume
/// across connections to the same host.
pub(crate) fn client_config(opts: &TlsOptions) -> io::Result<Arc<ClientConfig>> {
    if let Some(custom) = &opts.custom {
        return Ok(Arc::clone(custom));
    }
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?;
    let mut config = if opts.danger_accept_invalid_certs {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(
                provider.signature_verification_algorithms,
            )))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        #[cfg(feature = "webpki-roots")]
        if !opts.no_default_roots {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        for cert in &opts.extra_roots {
            roots.add(cert.clone()).map_err(io::Error::other)?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The verifier behind `danger_accept_invalid_certs`: any certificate, any name. Signatures
/// are still checked, so the handshake itself stays sound; only identity is given up.
#[derive(Debug)]
struct AcceptAnyCert(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The server name to verify and send as SNI (IP literals are verified, never sent).
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, Error> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_owned()).map_err(|e| {
        Error::new(
            ErrorKind::Tls,
            Phase::Tls,
            format!("{host:?} is not a valid TLS server name: {e}"),
        )
    })
}

/// A TLS error travels through `io::Error` (kind `InvalidData`) so the stream can look like
/// any other pipe; the driver recovers it with [`tls_cause`].
fn tls_io_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Our words for a TLS failure, for a message that keeps the rustls error as its source.
pub(crate) fn tls_words(e: &rustls::Error) -> String {
    use rustls::{CertificateError as C, Error as E};
    match e {
        E::InvalidCertificate(c) => match c {
            C::Expired | C::ExpiredContext { .. } => "certificate has expired".into(),
            C::NotValidYet | C::NotValidYetContext { .. } => "certificate is not valid yet".into(),
            C::UnknownIssuer => "certificate issuer is not trusted".into(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "certificate is not valid for this name".into()
            }
            C::Revoked => "certificate was revoked".into(),
            C::BadSignature => "certificate signature is bad".into(),
            C::BadEncoding => "certificate is malformed".into(),
            _ => "certificate was refused".into(),
        },
        E::AlertReceived(alert) => format!("the server sent the alert {alert:?}"),
        E::NoCertificatesPresented => "the server presented no certificate".into(),
        E::PeerIncompatible(_) => "the server's tls is incompatible with ours".into(),
        E::PeerMisbehaved(_) => "the server broke the tls protocol".into(),
        E::InvalidMessage(_) => "the server sent a malformed tls message".into(),
        _ => "tls failed".into(),
    }
}

/// A TLS stream is itself a byte pipe, so a TLS session can run inside another: TLS to an
/// https proxy, and the origin's TLS through the proxy's tunnel.
impl<S: Read + Write> Read for TlsStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        TlsStream::read(self, buf)
    }
}

impl<S: Read + Write> Write for TlsStream<S> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        TlsStream::write(self, data)
    }

    fn flush(&mut self) -> io::Result<()> {
        TlsStream::flush(self)
    }
}

/// The rustls error inside an I/O error, if that is what it is.
pub(crate) fn tls_cause(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref().and_then(|inner| inner.downcast_ref())
}

/// A client TLS stream over a non-blocking pipe.
pub(crate) struct TlsStream<S> {
    pub(crate) sock: S,
    conn: ClientConnection,
    /// `read_tls` returned 0: the peer closed TCP.
    eof: bool,
}

impl<S: Read + Write> TlsStream<S> {
    pub(crate) fn new(
        sock: S,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<Self, Error> {
        let conn = ClientConnection::new(config, name)
            .map_err(|e| Error::new(ErrorKind::Tls, Phase::Tls, tls_words(&e)).with_source(e))?;
        Ok(TlsStream {
            sock,
            conn,
            eof: false,
        })
    }

    /// Advances the handshake as far as the socket allows. `Ok(true)` once it is complete.
    ///
    /// # Errors
    /// The rustls error (bad certificate, alert, protocol violation) wrapped in `io::Error`;
    /// `UnexpectedEof` when the server closes mid-handshake; any socket error.
    pub(crate) fn handshake(&mut self) -> io::Result<bool> {
        loop {
            self.flush()?;
            if !self.conn.is_handshaking() {
                return Ok(true);
            }
            if self.eof {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "server closed the connection during the tls handshake",
                ));
            }
            match self.read_records() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // A flush may still be owed (e.g. our Finished after their flight).
                    self.flush()?;
                    return Ok(!self.conn.is_handshaking());
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes TLS records that arrived before the session existed (what a proxy passed on
    /// right after opening the tunnel), as if read from the socket.
    ///
    /// # Errors
    /// A TLS error in them, as `InvalidData`.
    pub(crate) fn feed_records(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            self.conn.read_tls(&mut bytes)?;
            self.conn.process_new_packets().map_err(tls_io_error)?;
        }
        Ok(())
    }

    /// Reads TLS records from the socket and processes them.
    fn read_records(&mut self) -> io::Result<()> {
        match self.conn.read_tls(&mut self.sock) {
            Ok(0) => self.eof = true,
            Ok(_) => {}
            Err(e) => return Err(e),
        }
        let processed = self.conn.process_new_packets();
        if let Err(e) = processed {
            // Send the alert rustls queued, best effort, then fail.
            let _ = self.flush();
            return Err(tls_io_error(e));
        }
        Ok(())
    }

    /// Writes out whatever TLS records rustls has queued.
    ///
    /// # Errors
    /// `WouldBlock` is swallowed (the rest goes on the next writable event); other socket
    /// errors are returned.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Inside another TLS session (an https proxy's), that session may hold records its
        // socket had no room for: they go on now too. For a socket this does nothing.
        match Write::flush(&mut self.sock) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            other => other,
        }
    }

    /// Reads plaintext. `Ok(0)`: the server closed with `close_notify`.
    ///
    /// # Errors
    /// `WouldBlock` when nothing is available; `UnexpectedEof` when the server closed TCP
    /// without `close_notify` (a possible truncation); TLS errors as `InvalidData`.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.eof {
                // rustls saw the EOF and still has no answer: treat as unclean.
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
            self.read_records()?;
            // Replies to what we read (key updates, alerts) go out now.
            self.flush()?;
        }
    }

    /// Takes plaintext to encrypt; returns how much was taken. `WouldBlock` when rustls'
    /// buffer is full and the socket cannot drain it now.
    pub(crate) fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        loop {
            let n = self.conn.writer().write(data)?;
            self.flush()?;
            if n > 0 || data.is_empty() {
                return Ok(n);
            }
            if self.conn.wants_write() {
                // The buffer is full and the socket is, too.
                return Err(io::Error::from(io::ErrorKind::WouldBlock));
            }
        }
    }

    /// The negotiated parameters.
    pub(crate) fn info(&self) -> TlsInfo {
        TlsInfo {
            protocol_version: self
                .conn
                .protocol_version()
                .map(|v| format!("{v:?}"))
                .unwrap_or_default(),
            cipher_suite: self
                .conn
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default(),
            alpn: self
                .conn
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
            resumed: matches!(
                self.conn.handshake_kind(),
                Some(rustls::HandshakeKind::Resumed)
            ),
        }
    }
}

#[cfg(test)]
use parafetch_test_support::pki;

/// Socket-free tests: a client `TlsStream` and a rustls server pumped through memory.
#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;

    /// One direction of a pipe per side; reading an empty, open pipe is `WouldBlock`.
    #[derive(Clone, Default)]
    struct Wire {
        bytes: Rc<RefCell<VecDeque<u8>>>,
        closed: Rc<RefCell<bool>>,
    }

    struct End {
        rx: Wire,
        tx: Wire,
    }

    impl Read for End {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let mut q = self.rx.bytes.borrow_mut();
            if q.is_empty() {
                return if *self.rx.closed.borrow() {
                    Ok(0)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            let n = buf.len().min(q.len());
            for (i, b) in q.drain(..n).enumerate() {
                buf[i] = b;
            }
            Ok(n)
        }
    }

    impl Write for End {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.tx.bytes.borrow_mut().extend(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn pair() -> (TlsStream<End>, rustls::ServerConnection, End) {
        let p = pki::pki();
        let (c2s, s2c) = (Wire::default(), Wire::default());
        let client_end = End {
            rx: s2c.clone(),
            tx: c2s.clone(),
        };
        let server_end = End { rx: c2s, tx: s2c };
        let opts = TlsOptions {
            extra_roots: parse_pem_certs(p.ca_pem.as_bytes()).unwrap(),
            no_default_roots: true,
            ..TlsOptions::default()
        };
        let config = client_config(&opts).unwrap();
        let client = TlsStream::new(client_end, config, server_name("localhost").unwrap()).unwrap();
        let server = rustls::ServerConnection::new(pki::server_config(&p.good)).unwrap();
        (client, server, server_end)
    }

    /// Moves everything the server can read and write through its end of the pipe.
    fn pump_server(server: &mut rustls::ServerConnection, end: &mut End) {
        loop {
            match server.read_tls(end) {
                Ok(0) => break,
                Ok(_) => {
                    server.process_new_packets().unwrap();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
        }
        while server.wants_write() {
            server.write_tls(end).unwrap();
        }
    }

    fn handshake(
        client: &mut TlsStream<End>,
        server: &mut rustls::ServerConnection,
        end: &mut End,
    ) {
        for _ in 0..10 {
            if client.handshake().unwrap() && !server.is_handshaking() {
                return;
            }
            pump_server(server, end);
        }
        panic!("handshake did not finish");
    }

    fn read_all(client: &mut TlsStream<End>) -> (Vec<u8>, io::Result<usize>) {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match client.read(&mut buf) {
                Ok(0) => return (got, Ok(0)),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => return (got, Err(e)),
            }
        }
    }

    #[test]
    fn handshake_completes_through_memory() {
        let (mut client, mut server, mut end) = pair();
        assert!(
            !client.handshake().unwrap(),
            "needs the server's flight first"
        );
        handshake(&mut client, &mut server, &mut end);
        let info = client.info();
        assert_eq!(info.protocol_version, "TLSv1_3");
        assert_eq!(info.alpn.as_deref(), Some("http/1.1"));
    }

    #[test]
    fn large_body_spans_many_records_and_close_notify_ends_cleanly() {
        let (mut client, mut server, mut end) = pair();
        handshake(&mut client, &mut server, &mut end);
        let body: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
        server.set_buffer_limit(None); // the pipe is memory: let the server queue it all
        server.writer().write_all(&body).unwrap();
        server.send_close_notify();
        pump_server(&mut server, &mut end);
        let (got, end_of_stream) = read_all(&mut client);
        assert!(got == body, "{} bytes of {}", got.len(), body.len());
        assert_eq!(
            end_of_stream.unwrap(),
            0,
            "close_notify reads as a clean end"
        );
    }

    #[test]
    fn tcp_close_without_close_notify_is_unexpected_eof() {
        let (mut client, mut server, mut end) = pair();
        handshake(&mut client, &mut server, &mut end);
        server.writer().write_all(b"partial").unwrap();
        pump_server(&mut server, &mut end);
        *end.tx.closed.borrow_mut() = true;
        let (got, end_of_stream) = read_all(&mut client);
        assert_eq!(got, b"partial");
        assert_eq!(
            end_of_stream.unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn open_pipe_with_no_data_would_block() {
        let (mut client, mut server, mut end) = pair();
        handshake(&mut client, &mut server, &mut end);
        let mut buf = [0u8; 16];
        let e = client.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn server_alert_surfaces_as_a_tls_error() {
        let (mut client, _server, end) = pair();
        assert!(!client.handshake().unwrap());
        // Garbage where a ServerHello should be.
        end.tx
            .bytes
            .borrow_mut()
            .extend(b"HTTP/1.1 400 Bad Request\r\n\r\n");
        let e = client.handshake().unwrap_err();
        assert!(tls_cause(&e).is_some(), "{e:?}");
    }
}
