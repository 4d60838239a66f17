//! MPS's REST routes and what MPS says about each: the `methods` name and the messages of its
//! events (MPS 2.13.22; the same facts as `tests/data/mps-routes.tsv`), as pure functions.

use std::sync::LazyLock;

use http::Method;

/// MPS's text for an exception in a handler; ours for an error from the inner service.
pub(crate) const INTERNAL_ERROR: &str = "Internal Service Error";
/// One REST route of MPS.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) method: Method,
    /// The path with `:guid` for the device id, as MPS's docs write it.
    pub(crate) template: &'static str,
    /// The `methods` value: the AMT operation, or the handler name where MPS publishes none.
    pub(crate) operation: &'static str,
    /// Text of a success (HTTP < 400); falls back to [`GENERIC_SUCCESS`].
    pub(crate) success: Option<&'static str>,
    /// Text of a failure the handler reports itself (HTTP 4xx).
    pub(crate) soft_fail: Option<&'static str>,
    /// Text of an exception (HTTP 5xx).
    pub(crate) error: Option<&'static str>,
    /// Behind MPS's CIRA middleware: HTTP 404 means the device is not connected.
    pub(crate) cira: bool,
}

impl Route {
    /// Whether the path carries the device guid.
    pub(crate) fn has_guid(&self) -> bool {
        self.template.ends_with(":guid")
    }
}

const fn route(
    method: Method,
    template: &'static str,
    operation: &'static str,
    success: Option<&'static str>,
    soft_fail: Option<&'static str>,
    error: Option<&'static str>,
    cira: bool,
) -> Route {
    Route {
        method,
        template,
        operation,
        success,
        soft_fail,
        error,
        cira,
    }
}

const ISE: Option<&str> = Some(INTERNAL_ERROR);

/// Every route of MPS 2.13.22. Where MPS publishes no event, `methods` is the handler's name.
#[rustfmt::skip]
pub(crate) static ROUTES: [Route; 33] = [
    route(Method::POST, "/api/v1/authorize", "login", None, None, None, false),
    route(Method::GET, "/api/v1/authorize/redirection/:guid", "authorizeDevice", None, None, None, false),
    route(Method::GET, "/api/v1/devices", "getAllDevices", None, None, None, false),
    route(Method::GET, "/api/v1/devices/stats", "getDeviceStats", None, None, None, false),
    route(Method::GET, "/api/v1/devices/tags", "getDistinctTags", None, None, None, false),
    route(Method::GET, "/api/v1/devices/:guid", "getDevice", None, None, None, false),
    route(Method::GET, "/api/v1/devices/redirectstatus/:guid", "getRedirectStatus", None, None, None, true),
    route(Method::POST, "/api/v1/devices", "insertDevice", None, None, None, false),
    route(Method::PATCH, "/api/v1/devices", "updateDevice", None, None, None, false),
    route(Method::DELETE, "/api/v1/devices/refresh/:guid", "refreshDevice", None, None, None, false),
    route(Method::DELETE, "/api/v1/devices/:guid", "deleteDevice", None, None, None, false),
    route(Method::DELETE, "/api/v1/devices/disconnect/:guid", "disconnectDevice", None, None, None, true),
    route(Method::GET, "/api/v1/ciracert", "getCiraCert", None, None, None, false),
    route(Method::GET, "/api/v1/amt/log/audit/:guid", "AMT_AuditLog", Some("Audit Log Requested"), None, ISE, true),
    route(Method::GET, "/api/v1/amt/log/event/:guid", "AMT_EventLog", Some("Event Log received"), Some("Event Log request failed"), ISE, true),
    route(Method::GET, "/api/v1/amt/generalSettings/:guid", "AMT_GeneralSettings", Some("General Settings received"), Some("AMT General Settings request failed"), ISE, true),
    route(Method::GET, "/api/v1/amt/hardwareInfo/:guid", "AMT_HardwareInfo", Some("Hardware Information received"), Some("AMT Hardware Information request failed"), ISE, true),
    route(Method::POST, "/api/v1/amt/power/action/:guid", "AMT_PowerAction", Some("Power Action requested"), None, ISE, true),
    route(Method::POST, "/api/v1/amt/power/bootOptions/:guid", "AMT_BootSettingData", None, None, ISE, true),
    route(Method::GET, "/api/v1/amt/power/capabilities/:guid", "AMT_BootCapabilities", Some("Power Capabilities received"), None, ISE, true),
    route(Method::GET, "/api/v1/amt/power/state/:guid", "AMT_PowerState", Some("Power State requested"), Some("Power State request failed"), ISE, true),
    route(Method::GET, "/api/v1/amt/features/:guid", "AMT_GetFeatures", Some("AMT Features retrieved"), None, ISE, true),
    route(Method::POST, "/api/v1/amt/features/:guid", "AMT_SetFeatures", Some("AMT Features updated"), None, ISE, true),
    // MPS's only event on this route reuses the power-state text; kept for its subscribers.
    route(Method::GET, "/api/v1/amt/version/:guid", "AMT_Version", Some("Power State requested"), None, None, true),
    route(Method::DELETE, "/api/v1/amt/deactivate/:guid", "AMT_Unprovision", None, None, ISE, true),
    route(Method::GET, "/api/v1/amt/userConsentCode/cancel/:guid", "Cancel_User_Consent_Code", Some("User Consent code cancelled"), Some("User Consent Cancel failed"), ISE, true),
    route(Method::GET, "/api/v1/amt/userConsentCode/:guid", "Request_User_Consent_Code", Some("User Consent code requested"), Some("User Consent Request failed"), ISE, true),
    route(Method::POST, "/api/v1/amt/userConsentCode/:guid", "Send_User_Consent_Code", Some("User Consent code sent"), Some("User Consent Sent failed"), ISE, true),
    route(Method::GET, "/api/v1/amt/alarmOccurrences/:guid", "AMT_AlarmOccurrences", Some("Alarm occurrences received"), Some("Alarm occurrence get request failed"), ISE, true),
    route(Method::POST, "/api/v1/amt/alarmOccurrences/:guid", "AMT_AddAlarm", Some("Alarm occurrences received"), Some("Alarm add request failed"), ISE, true),
    route(Method::DELETE, "/api/v1/amt/alarmOccurrences/:guid", "AMT_AlarmOccurrences", Some("Alarm occurrence deleted"), Some("Alarm occurrence delete request failed"), ISE, true),
    route(Method::GET, "/api/v1/health", "getHealthCheck", None, Some("Health Check Failed"), Some("Health Check Failed"), false),
    route(Method::GET, "/api/v1/version", "getVersion", None, None, None, false),
];

