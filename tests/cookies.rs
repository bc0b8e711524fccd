//! Cookie jars against real servers: httpbin on gunicorn (`/cookies/set`, `/cookies`,
//! `/cookies/delete`, a redirect that sets cookies), loopback servers standing in for
//! several domains, and curl reading (and writing) the jar files the command writes (and
//! reads).
//!
//! Needs the `cli` feature (the binary, and serde_json to read httpbin's answers), which
//! turns `cookies` on.
#![cfg(feature = "cli")]

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::rc::Rc;
use std::time::Duration;

use parafetch::{Builder, Cookie, CookieJar, Done, Fetcher, Queue, Request, Response};
use parafetch_test_support::http::{Conn, TestServer};
use parafetch_test_support::httpbin;
use parafetch_test_support::tools;
use serde_json::Value;

fn builder() -> Builder {
    Fetcher::builder()
        .proxy_from_env(false)
        .timeout(Some(Duration::from_secs(20)))
        .follow_redirects(true)
}

/// Runs each request on `f` one after another (a login flow is sequential); returns the
/// responses.
fn run_in_order(f: &mut Fetcher<()>, requests: Vec<Request>) -> Vec<Response> {
    let out: Rc<RefCell<Vec<Response>>> = Rc::default();
    for req in requests {
        let o = Rc::clone(&out);
        f.start_request(
            req,
            move |d: Done<()>, _: &mut Queue<()>| {
                let r = d.result.unwrap_or_else(|e| panic!("{}: {e:#}", d.url));
                o.borrow_mut().push(r);
            },
            (),
        )
        .unwrap();
        f.finish_all_requests();
    }
    Rc::try_unwrap(out).ok().unwrap().into_inner()
}

