//! `parafetch worker`: a long-running fetch worker on a queue of Redis Streams (feature
//! `queue`; the layout and the reasons are in docs/queue.md).
//!
//! Three kinds of thread, one job each:
//! - the fetch loops, behind a [`Handle`]: they never touch Redis, so a slow or restarting
//!   Redis stalls no request in flight;
//! - this thread, the *reader*: shard leases and heartbeats, `XREADGROUP` only with room,
//!   claims, and [`Handle::submit`];
//! - the *writer*: each finished job's result record and its acknowledgement, atomically
//!   (one script per batch), fed by the callbacks over a channel.
//!
//! The reader and the writer each have their own blocking connection (redis-rs), so a read
//! that blocks never delays a result. [`Books`] is all they share: what was read and not
//! yet acknowledged. A job leaves the books only when Redis has its result, so
//! "outstanding" bounds what the worker holds, whatever Redis does.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use parafetch::{Done, ErrorKind, Handle, Request, SendQueue};
use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply,
};
use redis::{Commands, Connection, RedisError};
use serde_json::{Map, Value};

use crate::args::WorkerArgs;
use crate::output::{Failure, Outcome, json_record};
use crate::redis_queue::{
    self, GROUP, Job, Layout, Meta, create_group, describe, key_name, parse_meta, redacted,
};
use crate::{Template, Usage};

/// A job in the books: its shard and its stream entry's id.
type JobKey = (usize, String);

/// Renews a lease if it still names this worker, or takes it again if it expired and
/// nobody took it meanwhile (a worker cut off from Redis for longer than a lease, whose
/// shard nobody else started: safe, as a holder releases a shard only once its jobs
/// are written).
const RENEW: &str = "local v = redis.call('GET', KEYS[1]) \
    if v == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) \
    elseif not v then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 \
    else return 0 end";
/// Releases a lease only if it still names this worker.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) else return 0 end";
/// Longest wait in one blocking read, or for room: signals are looked at between two.
const TICK: Duration = Duration::from_millis(500);
/// Results per transaction, at most.
const WRITE_BATCH: usize = 512;
/// Backoff while Redis fails: from the first, doubling, to the cap.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// What the reader and the writer share.
struct Shared {
    books: Mutex<Books>,
    /// Signalled when the books change, and on every signal.
    changed: Condvar,
    /// SIGINT/SIGTERM received: the first stops gently, the second abandons.
    signals: AtomicUsize,
}

/// Jobs read and not yet acknowledged.
#[derive(Default)]
struct Books {
    /// The entries held, so a claim does not start one twice.
    held: HashSet<JobKey>,
    /// Held jobs not finished yet (being fetched, or waiting in the backlog): at most
    /// `-n` plus backlog. Finished ones wait for their write, a second such bound: how
    /// long a write takes must not starve the loops.
    fetching: usize,
    /// The reader waits for room: a finished fetch wakes it.
    waiting: bool,
    /// Held jobs by shard, so a shard is released only once its jobs are written.
    per_shard: Vec<usize>,
    /// Results written; failed fetches among the jobs finished; jobs finished whose
    /// result was there already (written by another worker, or by a retried batch).
    written: u64,
    failed: u64,
    duplicates: u64,
    /// While the reader lists pending jobs (its own, or claimed) and starts them: the jobs
    /// written since it asked. Held then, so maybe listed, but done: not to start again.
    written_since: Option<HashSet<JobKey>>,
}

impl Shared {
    fn books(&self) -> MutexGuard<'_, Books> {
        self.books.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn signals(&self) -> usize {
        self.signals.load(Ordering::SeqCst)
    }

    /// Waits up to `d`, less if the books change or a signal comes.
    fn pause(&self, d: Duration) {
        let books = self.books();
        let _ = self.changed.wait_timeout(books, d);
    }

    /// Waits up to `d` unless `ready` already holds, less if a fetch finishes, the books
    /// change or a signal comes. `ready` is looked at under the lock the wakers take, so
    /// no wake-up is lost between looking and waiting.
    fn wait_for(&self, ready: impl Fn(&Books) -> bool, d: Duration) {
        let mut books = self.books();
        if ready(&books) || self.signals() > 0 {
            return;
        }
        books.waiting = true;
        let (mut books, _) = self
            .changed
            .wait_timeout(books, d)
            .unwrap_or_else(|p| p.into_inner());
        books.waiting = false;
    }

    /// A held job's fetch is over (its result goes to the writer).
    fn fetched(&self) {
        let mut books = self.books();
        books.fetching = books.fetching.saturating_sub(1);
        if books.waiting {
            drop(books);
            self.changed.notify_all();
        }
    }
}

/// A finished job, on its way to the writer.
struct Finished {
    key: JobKey,
    outcome: Outcome,
}

/// One shard this worker holds.
struct Lease {
    /// By this worker's clock: a renewal sent at `t` that succeeded holds until `t + TTL`
    /// (Redis starts counting later, so it never expires first here).
    valid_until: Instant,
    /// Being given up: no more reads; released once its jobs are written.
    draining: bool,
}

/// An outage of Redis as one thread sees it: reported once when it starts, once when it
/// ends.
struct Outage {
    since: Instant,
    backoff: Duration,
    /// When it was last said on stderr: again every minute while it lasts.
    told: Instant,
}