/// Index into [`ROUTES`].
pub(crate) type RouteId = u8;

/// Methods MPS routes use; a route's method is stored as its position here.
const METHODS: [Method; 4] = [Method::GET, Method::POST, Method::PATCH, Method::DELETE];

/// One way to reach a route: its method, and its path without the `/:guid` segment.
#[derive(Debug)]
struct Key {
    method: usize,
    has_guid: bool,
    path: &'static str,
    id: RouteId,
}

/// The routes by the length of their key path, so that a lookup compares one or two strings.
static INDEX: LazyLock<Vec<Vec<Key>>> = LazyLock::new(|| {
    let mut index: Vec<Vec<Key>> = Vec::new();
    for (id, route) in ROUTES.iter().enumerate() {
        let method = METHODS
            .iter()
            .position(|m| *m == route.method)
            .expect("an MPS method");
        let (path, has_guid) = match route.template.strip_suffix("/:guid") {
            Some(prefix) => (prefix, true),
            None => (route.template, false),
        };
        if index.len() <= path.len() {
            index.resize_with(path.len() + 1, Vec::new);
        }
        let id = RouteId::try_from(id).expect("fewer than 256 routes");
        index[path.len()].push(Key {
            method,
            has_guid,
            path,
            id,
        });
    }
    index
});

fn find(method: usize, path: &str, has_guid: bool) -> Option<RouteId> {
    INDEX
        .get(path.len())?
        .iter()
        .find(|k| k.method == method && k.has_guid == has_guid && k.path == path)
        .map(|k| k.id)
}

/// A device GUID candidate: the last path segment of a route with a guid, when it has the
/// length of a UUID. It is checked off the request path, by [`Guid::as_str`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Guid([u8; 36]);

impl Guid {
    /// Keeps `segment` if it is 36 bytes long.
    pub(crate) fn new(segment: &str) -> Option<Self> {
        segment.as_bytes().try_into().ok().map(Self)
    }

    /// The GUID as sent, if it has the UUID layout MPS's validator accepts (hex digits, dashes
    /// at 8, 13, 18 and 23, any case); anything else is never put in an event.
    pub(crate) fn as_str(&self) -> Option<&str> {
        let valid = self.0.iter().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => *b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
        if valid {
            std::str::from_utf8(&self.0).ok()
        } else {
            None
        }
    }
}