/// httpbin's `{"cookies": {...}}`, as name=value pairs sorted by name.
fn httpbin_cookies(r: &Response) -> Vec<(String, String)> {
    let v: Value = serde_json::from_slice(&r.body).expect("httpbin JSON");
    let mut pairs: Vec<(String, String)> = v["cookies"]
        .as_object()
        .expect("a cookies object")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    pairs.sort();
    pairs
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn httpbin_cookies_set_on_a_redirect_are_sent_on_the_next_hop() {
    let Some(hb) = httpbin::start() else { return };
    let mut f = builder().cookies(true).build::<()>();
    // /cookies/set answers 302 to /cookies with Set-Cookie: the jar takes them before
    // following, so /cookies (the second hop) already receives them.
    let got = run_in_order(&mut f, vec![Request::get(hb.url("/cookies/set?a=1&b=two"))]);
    assert_eq!(got[0].redirects, 1);
    assert_eq!(httpbin_cookies(&got[0]), pairs(&[("a", "1"), ("b", "two")]));
    // /cookies/delete expires one; the jar forgets it.
    let got = run_in_order(&mut f, vec![Request::get(hb.url("/cookies/delete?a"))]);
    assert_eq!(httpbin_cookies(&got[0]), pairs(&[("b", "two")]));
    let names: Vec<String> = f.jar("").unwrap().cookies().map(|c| c.name).collect();
    assert_eq!(names, ["b"]);
}

#[test]
fn named_jars_stay_apart_and_can_be_dropped() {
    let Some(hb) = httpbin::start() else { return };
    let mut f = builder().build::<()>();
    let got = run_in_order(
        &mut f,
        vec![
            Request::get(hb.url("/cookies/set?user=alice")).jar("alice"),
            Request::get(hb.url("/cookies/set?user=bob")).jar("bob"),
            Request::get(hb.url("/cookies")).jar("alice"),
            Request::get(hb.url("/cookies")).jar("bob"),
            // Without a jar (and with cookies off) nothing is sent.
            Request::get(hb.url("/cookies")),
        ],
    );
    assert_eq!(httpbin_cookies(&got[2]), pairs(&[("user", "alice")]));
    assert_eq!(httpbin_cookies(&got[3]), pairs(&[("user", "bob")]));
    assert_eq!(httpbin_cookies(&got[4]), pairs(&[]));
    assert!(f.jar("").is_none(), "no default jar without cookies(true)");
    // Dropped: the next request naming it starts empty.
    assert_eq!(f.remove_jar("alice").map(|j| j.len()), Some(1));
    let got = run_in_order(&mut f, vec![Request::get(hb.url("/cookies")).jar("alice")]);
    assert_eq!(httpbin_cookies(&got[0]), pairs(&[]));
}

#[test]
fn a_cookie_header_set_by_the_caller_wins() {
    let Some(hb) = httpbin::start() else { return };
    let mut f = builder().cookies(true).build::<()>();
    let got = run_in_order(
        &mut f,
        vec![
            Request::get(hb.url("/cookies/set?jar=1")),
            Request::get(hb.url("/cookies")).header("Cookie", "mine=2"),
        ],
    );
    assert_eq!(httpbin_cookies(&got[1]), pairs(&[("mine", "2")]));
}

/// A loopback server that sets `set_cookie` on `/set` and echoes the Cookie header it got
/// as the body of any other path.
fn echoing(ip: [u8; 4], set_cookie: &'static str) -> TestServer {
    TestServer::start_on(IpAddr::V4(Ipv4Addr::from(ip)), move |c: &mut Conn| {
        c.serve_keep_alive(move |r, c| {
            if r.target == "/set" {
                c.respond(200, &[("Set-Cookie", set_cookie)], b"")
            } else {
                let got = r.header("cookie").unwrap_or("").to_owned();
                c.respond(200, &[], got.as_bytes())
            }
        })
    })
}

fn body(r: &Response) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

#[test]
fn cookies_never_cross_to_other_domains_or_public_suffixes() {
    // Three "sites" on loopback, named through --resolve-style pins.
    let shop = echoing([127, 0, 0, 1], "sid=1; Domain=example.com; Path=/");
    let evil = echoing([127, 0, 0, 2], "track=1; Domain=com; Path=/");
    let other = echoing([127, 0, 0, 3], "x=1; Domain=example.com; Path=/");
    let url = |host: &str, s: &TestServer, path: &str| format!("http://{host}:{}{path}", s.port());
    let mut f = builder()
        .cookies(true)
        .resolve("www.example.com", shop.port(), &[shop.addr()])
        .resolve("api.example.com", shop.port(), &[shop.addr()])
        .resolve("evil.com", evil.port(), &[evil.addr()])
        .resolve("www.example.org", other.port(), &[other.addr()])
        .build::<()>();
    let got = run_in_order(
        &mut f,
        vec![
            Request::get(url("www.example.com", &shop, "/set")),
            // A public suffix domain (com) is refused outright.
            Request::get(url("evil.com", &evil, "/set")),
            // example.org may not set a cookie for example.com.
            Request::get(url("www.example.org", &other, "/set")),
            Request::get(url("api.example.com", &shop, "/echo")),
            Request::get(url("evil.com", &evil, "/echo")),
            Request::get(url("www.example.org", &other, "/echo")),
        ],
    );
    assert_eq!(
        body(&got[3]),
        "sid=1",
        "example.com's cookie reaches its sibling host"
    );
    assert_eq!(body(&got[4]), "", "nothing for evil.com");
    assert_eq!(body(&got[5]), "", "nothing for example.org");
    assert_eq!(f.jar("").unwrap().len(), 1);
}

#[test]
fn secure_cookies_are_never_sent_over_http() {
    let s = echoing([127, 0, 0, 1], "plain=1");
    let mut jar = CookieJar::new();
    let mut seeded = |secure: bool, name: &str| {
        let mut c = Cookie::new(name, "v", "127.0.0.1");
        c.secure = secure;
        assert!(jar.insert(&c));
    };
    seeded(true, "secret");
    seeded(false, "open");
    let mut f = builder().cookie_jar(jar).build::<()>();
    let got = run_in_order(&mut f, vec![Request::get(s.url("/echo"))]);
    assert_eq!(body(&got[0]), "open=v");
    let echoed = s
        .requests()
        .into_iter()
        .map(|r| r.header("cookie").map(str::to_owned));
    assert!(echoed.flatten().all(|c| !c.contains("secret")));
}

/// curl, for the jar-file round trips.
fn curl() -> Option<std::path::PathBuf> {
    tools::require(&tools::Tool {
        name: "curl",
        paths: &["/usr/bin/curl"],
        install: "apt-get install curl",
    })
}

#[test]
fn a_jar_written_by_parafetch_is_read_by_curl_and_back() {
    let Some(hb) = httpbin::start() else { return };
    let Some(curl) = curl() else { return };
    let dir = std::env::temp_dir().join(format!("parafetch-cookies-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ours = dir.join("ours.txt");
    let theirs = dir.join("theirs.txt");

    // parafetch -c: a session cookie and a persistent one, HttpOnly marked as curl does.
    let out = Command::new(env!("CARGO_BIN_EXE_parafetch"))
        .args(["-L", "-c"])
        .arg(&ours)
        .arg(hb.url("/cookies/set?from=parafetch"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&ours).unwrap();
    assert!(text.starts_with("# Netscape HTTP Cookie File"), "{text}");
    // Cookies are secrets: the jar is readable by its owner only, and no temporary file
    // is left beside it.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&ours).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["ours.txt"], "{names:?}");

    // curl -b reads it and sends the cookie.
    let out = Command::new(&curl)
        .args(["-s", "-b"])
        .arg(&ours)
        .arg(hb.url("/cookies"))
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cookies"]["from"], "parafetch", "{v}");

    // curl -c writes one; parafetch -b reads it (and saves the body with -o to show it).
    let out = Command::new(&curl)
        .args(["-s", "-L", "-o", "/dev/null", "-c"])
        .arg(&theirs)
        .arg(hb.url("/cookies/set?from=curl"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let saved = dir.join("bodies");
    let out = Command::new(env!("CARGO_BIN_EXE_parafetch"))
        .arg("-b")
        .arg(&theirs)
        .arg("-o")
        .arg(&saved)
        .arg(hb.url("/cookies"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&std::fs::read(saved.join("0.body")).unwrap()).unwrap();
    assert_eq!(v["cookies"]["from"], "curl", "{v}");
    let _ = std::fs::remove_dir_all(&dir);
}
