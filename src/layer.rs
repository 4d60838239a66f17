//! [`MqttEventLayer`] → [`MqttEventService`] → [`ResponseFuture`]: the request path.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use crate::config::{Config, Profile};
use crate::data::{self, EventData};
use crate::details::{self, EventDetails};
use crate::event::EventType;
use crate::handle::PublisherHandle;
use crate::mps;
use crate::publisher::{Link, PublisherTask};
use crate::record::{MethodName, Outcome, Record};
use crate::routes::{self, Guid, RouteId};
use crate::trace::TraceIds;

/// A Tower layer that publishes an MPS-compatible event to MQTT for every request.
///
/// ```
/// use axum::{Router, routing::get};
/// use mps_mqtt_events::MqttEventLayer;
///
/// let app: Router = Router::new()
///     .route("/api/v1/health", get(|| async { "ok" }))
///     .layer(MqttEventLayer::from_env());
/// ```
///
/// With `MPS_MQTT_ADDRESS` unset the layer is a pass-through that starts nothing. Otherwise
/// the first request starts a background task on the current Tokio runtime that owns the
/// MQTT connection; requests only hand it a small record through a bounded queue, never
/// waiting on the broker. Apply the layer to the outermost router, so it sees full paths
/// (`/api/v1/...`).
///
/// Clones share one queue and one connection.
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct MqttEventLayer {
    link: Option<Arc<Link>>,
}

impl MqttEventLayer {
    /// A layer that publishes nothing: its services call the inner service directly.
    pub fn disabled() -> Self {
        Self { link: None }
    }

    pub(crate) fn with_config(config: Config) -> Self {
        Self {
            link: Some(Arc::new(Link::new(config))),
        }
    }

    /// Whether eventing is on.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.link.is_some()
    }

    /// The publisher task, taken out so the layer never spawns it; a finished future when
    /// eventing is off or the task was already taken.
    pub(crate) fn take_task(&self) -> PublisherTask {
        self.link
            .as_ref()
            .and_then(|link| link.take_task())
            .unwrap_or_else(PublisherTask::finished)
    }

    /// A handle for statistics, flush and shutdown.
    pub fn handle(&self) -> PublisherHandle {
        PublisherHandle::new(self.link.clone())
    }
}

impl<S> Layer<S> for MqttEventLayer {
    type Service = MqttEventService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MqttEventService {
            inner,
            link: self.link.clone(),
        }
    }
}

/// The service made by [`MqttEventLayer`]: calls the inner service and records its outcome.
///
/// Responses and errors of the inner service pass through unchanged; the middleware adds no
/// errors of its own.
#[derive(Debug, Clone)]
pub struct MqttEventService<S> {
    inner: S,
    link: Option<Arc<Link>>,
}

impl<S> MqttEventService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service; the event publisher is released.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for MqttEventService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let capture = self.link.as_ref().map(|link| Capture::new(link, &request));
        ResponseFuture {
            inner: self.inner.call(request),
            capture,
        }
    }
}

pin_project! {
    /// The response future of [`MqttEventService`]: the inner future, plus what the event
    /// needs. The event is handed over when the response (head) is ready, when the inner
    /// service fails, or when this future is dropped first (a cancelled request).
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        capture: Option<Capture>,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("capture", &self.capture)
            .finish_non_exhaustive()
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = ready!(this.inner.poll(cx));
        // In place: moving the capture out of its option would copy it.
        if let Some(capture) = this.capture.as_mut() {
            capture.outcome = match &mut result {
                Ok(response) => {
                    let extensions = response.extensions_mut();
                    capture.details = details::attached(extensions);
                    capture.handler_guid = details::attached_guid(extensions);
                    capture.data = data::take(extensions);
                    Outcome::Status(response.status().as_u16())
                }
                Err(_) => Outcome::ServiceError,
            };
        }
        // Dropping the capture hands the event over.
        *this.capture = None;
        Poll::Ready(result)
    }
}

