//! [`Link`]: what the layer, its services and the handles hold. It owns the control channel's
//! sender and, until the task is spawned, the task itself; when the last holder drops it, the
//! channel closes and the task learns that no event will ever come again.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;

use super::message::Control;
use super::shared::{Admission, Shared};
use super::state::Phase;
use super::task::PublisherTask;
use super::worker;
use crate::config::{Config, Profile};
use crate::filter::Filter;
use crate::record::Record;

/// Messages a handle can have in flight to the task before `send` waits.
const CONTROL_CAPACITY: usize = 16;

/// The publisher as seen from the request path and the handles.
#[derive(Debug)]
pub(crate) struct Link {
    shared: Arc<Shared>,
    control: mpsc::Sender<Control>,
    /// The task, until it is spawned on the first request or handle call, or handed out.
    task: Mutex<Option<PublisherTask>>,
    topic: String,
    broker: String,
    profile: Profile,
    filter: Filter,
}

impl Link {
    pub(crate) fn new(config: Config) -> Self {
        let shared = Arc::new(Shared::new(config.queue_capacity, config.qos));
        let (control, receiver) = mpsc::channel(CONTROL_CAPACITY);
        let topic = config.topic.as_str().to_owned();
        let broker = config.broker.to_string();
        let profile = config.profile;
        let filter = config.filter;
        let future = worker::run(Arc::clone(&shared), config, receiver);
        let task = PublisherTask::new(Arc::clone(&shared), future);
        Self {
            shared,
            control,
            task: Mutex::new(Some(task)),
            topic,
            broker,
            profile,
            filter,
        }
    }

    /// Which events are published at all.
    pub(crate) fn filter(&self) -> &Filter {
        &self.filter
    }

    /// Which events a request publishes.
    pub(crate) fn profile(&self) -> Profile {
        self.profile
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn control(&self) -> &mpsc::Sender<Control> {
        &self.control
    }

    /// The topic events are published on, as configured (a template if it has placeholders).
    pub(crate) fn topic(&self) -> &str {
        &self.topic
    }

    /// The broker address, password redacted.
    pub(crate) fn broker(&self) -> &str {
        &self.broker
    }

    /// Hands one event to the publisher (see [`Shared::push`]); spawns the task if this is
    /// the first event.
    #[inline]
    pub(crate) fn push(&self, record: Record) -> Admission {
        let (admission, lazy) = self.shared.push(record);
        if lazy {
            self.start();
        }
        admission
    }

    /// Spawns the task on the current Tokio runtime, once; outside a runtime it waits for a
    /// later call (events queue meanwhile). Afterwards the phase is no longer `Lazy`, so the
    /// request path never comes here again.
    #[cold]
    pub(crate) fn start(&self) {
        if self.shared.lifecycle.phase() != Phase::Lazy {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if let Some(task) = self.take_task() {
            runtime.spawn(task);
        }
    }

    /// Takes the task out for the caller to spawn; the layer then never spawns it. `None`
    /// if it was already taken.
    pub(crate) fn take_task(&self) -> Option<PublisherTask> {
        let task = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        self.shared.lifecycle.hand_out();
        Some(task)
    }
}
