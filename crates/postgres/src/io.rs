//! Byte streams that may or may not be wrapped in TLS, on either side of the gateway.

use tokio::io::{AsyncRead, AsyncWrite};

/// A connection's byte stream: plain TCP or TLS, client- or server-side.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static {}

impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static> Io for T {}

pub type BoxIo = Box<dyn Io>;
