//! What a PostgreSQL client sends the gateway, before and after it logs in.
//!
//! The first byte picks the phase; the rest is the client's byte stream:
//! - even: the startup phase, as `login` reads it: `read_startup` (SSLRequest,
//!   GSSENCRequest, CancelRequest, StartupMessage), and after a StartupMessage the tagged
//!   messages that follow;
//! - odd: tagged messages only, as the session relay reads them.
//!
//! Tagged messages are cut into frames by `FrameReader` (with the session's
//! `MAX_FRONTEND_MESSAGE`, lowered to the input's length), decoded by
//! `FrontendMessage::decode`, and a Bind's parameters read as the recording does
//! (`recording::bind_values`).
//!
//! Invariants: nothing panics (malformed input is an `Err`, never a crash); every frame is
//! whole (its length field says its size); and renaming a decoded Parse, Bind, Describe,
//! Close or Execute (`frontend::renamed`, which the session uses to give statements and
//! portals private names on the resource) yields a frame that decodes to the same message
//! with the new names and keeps every byte after the names.
#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use sluice_postgres::login::MAX_FRONTEND_MESSAGE;
use sluice_postgres::protocol::codec::{Frame, FrameReader};
use sluice_postgres::protocol::frontend::{self, FrontendMessage};
use sluice_postgres::protocol::startup::{read_startup, StartupPacket};
use sluice_postgres::recording::bind_values;

/// Runs a future that never waits (it reads from a byte slice) to completion.
fn ready<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("reading from a byte slice never waits"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&phase, mut stream)) = data.split_first() else {
        return;
    };
    if phase % 2 == 0 {
        match ready(read_startup(&mut stream)) {
            Ok(StartupPacket::Startup { params, .. }) => {
                // Keys are NUL-terminated and the list ends at an empty key.
                assert!(params.keys().all(|k| !k.is_empty() && !k.contains('\0')));
            }
            Ok(_) | Err(_) => return,
        }
    }
    messages(stream);
});

fn messages(stream: &[u8]) {
    // A frame longer than the input never completes; with the real limit the reader would
    // reserve room for it (up to 64 MiB), which only slows the fuzzer down.
    let mut reader = FrameReader::with_buffer(
        tokio::io::empty(),
        BytesMut::from(stream),
        MAX_FRONTEND_MESSAGE.min(stream.len()),
    );
    while let Some(Ok(frame)) = reader.try_next() {
        let declared = i32::from_be_bytes(frame.raw[1..5].try_into().unwrap());
        assert_eq!(frame.raw.len(), declared as usize + 1, "a frame is whole");
        assert_eq!(frame.tag, frame.raw[0]);
        let Ok(message) = FrontendMessage::decode(&frame) else {
            continue;
        };
        match message {
            FrontendMessage::Parse { name, sql } => check_renamed(&frame, &[name], |m| match m {
                FrontendMessage::Parse { name, sql: again } => {
                    assert_eq!(again, sql);
                    vec![name.to_string()]
                }
                other => panic!("a renamed Parse decoded as {other:?}"),
            }),
            FrontendMessage::Bind { portal, statement } => {
                let values = bind_values(frame.body());
                check_renamed(&frame, &[portal, statement], |m| match m {
                    FrontendMessage::Bind { portal, statement } => {
                        vec![portal.to_string(), statement.to_string()]
                    }
                    other => panic!("a renamed Bind decoded as {other:?}"),
                });
                // The parameters after the names read the same under the new names.
                let renamed = frontend::renamed(&frame, &["p", "s"]);
                let renamed = Frame {
                    tag: renamed[0],
                    raw: renamed,
                };
                assert_eq!(bind_values(renamed.body()), values);
            }
            FrontendMessage::Describe { kind, name } => {
                check_renamed(&frame, &[name], |m| match m {
                    FrontendMessage::Describe { kind: again, name } => {
                        assert_eq!(again, kind);
                        vec![name.to_string()]
                    }
                    other => panic!("a renamed Describe decoded as {other:?}"),
                })
            }
            FrontendMessage::Close { kind, name } => check_renamed(&frame, &[name], |m| match m {
                FrontendMessage::Close { kind: again, name } => {
                    assert_eq!(again, kind);
                    vec![name.to_string()]
                }
                other => panic!("a renamed Close decoded as {other:?}"),
            }),
            FrontendMessage::Execute { portal } => check_renamed(&frame, &[portal], |m| match m {
                FrontendMessage::Execute { portal } => vec![portal.to_string()],
                other => panic!("a renamed Execute decoded as {other:?}"),
            }),
            _ => {}
        }
    }
}

/// Renames `frame`'s leading names (`old`) and checks that the result decodes with the new
/// names (read back by `names`) and the same bytes after them.
fn check_renamed(frame: &Frame, old: &[&str], names: impl Fn(FrontendMessage<'_>) -> Vec<String>) {
    let new: Vec<String> = (0..old.len()).map(|i| format!("sluice_{i}")).collect();
    let new_refs: Vec<&str> = new.iter().map(String::as_str).collect();
    let raw = frontend::renamed(frame, &new_refs);
    let renamed = Frame { tag: raw[0], raw };
    assert_eq!(renamed.tag, frame.tag);
    let declared = i32::from_be_bytes(renamed.raw[1..5].try_into().unwrap());
    assert_eq!(renamed.raw.len(), declared as usize + 1);
    let message = FrontendMessage::decode(&renamed).expect("a renamed frame decodes");
    assert_eq!(names(message), new);
    // The bytes after the names: the kind byte and the names are all that differ.
    let names_len = |names: &[&str]| names.iter().map(|n| n.len() + 1).sum::<usize>();
    let kind = usize::from(matches!(frame.tag, b'D' | b'C'));
    assert_eq!(
        &frame.body()[kind + names_len(old)..],
        &renamed.body()[kind + names_len(&new_refs)..],
        "renaming keeps what follows the names"
    );
    assert_eq!(&frame.body()[..kind], &renamed.body()[..kind]);
}
