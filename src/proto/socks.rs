//! SOCKS client handshakes: SOCKS4a (the SOCKS4 protocol plus the 4a extension that lets
//! the proxy resolve a name) and SOCKS5 (RFC 1928) with no authentication or
//! username/password (RFC 1929), up to the CONNECT reply.
//!
//! Owns the handshake's bytes and their order. It must not do I/O or resolve names (a
//! `socks5` caller resolves first and passes an address, a `socks5h` caller passes the
//! name), and it never consumes a byte after the final reply: those are the tunnel's.
//!
//! ```text
//!   v5:  greeting ─▶ method selection ─┬─▶ CONNECT request ─▶ reply ─▶ done
//!                                      └─▶ user/password ─▶ status ─┘
//!   v4a: CONNECT request (user id, name) ─▶ 8-byte reply ─▶ done
//! ```

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

/// Where the proxy should connect to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SocksTarget {
    /// An address the caller resolved (`socks5://`, `socks4a://` with an IPv4 address).
    Ip(SocketAddr),
    /// A host name the proxy resolves (`socks5h://`, `socks4a://`), and a port.
    Name(String, u16),
}

/// How a SOCKS handshake failed.
///
/// Small and `Copy` so a failed handshake can keep it and return it again. Most variants
/// are the proxy's doing (a refusal it reports, or bytes that are not SOCKS); the last
/// group is the caller's (a target or credentials the protocol cannot carry), found before
/// anything is sent. [`SocksError::caused_by_peer`] tells them apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SocksError {
    /// Peer (SOCKS5 reply 1): general SOCKS server failure.
    GeneralFailure,
    /// Peer (SOCKS5 reply 2): the proxy's rules do not allow this connection.
    NotAllowed,
    /// Peer (SOCKS5 reply 3): the proxy cannot reach the target's network.
    NetworkUnreachable,
    /// Peer (SOCKS5 reply 4): the proxy cannot reach the target host.
    HostUnreachable,
    /// Peer (SOCKS5 reply 5): the target refused the proxy's connection.
    ConnectionRefused,
    /// Peer (SOCKS5 reply 6): TTL expired.
    TtlExpired,
    /// Peer (SOCKS5 reply 7): the proxy does not support CONNECT.
    CommandNotSupported,
    /// Peer (SOCKS5 reply 8): the proxy does not support the target's address type (e.g. a
    /// name sent to a proxy that only takes addresses: use `socks5`, not `socks5h`).
    AddressTypeNotSupported,
    /// Peer (SOCKS4 reply 91): request rejected or failed.
    Rejected,
    /// Peer (SOCKS4 reply 92): rejected because the proxy cannot reach an identd on the
    /// client.
    NoIdentd,
    /// Peer (SOCKS4 reply 93): rejected because the client's identd reported another user
    /// id.
    IdentdMismatch,
    /// Peer: a reply code that neither RFC 1928 nor SOCKS4 defines; the byte is kept.
    UnknownReply(u8),
    /// Peer: the proxy accepts none of the authentication methods offered (method 0xFF),
    /// or picked one that was not offered (e.g. username/password when no credentials were
    /// given: the proxy wants credentials).
    NoAcceptableMethod,
    /// Peer: the proxy refused the username and password (RFC 1929 status not 0).
    AuthFailed,
    /// Peer: a SOCKS5 reply whose version byte is not 5 (not a SOCKS5 proxy).
    NotSocks5Reply,
    /// Peer: a SOCKS4 reply whose version byte is not 0 (not a SOCKS4 proxy).
    NotSocks4Reply,
    /// Peer: a reply with an unknown address type, or an RFC 1929 status with an unknown
    /// version byte.
    MalformedReply,
    /// Peer: the connection closed before the handshake was complete.
    Closed,
    /// Caller: a SOCKS5 target name longer than 255 bytes.
    TargetNameTooLong,
    /// Caller: an empty target name, or one holding a NUL byte.
    InvalidTargetName,
    /// Caller: a SOCKS5 username or password longer than 255 bytes (RFC 1929).
    CredentialsTooLong,
    /// Caller: an empty SOCKS5 username or password (RFC 1929 wants 1 to 255 bytes each),
    /// or a SOCKS4 user id holding a NUL byte.
    InvalidCredentials,
    /// Caller: an IPv6 target for SOCKS4a, whose request has room for IPv4 only (pass the
    /// name instead, or use SOCKS5).
    Ipv6WithSocks4a,
}

