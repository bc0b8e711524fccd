//! What a callback receives: the finished request ([`Done`]) and a [`Queue`] for its
//! follow-ups; and the two kinds of callback ([`Mode`]): those of a [`Fetcher`], run on
//! the caller's thread, and those of a [`Handle`], run on loop threads and therefore `Send`.
//!
//! Owns the follow-up limit a callback sees. It never runs a loop or a callback.
//!
//! [`Fetcher`]: crate::Fetcher
//! [`Handle`]: crate::Handle

use std::fmt;

use crate::error::{Error, ErrorKind, Phase};
use crate::options::DEFAULT_MAX_QUEUED_FOLLOWUPS;
use crate::request::{IntoRequest, Request, Target};
use crate::response::Response;

/// A finished request, handed to its callback exactly once.
#[non_exhaustive]
pub struct Done<C> {
    /// The URL as it was given to `start_request`.
    pub url: String,
    /// The response (any status), or why there is none.
    pub result: Result<Response, Error>,
    /// The caller's data given to `start_request`.
    pub cookie: C,
}

impl<C> Done<C> {
    /// A finished request, for unit-testing a callback without a network: call the
    /// callback with it and a [`Queue::new`], then inspect what it queued.
    ///
    /// # Examples
    /// ```
    /// use parafetch::{Done, Queue, Response};
    ///
    /// /// A crawler's callback: follows the `Location` of a 3xx, one hop deep.
    /// fn on_done(done: Done<u32>, queue: &mut Queue<u32>) {
    ///     let Ok(resp) = done.result else { return };
    ///     if let (300..=399, Some(next), 0) = (resp.status, resp.headers.get("location"), done.cookie) {
    ///         queue.start_request(next, on_done, done.cookie + 1).expect("a valid url");
    ///     }
    /// }
    ///
    /// let url = url::Url::parse("http://example.com/old").unwrap();
    /// let resp = Response::new(301, url.clone()).with_header("Location", "http://example.com/new");
    /// let mut queue = Queue::new();
    /// on_done(Done::new(url.as_str(), Ok(resp), 0), &mut queue);
    /// assert_eq!(queue.urls().collect::<Vec<_>>(), ["http://example.com/new"]);
    ///
    /// // One hop only: at depth 1 nothing more is queued.
    /// let resp = Response::new(301, url.clone()).with_header("Location", "http://example.com/x");
    /// let mut queue = Queue::new();
    /// on_done(Done::new(url.as_str(), Ok(resp), 1), &mut queue);
    /// assert!(queue.is_empty());
    /// ```
    pub fn new(url: impl Into<String>, result: Result<Response, Error>, cookie: C) -> Done<C> {
        Done {
            url: url.into(),
            result,
            cookie,
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for Done<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Done")
            .field("url", &self.url)
            .field("result", &self.result)
            .field("cookie", &self.cookie)
            .finish()
    }
}

mod sealed {
    pub trait Sealed {}
}

/// Where a fetcher's callbacks run, which decides what they may capture.
///
/// [`Local`] (the default): a [`Fetcher`](crate::Fetcher)'s callbacks run on the thread
/// that drives it, so they may hold an `Rc`. [`Sendable`]: a
/// [`Handle`](crate::Handle)'s callbacks run on the fetcher's own loop threads, and a
/// follow-up may belong to another loop, so callbacks and cookies must be `Send`. A
/// callback names its kind through its queue: `&mut Queue<C>` or `&mut SendQueue<C>`.
///
/// Sealed: these two are all there are.
pub trait Mode: sealed::Sealed + Sized + 'static {
    /// A boxed callback of this kind.
    #[doc(hidden)]
    type Callback<C: 'static>;

    /// Calls `callback`.
    #[doc(hidden)]
    fn call<C: 'static>(callback: Self::Callback<C>, done: Done<C>, queue: &mut Queue<C, Self>);
}

/// Callbacks run on the thread that drives the [`Fetcher`](crate::Fetcher). See [`Mode`].
#[derive(Debug)]
pub enum Local {}

/// Callbacks run on a [`Handle`](crate::Handle)'s loop threads, so they are `Send`. See
/// [`Mode`].
#[derive(Debug)]
pub enum Sendable {}

impl sealed::Sealed for Local {}
impl sealed::Sealed for Sendable {}

impl Mode for Local {
    type Callback<C: 'static> = Box<dyn FnOnce(Done<C>, &mut Queue<C, Local>)>;

    fn call<C: 'static>(callback: Self::Callback<C>, done: Done<C>, queue: &mut Queue<C, Local>) {
        callback(done, queue)
    }
}

impl Mode for Sendable {
    type Callback<C: 'static> = Box<dyn FnOnce(Done<C>, &mut Queue<C, Sendable>) + Send>;

    fn call<C: 'static>(
        callback: Self::Callback<C>,
        done: Done<C>,
        queue: &mut Queue<C, Sendable>,
    ) {
        callback(done, queue)
    }
}

/// The queue a [`Handle`](crate::Handle)'s callbacks get: follow-ups whose callbacks are
/// `Send`, each started on the loop that owns its host.
pub type SendQueue<C> = Queue<C, Sendable>;

/// A follow-up a callback queued: the request (its URL parsed), callback, cookie and the
/// URL as given.
pub(crate) struct FollowUp<C: 'static, M: Mode> {
    pub request: Request,
    pub callback: M::Callback<C>,
    pub cookie: C,
    pub url: String,
}