/// Says on stderr that Redis failed (once per outage) and waits the backoff.
fn trouble(
    outage: &mut Option<Outage>,
    shared: &Shared,
    redis: &str,
    who: &str,
    what: &str,
    e: &RedisError,
) {
    let o = outage.get_or_insert_with(|| {
        eprintln!(
            "parafetch: Redis at {redis}: {what}: {}; the {who} retries with backoff \
             (no job is acknowledged without its result)",
            describe(e)
        );
        Outage {
            since: Instant::now(),
            backoff: BACKOFF_FIRST,
            told: Instant::now(),
        }
    });
    if o.told.elapsed() >= Duration::from_secs(60) {
        eprintln!(
            "parafetch: Redis at {redis}: {what} for {:.0} s now: {}; the {who} still retries",
            o.since.elapsed().as_secs_f64(),
            describe(e)
        );
        o.told = Instant::now();
    }
    let until = Instant::now() + o.backoff;
    o.backoff = (o.backoff * 2).min(BACKOFF_CAP);
    // The whole backoff, unless a signal comes: fetches finishing wake the same condvar.
    let signals = shared.signals();
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || shared.signals() != signals {
            break;
        }
        shared.pause(left);
    }
}

fn recovered(outage: &mut Option<Outage>, redis: &str, who: &str) {
    if let Some(o) = outage.take() {
        eprintln!(
            "parafetch: Redis at {redis}: the {who} is back after {:.1} s",
            o.since.elapsed().as_secs_f64()
        );
    }
}

/// `parafetch worker`: exit 0 after a signal once everything it held was written (or it
/// held nothing); 1 when abandoned by a second signal (what it held stays pending, for
/// another worker to claim); 2 for usage errors.
pub fn run(args: WorkerArgs) -> Result<ExitCode, Usage> {
    let fetch = &args.fetch;
    if !fetch.urls.is_empty() || fetch.input.is_some() {
        return Err(Usage(
            "a worker takes its jobs from the queue; add them with 'parafetch enqueue'".into(),
        ));
    }
    if args.lease < Duration::from_millis(1500) {
        return Err(Usage("--lease is at least 1.5 seconds".into()));
    }
    let longest = fetch
        .timeout
        .unwrap_or(Duration::from_secs(60))
        .saturating_mul(fetch.retry.unwrap_or(0).saturating_add(1));
    if longest.is_zero() {
        eprintln!(
            "parafetch: warning: no --timeout: a job fetched for longer than --claim-after \
             ({} s) may be fetched again",
            args.claim_after.as_secs_f64()
        );
    } else if args.claim_after <= longest {
        eprintln!(
            "parafetch: warning: --claim-after {} s is not more than the longest fetch ({} s): \
             a job still being fetched may be fetched again",
            args.claim_after.as_secs_f64(),
            longest.as_secs_f64()
        );
    }
    let template = crate::template(fetch)?;
    let (builder, capacity) = crate::builder(fetch)?;
    crate::create_output_dir(template.output_dir.as_deref())?;
    let client = redis_queue::client(&args.queue)?;
    let shared = Arc::new(Shared {
        books: Mutex::new(Books::default()),
        changed: Condvar::new(),
        signals: AtomicUsize::new(0),
    });
    watch_signals(&shared)?;
    let name = args.name.clone().unwrap_or_else(default_name);
    let redis = redacted(&args.queue.redis);
    let layout = Layout::new(&args.queue.queue);

    let (con, meta) = match find_queue(&client, &layout, &args, &redis, &shared) {
        Ok(Some(found)) => found,
        Ok(None) => {
            eprintln!("parafetch: stopped before the queue was found");
            return Ok(ExitCode::SUCCESS);
        }
        Err(why) => {
            eprintln!("parafetch: error: {why}");
            return Ok(ExitCode::FAILURE);
        }
    };
    shared.books().per_shard = vec![0; meta.shards];
    // The queue's politeness key, not the command line's: it is what the jobs were sharded
    // by, so one worker holds all of a host's (or domain's) jobs.
    let handle: Handle<JobKey> =
        match crate::spawn(builder.politeness_key(meta.key), fetch.cacert.as_deref())? {
            Ok(h) => h,
            Err(status) => return Ok(status),
        };
    eprintln!(
        "parafetch: worker {name} on queue {} ({} shards by {}), at most {} in flight, \
         {capacity} being fetched and {} held",
        args.queue.queue,
        meta.shards,
        key_name(meta.key),
        fetch.max_in_flight,
        2 * capacity
    );

    let (tx, rx) = mpsc::channel::<Finished>();
    let writer = {
        let (client, shared, redis) = (client.clone(), Arc::clone(&shared), redis.clone());
        let (layout, name) = (Layout::new(&args.queue.queue), name.clone());
        thread::Builder::new()
            .name("parafetch-writer".into())
            .spawn(move || write_results(&rx, &shared, &client, &layout, &name, &redis))
            .map_err(|e| Usage(format!("cannot start the writer thread: {e}")))?
    };
    let mut reader = Reader {
        lease_ttl: args.lease,
        claim_after: args.claim_after,
        layout,
        meta,
        lease_value: format!("{name}/{}", default_name()),
        name,
        redis,
        fatal: None,
        client,
        con: Some(con),
        outage: None,
        shared: Arc::clone(&shared),
        handle,
        tx,
        template,
        capacity,
        leases: BTreeMap::new(),
        cursor: 0,
        empty_reads: 0,
        unread: BTreeSet::new(),
    };
    reader.work();
    let abandoned = reader.stop();
    let Reader {
        handle, tx, fatal, ..
    } = reader;
    handle.shutdown();
    drop(tx);
    let _ = writer.join();
    let books = shared.books();
    let left = books.held.len();
    eprintln!(
        "parafetch: worker stopped: {} results written; {} fetches failed; {} jobs had their result already{}",
        books.written,
        books.failed,
        books.duplicates,
        if left > 0 {
            format!(
                "; {left} jobs abandoned, left pending for another worker to claim after \
                 --claim-after"
            )
        } else {
            String::new()
        }
    );
    if let Some(why) = &fatal {
        eprintln!("parafetch: error: {why}");
    }
    Ok(if abandoned || left > 0 || fatal.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `HOST-PID-RANDOM`: unique, so a restarted worker's consumer is a new one and the old
/// one's pending jobs are claimed as a dead worker's.
fn default_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{host}-{}-{:x}", std::process::id(), nanos & 0x00ff_ffff)
}

fn watch_signals(shared: &Arc<Shared>) -> Result<(), Usage> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| Usage(format!("cannot watch for signals: {e}")))?;
    let shared = Arc::clone(shared);
    thread::spawn(move || {
        for _ in signals.forever() {
            let n = shared.signals.fetch_add(1, Ordering::SeqCst) + 1;
            eprintln!(
                "parafetch: {}",
                if n == 1 {
                    "stopping: no more jobs are read; those held are finished and written \
                     (signal again to abandon them)"
                } else {
                    "abandoning the jobs held: they stay pending"
                }
            );
            shared.changed.notify_all();
        }
    });
    Ok(())
}