impl SocksError {
    /// A short lowercase message, e.g. `"connection refused by destination host"`.
    pub fn as_str(&self) -> &'static str {
        match self {
            SocksError::GeneralFailure => "general socks server failure",
            SocksError::NotAllowed => "connection not allowed by ruleset",
            SocksError::NetworkUnreachable => "network unreachable",
            SocksError::HostUnreachable => "host unreachable",
            SocksError::ConnectionRefused => "connection refused by destination host",
            SocksError::TtlExpired => "ttl expired",
            SocksError::CommandNotSupported => "command not supported",
            SocksError::AddressTypeNotSupported => "address type not supported",
            SocksError::Rejected => "request rejected or failed",
            SocksError::NoIdentd => "request rejected: the proxy cannot reach the client's identd",
            SocksError::IdentdMismatch => "request rejected: identd reports a different user id",
            SocksError::UnknownReply(_) => "unknown socks reply code",
            SocksError::NoAcceptableMethod => "no acceptable authentication method",
            SocksError::AuthFailed => "authentication failed",
            SocksError::NotSocks5Reply => "not a socks5 reply",
            SocksError::NotSocks4Reply => "not a socks4 reply",
            SocksError::MalformedReply => "malformed reply",
            SocksError::Closed => "closed during the handshake",
            SocksError::TargetNameTooLong => "target name too long",
            SocksError::InvalidTargetName => "invalid target name",
            SocksError::CredentialsTooLong => "credentials too long",
            SocksError::InvalidCredentials => "invalid credentials",
            SocksError::Ipv6WithSocks4a => "socks4a cannot carry an ipv6 address",
        }
    }

    /// Whether the proxy misbehaved or refused (true) or the caller passed a target or
    /// credentials the protocol cannot carry (false).
    pub fn caused_by_peer(&self) -> bool {
        !matches!(
            self,
            SocksError::TargetNameTooLong
                | SocksError::InvalidTargetName
                | SocksError::CredentialsTooLong
                | SocksError::InvalidCredentials
                | SocksError::Ipv6WithSocks4a
        )
    }

    /// The SOCKS5 error for reply code `rep` (not 0, which is success).
    fn from_rep(rep: u8) -> SocksError {
        match rep {
            1 => SocksError::GeneralFailure,
            2 => SocksError::NotAllowed,
            3 => SocksError::NetworkUnreachable,
            4 => SocksError::HostUnreachable,
            5 => SocksError::ConnectionRefused,
            6 => SocksError::TtlExpired,
            7 => SocksError::CommandNotSupported,
            8 => SocksError::AddressTypeNotSupported,
            other => SocksError::UnknownReply(other),
        }
    }
}

/// [`SocksError::as_str`], plus the code of an unknown reply.
impl fmt::Display for SocksError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if let SocksError::UnknownReply(code) = self {
            write!(f, " {code}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SocksError {}

/// A finished handshake: the tunnel is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SocksDone {
    /// The address the proxy reports it bound for the connection to the target, as sent
    /// (often `0.0.0.0:0`); `None` when it sent a name instead (SOCKS5 address type 3).
    pub bound: Option<SocketAddr>,
}

// RFC 1928 constants.
const V5: u8 = 5;
const NO_AUTH: u8 = 0x00;
const USER_PASS: u8 = 0x02;
const CONNECT: u8 = 1;
const ATYP_V4: u8 = 1;
const ATYP_NAME: u8 = 3;
const ATYP_V6: u8 = 4;
/// The RFC 1929 sub-negotiation version.
const AUTH_V1: u8 = 1;
/// The longest reply: VER REP RSV ATYP, a 255-byte name after its length byte, the port.
const MAX_REPLY: usize = 4 + 1 + 255 + 2;

/// Which reply the handshake waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// SOCKS5 method selection: VER METHOD.
    Method,
    /// RFC 1929 status: VER STATUS.
    Auth,
    /// SOCKS5 reply: VER REP RSV ATYP BND.ADDR BND.PORT.
    Reply5,
    /// SOCKS4 reply: VN CD DSTPORT DSTIP.
    Reply4,
    Done,
    Failed(SocksError),
}

/// What the bytes of a reply gathered so far say.
enum Parsed {
    /// The reply is this many bytes at least: gather up to there, then look again.
    Need(usize),
    /// The reply is complete and the next stage has begun.
    Next,
    /// The handshake is complete.
    Done(SocksDone),
}

/// A SOCKS client handshake, sans-IO: bytes to send out, the proxy's bytes in, and at the
/// end a [`SocksDone`] or a [`SocksError`].
///
/// Call order (any interleaving of the two sides works):
/// - [`poll_transmit`](Self::poll_transmit) gives the bytes to write now;
///   [`handle_transmitted`](Self::handle_transmitted) says how many were written.
/// - [`handle_input`](Self::handle_input) once per read, until it returns `Some(done)`;
///   it consumes only handshake bytes, so whatever follows the final reply in that read is
///   the tunnel's.
/// - [`handle_eof`](Self::handle_eof) when the proxy closes first.
///
/// Each message is sent only after the reply to the one before (no pipelining: some
/// proxies drop bytes that come early). Credentials are never printed by `Debug`, and the
/// buffers that held them are overwritten once written (best effort: a copy the allocator
/// made while a buffer grew is beyond reach).
///
/// # Examples
/// SOCKS5 without authentication, to a name the proxy resolves (`socks5h`), with the
/// proxy's literal bytes; the origin's first bytes arrive with the final reply:
/// ```
/// use parafetch::proto::{SocksHandshake, SocksTarget};
///
/// let target = SocksTarget::Name("example.com".into(), 443);
/// let mut socks = SocksHandshake::v5(target, None).unwrap();
/// assert_eq!(socks.poll_transmit(), [5, 1, 0]); // version 5, one method: no auth
/// socks.handle_transmitted(3);
///
/// assert_eq!(socks.handle_input(&[5, 0]).unwrap(), (2, None)); // no auth chosen
/// assert_eq!(socks.poll_transmit(), b"\x05\x01\x00\x03\x0bexample.com\x01\xbb");
/// socks.handle_transmitted(socks.poll_transmit().len());
///
/// // Succeeded, bound to 10.0.0.1:4096; then the tunnel's first bytes.
/// let read = [5, 0, 0, 1, 10, 0, 0, 1, 0x10, 0x00, 0x16, 0x03];
/// let (consumed, done) = socks.handle_input(&read).unwrap();
/// assert_eq!(consumed, 10); // the tunnel's bytes are left to the caller
/// assert_eq!(done.unwrap().bound, Some("10.0.0.1:4096".parse().unwrap()));
/// assert!(socks.poll_transmit().is_empty());
/// ```
#[derive(Clone)]
pub struct SocksHandshake {
    /// Bytes queued for the proxy; `sent` of them are written.
    out: Vec<u8>,
    sent: usize,
    /// The RFC 1929 request, queued when the proxy picks username/password; empty without
    /// credentials.
    auth: Vec<u8>,
    /// The CONNECT request, queued after method selection (and authentication); empty for
    /// SOCKS4a, whose request goes first.
    request: Vec<u8>,
    stage: Stage,
    /// The reply bytes gathered so far.
    got: [u8; MAX_REPLY],
    have: usize,
}

