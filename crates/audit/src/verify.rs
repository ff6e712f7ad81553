//! Checking a recorded trail: every chain link, every signed head, every signature, and
//! naming the first place it does not hold.
//!
//! [`verify_session`] checks one session's events in the order given (as a store lists
//! them, by `seq`): for each event, in this order, that its contents still hash to its
//! `hash` (else it was **changed**), that it belongs to the session, that its `seq` is its
//! position (else events were **removed**, or stand **out of order**), and that its
//! `prev_hash` is the hash of the event before it (else one was removed or replaced). An
//! event that fails its hash but would pass under the `seq` of another event of the
//! session was **reordered** (renumbered) rather than edited, and is named so. The first
//! failure is reported as a [`BrokenLink`] at the `seq` where the chain first goes wrong.
//!
//! [`verify_against_checkpoints`] then holds the chains to what the gateway signed.
//! Every checkpoint's signature must verify; every signed head must still be there with
//! the same hash (a cut-off tail, or a chain rewritten from some event on, shows here); a
//! session whose signed heads are all gone is accepted only under the purge rule.
//!
//! **The purge rule.** Retention removes whole sessions whose last event is before a
//! cut-off, and records a [`Purged`](crate::Purged) event with that cut-off as `before`,
//! as a session of its own. A purge record is trusted once a valid checkpoint signs its
//! session's head (at or after the record), so the writer checkpoints right after writing
//! one, and purge records are never purged themselves. A session with signed heads but no
//! events left passes if a trusted purge record has `before` later than the `at` of the
//! session's latest signed head: the signed part of that session was old enough for that
//! purge to remove. Anything else gone is reported as missing. (Events after a session's
//! latest signed head are covered by nothing but the chain; that is the window between
//! checkpoints, and [`Verified::unsigned_events`] counts it.)

use std::collections::HashMap;

use crate::{
    event_hash, Checkpoint, CheckpointError, Event, EventBody, PublicKey, Timestamp,
    GENESIS_PREV_HASH,
};

/// The first place a session's chain does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("session {session_id}, seq {seq}: {problem}")]
pub struct BrokenLink {
    pub session_id: String,
    /// The position in the chain where it breaks: the `seq` the event found there should
    /// have had.
    pub seq: u64,
    pub problem: LinkProblem,
}

/// What is wrong at a [`BrokenLink`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkProblem {
    #[error(
        "changed after it was recorded: it carries hash {stored}, its contents hash to {computed}"
    )]
    Changed { stored: String, computed: String },
    #[error("belongs to session {found}")]
    OtherSession { found: String },
    #[error("events are missing: the next event present has seq {found}")]
    Missing { found: u64 },
    #[error("out of order: the event with seq {found} stands here")]
    OutOfOrder { found: u64 },
    #[error("reordered: this is the event recorded as seq {recorded_as}, renumbered")]
    Renumbered { recorded_as: u64 },
    #[error("not linked to the event before it: that event was removed or replaced")]
    Unlinked,
}

/// Checks one session's chain: `events` as listed, all of one session, from `seq` 0.
/// An empty list is a valid (empty) chain.
pub fn verify_session(events: &[Event]) -> Result<(), BrokenLink> {
    check_chain(&events.iter().collect::<Vec<_>>())
}

fn check_chain(events: &[&Event]) -> Result<(), BrokenLink> {
    let Some(first) = events.first() else {
        return Ok(());
    };
    let session_id = &first.session_id;
    let broken = |position: usize, problem| BrokenLink {
        session_id: session_id.clone(),
        seq: position as u64,
        problem,
    };
    for (position, event) in events.iter().enumerate() {
        let computed = event_hash(event);
        if computed != event.hash {
            let problem = match recorded_seq(event, events) {
                Some(recorded_as) => LinkProblem::Renumbered { recorded_as },
                None => LinkProblem::Changed {
                    stored: event.hash.clone(),
                    computed,
                },
            };
            return Err(broken(position, problem));
        }
        if &event.session_id != session_id {
            let found = event.session_id.clone();
            return Err(broken(position, LinkProblem::OtherSession { found }));
        }
        let expected_seq = position as u64;
        if event.seq != expected_seq {
            // A later event carrying the expected seq means this one is out of place
            // rather than the expected one gone.
            let expected_comes_later = events[position..]
                .iter()
                .any(|later| later.seq == expected_seq);
            let problem = if event.seq > expected_seq && !expected_comes_later {
                LinkProblem::Missing { found: event.seq }
            } else {
                LinkProblem::OutOfOrder { found: event.seq }
            };
            return Err(broken(position, problem));
        }
        let expected_prev = match position {
            0 => GENESIS_PREV_HASH,
            _ => events[position - 1].hash.as_str(),
        };
        if event.prev_hash != expected_prev {
            return Err(broken(position, LinkProblem::Unlinked));
        }
    }
    Ok(())
}

