//! One accepted connection served with hyper's HTTP/1.1 server: Signet's own header-read and
//! idle deadlines, the peer identity handed to the router as `ConnectInfo<TlsPeer>`, and
//! `Connection: close` on every response once the drain has started.
//!
//! hyper's own `header_read_timeout` is not used: it starts when the previous response ends, so it
//! would also be the keep-alive idle limit. Here the two are apart: the header-read clock starts at
//! accept (first request) or at the first byte of a later request; the idle clock at the end of
//! the last response. Knows hyper and the `Router`; nothing of routes, TLS or listeners.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, Response, header};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, watch};

use super::server::Drain;
use super::tls::TlsPeer;

/// The two connection deadlines of `[server]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timeouts {
    pub header_read: Duration,
    pub idle: Duration,
}

/// What the router and the deadlines of every connection share.
pub(super) struct Shared {
    pub router: Router,
    pub drain: Drain,
    pub timeouts: Timeouts,
    /// Turns true when the listener has closed: idle keep-alive connections then close at once.
    pub stop: watch::Receiver<bool>,
}

const NONE: u64 = u64::MAX;

/// When a connection last did what; times in milliseconds since `origin` (its accept).
struct Activity {
    origin: Instant,
    in_flight: AtomicUsize,
    served: AtomicBool,
    /// When the connection last became idle (the end of a response).
    idle_since: AtomicU64,
    /// The first byte received since then; `NONE` if none.
    first_byte: AtomicU64,
    changed: Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            origin: Instant::now(),
            in_flight: AtomicUsize::new(0),
            served: AtomicBool::new(false),
            idle_since: AtomicU64::new(0),
            first_byte: AtomicU64::new(NONE),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn received(&self) {
        let now = self.now();
        let first =
            self.first_byte
                .compare_exchange(NONE, now, Ordering::Relaxed, Ordering::Relaxed);
        if first.is_ok() {
            // The deadline moves from the idle clock to the header-read clock.
            self.changed.notify_one();
        }
    }

    /// When the connection is to be closed unless a request arrives first; `None` while a
    /// request is in flight. Once `stopping`, an idle keep-alive connection has no time left.
    fn deadline(&self, t: Timeouts, stopping: bool) -> Option<Duration> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        if !self.served.load(Ordering::Acquire) {
            return Some(t.header_read);
        }
        let first_byte = self.first_byte.load(Ordering::Relaxed);
        if first_byte != NONE {
            return Some(Duration::from_millis(first_byte) + t.header_read);
        }
        let idle = if stopping { Duration::ZERO } else { t.idle };
        Some(Duration::from_millis(self.idle_since.load(Ordering::Relaxed)) + idle)
    }
}

/// A request between its headers and the end of its response body.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: &Arc<Activity>) -> InFlight {
        activity.served.store(true, Ordering::Release);
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.idle_since.store(a.now(), Ordering::Relaxed);
        a.first_byte.store(NONE, Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
        a.changed.notify_one();
    }
}

/// Serves `io` until the peer or a deadline closes it. A connection is only ever cut while no
/// request is in flight, so every request that reached the router gets its response.
pub(super) async fn serve<I>(io: I, peer: Option<TlsPeer>, shared: Arc<Shared>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let service = ConnService {
        router: shared.router.clone(),
        peer,
        drain: shared.drain.clone(),
        activity: activity.clone(),
    };
    let io = TokioIo::new(Watched {
        inner: io,
        activity: activity.clone(),
    });
    let conn = http1::Builder::new()
        .header_read_timeout(None)
        .serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    let mut stop = shared.stop.clone();
    let mut stopping = *stop.borrow_and_update();
    loop {
        let deadline = activity.deadline(shared.timeouts, stopping);
        let expiry = async {
            match deadline {
                Some(d) => tokio::time::sleep_until((activity.origin + d).into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = expiry => {
                if activity.deadline(shared.timeouts, stopping) == deadline {
                    tracing::debug!("closing a connection that sent no complete request in time");
                    return;
                }
            }
            () = activity.changed.notified() => {}
            changed = stop.changed(), if !stopping => {
                stopping = changed.is_err() || *stop.borrow();
            }
        }
    }
}

/// The per-connection hyper service: counts the request in flight, hands the peer identity to
/// the router, and asks the client to close once draining.
struct ConnService {
    router: Router,
    peer: Option<TlsPeer>,
    drain: Drain,
    activity: Arc<Activity>,
}

type Answer = Pin<Box<dyn Future<Output = Result<Response<TrackedBody>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Answer;

    fn call(&self, mut req: Request<Incoming>) -> Answer {
        let in_flight = InFlight::begin(&self.activity);
        if let Some(peer) = &self.peer {
            req.extensions_mut().insert(ConnectInfo(peer.clone()));
        }
        let mut router = self.router.clone();
        let drain = self.drain.clone();
        Box::pin(async move {
            let Ok(mut response) = tower_service::Service::call(&mut router, req).await;
            if drain.is_draining() {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response.map(|body| TrackedBody {
                body,
                _in_flight: in_flight,
            }))
        })
    }
}

/// A response body that keeps its request counted in flight until hyper has written it all.
struct TrackedBody {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// The connection's stream, noting when bytes arrive.
struct Watched<I> {
    inner: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.received();
        }
        result
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Timeouts = Timeouts {
        header_read: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    #[test]
    fn deadlines_follow_the_request_cycle() {
        let a = Arc::new(Activity::new());
        // First request: the header-read clock runs from accept, bytes or not.
        assert_eq!(a.deadline(T, false), Some(T.header_read));
        a.received();
        assert_eq!(a.deadline(T, false), Some(T.header_read));
        let req = InFlight::begin(&a);
        assert_eq!(a.deadline(T, false), None);
        drop(req);
        let idle_since = Duration::from_millis(a.idle_since.load(Ordering::Relaxed));
        // Between requests: the idle clock; once stopping, none left.
        assert_eq!(a.deadline(T, false), Some(idle_since + T.idle));
        assert_eq!(a.deadline(T, true), Some(idle_since));
        // A later request's first byte starts its header-read clock, stopping or not.
        a.received();
        let first = Duration::from_millis(a.first_byte.load(Ordering::Relaxed));
        assert_eq!(a.deadline(T, true), Some(first + T.header_read));
        let _two = (InFlight::begin(&a), InFlight::begin(&a));
        assert_eq!(a.deadline(T, true), None);
    }
}
