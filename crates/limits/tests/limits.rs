//! The caps count what they should, say no past the cap, and forget what has passed.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use sluice_core::{Principal, PrincipalKind};
use sluice_limits::{LimitExceeded, LimitSettings, Limits};

fn principal(subject: &str) -> Principal {
    Principal {
        provider: "local".into(),
        subject: subject.into(),
        tenant_id: None,
        display_name: subject.into(),
        kind: PrincipalKind::App,
        roles: vec![],
        groups: vec![],
        token_id: None,
        expires_at: None,
    }
}

fn settings() -> LimitSettings {
    LimitSettings {
        sessions_per_principal: 2,
        auth_failures_per_address: 3,
        auth_failure_window: Duration::from_secs(60),
        statements_per_query: 5,
        pending_approvals_per_principal: 1,
    }
}

#[test]
fn sessions_are_counted_per_principal_until_dropped() {
    let limits = Limits::new(settings());
    let agent = principal("agent");
    let first = limits.open_session(&agent).unwrap();
    let _second = limits.open_session(&agent).unwrap();
    assert!(matches!(
        limits.open_session(&agent),
        Err(LimitExceeded::Sessions { open: 2, .. })
    ));
    // Another principal is counted apart.
    let _other = limits.open_session(&principal("other")).unwrap();
    drop(first);
    assert_eq!(limits.open_sessions(&agent), 1);
    let _third = limits.open_session(&agent).unwrap();
}

#[test]
fn failed_authentications_turn_an_address_away_for_the_window() {
    let limits = Limits::new(settings());
    let address: IpAddr = "192.0.2.7".parse().unwrap();
    let other: IpAddr = "192.0.2.8".parse().unwrap();
    let start = Instant::now();
    for i in 0..3 {
        assert!(
            limits.may_authenticate(address, start).is_ok(),
            "attempt {i}"
        );
        limits.authentication_failed(address, start + Duration::from_secs(i));
    }
    let refused = limits.may_authenticate(address, start + Duration::from_secs(10));
    match refused {
        Err(LimitExceeded::AuthFailures { retry_after }) => {
            assert_eq!(retry_after, Duration::from_secs(50))
        }
        other => panic!("{other:?}"),
    }
    assert!(limits.may_authenticate(other, start).is_ok(), "per address");
    // Once the window has passed, the address may try again.
    assert!(limits
        .may_authenticate(address, start + Duration::from_secs(61))
        .is_ok());
    limits.authentication_failed(address, start + Duration::from_secs(61));
    assert!(limits
        .may_authenticate(address, start + Duration::from_secs(62))
        .is_ok());
}

#[test]
fn statements_and_pending_approvals_are_capped() {
    let limits = Limits::new(settings());
    assert!(limits.check_statements(5).is_ok());
    assert_eq!(
        limits.check_statements(6),
        Err(LimitExceeded::Statements { count: 6, max: 5 })
    );
    let agent = principal("agent");
    assert!(limits.check_pending_approvals(&agent, 0).is_ok());
    assert!(limits.check_pending_approvals(&agent, 1).is_err());
}
