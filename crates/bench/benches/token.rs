//! Validation of a local-issuer ES256 token: cold (signature verified) and cached.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use sluice_core::Principal;
use sluice_identity::{AuthOptions, Authenticator, LocalIssuer, ProviderSettings, TokenRequest};

/// Runs `authenticate` to completion. With the local provider its keys are in memory, so
/// the future never waits; polling it once keeps an executor's overhead out of the figure.
fn validate(auth: &Authenticator, token: &str) -> Principal {
    let mut future = pin!(auth.authenticate(token));
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(result) => result.expect("the token validates"),
        Poll::Pending => panic!("local token validation waited; the bench needs an executor"),
    }
}

fn authenticator(issuer: &LocalIssuer, options: AuthOptions) -> Authenticator {
    let local = ProviderSettings::local("local", issuer.clone());
    Authenticator::with_options(vec![local], None, options).expect("the authenticator builds")
}

fn tokens(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let issuer = LocalIssuer::load_or_create(dir.path()).expect("the local issuer");
    let request = TokenRequest {
        subject: "agent-1".into(),
        roles: vec!["reader".into()],
        groups: vec!["order-team".into()],
        ttl: Duration::from_secs(3600),
        audience: String::new(),
        name: Some("Agent One".into()),
    };
    let issue = || issuer.issue(&request).expect("the issuer signs");

    let mut group = c.benchmark_group("token");
    group.measurement_time(Duration::from_secs(8));

    // Cold: distinct tokens issued outside the timed loop, each validated once by one
    // authenticator with the default options. Every validation misses the token cache, so
    // this is hash, cache lookup, parse, ES256 signature check, claims, principal and
    // cache insert.
    group.bench_function("cold/distinct_tokens", |b| {
        let auth = authenticator(&issuer, AuthOptions::default());
        b.iter_custom(|iters| {
            let fresh: Vec<String> = (0..iters).map(|_| issue()).collect();
            let start = Instant::now();
            for token in &fresh {
                black_box(validate(&auth, token));
            }
            start.elapsed()
        })
    });

    // Cross-check of the cold path: the token cache disabled, one token validated again
    // and again, so every call verifies the signature (no cache insert).
    group.bench_function("cold/cache_disabled", |b| {
        let options = AuthOptions {
            token_cache_ttl: Duration::ZERO,
            ..AuthOptions::default()
        };
        let auth = authenticator(&issuer, options);
        let token = issue();
        b.iter(|| validate(&auth, black_box(&token)))
    });

    // Cached: the same token again, as a client reconnecting or an HTTP agent sending its
    // bearer token with every request: hash and cache lookup.
    group.bench_function("cached/same_token", |b| {
        let auth = authenticator(&issuer, AuthOptions::default());
        let token = issue();
        validate(&auth, &token);
        b.iter(|| validate(&auth, black_box(&token)))
    });

    group.finish();
}

criterion_group!(benches, tokens);
criterion_main!(benches);
