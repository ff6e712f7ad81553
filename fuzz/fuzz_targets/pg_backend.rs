//! What the resource (upstream PostgreSQL) sends back through the gateway, decoded as the
//! session's server half decodes it.
//!
//! Input: one byte with the number of requests the client has in flight (low 3 bits), one
//! byte per request (which kind), one byte choosing the session's detector-mask strategy,
//! then the resource's byte stream. The stream is cut into frames by `FrameReader` (with
//! `MAX_BACKEND_MESSAGE`, lowered to the input's length), alternating `take_run` (the
//! relay's fast path for rows) and `try_next`; each frame goes to
//! `ResponseTracker::on_response`, and by tag to `error_fields` (ErrorResponse,
//! NoticeResponse), `ResultMask::build` (RowDescription), `ResultMask::rewrite`
//! (DataRow), the COPY row codec `copy_rows::{split_row, decode}` (CopyData) and the
//! SCRAM client (AuthenticationSASLContinue).
//!
//! The session masks with every detector (a policy's `mask: [{detect: [...]}]`), so the
//! RowDescription and DataRow paths run for real; column masks need the catalog (a live
//! resource) and are not reached here.
//!
//! Invariants:
//! - nothing panics: malformed input is an error;
//! - `take_run` returns whole frames of the tags asked for only;
//! - a rewritten DataRow is well formed (its length field, the same number of values);
//! - masking never lets a detected value through: a non-NULL value of a scanned column
//!   that leaves unchanged has nothing a detector finds in it;
//! - a COPY field's value survives `encode` then `decode` unchanged.
#![no_main]

use std::borrow::Cow;
use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::sync::{Arc, LazyLock};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice_core::{Principal, PrincipalKind};
use sluice_mask::{DetectorSet, MaskStrategy, Masker};
use sluice_policy::PolicySet;
use sluice_postgres::catalog::Catalog;
use sluice_postgres::copy_rows::{self, CopyFormat, RawField};
use sluice_postgres::masking::{ResultMask, SessionMasks};
use sluice_postgres::protocol::backend::error_fields;
use sluice_postgres::protocol::codec::{BodyReader, Frame, FrameReader};
use sluice_postgres::responses::{Request, ResponseTracker};
use sluice_postgres::scram::ScramClient;
use sluice_postgres::upstream::{UpstreamTarget, MAX_BACKEND_MESSAGE};
use sluice_postgres::PgConnection;
use sluice_sql::SearchPath;

const STRATEGIES: [(&str, MaskStrategy); 5] = [
    ("redact", MaskStrategy::Redact),
    ("last4", MaskStrategy::Last4),
    ("email", MaskStrategy::Email),
    ("hash", MaskStrategy::Hash),
    ("null", MaskStrategy::Null),
];

/// Text types (their values are scanned in both formats) and the types detectors skip, as
/// `masking.rs` lists them.
const TEXT_TYPES: &[u32] = &[25, 1043, 1042, 19, 705];
const UNSCANNED_TYPES: &[u32] = &[16, 21, 23, 26, 700, 1082, 1083, 1114, 1184, 2950];

struct Setup {
    /// One session's masks per strategy, in `STRATEGIES` order.
    masks: Vec<Arc<SessionMasks>>,
    catalog: Catalog,
}

static SETUP: LazyLock<Setup> = LazyLock::new(|| {
    let masks = STRATEGIES
        .iter()
        .map(|(with, _)| {
            let config = format!(
                r#"
listen: {{ admin: 127.0.0.1:8470 }}
identity:
  providers:
    - {{ name: local, local: {{}} }}
connections:
  - {{ name: app, kind: postgres, upstream: "postgres://svc@127.0.0.1/app" }}
policies:
  - name: readers
    match: {{ roles: [reader] }}
    connections: [app]
    allow:
      - {{ actions: [select], tables: ["public.*"] }}
    mask:
      - {{ detect: [private_key, jwt, cloud_access_key, email, credit_card, iban, us_ssn, phone], with: {with} }}
"#
            );
            let config = sluice_config::load_str(&config, Path::new("fuzz.yaml"))
                .expect("the fuzz config is valid");
            let principal = Principal {
                provider: "local".into(),
                subject: "agent".into(),
                tenant_id: None,
                display_name: "agent".into(),
                kind: PrincipalKind::App,
                roles: vec!["reader".into()],
                groups: Vec::new(),
                token_id: None,
                expires_at: None,
            };
            let policy = PolicySet::compile(&config)
                .expect("compiles")
                .for_session(&principal, "app");
            SessionMasks::new(&policy, HASH_KEY).expect("the session masks")
        })
        .collect();
    // Never dialled: with detector masks only, building a result's mask asks the catalog
    // nothing.
    let connection = Arc::new(PgConnection {
        name: "app".into(),
        target: UpstreamTarget::parse("postgres://svc@127.0.0.1:9/app", None).expect("url"),
        password: None,
        search_path: SearchPath::default(),
        search_path_has_user: false,
    });
    Setup {
        masks,
        catalog: Catalog::new(connection, Duration::from_millis(1)),
    }
});

