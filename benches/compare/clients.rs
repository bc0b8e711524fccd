//! The three clients, each running the same workload: `count` GETs of one URL, at most `n`
//! in flight, bodies streamed and counted (never kept), keep-alive or `Connection: close`.
//! Each is set up as its own best (see README, "Benchmarks"), not weakened to match.

use std::cell::Cell;
use std::rc::Rc;

/// What a run fetched.
#[derive(Debug, Default)]
pub struct Tally {
    pub ok: u64,
    pub failed: u64,
    pub bytes: u64,
    pub first_error: Option<String>,
}

impl Tally {
    fn fail(&mut self, why: String) {
        self.failed += 1;
        if self.first_error.is_none() {
            self.first_error = Some(why);
        }
    }
}

/// parafetch: one `Fetcher`, callbacks counting, each body streamed to a counting sink.
/// The idle pool is sized to `n` so no finished connection is dropped for lack of room
/// (its default keeps 32 per host).
pub fn parafetch(
    url: &str,
    n: usize,
    count: usize,
    keep_alive: bool,
    proxy: Option<&str>,
) -> Tally {
    use parafetch::{Done, Fetcher, Queue, Request};
    let tally = Rc::new(std::cell::RefCell::new(Tally::default()));
    let bytes = Rc::new(Cell::new(0u64));
    let mut builder = Fetcher::builder()
        .max_in_flight(n)
        .keep_alive(keep_alive)
        .pool_max_idle(n.max(32), n.max(1024))
        .proxy_from_env(false);
    if let Some(p) = proxy {
        builder = builder.proxy(p);
    }
    let mut fetcher: Fetcher<()> = builder.build();
    for _ in 0..count {
        let b = bytes.clone();
        let request = Request::get(url).on_body(move |data| {
            b.set(b.get() + data.len() as u64);
            Ok(())
        });
        let t = tally.clone();
        let on_done = move |done: Done<()>, _: &mut Queue<()>| {
            let mut t = t.borrow_mut();
            match done.result {
                Ok(r) if r.status == 200 => t.ok += 1,
                Ok(r) => t.fail(format!("status {}", r.status)),
                Err(e) => t.fail(e.to_string()),
            }
        };
        fetcher
            .start_request(request, on_done, ())
            .expect("valid request");
    }
    fetcher.finish_all_requests();
    drop(fetcher);
    let mut t = Rc::try_unwrap(tally).expect("fetcher gone").into_inner();
    t.bytes = bytes.get();
    t
}

/// The ParallelCurl shape on the `curl` crate: one `Multi` (its connection cache on, HTTP/1.1,
/// no pipelining), `n` `Easy2` handles; a finished handle is removed and re-added for the
/// next request, so curl keeps its connection for reuse. The loop is `perform`, read
/// messages, `wait` (curl_multi_wait). `Connection: close` mode sends the header and sets
/// `forbid_reuse`.
pub fn curl_multi(
    url: &str,
    n: usize,
    count: usize,
    keep_alive: bool,
    proxy: Option<&str>,
) -> Tally {
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

    let mut tally = Tally::default();
    let mut multi = Multi::new();
    multi.pipelining(false, false).expect("pipelining off");
    // curl's default cache size is 4 x the handles added; say so explicitly.
    multi.set_max_connects(4 * n).expect("max connects");
    let mut handles: Vec<Option<Easy2Handle<Counter>>> = Vec::new();
    let mut started = 0;
    for token in 0..n.min(count) {
        let mut easy = Easy2::new(Counter(0));
        easy.url(url).expect("url");
        easy.http_version(HttpVersion::V11).expect("http/1.1");
        easy.signal(false).expect("nosignal");
        easy.tcp_nodelay(true).expect("nodelay");
        // An explicit proxy, or none (libcurl would otherwise read http_proxy).
        easy.proxy(proxy.unwrap_or("")).expect("proxy");
        if !keep_alive {
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

/// reqwest on a current-thread tokio runtime: `buffer_unordered(n)` over the requests, each
/// body read chunk by chunk and counted. Keep-alive keeps up to `n` idle connections;
/// `Connection: close` mode sends the header and keeps none.
pub fn reqwest(url: &str, n: usize, count: usize, keep_alive: bool, proxy: Option<&str>) -> Tally {
    use futures_util::StreamExt;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let mut builder = reqwest::Client::builder()
            .tcp_nodelay(true)
            .no_proxy()
            .pool_max_idle_per_host(if keep_alive { n } else { 0 });
        if let Some(p) = proxy {
            builder = builder.proxy(reqwest::Proxy::all(p).expect("proxy url"));
        }
        if !keep_alive {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(
                reqwest::header::CONNECTION,
                reqwest::header::HeaderValue::from_static("close"),
            );
            builder = builder.default_headers(headers);
        }
        let client = builder.build().expect("reqwest client");
        let url = reqwest::Url::parse(url).expect("url");
        let client = &client;
        let url = &url;
        futures_util::stream::iter(0..count)
            .map(|_| async move {
                let mut resp = client.get(url.clone()).send().await?;
                let status = resp.status().as_u16();
                let mut bytes = 0u64;
                while let Some(chunk) = resp.chunk().await? {
                    bytes += chunk.len() as u64;
                }
                Ok::<_, reqwest::Error>((status, bytes))
            })
            .buffer_unordered(n)
            .fold(Tally::default(), |mut t, r| async move {
                match r {
                    Ok((200, bytes)) => {
                        t.ok += 1;
                        t.bytes += bytes;
                    }
                    Ok((status, _)) => t.fail(format!("status {status}")),
                    Err(e) => t.fail(format!("{e:?}")),
                }
                t
            })
            .await
    })
}
