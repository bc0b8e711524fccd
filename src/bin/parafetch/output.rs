//! What the user sees: one JSON object or one human line per finished URL on stdout, the
//! progress bar and the final summary on stderr, and the counts behind the exit status.
//!
//! Owns formatting and counting; it never starts a request.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parafetch::{PoliteStats, Response};
use serde_json::{Value, json};

/// Why a URL produced no response: a library error, or the tool's own (a file that could
/// not be created), in the same shape.
#[derive(Debug)]
pub struct Failure {
    /// `ErrorKind::as_str`, e.g. `"timeout"`.
    pub kind: &'static str,
    /// `Phase::as_str`, e.g. `"receive_head"`.
    pub phase: &'static str,
    /// Lowercase, human-readable: the library's message and then its chain of causes,
    /// each once (what `{:#}` prints after kind and phase), so nothing is lost.
    pub message: String,
    /// Attempts made before giving up (0: refused before any attempt).
    pub attempts: u32,
    /// Whether the failed attempt's connection was reused (`None`: no connection).
    pub reused: Option<bool>,
    /// The proxy it went through, without credentials.
    pub proxy: Option<String>,
}

/// An error's message and then each of its causes once, joined by ": " (what `{:#}`
/// prints after kind and phase).
pub fn chain(e: &parafetch::Error) -> String {
    let mut message = e.message().to_owned();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        message.push_str(": ");
        message.push_str(&c.to_string());
        cause = c.source();
    }
    message
}

impl From<&parafetch::Error> for Failure {
    fn from(e: &parafetch::Error) -> Failure {
        Failure {
            kind: e.kind().as_str(),
            phase: e.phase().as_str(),
            message: chain(e),
            attempts: e.attempts(),
            reused: e.reused_connection(),
            proxy: e.proxy().map(|p| p.to_string()),
        }
    }
}

/// One finished URL.
#[derive(Debug)]
pub struct Outcome {
    /// Its position in the input (0-based, arguments first).
    pub index: usize,
    /// The URL as given.
    pub url: String,
    /// The response, or why there is none.
    pub result: Result<Response, Failure>,
    /// Where its body was saved (`-o`), for a response.
    pub file: Option<PathBuf>,
    /// From acceptance to completion: waits for a per-host slot, redirects and retries
    /// included.
    pub elapsed: Duration,
}

/// Milliseconds with microsecond precision, as JSON numbers.
fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// A response field's value as a record shows it: a cookie the server set is a secret
/// (a session), so its value is left out; its name stays.
fn shown<'a>(name: &str, value: &'a str) -> std::borrow::Cow<'a, str> {
    if !name.eq_ignore_ascii_case("set-cookie") {
        return value.into();
    }
    let cookie = value.split(';').next().unwrap_or("");
    let cookie_name = cookie.split('=').next().unwrap_or("").trim();
    format!("{cookie_name}=<redacted>").into()
}

/// The JSON object of one finished URL; keys in the documented order.
pub fn json_record(o: &Outcome) -> Value {
    let file = o.file.as_ref().map(|p| p.display().to_string());
    match &o.result {
        Ok(r) => json!({
            "index": o.index,
            "url": o.url,
            "final_url": r.url.as_str(),
            "status": r.status,
            "http_version": r.version.as_str(),
            "remote_addr": r.remote_addr.to_string(),
            "proxy": r.proxy.as_ref().map(|p| p.to_string()),
            "headers": r.headers.iter().map(|(n, v)| json!([n, shown(n, v)])).collect::<Vec<_>>(),
            "body_bytes": r.body_len,
            "content_encoding_left": r.content_encoding_left,
            "file": file,
            "elapsed_ms": ms(o.elapsed),
            "timings": {
                "resolve_ms": ms(r.timings.resolve),
                "connect_ms": ms(r.timings.connect),
                "proxy_ms": ms(r.timings.proxy),
                "tls_ms": ms(r.timings.tls),
                "first_byte_ms": ms(r.timings.first_byte),
                "total_ms": ms(r.timings.total),
            },
            "redirects": r.redirects,
            "attempts": r.attempts,
            "reused_connection": r.reused_connection,
            "error": null,
        }),
        // The library's Error carries no final URL, timings or redirect count.
        Err(f) => json!({
            "index": o.index,
            "url": o.url,
            "final_url": null,
            "status": null,
            "http_version": null,
            "remote_addr": null,
            "proxy": f.proxy,
            "headers": [],
            "body_bytes": 0,
            "content_encoding_left": null,
            "file": null,
            "elapsed_ms": ms(o.elapsed),
            "timings": null,
            "redirects": null,
            "attempts": f.attempts,
            "reused_connection": f.reused,
            "error": {"kind": f.kind, "phase": f.phase, "message": f.message},
        }),
    }
}