/// Connects and reads `NAME:meta`, waiting (with backoff) for Redis and for the queue's
/// first enqueue; creates every shard's consumer group. `None` when a signal came first;
/// an error when the queue's settings are not ones this worker reads.
fn find_queue(
    client: &redis::Client,
    layout: &Layout,
    args: &WorkerArgs,
    redis: &str,
    shared: &Shared,
) -> Result<Option<(Connection, Meta)>, String> {
    let mut outage = None;
    let mut told = false;
    while shared.signals() == 0 {
        let got = redis_queue::open(client).and_then(|mut con| {
            let fields: HashMap<String, String> = con.hgetall(layout.meta())?;
            Ok((con, fields))
        });
        let (mut con, fields) = match got {
            Ok(ok) => ok,
            Err(e) => {
                trouble(
                    &mut outage,
                    shared,
                    redis,
                    "worker",
                    "cannot read the queue",
                    &e,
                );
                continue;
            }
        };
        recovered(&mut outage, redis, "worker");
        if fields.is_empty() {
            if !told {
                eprintln!(
                    "parafetch: queue {} has no jobs yet (no {}); waiting for its first enqueue",
                    args.queue.queue,
                    layout.meta()
                );
                told = true;
            }
            shared.pause(TICK);
            continue;
        }
        let meta = match parse_meta(|k| fields.get(k).map(String::as_str)) {
            Ok(m) => m,
            Err(why) => {
                return Err(format!(
                    "queue {}: {why}; was it made by another program?",
                    args.queue.queue
                ));
            }
        };
        let groups = (0..meta.shards).try_for_each(|k| create_group(&mut con, layout, k));
        match groups {
            Ok(()) => return Ok(Some((con, meta))),
            Err(e) => trouble(
                &mut outage,
                shared,
                redis,
                "worker",
                "cannot create the consumer groups",
                &e,
            ),
        }
    }
    Ok(None)
}

/// The reader: leases, reads, claims, submits.
struct Reader {
    lease_ttl: Duration,
    claim_after: Duration,
    layout: Layout,
    meta: Meta,
    name: String,
    /// The Redis URL without its password, for messages.
    redis: String,
    /// Why it stopped on its own (exit 1), when it did.
    fatal: Option<String>,
    /// What its leases hold: its name and a token of this process, so two processes
    /// given the same `--name` do not renew each other's leases.
    lease_value: String,
    client: redis::Client,
    con: Option<Connection>,
    outage: Option<Outage>,
    shared: Arc<Shared>,
    handle: Handle<JobKey>,
    tx: mpsc::Sender<Finished>,
    template: Template,
    /// Jobs being fetched at most (`-n` plus backlog); twice that held (read and not yet
    /// acknowledged).
    capacity: usize,
    leases: BTreeMap<usize, Lease>,
    /// Which readable shard a read starts with, so each gets its turn.
    cursor: usize,
    /// Shards read without a job since a read last found one (reading a few at a time).
    empty_reads: usize,
    /// Shards whose pending list may hold jobs delivered to this worker that it does not
    /// know of: ones delivered (or claimed) by a call whose reply was lost with its
    /// connection (Redis restarted, or a timeout), or left by an earlier run under the
    /// same `--name`. Read back (`XREADGROUP` from id 0) before new jobs, and before a
    /// shard given up is released; without this they would wait for `--claim-after`.
    unread: BTreeSet<usize>,
}

