//! The publisher task: takes events from the queue, owns the MQTT session, reconnects with
//! backoff, answers flush and shutdown, and counts every event it takes until it is settled.
//!
//! While connected it loops: settle what the session wrote and what the broker acknowledged,
//! encode every ready event (re-sends first) into the session's buffer up to a byte budget
//! and the in-flight window, then wait for whichever comes first: socket progress, a handle's
//! message, the keep-alive, the next look at the queue, or a pusher's wake-up when parked.

use std::future::poll_fn;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::Connect;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, sleep_until};

use super::backoff::Backoff;
use super::connector::Connector;
use super::message::Control;
use super::metrics::Export;
use super::outbox::{Filled, Outbox};
use super::session::{Session, SessionError};
use super::shared::Shared;
use super::state::Phase;
use super::status::Status;
use crate::config::Config;

/// How long the task gives queued events when every layer, service and handle is dropped.
pub(crate) const DROP_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the task lets events gather before it looks at the queue again, while events
/// keep coming: the delivery delay that coalescing adds, at most.
const TICK: Duration = Duration::from_millis(2);
/// Quiet time after which the task parks until a pusher wakes it.
const IDLE_AFTER: Duration = Duration::from_millis(100);
/// How long a full window lets PUBACKs gather before reading them: fewer wake-ups per
/// event, and still far shorter than the window takes to drain.
const REST: Duration = Duration::from_millis(1);

/// The task's body; `shared`'s lifecycle says how it ended.
pub(crate) async fn run(shared: Arc<Shared>, config: Config, control: mpsc::Receiver<Control>) {
    shared.lifecycle.run();
    if shared.lifecycle.phase().has_ended() {
        return;
    }
    config.log_start();
    let mut worker = Worker::new(shared, config, control);
    let session = worker.run().await;
    worker.finish(session).await;
}

/// What a connection attempt came to.
enum Attempt {
    Connected(Session),
    Failed,
    /// Shutdown became due first.
    Interrupted,
}

/// What the task waits for, besides the socket, the handles and the keep-alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Socket progress only: the write budget is full, or the window is and the PUBACKs
    /// that rested are to be read.
    Io,
    /// Nothing until then, not even the socket: the window is full and everything is
    /// written, so PUBACKs are left to gather and are read in one go.
    Rest(Instant),
    /// The next look at the queue.
    Until(Instant),
    /// A pusher's wake-up: the task is parked.
    Parked,
}