/// Lets a callback start follow-up requests (a crawler's discovered links) without
/// re-entering the fetcher: they are accepted when the callback returns.
pub struct Queue<C: 'static, M: Mode = Local> {
    pub(crate) items: Vec<FollowUp<C, M>>,
    pub(crate) max_in_flight: Option<usize>,
    /// The builder's `max_queued_followups`.
    pub(crate) limit: usize,
    /// Requests the fetcher holds, not yet called back, while the callback runs (the
    /// fetcher sets it before each call).
    pub(crate) outstanding: usize,
    /// The fetcher was aborted: follow-ups are refused.
    pub(crate) closed: bool,
}

impl<C: 'static, M: Mode> Queue<C, M> {
    /// An empty queue, for unit-testing a callback (the fetcher makes its own): pass it to
    /// the callback, then look at [`urls`](Queue::urls). See [`Done::new`] for an example.
    ///
    /// It holds at most [`DEFAULT_MAX_QUEUED_FOLLOWUPS`] follow-ups, as a fresh fetcher's
    /// queue does.
    pub fn new() -> Queue<C, M> {
        Queue::with_limit(DEFAULT_MAX_QUEUED_FOLLOWUPS)
    }

    pub(crate) fn with_limit(limit: usize) -> Queue<C, M> {
        Queue {
            items: Vec::new(),
            max_in_flight: None,
            limit,
            outstanding: 0,
            closed: false,
        }
    }

    /// The URLs of the follow-ups queued so far, as given, in order.
    pub fn urls(&self) -> impl Iterator<Item = &str> + '_ {
        self.items.iter().map(|f| f.url.as_str())
    }

    /// The in-flight cap the callback asked for with
    /// [`set_max_in_flight`](Queue::set_max_in_flight), if it did.
    pub fn requested_max_in_flight(&self) -> Option<usize> {
        self.max_in_flight
    }

    /// Checks and keeps a follow-up (see `start_request`).
    fn push(
        &mut self,
        request: impl IntoRequest,
        callback: M::Callback<C>,
        cookie: C,
    ) -> Result<(), Error> {
        let mut request = request.into_request();
        if self.closed {
            let msg = "the fetcher was aborted: it takes no follow-ups";
            return Err(Error::new(ErrorKind::ShutDown, Phase::Prepare, msg));
        }
        let held = self.outstanding.saturating_add(self.items.len());
        if held >= self.limit {
            let msg = format!(
                "the follow-up queue is full: {held} requests pending, at most {} allowed",
                self.limit
            );
            return Err(Error::new(ErrorKind::QueueFull, Phase::Prepare, msg));
        }
        let url = request.url().to_owned();
        // Parsed once, here: the fetcher then takes the URL as it is, not parsing it again.
        let target = std::mem::replace(&mut request.target, Target::Text(String::new()));
        request.target = Target::Url(crate::request::check_url(target)?);
        self.items.push(FollowUp {
            request,
            callback,
            cookie,
            url,
        });
        Ok(())
    }

    /// Changes the fetcher's in-flight cap (at least 1) when the callback returns, as
    /// [`Fetcher::set_max_in_flight`](crate::Fetcher::set_max_in_flight) does.
    pub fn set_max_in_flight(&mut self, n: usize) {
        self.max_in_flight = Some(n);
    }

    /// [`Queue::set_max_in_flight`] under ParallelCurl's name.
    pub fn set_max_requests(&mut self, n: usize) {
        self.set_max_in_flight(n);
    }

    /// How many follow-ups this callback has queued.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether this callback has queued nothing.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

impl<C: 'static> Queue<C, Local> {
    /// Starts a follow-up request once the callback returns. A follow-up does not wait for
    /// an in-flight slot here (the callback must not block): it is accepted when the
    /// callback returns and waits in the fetcher's queue for a slot.
    ///
    /// # Errors
    /// A malformed URL, unsupported scheme or bad header is refused at once, as in
    /// [`Fetcher::start_request`](crate::Fetcher::start_request). Kind
    /// [`QueueFull`](ErrorKind::QueueFull) when the fetcher already holds
    /// [`max_queued_followups`](crate::Builder::max_queued_followups) requests accepted
    /// and not yet called back, counting the follow-ups this callback queued. Either way
    /// nothing is kept: the callback and cookie are dropped, and the error is the only
    /// outcome.
    pub fn start_request<F>(
        &mut self,
        request: impl IntoRequest,
        callback: F,
        cookie: C,
    ) -> Result<(), Error>
    where
        F: FnOnce(Done<C>, &mut Queue<C>) + 'static,
    {
        self.push(request, Box::new(callback), cookie)
    }
}

impl<C: Send + 'static> Queue<C, Sendable> {
    /// Starts a follow-up request once the callback returns, on the loop that owns its
    /// host (which may be another thread's: hence `Send`). Otherwise as
    /// [`Queue::start_request`] of a [`Fetcher`](crate::Fetcher)'s callbacks: it never
    /// waits, and the limit counts every request the whole fetcher holds.
    ///
    /// # Errors
    /// As [`Queue::start_request`].
    pub fn start_request<F>(
        &mut self,
        request: impl IntoRequest,
        callback: F,
        cookie: C,
    ) -> Result<(), Error>
    where
        F: FnOnce(Done<C>, &mut SendQueue<C>) + Send + 'static,
    {
        self.push(request, Box::new(callback), cookie)
    }
}

impl<C: 'static, M: Mode> Default for Queue<C, M> {
    fn default() -> Queue<C, M> {
        Queue::new()
    }
}

impl<C: 'static, M: Mode> fmt::Debug for Queue<C, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("urls", &self.urls().collect::<Vec<_>>())
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}
