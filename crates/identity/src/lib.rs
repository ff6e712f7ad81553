//! Who is calling: validation of OIDC access tokens (Microsoft Entra ID foremost), tokens of
//! the gateway's own local issuer, and API keys, each turned into a
//! [`sluice_core::Principal`] or refused with a reason the agent can act on (DESIGN.md §2).
//!
//! Layout:
//!
//! - [`validator`]: [`Authenticator`], the entry point, and the provider settings;
//! - `token`: taking a compact JWS apart (size, parts, header, algorithm allow-list);
//! - `oidc`: discovery, JWKS fetching and caching per provider, signature verification;
//! - `principal`: claims → principal for any provider; [`entra`]: which providers are
//!   Entra (by issuer, or `entra: true`), Entra's rules and the v1/v2 issuer pair;
//! - [`local`]: the local ES256 issuer (`sluice token issue`, `sluice demo`);
//! - [`api_key`]: `sk_sluice_...` keys, checked against an [`ApiKeyDirectory`];
//! - `cache`: validated tokens by hash, never past their expiry;
//! - [`error`]: [`IdentityError`] (set-up) and [`AuthError`] (refusals).
//!
//! The server crates hold one [`Authenticator`] and call
//! [`Authenticator::authenticate`] with whatever the client presented as its password or
//! bearer token.

pub mod api_key;
mod cache;
pub mod entra;
pub mod error;
pub mod local;
mod oidc;
mod principal;
mod token;
pub mod validator;

pub use api_key::{
    generate_api_key, parse_api_key, ApiKeyDirectory, ApiKeyRecord, NewApiKey, API_KEY_PREFIX,
    API_KEY_PROVIDER, MAX_CONCURRENT_LOOKUPS,
};
pub use entra::{entra_v1_issuer, is_entra_issuer};
pub use error::{AuthError, IdentityError};
pub use local::{LocalIssuer, TokenRequest, LOCAL_ISSUER, LOCAL_KEY_FILE};
pub use token::MAX_TOKEN_BYTES;
pub use validator::{AuthOptions, Authenticator, ProviderSettings, ProviderSource};
