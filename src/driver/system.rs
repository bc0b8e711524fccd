//! The system resolver (`getaddrinfo`) on a few helper threads, which wake the loop through
//! a `mio::Waker` when done. Opt-in: the in-loop stub is the default.
//!
//! Owns the lookup cache and the helper threads. It must never block the loop thread:
//! `lookup` returns at once, `take_results` never waits.

use std::io;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use mio::Waker;

use super::cache::{DNS_CACHE_MAX, TtlCache};
use super::resolve::LookupError;
use super::timer::later;

/// How long a system-resolver answer is reused (getaddrinfo gives no TTL).
const CACHE_TTL: Duration = Duration::from_secs(60);
/// How long a failed lookup is remembered, so a dead name is not asked for per request.
const NEGATIVE_TTL: Duration = Duration::from_secs(5);

/// The outcome of starting a lookup.
pub(crate) enum Lookup {
    /// Known now (cached).
    Ready(Result<Vec<IpAddr>, LookupError>),
    /// Asked; the answer arrives through [`Resolver::take_results`] after a wake-up.
    Pending,
}

type Answer = (String, Result<Vec<IpAddr>, LookupError>);

pub(crate) struct Resolver {
    waker: Arc<Waker>,
    threads: usize,
    jobs: Option<Sender<String>>,
    results: Option<Receiver<Answer>>,
    cache: TtlCache<Result<Vec<IpAddr>, LookupError>>,
}

impl Resolver {
    pub(crate) fn new(waker: Arc<Waker>, threads: usize) -> Resolver {
        Resolver {
            waker,
            threads: threads.max(1),
            jobs: None,
            results: None,
            cache: TtlCache::new(DNS_CACHE_MAX),
        }
    }

    /// Starts resolving `host` (a name, not an IP literal). The caller coalesces: it asks
    /// once per host however many requests wait for it.
    pub(crate) fn lookup(&mut self, host: &str, now: Instant) -> Lookup {
        if let Some(answer) = self.cache.get(host, now) {
            return Lookup::Ready(answer.clone());
        }
        self.spawn_threads();
        match &self.jobs {
            Some(tx) if tx.send(host.to_owned()).is_ok() => Lookup::Pending,
            _ => Lookup::Ready(Err(LookupError::new("resolver threads are gone".into()))),
        }
    }

    /// Answers that arrived since the last call, cached as they pass.
    pub(crate) fn take_results(&mut self, now: Instant) -> Vec<Answer> {
        let Some(rx) = &self.results else {
            return Vec::new();
        };
        let answers: Vec<Answer> = rx.try_iter().collect();
        for (host, answer) in &answers {
            let ttl = if answer.is_ok() {
                CACHE_TTL
            } else {
                NEGATIVE_TTL
            };
            self.cache
                .insert(host.clone(), answer.clone(), later(now, ttl), now);
        }
        answers
    }

    /// Threads start on the first name that needs one, so a run over IP literals starts none.
    fn spawn_threads(&mut self) {
        if self.jobs.is_some() {
            return;
        }
        let (job_tx, job_rx) = mpsc::channel::<String>();
        let (res_tx, res_rx) = mpsc::channel::<Answer>();
        let job_rx = Arc::new(Mutex::new(job_rx));
        for i in 0..self.threads {
            let job_rx = Arc::clone(&job_rx);
            let res_tx = res_tx.clone();
            let waker = Arc::clone(&self.waker);
            let spawned = thread::Builder::new()
                .name(format!("parafetch-resolve-{i}"))
                .spawn(move || resolver_thread(&job_rx, &res_tx, &waker));
            if spawned.is_err() && i == 0 {
                return;
            }
        }
        self.jobs = Some(job_tx);
        self.results = Some(res_rx);
    }
}

fn resolver_thread(jobs: &Mutex<Receiver<String>>, results: &Sender<Answer>, waker: &Waker) {
    loop {
        // The lock is held only while waiting for a job, never during a lookup.
        let host = match jobs.lock() {
            Ok(rx) => match rx.recv() {
                Ok(h) => h,
                Err(_) => return, // the loop is gone
            },
            Err(_) => return,
        };
        let answer = system_lookup(&host);
        if results.send((host, answer)).is_err() {
            return;
        }
        let _ = waker.wake();
    }
}

fn system_lookup(host: &str) -> Result<Vec<IpAddr>, LookupError> {
    match (host, 0u16).to_socket_addrs() {
        Ok(addrs) => {
            let mut ips: Vec<IpAddr> = Vec::new();
            for a in addrs {
                if !ips.contains(&a.ip()) {
                    ips.push(a.ip());
                }
            }
            if ips.is_empty() {
                Err(LookupError::new(format!("{host}: no addresses")))
            } else {
                Ok(ips)
            }
        }
        Err(e) => Err(LookupError::new(lookup_message(host, &e))),
    }
}

fn lookup_message(host: &str, e: &io::Error) -> String {
    format!("{host}: {e}")
}
