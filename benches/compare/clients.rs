//! The clients, each running the same workload: `count` GETs of one URL, at most `n` in
//! flight, bodies streamed and counted (never kept), keep-alive or `Connection: close`, over
//! http or https. Each is set up as its own best (see docs/benchmarks.md), not weakened to
//! match.
//!
//! https: every client trusts only the harness's test CA. parafetch and reqwest run the
//! same rustls (ring provider, ALPN http/1.1); curl runs the system libcurl's OpenSSL.
//! Session resumption is each client's default (on), or turned off for the `no-resume`
//! cells.

use std::path::PathBuf;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use parafetch::rustls;

/// One run's workload.
pub struct Workload<'a> {
    pub url: &'a str,
    pub n: usize,
    pub count: usize,
    pub keep_alive: bool,
    /// Through this proxy.
    pub proxy: Option<&'a str>,
    /// For https URLs.
    pub tls: Option<Tls>,
}

/// What an https run trusts, and whether TLS sessions may resume.
pub struct Tls {
    /// The test CA, PEM.
    pub ca_pem: Vec<u8>,
    /// The same, as a file (for curl's CAINFO).
    pub ca_path: PathBuf,
    pub resume: bool,
}

/// What a run fetched.
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: u64,
    pub failed: u64,
    pub bytes: u64,
    /// Responses that came over a resumed TLS session, where the client can say (parafetch).
    pub resumed: Option<u64>,
    pub first_error: Option<String>,
}

impl Tally {
    fn fail(&mut self, why: String) {
        self.failed += 1;
        if self.first_error.is_none() {
            self.first_error = Some(why);
        }
    }

    /// Counts one of parafetch's results (a 200 is a success, and a resumed TLS session
    /// is counted as such).
    fn count_parafetch(&mut self, result: Result<parafetch::Response, parafetch::Error>) {
        match result {
            Ok(r) if r.status == 200 => {
                self.ok += 1;
                if resumed(&r) {
                    *self.resumed.get_or_insert(0) += 1;
                }
            }
            Ok(r) => self.fail(format!("status {}", r.status)),
            Err(e) => self.fail(e.to_string()),
        }
    }

