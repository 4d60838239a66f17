//! The [`Builder`]'s setters of what is published: profile, filters, status topic, retain.

use super::{Builder, Setting};
use crate::config::Profile;
use crate::event::EventType;

/// What is published, and how.
impl Builder {
    /// Which events a request publishes: [`Profile::All`] (the default) or [`Profile::Mps`],
    /// exactly MPS's own stream. Overrides `MPS_MQTT_PROFILE` (`all` or `mps`).
    pub fn profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// Whether the events of [`Profile::Mps`] also carry `id` and `http` (defaults to
    /// `false`: MPS's five fields only). The `all` profile always carries them.
    pub fn mps_id_and_http(mut self, on: bool) -> Self {
        self.mps_id_and_http = on;
        self
    }

    /// Leaves out the events of these routes, by template (e.g. `/api/v1/health`; every
    /// method of the template). Overrides `MPS_MQTT_EXCLUDE` (comma-separated). A left-out
    /// event is no event: it is counted nowhere.
    pub fn exclude_routes<T: Into<String>>(
        mut self,
        templates: impl IntoIterator<Item = T>,
    ) -> Self {
        self.exclude = Some(Setting {
            name: "exclude_routes",
            value: templates.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// Publishes only events of these types (e.g. `[EventType::Fail]`). Overrides
    /// `MPS_MQTT_ONLY` (comma-separated `request`, `success`, `fail`). Defaults to all.
    pub fn only_types(mut self, types: impl IntoIterator<Item = EventType>) -> Self {
        self.only = Some(types.into_iter().collect());
        self
    }

    /// Publishes the server's status on this topic, retained: `{"status":"online",...}` at
    /// every connection, and `{"status":"offline",...}` as the MQTT last will (the broker
    /// sends it when the connection dies without a DISCONNECT) and at shutdown. Operators see
    /// a dead server. Overrides `MPS_MQTT_STATUS_TOPIC`. Defaults to none.
    pub fn status_topic(mut self, topic: impl Into<String>) -> Self {
        self.status_topic = Some(Setting {
            name: "status_topic",
            value: topic.into(),
        });
        self
    }

    /// Publishes events with the retain flag, so a subscriber that comes later gets the
    /// last event of each topic at once (with a `{guid}` topic template: each device's last
    /// event). Overrides `MPS_MQTT_RETAIN`. Defaults to `false`.
    pub fn retain(mut self, retain: bool) -> Self {
        self.retain = retain;
        self
    }
}
