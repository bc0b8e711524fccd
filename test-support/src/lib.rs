//! Test scaffolding for parafetch: loopback servers, certificates, a fake nameserver, a fake
//! proxy, and launchers for servers and proxies no one here wrote. A dev-dependency of
//! parafetch (its integration tests, its in-memory TLS unit tests and its benchmarks); never
//! published.
//!
//! One module per concept:
//! - [`http`]: the scriptable [`http::TestServer`] (a thread per connection) and ready-made
//!   scripts;
//! - [`gate`]: the [`gate::Gate`] barrier that proves concurrency from the server side;
//! - [`pki`]: a test CA and leaves made at run time with rcgen;
//! - [`dns`]: the scriptable fake nameserver (UDP and TCP), and a DNS message reader;
//! - [`fault`]: the fault-injecting mio server of the soak;
//! - [`bench_server`]: the benchmarks' built-in mio file server and the files it serves;
//! - [`process`]: CPU time, RSS and file limits of this process, for the benchmarks;
//! - [`nginx`]: nginx on loopback with a generated config;
//! - [`python`]: Python's `http.server` on loopback;
//! - [`proxies`]: real proxies (tinyproxy, squid, dante, microsocks) on loopback;
//! - [`redis`]: redis-server on loopback (persistence off, restartable), and a small RESP
//!   client to look into it;
//! - [`fake_proxy`]: the scriptable fake proxy (HTTP and SOCKS) for the failures real ones
//!   do not produce on demand, with a relay for the successes;
//! - [`tools`]: finding external programs, and failing (under `CI`) or skipping without them.
//!
//! Must not: depend on parafetch. The scaffolding talks to parafetch over sockets only, so
//! it cannot hide a bug by sharing parafetch's code, and parafetch's unit tests can use it.

#![deny(missing_docs)]

pub mod bench_server;
pub mod dns;
pub mod fake_proxy;
pub mod fault;
pub mod gate;
pub mod http;
pub mod httpbin;
pub mod nginx;
pub mod pki;
pub mod process;
pub mod proxies;
pub mod python;
pub mod redis;
pub mod tools;
pub mod warcio;
mod watched;
