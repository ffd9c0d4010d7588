//! The connection layer: our own accept loop over hyper's HTTP/1.1, so that
//! every connection has a deadline and their number a bound.
//! (`axum::serve` runs hyper without a timer: a half-sent head, a trickling
//! body or an idle keep-alive connection held a slot forever.)
//!
//! - `--header-timeout`: a new connection must send its first request head
//!   within it; a later request's head must be whole within it of its first
//!   byte. Past it the connection is closed without an answer.
//! - `--body-timeout`: a request body must arrive whole within it of its
//!   head. A handler that reads the body answers a 408 problem
//!   (`body-timeout`) with `Connection: close`.
//! - `--idle-timeout`: a keep-alive connection waits at most this long for
//!   the first byte of its next request (counted from the end of the last
//!   response's body; a client that does not read an answer is closed by it
//!   too), then is closed.
//! - `--max-connections`: beyond it, the loop stops accepting; new
//!   connections wait in the OS's listen backlog (and are answered once a
//!   slot frees) rather than being accepted to be refused. The deadlines
//!   above are what frees slots held by slow or idle clients.
//!
//! One deadline per connection, kept by the connection's own task: the
//! connection's reads, its requests and its responses move it (all of them
//! happen while that task polls the connection, so no wake-up is needed),
//! and the task closes the connection when it passes. hyper's own
//! `header_read_timeout` is off: it restarts whenever hyper waits for a
//! head, so it would also close every keep-alive connection idle for longer.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, Request, Response};
use axum::routing::future::RouteFuture;
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::program::ServeArgs;

/// The connection deadlines and limit (the flags of the same names).
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    pub(super) header_timeout: Duration,
    pub(super) body_timeout: Duration,
    pub(super) idle_timeout: Duration,
    pub(super) max_connections: usize,
}

impl Limits {
    pub(super) fn of(args: &ServeArgs) -> Self {
        Limits {
            header_timeout: args.header_timeout,
            body_timeout: args.body_timeout,
            idle_timeout: args.idle_timeout,
            max_connections: args.max_connections.max(1),
        }
    }
}

/// The open connections: one permit each.
#[derive(Clone)]
pub(super) struct Slots {
    permits: Arc<Semaphore>,
    max: usize,
}

impl Slots {
    pub(super) fn new(limits: &Limits) -> Self {
        Slots { permits: Arc::new(Semaphore::new(limits.max_connections)), max: limits.max_connections }
    }

    /// Connections open now.
    pub(super) fn open(&self) -> usize {
        self.max - self.permits.available_permits()
    }
}

/// Accepts connections and serves `router` on them until `stop`; then
/// closes the listener (new connections are refused) and returns the
/// handle that shuts the open ones down gracefully.
pub(super) async fn accept(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    slots: Slots,
    stop: CancellationToken,
) -> GracefulShutdown {
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // The connection's deadline does this (see the module's doc).
    http.header_read_timeout(None);
    loop {
        // A free slot first: until then, new connections wait in the backlog.
        let permit = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            permit = slots.permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let tcp = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    drop(permit);
                    if !is_connection_error(&e) {
                        // E.g. out of descriptors: accepting again at once would spin.
                        tracing::error!(error = %e, "cannot accept a connection; retrying in 1 s");
                        tokio::select! {
                            () = stop.cancelled() => break,
                            () = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                    continue;
                }
            },
        };
        let clock = Arc::new(Clock::new(limits));
        let service = Service { router: router.clone(), clock: clock.clone() };
        let conn = http.serve_connection(TokioIo::new(Watched { io: tcp, clock: clock.clone() }), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // Past the deadline the connection is dropped: closed.
            let sleep = tokio::time::sleep_until(clock.deadline().unwrap_or_else(Instant::now));
            let _ = Deadline { conn, sleep, armed: clock.deadline(), clock }.await;
            drop(permit);
        });
    }
    graceful
}

/// Errors of one connection that says nothing about the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    )
}

/// A connection's deadline, moved by what happens on it.
struct Clock {
    limits: Limits,
    phase: Mutex<Phase>,
}

struct Phase {
    /// Requests in the handlers or being answered.
    busy: u32,
    /// Bytes of the next head arrived (or the connection is new): the header deadline runs.
    head: bool,
    /// `None` while busy: handlers and bodies have deadlines of their own.
    deadline: Option<Instant>,
    /// A request body timed out: the answer closes the connection.
    body_timed_out: bool,
}

impl Clock {
    fn new(limits: Limits) -> Self {
        let phase = Phase {
            busy: 0,
            head: true,
            deadline: Some(Instant::now() + limits.header_timeout),
            body_timed_out: false,
        };
        Clock { limits, phase: Mutex::new(phase) }
    }