impl SocksHandshake {
    /// A SOCKS4a handshake to `target` with the user id `user_id` (often empty; some
    /// proxies check it against identd).
    ///
    /// An IPv4 target makes a plain SOCKS4 request; a name uses the 4a extension (the
    /// address `0.0.0.1`, and the name after the user id), so the proxy resolves it.
    ///
    /// # Errors
    /// The caller's: [`SocksError::Ipv6WithSocks4a`], [`SocksError::InvalidTargetName`]
    /// (empty or holding NUL), [`SocksError::InvalidCredentials`] (a user id holding NUL).
    pub fn v4a(target: SocksTarget, user_id: &str) -> Result<Self, SocksError> {
        if user_id.contains('\0') {
            return Err(SocksError::InvalidCredentials);
        }
        let (ip, port, name) = match target {
            SocksTarget::Ip(SocketAddr::V6(_)) => return Err(SocksError::Ipv6WithSocks4a),
            SocksTarget::Ip(SocketAddr::V4(a)) => (*a.ip(), a.port(), None),
            SocksTarget::Name(name, port) => {
                check_name(&name)?;
                (Ipv4Addr::new(0, 0, 0, 1), port, Some(name))
            }
        };
        // An address 0.0.0.x (x ≠ 0) would read as "a name follows": send it as a name,
        // which the proxy parses back into that address.
        let (ip, name) = match name {
            None if ip.octets()[..3] == [0, 0, 0] && ip.octets()[3] != 0 => {
                (Ipv4Addr::new(0, 0, 0, 1), Some(ip.to_string()))
            }
            other => (ip, other),
        };
        let mut out = vec![4, CONNECT];
        out.extend_from_slice(&port.to_be_bytes());
        out.extend_from_slice(&ip.octets());
        out.extend_from_slice(user_id.as_bytes());
        out.push(0);
        if let Some(name) = name {
            out.extend_from_slice(name.as_bytes());
            out.push(0);
        }
        Ok(SocksHandshake::start(
            out,
            Vec::new(),
            Vec::new(),
            Stage::Reply4,
        ))
    }

    /// A SOCKS5 handshake to `target`, offering no authentication and, with `auth`,
    /// username/password (RFC 1929) too: the proxy picks.
    ///
    /// # Errors
    /// The caller's: [`SocksError::TargetNameTooLong`] (over 255 bytes),
    /// [`SocksError::InvalidTargetName`] (empty or holding NUL),
    /// [`SocksError::CredentialsTooLong`] (over 255 bytes),
    /// [`SocksError::InvalidCredentials`] (an empty user name; an empty password is sent
    /// as is, as curl does).
    pub fn v5(target: SocksTarget, auth: Option<(&str, &str)>) -> Result<Self, SocksError> {
        let mut request = vec![V5, CONNECT, 0];
        let port = match &target {
            SocksTarget::Ip(SocketAddr::V4(a)) => {
                request.push(ATYP_V4);
                request.extend_from_slice(&a.ip().octets());
                a.port()
            }
            SocksTarget::Ip(SocketAddr::V6(a)) => {
                request.push(ATYP_V6);
                request.extend_from_slice(&a.ip().octets());
                a.port()
            }
            SocksTarget::Name(name, port) => {
                check_name(name)?;
                let len = u8::try_from(name.len()).map_err(|_| SocksError::TargetNameTooLong)?;
                request.extend_from_slice(&[ATYP_NAME, len]);
                request.extend_from_slice(name.as_bytes());
                *port
            }
        };
        request.extend_from_slice(&port.to_be_bytes());
        let (greeting, auth) = match auth {
            None => (vec![V5, 1, NO_AUTH], Vec::new()),
            Some((user, pass)) => {
                let mut auth = vec![AUTH_V1];
                // RFC 1929 asks for 1 to 255 bytes each; an empty password is sent as PLEN 0,
                // as curl does (`socks5://user@proxy`), and the proxy decides.
                if user.is_empty() {
                    return Err(SocksError::InvalidCredentials);
                }
                for part in [user, pass] {
                    let len =
                        u8::try_from(part.len()).map_err(|_| SocksError::CredentialsTooLong)?;
                    auth.push(len);
                    auth.extend_from_slice(part.as_bytes());
                }
                (vec![V5, 2, NO_AUTH, USER_PASS], auth)
            }
        };
        Ok(SocksHandshake::start(
            greeting,
            auth,
            request,
            Stage::Method,
        ))
    }

