//! The `mps` profile against `tests/data/mps-routes.tsv`: every column of every row, for an
//! HTTP 200, 400, 404 (routes behind the CIRA check) and 500 outcome; and the `all` profile's
//! one event per request for the same rows.

use super::*;
use crate::event::describe as describe_all;
use crate::routes::{self, ROUTES};
use http::Method;

const TSV: &str = include_str!("../../tests/data/mps-routes.tsv");
const README: &str = include_str!("../../README.md");
const GUID: &str = "4c4c4544-004b-4210-8033-b6c04f504633";

/// One event as a subscriber sees it: type, message, methods, whether the guid is there.
type Seen = (Kind, String, String, bool);

/// One row of the TSV, every column.
struct Row<'a> {
    method: &'a str,
    path: &'a str,
    methods: Vec<&'a str>,
    request: Option<&'a str>,
    success: Option<&'a str>,
    fails: Vec<&'a str>,
    guid_from_path: bool,
    notes: &'a str,
}

fn rows() -> Vec<Row<'static>> {
    let mut lines = TSV.lines();
    let header = lines.next().expect("a header");
    assert_eq!(
        header,
        "http_method\tpath\tmethods\trequest_message\tsuccess_message\tfail_message\tguid_from\tnotes"
    );
    let dash = |v: &'static str| (v != "-").then_some(v);
    lines
        .map(|line| {
            let cols: Vec<&str> = line.split('\t').collect();
            assert_eq!(cols.len(), 8, "{line}");
            Row {
                method: cols[0],
                path: cols[1],
                methods: dash(cols[2]).map_or(Vec::new(), |m| m.split(',').collect()),
                request: dash(cols[3]),
                success: dash(cols[4]),
                fails: dash(cols[5]).map_or(Vec::new(), |f| f.split(" | ").collect()),
                guid_from_path: match cols[6] {
                    "path" => true,
                    "none" | "-" => false,
                    other => panic!("guid_from {other:?}"),
                },
                notes: cols[7],
            }
        })
        .collect()
}

/// What MPS publishes for `row` answering `status`, from the TSV's columns and the rules of
/// the reference: a handler that runs publishes its request event first; a 4xx is a soft
/// fail where the row has one (else a silent validation error); a 404 behind the CIRA check
/// is Device Not Found; an exception (500) publishes the row's error text without guid.
fn expected(row: &Row<'_>, status: u16) -> Vec<Seen> {
    let cira = row.notes.contains("ciraMiddleware: if device");
    let outcome_op = row.methods.last().copied().unwrap_or_default().to_owned();
    let request_op = row.methods.first().copied().unwrap_or_default().to_owned();
    let request = |ran: bool| {
        row.request.filter(|_| ran).map(|m| {
            (
                Kind::Request,
                m.to_owned(),
                request_op.clone(),
                row.guid_from_path,
            )
        })
    };
    let exception_only = row.notes.contains("only on exception (HTTP 500)");
    let error = if exception_only {
        row.fails.first().copied()
    } else {
        row.fails.iter().copied().find(|f| *f == INTERNAL_ERROR)
    };
    let soft: Vec<&str> = row
        .fails
        .iter()
        .copied()
        .filter(|f| *f != INTERNAL_ERROR && *f != DEVICE_NOT_FOUND && !exception_only)
        .filter(|f| !f.ends_with("alarm not found"))
        .collect();
    let mut seen = Vec::new();
    match status {
        404 if cira => seen.push((
            Kind::Fail,
            DEVICE_NOT_FOUND.to_owned(),
            "CIRA_Connection".to_owned(),
            true,
        )),
        200 => {
            seen.extend(request(true));
            if let Some(success) = row.success {
                seen.push((
                    Kind::Success,
                    success.to_owned(),
                    outcome_op,
                    row.guid_from_path,
                ));
            }
        }
        400..=499 if !soft.is_empty() => {
            seen.extend(request(true));
            // Which of the route's 4xx texts: ours must be one of them.
            seen.push((Kind::Fail, soft.join(" | "), outcome_op, row.guid_from_path));
        }
        500 => {
            seen.extend(request(true));
            if let Some(error) = error {
                seen.push((Kind::Fail, error.to_owned(), outcome_op, false));
            }
        }
        _ => {}
    }
    seen
}