/// For an event whose hash does not match: the other `seq` of the session under which it
/// does, if any. Swapping the `seq` of two stored events (the way to reorder rows a store
/// lists by `seq`) leaves everything else intact, so this tells a reordering from an edit.
fn recorded_seq(event: &Event, events: &[&Event]) -> Option<u64> {
    let mut candidates: Vec<u64> = events
        .iter()
        .map(|other| other.seq)
        .filter(|&seq| seq != event.seq)
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    let mut renumbered = event.clone();
    candidates.into_iter().find(|&seq| {
        renumbered.seq = seq;
        event_hash(&renumbered) == event.hash
    })
}

/// Why a trail as a whole does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("checkpoint {index} (signed at {at}): {error}")]
    Checkpoint {
        /// Position in the list of checkpoints given.
        index: usize,
        at: Timestamp,
        #[source]
        error: CheckpointError,
    },
    #[error(transparent)]
    Chain(#[from] BrokenLink),
    #[error(
        "session {session_id}: the chain ends at {} but seq {signed_seq} was signed at \
         {signed_at}: its last events were removed",
        last_seq.map_or("nothing".to_owned(), |seq| format!("seq {seq}"))
    )]
    Truncated {
        session_id: String,
        last_seq: Option<u64>,
        signed_seq: u64,
        signed_at: Timestamp,
    },
    #[error(
        "session {session_id}, seq {seq}: not the event signed at {signed_at}: the chain \
         was rewritten after {}",
        last_matching_seq.map_or("its start".to_owned(), |seq| format!("seq {seq}"))
    )]
    Rewritten {
        session_id: String,
        seq: u64,
        signed_at: Timestamp,
        /// The latest signed head before `seq` that still matches.
        last_matching_seq: Option<u64>,
    },
    #[error(
        "session {session_id} is gone (signed up to seq {signed_seq} at {signed_at}) and no \
         signed purge covers it"
    )]
    SessionMissing {
        session_id: String,
        signed_seq: u64,
        signed_at: Timestamp,
    },
}

/// What a successful verification covered, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verified {
    pub sessions: usize,
    pub events: usize,
    pub checkpoints: usize,
    /// Distinct signed heads found in place.
    pub signed_heads: usize,
    /// Sessions gone under a signed purge.
    pub purged_sessions: usize,
    /// Events after their session's latest signed head: protected by the chain only,
    /// until the next checkpoint.
    pub unsigned_events: usize,
}

/// A signed head as verification uses it: where it was signed from.
struct SignedHead<'a> {
    seq: u64,
    hash: &'a str,
    at: Timestamp,
    signed_at: Timestamp,
}

