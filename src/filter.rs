//! Which events are published at all: routes left out by their template
//! (`MPS_MQTT_EXCLUDE=/api/v1/health,...`) and the event types kept (`MPS_MQTT_ONLY=fail`).
//! Decided on the request path, before anything is queued: a filtered event is no event, so
//! it is counted nowhere.

use crate::error::ConfigError;
use crate::event::EventType;
use crate::routes::{ROUTES, RouteId};

/// The filter of a layer; the default lets everything through.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    /// Bit `n` set: route `n` publishes nothing.
    excluded: u64,
    /// Bits of the [`EventType`]s kept; 0 keeps every type.
    types: u8,
}

fn type_bit(kind: EventType) -> u8 {
    match kind {
        EventType::Request => 1,
        EventType::Success => 2,
        EventType::Fail => 4,
    }
}

impl Filter {
    /// Leaves out the routes whose templates (e.g. `/api/v1/health`, any method) are given.
    pub(crate) fn exclude_routes(
        mut self,
        name: &'static str,
        templates: &[String],
    ) -> Result<Self, ConfigError> {
        for template in templates.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
            let mut found = false;
            for (id, route) in ROUTES.iter().enumerate() {
                if route.template == template {
                    self.excluded |= 1 << id;
                    found = true;
                }
            }
            if !found {
                return Err(ConfigError::InvalidFilter {
                    name,
                    value: template.to_owned(),
                    reason: "not a template of MPS's routes, e.g. /api/v1/health or \
                             /api/v1/amt/power/state/:guid",
                });
            }
        }
        Ok(self)
    }

    /// Keeps only the given event types.
    pub(crate) fn only(mut self, types: impl IntoIterator<Item = EventType>) -> Self {
        self.types = types
            .into_iter()
            .fold(0, |bits, kind| bits | type_bit(kind));
        self
    }

    /// Whether events of `route` are left out.
    #[inline]
    pub(crate) fn excludes_route(&self, route: Option<RouteId>) -> bool {
        self.excluded != 0 && route.is_some_and(|id| self.excluded & (1 << id) != 0)
    }

    /// Whether every type is kept (then nobody needs to work out an event's type early).
    #[inline]
    pub(crate) fn keeps_every_type(&self) -> bool {
        self.types == 0
    }

    /// Whether events of `kind` are kept.
    pub(crate) fn keeps(&self, kind: EventType) -> bool {
        self.types == 0 || self.types & type_bit(kind) != 0
    }
}

/// `request`, `success`, `fail`, comma-separated.
pub(crate) fn parse_types(name: &'static str, raw: &str) -> Result<Vec<EventType>, ConfigError> {
    raw.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| match t.to_ascii_lowercase().as_str() {
            "request" => Ok(EventType::Request),
            "success" => Ok(EventType::Success),
            "fail" => Ok(EventType::Fail),
            _ => Err(ConfigError::InvalidFilter {
                name,
                value: t.to_owned(),
                reason: "expected request, success or fail",
            }),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_excluded_by_template_with_every_method() {
        let filter = Filter::default()
            .exclude_routes("MPS_MQTT_EXCLUDE", &["/api/v1/devices".to_owned()])
            .expect("a template");
        let ids: Vec<RouteId> = (0..ROUTES.len())
            .filter(|&i| ROUTES[i].template == "/api/v1/devices")
            .map(|i| RouteId::try_from(i).expect("small"))
            .collect();
        assert_eq!(ids.len(), 3, "GET, POST and PATCH /api/v1/devices");
        assert!(ids.iter().all(|&id| filter.excludes_route(Some(id))));
        assert!(
            !filter.excludes_route(None),
            "unknown paths are not a template"
        );
        let err = Filter::default()
            .exclude_routes("MPS_MQTT_EXCLUDE", &["/api/v1/nope".to_owned()])
            .expect_err("not a route");
        assert!(
            err.to_string()
                .contains("invalid MPS_MQTT_EXCLUDE \"/api/v1/nope\"")
        );
    }

    #[test]
    fn types_are_kept_as_listed() {
        let only_fail = Filter::default().only(parse_types("MPS_MQTT_ONLY", "fail").expect("ok"));
        assert!(only_fail.keeps(EventType::Fail) && !only_fail.keeps(EventType::Success));
        assert!(Filter::default().keeps(EventType::Request));
        assert!(parse_types("MPS_MQTT_ONLY", "fail,oops").is_err());
    }
}