/// The human line of one finished URL.
pub fn human_line(o: &Outcome) -> String {
    match &o.result {
        Ok(r) => {
            let mut line = format!(
                "#{} {} {} B {:.1} ms {}",
                o.index,
                r.status,
                r.body_len,
                ms(o.elapsed),
                o.url
            );
            if r.url.as_str() != o.url {
                line.push_str(&format!(" -> {}", r.url));
            }
            if let Some(f) = &o.file {
                line.push_str(&format!(" > {}", f.display()));
            }
            line
        }
        Err(f) => format!(
            "#{} ERR {} ({}) {}: {}",
            o.index, f.kind, f.phase, o.url, f.message
        ),
    }
}

/// Counts for the summary and the exit status.
#[derive(Debug, Default)]
pub struct Stats {
    /// URLs that produced a response, by status class ("2xx", ...).
    pub by_class: BTreeMap<String, usize>,
    /// URLs that failed, by error kind.
    pub by_kind: BTreeMap<&'static str, usize>,
    /// Body bytes received (decoded), all URLs.
    pub bytes: u64,
}

impl Stats {
    fn count(&mut self, o: &Outcome) {
        match &o.result {
            Ok(r) => {
                *self
                    .by_class
                    .entry(format!("{}xx", r.status / 100))
                    .or_default() += 1;
                self.bytes += r.body_len;
            }
            Err(f) => *self.by_kind.entry(f.kind).or_default() += 1,
        }
    }

    /// URLs that produced a response.
    pub fn responses(&self) -> usize {
        self.by_class.values().sum()
    }

    /// URLs that failed.
    pub fn failed(&self) -> usize {
        self.by_kind.values().sum()
    }
}

/// How per-URL results are shown.
#[derive(Clone, Copy, Debug)]
pub struct Mode {
    /// JSON lines on stdout.
    pub jsonl: bool,
    /// No human lines, no progress bar.
    pub quiet: bool,
}

/// Receives every finished URL (from the fetcher's callbacks), prints it and counts it.
pub struct Reporter {
    mode: Mode,
    stats: Stats,
    progress: Option<ProgressBar>,
    /// When each accepted request was accepted, by input index.
    accepted_at: Vec<Option<Instant>>,
    accepted: usize,
    finished: usize,
    /// stdout went away (`| head`): stop writing, keep fetching and counting.
    stdout_closed: bool,
    started: Instant,
}

