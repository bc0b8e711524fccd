//! The `parafetch` binary, run as a child process against loopback servers: JSON lines,
//! saved bodies, exit statuses, input handling, request options and the demo.
//!
//! Run with `cargo test --features cli` (the binary needs the `cli` feature).
#![cfg(feature = "cli")]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use parafetch_test_support::dns::{FakeDns, QType, zone};
use parafetch_test_support::gate::Gate;
use parafetch_test_support::http::{Conn, TestServer, ok_body, reset_after_request};
use parafetch_test_support::pki::{Leaf, pki, server_config};
use serde_json::Value;

const LONG: Duration = Duration::from_secs(10);

/// The environment variables that choose a proxy.
const PROXY_VARS: [&str; 7] = [
    "http_proxy",
    "https_proxy",
    "HTTPS_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "no_proxy",
    "NO_PROXY",
];

/// Runs the built binary with `args`, feeding `stdin` (or nothing), and waits for it.
fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_parafetch"));
    // The tests' URLs are loopback servers: a proxy from the environment must not catch them.
    for var in PROXY_VARS {
        cmd.env_remove(var);
    }
    let mut child = cmd
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run parafetch");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(bytes).expect("write stdin");
    }
    child.wait_with_output().expect("wait for parafetch")
}

fn parafetch(args: &[&str]) -> Output {
    run(args, None)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The JSON lines of stdout, each parsed.
fn records(o: &Output) -> Vec<Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

/// The record whose `index` is `i`.
fn by_index(records: &[Value], i: u64) -> &Value {
    records
        .iter()
        .find(|r| r["index"] == i)
        .unwrap_or_else(|| panic!("no record for index {i}: {records:?}"))
}

/// A fresh directory under Cargo's scratch space for integration tests.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Keep-alive server: `/status/N` answers status N; anything else 200 with the target as
/// the body, and two `X-Rep` fields to check repeats are kept in order.
fn echo_server() -> TestServer {
    TestServer::start(|conn: &mut Conn| {
        conn.serve_keep_alive(|req, conn| {
            let status = req
                .target
                .strip_prefix("/status/")
                .and_then(|s| s.parse().ok())
                .unwrap_or(200);
            conn.respond(
                status,
                &[("X-Rep", "one"), ("x-rep", "two")],
                req.target.as_bytes(),
            )
        })
    })
}

/// Every record key, in the documented order.
const KEYS: [&str; 17] = [
    "index",
    "url",
    "final_url",
    "status",
    "http_version",
    "remote_addr",
    "proxy",
    "headers",
    "body_bytes",
    "content_encoding_left",
    "file",
    "elapsed_ms",
    "timings",
    "redirects",
    "attempts",
    "reused_connection",
    "error",
];

fn keys(v: &Value) -> Vec<&str> {
    v.as_object()
        .expect("a JSON object")
        .keys()
        .map(String::as_str)
        .collect()
}

#[test]
fn jsonl_records_carry_the_documented_fields_in_order() {
    let s = echo_server();
    let (a, b) = (s.url("/a"), s.url("/status/404"));
    let out = parafetch(&["--jsonl", "-q", &a, &b]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let recs = records(&out);
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(keys(r), KEYS, "{r}");
    }

    let ok = by_index(&recs, 0);
    assert_eq!(ok["url"], a.as_str());
    assert_eq!(ok["final_url"], a.as_str());
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["http_version"], "HTTP/1.1");
    assert_eq!(ok["remote_addr"], s.addr().to_string());
    assert_eq!(ok["body_bytes"], 2, "the body is the target, /a");
    assert_eq!(ok["content_encoding_left"], Value::Null);
    assert_eq!(ok["file"], Value::Null);
    assert_eq!(ok["redirects"], 0);
    assert_eq!(ok["attempts"], 1);
    assert_eq!(ok["error"], Value::Null);
    assert!(ok["elapsed_ms"].as_f64().unwrap() > 0.0);
    let t = &ok["timings"];
    for k in [
        "resolve_ms",
        "connect_ms",
        "tls_ms",
        "first_byte_ms",
        "total_ms",
    ] {
        assert!(t[k].as_f64().is_some_and(|v| v >= 0.0), "timings.{k}: {t}");
    }
    assert!(t["first_byte_ms"].as_f64() <= ok["elapsed_ms"].as_f64());
    // Headers as received: pairs, in order, repeats and spelling kept.
    let reps: Vec<&Value> = ok["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0].as_str().unwrap().eq_ignore_ascii_case("x-rep"))
        .collect();
    assert_eq!(
        reps,
        [
            &serde_json::json!(["X-Rep", "one"]),
            &serde_json::json!(["x-rep", "two"])
        ]
    );

    // A 404 is a response, not a failure.
    let missing = by_index(&recs, 1);
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["error"], Value::Null);
}

