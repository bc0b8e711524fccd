//! The queue commands on Redis Streams (feature `queue`; the layout is docs/queue.md):
//! `parafetch enqueue` checks every job, then adds it to its shard's stream;
//! `parafetch results` prints the result records as JSON lines.
//!
//! Owns the queue's key layout (`NAME:meta`, `NAME:{k}`, `NAME:results`), its metadata
//! (shard count and sharding rule, fixed at the first enqueue) and the job's fields. It
//! never fetches, and it never prints the Redis URL's password: every message names Redis
//! by [`redacted`].

use std::collections::HashMap;
use std::io::{self, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parafetch::{PolitenessKey, Request, shard_of};
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::{Commands, Connection, RedisError};
use serde_json::Value;

use crate::Usage;
use crate::args::{EnqueueArgs, KeyArg, QueueArgs, ResultsArgs};
use crate::input::{self, Entry};
use crate::output::chain;

/// The consumer group of every shard stream.
pub const GROUP: &str = "parafetch";
/// Shards of a queue whose first enqueue did not say.
pub const DEFAULT_SHARDS: usize = 16;
/// The sharding rule recorded in `NAME:meta`: [`shard_of`] (FNV-1a, halves folded) of the
/// politeness key, modulo the shard count. A reader that finds another refuses the queue.
pub const HASH: &str = "fnv1a-fold";
/// The layout's version in `NAME:meta`.
pub const VERSION: &str = "1";
/// Jobs (or records) per round trip.
const BATCH: usize = 1000;
/// How long connecting, and each reply, may take.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `results --follow` blocks in one XREAD: it looks at its signals between two.
const FOLLOW_BLOCK_MS: usize = 500;

/// A queue's keys.
#[derive(Clone)]
pub struct Layout {
    name: String,
}

impl Layout {
    /// The keys of queue `name`.
    pub fn new(name: &str) -> Layout {
        Layout {
            name: name.to_owned(),
        }
    }

    /// The hash holding shard count and sharding rule.
    pub fn meta(&self) -> String {
        format!("{}:meta", self.name)
    }

    /// Shard `k`'s stream of jobs.
    pub fn shard(&self, k: usize) -> String {
        format!("{}:{{{k}}}", self.name)
    }

    /// The stream of result records.
    pub fn results(&self) -> String {
        format!("{}:results", self.name)
    }

    /// The lease on shard `k`: the name of the worker reading it, with an expiry.
    pub fn lease(&self, k: usize) -> String {
        format!("{}:lease:{{{k}}}", self.name)
    }

    /// The live workers, scored by their last heartbeat (Redis's clock, milliseconds).
    pub fn workers(&self) -> String {
        format!("{}:workers", self.name)
    }
}

/// What `NAME:meta` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Meta {
    /// How many shard streams.
    pub shards: usize,
    /// What jobs are sharded by.
    pub key: PolitenessKey,
}

/// A Redis URL fit for messages: a password (or a user name given alone, often a token)
/// becomes `***`; a URL that does not parse loses everything before its last `@`.
pub fn redacted(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            } else if !u.username().is_empty() {
                let _ = u.set_username("***");
            }
            // redis+unix:///PATH?user=U&pass=P carries its secrets in the query.
            if u.query().is_some() {
                u.set_query(Some("***"));
            }
            u.to_string()
        }
        Err(_) => match url.rfind('@') {
            Some(at) => format!("***{}", &url[at..]),
            None => url.to_owned(),
        },
    }
}

/// Something went wrong with Redis: the message names Redis without its password.
pub struct Failed(pub String);

/// A [`Failed`] for `what` on the Redis of `args`.
pub fn failed(args: &QueueArgs, what: &str, e: &RedisError) -> Failed {
    Failed(format!(
        "Redis at {}: {what}: {}",
        redacted(&args.redis),
        describe(e)
    ))
}

/// A Redis error in words; its text never holds the URL (redis-rs's errors do not).
pub fn describe(e: &RedisError) -> String {
    if e.is_connection_refusal() {
        return format!("connection refused ({e})");
    }
    if e.is_timeout() {
        return format!("no answer in time ({e})");
    }
    e.to_string()
}

