//! Known-answer vectors from `tests/data/`: the decision table and the parser.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests: a panic is a failed test.

use grant_policy::{Access, Decision, DenyReason, Level, Operation, Role};

const NOW: i64 = 1_795_305_600;

fn lines(text: &str) -> impl Iterator<Item = &str> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
}

fn level(s: &str) -> Option<Level> {
    match s {
        "-" => None,
        s => Some(s.parse().unwrap()),
    }
}

fn decide(row: &str) -> (Decision, String) {
    let f: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(f.len(), 7, "malformed row: {row}");
    let capability = level(f[3]).unwrap();
    let expires_at = if f[2] == "expired" {
        Some(NOW)
    } else {
        Some(NOW + 1)
    };
    let access = match f[0] {
        "none" => None,
        "owner" => Some(Access {
            capability,
            role: Role::Owner,
        }),
        "grantee" => Some(Access {
            capability,
            role: Role::Grantee {
                level: level(f[1]).unwrap(),
                expires_at,
            },
        }),
        other => panic!("unknown role {other}"),
    };
    let op: Operation = f[4].parse().unwrap();
    let got = Decision::evaluate(op.required_with(level(f[5])), access.as_ref(), NOW);
    (got, f[6].to_string())
}

fn render(d: Decision) -> String {
    match d {
        Decision::Allow { effective } => format!("allow:{effective}"),
        Decision::Deny { reason } => {
            let code = reason.code().strip_prefix("grant.deny.").unwrap();
            format!("deny:{code}")
        }
    }
}

#[test]
fn decisions_pass() {
    let mut n = 0;
    for row in lines(include_str!("data/decisions_pass.txt")) {
        let (got, want) = decide(row);
        assert!(got.is_allowed(), "{row}");
        assert_eq!(render(got), want, "{row}");
        n += 1;
    }
    assert_eq!(n, 108);
}

#[test]
fn decisions_fail() {
    let mut n = 0;
    for row in lines(include_str!("data/decisions_fail.txt")) {
        let (got, want) = decide(row);
        assert!(!got.is_allowed(), "{row}");
        assert_eq!(render(got), want, "{row}");
        let status = got.status().as_u16();
        match got.reason().unwrap() {
            DenyReason::NotVisible | DenyReason::ShareExpired => assert_eq!(status, 404),
            _ => assert_eq!(status, 403),
        }
        n += 1;
    }
    assert_eq!(n, 324);
}

fn unescape(s: &str) -> String {
    if s == "<empty>" {
        return String::new();
    }
    s.replace("\\s", " ")
        .replace("\\n", "\n")
        .replace("\\u0000", "\0")
}

fn parse(field: &str, value: &str) -> Result<(), &'static str> {
    match field {
        "operation" => value
            .parse::<Operation>()
            .map(|op| assert_eq!(op.as_str(), value))
            .map_err(|e| e.field()),
        "level" => value
            .parse::<Level>()
            .map(|l| assert_eq!(l.as_str(), value))
            .map_err(|e| e.field()),
        other => panic!("unknown field {other}"),
    }
}

#[test]
fn parse_pass() {
    let rows: Vec<&str> = lines(include_str!("data/parse_pass.txt")).collect();
    assert_eq!(rows.len(), 14);
    for row in rows {
        let (field, value) = row.split_once(' ').unwrap();
        assert_eq!(parse(field, value), Ok(()), "{row}");
    }
}

#[test]
fn parse_fail() {
    let rows: Vec<&str> = lines(include_str!("data/parse_fail.txt")).collect();
    assert!(rows.len() >= 20);
    for row in rows {
        let (field, value) = row.split_once(' ').unwrap();
        assert_eq!(
            parse(field, &unescape(value)),
            Err(if field == "operation" {
                "operation"
            } else {
                "level"
            }),
            "{row}"
        );
    }
}