#[test]
fn failed_requests_have_an_error_object_and_exit_1() {
    let good = echo_server();
    let bad = TestServer::start(reset_after_request());
    let out = parafetch(&["--jsonl", &good.url("/ok"), &bad.url("/reset")]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let recs = records(&out);
    assert_eq!(by_index(&recs, 0)["status"], 200);
    let failed = by_index(&recs, 1);
    assert_eq!(keys(failed), KEYS);
    assert_eq!(failed["status"], Value::Null);
    let err = &failed["error"];
    assert_eq!(keys(err), ["kind", "phase", "message"]);
    let kind = err["kind"].as_str().unwrap();
    assert!(
        ["io", "truncated", "connect"].contains(&kind),
        "a reset is an I/O-ish failure: {err}"
    );
    assert!(!err["message"].as_str().unwrap().is_empty());
    // The summary counts by status class and by error kind.
    let summary = stderr(&out);
    assert!(summary.contains("responses: 1 (2xx 1)"), "{summary}");
    assert!(
        summary.contains(&format!("failed: 1 ({kind} 1)")),
        "{summary}"
    );
}

#[test]
fn exit_0_when_every_url_gets_a_response_of_any_status() {
    let s = echo_server();
    let urls: Vec<String> = ["/a", "/status/404", "/status/500", "/status/301"]
        .iter()
        .map(|p| s.url(p))
        .collect();
    let mut args = vec!["-q"];
    args.extend(urls.iter().map(String::as_str));
    let out = parafetch(&args);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "",
        "-q without --jsonl prints nothing on stdout"
    );
    let summary = stderr(&out);
    assert!(
        summary.contains("responses: 4 (2xx 1, 3xx 1, 4xx 1, 5xx 1)"),
        "{summary}"
    );
    assert!(summary.contains("failed: 0"), "{summary}");
}

#[test]
fn usage_errors_exit_2_and_fetch_nothing() {
    let s = echo_server();
    let url = s.url("/never");
    let missing = scratch("usage").join("no-such-list.txt");
    let cases: [Vec<&str>; 8] = [
        vec!["--no-such-option", &url],
        vec!["-n", "0", &url],
        vec!["-H", "no colon here", &url],
        vec!["--resolve", "example.com:80", &url],
        vec!["--timeout", "soon", &url],
        vec!["-i", missing.to_str().unwrap(), &url],
        vec!["--dns-server", "resolver.example", &url],
        vec![],
    ];
    for args in &cases {
        let out = parafetch(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("error"),
            "{args:?}: a clear message: {}",
            stderr(&out)
        );
        assert_eq!(stdout(&out), "", "{args:?}");
    }
    assert!(stderr(&parafetch(&["-i", missing.to_str().unwrap()])).contains("no-such-list.txt"));
    assert_eq!(s.request_count(), 0, "nothing was fetched");
}

