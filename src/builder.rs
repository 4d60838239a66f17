//! The [`Builder`]: setters over the configuration, checked and turned into a layer.

use std::fmt;
use std::time::Duration;

use crate::config::{
    Config, DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEEP_ALIVE, DEFAULT_QUEUE_CAPACITY,
    DEFAULT_RECONNECT_MAX, DEFAULT_RECONNECT_MIN, DEFAULT_TOPIC, ENV_ADDRESS, ENV_CLIENT_ID,
    ENV_QOS, ENV_QUEUE_CAPACITY, ENV_TOPIC, Qos, check_capacity, default_client_id, parse_address,
    parse_capacity, parse_qos, redact, validate_client_id,
};
use crate::config::{
    ENV_EXCLUDE, ENV_ONLY, ENV_PROFILE, ENV_RETAIN, ENV_STATUS_TOPIC, Profile, parse_profile,
};
use crate::error::ConfigError;
use crate::event::EventType;
use crate::filter::{Filter, parse_types};
use crate::layer::MqttEventLayer;
use crate::publisher::PublisherTask;
use crate::secure::SecureSettings;
use crate::secure::parse_flag;
use crate::topic::TopicTemplate;
use crate::topic::validate_topic;

/// A raw value and the name of the setting it came from, for error messages.
#[derive(Clone)]
struct Setting<T> {
    name: &'static str,
    value: T,
}

/// Sets up an [`MqttEventLayer`](crate::MqttEventLayer) in code.
///
/// Start from [`MqttEventLayer::builder`](crate::MqttEventLayer::builder) (defaults, eventing
/// off) or [`Builder::from_env`] (the environment); setters called afterwards override what
/// the environment said. Values are checked by [`build`](Builder::build).
///
/// ```
/// use mps_mqtt_events::{MqttEventLayer, Qos};
///
/// let layer = MqttEventLayer::builder()
///     .address("mqtt://127.0.0.1:1883")
///     .topic("mps/events")
///     .qos(Qos::AtLeastOnce)
///     .queue_capacity(1024)
///     .build()?;
/// assert!(layer.is_enabled());
/// # Ok::<(), mps_mqtt_events::ConfigError>(())
/// ```
#[derive(Clone, Default)]
#[must_use]
pub struct Builder {
    address: Option<Setting<String>>,
    topic: Option<Setting<String>>,
    qos: Qos,
    client_id: Option<Setting<String>>,
    queue_capacity: Option<Setting<usize>>,
    reconnect: Option<(Duration, Duration)>,
    keep_alive: Option<Duration>,
    connect_timeout: Option<Duration>,
    secure: SecureSettings,
    profile: Profile,
    mps_id_and_http: bool,
    exclude: Option<Setting<Vec<String>>>,
    only: Option<Vec<EventType>>,
    status_topic: Option<Setting<String>>,
    retain: bool,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("address", &self.address.as_ref().map(|a| redact(&a.value)))
            .field("topic", &self.topic.as_ref().map(|t| &t.value))
            .field("qos", &self.qos)
            .field("client_id", &self.client_id.as_ref().map(|c| &c.value))
            .field(
                "queue_capacity",
                &self.queue_capacity.as_ref().map(|c| c.value),
            )
            .field("reconnect_backoff", &self.reconnect)
            .field("keep_alive", &self.keep_alive)
            .field("connect_timeout", &self.connect_timeout)
            .field("secure", &self.secure)
            .field("profile", &self.profile)
            .field("mps_id_and_http", &self.mps_id_and_http)
            .field("exclude", &self.exclude.as_ref().map(|e| &e.value))
            .field("only", &self.only)
            .field(
                "status_topic",
                &self.status_topic.as_ref().map(|t| &t.value),
            )
            .field("retain", &self.retain)
            .finish()
    }
}