/// What a request's event needs, taken when the call starts. Dropping it hands the event to
/// the publisher, with the outcome set by then ([`Outcome::Cancelled`] if none was).
#[derive(Debug)]
pub(crate) struct Capture {
    link: Arc<Link>,
    route: (Option<RouteId>, Option<Guid>),
    method: MethodName,
    outcome: Outcome,
    /// What the handler attached to its response.
    details: Option<&'static EventDetails>,
    handler_guid: Option<Guid>,
    /// The data the handler added, taken from its response.
    data: Option<Box<EventData>>,
    /// The ids of the request's `traceparent` header.
    trace: TraceIds,
    start: Instant,
}

impl Capture {
    fn new<B>(link: &Arc<Link>, request: &Request<B>) -> Self {
        Self {
            link: Arc::clone(link),
            route: routes::recognize(request.method(), request.uri().path()),
            method: MethodName::of(request.method()),
            outcome: Outcome::Cancelled,
            details: None,
            handler_guid: None,
            data: None,
            trace: TraceIds::of(request.headers()),
            start: Instant::now(),
        }
    }

    /// Whether the filter keeps an event of the type `kind` works out (only asked when the
    /// filter keeps some types and not others).
    fn keeps(&self, kind: impl FnOnce() -> EventType) -> bool {
        let filter = self.link.filter();
        filter.keeps_every_type() || filter.keeps(kind())
    }

    /// The record of the outcome, with the handler's details and data.
    #[inline(always)]
    fn outcome_record(&mut self, outcome: Outcome, finished: Instant) -> Record {
        let mut record = Record::new(self.route, self.method, outcome, self.start, finished);
        record.details = self.details;
        if let Some(guid) = self.handler_guid {
            record.set_guid_from_handler(guid);
        }
        record.data = self.data.take();
        record.trace = self.trace;
        record
    }
}

impl Capture {
    /// The `mps` profile: MPS's `request` event (stamped with the start) and outcome event,
    /// each only where MPS publishes it.
    fn push_mps(&mut self, outcome: Outcome, finished: Instant) {
        let route = self.route.0.map(|id| &routes::ROUTES[usize::from(id)]);
        let mut plan = mps::plan(route, outcome);
        if self.details.is_some() && route.is_some() {
            // The handler ran and said what happened: MPS publishes its request event first.
            plan.request = route.is_some_and(|r| r.mps.request.is_some());
            plan.outcome = true;
        }
        if plan.request && self.keeps(|| EventType::Request) {
            let mut started = Record::new(
                self.route,
                self.method,
                Outcome::Started,
                self.start,
                self.start,
            );
            started.trace = self.trace;
            self.link.push(started);
        }
        let kind = || {
            let said = route.map(|r| match mps::describe(r, outcome).kind {
                mps::Kind::Request => EventType::Request,
                mps::Kind::Success => EventType::Success,
                mps::Kind::Fail => EventType::Fail,
            });
            self.details
                .and_then(|d| d.kind)
                .or(said)
                .unwrap_or(EventType::Fail)
        };
        if plan.outcome && self.keeps(kind) {
            let record = self.outcome_record(outcome, finished);
            self.link.push(record);
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let outcome = if self.outcome == Outcome::Cancelled && std::thread::panicking() {
            Outcome::Panicked
        } else {
            self.outcome
        };
        if self.details.is_some_and(|d| d.silent) || self.link.filter().excludes_route(self.route.0)
        {
            return;
        }
        let finished = Instant::now();
        match self.link.profile() {
            Profile::All => {
                let kind = || {
                    let said = self.details.and_then(|d| d.kind);
                    said.unwrap_or(match outcome {
                        Outcome::Status(status) if status < 400 => EventType::Success,
                        _ => EventType::Fail,
                    })
                };
                if self.keeps(kind) {
                    let record = self.outcome_record(outcome, finished);
                    self.link.push(record);
                }
            }
            Profile::Mps => self.push_mps(outcome, finished),
        }
    }
}