    fn start(out: Vec<u8>, auth: Vec<u8>, request: Vec<u8>, stage: Stage) -> Self {
        SocksHandshake {
            out,
            sent: 0,
            auth,
            request,
            stage,
            got: [0; MAX_REPLY],
            have: 0,
        }
    }

    /// The bytes to write to the proxy now (empty while waiting for its reply).
    pub fn poll_transmit(&self) -> &[u8] {
        &self.out[self.sent..]
    }

    /// Records that the first `n` bytes of [`poll_transmit`](Self::poll_transmit) were
    /// written.
    ///
    /// # Panics
    /// When `n` is more than `poll_transmit` holds.
    pub fn handle_transmitted(&mut self, n: usize) {
        let left = self.out.len() - self.sent;
        assert!(
            n <= left,
            "handle_transmitted({n}) with only {left} bytes to write"
        );
        self.sent += n;
        if self.sent == self.out.len() {
            // The bytes may hold a password: don't leave them in memory.
            wipe(&mut self.out);
            self.sent = 0;
        }
    }

    /// Feeds bytes read from the proxy; returns how many were used and, when the final
    /// reply is complete, the [`SocksDone`]. Bytes after the final reply are never
    /// consumed; after it every call consumes nothing and returns `None`.
    ///
    /// # Errors
    /// The proxy's refusal or misbehaviour, a [`SocksError`] for which
    /// [`caused_by_peer`](SocksError::caused_by_peer) is true. A refusal is reported as soon
    /// as its code arrives, without waiting for the rest of the reply. The error is final:
    /// later calls return it again.
    pub fn handle_input(&mut self, input: &[u8]) -> Result<(usize, Option<SocksDone>), SocksError> {
        let mut consumed = 0;
        loop {
            match self.stage {
                Stage::Failed(e) => return Err(e),
                Stage::Done => return Ok((consumed, None)),
                _ => {}
            }
            match self.parse() {
                Err(e) => {
                    self.fail(e);
                    return Err(e);
                }
                Ok(Parsed::Need(n)) => {
                    if consumed == input.len() {
                        return Ok((consumed, None));
                    }
                    let take = (n - self.have).min(input.len() - consumed);
                    self.got[self.have..self.have + take]
                        .copy_from_slice(&input[consumed..consumed + take]);
                    self.have += take;
                    consumed += take;
                }
                Ok(Parsed::Next) => self.have = 0,
                Ok(Parsed::Done(done)) => {
                    self.have = 0;
                    self.stage = Stage::Done;
                    return Ok((consumed, Some(done)));
                }
            }
        }
    }

    /// The proxy closed the connection (a read returned 0): returns
    /// [`SocksError::Closed`], or the error the handshake had already failed with, and
    /// keeps it. After the handshake is done an EOF is the tunnel's business; this then
    /// returns [`SocksError::Closed`] without changing anything, and should not be asked.
    pub fn handle_eof(&mut self) -> SocksError {
        match self.stage {
            Stage::Failed(e) => e,
            Stage::Done => SocksError::Closed,
            _ => {
                self.fail(SocksError::Closed);
                SocksError::Closed
            }
        }
    }

    /// Whether the final reply has been returned.
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// Enters the failed state, dropping anything still queued (credentials included).
    fn fail(&mut self, e: SocksError) {
        self.stage = Stage::Failed(e);
        for buf in [&mut self.out, &mut self.auth, &mut self.request] {
            wipe(buf);
        }
        self.sent = 0;
    }

    /// Queues `bytes` (the next message) and forgets them.
    fn queue(out: &mut Vec<u8>, bytes: &mut Vec<u8>) {
        out.extend_from_slice(bytes);
        wipe(bytes);
    }