impl Reader {
    /// Until the first signal: keep the leases, read and claim while there is room.
    fn work(&mut self) {
        let mut next_round = Instant::now();
        let mut next_claim = Instant::now() + self.claim_after / 2;
        while self.shared.signals() == 0 {
            let now = Instant::now();
            if now >= next_round {
                if let Err(e) = self.round(false) {
                    self.trouble("cannot keep its shard leases", &e);
                    continue;
                }
                next_round = Instant::now() + self.lease_ttl / 3;
            }
            if now >= next_claim {
                // Due again in any case: a claim that keeps failing (an ACL without
                // XAUTOCLAIM, say) must not keep the reader from reading.
                next_claim = Instant::now() + self.claim_after / 2;
                match self.claim() {
                    Ok(()) => {}
                    Err(e) if e.code() == Some("NOGROUP") => self.remake_groups(),
                    Err(e) => {
                        self.trouble("cannot claim jobs left pending", &e);
                        continue;
                    }
                }
            }
            // Jobs pending for it that it does not hold first, one shard at a time; of a
            // shard being given up too (they are its jobs, and it still holds the lease).
            let soon = Instant::now() + self.lease_ttl / 3;
            let lost = self
                .leases
                .iter()
                .find(|(k, l)| l.valid_until > soon && self.unread.contains(k))
                .map(|(&k, _)| k);
            if let Some(k) = lost.filter(|_| self.room() > 0) {
                match self.reread(k) {
                    Ok(false) => {}
                    Ok(true) => {
                        self.unread.remove(&k);
                    }
                    // Redis lost the group (a restart without persistence), and with it
                    // every pending list.
                    Err(e) if e.code() == Some("NOGROUP") => {
                        self.unread.remove(&k);
                    }
                    Err(e) => {
                        self.trouble("cannot read back its pending jobs", &e);
                        continue;
                    }
                }
            }
            let until = next_round.min(next_claim);
            let room = self.room();
            let readable = self.readable();
            // Read in batches: wait for room for a job per shard (or an eighth of what it
            // may hold), so that a read covers every shard and may block until any has a
            // job; reading a few shards at a time would block on empty ones. A worker that
            // holds fewer jobs than there are shards reads an eighth of them at a time.
            let batch = if self.capacity >= readable.len() {
                readable.len().max(self.capacity / 8)
            } else {
                (self.capacity / 8).max(1)
            };
            if room < batch || readable.is_empty() {
                let capacity = self.capacity;
                let wait = until.saturating_duration_since(Instant::now()).min(TICK);
                if readable.is_empty() {
                    self.shared.pause(wait);
                } else {
                    self.shared
                        .wait_for(|b| room_in(b, capacity) >= batch, wait);
                }
                continue;
            }
            // Fewer jobs may be held than there are shards: then a few shards at a time,
            // without blocking, in turn; after a whole round of them found nothing, a
            // short pause.
            let block = (room >= readable.len()).then(|| {
                until
                    .saturating_duration_since(Instant::now())
                    .min(TICK)
                    .max(Duration::from_millis(1))
            });
            match self.read(&readable, room, block) {
                Ok(0) if block.is_none() => {
                    self.empty_reads += room;
                    if self.empty_reads >= readable.len() {
                        self.empty_reads = 0;
                        self.shared.pause(TICK / 5);
                    }
                }
                Ok(_) => self.empty_reads = 0,
                Err(e) if e.code() == Some("NOGROUP") => self.remake_groups(),
                Err(e) => self.trouble("cannot read jobs", &e),
            }
        }
    }

    /// Redis lost the consumer groups: it restarted without persistence, or the queue was
    /// deleted. Unless the queue's settings are back and differ ([`Reader::settings`]),
    /// it makes the groups again, from the start of what is there.
    fn remake_groups(&mut self) {
        let (layout, shards) = (self.layout.clone(), self.meta.shards);
        let made = self.connection().and_then(|con| {
            let fields: HashMap<String, String> = con.hgetall(layout.meta())?;
            Ok(fields)
        });
        let fields = match made {
            Ok(f) => f,
            Err(e) => return self.trouble("cannot create the consumer groups", &e),
        };
        if !self.settings(&fields) {
            return;
        }
        let made = self
            .connection()
            .and_then(|con| (0..shards).try_for_each(|k| create_group(con, &layout, k)));
        if let Err(e) = made {
            self.trouble("cannot create the consumer groups", &e);
        }
    }

    /// Whether `NAME:meta`'s fields (read again) still fit what this worker shards by;
    /// none is fine (Redis restarted empty). When they changed (a new first enqueue with
    /// another shard count or key), its leases no longer cover the right jobs: it stops
    /// gently, and exits 1.
    fn settings(&mut self, fields: &HashMap<String, String>) -> bool {
        if fields.is_empty() {
            return true;
        }
        let now = parse_meta(|k| fields.get(k).map(String::as_str));
        let why = match now {
            Ok(m) if m == self.meta => return true,
            Ok(m) => format!(
                "it now has {} shards by {}, not {} by {}",
                m.shards,
                key_name(m.key),
                self.meta.shards,
                key_name(self.meta.key)
            ),
            Err(why) => why,
        };
        if self.fatal.is_none() {
            self.fatal = Some(format!(
                "queue {}'s settings changed under the worker: {why}; start it again",
                self.layout.meta()
            ));
            self.shared.signals.fetch_add(1, Ordering::SeqCst);
        }
        false
    }

