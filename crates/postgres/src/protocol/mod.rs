//! The PostgreSQL wire protocol (version 3.0), as far as a relay needs it.
//!
//! A relay forwards bytes verbatim and decodes only what it must judge or answer, so
//! this module works on raw frames ([`codec`]) with small decoders for the messages the
//! gateway inspects ([`frontend`], the startup phase in [`startup`]) and encoders for the
//! messages it writes itself ([`backend`]). Typed protocol crates re-encode what they
//! decode, which a relay must not do; the gateway's own login to the resource uses
//! `postgres-protocol` (SCRAM, md5).

pub mod backend;
pub mod codec;
pub mod frontend;
pub mod startup;
