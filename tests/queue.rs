//! The queue commands (`parafetch enqueue`, `parafetch results`) run as child processes
//! against a real redis-server on loopback (test-support's launcher, persistence off),
//! looked into with test-support's own RESP client, not the one parafetch uses.
//!
//! Run with `cargo test --features queue` (with CI set, a missing redis-server fails).
#![cfg(feature = "queue")]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

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