    /// After the first signal: keep the leases while the jobs held finish and are written,
    /// then release them and leave. Whether the jobs were abandoned (a second signal).
    fn stop(&mut self) -> bool {
        for lease in self.leases.values_mut() {
            lease.draining = true;
        }
        let mut next_round = Instant::now();
        loop {
            if self.shared.signals() >= 2 {
                self.handle.abort();
                return true;
            }
            if self.shared.books().held.is_empty() {
                break;
            }
            if Instant::now() >= next_round {
                match self.round(true) {
                    Ok(()) => next_round = Instant::now() + self.lease_ttl / 3,
                    Err(e) => {
                        self.trouble("cannot keep its shard leases", &e);
                        continue;
                    }
                }
            }
            self.shared.pause(
                next_round
                    .saturating_duration_since(Instant::now())
                    .min(TICK),
            );
        }
        // Everything held is written: give the shards back and leave the fleet.
        let released = self.round(true).and_then(|()| {
            let (workers, name) = (self.layout.workers(), self.name.clone());
            let _: usize = self.connection()?.zrem(workers, name)?;
            Ok(())
        });
        if let Err(e) = released {
            eprintln!(
                "parafetch: Redis at {}: cannot release the shard leases ({}); they expire in {} s",
                self.redis,
                describe(&e),
                self.lease_ttl.as_secs_f64()
            );
        }
        false
    }

    fn trouble(&mut self, what: &str, e: &RedisError) {
        self.con = None;
        if interrupted(e) {
            // A signal came during a blocking call (a socket with a timeout is not
            // restarted): not Redis's fault; the connection, in an unknown state, is
            // opened again.
            return;
        }
        trouble(
            &mut self.outage,
            &self.shared,
            &self.redis,
            "reader",
            what,
            e,
        );
    }

    /// The reader's connection, opened again if it was dropped.
    fn connection(&mut self) -> Result<&mut Connection, RedisError> {
        self.reconnect()?;
        Ok(self.con.as_mut().expect("just set"))
    }

    /// Opens the reader's connection again if it was dropped. A reply lost with the old
    /// one may have delivered jobs: the pending lists of its shards are read back.
    fn reconnect(&mut self) -> Result<(), RedisError> {
        if self.con.is_none() {
            self.con = Some(redis_queue::open(&self.client)?);
            self.unread.extend(self.leases.keys().copied());
        }
        recovered(&mut self.outage, &self.redis, "reader");
        Ok(())
    }

    /// How many more jobs it may hold.
    fn room(&self) -> usize {
        room_in(&self.shared.books(), self.capacity)
    }

    /// Shards it may start jobs of: held, not draining, and valid for at least a third of
    /// a lease more (one missed renewal), so a read that returns late is still covered.
    fn readable(&self) -> Vec<usize> {
        let soon = Instant::now() + self.lease_ttl / 3;
        self.leases
            .iter()
            .filter(|(_, l)| !l.draining && l.valid_until > soon)
            .map(|(&k, _)| k)
            .collect()
    }

    /// One lease round: heartbeat, renew, then take or give up shards toward this
    /// worker's share; shards given up are released once their jobs are written.
    /// `stopping`: take none, give up all.
    fn round(&mut self, stopping: bool) -> Result<(), RedisError> {
        let ttl_ms = u64::try_from(self.lease_ttl.as_millis()).unwrap_or(u64::MAX);
        self.reconnect()?;
        let (layout, name) = (&self.layout, self.name.as_str());
        let con = self.con.as_mut().expect("just set");
        let sent = Instant::now();
        // Redis's clock, so the fleet's heartbeats compare whatever the machines' clocks say.
        let (secs, micros): (u64, u64) = redis::cmd("TIME").query(con)?;
        let now_ms = secs.saturating_mul(1000) + micros / 1000;
        let mut pipe = redis::pipe();
        if !stopping {
            pipe.zadd(layout.workers(), name, now_ms).ignore();
        }
        pipe.cmd("ZREMRANGEBYSCORE")
            .arg(layout.workers())
            .arg("-inf")
            .arg(format!("({}", now_ms.saturating_sub(ttl_ms)))
            .ignore()
            .zcard(layout.workers());
        pipe.hgetall(layout.meta());
        let (live, meta): (usize, HashMap<String, String>) = pipe.query(con)?;
        if !stopping && !self.settings(&meta) {
            return Ok(());
        }
        let (layout, name, lease) = (&self.layout, self.name.as_str(), self.lease_value.as_str());
        let con = self.con.as_mut().expect("still open");
        // Renew what it holds.
        let held: Vec<usize> = self.leases.keys().copied().collect();
        if !held.is_empty() {
            let mut pipe = redis::pipe();
            for &k in &held {
                pipe.cmd("EVAL")
                    .arg(RENEW)
                    .arg(1)
                    .arg(layout.lease(k))
                    .arg(lease)
                    .arg(ttl_ms);
            }
            let renewed: Vec<i64> = pipe.query(con)?;
            for (k, ok) in held.into_iter().zip(renewed) {
                if ok == 1 {
                    if let Some(l) = self.leases.get_mut(&k) {
                        l.valid_until = sent + self.lease_ttl;
                    }
                } else {
                    eprintln!(
                        "parafetch: lost the lease on shard {k} (it expired in Redis); its jobs \
                         in flight still finish"
                    );
                    self.leases.remove(&k);
                }
            }
        }
        // Toward the share: ceil(shards / live workers), so every shard has a holder.
        let share = if stopping {
            0
        } else {
            self.meta.shards.div_ceil(live.max(1))
        };
        let ranked = ranked(name, self.meta.shards);
        let mut active = self.leases.values().filter(|l| !l.draining).count();
        if active < share {
            for &k in &ranked {
                if active == share {
                    break;
                }
                match self.leases.get_mut(&k) {
                    Some(l) if l.draining => {
                        l.draining = false;
                        active += 1;
                    }
                    Some(_) => {}
                    None => {
                        let t = Instant::now();
                        let got: Option<String> = redis::cmd("SET")
                            .arg(layout.lease(k))
                            .arg(lease)
                            .arg("NX")
                            .arg("PX")
                            .arg(ttl_ms)
                            .query(con)?;
                        if got.is_some() {
                            // Jobs of an earlier run under this name may be pending.
                            self.unread.insert(k);
                            self.leases.insert(
                                k,
                                Lease {
                                    valid_until: t + self.lease_ttl,
                                    draining: false,
                                },
                            );
                            active += 1;
                        }
                    }
                }
            }
        } else if active > share {
            for &k in ranked.iter().rev() {
                if active == share {
                    break;
                }
                if let Some(l) = self.leases.get_mut(&k).filter(|l| !l.draining) {
                    l.draining = true;
                    active -= 1;
                }
            }
        }
        // Release the shards given up whose jobs are all written, and (unless it is
        // stopping) whose pending lists were read back: a job there it does not know of
        // would otherwise wait for --claim-after.
        let done: Vec<usize> = {
            let books = self.shared.books();
            self.leases
                .iter()
                .filter(|(k, l)| {
                    l.draining
                        && books.per_shard.get(**k).copied() == Some(0)
                        && (stopping || !self.unread.contains(k))
                })
                .map(|(&k, _)| k)
                .collect()
        };
        for k in done {
            let _: i64 = redis::cmd("EVAL")
                .arg(RELEASE)
                .arg(1)
                .arg(layout.lease(k))
                .arg(lease)
                .query(con)?;
            self.leases.remove(&k);
        }
        Ok(())
    }