    /// Adds `other`'s counts to these (the first error stays the first).
    fn add(&mut self, other: Tally) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.bytes += other.bytes;
        if let Some(r) = other.resumed {
            *self.resumed.get_or_insert(0) += r;
        }
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// The rustls config parafetch (without resumption) and reqwest use: only the test CA,
/// ring, ALPN http/1.1, and rustls's default in-memory session cache unless `resume` is off.
/// An empty `ca_pem` trusts nothing (reqwest's http runs).
fn rustls_config(ca_pem: &[u8], resume: bool) -> rustls::ClientConfig {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if !resume {
        config.resumption = rustls::client::Resumption::disabled();
    }
    config
}

/// parafetch's options for a workload. The idle pool is sized to `n` so no finished
/// connection is dropped for lack of room (its default keeps 32 per host). https with
/// resumption is the ordinary API (`tls_roots_pem`); parafetch has no resumption switch, so
/// `no-resume` hands it a whole rustls config with resumption disabled.
fn parafetch_builder(w: &Workload) -> parafetch::Builder {
    let mut builder = parafetch::Fetcher::builder()
        .max_in_flight(w.n)
        .keep_alive(w.keep_alive)
        .pool_max_idle(w.n.max(32), w.n.max(1024))
        .proxy_from_env(false);
    if let Some(p) = w.proxy {
        builder = builder.proxy(p);
    }
    if let Some(tls) = &w.tls {
        builder = if tls.resume {
            builder.tls_default_roots(false).tls_roots_pem(&tls.ca_pem)
        } else {
            builder.tls_config(Arc::new(rustls_config(&tls.ca_pem, false)))
        };
    }
    builder
}

fn resumed(r: &parafetch::Response) -> bool {
    r.tls.as_ref().is_some_and(|t| t.resumed)
}

/// parafetch: one `Fetcher`, callbacks counting, each body streamed to a counting sink.
pub fn parafetch(w: &Workload) -> Tally {
    use parafetch::{Done, Fetcher, Queue, Request};
    let tally = Rc::new(std::cell::RefCell::new(Tally {
        resumed: Some(0),
        ..Tally::default()
    }));
    // A sink must be Send: an atomic, touched by this thread only.
    let bytes = Arc::new(AtomicU64::new(0));
    let mut fetcher: Fetcher<()> = parafetch_builder(w).build();
    for _ in 0..w.count {
        let b = bytes.clone();
        let request = Request::get(w.url).on_body(move |data| {
            b.fetch_add(data.len() as u64, Relaxed);
            Ok(())
        });
        let t = tally.clone();
        let on_done = move |done: Done<()>, _: &mut Queue<()>| {
            t.borrow_mut().count_parafetch(done.result);
        };
        fetcher
            .start_request(request, on_done, ())
            .expect("valid request");
    }
    fetcher.finish_all_requests();
    drop(fetcher);
    let mut t = Rc::try_unwrap(tally).expect("fetcher gone").into_inner();
    t.bytes = bytes.load(Relaxed);
    t
}

/// Host names the threaded client spreads its requests over (the test leaf covers them).
const SPREAD: usize = 8;

/// parafetch on `threads` loops of their own (`Builder::threads(n).spawn()`), fed through
/// a `Handle` from this thread as a crawler's producer would: the same callbacks and
/// counting sink as the one-loop client, made `Send` (atomics, a mutex per answer).
pub fn parafetch_threads(w: &Workload, threads: usize) -> Tally {
    use parafetch::{Done, Request, SendQueue};
    // Eight host names for the one server, so requests spread over the loops (they are
    // routed by host). A backlog of N lets this producer hand over work in batches.
    let url = url::Url::parse(w.url).expect("a URL");
    let port = url.port_or_known_default().expect("a port");
    let addr: std::net::SocketAddr = format!("{}:{port}", url.host_str().expect("a host"))
        .parse()
        .expect("an address");
    let mut builder = parafetch_builder(w).threads(threads).backlog(w.n);
    let urls: Vec<String> = (0..SPREAD)
        .map(|i| {
            let name = format!("h{i}.test");
            builder = std::mem::take(&mut builder).resolve(&name, port, &[addr]);
            let mut u = url.clone();
            u.set_host(Some(&name)).expect("a host name");
            u.to_string()
        })
        .collect();
    let handle = builder.spawn::<()>().expect("the fetcher starts");
    for i in 0..w.count {
        // Counted per loop thread (see `LoopTally`): nothing the loops share but the
        // library's own state, as the one-loop client shares nothing.
        let request = Request::get(&urls[i % SPREAD]).on_body(|data| {
            LOOP_TALLY.with(|t| t.0.borrow_mut().bytes += data.len() as u64);
            Ok(())
        });
        let on_done = |done: Done<()>, _: &mut SendQueue<()>| {
            LOOP_TALLY.with(|t| t.0.borrow_mut().count_parafetch(done.result))
        };
        // Waits for room: at most N in flight plus a backlog of N.
        handle.submit(request, on_done, ()).expect("valid request");
    }
    // Joins the loop threads, whose tallies are added to TOTAL as they end.
    handle.shutdown();
    let mut t = std::mem::take(&mut *TOTAL.lock().unwrap());
    t.resumed.get_or_insert(0);
    t
}

/// A loop thread's counts, added to [`TOTAL`] when the thread ends.
struct LoopTally(std::cell::RefCell<Tally>);

impl Drop for LoopTally {
    fn drop(&mut self) {
        let t = std::mem::take(&mut *self.0.borrow_mut());
        TOTAL.lock().unwrap().add(t);
    }
}

thread_local! {
    static LOOP_TALLY: LoopTally = LoopTally(Default::default());
}

static TOTAL: Mutex<Tally> = Mutex::new(Tally {
    ok: 0,
    failed: 0,
    bytes: 0,
    first_error: None,
    resumed: None,
});

/// The ParallelCurl shape on the `curl` crate: one `Multi` (its connection cache on, HTTP/1.1,
/// no pipelining), `n` `Easy2` handles; a finished handle is removed and re-added for the
/// next request, so curl keeps its connection for reuse. The loop is `perform`, read
/// messages, `wait` (curl_multi_wait). `Connection: close` mode sends the header and sets
/// `forbid_reuse`. https: `CAINFO` is the test CA; libcurl keeps TLS sessions per easy
/// handle (so each of the `n` handles resumes its own), off with `SSL_SESSIONID_CACHE` 0.
pub fn curl_multi(w: &Workload) -> Tally {
    use curl::easy::{Easy2, Handler, HttpVersion, List, WriteError};
    use curl::multi::{Easy2Handle, Multi};
    use std::time::Duration;

    struct Counter(u64);
    impl Handler for Counter {
        fn write(&mut self, data: &[u8]) -> Result<usize, WriteError> {
            self.0 += data.len() as u64;
            Ok(data.len())
        }
    }

    let (n, count) = (w.n, w.count);
    let mut tally = Tally::default();
    let mut multi = Multi::new();
    multi.pipelining(false, false).expect("pipelining off");
    // curl's default cache size is 4 x the handles added; say so explicitly.
    multi.set_max_connects(4 * n).expect("max connects");
    let mut handles: Vec<Option<Easy2Handle<Counter>>> = Vec::new();
    let mut started = 0;
    for token in 0..n.min(count) {
        let mut easy = Easy2::new(Counter(0));
        easy.url(w.url).expect("url");
        easy.http_version(HttpVersion::V11).expect("http/1.1");
        easy.signal(false).expect("nosignal");
        easy.tcp_nodelay(true).expect("nodelay");
        // An explicit proxy, or none (libcurl would otherwise read http_proxy).
        easy.proxy(w.proxy.unwrap_or("")).expect("proxy");
        if let Some(tls) = &w.tls {
            easy.cainfo(&tls.ca_path).expect("cainfo");
            easy.ssl_sessionid_cache(tls.resume)
                .expect("ssl session cache");
        }
        if !w.keep_alive {
            easy.forbid_reuse(true).expect("forbid reuse");
            let mut list = List::new();
            list.append("Connection: close").expect("header");
            easy.http_headers(list).expect("headers");
        }
        let mut h = multi.add2(easy).expect("add handle");
        h.set_token(token).expect("token");
        handles.push(Some(h));
        started += 1;
    }
    let mut done = 0;
    let mut finished = Vec::new();
    while done < count {
        multi.perform().expect("perform");
        multi.messages(|msg| {
            if let Ok(token) = msg.token()
                && let Some(h) = handles[token].as_ref()
                && let Some(result) = msg.result_for2(h)
            {
                finished.push((token, result));
            }
        });
        let restarted = !finished.is_empty();
        for (token, result) in finished.drain(..) {
            done += 1;
            let h = handles[token].take().expect("running handle");
            let mut easy = multi.remove2(h).expect("remove handle");
            match result {
                Ok(()) => match easy.response_code() {
                    Ok(200) => tally.ok += 1,
                    code => tally.fail(format!("status {code:?}")),
                },
                Err(e) => tally.fail(e.to_string()),
            }
            tally.bytes += easy.get_ref().0;
            easy.get_mut().0 = 0;
            if started < count {
                let mut h = multi.add2(easy).expect("re-add handle");
                h.set_token(token).expect("token");
                handles[token] = Some(h);
                started += 1;
            }
        }
        if !restarted && done < count {
            multi
                .wait(&mut [], Duration::from_secs(1))
                .expect("multi wait");
        }
    }
    tally
}

/// One GET through reqwest, its body read chunk by chunk and counted: (status, bytes).
async fn reqwest_get(
    client: &reqwest::Client,
    url: &reqwest::Url,
) -> Result<(u16, u64), reqwest::Error> {
    let mut resp = client.get(url.clone()).send().await?;
    let status = resp.status().as_u16();
    let mut bytes = 0u64;
    while let Some(chunk) = resp.chunk().await? {
        bytes += chunk.len() as u64;
    }
    Ok((status, bytes))
}

/// reqwest: `buffer_unordered(n)` over the requests, each body read chunk by chunk and
/// counted. Keep-alive keeps up to `n` idle connections; `Connection: close` mode sends the
/// header and keeps none. https: the rustls config of [`rustls_config`], handed over whole
/// (`tls_backend_preconfigured`), so reqwest and parafetch run the same TLS stack.
///
/// `workers` 0: a current-thread tokio runtime, the futures polled in place. Otherwise a
/// multi-thread runtime with that many workers, each request spawned as its own task (a
/// `buffer_unordered` of futures would poll them all on the one thread that awaits it).
pub fn reqwest(w: &Workload, workers: usize) -> Tally {
    use futures_util::StreamExt;

    let rt = if workers == 0 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
    }
    .expect("tokio runtime");
    let n = w.n;
    let mut builder = reqwest::Client::builder()
        .tcp_nodelay(true)
        .no_proxy()
        .pool_max_idle_per_host(if w.keep_alive { n } else { 0 });
    if let Some(p) = w.proxy {
        builder = builder.proxy(reqwest::Proxy::all(p).expect("proxy url"));
    }
    // Over http too: built with TLS, reqwest makes a rustls config for every client, and
    // without a process-wide crypto provider (`rustls-no-provider`) it would panic. One with
    // no roots costs nothing and, unlike a default one, loads no system certificates.
    builder = builder.tls_backend_preconfigured(match &w.tls {
        Some(tls) => rustls_config(&tls.ca_pem, tls.resume),
        None => rustls_config(b"", true),
    });
    if !w.keep_alive {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::CONNECTION,
            reqwest::header::HeaderValue::from_static("close"),
        );
        builder = builder.default_headers(headers);
    }
    let tally = |mut t: Tally, r: Result<(u16, u64), reqwest::Error>| async move {
        match r {
            Ok((200, bytes)) => {
                t.ok += 1;
                t.bytes += bytes;
            }
            Ok((status, _)) => t.fail(format!("status {status}")),
            Err(e) => t.fail(format!("{e:?}")),
        }
        t
    };
    rt.block_on(async {
        let client = builder.build().expect("reqwest client");
        let url = reqwest::Url::parse(w.url).expect("url");
        let requests = futures_util::stream::iter(0..w.count);
        if workers == 0 {
            let (client, url) = (&client, &url);
            requests
                .map(|_| reqwest_get(client, url))
                .buffer_unordered(n)
                .fold(Tally::default(), tally)
                .await
        } else {
            requests
                .map(|_| {
                    let (client, url) = (client.clone(), url.clone());
                    tokio::spawn(async move { reqwest_get(&client, &url).await })
                })
                .buffer_unordered(n)
                .map(|joined| joined.expect("request task"))
                .fold(Tally::default(), tally)
                .await
        }
    })
}
