//! Just-in-time approval (DESIGN.md §5), written once for every protocol.
//!
//! A protocol crate that gets an `approve` decision asks the [`Broker`] for an approval
//! ([`Broker::request`]) and then, by the rule's mode, either waits for its outcome
//! ([`Broker::wait`], hold mode: the statement runs once approved) or refuses at once and
//! later lets the same principal run exactly that statement once ([`Broker::redeem`],
//! ticket mode, matched by [`fingerprint`]). Approvers decide through the admin API or the
//! command line ([`Broker::decide`]); webhooks hear of every request, decision and expiry.
//!
//! Layout:
//! - [`broker`]: the [`Broker`]: requests, waiting, decisions (who may approve), tickets,
//!   withdrawal, the expiry sweeper;
//! - [`events`]: what a session records of an approval's decisions and outcome;
//! - [`fingerprint`]: what a ticket is redeemed against: a statement's normalized text and
//!   its parameters, hashed;
//! - [`view`]: the JSON shape of a request, shared by the admin API, the command line and
//!   the webhooks;
//! - [`webhook`]: notifications: a bounded queue per receiver, deliveries retried with
//!   backoff, the Slack-compatible and the signed generic JSON payloads;
//! - `error`: [`BrokerError`] and [`DecideError`].
//!
//! Architecture invariants:
//! - Protocol-neutral: nothing here knows a wire format. A request is text, parameters and
//!   a fingerprint the protocol crate computed.
//! - The store decides races: every state change is one conditional update there, so a
//!   decision, an expiry and a withdrawal of the same request resolve once, across gateway
//!   instances too. In-process notification only wakes waiters early; a waiter also
//!   re-reads the store every second, so a decision taken through another instance is
//!   seen.
//! - Nobody approves their own request, only people (principals of kind `user`) approve,
//!   and only those the rule's `approvers` name; the broker checks all three on every
//!   decision, whatever interface it came through.
//! - Webhooks never hold up a statement or a decision, nor one receiver another:
//!   announcements go to each receiver's bounded queue (dropped with an error logged when
//!   it is full) and are delivered by tasks of their own.
//! - Store calls run on blocking threads, never on the runtime's.

pub mod broker;
mod error;
pub mod events;
pub mod fingerprint;
pub mod view;
pub mod webhook;

pub use broker::{Broker, BrokerSettings, NewApproval};
pub use error::{BrokerError, DecideError};
pub use events::outcome_events;
pub use fingerprint::fingerprint;
pub use view::{ApprovalView, DecisionView};
pub use webhook::{Announcement, WebhookFormat, WebhookTarget, Webhooks};