static DETECTORS: LazyLock<DetectorSet> = LazyLock::new(DetectorSet::all);
static MASKER: LazyLock<Masker> = LazyLock::new(|| Masker::new(HASH_KEY));
const HASH_KEY: &[u8] = b"fuzz hash key";

/// Runs a future that must not wait: it would only wait on the catalog, never asked here.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("a detector-only result mask asked the catalog"),
    }
}

fn request(kind: u8) -> Request {
    match kind % 11 {
        0 => Request::Query {
            copies: Default::default(),
            record: None,
        },
        1 => Request::Parse,
        2 => Request::Bind {
            portal: String::new(),
            statement: String::new(),
            formats: vec![],
        },
        3 => Request::DescribeStatement {
            statement: String::new(),
        },
        4 => Request::DescribePortal {
            portal: String::new(),
        },
        5 => Request::GatewayDescribe {
            portal: String::new(),
        },
        6 => Request::Execute {
            portal: String::new(),
            copy: None,
            record: None,
        },
        7 => Request::Close,
        8 | 9 => Request::Sync,
        _ => Request::CopyEnd,
    }
}

/// One column of a RowDescription as the harness reads it: type and format.
struct Column {
    type_oid: u32,
    binary: bool,
}

fn row_description(body: &[u8]) -> Option<Vec<Column>> {
    let mut r = BodyReader::new(body);
    let count = r.i16("T").ok()?;
    (0..count)
        .map(|_| {
            r.cstr("T").ok()?;
            r.bytes(6, "T").ok()?;
            let type_oid = r.i32("T").ok()? as u32;
            r.bytes(6, "T").ok()?;
            let binary = r.i16("T").ok()? == 1;
            Some(Column { type_oid, binary })
        })
        .collect()
}

/// A DataRow's values (`None` = NULL), or `None` if it is malformed.
fn data_row(raw: &[u8]) -> Option<Vec<Option<&[u8]>>> {
    let mut r = BodyReader::new(raw.get(5..)?);
    let count = r.i16("D").ok()?;
    (0..count)
        .map(|_| {
            let len = r.i32("D").ok()?;
            if len < 0 {
                return Some(None);
            }
            r.bytes(len as usize, "D").ok().map(Some)
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&pending, rest)) = data.split_first() else {
        return;
    };
    let pending = usize::from(pending & 7);
    if rest.len() < pending + 1 {
        return;
    }
    let (requests, rest) = rest.split_at(pending);
    let (&strategy, stream) = rest.split_first().expect("checked");

    let setup = &*SETUP;
    let (masks, strategy) = {
        let i = usize::from(strategy) % STRATEGIES.len();
        (&setup.masks[i], STRATEGIES[i].1)
    };
    let mut tracker = ResponseTracker::default();
    for &kind in requests {
        tracker.push(request(kind));
    }
    // A frame longer than the input never completes; with the real limit the reader would
    // reserve room for it (up to 1 GiB), which only slows the fuzzer down.
    let mut reader = FrameReader::with_buffer(
        tokio::io::empty(),
        BytesMut::from(stream),
        MAX_BACKEND_MESSAGE.min(stream.len()),
    );
    let mut result: Option<(ResultMask, Vec<Column>)> = None;
    let mut round = 0u32;
    loop {
        round += 1;
        // The relay forwards runs of rows in one block when it need not look at them.
        if round.is_multiple_of(2) {
            let plain = |tag: u8| matches!(tag, b'D' | b'd' | b'N');
            if let Some(block) = reader.take_run(plain) {
                let mut at = 0;
                while at < block.len() {
                    assert!(block.len() >= at + 5, "a run holds whole frames");
                    assert!(plain(block[at]), "a run holds only the tags asked for");
                    let len = i32::from_be_bytes(block[at + 1..at + 5].try_into().unwrap());
                    assert!(len >= 4);
                    at += len as usize + 1;
                }
                assert_eq!(at, block.len(), "a run ends at a frame's end");
                continue;
            }
        }
        let frame = match reader.try_next() {
            Some(Ok(frame)) => frame,
            Some(Err(_)) | None => break,
        };
        let _ = tracker.on_response(frame.tag);
        let _ = tracker.take_copy();
        handle(&frame, masks, strategy, &setup.catalog, &mut result);
    }
});

