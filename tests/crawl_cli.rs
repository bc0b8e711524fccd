//! `parafetch crawl` against a small site on loopback: links (relative, protocol-relative,
//! `<base href>`, fragments, duplicates), scope, depth, include/exclude, robots.txt,
//! sitemaps, redirects in and out of scope, non-HTML and oversized pages, WARC output
//! checked by warcio, and pause/resume with SIGINT.
#![cfg(feature = "cli")]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use parafetch_test_support::http::{Conn, TestServer};
use parafetch_test_support::tools::{self, WARCIO};
use serde_json::Value;

/// A site: path → (status, headers, body). Everything else is 404.
type Site = BTreeMap<String, (u16, Vec<(String, String)>, Vec<u8>)>;

fn html(body: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let h = vec![(
        "Content-Type".to_owned(),
        "text/html; charset=utf-8".to_owned(),
    )];
    (
        200,
        h,
        format!("<!doctype html><html><body>{body}</body></html>").into_bytes(),
    )
}

fn serve(ip: [u8; 4], site: Site, delay: Duration) -> TestServer {
    let site = Arc::new(site);
    TestServer::start_on(IpAddr::V4(Ipv4Addr::from(ip)), move |c: &mut Conn| {
        let site = Arc::clone(&site);
        c.serve_keep_alive(move |r, c| {
            if !delay.is_zero() {
                std::thread::sleep(delay);
            }
            match site.get(r.target.as_str()) {
                Some((status, headers, body)) => {
                    let h: Vec<(&str, &str)> = headers
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_str()))
                        .collect();
                    c.respond(*status, &h, body)
                }
                None => c.respond(404, &[("Content-Type", "text/plain")], b"not found"),
            }
        })
    })
}

fn crawl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_parafetch"))
        .arg("crawl")
        .args(args)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .stdin(Stdio::null())
        .output()
        .expect("run parafetch crawl")
}