/// What the `mps` profile publishes for a request to `path` answering `status`.
fn published(method: &str, path: &str, status: u16) -> Vec<Seen> {
    let method = Method::from_bytes(method.as_bytes()).expect("a method");
    let (id, guid) = routes::recognize(&method, &path.replace(":guid", GUID));
    let route = id.map(|id| &ROUTES[usize::from(id)]);
    let route_ref = route.expect("every TSV route is recognized");
    let outcome = Outcome::Status(status);
    let plan = plan(route, outcome);
    let mut seen = Vec::new();
    let mut event = |outcome| {
        let said = describe(route_ref, outcome);
        let has_guid = said.guid && route_ref.has_guid() && guid.is_some();
        seen.push((
            said.kind,
            said.message.to_owned(),
            said.operation.to_owned(),
            has_guid,
        ));
    };
    if plan.request {
        event(Outcome::Started);
    }
    if plan.outcome {
        event(outcome);
    }
    seen
}

#[test]
fn the_mps_profile_publishes_what_mps_publishes_for_every_route_and_outcome() {
    let rows = rows();
    assert_eq!(rows.len(), ROUTES.len(), "one row per route");
    let mut checked = 0;
    for row in &rows {
        let cira = row.notes.contains("ciraMiddleware: if device");
        let method = Method::from_bytes(row.method.as_bytes()).expect("a method");
        let (id, _) = routes::recognize(&method, &row.path.replace(":guid", GUID));
        let route = &ROUTES[usize::from(id.expect("every TSV route is recognized"))];
        assert_eq!(
            route.cira, cira,
            "{} {}: behind the CIRA check",
            row.method, row.path
        );
        let statuses: &[u16] = if cira {
            &[200, 400, 404, 500]
        } else {
            &[200, 400, 500]
        };
        for &status in statuses {
            let want = expected(row, status);
            let got = published(row.method, row.path, status);
            let case = format!("{} {} {status}", row.method, row.path);
            assert_eq!(got.len(), want.len(), "{case}: {got:?} vs {want:?}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!((g.0, &g.2, g.3), (w.0, &w.2, w.3), "{case}");
                // A 4xx may name any of the route's 4xx texts.
                assert!(
                    w.1.split(" | ").any(|m| m == g.1),
                    "{case}: {:?} not in {:?}",
                    g.1,
                    w.1
                );
            }
            checked += 1;
        }
    }
    // 33 routes: 200, 400 and 500 each, plus 404 for the 20 behind the CIRA check.
    assert_eq!(checked, 33 * 3 + 20);
}

#[test]
fn the_all_profile_publishes_one_event_for_every_route_and_outcome() {
    for row in rows() {
        let method = Method::from_bytes(row.method.as_bytes()).expect("a method");
        let (id, _) = routes::recognize(&method, &row.path.replace(":guid", GUID));
        let route = id.map(|id| &ROUTES[usize::from(id)]);
        for (status, kind) in [
            (200, crate::event::EventType::Success),
            (400, crate::event::EventType::Fail),
            (500, crate::event::EventType::Fail),
        ] {
            let (got, message, _) = describe_all(route, Outcome::Status(status));
            assert_eq!(got, kind, "{} {} {status}", row.method, row.path);
            assert!(!message.is_empty());
        }
    }
}

#[test]
fn outside_mps_routes_and_for_cancelled_requests_nothing_is_published() {
    assert_eq!(plan(None, Outcome::Status(200)), Plan::default());
    for route in &ROUTES {
        assert_eq!(plan(Some(route), Outcome::Cancelled), Plan::default());
        assert_eq!(plan(Some(route), Outcome::Status(503)), Plan::default());
    }
}

#[test]
fn the_readme_lists_every_difference_from_mps() {
    let section = README
        .split("## Compatibility with MPS")
        .nth(1)
        .expect("a README section 'Compatibility with MPS'");
    for difference in DIFFERENCES {
        assert!(
            section.contains(&format!("- {difference}")),
            "README's Compatibility with MPS misses: {difference}"
        );
    }
    let listed = section
        .split("### Differences from MPS")
        .nth(1)
        .expect("a 'Differences from MPS' list")
        .split("\n## ")
        .next()
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("- "))
        .count();
    assert_eq!(
        listed,
        DIFFERENCES.len(),
        "the README lists no other difference"
    );
}