impl Reporter {
    /// A reporter for `total` URLs. The progress bar is drawn only when stderr is a terminal
    /// and the mode is not quiet.
    pub fn new(mode: Mode, total: usize) -> Reporter {
        let progress = (!mode.quiet && io::stderr().is_terminal()).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {pos}/{len} done, {msg}",
            )
            .expect("a valid progress template")
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message("0 failed, 0 in flight, 0.0/s");
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Reporter {
            mode,
            stats: Stats::default(),
            progress,
            accepted_at: vec![None; total],
            accepted: 0,
            finished: 0,
            stdout_closed: false,
            started: Instant::now(),
        }
    }

    /// Request `index` was accepted by the fetcher at `at`.
    pub fn accepted(&mut self, index: usize, at: Instant) {
        if let Some(slot) = self.accepted_at.get_mut(index) {
            *slot = Some(at);
        }
        self.accepted += 1;
        self.update_progress();
    }

    /// Reports one finished URL (or one refused before it started).
    pub fn finish(&mut self, o: Outcome) {
        self.stats.count(&o);
        // Refused requests (bad URL, no output file) were never accepted, never in flight.
        if self.accepted_at.get(o.index).is_some_and(Option::is_some) {
            self.finished += 1;
        }
        let line = if self.mode.jsonl {
            Some(json_record(&o).to_string())
        } else if !self.mode.quiet {
            Some(human_line(&o))
        } else {
            None
        };
        if let Some(line) = line {
            self.print(&line);
        }
        if let Some(bar) = &self.progress {
            bar.inc(1);
        }
        self.update_progress();
    }

    /// A note on stderr (a bad input line, a warning), above the progress bar.
    pub fn note(&self, msg: &str) {
        match &self.progress {
            Some(bar) => bar.suspend(|| eprintln!("{msg}")),
            None => eprintln!("{msg}"),
        }
    }

    fn print(&mut self, line: &str) {
        if self.stdout_closed {
            return;
        }
        let write = || writeln!(io::stdout().lock(), "{line}");
        let result = match &self.progress {
            Some(bar) => bar.suspend(write),
            None => write(),
        };
        if result.is_err() {
            self.stdout_closed = true;
        }
    }

    fn update_progress(&self) {
        if let Some(bar) = &self.progress {
            let done = self.stats.responses() + self.stats.failed();
            bar.set_message(format!(
                "{} failed, {} in flight, {:.1}/s",
                self.stats.failed(),
                self.accepted - self.finished,
                done as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
            ));
        }
    }

    /// Whether stdout went away (the reader of a pipe exited): nothing more can be shown.
    pub fn stdout_closed(&self) -> bool {
        self.stdout_closed
    }

    /// Clears the progress bar, prints the summary on stderr and returns the counts.
    pub fn close(&mut self, skipped: usize, polite: PoliteStats) -> Stats {
        if let Some(bar) = &self.progress {
            bar.finish_and_clear();
        }
        let wall = self.started.elapsed();
        let total = self.stats.responses() + self.stats.failed();
        let list = |m: &mut dyn Iterator<Item = (String, usize)>| {
            m.map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut out = format!(
            "parafetch: {total} URLs in {:.3} s ({:.1} requests/s), {} body bytes\n  responses: {}",
            wall.as_secs_f64(),
            total as f64 / wall.as_secs_f64().max(1e-9),
            self.stats.bytes,
            self.stats.responses(),
        );
        if !self.stats.by_class.is_empty() {
            let classes = list(&mut self.stats.by_class.iter().map(|(k, n)| (k.clone(), *n)));
            out.push_str(&format!(" ({classes})"));
        }
        out.push_str(&format!("\n  failed: {}", self.stats.failed()));
        if !self.stats.by_kind.is_empty() {
            let kinds = list(&mut self.stats.by_kind.iter().map(|(k, n)| (k.to_string(), *n)));
            out.push_str(&format!(" ({kinds})"));
        }
        if skipped > 0 {
            out.push_str(&format!(
                "\n  not fetched: {skipped} (writing to stdout failed)"
            ));
        }
        if polite.robots_refused > 0 {
            out.push_str(&format!(
                "\n  refused by robots.txt: {}",
                polite.robots_refused
            ));
        }
        if polite.hosts_paused > 0 {
            out.push_str(&format!(
                "\n  host pauses (429/503 backoff): {}",
                polite.hosts_paused
            ));
        }
        eprintln!("{out}");
        std::mem::take(&mut self.stats)
    }
}