fn records(o: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The paths the server answered (robots.txt included), each with how often.
fn hits(s: &TestServer) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in s.requests() {
        *m.entry(r.target).or_default() += 1;
    }
    m
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("parafetch-crawl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The main test site; `other` is a second host (out of scope).
fn site(port_other: u16) -> Site {
    let mut s = Site::new();
    let other = format!("http://127.0.0.2:{port_other}");
    s.insert(
        "/robots.txt".into(),
        (200, vec![], b"User-agent: *\nDisallow: /private\n".to_vec()),
    );
    s.insert(
        "/".into(),
        html(&format!(
            r#"<a href="/a.html">a</a> <a href="a.html#top">a again</a> <a href="/a.html">dup</a>
            <a href="b.html">b</a> <a href="//127.0.0.1:PORT/c.html">c</a>
            <a href="{other}/x.html">out</a> <a href="/private/p.html">private</a>
            <a href="/doc.pdf">pdf</a> <a href="/big.html">big</a>
            <a href="/redir">in</a> <a href="/away">away</a> <a href="mailto:x@y">mail</a>
            <link rel="next" href="/next.html"><link rel="stylesheet" href="/style.css">"#
        )),
    );
    s.insert(
        "/a.html".into(),
        html(r#"<base href="/sub/"><a href="e.html">e</a> <a href="../">home</a>"#),
    );
    s.insert("/b.html".into(), html(r#"<a href="/">home</a>"#));
    s.insert("/c.html".into(), html(""));
    s.insert("/next.html".into(), html(""));
    s.insert(
        "/sub/e.html".into(),
        html(r#"<a href="../a.html">back</a>"#),
    );
    s.insert("/private/p.html".into(), html(""));
    s.insert("/d.html".into(), html(""));
    s.insert(
        "/doc.pdf".into(),
        (
            200,
            vec![("Content-Type".into(), "application/pdf".into())],
            b"%PDF <a href=\"/never.html\">".to_vec(),
        ),
    );
    let mut big = String::from(r#"<a href="/early.html">early</a>"#);
    big.push_str(&"<p>filler</p>".repeat(20_000));
    big.push_str(r#"<a href="/late.html">late</a>"#);
    s.insert("/big.html".into(), html(&big));
    s.insert("/early.html".into(), html(""));
    s.insert("/late.html".into(), html(""));
    s.insert(
        "/redir".into(),
        (302, vec![("Location".into(), "/d.html".into())], vec![]),
    );
    s.insert(
        "/away".into(),
        (
            302,
            vec![("Location".into(), format!("{other}/y.html"))],
            vec![],
        ),
    );
    s
}

/// A server whose site is set after it starts (pages that name its own port).
fn serve_later() -> (TestServer, Arc<Mutex<Site>>) {
    let shared: Arc<Mutex<Site>> = Arc::default();
    let inner = Arc::clone(&shared);
    let server = TestServer::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), move |c: &mut Conn| {
        let inner = Arc::clone(&inner);
        c.serve_keep_alive(move |r, c| {
            let page = inner.lock().unwrap().get(r.target.as_str()).cloned();
            match page {
                Some((status, headers, body)) => {
                    let h: Vec<(&str, &str)> = headers
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_str()))
                        .collect();
                    c.respond(status, &h, &body)
                }
                None => c.respond(404, &[("Content-Type", "text/plain")], b"not found"),
            }
        })
    });
    (server, shared)
}

/// Replaces `from` with `to` in every body of `site`.
fn patch(site: &mut Site, from: &str, to: &str) {
    for (_, (_, _, body)) in site.iter_mut() {
        *body = String::from_utf8_lossy(body).replace(from, to).into_bytes();
    }
}

/// The test site (its protocol-relative link names its own port) and the other host.
fn start_site() -> (TestServer, TestServer) {
    let other = serve([127, 0, 0, 2], Site::new(), Duration::ZERO);
    let (main, shared) = serve_later();
    let mut s = site(other.port());
    patch(&mut s, "PORT", &main.port().to_string());
    *shared.lock().unwrap() = s;
    (main, other)
}

#[test]
fn crawls_the_site_in_scope_once_each_and_explains_every_link() {
    let (s, other) = start_site();
    let out = crawl(&["--jsonl", "-q", &s.url("/")]);
    // A page robots.txt refuses is the crawl obeying, not failing: exit 0.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("refused by robots.txt: 1"), "{stderr}");
    let recs = records(&out);
    let fetched: BTreeSet<String> = recs
        .iter()
        .filter(|r| r["error"].is_null())
        .map(|r| r["url"].as_str().unwrap().to_owned())
        .collect();
    let want: BTreeSet<String> = [
        "/",
        "/a.html",
        "/b.html",
        "/c.html",
        "/next.html",
        "/sub/e.html",
        "/doc.pdf",
        "/big.html",
        "/early.html",
        "/late.html",
        "/redir",
        "/d.html",
        "/away",
    ]
    .iter()
    .map(|p| s.url(p))
    .collect();
    assert_eq!(fetched, want);
    // No page twice; robots.txt once; the disallowed page never; nothing from the other
    // host, the PDF's "link" or the stylesheet (a <link rel> that is not a page).
    let h = hits(&s);
    assert!(h.values().all(|&n| n == 1), "{h:?}");
    assert!(!h.contains_key("/private/p.html") && !h.contains_key("/never.html"));
    assert!(!h.contains_key("/style.css"));
    assert!(
        other.requests().is_empty(),
        "out of scope: {:?}",
        hits(&other)
    );
    let refused: Vec<&Value> = recs
        .iter()
        .filter(|r| r["error"]["kind"] == "robots")
        .collect();
    assert_eq!(refused.len(), 1);
    // The record carries depth, parent, links and links_new.
    let root = recs.iter().find(|r| r["url"] == s.url("/")).unwrap();
    assert_eq!(root["depth"], 0);
    assert_eq!(root["parent"], Value::Null);
    let a = recs.iter().find(|r| r["url"] == s.url("/a.html")).unwrap();
    assert_eq!(a["depth"], 1);
    assert_eq!(a["parent"], s.url("/"));
    assert_eq!(a["links"], 2, "e.html through <base href>, and ../ (home)");
    assert_eq!(a["links_new"], 1, "home was seen");
    let d = recs.iter().find(|r| r["url"] == s.url("/d.html")).unwrap();
    assert_eq!(d["depth"], 1, "a redirect's target keeps its depth");
}

#[test]
fn an_oversized_page_is_read_for_links_up_to_the_cap() {
    let (s, _other) = start_site();
    let out = crawl(&[
        "--jsonl",
        "-q",
        "--max-html-bytes",
        "100000",
        &s.url("/big.html"),
    ]);
    let urls: BTreeSet<String> = records(&out)
        .iter()
        .map(|r| r["url"].as_str().unwrap().to_owned())
        .collect();
    assert!(urls.contains(&s.url("/early.html")), "{urls:?}");
    assert!(
        !urls.contains(&s.url("/late.html")),
        "past the cap: {urls:?}"
    );
}

#[test]
fn depth_include_exclude_and_max_pages_bound_the_crawl() {
    let (s, _other) = start_site();
    let paths = |o: &Output| -> BTreeSet<String> {
        records(o)
            .iter()
            .filter_map(|r| {
                r["url"]
                    .as_str()
                    .map(|u| u.rsplit_once(':').unwrap().1.to_owned())
            })
            .map(|p| p[p.find('/').unwrap()..].to_owned())
            .collect()
    };
    let out = crawl(&["--jsonl", "-q", "--depth", "0", &s.url("/")]);
    assert_eq!(paths(&out), BTreeSet::from(["/".to_owned()]));
    let out = crawl(&[
        "--jsonl",
        "-q",
        "--depth",
        "1",
        "--exclude",
        r"\.pdf$",
        "--exclude",
        "big",
        &s.url("/"),
    ]);
    let got = paths(&out);
    assert!(
        got.contains("/a.html") && !got.contains("/sub/e.html"),
        "{got:?}"
    );
    assert!(
        !got.contains("/doc.pdf") && !got.contains("/big.html"),
        "{got:?}"
    );
    let out = crawl(&[
        "--jsonl",
        "-q",
        "--include",
        r"/(a|b)\.html$|/$",
        &s.url("/"),
    ]);
    let got = paths(&out);
    assert_eq!(
        got,
        BTreeSet::from(["/".into(), "/a.html".into(), "/b.html".into()]),
        "{got:?}"
    );
    let out = crawl(&["--jsonl", "-q", "--max-pages", "3", &s.url("/")]);
    assert_eq!(records(&out).len(), 3);
    let out = crawl(&["--include", "(", &s.url("/")]);
    assert_eq!(out.status.code(), Some(2), "a bad pattern is a usage error");
}

#[test]
fn no_robots_fetches_what_robots_txt_disallows() {
    let (s, _other) = start_site();
    let out = crawl(&["--jsonl", "-q", "--no-robots", "--depth", "1", &s.url("/")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(hits(&s).contains_key("/private/p.html"));
}

#[test]
fn sitemaps_seed_the_crawl() {
    let mut site = Site::new();
    site.insert(
        "/robots.txt".into(),
        (200, vec![], b"Sitemap: /ignored-relative\n".to_vec()),
    );
    site.insert("/".into(), html(""));
    site.insert(
        "/sitemap.xml".into(),
        (200, vec![], b"<?xml version=\"1.0\"?><sitemapindex xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\"><sitemap><loc>SELF/pages.xml</loc></sitemap></sitemapindex>".to_vec()),
    );
    site.insert(
        "/pages.xml".into(),
        (200, vec![], b"<urlset xmlns=\"http://www.sitemaps.org/schemas/sitemap/0.9\"><url><loc>SELF/only-in-sitemap.html</loc></url></urlset>".to_vec()),
    );
    site.insert("/only-in-sitemap.html".into(), html(""));
    let (s, shared) = serve_later();
    let me = s.url("");
    patch(&mut site, "SELF", me.trim_end_matches('/'));
    *shared.lock().unwrap() = site;
    let out = crawl(&["--jsonl", "-q", &s.url("/")]);
    assert!(
        !hits(&s).contains_key("/only-in-sitemap.html"),
        "no sitemaps unless asked"
    );
    let _ = out;
    let out = crawl(&["--jsonl", "-q", "--sitemaps", &s.url("/")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        hits(&s).contains_key("/only-in-sitemap.html"),
        "{:?}",
        hits(&s)
    );
}

#[test]
fn the_warc_file_passes_warcio_check_with_a_request_and_response_per_fetch() {
    let Some(warcio) = tools::require(&WARCIO) else {
        return;
    };
    let (s, _other) = start_site();
    let dir = scratch("warc");
    let warc = dir.join("crawl.warc.gz");
    let out = crawl(&[
        "--jsonl",
        "-q",
        "--warc",
        warc.to_str().unwrap(),
        &s.url("/"),
    ]);
    let responses = records(&out)
        .iter()
        .filter(|r| r["error"].is_null())
        .count();
    let index = parafetch_test_support::warcio::check_and_index(&warcio, &warc);
    assert_eq!(index.warcinfo, 1);
    assert_eq!(index.request, responses, "{}", index.text);
    assert_eq!(index.response, responses, "{}", index.text);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fan-out site: the root links to N pages, each answered slowly.
fn slow_fan(n: usize) -> (TestServer, BTreeSet<String>) {
    let mut site = Site::new();
    let links: String = (0..n)
        .map(|i| format!(r#"<a href="/p{i}.html">{i}</a>"#))
        .collect();
    site.insert("/".into(), html(&links));
    let mut all = BTreeSet::from(["/".to_owned()]);
    for i in 0..n {
        site.insert(format!("/p{i}.html"), html(""));
        all.insert(format!("/p{i}.html"));
    }
    (serve([127, 0, 0, 1], site, Duration::from_millis(20)), all)
}

#[test]
fn an_interrupted_crawl_resumes_without_fetching_a_page_twice() {
    let (s, all) = slow_fan(120);
    let dir = scratch("resume");
    let state = dir.join("state");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = vec!["-q".into(), "-n".into(), "4".into(), "--state".into()];
        a.push(state.to_str().unwrap().into());
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a.push(s.url("/"));
        a
    };
    let first = args(&["--jsonl"]);
    let child = Command::new(env!("CARGO_BIN_EXE_parafetch"))
        .arg("crawl")
        .args(&first)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once a good part of the site is done (the server saw 30 requests).
    assert!(s.wait_for_requests(30, Duration::from_secs(30)));
    let pid = child.id() as i32;
    send_signal(pid, "INT");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first_pages: BTreeSet<String> = records(&out)
        .iter()
        .map(|r| r["url"].as_str().unwrap().to_owned())
        .collect();
    assert!(first_pages.len() < all.len(), "interrupted before the end");
    // Resume.
    let out = Command::new(env!("CARGO_BIN_EXE_parafetch"))
        .arg("crawl")
        .args(args(&["--jsonl"]))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second: BTreeSet<String> = records(&out)
        .iter()
        .map(|r| r["url"].as_str().unwrap().to_owned())
        .collect();
    assert!(first_pages.is_disjoint(&second), "a page fetched twice");
    let union: BTreeSet<String> = first_pages.union(&second).cloned().collect();
    let want: BTreeSet<String> = all.iter().map(|p| s.url(p)).collect();
    assert_eq!(union, want, "together, the two runs crawl the whole site");
    // The server agrees: every page once (robots.txt once per run).
    let h = hits(&s);
    for (path, n) in &h {
        if path != "/robots.txt" {
            assert_eq!(*n, 1, "{path} fetched {n} times");
        }
    }
    // A third run has nothing left to do.
    let out = Command::new(env!("CARGO_BIN_EXE_parafetch"))
        .arg("crawl")
        .args(args(&["--jsonl"]))
        .output()
        .unwrap();
    assert!(records(&out).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sends `sig` to `pid` with the `kill` command (no unsafe code in the tests).
fn send_signal(pid: i32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn fixed_credentials_are_refused_for_a_crawl() {
    let (s, _other) = start_site();
    for bad in [
        vec!["-H", "Authorization: Bearer x"],
        vec!["-H", "cookie: a=b"],
        vec!["-b", "sid=abc"],
    ] {
        let mut args = bad.clone();
        let url = s.url("/");
        args.push(&url);
        let out = crawl(&args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("every host"));
    }
    assert!(s.requests().is_empty(), "nothing fetched");
}
