//! MPS's REST routes and what MPS says about each: the `methods` name and the messages of its
//! events (MPS 2.13.22; the same facts as `tests/data/mps-routes.tsv`), as pure functions.

use std::sync::LazyLock;

use http::Method;

mod route;
mod table;

pub(crate) use route::{INTERNAL_ERROR, Route};
pub(crate) use table::ROUTES;

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
pub(crate) struct Guid([u8; GUID_LEN]);

/// Bytes of a GUID in UUID form.
const GUID_LEN: usize = 36;

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
    match last_segment(path) {
        Some((prefix, last)) if !last.is_empty() => match find(method, prefix, true) {
            Some(id) => (Some(id), Guid::new(last)),
            None => (None, None),
        },
        _ => (None, None),
    }
}

/// The path before its last `/`, and the segment after it. A segment of a GUID's length is
/// checked for a `/` in words rather than searched for from the end byte by byte (the
/// search took more instructions than the rest of the request path's route matching).
fn last_segment(path: &str) -> Option<(&str, &str)> {
    let bytes = path.as_bytes();
    if let Some(slash) = bytes.len().checked_sub(GUID_LEN + 1)
        && bytes[slash] == b'/'
        && !has_slash(&bytes[slash + 1..])
    {
        // `slash` is at an ASCII byte, so both halves are whole UTF-8.
        return Some((path.get(..slash)?, path.get(slash + 1..)?));
    }
    path.rsplit_once('/')
}

/// Whether `bytes` holds a `/`, eight bytes at a time (SWAR zero-byte test).
fn has_slash(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    const SLASHES: u64 = u64::from_ne_bytes([b'/'; 8]);
    let mut words = bytes.chunks_exact(8);
    let found = words.by_ref().any(|word| {
        let x = u64::from_ne_bytes(word.try_into().unwrap_or_default()) ^ SLASHES;
        x.wrapping_sub(ONES) & !x & HIGHS != 0
    });
    found || words.remainder().contains(&b'/')
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
    fn the_last_segment_is_the_one_after_the_last_slash() {
        let guid_long = format!("/api/v1/devices/{GUID}");
        assert_eq!(last_segment(&guid_long), Some(("/api/v1/devices", GUID)));
        // 36 bytes after a slash that hold another slash: the later one counts.
        let tricky = format!("/api/v1/devices/{}/{}", &GUID[..20], &GUID[..15]);
        assert_eq!(tricky.len() - tricky.rfind('/').expect("a slash") - 1, 15);
        assert_eq!(last_segment(&tricky), tricky.rsplit_once('/'));
        assert!(route_of(Method::GET, &tricky).is_none());
        for path in ["", "/", "a", "/api/v1/devices/x", "/api/v1/devices/"] {
            assert_eq!(last_segment(path), path.rsplit_once('/'), "{path:?}");
        }
        for n in 0..40 {
            for at in 0..=n {
                // A slash at `at` (none when `at == n`), and bytes on either side of '/'.
                let bytes: Vec<u8> = (0..n)
                    .map(|i| if i == at { b'/' } else { [b'.', b'0'][i % 2] })
                    .collect();
                assert_eq!(has_slash(&bytes), at < n, "{n} {at}");
            }
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
