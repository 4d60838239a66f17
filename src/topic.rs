//! Topic templates: `MPS_MQTT_TOPIC=mps/events/{type}/{guid}` puts an event's `type`, device
//! guid or `methods` entry into its topic. Only values from a fixed set or validated as UUIDs
//! reach a topic, and anything else a handler names is reduced to `[A-Za-z0-9_-]`, so no
//! event can add a level, a wildcard, NUL or a leading `$`.

use std::fmt::Write as _;

use crate::error::ConfigError;

/// The segment a `{guid}` becomes for an event without a guid.
pub(crate) const NO_GUID: &str = "none";

/// Checks a topic one publishes to: not empty, no wildcard, no NUL, no leading `$`, not
/// longer than MQTT allows.
pub(crate) fn validate_topic(name: &'static str, topic: String) -> Result<String, ConfigError> {
    let reason = if topic.is_empty() {
        "the topic is empty"
    } else if topic.contains(['+', '#']) {
        "wildcards + and # are for subscribing, not publishing"
    } else if topic.contains('\0') {
        "the topic contains NUL"
    } else if topic.starts_with('$') {
        "topics starting with $ are reserved for the broker"
    } else if topic.len() > usize::from(u16::MAX) {
        "the topic is longer than 65535 bytes"
    } else {
        return Ok(topic);
    };
    Err(ConfigError::InvalidTopic {
        name,
        value: topic,
        reason,
    })
}

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// `{type}`: `request`, `success` or `fail`.
    Type,
    /// `{guid}`: the device guid (a validated UUID) or [`NO_GUID`].
    Guid,
    /// `{method}`: the event's `methods` entry, reduced to `[A-Za-z0-9_-]`.
    Method,
}

/// A topic, fixed or with placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TopicTemplate {
    raw: String,
    parts: Vec<Part>,
}

/// What an event puts into its topic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TopicValues<'a> {
    pub(crate) kind: &'static str,
    /// A validated UUID, if the event has one.
    pub(crate) guid: Option<&'a str>,
    pub(crate) method: &'a str,
}

impl TopicTemplate {
    /// Parses and checks `raw`: placeholders `{type}`, `{guid}`, `{method}`, each a whole
    /// level; the rest must be a topic one can publish to.
    pub(crate) fn parse(name: &'static str, raw: String) -> Result<Self, ConfigError> {
        let invalid = |reason| ConfigError::InvalidTopic {
            name,
            value: raw.clone(),
            reason,
        };
        let mut parts = Vec::new();
        for (i, level) in raw.split('/').enumerate() {
            if i > 0 {
                parts.push(Part::Literal("/".to_owned()));
            }
            let part = match level {
                "{type}" => Part::Type,
                "{guid}" => Part::Guid,
                "{method}" => Part::Method,
                literal if literal.contains(['{', '}']) => {
                    return Err(invalid(
                        "placeholders are {type}, {guid} and {method}, each a whole level",
                    ));
                }
                literal => Part::Literal(literal.to_owned()),
            };
            parts.push(part);
        }
        // The literal parts must make a valid topic, whatever the placeholders become.
        let sample: String = parts
            .iter()
            .map(|p| match p {
                Part::Literal(text) => text.as_str(),
                _ => "x",
            })
            .collect();
        validate_topic(name, sample).map_err(|e| match e {
            ConfigError::InvalidTopic { reason, .. } => invalid(reason),
            other => other,
        })?;
        // Merge neighbouring literals, so a fixed topic is one literal.
        let mut merged: Vec<Part> = Vec::new();
        for part in parts {
            match (merged.last_mut(), part) {
                (Some(Part::Literal(text)), Part::Literal(more)) => text.push_str(&more),
                (_, part) => merged.push(part),
            }
        }
        Ok(Self { raw, parts: merged })
    }

    /// The template as given.
    pub(crate) fn as_str(&self) -> &str {
        &self.raw
    }

    /// The topic when it has no placeholders.
    pub(crate) fn fixed(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [Part::Literal(text)] => Some(text),
            _ => None,
        }
    }

    /// The topic of an event, written into `out` (cleared first).
    pub(crate) fn render(&self, values: TopicValues<'_>, out: &mut String) {
        out.clear();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Type => out.push_str(values.kind),
                Part::Guid => out.push_str(values.guid.unwrap_or(NO_GUID)),
                Part::Method => {
                    let safe = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
                    let method = values.method;
                    if method.is_empty() {
                        out.push_str("unknown");
                    }
                    for c in method.chars() {
                        let _ = out.write_char(if safe(c) { c } else { '_' });
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn template(raw: &str) -> TopicTemplate {
        TopicTemplate::parse("MPS_MQTT_TOPIC", raw.to_owned()).expect("a valid template")
    }

    #[test]
    fn a_topic_without_placeholders_is_fixed() {
        assert_eq!(template("mps/events").fixed(), Some("mps/events"));
        assert_eq!(template("mps/events/{type}").fixed(), None);
    }

    #[test]
    fn placeholders_become_the_events_values() {
        let t = template("site/a/{type}/{guid}/{method}");
        let mut out = String::new();
        let guid = "4c4c4544-004b-4210-8033-b6c04f504633";
        t.render(
            TopicValues {
                kind: "fail",
                guid: Some(guid),
                method: "AMT_PowerState",
            },
            &mut out,
        );
        assert_eq!(out, format!("site/a/fail/{guid}/AMT_PowerState"));
        t.render(
            TopicValues {
                kind: "success",
                guid: None,
                method: "a/b+#$\0c",
            },
            &mut out,
        );
        assert_eq!(out, "site/a/success/none/a_b____c");
    }

    #[test]
    fn bad_templates_are_refused_naming_the_problem() {
        for (raw, reason) in [
            ("mps/{nope}", "placeholders are"),
            ("mps/x{type}", "placeholders are"),
            ("mps/#/{type}", "wildcards"),
            ("$SYS/{type}", "reserved"),
            ("", "empty"),
        ] {
            let err = TopicTemplate::parse("MPS_MQTT_TOPIC", raw.to_owned()).expect_err(raw);
            assert!(err.to_string().contains(reason), "{raw:?}: {err}");
        }
    }

    proptest! {
        /// Whatever a handler or a path supplies, a rendered topic has the template's levels,
        /// and no wildcard, NUL or leading `$`.
        #[test]
        fn no_value_changes_the_levels_or_adds_a_wildcard(method in any::<String>(), kind in "(request|success|fail)") {
            let t = template("mps/events/{type}/{guid}/{method}");
            let mut out = String::new();
            t.render(TopicValues { kind: Box::leak(kind.into_boxed_str()), guid: None, method: &method }, &mut out);
            prop_assert_eq!(out.split('/').count(), 5);
            prop_assert!(!out.contains(['+', '#', '\0']));
            prop_assert!(!out.starts_with('$'));
        }
    }
}