/// The client for `--redis`; a URL redis-rs refuses is a usage error.
pub fn client(args: &QueueArgs) -> Result<redis::Client, Usage> {
    let bad = |e: RedisError| {
        Usage(format!(
            "--redis {}: not a Redis URL ({e}); expected redis[s]://[[USER]:PASSWORD@]HOST[:PORT][/DB]",
            redacted(&args.redis)
        ))
    };
    let Some(path) = &args.redis_cacert else {
        return redis::Client::open(args.redis.as_str()).map_err(bad);
    };
    if !args.redis.starts_with("rediss://") {
        return Err(Usage("--redis-cacert is for a rediss:// (TLS) URL".into()));
    }
    let pem = std::fs::read(path).map_err(|e| {
        Usage(format!(
            "cannot read --redis-cacert {}: {e}",
            path.display()
        ))
    })?;
    let certs = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem),
    };
    redis::Client::build_with_tls(args.redis.as_str(), certs).map_err(|e| {
        Usage(format!(
            "--redis {} with --redis-cacert {}: {e}",
            redacted(&args.redis),
            path.display()
        ))
    })
}

/// A connection (bounded by [`IO_TIMEOUT`]), authenticated and on the database the URL
/// says, whose replies may take at most `IO_TIMEOUT` too.
pub fn open(client: &redis::Client) -> Result<Connection, RedisError> {
    let c = client.get_connection_with_timeout(IO_TIMEOUT)?;
    c.set_read_timeout(Some(IO_TIMEOUT))?;
    c.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(c)
}

/// Connects, or says why not (a malformed URL is a usage error).
fn connect(args: &QueueArgs) -> Result<Result<Connection, Failed>, Usage> {
    let client = client(args)?;
    Ok(open(&client).map_err(|e| failed(args, "cannot connect", &e)))
}

/// One job: what a worker turns into a request.
#[derive(Debug, PartialEq, Eq)]
pub struct Job {
    /// The URL as given (trimmed).
    pub url: String,
    /// `None`: GET.
    pub method: Option<String>,
    /// Header fields, in order.
    pub headers: Vec<(String, String)>,
    /// The request body.
    pub body: Option<String>,
}

impl Job {
    /// A job from an input line: a URL, or a JSON object
    /// `{"url", "method"?, "headers"? (object or [[name, value], ...]), "body"?}`.
    ///
    /// # Errors
    /// The reason, in words.
    pub fn parse(line: &str) -> Result<Job, String> {
        if !line.starts_with('{') {
            return Ok(Job {
                url: line.to_owned(),
                method: None,
                headers: Vec::new(),
                body: None,
            });
        }
        let v: Value = serde_json::from_str(line).map_err(|e| format!("not a JSON job: {e}"))?;
        let Value::Object(map) = v else {
            return Err("a JSON job is an object".into());
        };
        let text = |k: &str| -> Result<Option<String>, String> {
            match map.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("{k:?} must be a string")),
            }
        };
        for k in map.keys() {
            if !["url", "method", "headers", "body"].contains(&k.as_str()) {
                return Err(format!(
                    "unknown key {k:?} (a job has url, method, headers, body)"
                ));
            }
        }
        let url = text("url")?.ok_or("a JSON job needs \"url\"")?;
        let headers = match map.get("headers") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(h)) => h
                .iter()
                .map(|(n, v)| match v {
                    Value::String(v) => Ok((n.clone(), v.clone())),
                    _ => Err(format!("header {n:?}: its value must be a string")),
                })
                .collect::<Result<_, _>>()?,
            Some(Value::Array(pairs)) => pairs
                .iter()
                .map(|p| match p.as_array().map(Vec::as_slice) {
                    Some([Value::String(n), Value::String(v)]) => Ok((n.clone(), v.clone())),
                    _ => Err("\"headers\" pairs are [name, value] strings".to_owned()),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("\"headers\" is an object or a list of pairs".into()),
        };
        Ok(Job {
            url: url.trim().to_owned(),
            method: text("method")?,
            headers,
            body: text("body")?,
        })
    }

    /// The job with the enqueue's `-X`, `-H` and `-d` where it gives none of its own (its
    /// own header fields come after the enqueue's); a body without a method is a POST.
    #[must_use]
    pub fn with_defaults(
        mut self,
        method: &Option<String>,
        headers: &[(String, String)],
        body: &Option<String>,
    ) -> Job {
        if self.body.is_none() {
            self.body.clone_from(body);
        }
        if self.method.is_none() {
            self.method = method
                .clone()
                .or_else(|| self.body.as_ref().map(|_| "POST".to_owned()));
        }
        if !headers.is_empty() {
            let own = std::mem::take(&mut self.headers);
            self.headers = headers.iter().cloned().chain(own).collect();
        }
        self
    }

    /// The request it describes, checked as `start_request` would check it; its URL.
    ///
    /// # Errors
    /// The library's error in words: kind, then message and causes.
    pub fn check(&self) -> Result<url::Url, String> {
        let method = self.method.clone().unwrap_or_else(|| "GET".into());
        let mut req = Request::new(method, self.url.as_str());
        for (n, v) in &self.headers {
            req = req.header(n, v);
        }
        req.check()
            .map_err(|e| format!("{}: {}", e.kind().as_str(), chain(&e)))
    }

    /// The stream entry's fields: `url`, and `method`, `headers` (a JSON list of
    /// `[name, value]`) and `body` when set.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut f = vec![("url", self.url.clone())];
        if let Some(m) = &self.method {
            f.push(("method", m.clone()));
        }
        if !self.headers.is_empty() {
            let pairs: Vec<[&str; 2]> = self
                .headers
                .iter()
                .map(|(n, v)| [n.as_str(), v.as_str()])
                .collect();
            f.push((
                "headers",
                serde_json::to_string(&pairs).expect("strings serialise"),
            ));
        }
        if let Some(b) = &self.body {
            f.push(("body", b.clone()));
        }
        f
    }

    /// The job a stream entry's fields describe (what [`Job::fields`] wrote).
    ///
    /// # Errors
    /// What is wrong with them, in words.
    pub fn from_fields(get: impl Fn(&str) -> Option<String>) -> Result<Job, String> {
        let url = get("url").ok_or("the job has no \"url\" field")?;
        let headers = match get("headers") {
            None => Vec::new(),
            Some(text) => serde_json::from_str::<Vec<(String, String)>>(&text)
                .map_err(|e| format!("the job's \"headers\" are not [[name, value], ...]: {e}"))?,
        };
        Ok(Job {
            url,
            method: get("method"),
            headers,
            body: get("body"),
        })
    }
}