    /// Looks at the reply bytes gathered so far: how many the reply needs, or what it
    /// says once complete. Checks each field as soon as it is in, so a refusal is an
    /// error from its second byte on and the point of the error never depends on reads.
    fn parse(&mut self) -> Result<Parsed, SocksError> {
        let got = &self.got[..self.have];
        match self.stage {
            Stage::Method => {
                let [ver, method] = *got else {
                    return Ok(Parsed::Need(2));
                };
                if ver != V5 {
                    return Err(SocksError::NotSocks5Reply);
                }
                match method {
                    NO_AUTH => {
                        wipe(&mut self.auth);
                        Self::queue(&mut self.out, &mut self.request);
                        self.stage = Stage::Reply5;
                    }
                    USER_PASS if !self.auth.is_empty() => {
                        Self::queue(&mut self.out, &mut self.auth);
                        self.stage = Stage::Auth;
                    }
                    // NO_ACCEPTABLE, or a method not offered: both mean none will do.
                    _ => return Err(SocksError::NoAcceptableMethod),
                }
                Ok(Parsed::Next)
            }
            Stage::Auth => {
                let [ver, status] = *got else {
                    return Ok(Parsed::Need(2));
                };
                // RFC 1929 says version 1; some servers answer with the SOCKS version.
                if ver != AUTH_V1 && ver != V5 {
                    return Err(SocksError::MalformedReply);
                }
                if status != 0 {
                    return Err(SocksError::AuthFailed);
                }
                Self::queue(&mut self.out, &mut self.request);
                self.stage = Stage::Reply5;
                Ok(Parsed::Next)
            }
            Stage::Reply5 => {
                if got.len() < 2 {
                    return Ok(Parsed::Need(2));
                }
                if got[0] != V5 {
                    return Err(SocksError::NotSocks5Reply);
                }
                if got[1] != 0 {
                    return Err(SocksError::from_rep(got[1]));
                }
                // RSV is not checked: nothing depends on it.
                let Some(&atyp) = got.get(3) else {
                    return Ok(Parsed::Need(4));
                };
                let len = match atyp {
                    ATYP_V4 => 4 + 4 + 2,
                    ATYP_V6 => 4 + 16 + 2,
                    ATYP_NAME => match got.get(4) {
                        Some(&n) => 4 + 1 + usize::from(n) + 2,
                        None => return Ok(Parsed::Need(5)),
                    },
                    _ => return Err(SocksError::MalformedReply),
                };
                if got.len() < len {
                    return Ok(Parsed::Need(len));
                }
                let port = u16::from_be_bytes([got[len - 2], got[len - 1]]);
                let ip = match atyp {
                    ATYP_V4 => {
                        let mut a = [0; 4];
                        a.copy_from_slice(&got[4..8]);
                        Some(IpAddr::from(a))
                    }
                    ATYP_V6 => {
                        let mut a = [0; 16];
                        a.copy_from_slice(&got[4..20]);
                        Some(IpAddr::from(a))
                    }
                    // A name: read whole, not reported.
                    _ => None,
                };
                let bound = ip.map(|ip| SocketAddr::new(ip, port));
                Ok(Parsed::Done(SocksDone { bound }))
            }
            Stage::Reply4 => {
                if got.len() < 2 {
                    return Ok(Parsed::Need(2));
                }
                if got[0] != 0 {
                    return Err(SocksError::NotSocks4Reply);
                }
                match got[1] {
                    90 => {}
                    91 => return Err(SocksError::Rejected),
                    92 => return Err(SocksError::NoIdentd),
                    93 => return Err(SocksError::IdentdMismatch),
                    other => return Err(SocksError::UnknownReply(other)),
                }
                let [_, _, p0, p1, a, b, c, d] = *got else {
                    return Ok(Parsed::Need(8));
                };
                let bound =
                    SocketAddrV4::new(Ipv4Addr::new(a, b, c, d), u16::from_be_bytes([p0, p1]));
                Ok(Parsed::Done(SocksDone {
                    bound: Some(bound.into()),
                }))
            }
            Stage::Done | Stage::Failed(_) => {
                unreachable!("handle_input returns before parsing a finished handshake")
            }
        }
    }
}

/// A handshake dropped midway may still hold the credentials.
impl Drop for SocksHandshake {
    fn drop(&mut self) {
        wipe(&mut self.out);
        wipe(&mut self.auth);
    }
}

/// Overwrites `buf` with zeros and empties it (keeping the allocation, so the zeros are
/// not a dead store before a free that the optimiser may drop).
fn wipe(buf: &mut Vec<u8>) {
    buf.fill(0);
    std::hint::black_box(&mut buf[..]);
    buf.clear();
}

/// A target name must be non-empty, and SOCKS4a ends it with NUL, so it cannot hold one.
fn check_name(name: &str) -> Result<(), SocksError> {
    if name.is_empty() || name.contains('\0') {
        return Err(SocksError::InvalidTargetName);
    }
    Ok(())
}