fn handle(
    frame: &Frame,
    masks: &Arc<SessionMasks>,
    strategy: MaskStrategy,
    catalog: &Catalog,
    result: &mut Option<(ResultMask, Vec<Column>)>,
) {
    let body = frame.body();
    match frame.tag {
        b'E' | b'N' => {
            let _ = error_fields(body);
        }
        b'T' => {
            *result = match ready(ResultMask::build(body, masks, catalog)) {
                Ok(Some(mask)) => {
                    // What build accepted the harness reads too (it may ignore a tail).
                    let columns = row_description(body).expect("a RowDescription build took");
                    Some((mask, columns))
                }
                Ok(None) => panic!("with detector masks every result is masked"),
                Err(_) => None,
            };
        }
        b'D' => {
            let Some((mask, columns)) = result else {
                return;
            };
            let Ok(rewritten) = mask.rewrite(&frame.raw) else {
                return;
            };
            let before = data_row(&frame.raw).expect("a DataRow rewrite took");
            let after = match &rewritten {
                Some(raw) => {
                    assert_eq!(raw[0], b'D');
                    let len = i32::from_be_bytes(raw[1..5].try_into().unwrap());
                    assert_eq!(raw.len(), len as usize + 1, "a rewritten DataRow is whole");
                    data_row(raw).expect("a rewritten DataRow is well formed")
                }
                None => before.clone(),
            };
            assert_eq!(before.len(), columns.len());
            assert_eq!(after.len(), columns.len());
            for ((old, new), column) in before.iter().zip(&after).zip(columns.iter()) {
                // Detectors skip the unscanned types and binary values of non-text types.
                let scanned = !UNSCANNED_TYPES.contains(&column.type_oid)
                    && (!column.binary || TEXT_TYPES.contains(&column.type_oid));
                if let (Some(old), Some(new)) = (old, new) {
                    if scanned && old == new {
                        // A value that cannot be decoded passes only if no detector could
                        // find anything in its bytes; otherwise it becomes NULL.
                        let Ok(text) = std::str::from_utf8(old) else {
                            assert!(
                                !DETECTORS.may_find_in(old),
                                "an undecodable value that may hold a finding passed"
                            );
                            continue;
                        };
                        // Unchanged only where masking changes nothing: nothing found, or
                        // (`email`) a value already masked (`j***@example.com`).
                        let masked = DETECTORS.mask_text(&MASKER, strategy, text);
                        assert_eq!(
                            masked.as_deref(),
                            Some(text),
                            "a detected value left unmasked"
                        );
                    }
                }
            }
        }
        b'd' => {
            for format in [CopyFormat::Text, CopyFormat::Csv] {
                let Ok(fields) = copy_rows::split_row(format, body) else {
                    continue;
                };
                for field in &fields {
                    let Ok(value) = copy_rows::decode(format, *field) else {
                        continue;
                    };
                    let mut encoded = Vec::new();
                    copy_rows::encode(format, value.as_deref(), &mut encoded);
                    let again = copy_rows::decode(format, RawField(&encoded))
                        .expect("an encoded field decodes");
                    assert_eq!(again.as_deref(), value.as_deref(), "COPY field round trip");
                }
                check_copy_rewrite(format, body, &fields);
            }
        }
        b'R' => {
            let mut r = BodyReader::new(body);
            if r.i32("R").ok() == Some(11) {
                let mut client = ScramClient::new(b"password");
                let _ = client.client_final(r.rest());
            }
        }
        _ => {}
    }
}

/// What `CopyMask::rewrite` does to a row: each field it masks is encoded anew and joined
/// with the others as they came. Whatever the new value holds (here the whole row, with
/// its separators, quotes and newline), the row must still split into the same fields,
/// the untouched ones byte for byte and the new one decoding to the value.
fn check_copy_rewrite(format: CopyFormat, row: &[u8], fields: &[RawField<'_>]) {
    for masked in 0..fields.len().min(4) {
        let mut encoded = Vec::new();
        copy_rows::encode(format, Some(row), &mut encoded);
        let joined: Vec<Cow<'_, [u8]>> = fields
            .iter()
            .enumerate()
            .map(|(i, field)| {
                if i == masked {
                    Cow::Borrowed(&encoded[..])
                } else {
                    Cow::Borrowed(field.0)
                }
            })
            .collect();
        let rewritten = copy_rows::join_row(format, &joined);
        let again = copy_rows::split_row(format, &rewritten).expect("a rewritten row splits");
        assert_eq!(
            again.len(),
            fields.len(),
            "a rewritten row keeps its fields"
        );
        for (i, (field, before)) in again.iter().zip(fields).enumerate() {
            if i == masked {
                let value = copy_rows::decode(format, *field).expect("a new field decodes");
                assert_eq!(value.as_deref(), Some(row), "a new field holds its value");
            } else {
                assert_eq!(field, before, "an untouched field is kept");
            }
        }
    }
}