/// How `NAME:meta` and messages name a politeness key.
pub fn key_name(k: PolitenessKey) -> &'static str {
    match k {
        PolitenessKey::Domain => "domain",
        _ => "host",
    }
}

fn key_arg(k: KeyArg) -> PolitenessKey {
    match k {
        KeyArg::Host => PolitenessKey::Host,
        KeyArg::Domain => PolitenessKey::Domain,
    }
}

/// Creates shard `k`'s consumer group, reading from the start (a worker may come after
/// the jobs), and the stream if need be; one that exists is left as it is.
pub fn create_group(con: &mut Connection, layout: &Layout, k: usize) -> Result<(), RedisError> {
    let created: Result<(), RedisError> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(layout.shard(k))
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query(con);
    match created {
        Err(e) if e.code() != Some("BUSYGROUP") => Err(e),
        _ => Ok(()),
    }
}

/// Reads `NAME:meta`, creating it (and every shard's consumer group) when the queue is
/// new. Given settings must agree with what it holds.
fn ensure_meta(
    con: &mut Connection,
    args: &QueueArgs,
    shards: Option<usize>,
    key: Option<KeyArg>,
) -> Result<Result<Meta, Usage>, Failed> {
    let layout = Layout::new(&args.queue);
    let want_shards = shards.unwrap_or(DEFAULT_SHARDS);
    let want_key = key.map_or(PolitenessKey::Host, key_arg);
    // One transaction, so two first enqueues cannot mix their settings.
    let (stored,): (HashMap<String, String>,) = redis::pipe()
        .atomic()
        .cmd("HSETNX")
        .arg(layout.meta())
        .arg("shards")
        .arg(want_shards)
        .ignore()
        .cmd("HSETNX")
        .arg(layout.meta())
        .arg("key")
        .arg(key_name(want_key))
        .ignore()
        .cmd("HSETNX")
        .arg(layout.meta())
        .arg("hash")
        .arg(HASH)
        .ignore()
        .cmd("HSETNX")
        .arg(layout.meta())
        .arg("version")
        .arg(VERSION)
        .ignore()
        .cmd("HGETALL")
        .arg(layout.meta())
        .query(con)
        .map_err(|e| failed(args, "cannot read the queue's settings", &e))?;
    let get = |k: &str| stored.get(k).map(String::as_str);
    let meta = match parse_meta(get) {
        Ok(m) => m,
        Err(why) => {
            return Ok(Err(Usage(format!(
                "queue {}: {why}; was it made by another program?",
                args.queue
            ))));
        }
    };
    if shards.is_some_and(|n| n != meta.shards) {
        return Ok(Err(Usage(format!(
            "queue {} has {} shards (fixed at its first enqueue), not {want_shards}",
            args.queue, meta.shards
        ))));
    }
    if key.is_some() && meta.key != want_key {
        return Ok(Err(Usage(format!(
            "queue {} is sharded by {} (fixed at its first enqueue), not {}",
            args.queue,
            key_name(meta.key),
            key_name(want_key)
        ))));
    }
    for k in 0..meta.shards {
        create_group(con, &layout, k)
            .map_err(|e| failed(args, "cannot create a consumer group", &e))?;
    }
    Ok(Ok(meta))
}