/// Shows the stage and the sizes of what is queued, never the bytes: they may hold
/// credentials.
impl fmt::Debug for SocksHandshake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SocksHandshake")
            .field("stage", &self.stage)
            .field("to_send", &(self.out.len() - self.sent))
            .field("received", &self.have)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::split_everywhere;
    use super::*;

    /// What a handshake made of the proxy's bytes: the handshake bytes consumed, the result
    /// and everything written to the proxy; or the error (what was written and taken before
    /// it depends on the reads, and is moot).
    type Outcome = Result<(usize, Option<SocksDone>, Vec<u8>), SocksError>;

    /// Feeds `pieces` to `socks`, writing everything it queues before each read, and
    /// then EOF if `eof`.
    fn run(mut socks: SocksHandshake, pieces: &[&[u8]], eof: bool) -> Outcome {
        let mut sent = Vec::new();
        let mut send = |socks: &mut SocksHandshake| {
            let bytes = socks.poll_transmit().to_vec();
            sent.extend_from_slice(&bytes);
            socks.handle_transmitted(bytes.len());
            assert!(socks.poll_transmit().is_empty());
        };
        let (mut total, mut done) = (0, None);
        for piece in pieces {
            send(&mut socks);
            let (n, d) = socks.handle_input(piece)?;
            assert!(n <= piece.len());
            total += n;
            if let Some(d) = d {
                assert!(done.is_none() && socks.is_done());
                done = Some(d);
            } else if done.is_none() {
                assert_eq!(n, piece.len(), "an unfinished handshake takes everything");
            } else {
                assert_eq!(n, 0, "a finished handshake takes nothing");
            }
        }
        send(&mut socks);
        if eof && done.is_none() {
            let e = socks.handle_eof();
            assert_eq!(socks.handle_input(b"\x05\x00").unwrap_err(), e, "final");
            return Err(e);
        }
        Ok((total, done, sent))
    }

    fn all_ways(make: impl Fn() -> SocksHandshake, wire: &[u8], eof: bool) -> Outcome {
        split_everywhere(wire, |pieces| run(make(), pieces, eof))
    }

    fn v5(target: SocksTarget, auth: Option<(&str, &str)>) -> impl Fn() -> SocksHandshake {
        move || SocksHandshake::v5(target.clone(), auth).unwrap()
    }

    fn v4a(target: SocksTarget, user: &str) -> impl Fn() -> SocksHandshake + '_ {
        move || SocksHandshake::v4a(target.clone(), user).unwrap()
    }

    fn name(host: &str, port: u16) -> SocksTarget {
        SocksTarget::Name(host.into(), port)
    }

    fn ip(addr: &str) -> SocksTarget {
        SocksTarget::Ip(addr.parse().unwrap())
    }

    fn bound(addr: &str) -> Option<SocksDone> {
        Some(SocksDone {
            bound: Some(addr.parse().unwrap()),
        })
    }

    const OK_V4_BOUND: &[u8] = &[5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90];

    #[test]
    fn v5_no_auth_name_ipv4_ipv6() {
        let cases: [(SocksTarget, &[u8]); 3] = [
            (name("ex.com", 80), b"\x05\x01\x00\x03\x06ex.com\x00\x50"),
            (ip("10.1.2.3:443"), &[5, 1, 0, 1, 10, 1, 2, 3, 1, 0xbb]),
            (
                ip("[2001:db8::1]:8080"),
                &[
                    5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x1f,
                    0x90,
                ],
            ),
        ];
        for (target, request) in cases {
            let wire = [&[5, 0][..], OK_V4_BOUND, b"tunnel"].concat();
            let (n, done, sent) = all_ways(v5(target, None), &wire, false).unwrap();
            assert_eq!(n, wire.len() - 6, "tunnel bytes left");
            assert_eq!(done, bound("127.0.0.1:8080"));
            assert_eq!(sent, [&[5, 1, 0][..], request].concat());
        }
    }

    #[test]
    fn v5_username_password() {
        let make = v5(name("h", 1), Some(("user", "pw")));
        let wire = [&[5, 2, 1, 0][..], OK_V4_BOUND].concat();
        let (n, done, sent) = all_ways(&make, &wire, false).unwrap();
        assert_eq!((n, done), (wire.len(), bound("127.0.0.1:8080")));
        let auth = b"\x01\x04user\x02pw";
        let request = b"\x05\x01\x00\x03\x01h\x00\x01";
        assert_eq!(sent, [&[5, 2, 0, 2][..], auth, request].concat());
        // Servers that answer the sub-negotiation with version 5 are accepted.
        let wire = [&[5, 2, 5, 0][..], OK_V4_BOUND].concat();
        assert!(all_ways(&make, &wire, false).unwrap().1.is_some());
        // The proxy may still choose no authentication: the credentials are not sent.
        let wire = [&[5, 0][..], OK_V4_BOUND].concat();
        let (_, _, sent) = all_ways(&make, &wire, false).unwrap();
        assert_eq!(sent, [&[5, 2, 0, 2][..], request].concat());
    }

    #[test]
    fn v5_authentication_refusals() {
        let with = v5(name("h", 1), Some(("u", "p")));
        let without = v5(name("h", 1), None);
        assert_eq!(
            all_ways(&with, &[5, 2, 1, 1], false),
            Err(SocksError::AuthFailed)
        );
        assert_eq!(
            all_ways(&with, &[5, 2, 1, 0xff], false),
            Err(SocksError::AuthFailed)
        );
        assert_eq!(
            all_ways(&with, &[5, 2, 2, 0], false),
            Err(SocksError::MalformedReply)
        );
        for make in [&with, &without] {
            assert_eq!(
                all_ways(make, &[5, 0xff], false),
                Err(SocksError::NoAcceptableMethod)
            );
            assert_eq!(
                all_ways(make, &[5, 1], false),
                Err(SocksError::NoAcceptableMethod),
                "gssapi was not offered"
            );
        }
        assert_eq!(
            all_ways(&without, &[5, 2], false),
            Err(SocksError::NoAcceptableMethod),
            "the proxy wants credentials we lack"
        );
        assert_eq!(
            all_ways(&without, b"HTTP/1.1 400 Bad", false),
            Err(SocksError::NotSocks5Reply)
        );
    }

    #[test]
    fn v5_reply_codes_by_name_as_soon_as_they_arrive() {
        let codes = [
            (1, SocksError::GeneralFailure),
            (2, SocksError::NotAllowed),
            (3, SocksError::NetworkUnreachable),
            (4, SocksError::HostUnreachable),
            (5, SocksError::ConnectionRefused),
            (6, SocksError::TtlExpired),
            (7, SocksError::CommandNotSupported),
            (8, SocksError::AddressTypeNotSupported),
            (9, SocksError::UnknownReply(9)),
            (0xff, SocksError::UnknownReply(0xff)),
        ];
        let make = v5(ip("1.2.3.4:5"), None);
        for (rep, error) in codes {
            // A whole reply, and a proxy that sends only two bytes then hangs.
            let whole = [5, 0, 5, rep, 0, 1, 0, 0, 0, 0, 0, 0];
            assert_eq!(all_ways(&make, &whole, false), Err(error), "{rep}");
            assert_eq!(all_ways(&make, &whole[..4], false), Err(error), "{rep}");
        }
        assert_eq!(
            all_ways(&make, &[5, 0, 4, 0, 0, 1], false),
            Err(SocksError::NotSocks5Reply)
        );
    }

    #[test]
    fn v5_reply_is_read_whole_whatever_its_address() {
        let make = v5(name("h", 1), None);
        let cases: [(&[u8], Option<SocksDone>); 4] = [
            (
                &[
                    5, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80,
                ],
                bound("[::1]:80"),
            ),
            (
                b"\x05\x00\x00\x03\x04abcd\x00\x50",
                Some(SocksDone { bound: None }),
            ),
            (
                b"\x05\x00\x00\x03\x00\x00\x50",
                Some(SocksDone { bound: None }),
            ),
            // RSV is not checked.
            (&[5, 0, 7, 1, 0, 0, 0, 0, 0, 0], bound("0.0.0.0:0")),
        ];
        for (reply, done) in cases {
            let wire = [&[5, 0][..], reply, b"\x16\x03"].concat();
            let (n, got, _) = all_ways(&make, &wire, false).unwrap();
            assert_eq!((n, got), (wire.len() - 2, done), "{reply:?}");
            // One byte short is still waiting.
            let short = &wire[..wire.len() - 3];
            assert_eq!(all_ways(&make, short, false).unwrap().1, None);
        }
        // The longest reply: a 255-byte name.
        let mut wire = vec![5, 0, 5, 0, 0, 3, 255];
        wire.extend_from_slice(&[b'a'; 255]);
        wire.extend_from_slice(&[0, 80, b'x']);
        let mut socks = make();
        assert_eq!(socks.handle_input(&wire).unwrap().0, wire.len() - 1);
        for atyp in [0, 2, 5, 0xff] {
            assert_eq!(
                all_ways(&make, &[5, 0, 5, 0, 0, atyp, 0, 0, 0, 0, 0, 0], false),
                Err(SocksError::MalformedReply),
                "{atyp}"
            );
        }
    }

    #[test]
    fn v4a_requests() {
        let granted = [0, 90, 0, 0, 0, 0, 0, 0];
        let cases = [
            (
                ip("10.0.0.1:80"),
                "",
                &b"\x04\x01\x00\x50\x0a\x00\x00\x01\x00"[..],
            ),
            (
                ip("10.0.0.1:80"),
                "bob",
                b"\x04\x01\x00\x50\x0a\x00\x00\x01bob\x00",
            ),
            (
                name("ex.com", 443),
                "",
                b"\x04\x01\x01\xbb\x00\x00\x00\x01\x00ex.com\x00",
            ),
            (
                name("ex.com", 443),
                "u",
                b"\x04\x01\x01\xbb\x00\x00\x00\x01u\x00ex.com\x00",
            ),
            // 0.0.0.5 would mean "a name follows": sent as one.
            (
                ip("0.0.0.5:1"),
                "",
                b"\x04\x01\x00\x01\x00\x00\x00\x01\x000.0.0.5\x00",
            ),
            (ip("0.0.0.0:1"), "", b"\x04\x01\x00\x01\x00\x00\x00\x00\x00"),
        ];
        for (target, user, request) in cases {
            let wire = [&granted[..], b"tunnel"].concat();
            let (n, done, sent) = all_ways(v4a(target, user), &wire, false).unwrap();
            assert_eq!((n, done), (8, bound("0.0.0.0:0")));
            assert_eq!(sent, request);
        }
        let make = v4a(name("h", 1), "");
        let wire = [0, 90, 0x1f, 0x90, 192, 0, 2, 1];
        assert_eq!(
            all_ways(&make, &wire, false).unwrap().1,
            bound("192.0.2.1:8080")
        );
    }

    #[test]
    fn v4a_refusals() {
        let make = v4a(name("h", 1), "");
        for (cd, error) in [
            (91, SocksError::Rejected),
            (92, SocksError::NoIdentd),
            (93, SocksError::IdentdMismatch),
            (0, SocksError::UnknownReply(0)),
            (94, SocksError::UnknownReply(94)),
        ] {
            let wire = [0, cd, 0, 0, 0, 0, 0, 0];
            assert_eq!(all_ways(&make, &wire, false), Err(error), "{cd}");
            assert_eq!(all_ways(&make, &wire[..2], false), Err(error), "{cd}");
        }
        assert_eq!(
            all_ways(&make, &[4, 90, 0, 0, 0, 0, 0, 0], false),
            Err(SocksError::NotSocks4Reply)
        );
    }

    #[test]
    fn eof_mid_handshake_is_closed() {
        let with = v5(name("h", 1), Some(("u", "p")));
        for wire in [
            &b""[..],
            &[5],
            &[5, 2],
            &[5, 2, 1],
            &[5, 2, 1, 0, 5, 0, 0, 3, 9],
        ] {
            assert_eq!(
                all_ways(&with, wire, true),
                Err(SocksError::Closed),
                "{wire:?}"
            );
        }
        let four = v4a(name("h", 1), "");
        assert_eq!(all_ways(four, &[0, 90, 0], true), Err(SocksError::Closed));
        // An earlier error stays the error.
        let mut socks = with();
        assert_eq!(
            socks.handle_input(&[5, 0xff]),
            Err(SocksError::NoAcceptableMethod)
        );
        assert_eq!(socks.handle_eof(), SocksError::NoAcceptableMethod);
    }

    #[test]
    fn sending_is_stepwise_and_partial_writes_resume() {
        let mut socks = SocksHandshake::v5(name("h", 1), Some(("u", "p"))).unwrap();
        assert_eq!(socks.poll_transmit(), [5, 2, 0, 2]);
        socks.handle_transmitted(1);
        assert_eq!(socks.poll_transmit(), [2, 0, 2]);
        // A proxy answering before the greeting is all out: the next message queues behind.
        assert_eq!(socks.handle_input(&[5, 2]).unwrap(), (2, None));
        assert_eq!(socks.poll_transmit(), b"\x02\x00\x02\x01\x01u\x01p");
        socks.handle_transmitted(8);
        assert!(socks.poll_transmit().is_empty(), "waiting for the status");
        assert_eq!(socks.handle_input(&[]).unwrap(), (0, None));
        assert_eq!(socks.handle_input(&[1, 0]).unwrap(), (2, None));
        assert_eq!(socks.poll_transmit(), b"\x05\x01\x00\x03\x01h\x00\x01");
    }

    #[test]
    #[should_panic(expected = "only 3 bytes")]
    fn transmitting_more_than_queued_panics() {
        SocksHandshake::v5(name("h", 1), None)
            .unwrap()
            .handle_transmitted(4);
    }

    #[test]
    fn debug_never_shows_credentials() {
        let mut socks = SocksHandshake::v5(name("h", 1), Some(("alice", "s3cret"))).unwrap();
        assert!(!format!("{socks:?}").contains("s3cret"));
        socks.handle_transmitted(4);
        socks.handle_input(&[5, 2]).unwrap();
        let debug = format!("{socks:?}");
        assert!(
            !debug.contains("s3cret") && !debug.contains("115, 51"),
            "{debug}"
        );
        let socks = SocksHandshake::v4a(name("h", 1), "alice").unwrap();
        assert!(!format!("{socks:?}").contains("alice"));
    }

    #[test]
    fn caller_errors_before_anything_is_sent() {
        let long = "a".repeat(256);
        let cases = [
            (
                SocksHandshake::v5(name(&long, 1), None).err(),
                SocksError::TargetNameTooLong,
            ),
            (
                SocksHandshake::v5(name("", 1), None).err(),
                SocksError::InvalidTargetName,
            ),
            (
                SocksHandshake::v5(name("a\0b", 1), None).err(),
                SocksError::InvalidTargetName,
            ),
            (
                SocksHandshake::v5(name("h", 1), Some((&long, "p"))).err(),
                SocksError::CredentialsTooLong,
            ),
            (
                SocksHandshake::v5(name("h", 1), Some(("u", &long))).err(),
                SocksError::CredentialsTooLong,
            ),
            (
                SocksHandshake::v5(name("h", 1), Some(("", "p"))).err(),
                SocksError::InvalidCredentials,
            ),
            (
                SocksHandshake::v4a(ip("[::1]:1"), "").err(),
                SocksError::Ipv6WithSocks4a,
            ),
            (
                SocksHandshake::v4a(name("", 1), "").err(),
                SocksError::InvalidTargetName,
            ),
            (
                SocksHandshake::v4a(name("a\0", 1), "").err(),
                SocksError::InvalidTargetName,
            ),
            (
                SocksHandshake::v4a(name("h", 1), "u\0").err(),
                SocksError::InvalidCredentials,
            ),
        ];
        for (i, (got, want)) in cases.into_iter().enumerate() {
            assert_eq!(got, Some(want), "case {i}");
            assert!(!want.caused_by_peer());
        }
        // The limits themselves are fine; SOCKS4a names have no length limit.
        let max = "a".repeat(255);
        assert!(SocksHandshake::v5(name(&max, 1), Some((&max, &max))).is_ok());
        assert!(SocksHandshake::v4a(name(&long, 1), &long).is_ok());
    }

    #[test]
    fn messages_are_lowercase_distinct_and_displayed() {
        let all = [
            SocksError::GeneralFailure,
            SocksError::NotAllowed,
            SocksError::NetworkUnreachable,
            SocksError::HostUnreachable,
            SocksError::ConnectionRefused,
            SocksError::TtlExpired,
            SocksError::CommandNotSupported,
            SocksError::AddressTypeNotSupported,
            SocksError::Rejected,
            SocksError::NoIdentd,
            SocksError::IdentdMismatch,
            SocksError::UnknownReply(9),
            SocksError::NoAcceptableMethod,
            SocksError::AuthFailed,
            SocksError::NotSocks5Reply,
            SocksError::NotSocks4Reply,
            SocksError::MalformedReply,
            SocksError::Closed,
            SocksError::TargetNameTooLong,
            SocksError::InvalidTargetName,
            SocksError::CredentialsTooLong,
            SocksError::InvalidCredentials,
            SocksError::Ipv6WithSocks4a,
        ];
        let mut seen = std::collections::HashSet::new();
        for e in all {
            let msg = e.as_str();
            assert_eq!(msg, msg.to_lowercase(), "{e:?}");
            assert!(seen.insert(msg), "duplicate message for {e:?}");
            if !matches!(e, SocksError::UnknownReply(_)) {
                assert_eq!(e.to_string(), msg);
            }
        }
        assert_eq!(
            SocksError::UnknownReply(9).to_string(),
            "unknown socks reply code 9"
        );
        assert_eq!(all.iter().filter(|e| !e.caused_by_peer()).count(), 5);
    }
}