impl std::fmt::Debug for Guid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str().unwrap_or("<not a guid>"))
    }
}

/// The MPS route of a request and, for a route with a guid, the last path segment as a
/// candidate. Cheap enough for the request path: a few string comparisons, no allocation.
pub(crate) fn recognize(method: &Method, path: &str) -> (Option<RouteId>, Option<Guid>) {
    let Some(method) = METHODS.iter().position(|m| m == method) else {
        return (None, None);
    };
    if let Some(id) = find(method, path, false) {
        return (Some(id), None);
    }
    match path.rsplit_once('/') {
        Some((prefix, last)) if !last.is_empty() => match find(method, prefix, true) {
            Some(id) => (Some(id), Guid::new(last)),
            None => (None, None),
        },
        _ => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUID: &str = "4c4c4544-004b-4210-8033-b6c04f504633";

    fn route_of(method: Method, path: &str) -> Option<&'static Route> {
        recognize(&method, path)
            .0
            .map(|id| &ROUTES[usize::from(id)])
    }

    #[test]
    fn every_route_in_the_table_is_recognized_as_itself() {
        for (id, route) in ROUTES.iter().enumerate() {
            let path = route.template.replace(":guid", GUID);
            let (found, guid) = recognize(&route.method, &path);
            assert_eq!(
                found,
                Some(id as RouteId),
                "{} {}",
                route.method,
                route.template
            );
            assert_eq!(
                guid.and_then(|g| g.as_str().map(str::to_owned)),
                route.has_guid().then(|| GUID.to_owned())
            );
        }
    }

    #[test]
    fn the_table_matches_the_mps_reference() {
        let tsv = include_str!("../tests/data/mps-routes.tsv");
        let rows: Vec<(&str, &str)> = tsv
            .lines()
            .skip(1)
            .filter_map(|l| {
                let mut cols = l.split('\t');
                Some((cols.next()?, cols.next()?))
            })
            .collect();
        assert_eq!(rows.len(), ROUTES.len());
        for (method, path) in rows {
            assert!(
                ROUTES
                    .iter()
                    .any(|r| r.method.as_str() == method && r.template == path),
                "{method} {path} missing"
            );
        }
    }

    #[test]
    fn static_segments_win_over_the_guid() {
        assert_eq!(
            route_of(Method::GET, "/api/v1/devices/stats").map(|r| r.operation),
            Some("getDeviceStats")
        );
        assert_eq!(
            route_of(Method::GET, &format!("/api/v1/devices/{GUID}")).map(|r| r.operation),
            Some("getDevice")
        );
        assert_eq!(
            route_of(
                Method::GET,
                &format!("/api/v1/amt/userConsentCode/cancel/{GUID}")
            )
            .map(|r| r.operation),
            Some("Cancel_User_Consent_Code")
        );
    }

    #[test]
    fn unknown_paths_and_methods_have_no_route() {
        let cases = [
            (Method::GET, "/"),
            (Method::GET, "/api/v1/nope"),
            (Method::PUT, "/api/v1/devices"),
            (Method::GET, "/api/v1/amt/power/action/x"),
            (Method::GET, "/api/v1/devices/stats/extra"),
        ];
        for (method, path) in cases {
            assert!(route_of(method.clone(), path).is_none(), "{method} {path}");
        }
    }

    #[test]
    fn guid_is_kept_only_in_uuid_form() {
        let kept = |s: &str| Guid::new(s).and_then(|g| g.as_str().map(str::to_owned));
        assert_eq!(kept(GUID), Some(GUID.to_owned()));
        let upper = GUID.to_uppercase();
        assert_eq!(kept(&upper), Some(upper), "case kept as sent");
        for bad in [
            "",
            "x",
            &GUID[1..],
            &format!("{GUID}0"),
            "4c4c4544-004b-4210-8033_b6c04f504633",
            "4c4c4544-004b-4210-8033-b6c04f50463g",
            "4c4c4544-004b-4210-8033-b6c04f50463\u{e9}",
        ] {
            assert_eq!(kept(bad), None, "{bad}");
        }
        let (route, guid) = recognize(&Method::GET, "/api/v1/devices/not-a-guid");
        assert_eq!(
            route.map(|id| ROUTES[usize::from(id)].operation),
            Some("getDevice")
        );
        assert_eq!(guid, None);
        let (route, _) = recognize(&Method::GET, "/api/v1/devices/");
        assert_eq!(route, None, "an empty guid segment is no route");
    }
}