    /// One `XREADGROUP` over (some of) the readable shards, for at most `room` jobs;
    /// `block`: how long it may wait for one (`None`: not at all). How many it got.
    fn read(
        &mut self,
        readable: &[usize],
        room: usize,
        block: Option<Duration>,
    ) -> Result<usize, RedisError> {
        // At most `room` streams, COUNT room/streams each: never more than room jobs.
        let n = readable.len().min(room);
        let first = self.cursor % readable.len();
        self.cursor = self.cursor.wrapping_add(n);
        let shards: Vec<usize> = (0..n)
            .map(|i| readable[(first + i) % readable.len()])
            .collect();
        let keys: Vec<String> = shards.iter().map(|&k| self.layout.shard(k)).collect();
        let ids = vec![">"; n];
        let mut opts = StreamReadOptions::default()
            .group(GROUP, &self.name)
            .count(room / n);
        if let Some(b) = block {
            opts = opts.block(usize::try_from(b.as_millis()).unwrap_or(usize::MAX));
        }
        let reply: Option<StreamReadReply> =
            self.connection()?.xread_options(&keys, &ids, &opts)?;
        let mut got = 0;
        for stream in reply.map(|r| r.keys).unwrap_or_default() {
            let Some(i) = keys.iter().position(|k| *k == stream.key) else {
                continue;
            };
            for entry in stream.ids {
                got += 1;
                self.start(shards[i], entry);
            }
        }
        Ok(got)
    }

    /// Reads back shard `k`'s jobs pending for this worker (`XREADGROUP` from id 0 reads
    /// its own pending list) and starts those it does not hold, while it has room. Whether
    /// it went through the whole list.
    fn reread(&mut self, k: usize) -> Result<bool, RedisError> {
        let key = self.layout.shard(k);
        let mut after = String::from("0");
        loop {
            let room = self.room();
            if room == 0 {
                return Ok(false);
            }
            let opts = StreamReadOptions::default()
                .group(GROUP, &self.name)
                .count(self.capacity.max(1));
            // The last id listed (none: the list has ended), and whether it looked at
            // all of them.
            let (last, all) = self.listing(|r| -> Result<_, RedisError> {
                let reply: Option<StreamReadReply> =
                    r.connection()?.xread_options(&[&key], &[&after], &opts)?;
                let ids = reply
                    .and_then(|r| r.keys.into_iter().next())
                    .map(|s| s.ids)
                    .unwrap_or_default();
                let last = ids.last().map(|e| e.id.clone());
                let mut started = 0;
                for entry in ids {
                    if started == room {
                        return Ok((last, false));
                    }
                    started += usize::from(r.start(k, entry));
                }
                Ok((last, true))
            })?;
            match last {
                _ if !all => return Ok(false),
                None => return Ok(true),
                Some(last) => after = last,
            }
        }
    }

    /// Runs `list`, a call listing pending jobs then starting them, with the jobs written
    /// meanwhile recorded: one held when Redis answered is listed, and may be written and
    /// no longer held by the time it would start; [`Reader::start`] skips it.
    fn listing<T>(&mut self, list: impl FnOnce(&mut Self) -> T) -> T {
        self.shared.books().written_since = Some(HashSet::new());
        let out = list(self);
        self.shared.books().written_since = None;
        out
    }

