//! The queue commands (`parafetch enqueue`, `parafetch results`, `parafetch worker`) run
//! as child processes against a real redis-server on loopback (test-support's launcher:
//! persistence off, or durable where a test restarts it and needs its data back), looked
//! into with test-support's own RESP client, not the one parafetch uses. The workers fetch
//! from test servers on loopback addresses 127.0.0.2 and up, one host each.
//!
//! Run with `cargo test --features queue` (with CI set, a missing redis-server fails).
#![cfg(feature = "queue")]

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parafetch_test_support::http::TestServer;
use parafetch_test_support::redis::{Conn, Redis, Reply};
use serde_json::{Value, json};

const LONG: Duration = Duration::from_secs(10);

fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_parafetch"))
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
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(bytes)
            .expect("write stdin");
    }
    child.wait_with_output().expect("wait for parafetch")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// FNV-1a with its halves folded, written here from its definition rather than taken
/// from parafetch: the shard a host's jobs must land in.
fn shard(host: &str, shards: u64) -> u64 {
    let h = host.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (h ^ (h >> 32)) % shards
}

/// Every entry of stream `key`: (id, fields).
fn entries(c: &mut Conn, key: &str) -> Vec<(String, Vec<(String, String)>)> {
    let r = c.cmd(&["XRANGE", key, "-", "+"]).unwrap();
    r.items()
        .iter()
        .map(|e| {
            let id = e.items()[0].text().unwrap().to_owned();
            (id, e.items()[1].pairs())
        })
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn jobs_land_in_their_hosts_shards_with_their_fields() {
    let Some(redis) = Redis::start_for_test(None) else {
        return;
    };
    let url = redis.url();
    let hosts = [
        "a.example",
        "b.example",
        "c.example",
        "127.0.0.1",
        "d.example",
    ];
    let mut input = String::from("# jobs\n\n");
    for h in hosts {
        input += &format!("http://{h}/x\n");
    }
    input += r#"{"url": "https://A.example/post", "method": "POST", "headers": {"Content-Type": "application/json"}, "body": "{\"k\":1}"}"#;
    input.push('\n');
    let o = run(
        &[
            "enqueue",
            "--redis",
            &url,
            "--queue",
            "crawl",
            "--shards",
            "4",
            "-i",
            "-",
            "http://e.example/arg",
        ],
        Some(input.as_bytes()),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("enqueued 7 jobs in queue crawl (4 shards by host)"));

    let mut c = redis.connect();
    let meta: BTreeMap<_, _> = c
        .cmd(&["HGETALL", "crawl:meta"])
        .unwrap()
        .pairs()
        .into_iter()
        .collect();
    let meta: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        meta,
        [
            ("hash", "fnv1a-fold"),
            ("key", "host"),
            ("shards", "4"),
            ("version", "1")
        ]
    );
    let mut expected: BTreeMap<u64, Vec<Vec<(String, String)>>> = BTreeMap::new();
    for h in ["e.example"].iter().chain(&hosts) {
        let u = if *h == "e.example" {
            "http://e.example/arg".to_owned()
        } else {
            format!("http://{h}/x")
        };
        expected
            .entry(shard(h, 4))
            .or_default()
            .push(pairs(&[("url", &u)]));
    }
    expected
        .entry(shard("a.example", 4))
        .or_default()
        .push(pairs(&[
            ("url", "https://A.example/post"),
            ("method", "POST"),
            ("headers", r#"[["Content-Type","application/json"]]"#),
            ("body", r#"{"k":1}"#),
        ]));
    for k in 0..4 {
        let got: Vec<_> = entries(&mut c, &format!("crawl:{{{k}}}"))
            .into_iter()
            .map(|(_, f)| f)
            .collect();
        assert_eq!(got, expected.remove(&k).unwrap_or_default(), "shard {k}");
        // Every shard has the group, reading from the start, empty or not.
        let groups = c
            .cmd(&["XINFO", "GROUPS", &format!("crawl:{{{k}}}")])
            .unwrap();
        let g = groups.items()[0].pairs();
        assert!(g.contains(&("name".into(), "parafetch".into())), "{g:?}");
        assert!(
            g.contains(&("last-delivered-id".into(), "0-0".into())),
            "{g:?}"
        );
    }
    let keys = c.cmd(&["DBSIZE"]).unwrap().int().unwrap();
    assert_eq!(keys, 5, "meta and 4 shards, nothing else");
}

#[test]
fn a_queue_keeps_its_first_settings() {
    let Some(redis) = Redis::start_for_test(None) else {
        return;
    };
    let url = redis.url();
    let enqueue = |extra: &[&str]| {
        let mut args = vec![
            "enqueue",
            "--redis",
            &url,
            "--queue",
            "q",
            "http://a.example/",
        ];
        args.extend_from_slice(extra);
        run(&args, None)
    };
    assert!(enqueue(&["--shards", "3"]).status.success());
    let o = enqueue(&["--shards", "5"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("queue q has 3 shards (fixed at its first enqueue), not 5"),
        "{}",
        stderr(&o)
    );
    let o = enqueue(&["--politeness-key", "domain"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("is sharded by host"), "{}", stderr(&o));
    let o = enqueue(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut c = redis.connect();
    let k = shard("a.example", 3);
    assert_eq!(entries(&mut c, &format!("q:{{{k}}}")).len(), 2);
    let o = enqueue(&["--shards", "0"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn thousands_of_jobs_go_in_batches() {
    let Some(redis) = Redis::start_for_test(None) else {
        return;
    };
    let input: String = (0..2500)
        .map(|i| format!("http://h{}.example/{i}\n", i % 50))
        .collect();
    let o = run(
        &[
            "enqueue",
            "--redis",
            &redis.url(),
            "--queue",
            "big",
            "-i",
            "-",
        ],
        Some(input.as_bytes()),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let mut c = redis.connect();
    let mut total = 0;
    for k in 0..16 {
        let key = format!("big:{{{k}}}");
        for (_, fields) in entries(&mut c, &key) {
            let u = &fields[0].1;
            let host = u.trim_start_matches("http://").split('/').next().unwrap();
            assert_eq!(shard(host, 16), k, "{u} in shard {k}");
            total += 1;
        }
    }
    assert_eq!(total, 2500);
}

#[test]
fn malformed_jobs_are_refused_and_nothing_is_enqueued() {
    let Some(redis) = Redis::start_for_test(None) else {
        return;
    };
    let input = "http://ok.example/\nftp://a.example/\nhttp://\n{\"url\": \"http://a/\", \"hedaers\": {}}\nnot a url\n";
    let o = run(
        &[
            "enqueue",
            "--redis",
            &redis.url(),
            "--queue",
            "q",
            "-i",
            "-",
        ],
        Some(input.as_bytes()),
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    for expected in [
        "<stdin>:2: unsupported_scheme",
        "<stdin>:3: invalid_url",
        "<stdin>:4: unknown key \"hedaers\"",
        "<stdin>:5: invalid_url",
        "4 of 5 jobs are not valid; nothing was enqueued",
    ] {
        assert!(err.contains(expected), "{expected:?} not in {err}");
    }
    assert!(!err.contains("<stdin>:1"), "{err}");
    assert_eq!(redis.connect().cmd(&["DBSIZE"]).unwrap(), Reply::Int(0));
}

#[test]
fn a_dead_or_refusing_redis_is_a_clear_error_without_its_password() {
    let Some(mut redis) = Redis::start_for_test(Some("hunter2pw")) else {
        return;
    };
    let good = redis.url();
    let wrong = good.replace("hunter2pw", "wrongpw99");
    // A wrong password, as user `default` and without a user name.
    let with_user = good.replace(":hunter2pw@", "default:wrongpw99@");
    for (url, shown) in [
        (&wrong, "redis://:***@127.0.0.1:"),
        (&with_user, "redis://default:***@127.0.0.1:"),
    ] {
        let o = run(
            &["enqueue", "--redis", url, "--queue", "q", "http://a/"],
            None,
        );
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("cannot connect"), "{err}");
        assert!(err.contains(shown), "{err}");
        assert!(
            !err.contains("wrongpw99") && !err.contains("panicked"),
            "{err}"
        );
    }
    assert_eq!(redis.connect().cmd(&["DBSIZE"]).unwrap(), Reply::Int(0));
    redis.stop();
    for args in [
        vec!["enqueue", "--redis", &good, "--queue", "q", "http://a/"],
        vec!["results", "--redis", &good, "--queue", "q"],
        vec!["results", "--redis", &good, "--queue", "q", "--follow"],
    ] {
        let o = run(&args, None);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(err.contains("cannot connect: connection refused"), "{err}");
        assert!(
            !err.contains("hunter2pw") && !err.contains("panicked"),
            "{err}"
        );
    }
    let o = run(
        &[
            "enqueue",
            "--redis",
            "http://:hunter2pw@x",
            "--queue",
            "q",
            "http://a/",
        ],
        None,
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not a Redis URL"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("hunter2pw"), "{}", stderr(&o));
}

/// Adds a record the way a worker does: the --jsonl record plus the job, in `record`.
fn add_record(c: &mut Conn, queue: &str, record: &Value) -> String {
    let r = c
        .cmd(&[
            "XADD",
            &format!("{queue}:results"),
            "*",
            "record",
            &record.to_string(),
        ])
        .unwrap();
    r.text().unwrap().to_owned()
}

#[test]
fn results_prints_records_as_json_lines_and_trims_what_it_printed() {
    let Some(redis) = Redis::start_for_test(None) else {
        return;
    };
    let mut c = redis.connect();
    let records: Vec<Value> = (0..3)
        .map(|i| json!({"job": format!("{i}-0"), "shard": i, "url": format!("http://h/{i}"), "status": 200}))
        .collect();
    for r in &records {
        add_record(&mut c, "q", r);
    }
    let url = redis.url();
    let read = |extra: &[&str]| {
        let mut args = vec!["results", "--redis", &url, "--queue", "q"];
        args.extend_from_slice(extra);
        let o = run(&args, None);
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8(o.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(read(&[]), records);
    assert_eq!(c.cmd(&["XLEN", "q:results"]).unwrap(), Reply::Int(3));
    assert_eq!(read(&["--trim"]), records);
    assert_eq!(c.cmd(&["XLEN", "q:results"]).unwrap(), Reply::Int(0));
    assert_eq!(read(&[]), Vec::<Value>::new());
}

#[test]
fn results_follow_prints_new_records_until_sigterm() {
    let Some(redis) = Redis::start_for_test(None) else {
        return;
    };
    let mut c = redis.connect();
    let first = json!({"job": "a", "status": 200});
    add_record(&mut c, "f", &first);
    let mut child = Command::new(env!("CARGO_BIN_EXE_parafetch"))
        .args([
            "results",
            "--redis",
            &redis.url(),
            "--queue",
            "f",
            "--follow",
            "--trim",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let line = |rx: &mpsc::Receiver<String>| {
        let l = rx.recv_timeout(LONG).expect("a record line");
        serde_json::from_str::<Value>(&l).unwrap()
    };
    assert_eq!(line(&rx), first);
    // Printed before this one was added: so --follow saw it arrive.
    let second = json!({"job": "b", "status": 404});
    add_record(&mut c, "f", &second);
    assert_eq!(line(&rx), second);
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) },
        0
    );
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{status:?}: {err}");
    // Both printed, both trimmed.
    assert_eq!(c.cmd(&["XLEN", "f:results"]).unwrap(), Reply::Int(0));
}

// ---------------------------------------------------------------------------------------
// `parafetch worker`: workers as child processes, against test servers on loopback
// addresses (one host each) and a real redis-server. Nothing sleeps to synchronise: the
// tests wait (bounded) on Redis's state, on the workers' stderr or on their exit; only the
// test servers hold each request a few milliseconds, so requests overlap.

/// How long a whole queue may take to drain, at most (a debug build on 2 cores).
const DRAIN: Duration = Duration::from_secs(60);

/// Polls `cond` every 25 ms until it holds (true) or `within` has passed (false).
fn wait_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

fn xlen(c: &mut Conn, key: &str) -> i64 {
    c.cmd(&["XLEN", key]).unwrap().int().unwrap()
}

/// A running `parafetch worker`, its stderr gathered as it comes. Killed (SIGKILL) on
/// drop if it still runs, so a failing test leaves no worker behind.
struct Worker {
    name: String,
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Worker {
    /// `parafetch worker --redis URL --queue QUEUE --name NAME EXTRA...`.
    fn start(redis: &str, queue: &str, name: &str, extra: &[&str]) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_parafetch"))
            .args(["worker", "--redis", redis, "--queue", queue, "--name", name])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start parafetch worker");
        let pipe = child.stderr.take().expect("piped stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let log = Arc::clone(&stderr);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut log = log.lock().unwrap_or_else(|p| p.into_inner());
                log.push_str(&line);
                log.push('\n');
            }
        });
        Worker {
            name: name.to_owned(),
            child,
            stderr,
            reader: Some(reader),
        }
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until its stderr holds `needle`; false after `within`.
    fn said(&self, needle: &str, within: Duration) -> bool {
        wait_until(within, || self.stderr().contains(needle))
    }

    /// Sends SIGTERM (the process is ours and not yet waited for, so the pid is its).
    fn terminate(&self) {
        let pid = self.child.id().to_string();
        let st = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(st.success(), "kill -TERM {pid}: {st:?}");
    }

    /// Waits (bounded) for it to exit, then for the last of its stderr.
    fn wait(&mut self, within: Duration) -> ExitStatus {
        let mut status = None;
        let exited = wait_until(within, || {
            status = self.child.try_wait().expect("try_wait");
            status.is_some()
        });
        assert!(
            exited,
            "worker {} still runs after {within:?}; stderr:\n{}",
            self.name,
            self.stderr()
        );
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        status.expect("exited")
    }

    /// SIGTERM, then asserts it exits 0 within [`LONG`].
    fn stop_cleanly(&mut self) {
        self.terminate();
        let status = self.wait(LONG);
        assert!(
            status.success(),
            "worker {}: {status:?}; stderr:\n{}",
            self.name,
            self.stderr()
        );
    }

    /// How many jobs it holds at most, as it says on starting: "at most N in flight and
    /// M held".
    fn held(&self) -> usize {
        assert!(
            self.said(" held", LONG),
            "worker {} did not start: {}",
            self.name,
            self.stderr()
        );
        let err = self.stderr();
        let line = err.lines().find(|l| l.ends_with(" held")).unwrap();
        let m = line.rsplit(" and ").next().unwrap();
        m.trim_end_matches(" held").parse().unwrap()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `n` test servers on 127.0.0.2, 127.0.0.3, ... (one host each): keep-alive, each
/// request answered 200 `ok` after being held `hold` (between reading it and answering:
/// what `in_handler_peak` counts), so a host's requests overlap when a cap lets them.
fn servers(n: u8, hold: Duration) -> Vec<TestServer> {
    (0..n)
        .map(|i| {
            TestServer::start_on(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i)), move |c| {
                c.serve_keep_alive(|_, c| {
                    std::thread::sleep(hold);
                    c.respond(200, &[], b"ok")
                })
            })
        })
        .collect()
}

/// `total` unique URLs, `http://127.0.0.X:PORT/?i=N`, spread over `servers` in turn.
fn fleet_urls(servers: &[TestServer], total: usize) -> Vec<String> {
    (0..total)
        .map(|i| servers[i % servers.len()].url(&format!("/?i={i}")))
        .collect()
}

/// Enqueues `urls` into queue `q` (16 shards, by host).
fn enqueue(redis: &Redis, q: &str, urls: &[String]) {
    let input: String = urls.iter().map(|u| format!("{u}\n")).collect();
    let o = run(
        &["enqueue", "--redis", &redis.url(), "--queue", q, "-i", "-"],
        Some(input.as_bytes()),
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Every result record of queue `q`, parsed.
fn records(c: &mut Conn, q: &str) -> Vec<Value> {
    entries(c, &format!("{q}:results"))
        .into_iter()
        .map(|(id, fields)| {
            assert_eq!(fields.len(), 1, "{id}: {fields:?}");
            assert_eq!(fields[0].0, "record", "{id}");
            serde_json::from_str(&fields[0].1).unwrap_or_else(|e| panic!("{id}: {e}"))
        })
        .collect()
}

/// Asserts one record per URL of `urls`, and no other, each a 200. Returns how many
/// records each worker wrote.
fn one_record_per_url(records: &[Value], urls: &[String]) -> BTreeMap<String, usize> {
    let mut per_url: HashMap<&str, usize> = HashMap::new();
    let mut per_worker = BTreeMap::new();
    for r in records {
        let url = r["url"].as_str().unwrap_or_else(|| panic!("no url: {r}"));
        *per_url.entry(url).or_default() += 1;
        *per_worker
            .entry(r["worker"].as_str().unwrap().to_owned())
            .or_default() += 1;
        assert_eq!(r["status"], 200, "{r}");
        assert!(r["job"].is_string() && r["shard"].is_u64(), "{r}");
    }
    let twice: Vec<_> = per_url.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "URLs with more than one record: {twice:?}"
    );
    let missing: Vec<_> = urls
        .iter()
        .filter(|u| !per_url.contains_key(u.as_str()))
        .collect();
    assert!(missing.is_empty(), "URLs without a record: {missing:?}");
    assert_eq!(records.len(), urls.len());
    per_worker
}

/// Asserts that no job of queue `q` is left: every shard stream empty, nothing pending.
fn assert_drained(c: &mut Conn, q: &str) {
    for k in 0..16 {
        let key = format!("{q}:{{{k}}}");
        assert_eq!(xlen(c, &key), 0, "{key} has entries left");
        let pending = c.cmd(&["XPENDING", &key, "parafetch"]).unwrap();
        assert_eq!(pending.items()[0].int(), Some(0), "{key}: {pending:?}");
    }
}

/// Asserts that the stopped workers left no lease and are out of `NAME:workers`.
fn assert_fleet_left(c: &mut Conn, q: &str) {
    let leases = c.cmd(&["KEYS", &format!("{q}:lease:*")]).unwrap();
    assert!(leases.items().is_empty(), "leases left: {leases:?}");
    let workers = c
        .cmd(&["ZRANGE", &format!("{q}:workers"), "0", "-1"])
        .unwrap();
    assert!(
        workers.items().is_empty(),
        "still in the fleet: {workers:?}"
    );
}

/// Waits until `NAME:results` has `n` records; fails with the workers' stderr and what
/// is pending if not.
fn wait_for_results(c: &mut Conn, q: &str, n: i64, workers: &[&Worker]) {
    let key = format!("{q}:results");
    let done = wait_until(DRAIN, || xlen(c, &key) >= n);
    if !done {
        let got = xlen(c, &key);
        let errs: Vec<String> = workers
            .iter()
            .map(|w| format!("{}:\n{}", w.name, w.stderr()))
            .collect();
        let pending: Vec<String> = (0..16)
            .map(|k| {
                let key = format!("{q}:{{{k}}}");
                let p = c
                    .cmd(&["XPENDING", &key, "parafetch", "-", "+", "5"])
                    .unwrap();
                // (id, consumer, idle ms, deliveries)
                let p: Vec<String> = p
                    .items()
                    .iter()
                    .map(|e| {
                        let e = e.items();
                        let (id, who) = (e[0].text().unwrap(), e[1].text().unwrap());
                        format!("{id} {who} {:?} ms {:?}x", e[2].int(), e[3].int())
                    })
                    .collect();
                format!("{key}: {} entries; pending {p:?}", xlen(c, &key))
            })
            .collect();
        panic!(
            "{got} of {n} results after {DRAIN:?}; stderr:\n{}\n{}",
            errs.join("\n"),
            pending.join("\n")
        );
    }
}

/// The jobs of queue `q` pending for `consumer`: (shard stream, entry id).
fn pending_of(c: &mut Conn, q: &str, consumer: &str) -> Vec<(String, String)> {
    let mut all = Vec::new();
    for k in 0..16 {
        let key = format!("{q}:{{{k}}}");
        let p = c
            .cmd(&["XPENDING", &key, "parafetch", "-", "+", "100000", consumer])
            .unwrap();
        for e in p.items() {
            all.push((key.clone(), e.items()[0].text().unwrap().to_owned()));
        }
    }
    all
}

/// How many times the servers were asked for each URL (`ADDR/TARGET`).
fn requests_per_url(servers: &[TestServer]) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for s in servers {
        for r in s.requests() {
            *seen.entry(format!("{}{}", s.addr(), r.target)).or_default() += 1;
        }
    }
    seen
}

/// The URLs the servers were asked for more than once, each with when (since `t0`) and on
/// which connection, and its records.
fn asked_twice(servers: &[TestServer], t0: Instant, records: &[Value]) -> Vec<String> {
    let mut lines = Vec::new();
    for s in servers {
        let mut by_target: HashMap<String, Vec<String>> = HashMap::new();
        for r in s.requests() {
            by_target.entry(r.target.clone()).or_default().push(format!(
                "conn {} at {:?}",
                r.conn_index,
                r.received_at.duration_since(t0)
            ));
        }
        for (target, seen) in by_target.into_iter().filter(|(_, v)| v.len() > 1) {
            let url = s.url(&target);
            let recs: Vec<String> = records
                .iter()
                .filter(|r| r["url"] == url.as_str())
                .map(|r| format!("job {} by {}", r["job"], r["worker"]))
                .collect();
            lines.push(format!("{url}: {seen:?}; records {recs:?}"));
        }
    }
    lines
}

#[test]
fn a_durable_redis_comes_back_with_its_data() {
    let Some(mut redis) = Redis::start_durable_for_test(None) else {
        return;
    };
    assert!(redis.durable);
    let mut c = redis.connect();
    assert_eq!(c.cmd(&["SET", "k", "v"]).unwrap().text(), Some("OK"));
    redis.restart().unwrap();
    let mut c = redis.connect();
    assert_eq!(c.cmd(&["GET", "k"]).unwrap().text(), Some("v"));

    // And one that is not durable comes back empty.
    let Some(mut redis) = Redis::start_for_test(None) else {
        return;
    };
    assert!(!redis.durable);
    let mut c = redis.connect();
    assert_eq!(c.cmd(&["SET", "k", "v"]).unwrap().text(), Some("OK"));
    redis.restart().unwrap();
    let mut c = redis.connect();
    assert_eq!(c.cmd(&["GET", "k"]).unwrap(), Reply::Bulk(None));
}

#[test]
fn a_fleet_of_three_workers_fetches_each_url_once_and_keeps_the_per_host_cap() {
    let Some(redis) = Redis::start_for_test(None) else {
        return;
    };
    let started = Instant::now();
    let servers = servers(50, Duration::from_millis(2));
    let urls = fleet_urls(&servers, 20_000);
    enqueue(&redis, "fleet", &urls);
    let enqueued = started.elapsed();
    let url = redis.url();
    let opts = ["-n", "32", "--per-host", "2", "--lease", "1.5"];
    let mut workers: Vec<Worker> = ["w0", "w1", "w2"]
        .iter()
        .map(|name| Worker::start(&url, "fleet", name, &opts))
        .collect();
    let mut c = redis.connect();
    wait_for_results(&mut c, "fleet", 20_000, &workers.iter().collect::<Vec<_>>());
    let fetched = started.elapsed();
    for w in &workers {
        w.terminate();
    }
    for w in &mut workers {
        let status = w.wait(LONG);
        assert!(status.success(), "{}: {status:?}\n{}", w.name, w.stderr());
    }
    eprintln!(
        "fleet: enqueued in {:.1} s, 20,000 results after {:.1} s, stopped after {:.1} s",
        enqueued.as_secs_f64(),
        fetched.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );

    let per_worker = one_record_per_url(&records(&mut c, "fleet"), &urls);
    for w in &workers {
        assert!(
            per_worker.get(&w.name).copied().unwrap_or(0) > 0,
            "{} wrote no result: {per_worker:?}",
            w.name
        );
    }
    let asked = requests_per_url(&servers);
    assert_eq!(asked.len(), 20_000);
    let twice = asked_twice(&servers, started, &records(&mut c, "fleet"));
    if !twice.is_empty() {
        let errs: Vec<String> = workers
            .iter()
            .map(|w| format!("{}:\n{}", w.name, w.stderr()))
            .collect();
        panic!(
            "URLs asked for more than once:\n{}\n{}",
            twice.join("\n"),
            errs.join("\n")
        );
    }
    assert_eq!(
        servers.iter().map(TestServer::request_count).sum::<usize>(),
        20_000
    );
    for s in &servers {
        assert!(
            s.in_handler_peak() <= 2,
            "{}: {} requests at once, --per-host 2",
            s.addr(),
            s.in_handler_peak()
        );
    }
    // The cap was reached, so it was tested.
    assert!(servers.iter().any(|s| s.in_handler_peak() == 2));
    assert_drained(&mut c, "fleet");
    assert_fleet_left(&mut c, "fleet");
}

#[test]
fn a_killed_workers_jobs_are_claimed_and_each_url_gets_one_record() {
    let Some(redis) = Redis::start_for_test(None) else {
        return;
    };
    let servers = servers(10, Duration::from_millis(5));
    let urls = fleet_urls(&servers, 3000);
    enqueue(&redis, "k9", &urls);
    let url = redis.url();
    let opts = [
        "-n",
        "16",
        "--per-host",
        "2",
        "--lease",
        "1.5",
        "--claim-after",
        "2",
    ];
    let mut a = Worker::start(&url, "k9", "a", &opts);
    let mut b = Worker::start(&url, "k9", "b", &opts);
    let held = a.held();
    let mut c = redis.connect();
    wait_for_results(&mut c, "k9", 500, &[&a, &b]);
    // Killed while it holds jobs (it may have started with no shard, as b took them all
    // first and sheds half only at its next lease round).
    assert!(
        wait_until(DRAIN, || !pending_of(&mut c, "k9", "a").is_empty()),
        "a never held a job:\n{}",
        a.stderr()
    );
    a.child.kill().unwrap();
    assert!(!a.wait(LONG).success());
    let a_wrote = records(&mut c, "k9")
        .iter()
        .filter(|r| r["worker"] == "a")
        .count();
    let abandoned = pending_of(&mut c, "k9", "a");
    assert!(!abandoned.is_empty());
    let mut late = Worker::start(&url, "k9", "c", &opts);
    wait_for_results(&mut c, "k9", 3000, &[&b, &late]);
    b.stop_cleanly();
    late.stop_cleanly();

    let records = records(&mut c, "k9");
    let per_worker = one_record_per_url(&records, &urls);
    // What a wrote before it died is all it wrote; what it held, others claimed.
    assert_eq!(per_worker.get("a").copied().unwrap_or(0), a_wrote);
    for (shard, id) in &abandoned {
        let r = records
            .iter()
            .find(|r| r["job"] == id.as_str() && shard.ends_with(&format!("{{{}}}", r["shard"])))
            .unwrap_or_else(|| panic!("{shard} {id}: no record"));
        assert_ne!(r["worker"], "a", "{r}");
    }
    assert_drained(&mut c, "k9");
    assert_fleet_left(&mut c, "k9");
    // Fetched again: only what a held and had not written (some of it was asked for
    // before the kill), never more than it may hold.
    let asked: usize = servers.iter().map(TestServer::request_count).sum();
    assert!(asked >= 3000);
    assert!(
        asked - 3000 <= held,
        "{} URLs asked for again, a held at most {held}",
        asked - 3000
    );
    let per_url = requests_per_url(&servers);
    assert_eq!(per_url.len(), 3000);
    eprintln!(
        "kill -9: a held {} jobs when killed, {} URLs asked for twice (a held at most {held}); \
         records by worker {per_worker:?}",
        abandoned.len(),
        asked - 3000
    );
}

#[test]
fn workers_ride_out_a_redis_restart() {
    let Some(mut redis) = Redis::start_durable_for_test(None) else {
        return;
    };
    let started = Instant::now();
    let servers = servers(10, Duration::from_millis(5));
    let urls = fleet_urls(&servers, 3000);
    enqueue(&redis, "rs", &urls);
    let url = redis.url();
    // --claim-after is 300 s: a job whose delivery was lost with its reply (Redis killed
    // after an XREADGROUP ran, before it answered) is found again in time only by its
    // worker reading back its own pending list. The restart comes in the first second,
    // while the workers still share out the shards (a lease round every 0.5 s).
    let opts = ["-n", "16", "--per-host", "2", "--lease", "1.5"];
    let mut workers = [
        Worker::start(&url, "rs", "a", &opts),
        Worker::start(&url, "rs", "b", &opts),
    ];
    let mut c = redis.connect();
    wait_for_results(&mut c, "rs", 500, &[&workers[0], &workers[1]]);
    redis.restart().unwrap();
    let mut c = redis.connect();
    let before = xlen(&mut c, "rs:results");
    assert!(before >= 500, "the results written survived: {before}");
    wait_for_results(&mut c, "rs", 3000, &[&workers[0], &workers[1]]);
    for w in &workers {
        assert!(
            w.said("is back after", LONG),
            "{} never said it reconnected:\n{}",
            w.name,
            w.stderr()
        );
    }
    for w in &mut workers {
        w.stop_cleanly();
    }
    let records = records(&mut c, "rs");
    one_record_per_url(&records, &urls);
    assert_drained(&mut c, "rs");
    assert_fleet_left(&mut c, "rs");
    // Nothing was fetched twice: no worker died, and a job read back was not one it
    // had fetched.
    let twice = asked_twice(&servers, started, &records);
    assert!(
        twice.is_empty(),
        "asked for more than once:\n{}",
        twice.join("\n")
    );
    assert_eq!(
        servers.iter().map(TestServer::request_count).sum::<usize>(),
        3000
    );
    eprintln!(
        "redis restart: {before} results before it; {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn a_job_that_is_not_one_gets_an_invalid_request_record_and_is_not_retried() {
    let Some(redis) = Redis::start_for_test(None) else {
        return;
    };
    let servers = servers(1, Duration::ZERO);
    let urls = fleet_urls(&servers, 20);
    enqueue(&redis, "bad", &urls);
    let mut c = redis.connect();
    let shard = format!("bad:{{{}}}", shard("127.0.0.2", 16));
    let good_url = servers[0].url("/bad");
    let mut add = |fields: &[&str]| {
        let mut args = vec!["XADD", shard.as_str(), "*"];
        args.extend_from_slice(fields);
        c.cmd(&args).unwrap().text().unwrap().to_owned()
    };
    let no_url = add(&["method", "GET"]);
    let bad_headers = add(&["url", &good_url, "headers", "{\"Accept\": \"*/*\"}"]);
    let not_json = add(&["url", &good_url, "headers", "[[\"Accept\""]);
    let mut w = Worker::start(&redis.url(), "bad", "w", &["-n", "4"]);
    wait_for_results(&mut c, "bad", 23, &[&w]);
    w.stop_cleanly();

    let records = records(&mut c, "bad");
    assert_eq!(records.len(), 23);
    let (bad, good): (Vec<&Value>, Vec<&Value>) =
        records.iter().partition(|r| !r["error"].is_null());
    one_record_per_url(&good.into_iter().cloned().collect::<Vec<_>>(), &urls);
    let mut bad_ids: Vec<&str> = bad.iter().map(|r| r["job"].as_str().unwrap()).collect();
    bad_ids.sort_unstable();
    let mut want = vec![no_url.as_str(), bad_headers.as_str(), not_json.as_str()];
    want.sort_unstable();
    assert_eq!(bad_ids, want);
    for r in &bad {
        assert_eq!(r["error"]["kind"], "invalid_request", "{r}");
        assert_eq!(r["status"], Value::Null, "{r}");
    }
    let no_url_record = bad.iter().find(|r| r["job"] == no_url.as_str()).unwrap();
    assert!(
        no_url_record["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no \"url\""),
        "{no_url_record}"
    );
    // Acknowledged and deleted, not left to be read again; never asked for.
    assert_drained(&mut c, "bad");
    assert!(
        !servers[0].requests().iter().any(|r| r.target == "/bad"),
        "a bad job was fetched"
    );
    assert_eq!(servers[0].request_count(), 20);
    assert!(
        w.stderr().contains("23 results written; 3 fetches failed"),
        "{}",
        w.stderr()
    );
}

#[test]
fn a_workers_redis_password_never_reaches_its_stderr() {
    let Some(mut redis) = Redis::start_for_test(Some("s3cretpw42")) else {
        return;
    };
    let servers = servers(1, Duration::ZERO);
    let urls = fleet_urls(&servers, 10);
    enqueue(&redis, "pw", &urls);
    let url = redis.url();
    assert!(url.contains("s3cretpw42"));
    let mut w = Worker::start(&url, "pw", "w", &["--lease", "1.5"]);
    let mut c = redis.connect();
    wait_for_results(&mut c, "pw", 10, &[&w]);
    // Redis goes away and comes back (empty): the worker says so, naming Redis.
    redis.stop();
    assert!(w.said("retries with backoff", LONG), "{}", w.stderr());
    redis.restart().unwrap();
    assert!(w.said("is back after", LONG), "{}", w.stderr());
    w.stop_cleanly();
    let err = w.stderr();
    assert!(err.contains("redis://:***@127.0.0.1:"), "{err}");
    assert!(!err.contains("s3cretpw42"), "{err}");

    // A wrong password: refused, said without either password, until SIGTERM.
    let wrong = url.replace("s3cretpw42", "wr0ngpw77");
    let mut w = Worker::start(&wrong, "pw", "w2", &[]);
    assert!(w.said("retries with backoff", LONG), "{}", w.stderr());
    w.stop_cleanly();
    let err = w.stderr();
    assert!(err.contains("redis://:***@127.0.0.1:"), "{err}");
    assert!(
        !err.contains("s3cretpw42") && !err.contains("wr0ngpw77"),
        "{err}"
    );
}

#[test]
fn a_worker_takes_up_at_once_the_jobs_pending_under_its_name() {
    let Some(redis) = Redis::start_for_test(None) else {
        return;
    };
    let servers = servers(1, Duration::ZERO);
    let urls = fleet_urls(&servers, 30);
    enqueue(&redis, "again", &urls);
    // Delivered to consumer w, as to a run of it that died, or a read whose reply was lost
    // with its connection: pending for w, never started.
    let mut c = redis.connect();
    let shard = format!("again:{{{}}}", shard("127.0.0.2", 16));
    let read = c
        .cmd(&[
            "XREADGROUP",
            "GROUP",
            "parafetch",
            "w",
            "COUNT",
            "10",
            "STREAMS",
            &shard,
            ">",
        ])
        .unwrap();
    assert_eq!(read.items()[0].items()[1].items().len(), 10);
    assert_eq!(pending_of(&mut c, "again", "w").len(), 10);
    // --claim-after is 300 s: only reading back its own pending list finishes in time.
    let mut w = Worker::start(&redis.url(), "again", "w", &[]);
    wait_for_results(&mut c, "again", 30, &[&w]);
    w.stop_cleanly();
    one_record_per_url(&records(&mut c, "again"), &urls);
    assert_drained(&mut c, "again");
    assert_eq!(servers[0].request_count(), 30);
}

/// rediss://: enqueue, a worker (its URL from PARAFETCH_REDIS) and results talk to Redis
/// over TLS, trusting a private CA given by --redis-cacert; without it, the server's
/// certificate is refused, with a clear error and without the password.
#[test]
fn rediss_with_a_private_ca_and_a_url_from_the_environment() {
    let Some(redis) = Redis::start_tls_for_test(Some("tlspw7")) else {
        return;
    };
    let url = redis.tls_url();
    let ca = redis.ca_file();
    let ca = ca.to_str().expect("utf-8 temp path");
    let servers = servers(1, Duration::ZERO);
    let urls = fleet_urls(&servers, 5);
    let input: String = urls.iter().map(|u| format!("{u}\n")).collect();

    let refused = run(
        &["enqueue", "--redis", &url, "--queue", "tls", "-i", "-"],
        Some(input.as_bytes()),
    );
    assert_eq!(refused.status.code(), Some(1), "{}", stderr(&refused));
    let said = stderr(&refused);
    assert!(
        said.contains("certificate") || said.contains("UnknownIssuer"),
        "{said}"
    );
    assert!(!said.contains("tlspw7"), "{said}");
    assert!(said.contains("rediss://:***@localhost"), "{said}");

    let o = run(
        &[
            "enqueue",
            "--redis",
            &url,
            "--redis-cacert",
            ca,
            "--queue",
            "tls",
            "-i",
            "-",
        ],
        Some(input.as_bytes()),
    );
    assert!(o.status.success(), "{}", stderr(&o));

    // The worker takes its URL from the environment: nothing secret on its command line.
    let child = Command::new(env!("CARGO_BIN_EXE_parafetch"))
        .args([
            "worker",
            "--redis-cacert",
            ca,
            "--queue",
            "tls",
            "--lease",
            "1.5",
        ])
        .env("PARAFETCH_REDIS", &url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start parafetch worker");
    let mut c = redis.connect();
    let done = wait_until(LONG, || xlen(&mut c, "tls:results") >= 5);
    let pid = child.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let out = child.wait_with_output().expect("wait for the worker");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(done, "no results over TLS: {said}");
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("tlspw7"), "{said}");

    let o = run(
        &[
            "results",
            "--redis",
            &url,
            "--redis-cacert",
            ca,
            "--queue",
            "tls",
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = String::from_utf8_lossy(&o.stdout).into_owned();
    let records: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON record"))
        .collect();
    assert_eq!(records.len(), 5, "{lines}");
    assert!(records.iter().all(|r| r["status"] == 200), "{lines}");
    assert_eq!(servers[0].request_count(), 5);
}

/// A worker asked to stop while Redis is away, holding nothing, exits 0 at once: its
/// leases expire on their own.
#[test]
fn a_worker_holding_nothing_stops_while_redis_is_away() {
    let Some(mut redis) = Redis::start_for_test(None) else {
        return;
    };
    let servers = servers(1, Duration::ZERO);
    let urls = fleet_urls(&servers, 3);
    enqueue(&redis, "away", &urls);
    let mut w = Worker::start(&redis.url(), "away", "w", &["--lease", "1.5"]);
    let mut c = redis.connect();
    wait_for_results(&mut c, "away", 3, &[&w]);
    redis.stop();
    assert!(w.said("retries with backoff", LONG), "{}", w.stderr());
    w.stop_cleanly();
}

/// A queue whose settings the worker cannot read is an error (exit 1), and so are
/// settings changed under a running worker (Redis restarted empty, then a first enqueue
/// with another shard count): its leases would not cover the right jobs.
#[test]
fn a_worker_refuses_a_queue_whose_settings_it_cannot_use() {
    let Some(mut redis) = Redis::start_for_test(None) else {
        return;
    };
    let mut c = redis.connect();
    for (k, v) in [
        ("version", "9"),
        ("hash", "fnv1a-fold"),
        ("shards", "16"),
        ("key", "host"),
    ] {
        c.cmd(&["HSET", "odd:meta", k, v]).unwrap();
    }
    let mut w = Worker::start(&redis.url(), "odd", "w", &[]);
    let status = w.wait(LONG);
    assert_eq!(status.code(), Some(1), "{}", w.stderr());
    assert!(w.stderr().contains("version"), "{}", w.stderr());

    let servers = servers(1, Duration::ZERO);
    let urls = fleet_urls(&servers, 3);
    enqueue(&redis, "moved", &urls);
    let mut w = Worker::start(&redis.url(), "moved", "w2", &["--lease", "1.5"]);
    wait_for_results(&mut c, "moved", 3, &[&w]);
    redis.restart().unwrap();
    let o = run(
        &[
            "enqueue",
            "--redis",
            &redis.url(),
            "--queue",
            "moved",
            "--shards",
            "4",
            &urls[0],
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let status = w.wait(LONG);
    assert_eq!(status.code(), Some(1), "{}", w.stderr());
    assert!(
        w.stderr()
            .contains("it now has 4 shards by host, not 16 by host"),
        "{}",
        w.stderr()
    );
}

/// With `-o DIR` a worker saves each body to `DIR/SHARD-ID.body` and names the file in
/// its record; enqueue's -X, -H and -d reach the server as each job's method, header and
/// body.
#[test]
fn a_worker_saves_bodies_and_sends_what_the_enqueue_asked() {
    let Some(redis) = Redis::start_for_test(None) else {
        return;
    };
    let server = TestServer::start_on(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), |c| {
        c.serve_keep_alive(|req, c| {
            let body = format!("{} {}", req.method, String::from_utf8_lossy(&req.body));
            c.respond(200, &[], body.as_bytes())
        })
    });
    let urls: Vec<String> = (0..4).map(|i| server.url(&format!("/o{i}"))).collect();
    let mut args = vec![
        "enqueue", "--redis", "", "--queue", "saved", "-X", "PUT", "-H", "X-Run: 7", "-d", "k=v",
    ];
    let url = redis.url();
    args[2] = &url;
    args.extend(urls.iter().map(String::as_str));
    let o = run(&args, None);
    assert!(o.status.success(), "{}", stderr(&o));

    let dir = std::env::temp_dir().join(format!("parafetch-worker-o-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.to_str().expect("utf-8 temp path").to_owned();
    let mut w = Worker::start(&url, "saved", "w", &["-o", &dir_arg, "--lease", "1.5"]);
    let mut c = redis.connect();
    wait_for_results(&mut c, "saved", 4, &[&w]);
    w.stop_cleanly();
    let recs = records(&mut c, "saved");
    assert_eq!(recs.len(), 4);
    for r in &recs {
        let file = r["file"].as_str().expect("a saved body's file");
        let expected = dir.join(format!(
            "{}-{}.body",
            r["shard"].as_u64().unwrap(),
            r["job"].as_str().unwrap()
        ));
        assert_eq!(std::path::Path::new(file), expected, "{r}");
        assert_eq!(std::fs::read_to_string(file).unwrap(), "PUT k=v");
    }
    let asked = server.requests();
    assert_eq!(asked.len(), 4);
    assert!(asked.iter().all(|r| r.header("x-run") == Some("7")));
    let _ = std::fs::remove_dir_all(&dir);
}
