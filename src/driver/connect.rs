//! Happy Eyeballs (RFC 8305): the connection attempts of one connection race, a new one
//! starting every [`CONNECTION_ATTEMPT_DELAY`] (or at once when every running one failed)
//! while addresses remain; the first to connect wins and the others are dropped.
//!
//! Owns the racing sockets until one wins. It never reads the clock or touches the slab:
//! the connection state machine (`conn.rs`) drives it and acts on each [`RaceStep`].

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::timer::later;
use super::token::LANES;

/// RFC 8305 §5 "Connection Attempt Delay": start the next address after this long.
pub(crate) const CONNECTION_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// One connection attempt of a race.
struct Racer {
    lane: u8,
    stream: TcpStream,
    addr: SocketAddr,
}

/// The addresses of one origin and the attempts running on them.
pub(crate) struct Race {
    addrs: Vec<SocketAddr>,
    next: usize,
    racers: Vec<Racer>,
    /// When the next address starts (while one is left and one is running).
    pub(crate) next_at: Option<Instant>,
    last_err: Option<io::Error>,
    lanes: u8,
}

/// What a race came to after a step.
pub(crate) enum RaceStep {
    /// Attempts are running; wait for their events (or `next_at`).
    Running,
    /// This attempt connected; the rest were dropped.
    Won {
        stream: TcpStream,
        addr: SocketAddr,
        lane: u8,
    },
    /// Every address failed; the last error, if any was seen.
    Lost(Option<io::Error>),
    /// No socket could be made (the process is out of file descriptors): try again when
    /// one is freed. Nothing was lost: the same address is tried next.
    OutOfDescriptors,
}

impl Race {
    pub(crate) fn new(addrs: Vec<SocketAddr>) -> Race {
        Race {
            addrs,
            next: 0,
            racers: Vec::new(),
            next_at: None,
            last_err: None,
            lanes: 0,
        }
    }

    /// The last connect error seen, for a timeout's message.
    pub(crate) fn last_error(&self) -> Option<&io::Error> {
        self.last_err.as_ref()
    }

    /// Starts an attempt on the next address that takes one. `token` gives the token of a
    /// lane. Sockets that failed at once count in `closed`.
    pub(crate) fn advance(
        &mut self,
        registry: &Registry,
        token: impl Fn(u8) -> Token,
        now: Instant,
    ) -> RaceStep {
        while let Some(&addr) = self.addrs.get(self.next) {
            let lane = self.lanes % LANES;
            let started = TcpStream::connect(addr).and_then(|mut stream| {
                let interest = Interest::READABLE | Interest::WRITABLE;
                registry.register(&mut stream, token(lane), interest)?;
                Ok(stream)
            });
            match started {
                Ok(stream) => {
                    self.next += 1;
                    self.lanes = self.lanes.wrapping_add(1);
                    self.racers.push(Racer { lane, stream, addr });
                    self.next_at = (self.next < self.addrs.len())
                        .then(|| later(now, CONNECTION_ATTEMPT_DELAY));
                    return RaceStep::Running;
                }
                Err(e) if out_of_descriptors(&e) => {
                    // Not this address's fault: it is tried again when a descriptor frees.
                    self.last_err = Some(e);
                    self.next_at = None;
                    return RaceStep::OutOfDescriptors;
                }
                Err(e) => {
                    self.next += 1;
                    self.last_err = Some(e);
                }
            }
        }
        self.next_at = None;
        if self.racers.is_empty() {
            RaceStep::Lost(self.last_err.take())
        } else {
            RaceStep::Running
        }
    }

    /// A readiness event on lane `lane`: confirms the connect as mio documents it
    /// (`take_error`, then `peer_addr`; `NotConnected` means not yet). `closed` is set when
    /// a socket was dropped.
    pub(crate) fn on_event(
        &mut self,
        lane: u8,
        registry: &Registry,
        token: impl Fn(u8) -> Token,
        now: Instant,
        closed: &mut bool,
    ) -> RaceStep {
        let Some(i) = self.racers.iter().position(|r| r.lane == lane) else {
            return RaceStep::Running; // an attempt already dropped
        };
        let stream = &self.racers[i].stream;
        let failure = match stream.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match stream.peer_addr() {
                Ok(_) => None,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return RaceStep::Running,
                Err(e) => Some(e),
            },
        };
        let mut won = self.racers.swap_remove(i);
        *closed = true;
        if let Some(e) = failure {
            let _ = registry.deregister(&mut won.stream);
            self.last_err = Some(e);
            if self.racers.is_empty() {
                // Nothing left running: the next address starts now, not in 250 ms.
                return self.advance(registry, token, now);
            }
            return RaceStep::Running;
        }
        self.close(registry);
        RaceStep::Won {
            stream: won.stream,
            addr: won.addr,
            lane: won.lane,
        }
    }

    /// Drops every running attempt; says whether any socket was closed.
    pub(crate) fn close(&mut self, registry: &Registry) -> bool {
        let any = !self.racers.is_empty();
        for mut r in self.racers.drain(..) {
            let _ = registry.deregister(&mut r.stream);
        }
        self.next_at = None;
        any
    }
}

/// EMFILE or ENFILE: the process or the system is out of file descriptors.
pub(crate) fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24))
}