#[test]
fn invalid_url_lines_are_reported_by_line_number_and_the_rest_fetched() {
    let s = echo_server();
    let dir = scratch("lines");
    let list = dir.join("urls.txt");
    let text = format!(
        "# a list\n{}\n\nnot a url\n   \n{}\nftp://example.com/x\n# the end\n",
        s.url("/one"),
        s.url("/two")
    );
    std::fs::write(&list, text).unwrap();
    let out = parafetch(&["--jsonl", "-q", "-i", list.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let err = stderr(&out);
    let name = list.display().to_string();
    assert!(err.contains(&format!("{name}:4: invalid_url")), "{err}");
    assert!(
        err.contains(&format!("{name}:7: unsupported_scheme")),
        "{err}"
    );
    let recs = records(&out);
    assert_eq!(recs.len(), 4, "one record per URL line");
    assert_eq!(by_index(&recs, 0)["status"], 200);
    assert_eq!(by_index(&recs, 1)["error"]["kind"], "invalid_url");
    assert_eq!(by_index(&recs, 2)["status"], 200);
    assert_eq!(by_index(&recs, 2)["url"], s.url("/two").as_str());
    assert_eq!(by_index(&recs, 3)["error"]["kind"], "unsupported_scheme");
    assert_eq!(s.request_count(), 2);
}

#[test]
fn urls_from_stdin_after_the_arguments() {
    let s = echo_server();
    let input = format!("{}\n# skipped\n{}\n", s.url("/in1"), s.url("/in2"));
    let out = run(
        &["--jsonl", "-q", &s.url("/arg"), "-i", "-"],
        Some(input.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let recs = records(&out);
    assert_eq!(recs.len(), 3);
    assert_eq!(by_index(&recs, 0)["url"], s.url("/arg").as_str());
    assert_eq!(by_index(&recs, 1)["url"], s.url("/in1").as_str());
    assert_eq!(by_index(&recs, 2)["url"], s.url("/in2").as_str());
}

#[test]
fn output_dir_files_match_the_served_bytes() {
    // A body of every byte value, large enough to arrive in many reads, chunked and not.
    let big: &'static [u8] = (0..300_000u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect::<Vec<u8>>()
        .leak();
    let s = TestServer::start(move |conn: &mut Conn| {
        conn.serve_keep_alive(|req, conn| match req.target.as_str() {
            "/chunked" => conn.respond_chunked(200, &[], &[&big[..1000], &big[1000..]]),
            "/fail" => {
                conn.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")?;
                conn.reset();
                Ok(())
            }
            _ => conn.respond(200, &[], big),
        })
    });
    let dir = scratch("bodies");
    let out_dir = dir.join("out");
    let out = parafetch(&[
        "--jsonl",
        "-q",
        "-o",
        out_dir.to_str().unwrap(),
        &s.url("/plain"),
        &s.url("/chunked"),
        &s.url("/fail"),
    ]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    let recs = records(&out);
    for i in [0, 1] {
        let r = by_index(&recs, i);
        let path = out_dir.join(format!("{i}.body"));
        assert_eq!(r["file"], path.display().to_string());
        assert_eq!(r["body_bytes"], big.len());
        assert!(
            std::fs::read(&path).unwrap() == big,
            "{} differs",
            path.display()
        );
    }
    let failed = by_index(&recs, 2);
    assert_eq!(failed["file"], Value::Null);
    assert!(failed["error"].is_object());
    assert!(
        !out_dir.join("2.body").exists(),
        "a failed body leaves no partial file"
    );
}

#[test]
fn human_lines_without_jsonl() {
    let s = echo_server();
    let out = parafetch(&[&s.url("/hello"), "not-a-url"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("#0 200 6 B") && text.contains(&s.url("/hello")),
        "{text}"
    );
    assert!(
        text.contains("#1 ERR invalid_url (prepare) not-a-url"),
        "{text}"
    );
    let err = stderr(&out);
    assert!(err.contains("argument 2: invalid_url"), "{err}");
    // stderr is a pipe here: no progress bar, only the notes and the summary.
    assert!(!err.contains('\r') && !err.contains("in flight"), "{err:?}");
    assert!(
        err.contains("URLs in") && err.contains("requests/s"),
        "{err}"
    );
}

#[test]
fn request_options_reach_the_server() {
    let s = echo_server();
    let host = format!("example.test:{}", s.port());
    let resolve = format!("{host}:127.0.0.1");
    let url = format!("http://{host}/submit");
    let out = parafetch(&[
        "-q",
        "--jsonl",
        "--resolve",
        &resolve,
        "-X",
        "PUT",
        "--data",
        "a=1&b=2",
        "-H",
        "X-Token: secret",
        "-H",
        "Accept: text/plain",
        "-A",
        "crawler/1.0",
        &url,
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let reqs = s.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(r.method, "PUT");
    assert_eq!(r.target, "/submit");
    assert_eq!(r.header("host"), Some(host.as_str()));
    assert_eq!(r.body, b"a=1&b=2");
    assert_eq!(
        r.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(r.header("x-token"), Some("secret"));
    assert_eq!(r.header_all("accept"), ["text/plain"]);
    assert_eq!(r.header("user-agent"), Some("crawler/1.0"));
}

#[test]
fn head_and_redirects() {
    let s = TestServer::start(|conn: &mut Conn| {
        conn.serve_keep_alive(|req, conn| match req.target.as_str() {
            "/old" => conn.respond(302, &[("Location", "/new")], b""),
            _ => conn.respond(200, &[], b"landed"),
        })
    });
    let out = parafetch(&["--jsonl", "-q", "-L", &s.url("/old")]);
    let recs = records(&out);
    assert_eq!(recs[0]["status"], 200);
    assert_eq!(recs[0]["final_url"], s.url("/new").as_str());
    assert_eq!(recs[0]["redirects"], 1);

    let out = parafetch(&["--jsonl", "-q", &s.url("/old")]);
    assert_eq!(
        records(&out)[0]["status"],
        302,
        "no -L: the redirect itself"
    );

    let out = parafetch(&["--jsonl", "-q", "-I", &s.url("/new")]);
    assert_eq!(records(&out)[0]["body_bytes"], 0);
    assert_eq!(s.requests().last().unwrap().method, "HEAD");
}

#[test]
fn stops_starting_requests_when_stdout_is_closed() {
    // One at a time; /1 is held until the test has closed its end of the pipe, so the
    // binary's write of record 1 fails and nothing after it may start.
    let gate = Gate::new(2);
    let held = Arc::clone(&gate);
    let s = TestServer::start(move |conn: &mut Conn| {
        let held = Arc::clone(&held);
        conn.serve_keep_alive(move |req, conn| {
            if req.target == "/1" {
                held.arrive_and_wait(LONG);
            }
            conn.respond(200, &[], b"x")
        })
    });
    let urls: Vec<String> = (0..10).map(|i| s.url(&format!("/{i}"))).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_parafetch"))
        .args(["-n", "1", "--jsonl"])
        .args(&urls)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run parafetch");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a first record").unwrap();
    assert!(first.contains(r#""index":0"#), "{first}");
    drop(lines);
    assert!(gate.arrive_and_wait(LONG), "request /1 arrived");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("not fetched: 8"), "{}", stderr(&out));
    assert_eq!(s.request_count(), 2);
}

/// A loopback HTTPS server presenting `leaf`: one request per connection, answered "ok".
/// A handshake the client refuses just ends that connection's thread.
fn https_server(leaf: &Leaf) -> SocketAddr {
    let config = server_config(leaf);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for tcp in listener.incoming().flatten() {
            let config = Arc::clone(&config);
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match tls.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let _ = tls.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                );
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    addr
}

#[test]
fn cacert_and_insecure_over_https() {
    let dir = scratch("tls");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, &pki().ca_pem).unwrap();
    let good = format!("https://{}/", https_server(&pki().good));
    let self_signed = format!("https://{}/", https_server(&pki().self_signed));

    let out = parafetch(&["--jsonl", "-q", "--cacert", ca.to_str().unwrap(), &good]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(records(&out)[0]["status"], 200);
    assert!(records(&out)[0]["timings"]["tls_ms"].as_f64().unwrap() > 0.0);

    let out = parafetch(&["--jsonl", "-q", &good]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "our test CA is not a default root"
    );
    assert_eq!(records(&out)[0]["error"]["kind"], "tls");

    let out = parafetch(&["--jsonl", "-q", "-k", &self_signed]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    assert_eq!(records(&out)[0]["status"], 200);
    assert!(
        stderr(&out).contains("warning: -k/--insecure"),
        "{}",
        stderr(&out)
    );

    let junk = dir.join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let out = parafetch(&["--cacert", junk.to_str().unwrap(), &good]);
    assert_eq!(out.status.code(), Some(2), "stderr: {}", stderr(&out));
    assert!(stderr(&out).contains("--cacert"), "{}", stderr(&out));
}

#[test]
fn demo_compares_concurrency_levels() {
    // 60 URLs x 50 ms: about 3 s one at a time, about 0.1 s thirty at a time. A 10x bound
    // leaves room for a busy machine; this checks concurrency, it is not a benchmark.
    let out = parafetch(&[
        "demo",
        "--count",
        "60",
        "--delay-ms",
        "50",
        "--compare",
        "1,30",
    ]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    let speedup: f64 = text
        .split("speed-up ")
        .nth(1)
        .and_then(|rest| rest.split('x').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no speed-up in {text}"));
    assert!(speedup >= 10.0, "speed-up only {speedup}x:\n{text}");
}

#[test]
fn dns_server_option_resolves_through_the_given_nameserver() {
    let s = echo_server();
    let dns = FakeDns::start(zone(
        &[("cli-host.test", &[std::net::Ipv4Addr::LOCALHOST], &[])],
        60,
    ));
    let url = format!("http://cli-host.test:{}/named", s.port());
    let out = parafetch(&[
        "--dns-server",
        &dns.addr().to_string(),
        "--jsonl",
        "-q",
        &url,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("\"status\":200"), "{}", stdout(&out));
    assert!(dns.count_for("cli-host.test", QType::A) >= 1);
}

#[test]
fn proxy_options_route_requests_and_records_name_the_proxy_without_credentials() {
    let proxy = TestServer::start(|c: &mut Conn| {
        c.serve_keep_alive(|_, c| c.respond(200, &[], b"via proxy"))
    });
    let p = format!("http://{}", proxy.addr());
    let out = parafetch(&[
        "-x",
        &p,
        "-U",
        "alice:hunter2",
        "--jsonl",
        "-q",
        "http://one.test/a",
        "http://two.test/b",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    for r in records(&out) {
        assert_eq!(r["status"], 200, "{r}");
        assert_eq!(r["proxy"], p.as_str(), "{r}");
    }
    assert!(!stdout(&out).contains("hunter2") && !stderr(&out).contains("hunter2"));
    for seen in proxy.requests() {
        assert!(seen.target.starts_with("http://"), "{}", seen.target);
        assert_eq!(
            seen.header("proxy-authorization"),
            Some("Basic YWxpY2U6aHVudGVyMg==")
        );
    }
    // A failed record names its proxy too; --noproxy sends a host around it.
    let direct = TestServer::start(ok_body(b"direct"));
    let out = parafetch(&[
        "-x",
        &p,
        "--noproxy",
        "127.0.0.1",
        "--jsonl",
        "-q",
        &direct.url("/"),
    ]);
    let r = &records(&out)[0];
    assert_eq!(
        (r["status"].clone(), r["proxy"].clone()),
        (200.into(), Value::Null)
    );
    assert_eq!(proxy.request_count(), 2);
}

#[test]
fn a_proxy_list_rotates_per_request() {
    let start = |name: &'static str| {
        TestServer::start(move |c: &mut Conn| {
            c.serve_keep_alive(|_, c| c.respond(200, &[], name.as_bytes()))
        })
    };
    let (a, b) = (start("a"), start("b"));
    let dir = scratch("proxy-list");
    let list = dir.join("proxies.txt");
    std::fs::write(
        &list,
        format!("# two proxies\nhttp://{}\n\n{}\n", a.addr(), b.addr()),
    )
    .unwrap();
    let urls: Vec<String> = (0..6).map(|i| format!("http://h.test/{i}")).collect();
    let mut args = vec![
        "--proxy-list",
        list.to_str().unwrap(),
        "-n",
        "1",
        "--jsonl",
        "-q",
    ];
    args.extend(urls.iter().map(String::as_str));
    let out = parafetch(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!((a.request_count(), b.request_count()), (3, 3));
    let out = parafetch(&["-U", "x:y", "http://h.test/"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "-U without a proxy is a usage error"
    );
}

#[test]
fn per_host_rate_spaces_requests_and_a_bad_rate_is_a_usage_error() {
    let s = TestServer::start(|c: &mut Conn| c.serve_keep_alive(|_, c| c.respond(200, &[], b"r")));
    let urls: Vec<String> = (0..4).map(|i| s.url(&format!("/{i}"))).collect();
    let mut args = vec!["--per-host-rate", "10", "-n", "4", "-q"];
    args.extend(urls.iter().map(String::as_str));
    let out = parafetch(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut at: Vec<_> = s.requests().iter().map(|r| r.received_at).collect();
    at.sort();
    for w in at.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(90),
            "{:?}",
            w[1] - w[0]
        );
    }
    for bad in ["0", "-2", "fast"] {
        let out = parafetch(&["--rate", bad, &urls[0]]);
        assert_eq!(out.status.code(), Some(2), "--rate {bad}");
    }
}

#[test]
fn robots_refusals_and_host_pauses_are_in_the_summary() {
    // robots.txt disallows /private for "crawlbot"; /busy answers 429 once per URL.
    let s = TestServer::start(|c: &mut Conn| {
        c.serve_keep_alive(|r, c| match r.target.as_str() {
            "/robots.txt" => c.respond(
                200,
                &[],
                b"User-agent: crawlbot\nDisallow: /private\n\nUser-agent: *\nDisallow: /\n",
            ),
            "/busy" => c.respond(429, &[("Retry-After", "0")], b""),
            _ => c.respond(200, &[], b"ok"),
        })
    });
    let out = parafetch(&[
        "--jsonl",
        "--robots",
        "--user-agent",
        "crawlbot/1.0",
        "--per-host",
        "1",
        &s.url("/public"),
        &s.url("/private/x"),
        &s.url("/busy"),
    ]);
    assert_eq!(out.status.code(), Some(1), "a refusal is a failure");
    let recs = records(&out);
    assert_eq!(by_index(&recs, 0)["status"], 200);
    let refused = &by_index(&recs, 1)["error"];
    assert_eq!(refused["kind"], "robots");
    assert_eq!(refused["phase"], "robots");
    assert_eq!(by_index(&recs, 2)["status"], 429);
    let summary = stderr(&out);
    assert!(summary.contains("failed: 1 (robots 1)"), "{summary}");
    assert!(summary.contains("refused by robots.txt: 1"), "{summary}");
    assert!(
        summary.contains("host pauses (429/503 backoff): 1"),
        "{summary}"
    );
    let targets: Vec<String> = s.requests().into_iter().map(|r| r.target).collect();
    assert!(!targets.iter().any(|t| t == "/private/x"), "{targets:?}");
}

#[test]
fn politeness_options_are_checked() {
    let s = echo_server();
    for bad in [["--auto-throttle", "0"], ["--politeness-key", "path"]] {
        let out = parafetch(&[bad[0], bad[1], &s.url("/")]);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
    }
    let out = parafetch(&[
        "--politeness-key",
        "domain",
        "--auto-throttle",
        "2",
        "--no-backoff",
        &s.url("/"),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

/// `--compressed` decodes `br`; a coding the CLI cannot decode (or any, without
/// `--compressed`) is saved as sent, and `content_encoding_left` says so.
#[cfg(feature = "brotli")]
#[test]
fn compressed_decodes_br_and_reports_codings_left() {
    let plain = b"decoded by the cli ".repeat(100);
    let mut e = brotli_encoder::CompressorWriter::new(Vec::new(), 4096, 5, 22);
    e.write_all(&plain).unwrap();
    let wire = e.into_inner();
    let sent = wire.clone();
    let s = TestServer::start(move |conn: &mut Conn| {
        let sent = sent.clone();
        conn.serve_keep_alive(move |req, conn| match req.target.as_str() {
            "/br" => conn.respond(200, &[("Content-Encoding", "br")], &sent),
            _ => conn.respond(200, &[("Content-Encoding", "br, foo")], b"opaque"),
        })
    });
    let (br, foo) = (s.url("/br"), s.url("/foo"));
    let out = parafetch(&["--jsonl", "-q", "--compressed", &br, &foo]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let recs = records(&out);
    assert_eq!(by_index(&recs, 0)["body_bytes"], plain.len());
    assert_eq!(by_index(&recs, 0)["content_encoding_left"], Value::Null);
    assert_eq!(by_index(&recs, 1)["body_bytes"], 6);
    assert_eq!(by_index(&recs, 1)["content_encoding_left"], "br, foo");
    let out = parafetch(&["--jsonl", "-q", &br]);
    let recs = records(&out);
    assert_eq!(recs[0]["body_bytes"], wire.len());
    assert_eq!(recs[0]["content_encoding_left"], "br");
}

#[test]
fn set_cookie_values_stay_out_of_json_lines() {
    let s = TestServer::start(|c: &mut Conn| {
        c.serve_keep_alive(|_, c| {
            c.respond(
                200,
                &[("Set-Cookie", "sid=s3cr3t; Path=/; HttpOnly")],
                b"ok",
            )
        })
    });
    let out = parafetch(&["--jsonl", &s.url("/")]);
    let text = stdout(&out);
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(text.contains("sid=<redacted>"), "{text}");
}

#[test]
fn threads_spread_hosts_over_loops_and_every_url_is_reported_once() {
    let servers: Vec<TestServer> = (1..=4)
        .map(|i| {
            TestServer::start_on(
                std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, i)),
                |c: &mut Conn| c.serve_keep_alive(|_, c| c.respond(200, &[], b"ok")),
            )
        })
        .collect();
    let urls: Vec<String> = (0..40)
        .map(|i| servers[i % 4].url(&format!("/{i}")))
        .collect();
    let mut args = vec![
        "--jsonl",
        "-q",
        "--threads",
        "2",
        "-n",
        "6",
        "--per-host",
        "1",
    ];
    args.extend(urls.iter().map(String::as_str));
    let out = parafetch(&args);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let recs = records(&out);
    let mut seen: Vec<u64> = recs.iter().map(|r| r["index"].as_u64().unwrap()).collect();
    seen.sort();
    assert_eq!(seen, (0..40).collect::<Vec<u64>>());
    assert!(recs.iter().all(|r| r["status"] == 200));
    for s in &servers {
        assert_eq!(s.request_count(), 10);
        assert_eq!(s.in_handler_peak(), 1, "--per-host 1 holds across loops");
    }
    // `auto` is accepted; 0 is not.
    assert_eq!(
        parafetch(&["-q", "--threads", "auto", &urls[0]])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(
        parafetch(&["--threads", "0", &urls[0]]).status.code(),
        Some(2)
    );
}
