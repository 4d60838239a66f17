//! The retained online/offline status of a publisher (`MPS_MQTT_STATUS_TOPIC`): the birth
//! message at every connection, the last will for a connection that dies, and the farewell
//! at shutdown.

use rumqttc::{LastWill, Publish};

/// The retained status of this publisher on the status topic.
#[derive(Debug)]
pub(crate) struct Status {
    pub(crate) online: Publish,
    pub(crate) offline: Publish,
}

impl Status {
    pub(crate) fn new(topic: &str, client_id: &str) -> Self {
        let message = |status: &str| {
            let json = serde_json::json!({ "status": status, "client_id": client_id });
            let mut publish = Publish::new(topic, rumqttc::QoS::AtMostOnce, json.to_string());
            publish.retain = true;
            publish
        };
        Self {
            online: message("online"),
            offline: message("offline"),
        }
    }

    /// The last will: the offline status, retained, for the broker to publish if the
    /// connection dies without a DISCONNECT.
    pub(crate) fn will(&self) -> LastWill {
        let payload = self.offline.payload.clone();
        LastWill::new(
            &self.offline.topic,
            payload,
            rumqttc::QoS::AtLeastOnce,
            true,
        )
    }
}