    /// `XAUTOCLAIM` on each readable shard: jobs pending longer than `--claim-after` for
    /// another consumer (a worker that died, or lost the shard) become this worker's.
    fn claim(&mut self) -> Result<(), RedisError> {
        let idle = u64::try_from(self.claim_after.as_millis()).unwrap_or(u64::MAX);
        for k in self.readable() {
            let mut cursor = String::from("0-0");
            // Bounded: a pass over a long pending list ends, and the next starts over.
            for _ in 0..64 {
                let room = self.room();
                if room == 0 {
                    return Ok(());
                }
                let key = self.layout.shard(k);
                let opts = StreamAutoClaimOptions::default().count(room);
                let name = self.name.clone();
                let next = self.listing(|r| {
                    let reply: StreamAutoClaimReply = r
                        .connection()?
                        .xautoclaim_options(key, GROUP, name, idle, &cursor, opts)?;
                    for entry in reply.claimed {
                        r.start(k, entry);
                    }
                    Ok::<_, RedisError>(reply.next_stream_id)
                })?;
                if next == "0-0" {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }

    /// Takes a job into the books and starts it; a job it cannot start is finished at
    /// once with its error (and so written and acknowledged, never retried forever).
    /// False when it held the job already, or wrote it while listing (see
    /// [`Reader::listing`]).
    fn start(&mut self, shard: usize, entry: StreamId) -> bool {
        let key: JobKey = (shard, entry.id.clone());
        {
            let mut books = self.shared.books();
            let written = books
                .written_since
                .as_ref()
                .is_some_and(|w| w.contains(&key));
            if written || !books.held.insert(key.clone()) {
                return false;
            }
            books.per_shard[shard] += 1;
            books.fetching += 1;
        }
        let job = Job::from_fields(|f| entry.get::<String>(f));
        let accepted = Instant::now();
        let url = job.as_ref().map(|j| j.url.clone()).unwrap_or_default();
        let finish = |tx: &mpsc::Sender<Finished>, key: JobKey, failure: Failure| {
            let _ = tx.send(Finished {
                key,
                outcome: Outcome {
                    index: 0,
                    url: url.clone(),
                    result: Err(failure),
                    file: None,
                    elapsed: Duration::ZERO,
                },
            });
            self.shared.fetched();
        };
        let job = match job {
            Ok(j) => j,
            Err(why) => {
                finish(&self.tx, key, invalid(why));
                return true;
            }
        };
        let (request, file) = match request(&self.template, &job, &key) {
            Ok(r) => r,
            Err(failure) => {
                finish(&self.tx, key, failure);
                return true;
            }
        };
        let tx = self.tx.clone();
        let shared = Arc::clone(&self.shared);
        let saved = file.clone();
        let on_done = move |done: Done<JobKey>, _: &mut SendQueue<JobKey>| {
            let result = match done.result {
                // Abandoned (a second signal): not fetched, so no result; it stays
                // pending for another worker.
                Err(e) if e.kind() == ErrorKind::ShutDown => {
                    shared.fetched();
                    return;
                }
                Ok(r) => Ok(r),
                Err(e) => {
                    if let Some(path) = &saved {
                        let _ = std::fs::remove_file(path);
                    }
                    Err(Failure::from(&e))
                }
            };
            let file = if result.is_ok() { saved } else { None };
            let _ = tx.send(Finished {
                key: done.cookie,
                outcome: Outcome {
                    index: 0,
                    url: done.url,
                    result,
                    file,
                    elapsed: accepted.elapsed(),
                },
            });
            shared.fetched();
        };
        if let Err(e) = self.handle.submit(request, on_done, key.clone()) {
            if let Some(path) = &file {
                let _ = std::fs::remove_file(path);
            }
            finish(&self.tx, key, Failure::from(&e.into_error()));
        }
        true
    }
}

/// How many more jobs the reader may take: `capacity` (`-n` plus backlog) being fetched,
/// and as many again finished and waiting for their write.
fn room_in(books: &Books, capacity: usize) -> usize {
    capacity
        .saturating_sub(books.fetching)
        .min((2 * capacity).saturating_sub(books.held.len()))
}

/// Whether a signal interrupted the call.
fn interrupted(e: &RedisError) -> bool {
    std::error::Error::source(e)
        .and_then(|c| c.downcast_ref::<std::io::Error>())
        .is_some_and(|io| io.kind() == std::io::ErrorKind::Interrupted)
}

/// Shards in this worker's order of preference (rendezvous hashing: highest
/// `hash(worker, shard)` first), so workers agree on who takes what without talking.
fn ranked(name: &str, shards: usize) -> Vec<usize> {
    let score = |k: usize| {
        format!("{name}\0{k}")
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            })
    };
    let mut ks: Vec<usize> = (0..shards).collect();
    ks.sort_by_key(|&k| std::cmp::Reverse(score(k)));
    ks
}

fn invalid(why: String) -> Failure {
    Failure {
        kind: "invalid_request",
        phase: "prepare",
        message: why,
        attempts: 0,
        reused: None,
        proxy: None,
    }
}

/// The request a job describes, on the command line's options: the job's method, headers
/// and body where it has them. With `-o DIR` its body streams to `DIR/SHARD-ID.body`.
fn request(
    t: &Template,
    job: &Job,
    (shard, id): &JobKey,
) -> Result<(Request, Option<PathBuf>), Failure> {
    let body = job
        .body
        .as_ref()
        .map(|b| b.as_bytes().to_vec())
        .or_else(|| t.body.clone());
    let method = match (&job.method, &body) {
        (Some(m), _) => m.clone(),
        (None, Some(_)) if job.body.is_some() => "POST".into(),
        (None, _) => t.method.clone(),
    };
    let mut req = Request::new(method, job.url.as_str()).max_body(t.max_body);
    for (n, v) in &job.headers {
        req = req.header(n, v);
    }
    let typed = job
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-type"));
    if job.body.is_some() && !typed {
        req = req.header("Content-Type", "application/x-www-form-urlencoded");
    }
    if let Some(body) = body {
        req = req.body(body);
    }
    crate::save_body(t, req, &format!("{shard}-{id}.body"))
}

/// A job's result record: `job`, `shard` and `worker`, then the `--jsonl` record (less
/// its `index`, which a queue has not).
fn record(f: &Finished, worker: &str) -> String {
    let mut m = Map::new();
    m.insert("job".into(), Value::from(f.key.1.as_str()));
    m.insert("shard".into(), Value::from(f.key.0));
    m.insert("worker".into(), Value::from(worker));
    if let Value::Object(rest) = json_record(&f.outcome) {
        m.extend(rest.into_iter().filter(|(k, _)| k != "index"));
    }
    Value::Object(m).to_string()
}

/// The writer: for each batch of finished jobs, one script acknowledges (and deletes)
/// their entries and adds their records to `NAME:results`. Retries a failed batch
/// with backoff until it is written, or a second signal abandons it.
fn write_results(
    rx: &mpsc::Receiver<Finished>,
    shared: &Shared,
    client: &redis::Client,
    layout: &Layout,
    worker: &str,
    redis: &str,
) {
    let mut con: Option<Connection> = None;
    let mut outage = None;
    let mut batch: Vec<(Finished, String)> = Vec::new();
    loop {
        if batch.is_empty() {
            let Ok(f) = rx.recv() else { return };
            let r = record(&f, worker);
            batch.push((f, r));
        }
        while batch.len() < WRITE_BATCH {
            let Ok(f) = rx.try_recv() else { break };
            let r = record(&f, worker);
            batch.push((f, r));
        }
        let written = con
            .take()
            .map_or_else(|| redis_queue::open(client), Ok)
            .and_then(|mut c| {
                let added = transact(&mut c, layout, &batch)?;
                Ok((c, added))
            });
        match written {
            Ok((c, added)) => {
                con = Some(c);
                recovered(&mut outage, redis, "writer");
                let mut books = shared.books();
                books.written += added as u64;
                books.duplicates += (batch.len() - added) as u64;
                for (f, _) in batch.drain(..) {
                    if books.held.remove(&f.key) {
                        books.per_shard[f.key.0] -= 1;
                        if let Some(w) = books.written_since.as_mut() {
                            w.insert(f.key.clone());
                        }
                    }
                    books.failed += u64::from(f.outcome.result.is_err());
                }
                drop(books);
                shared.changed.notify_all();
            }
            Err(e) => {
                if shared.signals() >= 2 {
                    return;
                }
                trouble(
                    &mut outage,
                    shared,
                    redis,
                    "writer",
                    "cannot write results",
                    &e,
                );
            }
        }
    }
}

/// Acknowledges each job and adds its result record, atomically (a script runs whole):
/// `KEYS[1]` is `NAME:results`, the other keys the shard streams; `ARGV[1]` the group,
/// then (key index, entry id, record) per job. A job no longer pending (its result is
/// there already: this batch's earlier attempt did go through, or another worker wrote
/// it) adds nothing, so retrying a batch whose reply was lost
/// never writes a result twice. Its entry is deleted only when acknowledged here: an
/// entry Redis forgot delivering (a restart that lost its last writes) stays, to be
/// delivered again. Returns how many records it added.
///
/// The result goes in before the acknowledgement: Redis does not undo a script's earlier
/// writes when a later command fails (a full memory, a wrong type), so a failure between
/// them leaves a job pending with its result, never acknowledged without one. A job the
/// `XACK` finds already acknowledged takes its record out again, in the same script, so
/// no reader ever sees it. (Checking `XPENDING` first costs Redis a third more per job.)
const WRITE: &str = "local n = 0
for i = 2, #ARGV, 3 do
  local shard = KEYS[tonumber(ARGV[i])]
  local id = ARGV[i + 1]
  local rid = redis.call('XADD', KEYS[1], '*', 'record', ARGV[i + 2])
  if redis.call('XACK', shard, ARGV[1], id) == 1 then
    redis.call('XDEL', shard, id)
    n = n + 1
  else
    redis.call('XDEL', KEYS[1], rid)
  end
end
return n";

/// Runs [`WRITE`] over a batch: how many results it added (the rest were there).
fn transact(
    con: &mut Connection,
    layout: &Layout,
    batch: &[(Finished, String)],
) -> Result<usize, RedisError> {
    let mut keys = vec![layout.results()];
    let mut index: BTreeMap<usize, usize> = BTreeMap::new();
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(WRITE);
    let mut argv: Vec<&str> = Vec::with_capacity(1 + 3 * batch.len());
    let mut positions = Vec::with_capacity(batch.len());
    for (f, _) in batch {
        let at = *index.entry(f.key.0).or_insert_with(|| {
            keys.push(layout.shard(f.key.0));
            keys.len()
        });
        positions.push(at.to_string());
    }
    argv.push(GROUP);
    for ((f, record), at) in batch.iter().zip(&positions) {
        argv.extend([at.as_str(), f.key.1.as_str(), record.as_str()]);
    }
    cmd.arg(keys.len()).arg(&keys).arg(&argv);
    cmd.query(con)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rankings_differ_by_worker_and_cover_every_shard() {
        let a = ranked("a", 16);
        let b = ranked("b", 16);
        assert_ne!(a, b);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..16).collect::<Vec<_>>());
    }
}