/// `NAME:meta`'s fields as a [`Meta`], or why they are not one.
pub fn parse_meta<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Meta, String> {
    if get("version") != Some(VERSION) || get("hash") != Some(HASH) {
        return Err(format!(
            "its layout is version {:?} with hash {:?}; this parafetch reads version {VERSION} with hash {HASH}",
            get("version"),
            get("hash")
        ));
    }
    let shards = get("shards")
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|n| (1..=1024).contains(n))
        .ok_or("its shard count is not 1 to 1024")?;
    let key = match get("key") {
        Some("host") => PolitenessKey::Host,
        Some("domain") => PolitenessKey::Domain,
        other => return Err(format!("its politeness key {other:?} is unknown")),
    };
    Ok(Meta { shards, key })
}

/// `parafetch enqueue`: exit 0 when every job was added; 1 when Redis failed (the message
/// says how many were added before); 2 for usage errors, a bad job among them (nothing is
/// added then).
pub fn enqueue(args: EnqueueArgs) -> Result<ExitCode, Usage> {
    if args.urls.is_empty() && args.input.is_none() {
        return Err(Usage(
            "no jobs given: pass URLs, or -i FILE ('-' for stdin)".into(),
        ));
    }
    let entries = input::read(&args.urls, args.input.as_deref()).map_err(|e| {
        let name = args.input.as_deref().unwrap_or(Path::new("-")).display();
        Usage(format!("cannot read the job list {name}: {e}"))
    })?;
    let data = match args.data.as_deref() {
        Some(d) => Some(match d.strip_prefix('@') {
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| Usage(format!("cannot read --data file {path}: {e}")))?,
            None => d.to_owned(),
        }),
        None => None,
    };
    // Every job is checked before any is added: a list with a typo is fixed and enqueued
    // again whole, without duplicating the jobs before it.
    let mut jobs = Vec::with_capacity(entries.len());
    let mut bad = 0;
    for Entry { url, origin } in &entries {
        let job = Job::parse(url).map(|j| j.with_defaults(&args.request, &args.header, &data));
        match job.and_then(|j| j.check().map(|u| (j, u))) {
            Ok(ok) => jobs.push(ok),
            Err(why) => {
                bad += 1;
                eprintln!("parafetch: {origin}: {why}");
            }
        }
    }
    if bad > 0 {
        return Err(Usage(format!(
            "{bad} of {} jobs are not valid; nothing was enqueued",
            entries.len()
        )));
    }
    if jobs.is_empty() {
        return Err(Usage("no jobs in the input".into()));
    }
    let q = &args.queue;
    let mut con = match connect(q)? {
        Ok(c) => c,
        Err(f) => return Ok(report(f)),
    };
    let meta = match ensure_meta(&mut con, q, args.shards, args.politeness_key) {
        Ok(Ok(m)) => m,
        Ok(Err(usage)) => return Err(usage),
        Err(f) => return Ok(report(f)),
    };
    let layout = Layout::new(&q.queue);
    let mut added = 0;
    for batch in jobs.chunks(BATCH) {
        let mut pipe = redis::pipe();
        for (job, url) in batch {
            let k = shard_of(&meta.key.of(url), meta.shards);
            pipe.xadd(layout.shard(k), "*", &job.fields()[..]).ignore();
        }
        if let Err(e) = pipe.query::<()>(&mut con) {
            let f = failed(q, "cannot add jobs", &e);
            eprintln!(
                "parafetch: {added} of {} jobs were enqueued before the failure",
                jobs.len()
            );
            return Ok(report(f));
        }
        added += batch.len();
    }
    eprintln!(
        "parafetch: enqueued {added} jobs in queue {} ({} shards by {})",
        q.queue,
        meta.shards,
        key_name(meta.key)
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints the failure; exit status 1.
pub fn report(f: Failed) -> ExitCode {
    eprintln!("parafetch: error: {}", f.0);
    ExitCode::FAILURE
}

/// The id just after `id` (`ms-seq`), for exclusive reads and trims.
pub fn next_id(id: &str) -> Option<String> {
    let (ms, seq) = id.split_once('-')?;
    let (ms, seq): (u64, u64) = (ms.parse().ok()?, seq.parse().ok()?);
    Some(match seq.checked_add(1) {
        Some(s) => format!("{ms}-{s}"),
        None => format!("{}-0", ms.checked_add(1)?),
    })
}

/// `parafetch results`: prints each record's JSON line; exit 0 when done (or stopped by
/// SIGINT/SIGTERM with `--follow`, or when the reader of stdout went away), 1 when Redis
/// failed.
pub fn results(args: ResultsArgs) -> Result<ExitCode, Usage> {
    let q = &args.queue;
    let mut con = match connect(q)? {
        Ok(c) => c,
        Err(f) => return Ok(report(f)),
    };
    let stop = Arc::new(AtomicBool::new(false));
    if args.follow {
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, Arc::clone(&stop))
                .map_err(|e| Usage(format!("cannot handle signals: {e}")))?;
        }
    }
    let key = Layout::new(&q.queue).results();
    let mut out = io::stdout().lock();
    // Exclusive: everything after the last printed (the start: "0-0" is no entry).
    let mut after = "0-0".to_owned();
    loop {
        let start = format!("({after}");
        // A signal interrupts a call waiting for its reply (a socket with a timeout is
        // not restarted): that is the stop asked for, not a Redis failure.
        let got: StreamRangeReply = match con.xrange_count(&key, &start, "+", BATCH) {
            Ok(r) => r,
            Err(e) if stop.load(Ordering::SeqCst) && e.is_io_error() => {
                return Ok(ExitCode::SUCCESS);
            }
            Err(e) => return Ok(report(failed(q, "cannot read results", &e))),
        };
        let mut ids = got.ids;
        if ids.is_empty() {
            if !args.follow {
                return Ok(ExitCode::SUCCESS);
            }
            // Caught up: wait for more, a bounded time, then look at the signals.
            loop {
                if stop.load(Ordering::SeqCst) {
                    return Ok(ExitCode::SUCCESS);
                }
                let opts = StreamReadOptions::default()
                    .block(FOLLOW_BLOCK_MS)
                    .count(BATCH);
                let read: Option<StreamReadReply> =
                    match con.xread_options(&[&key], &[&after], &opts) {
                        Ok(r) => r,
                        Err(e) if stop.load(Ordering::SeqCst) && e.is_io_error() => {
                            return Ok(ExitCode::SUCCESS);
                        }
                        Err(e) => return Ok(report(failed(q, "cannot read results", &e))),
                    };
                if let Some(r) = read.and_then(|r| r.keys.into_iter().next()) {
                    if !r.ids.is_empty() {
                        ids = r.ids;
                        break;
                    }
                }
            }
        }
        for entry in &ids {
            let record: String = entry
                .get("record")
                .unwrap_or_else(|| format!("{{\"job\":{:?},\"record\":null}}", entry.id));
            if writeln!(out, "{record}").is_err() {
                return Ok(ExitCode::SUCCESS); // the reader went away
            }
        }
        if out.flush().is_err() {
            return Ok(ExitCode::SUCCESS);
        }
        let last = ids.last().map(|e| e.id.clone()).unwrap_or_default();
        if args.trim {
            // Only what was written out: entries older than the next id are the printed
            // ones (ids only grow within a stream).
            let Some(min) = next_id(&last) else {
                return Ok(report(Failed(format!(
                    "Redis gave a malformed id {last:?}"
                ))));
            };
            let trimmed: Result<usize, RedisError> = redis::cmd("XTRIM")
                .arg(&key)
                .arg("MINID")
                .arg(&min)
                .query(&mut con);
            match trimmed {
                Ok(_) => {}
                // Sent, its reply interrupted by the stop: the trim was asked for, and at
                // worst the records are printed again by the next run.
                Err(e) if stop.load(Ordering::SeqCst) && e.is_io_error() => {
                    return Ok(ExitCode::SUCCESS);
                }
                Err(e) => return Ok(report(failed(q, "cannot trim results", &e))),
            }
        }
        after = last;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        let l = Layout::new("crawl");
        assert_eq!(
            (l.meta(), l.shard(3), l.results()),
            (
                String::from("crawl:meta"),
                String::from("crawl:{3}"),
                String::from("crawl:results")
            )
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redacted("redis://:pw@h:1/2"), "redis://:***@h:1/2");
        assert_eq!(redacted("redis://u:pw@h:1"), "redis://u:***@h:1");
        assert_eq!(redacted("redis://token@h"), "redis://***@h");
        assert_eq!(redacted("redis://h:6379"), "redis://h:6379");
        assert_eq!(redacted("nonsense pw@h"), "***@h");
        assert_eq!(
            redacted("redis+unix:///run/r.sock?db=1&pass=s3cret"),
            "redis+unix:///run/r.sock?***"
        );
    }

    #[test]
    fn jobs_parse() {
        assert_eq!(
            Job::parse("http://a/").unwrap().fields(),
            [("url", String::from("http://a/"))]
        );
        let j =
            Job::parse(r#"{"url":" http://a/ ","method":"POST","headers":{"X-A":"1"},"body":"b"}"#)
                .unwrap();
        assert_eq!(
            j.fields(),
            [
                ("url", String::from("http://a/")),
                ("method", String::from("POST")),
                ("headers", r#"[["X-A","1"]]"#.into()),
                ("body", String::from("b")),
            ]
        );
        let pairs = Job::parse(r#"{"url":"http://a/","headers":[["A","1"],["A","2"]]}"#).unwrap();
        assert_eq!(pairs.headers.len(), 2);
        for bad in [
            r#"{"url":1}"#,
            r#"{"method":"GET"}"#,
            r#"{"url":"http://a/","hedaers":{}}"#,
            r#"{"url":"http://a/","headers":[["A"]]}"#,
            r#"{"url":"http://a/""#,
            "{}",
        ] {
            assert!(Job::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn enqueue_defaults_fill_in_what_a_job_leaves_out() {
        let h = vec![("X-Run".to_owned(), "7".to_owned())];
        let post = Some("POST".to_owned());
        let plain = Job::parse("http://a/")
            .unwrap()
            .with_defaults(&None, &h, &Some("b=1".into()));
        assert_eq!(plain.method.as_deref(), Some("POST"));
        assert_eq!(plain.body.as_deref(), Some("b=1"));
        assert_eq!(plain.headers, h);
        let own =
            Job::parse(r#"{"url":"http://a/","method":"PUT","headers":{"A":"1"},"body":"x"}"#)
                .unwrap()
                .with_defaults(&post, &h, &Some("b=1".into()));
        assert_eq!(own.method.as_deref(), Some("PUT"));
        assert_eq!(own.body.as_deref(), Some("x"));
        assert_eq!(own.headers, [h[0].clone(), ("A".into(), "1".into())]);
        let none = Job::parse("http://a/")
            .unwrap()
            .with_defaults(&None, &[], &None);
        assert_eq!(none.fields(), [("url", String::from("http://a/"))]);
    }

    #[test]
    fn jobs_are_checked_as_start_request_checks() {
        assert!(Job::parse("http://a/").unwrap().check().is_ok());
        let err = |line: &str| Job::parse(line).unwrap().check().unwrap_err();
        assert!(err("ftp://a/").starts_with("unsupported_scheme"));
        assert!(err("not a url").starts_with("invalid_url"));
        assert!(err(r#"{"url":"http://a/","method":"GE T"}"#).starts_with("invalid_request"));
        assert!(
            err(r#"{"url":"http://a/","headers":{"A":"x\ny"}}"#).starts_with("invalid_request")
        );
        let secret = err("http://u:s3cret@[::1");
        assert!(!secret.contains("s3cret"), "{secret}");
    }

    #[test]
    fn meta_is_checked() {
        let ok = |k: &str| match k {
            "version" => Some(VERSION),
            "hash" => Some(HASH),
            "shards" => Some("8"),
            "key" => Some("host"),
            _ => None,
        };
        assert_eq!(
            parse_meta(ok),
            Ok(Meta {
                shards: 8,
                key: PolitenessKey::Host
            })
        );
        assert!(parse_meta(|k| if k == "hash" { Some("md5") } else { ok(k) }).is_err());
        assert!(parse_meta(|k| if k == "shards" { Some("0") } else { ok(k) }).is_err());
        assert!(parse_meta(|k| if k == "key" { Some("path") } else { ok(k) }).is_err());
    }

    #[test]
    fn next_ids() {
        assert_eq!(next_id("5-0").as_deref(), Some("5-1"));
        assert_eq!(next_id(&format!("5-{}", u64::MAX)).as_deref(), Some("6-0"));
        assert_eq!(next_id("x"), None);
    }
}