impl Builder {
    /// A builder holding what the environment says (the variables are listed in the
    /// [crate docs](crate#configuration)). Unset variables keep their defaults.
    ///
    /// # Errors
    ///
    /// A variable that is not UTF-8, a QoS other than `0` or `1`, or a queue capacity that is
    /// not a number. The address, topic and client id are checked by [`build`](Self::build).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| match std::env::var(name) {
            Ok(value) => Ok(Some(value)),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::NotUnicode { name }),
        })
    }

    /// [`from_env`](Self::from_env) over any lookup function, so parsing is testable without
    /// touching the process environment.
    pub(crate) fn from_lookup(
        lookup: impl Fn(&'static str) -> Result<Option<String>, ConfigError>,
    ) -> Result<Self, ConfigError> {
        let mut builder = Self {
            secure: SecureSettings::from_lookup(&lookup)?,
            ..Self::default()
        };
        if let Some(value) = lookup(ENV_ADDRESS)? {
            builder.address = Some(Setting {
                name: ENV_ADDRESS,
                value,
            });
        }
        if let Some(value) = lookup(ENV_TOPIC)? {
            builder.topic = Some(Setting {
                name: ENV_TOPIC,
                value,
            });
        }
        if let Some(value) = lookup(ENV_STATUS_TOPIC)?.filter(|v| !v.is_empty()) {
            builder.status_topic = Some(Setting {
                name: ENV_STATUS_TOPIC,
                value,
            });
        }
        if let Some(value) = lookup(ENV_RETAIN)? {
            builder.retain = parse_flag(ENV_RETAIN, &value)?;
        }
        if let Some(value) = lookup(ENV_EXCLUDE)? {
            let templates = value.split(',').map(str::to_owned).collect();
            builder.exclude = Some(Setting {
                name: ENV_EXCLUDE,
                value: templates,
            });
        }
        if let Some(value) = lookup(ENV_ONLY)? {
            builder.only = Some(parse_types(ENV_ONLY, &value)?);
        }
        if let Some(value) = lookup(ENV_PROFILE)? {
            builder.profile = parse_profile(ENV_PROFILE, &value)?;
        }
        if let Some(value) = lookup(ENV_QOS)? {
            builder.qos = parse_qos(ENV_QOS, &value)?;
        }
        if let Some(value) = lookup(ENV_CLIENT_ID)? {
            builder.client_id = Some(Setting {
                name: ENV_CLIENT_ID,
                value,
            });
        }
        if let Some(value) = lookup(ENV_QUEUE_CAPACITY)? {
            let capacity = parse_capacity(ENV_QUEUE_CAPACITY, &value)?;
            builder.queue_capacity = Some(Setting {
                name: ENV_QUEUE_CAPACITY,
                value: capacity,
            });
        }
        Ok(builder)
    }

    /// The broker, in the syntax of `MPS_MQTT_ADDRESS`: `mqtt://host[:port]` or
    /// `tcp://host[:port]`, plain TCP whatever the port, 1883 when omitted; IPv6 literals in
    /// brackets; `user:password@` before the host logs in. An empty string, `false` or `0`
    /// turns eventing off, as in MPS. Overrides `MPS_MQTT_ADDRESS`. Defaults to off.
    pub fn address(mut self, address: impl Into<String>) -> Self {
        self.address = Some(Setting {
            name: "address",
            value: address.into(),
        });
        self
    }

    /// The topic events are published on. Overrides `MPS_MQTT_TOPIC`. Defaults to
    /// `mps/events`, where existing MPS subscribers listen. Levels `{type}`, `{guid}` and
    /// `{method}` take each event's values, e.g. `mps/events/{type}/{guid}` (`none` for an
    /// event without a guid); only fixed words and validated UUIDs reach a topic.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(Setting {
            name: "topic",
            value: topic.into(),
        });
        self
    }

    /// The QoS events are published with. Overrides `MPS_MQTT_QOS`. Defaults to
    /// [`Qos::AtLeastOnce`], so that delivery is acknowledged and counted.
    pub fn qos(mut self, qos: Qos) -> Self {
        self.qos = qos;
        self
    }

    /// The MQTT client id. Overrides `MPS_MQTT_CLIENT_ID`. Defaults to `mps-<host>-<random>`,
    /// new for each process, so that replicas never disconnect each other at the broker.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(Setting {
            name: "client_id",
            value: client_id.into(),
        });
        self
    }

    /// How many events wait for the broker before new ones are dropped (and counted in
    /// [`Stats::dropped_queue_full`](crate::Stats::dropped_queue_full)). Overrides
    /// `MPS_MQTT_QUEUE_CAPACITY`. Defaults to [`DEFAULT_QUEUE_CAPACITY`].
    ///
    /// The queue is allocated up front, 128 bytes an event (plus at most
    /// [`EventData::MAX_LEN`](crate::EventData::MAX_LEN) for an event whose handler added
    /// data), and is the only buffer that grows while the broker is away: choose the number of events to keep through
    /// the longest outage you want to bridge (requests per second × seconds), within the
    /// memory you can spare.
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = Some(Setting {
            name: "queue_capacity",
            value: capacity,
        });
        self
    }

    /// Delays between reconnect attempts: the first is `min`, each failed attempt doubles it
    /// up to `max`, and each delay is drawn at random from its upper half so that replicas
    /// spread out. A connection that held for 10 s resets the delay to `min`; one that breaks
    /// sooner (a duplicate client id, a broker that accepts then closes) keeps doubling it, so
    /// nothing reconnects in a tight loop. Defaults to 100 ms and 1 s: a broker that returns
    /// is used again within a second,
    /// and a broker that is down sees about one attempt a second from each process.
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect = Some((min, max));
        self
    }

    /// The MQTT keep-alive. The publisher sends a PINGREQ this often and drops a connection
    /// whose PINGRESP does not come within half of it, so a broker that stops answering is
    /// detected within 1.5 times this. Whole seconds from 1 s to 18 h (MQTT's limit).
    /// Defaults to 15 s.
    pub fn keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = Some(keep_alive);
        self
    }

    /// How long one connection attempt may take, from the TCP connect to the broker's
    /// CONNACK; a broker that accepts and never answers is retried with backoff after it.
    /// Defaults to 5 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// Checks every value and builds the layer; it is disabled when no address was given.
    ///
    /// # Errors
    ///
    /// The first value that cannot be used, named as the setting it came from.
    pub fn build(self) -> Result<MqttEventLayer, ConfigError> {
        Ok(match self.into_config()? {
            Some(config) => MqttEventLayer::with_config(config),
            None => MqttEventLayer::disabled(),
        })
    }

    /// Like [`build`](Self::build), but hands back the publisher task instead of letting the
    /// first request spawn it on the runtime that serves it: spawn the
    /// [`PublisherTask`](crate::PublisherTask) where the MQTT work should run (its own small
    /// runtime, a dedicated thread). When eventing is off, the task is already finished.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), mps_mqtt_events::ConfigError> {
    /// let (layer, task) = mps_mqtt_events::MqttEventLayer::builder()
    ///     .address("mqtt://127.0.0.1:1883")
    ///     .build_pair()?;
    /// tokio::spawn(task);
    /// # let _ = layer;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`build`](Self::build).
    pub fn build_pair(self) -> Result<(MqttEventLayer, PublisherTask), ConfigError> {
        let layer = self.build()?;
        let task = layer.take_task();
        Ok((layer, task))
    }

    /// Validates the settings; `None` means eventing is off.
    pub(crate) fn into_config(self) -> Result<Option<Config>, ConfigError> {
        let Some(address) = self.address else {
            return Ok(None);
        };
        let Some(broker) = parse_address(address.name, &address.value)? else {
            return Ok(None);
        };
        let topic = match self.topic {
            Some(t) => TopicTemplate::parse(t.name, t.value)?,
            None => TopicTemplate::parse("topic", DEFAULT_TOPIC.to_owned())?,
        };
        let client_id = match self.client_id {
            Some(c) => validate_client_id(c.name, c.value)?,
            None => default_client_id(),
        };
        let queue_capacity = match self.queue_capacity {
            Some(c) => check_capacity(c.name, c.value)?,
            None => DEFAULT_QUEUE_CAPACITY,
        };
        let reconnect = match self.reconnect {
            Some((min, max)) if min.is_zero() || max < min => {
                return Err(ConfigError::InvalidBackoff { min, max });
            }
            Some(backoff) => backoff,
            None => (DEFAULT_RECONNECT_MIN, DEFAULT_RECONNECT_MAX),
        };
        let keep_alive = match self.keep_alive {
            Some(k)
                if k < Duration::from_secs(1) || k > Duration::from_secs(u64::from(u16::MAX)) =>
            {
                return Err(ConfigError::InvalidKeepAlive { keep_alive: k });
            }
            Some(k) => Duration::from_secs(k.as_secs()),
            None => DEFAULT_KEEP_ALIVE,
        };
        let connect_timeout = match self.connect_timeout {
            Some(t) if t.is_zero() => return Err(ConfigError::InvalidConnectTimeout),
            Some(t) => t,
            None => DEFAULT_CONNECT_TIMEOUT,
        };
        let status_topic = match self.status_topic {
            Some(t) => Some(validate_topic(t.name, t.value)?),
            None => None,
        };
        let mut filter = Filter::default();
        if let Some(exclude) = &self.exclude {
            filter = filter.exclude_routes(exclude.name, &exclude.value)?;
        }
        if let Some(only) = &self.only {
            filter = filter.only(only.iter().copied());
        }
        let credentials = self.secure.credentials(address.name, &broker)?;
        let tls = self.secure.tls(address.name, &broker)?;
        Ok(Some(Config {
            broker,
            topic,
            qos: self.qos,
            client_id,
            queue_capacity,
            reconnect,
            keep_alive,
            connect_timeout,
            credentials,
            profile: self.profile,
            mps_id_and_http: self.mps_id_and_http,
            filter,
            status_topic,
            retain: self.retain,
            tls,
        }))
    }
}