    fn lock(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn deadline(&self) -> Option<Instant> {
        self.lock().deadline
    }

    /// Bytes arrived: between requests, the first of a head.
    fn read(&self) {
        let mut p = self.lock();
        if p.busy == 0 && !p.head {
            p.head = true;
            p.deadline = Some(Instant::now() + self.limits.header_timeout);
        }
    }

    /// A whole head arrived: the request goes to the handlers.
    fn request(&self) {
        let mut p = self.lock();
        p.busy += 1;
        p.head = false;
        p.deadline = None;
    }

    /// The answer's body is out (or dropped): idle until the next head.
    fn answered(&self) {
        let mut p = self.lock();
        p.busy = p.busy.saturating_sub(1);
        if p.busy == 0 {
            p.deadline = Some(Instant::now() + self.limits.idle_timeout);
        }
    }
}

pin_project! {
    /// Drives a connection until it ends or its deadline passes (`None`).
    struct Deadline<F> {
        #[pin]
        conn: F,
        #[pin]
        sleep: Sleep,
        armed: Option<Instant>,
        clock: Arc<Clock>,
    }
}

impl<F: Future> Future for Deadline<F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Poll::Ready(out) = this.conn.poll(cx) {
            return Poll::Ready(Some(out));
        }
        // Whatever moved the deadline did so inside that poll.
        let deadline = this.clock.deadline();
        if deadline != *this.armed {
            if let Some(at) = deadline {
                this.sleep.as_mut().reset(at);
            }
            *this.armed = deadline;
        }
        if this.armed.is_some() && this.sleep.poll(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    }
}

pin_project! {
    /// The socket, telling the clock when bytes arrive.
    struct Watched {
        #[pin]
        io: TcpStream,
        clock: Arc<Clock>,
    }
}

impl AsyncRead for Watched {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let read = this.io.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.clock.read();
        }
        read
    }
}

impl AsyncWrite for Watched {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

/// The router, as hyper calls it: each request's body gets its deadline,
/// and each answer's body tells the clock when it is out.
#[derive(Clone)]
struct Service {
    router: Router,
    clock: Arc<Clock>,
}

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<Answer>;
    type Error = Infallible;
    type Future = Responding;

    fn call(&self, request: Request<Incoming>) -> Responding {
        self.clock.request();
        let limit = self.clock.limits.body_timeout;
        let request = request.map(|inner| Timed {
            inner,
            at: Instant::now() + limit,
            limit,
            sleep: None,
            expired: false,
            clock: self.clock.clone(),
        });
        let mut router = self.router.clone();
        Responding { inner: tower_service::Service::call(&mut router, request), busy: Some(Busy(self.clock.clone())) }
    }
}

/// Until dropped, a request of the connection is being handled or answered.
struct Busy(Arc<Clock>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.answered();
    }
}

pin_project! {
    struct Responding {
        #[pin]
        inner: RouteFuture<Infallible>,
        busy: Option<Busy>,
    }
}

impl Future for Responding {
    type Output = Result<Response<Answer>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut response) = ready!(this.inner.poll(cx));
        if this.busy.as_ref().is_some_and(|b| b.0.lock().body_timed_out) {
            // The rest of that body is not read: the connection cannot carry another request.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let busy = this.busy.take();
        Poll::Ready(Ok(response.map(|inner| Answer { inner, busy })))
    }
}

pin_project! {
    /// An answer's body; its end frees the connection's clock to count idle time.
    struct Answer {
        #[pin]
        inner: Body,
        busy: Option<Busy>,
    }
}

impl http_body::Body for Answer {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        if frame.is_none() {
            this.busy.take();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that did not arrive whole within `--body-timeout`.
#[derive(Debug)]
pub(super) struct BodyTimeout(pub(super) Duration);

impl std::fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request body did not arrive within {}", humantime::format_duration(self.0))
    }
}

impl std::error::Error for BodyTimeout {}

/// The body timeout behind `e`, if that is what `e` is.
pub(super) fn body_timeout<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a BodyTimeout> {
    let mut cause = Some(e);
    while let Some(e) = cause {
        if let Some(t) = e.downcast_ref::<BodyTimeout>() {
            return Some(t);
        }
        cause = e.source();
    }
    None
}

pin_project! {
    /// A request body with its deadline (counted from its head).
    struct Timed {
        #[pin]
        inner: Incoming,
        at: Instant,
        limit: Duration,
        // Made on the first wait only: most bodies arrive with their head.
        sleep: Option<Pin<Box<Sleep>>>,
        expired: bool,
        clock: Arc<Clock>,
    }
}

impl http_body::Body for Timed {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.project();
        if !*this.expired {
            if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
                return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
            }
            let at = *this.at;
            let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
            if sleep.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            *this.expired = true;
            this.clock.lock().body_timed_out = true;
        }
        Poll::Ready(Some(Err(Box::new(BodyTimeout(*this.limit)))))
    }

    fn is_end_stream(&self) -> bool {
        !self.expired && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