/// Checks `events` (any number of sessions, each session's events in `seq` order as a
/// store lists them) against `checkpoints` signed by `key`, and returns what it covered.
///
/// Checkpoints are checked first, so nothing is judged against a forged one; then every
/// chain; then every signed head, under the purge rule of this module.
pub fn verify_against_checkpoints(
    events: &[Event],
    checkpoints: &[Checkpoint],
    key: &PublicKey,
) -> Result<Verified, VerifyError> {
    for (index, checkpoint) in checkpoints.iter().enumerate() {
        checkpoint
            .verify(key)
            .map_err(|error| VerifyError::Checkpoint {
                index,
                at: checkpoint.at,
                error,
            })?;
    }

    let sessions = group_by_session(events);
    for (_, chain) in &sessions {
        check_chain(chain)?;
    }

    let signed = signed_heads_by_session(checkpoints);
    let mut verified = Verified {
        sessions: sessions.len(),
        events: events.len(),
        checkpoints: checkpoints.len(),
        ..Verified::default()
    };
    let chains: HashMap<&str, &[&Event]> = sessions
        .iter()
        .map(|(id, chain)| (*id, chain.as_slice()))
        .collect();
    // Sessions still present first, so that purge records are trusted only once their
    // own signed heads are known to match.
    for (session_id, heads) in &signed {
        if let Some(chain) = chains.get(session_id) {
            check_signed_heads(session_id, chain, heads)?;
            verified.signed_heads += heads.len();
        }
    }
    let signed_through: HashMap<&str, u64> = signed
        .iter()
        .filter_map(|(id, heads)| Some((*id, heads.last()?.seq)))
        .collect();
    let purge_cutoffs = trusted_purge_cutoffs(&sessions, &signed_through);
    for (session_id, heads) in &signed {
        if chains.contains_key(session_id) {
            continue;
        }
        let latest = heads.last().expect("a session is listed with its heads");
        if !purge_cutoffs.iter().any(|&before| latest.at < before) {
            return Err(VerifyError::SessionMissing {
                session_id: (*session_id).to_owned(),
                signed_seq: latest.seq,
                signed_at: latest.signed_at,
            });
        }
        verified.purged_sessions += 1;
    }
    verified.unsigned_events = sessions
        .iter()
        .map(|(id, chain)| {
            let signed_events = signed_through.get(id).map_or(0, |&seq| seq as usize + 1);
            chain.len() - signed_events
        })
        .sum();
    Ok(verified)
}