/// The constructors that read the environment or start a [`Builder`].
impl MqttEventLayer {
    /// The layer the environment asks for (see [`Builder::from_env`] for the variables).
    ///
    /// # Panics
    ///
    /// When a variable holds a value that cannot be used, with the message of the
    /// [`ConfigError`], e.g. `invalid MPS_MQTT_ADDRESS "htp://mosquitto:8883": unsupported
    /// scheme "htp"; ...`. Call it once at startup (MPS fails fast the same way), or use
    /// [`try_from_env`](Self::try_from_env) to handle the error.
    pub fn from_env() -> Self {
        match Self::try_from_env() {
            Ok(layer) => layer,
            Err(err) => panic!("{err}"),
        }
    }

    /// The layer the environment asks for, or the first value that cannot be used.
    ///
    /// Logs `MQTT is turned off` (info) when `MPS_MQTT_ADDRESS` is unset or empty, as MPS
    /// does.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the variable and its (password-redacted) value.
    pub fn try_from_env() -> Result<Self, ConfigError> {
        let layer = Builder::from_env()?.build()?;
        if !layer.is_enabled() {
            tracing::info!("MQTT is turned off");
        }
        Ok(layer)
    }

    /// A builder to set the options in code; eventing is off until an address is set.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

mod events;
mod security;

#[cfg(test)]
mod tests;