struct Worker {
    shared: Arc<Shared>,
    /// `None` once every sender is gone.
    control: Option<mpsc::Receiver<Control>>,
    connector: Connector,
    connect: Connect,
    connect_timeout: Duration,
    outbox: Outbox,
    /// The retained online/offline status, if configured.
    status: Option<Status>,
    backoff: Backoff,
    ever_connected: bool,
    connected_at: Instant,
    /// The kind of the last failure logged at warn level, so that a repeated one is not.
    last_logged: Option<(&'static str, Option<u8>)>,
    flushes: Vec<(u64, oneshot::Sender<()>)>,
    /// Set once shutdown is asked for: the deadline, and whom to tell when it is done.
    shutdown: Option<(Instant, Vec<oneshot::Sender<()>>)>,
    /// The figures for the `metrics` facade (nothing without the feature).
    export: Export,
}

async fn next_control(control: &mut Option<mpsc::Receiver<Control>>) -> Option<Control> {
    match control {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn wait_for(shared: &Shared, wait: Wait) {
    match wait {
        Wait::Io => std::future::pending().await,
        Wait::Until(at) | Wait::Rest(at) => sleep_until(at).await,
        Wait::Parked => shared.lifecycle.parked().await,
    }
}

impl Worker {
    fn new(shared: Arc<Shared>, config: Config, control: mpsc::Receiver<Control>) -> Self {
        let connector = Connector::new(&config);
        let outbox = Outbox::new(Arc::clone(&shared), &config);
        let mut connect = Connect::new(config.client_id.clone());
        connect.keep_alive = u16::try_from(config.keep_alive.as_secs()).unwrap_or(u16::MAX);
        connect.clean_session = true;
        let status = config
            .status_topic
            .as_ref()
            .map(|topic| Status::new(topic, &config.client_id));
        if let Some(status) = &status {
            connect.last_will = Some(status.will());
        }
        if let Some(credentials) = &config.credentials {
            let password = credentials.password.as_ref().map_or("", |p| p.expose());
            connect.set_login(&credentials.username, password);
        }
        Self {
            control: Some(control),
            connector,
            connect,
            connect_timeout: config.connect_timeout,
            outbox,
            status,
            backoff: Backoff::new(config.reconnect),
            ever_connected: false,
            connected_at: Instant::now(),
            last_logged: None,
            flushes: Vec::new(),
            shutdown: None,
            export: Export::new(),
            shared,
        }
    }

    /// Connects, serves and reconnects until shutdown is due; returns the session to close.
    async fn run(&mut self) -> Option<Session> {
        loop {
            if self.shutdown_due() {
                return None;
            }
            match self.connect().await {
                Attempt::Connected(mut session) => match self.serve(&mut session).await {
                    Ok(()) => return Some(session),
                    Err(error) => self.failed(&error, true),
                },
                Attempt::Failed => {}
                Attempt::Interrupted => continue,
            }
            self.back_off().await;
        }
    }

    async fn connect(&mut self) -> Attempt {
        let (connector, connect) = (self.connector.clone(), self.connect.clone());
        let timeout = self.connect_timeout;
        let attempt = async move {
            tokio::time::timeout(timeout, Session::open(&connector, &connect))
                .await
                .unwrap_or(Err(SessionError::ConnectTimeout(timeout)))
        };
        match self.answering(attempt).await {
            None => Attempt::Interrupted,
            Some(Ok(session)) => {
                self.connected();
                Attempt::Connected(session)
            }
            Some(Err(error)) => {
                self.failed(&error, false);
                Attempt::Failed
            }
        }
    }

    /// Waits out the reconnect delay, answering handles meanwhile.
    async fn back_off(&mut self) {
        let until = Instant::now() + self.backoff.next_delay();
        self.answering(sleep_until(until)).await;
    }

    /// Runs `work` while answering the handles; `None` if shutdown became due first.
    async fn answering<F: Future>(&mut self, work: F) -> Option<F::Output> {
        tokio::pin!(work);
        loop {
            let deadline = self.deadline();
            tokio::select! {
                biased;
                message = next_control(&mut self.control) => {
                    self.on_control(message);
                    if self.shutdown_due() {
                        return None;
                    }
                }
                () = sleep_until_some(deadline) => return None,
                output = &mut work => return Some(output),
            }
        }
    }

    /// Publishes over `session` until shutdown is due (`Ok`) or the connection fails.
    async fn serve(&mut self, session: &mut Session) -> Result<(), SessionError> {
        if let Some(status) = &self.status {
            session.publish(&status.online)?;
        }
        let mut look_at = Instant::now();
        let mut busy_at = Instant::now();
        let mut rested = false;
        loop {
            self.outbox.settle(session);
            let now = Instant::now();
            self.export.tick(&self.shared, now);
            let mut wait = Wait::Until(look_at);
            if now >= look_at {
                wait = match self.outbox.fill(session) {
                    Filled::Budget => Wait::Io,
                    Filled::Window if rested || session.unwritten() > 0 => Wait::Io,
                    Filled::Window => Wait::Rest(now + REST),
                    Filled::Drained(took) => {
                        if took > 0 {
                            busy_at = now;
                        }
                        look_at = now + TICK;
                        let quiet = now.duration_since(busy_at) >= IDLE_AFTER;
                        let lifecycle = &self.shared.lifecycle;
                        if quiet
                            && lifecycle.try_park(
                                self.shared.counters.enqueued.atomic(),
                                self.outbox.taken(),
                            )
                        {
                            self.export.now(&self.shared);
                            Wait::Parked
                        } else {
                            Wait::Until(look_at)
                        }
                    }
                };
                if matches!(wait, Wait::Io | Wait::Rest(_)) {
                    look_at = now;
                }
            }
            rested = matches!(wait, Wait::Rest(_));
            self.settle_flushes();
            if self.shutdown_due() {
                self.shared.lifecycle.unpark();
                return Ok(());
            }
            let keep_alive = session.keep_alive_at();
            let deadline = self.deadline();
            tokio::select! {
                biased;
                message = next_control(&mut self.control) => self.on_control(message),
                result = poll_fn(|cx| session.poll_io(cx)), if !rested => result?,
                () = sleep_until(keep_alive) => session.on_keep_alive(Instant::now())?,
                () = sleep_until_some(deadline) => {}
                () = wait_for(&self.shared, wait) => {}
            }
            if wait == Wait::Parked {
                self.shared.lifecycle.unpark();
                look_at = Instant::now();
            }
        }
    }

    fn on_control(&mut self, message: Option<Control>) {
        match message {
            Some(Control::Flush(reply)) => {
                let target = self.outbox.taken() + self.shared.queue.len() as u64;
                self.flushes.push((target, reply));
            }
            Some(Control::Shutdown { deadline, reply }) => self.begin_shutdown(deadline, reply),
            None => {
                // Every layer, service and handle is gone: no more events, ever.
                self.control = None;
                self.begin_shutdown(Instant::now() + DROP_FLUSH_TIMEOUT, None);
            }
        }
    }

    fn begin_shutdown(&mut self, deadline: Instant, reply: Option<oneshot::Sender<()>>) {
        if self.shutdown.is_none() {
            self.shared.lifecycle.close();
            tracing::debug!("MQTT event publisher shutting down");
        }
        // The earliest deadline wins; every caller is told when it is done.
        let (current, replies) = self.shutdown.get_or_insert((deadline, Vec::new()));
        *current = (*current).min(deadline);
        replies.extend(reply);
    }

    fn deadline(&self) -> Option<Instant> {
        self.shutdown.as_ref().map(|(deadline, _)| *deadline)
    }

    fn shutdown_due(&self) -> bool {
        let Some((deadline, _)) = &self.shutdown else {
            return false;
        };
        let drained = self.shared.queue.is_empty() && self.outbox.unsettled() == 0;
        drained || Instant::now() >= *deadline
    }

    /// Answers the flushes whose events are all settled: events are numbered as they leave
    /// the queue, so everything older than the oldest unsettled one is settled.
    fn settle_flushes(&mut self) {
        if self.flushes.is_empty() {
            return;
        }
        let oldest = self.outbox.settled_below();
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flushes)
            .into_iter()
            .partition(|(target, reply)| *target <= oldest || reply.is_closed());
        self.flushes = waiting;
        for (_, reply) in done {
            let _ = reply.send(());
        }
    }

    fn connected(&mut self) {
        let counters = &self.shared.counters;
        if self.ever_connected {
            counters.reconnects.add(1);
        }
        counters
            .connected
            .store(true, std::sync::atomic::Ordering::Release);
        tracing::info!(attempts = self.backoff.failures() + 1, "MQTT connected");
        self.ever_connected = true;
        self.connected_at = Instant::now();
        self.last_logged = None;
        self.export.now(&self.shared);
    }

    /// A connection attempt failed, or an established connection ended: takes back what
    /// was unsettled for re-sending, and logs a failure of a new kind once.
    fn failed(&mut self, error: &SessionError, was_connected: bool) {
        self.outbox.connection_lost();
        if was_connected {
            self.shared
                .counters
                .connected
                .store(false, std::sync::atomic::Ordering::Release);
            self.backoff.connection_ended(self.connected_at.elapsed());
        }
        if !was_connected {
            self.shared.counters.connect_failures.add(1);
        }
        self.shared.set_last_error(error.to_string());
        let kind = error.kind();
        let unconfirmed = self.outbox.unsettled();
        let attempt = self.backoff.failures() + 1;
        if self.shutdown.is_some() {
            tracing::debug!(%error, "MQTT connection ended during shutdown");
        } else if self.last_logged != Some(kind) {
            tracing::warn!(%error, attempt, unconfirmed, "MQTT connection failed; retrying with backoff");
        } else {
            tracing::debug!(%error, attempt, unconfirmed, "MQTT connection failed again");
        }
        self.last_logged = Some(kind);
        self.export.now(&self.shared);
    }

    /// Closes the session cleanly when everything was delivered, counts what was not, and
    /// tells the callers of shutdown.
    async fn finish(self, session: Option<Session>) {
        let (deadline, replies) = self
            .shutdown
            .unwrap_or_else(|| (Instant::now(), Vec::new()));
        if let Some(session) = session {
            let farewell = self.status.as_ref().map(|status| &status.offline);
            session
                .disconnect(
                    deadline.max(Instant::now() + Duration::from_millis(20)),
                    farewell,
                )
                .await;
        }
        let undelivered = self.shared.end(Phase::ShutDown, None).unwrap_or(0);
        self.export.now(&self.shared);
        let stats = self.shared.stats();
        tracing::info!(
            delivered = stats.delivered,
            undelivered,
            dropped = stats.dropped_queue_full + stats.dropped_closed,
            "MQTT event publisher shut down"
        );
        for reply in replies {
            let _ = reply.send(());
        }
    }
}