/// Every signed head of each session, sorted by `seq` without repeats; sessions in order
/// of first appearance in `checkpoints`, so that reports do not depend on hashing.
fn signed_heads_by_session(checkpoints: &[Checkpoint]) -> Vec<(&str, Vec<SignedHead<'_>>)> {
    let mut sessions: Vec<(&str, Vec<SignedHead>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for checkpoint in checkpoints {
        for head in &checkpoint.heads {
            let position = *index.entry(&head.session_id).or_insert_with(|| {
                sessions.push((&head.session_id, Vec::new()));
                sessions.len() - 1
            });
            sessions[position].1.push(SignedHead {
                seq: head.seq,
                hash: &head.hash,
                at: head.at,
                signed_at: checkpoint.at,
            });
        }
    }
    for (_, heads) in &mut sessions {
        heads.sort_by_key(|head| head.seq);
        heads.dedup_by(|a, b| a.seq == b.seq && a.hash == b.hash);
    }
    sessions
}

/// The events of each session in the order listed, sessions in order of first appearance.
fn group_by_session(events: &[Event]) -> Vec<(&str, Vec<&Event>)> {
    let mut sessions: Vec<(&str, Vec<&Event>)> = Vec::new();
    let mut index: HashMap<&str, usize> = HashMap::new();
    for event in events {
        let position = *index.entry(&event.session_id).or_insert_with(|| {
            sessions.push((&event.session_id, Vec::new()));
            sessions.len() - 1
        });
        sessions[position].1.push(event);
    }
    sessions
}

/// Every signed head (sorted by `seq`) must be in `chain`, which has already verified,
/// with the same hash.
fn check_signed_heads(
    session_id: &str,
    chain: &[&Event],
    heads: &[SignedHead],
) -> Result<(), VerifyError> {
    let mut last_matching_seq = None;
    for head in heads {
        // The chain verified, so the event with seq n is at position n.
        let Some(event) = usize::try_from(head.seq)
            .ok()
            .and_then(|position| chain.get(position))
        else {
            return Err(VerifyError::Truncated {
                session_id: session_id.to_owned(),
                last_seq: chain.last().map(|event| event.seq),
                signed_seq: head.seq,
                signed_at: head.signed_at,
            });
        };
        if event.hash != head.hash || event.at != head.at {
            return Err(VerifyError::Rewritten {
                session_id: session_id.to_owned(),
                seq: head.seq,
                signed_at: head.signed_at,
                last_matching_seq,
            });
        }
        last_matching_seq = Some(head.seq);
    }
    Ok(())
}

/// The `before` of every purge record a valid checkpoint has signed (the record's session
/// is signed at or after it): see the purge rule in this module's documentation.
fn trusted_purge_cutoffs(
    sessions: &[(&str, Vec<&Event>)],
    signed_through: &HashMap<&str, u64>,
) -> Vec<Timestamp> {
    let mut cutoffs = Vec::new();
    for (session_id, chain) in sessions {
        let Some(&signed_seq) = signed_through.get(session_id) else {
            continue;
        };
        for event in chain {
            if let EventBody::Purged(purge) = &event.body {
                if event.seq <= signed_seq {
                    cutoffs.push(purge.before);
                }
            }
        }
    }
    cutoffs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChainBuilder, ChainHead, CheckpointSigner, Purged, SessionClosed};

    fn at(second: u32) -> Timestamp {
        format!("2026-05-01T09:30:{second:02}.000000Z")
            .parse()
            .unwrap()
    }

    fn note(text: &str) -> EventBody {
        EventBody::SessionClosed(SessionClosed {
            reason: text.into(),
        })
    }

    /// A session of `len` events, one second apart from `start`.
    fn session(id: &str, len: u32, start: u32) -> Vec<Event> {
        let mut chain = ChainBuilder::new(id);
        (0..len)
            .map(|i| chain.append(at(start + i), note(&format!("{id} {i}"))))
            .collect()
    }

    fn problem_at(events: &[Event]) -> (u64, LinkProblem) {
        let link = verify_session(events).unwrap_err();
        (link.seq, link.problem)
    }

    #[test]
    fn an_intact_chain_verifies() {
        verify_session(&session("s", 5, 0)).unwrap();
        verify_session(&[]).unwrap();
    }

    #[test]
    fn a_changed_event_is_named() {
        let mut events = session("s", 5, 0);
        events[2].body = note("edited");
        let (seq, problem) = problem_at(&events);
        assert_eq!(seq, 2);
        assert!(matches!(problem, LinkProblem::Changed { .. }), "{problem}");
    }

    #[test]
    fn a_removed_event_is_named() {
        let mut events = session("s", 5, 0);
        events.remove(2);
        assert_eq!(problem_at(&events), (2, LinkProblem::Missing { found: 3 }));
    }

    #[test]
    fn a_removed_first_event_is_named() {
        let mut events = session("s", 3, 0);
        events.remove(0);
        assert_eq!(problem_at(&events), (0, LinkProblem::Missing { found: 1 }));
    }

    #[test]
    fn events_listed_out_of_order_are_named() {
        let mut events = session("s", 5, 0);
        events.swap(2, 3);
        assert_eq!(
            problem_at(&events),
            (2, LinkProblem::OutOfOrder { found: 3 })
        );
    }

    #[test]
    fn a_duplicated_event_is_out_of_order() {
        let mut events = session("s", 3, 0);
        events.insert(2, events[1].clone());
        assert_eq!(
            problem_at(&events),
            (2, LinkProblem::OutOfOrder { found: 1 })
        );
    }

    #[test]
    fn swapped_seq_numbers_are_named_a_reordering() {
        // How rows listed by `seq` are reordered in a store.
        let mut events = session("s", 5, 0);
        events[2].seq = 3;
        events[3].seq = 2;
        events.swap(2, 3);
        assert_eq!(
            problem_at(&events),
            (2, LinkProblem::Renumbered { recorded_as: 3 })
        );
    }

    #[test]
    fn a_reordering_with_recomputed_hashes_is_unlinked() {
        // The hashes have no key, so they can be recomputed; the links then still break
        // where the order changed (and checkpoints catch a consistent rewrite).
        let mut events = session("s", 5, 0);
        events.swap(2, 3);
        for (position, event) in events.iter_mut().enumerate() {
            event.seq = position as u64;
            event.hash = event_hash(event);
        }
        assert_eq!(problem_at(&events), (2, LinkProblem::Unlinked));
    }

    #[test]
    fn a_removed_event_with_renumbering_is_unlinked() {
        let mut events = session("s", 5, 0);
        events.remove(2);
        for (position, event) in events.iter_mut().enumerate() {
            event.seq = position as u64;
            event.hash = event_hash(event);
        }
        assert_eq!(problem_at(&events), (2, LinkProblem::Unlinked));
    }

    #[test]
    fn an_event_of_another_session_is_named() {
        let mut events = session("s", 3, 0);
        let other = session("t", 3, 0);
        events[1] = other[1].clone();
        assert_eq!(
            problem_at(&events),
            (1, LinkProblem::OtherSession { found: "t".into() })
        );
    }

    fn heads(sessions: &[&[Event]]) -> Vec<ChainHead> {
        sessions
            .iter()
            .filter_map(|events| events.last().map(ChainHead::of))
            .collect()
    }

    #[test]
    fn a_trail_matching_its_checkpoints_verifies() {
        let signer = CheckpointSigner::generate();
        let a = session("a", 4, 0);
        let b = session("b", 2, 0);
        let early = signer.sign(at(1), heads(&[&a[..2], &b[..1]]));
        let late = signer.sign(at(9), heads(&[&a, &b]));
        let mut events = a.clone();
        events.extend(b.clone());
        let verified =
            verify_against_checkpoints(&events, &[early, late], signer.public_key()).unwrap();
        assert_eq!(
            verified,
            Verified {
                sessions: 2,
                events: 6,
                checkpoints: 2,
                signed_heads: 4,
                purged_sessions: 0,
                unsigned_events: 0,
            }
        );
    }

    #[test]
    fn events_after_the_last_checkpoint_are_counted_unsigned() {
        let signer = CheckpointSigner::generate();
        let a = session("a", 5, 0);
        let checkpoint = signer.sign(at(3), heads(&[&a[..3]]));
        let verified = verify_against_checkpoints(&a, &[checkpoint], signer.public_key()).unwrap();
        assert_eq!(verified.unsigned_events, 2);
    }

    #[test]
    fn a_cut_off_tail_is_caught_by_a_checkpoint() {
        let signer = CheckpointSigner::generate();
        let a = session("a", 5, 0);
        let checkpoint = signer.sign(at(9), heads(&[&a]));
        assert!(
            verify_session(&a[..3]).is_ok(),
            "the chain alone cannot tell"
        );
        let error =
            verify_against_checkpoints(&a[..3], &[checkpoint], signer.public_key()).unwrap_err();
        assert_eq!(
            error,
            VerifyError::Truncated {
                session_id: "a".into(),
                last_seq: Some(2),
                signed_seq: 4,
                signed_at: at(9),
            }
        );
    }

    #[test]
    fn a_rewritten_tail_is_caught_after_the_last_matching_head() {
        let signer = CheckpointSigner::generate();
        let a = session("a", 6, 0);
        let first = signer.sign(at(2), heads(&[&a[..2]]));
        let second = signer.sign(at(9), heads(&[&a]));
        // Rewrite from seq 3 on, consistently, as only someone with the data could.
        let mut chain = ChainBuilder::resume(&a[2]);
        let mut rewritten = a[..3].to_vec();
        for i in 3..6 {
            rewritten.push(chain.append(at(i), note("rewritten")));
        }
        verify_session(&rewritten).unwrap();
        let error = verify_against_checkpoints(&rewritten, &[first, second], signer.public_key())
            .unwrap_err();
        assert_eq!(
            error,
            VerifyError::Rewritten {
                session_id: "a".into(),
                seq: 5,
                signed_at: at(9),
                last_matching_seq: Some(1),
            }
        );
    }

    #[test]
    fn a_forged_checkpoint_is_refused_before_anything_is_judged_by_it() {
        let gateway = CheckpointSigner::generate();
        let forger = CheckpointSigner::generate();
        let a = session("a", 3, 0);
        let genuine = gateway.sign(at(9), heads(&[&a]));
        let forged = forger.sign(at(9), heads(&[&a[..2]]));
        let error =
            verify_against_checkpoints(&a[..2], &[genuine.clone(), forged], gateway.public_key())
                .unwrap_err();
        assert!(
            matches!(
                error,
                VerifyError::Checkpoint {
                    index: 1,
                    error: CheckpointError::OtherKey { .. },
                    ..
                }
            ),
            "{error}"
        );
        let mut altered = genuine;
        altered.heads[0].seq = 1;
        let error =
            verify_against_checkpoints(&a[..2], &[altered], gateway.public_key()).unwrap_err();
        assert!(
            matches!(
                error,
                VerifyError::Checkpoint {
                    index: 0,
                    error: CheckpointError::BadSignature,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn a_chain_break_is_reported_with_its_session() {
        let signer = CheckpointSigner::generate();
        let mut events = session("a", 3, 0);
        events.extend(session("b", 3, 0));
        events.remove(4);
        let error = verify_against_checkpoints(&events, &[], signer.public_key()).unwrap_err();
        assert_eq!(
            error,
            VerifyError::Chain(BrokenLink {
                session_id: "b".into(),
                seq: 1,
                problem: LinkProblem::Missing { found: 2 },
            })
        );
    }

    fn purge_record(before: Timestamp, at_second: u32) -> Vec<Event> {
        let mut chain = ChainBuilder::new("purge");
        vec![chain.append(
            at(at_second),
            EventBody::Purged(Purged {
                before,
                sessions: 1,
            }),
        )]
    }

    #[test]
    fn a_session_gone_without_a_purge_is_missing() {
        let signer = CheckpointSigner::generate();
        let old = session("old", 2, 0);
        let kept = session("kept", 2, 10);
        let checkpoint = signer.sign(at(20), heads(&[&old, &kept]));
        let error =
            verify_against_checkpoints(&kept, &[checkpoint], signer.public_key()).unwrap_err();
        assert_eq!(
            error,
            VerifyError::SessionMissing {
                session_id: "old".into(),
                signed_seq: 1,
                signed_at: at(20),
            }
        );
    }

    #[test]
    fn a_signed_purge_covers_sessions_whose_signed_events_are_older() {
        let signer = CheckpointSigner::generate();
        let old = session("old", 2, 0); // last signed event at second 1
        let kept = session("kept", 2, 10);
        let before_purge = signer.sign(at(20), heads(&[&old, &kept]));
        let purge = purge_record(at(5), 30);
        let after_purge = signer.sign(at(31), heads(&[&purge]));
        let mut events = kept.clone();
        events.extend(purge);
        let verified =
            verify_against_checkpoints(&events, &[before_purge, after_purge], signer.public_key())
                .unwrap();
        assert_eq!(verified.purged_sessions, 1);
    }

    #[test]
    fn a_purge_does_not_cover_sessions_newer_than_its_cut_off() {
        let signer = CheckpointSigner::generate();
        let old = session("old", 2, 0);
        let recent = session("recent", 2, 10); // last signed event at second 11
        let before_purge = signer.sign(at(20), heads(&[&old, &recent]));
        let purge = purge_record(at(5), 30);
        let after_purge = signer.sign(at(31), heads(&[&purge]));
        let error =
            verify_against_checkpoints(&purge, &[before_purge, after_purge], signer.public_key())
                .unwrap_err();
        assert!(
            matches!(&error, VerifyError::SessionMissing { session_id, .. } if session_id == "recent"),
            "{error}"
        );
    }

    #[test]
    fn an_unsigned_purge_record_covers_nothing() {
        let signer = CheckpointSigner::generate();
        let old = session("old", 2, 0);
        let before_purge = signer.sign(at(20), heads(&[&old]));
        let purge = purge_record(at(5), 30);
        let error =
            verify_against_checkpoints(&purge, &[before_purge], signer.public_key()).unwrap_err();
        assert!(
            matches!(error, VerifyError::SessionMissing { .. }),
            "{error}"
        );
    }
}
