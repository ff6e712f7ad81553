//! The startup phase: the untagged first messages a client sends.

use std::collections::BTreeMap;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::codec::{BodyReader, Malformed};

pub const SSL_REQUEST: i32 = 80877103;
pub const GSSENC_REQUEST: i32 = 80877104;
pub const CANCEL_REQUEST: i32 = 80877102;
/// Protocol 3.0 as `major << 16 | minor`.
pub const PROTOCOL_3_0: i32 = 196608;

/// The startup packet is small; a bigger one is an attack or a mistake.
pub const MAX_STARTUP_LEN: usize = 10_000;

#[derive(Debug)]
pub enum StartupPacket {
    SslRequest,
    GssEncRequest,
    Cancel {
        pid: i32,
        secret: i32,
    },
    Startup {
        minor: i32,
        params: BTreeMap<String, String>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("connection closed before startup")]
    Closed,
    #[error("invalid startup packet length {0}")]
    BadLength(i32),
    #[error("unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0")]
    UnsupportedProtocol { major: i32, minor: i32 },
    #[error(transparent)]
    Malformed(#[from] Malformed),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads one untagged startup-phase packet.
pub async fn read_startup<R: AsyncRead + Unpin>(
    stream: &mut R,
) -> Result<StartupPacket, StartupError> {
    let mut len_buf = [0u8; 4];
    match stream.read_exact(&mut len_buf).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(StartupError::Closed)
        }
        Err(e) => return Err(e.into()),
    }
    let len = i32::from_be_bytes(len_buf);
    if !(8..=MAX_STARTUP_LEN as i32).contains(&len) {
        return Err(StartupError::BadLength(len));
    }
    let mut body = BytesMut::zeroed(len as usize - 4);
    stream.read_exact(&mut body).await?;
    let mut r = BodyReader::new(&body);
    let code = r.i32("startup")?;
    Ok(match code {
        SSL_REQUEST => StartupPacket::SslRequest,
        GSSENC_REQUEST => StartupPacket::GssEncRequest,
        CANCEL_REQUEST => StartupPacket::Cancel {
            pid: r.i32("CancelRequest")?,
            secret: r.i32("CancelRequest")?,
        },
        version => {
            let (major, minor) = (version >> 16, version & 0xffff);
            if major != 3 {
                return Err(StartupError::UnsupportedProtocol { major, minor });
            }
            let mut params = BTreeMap::new();
            loop {
                let key = r.cstr("StartupMessage")?;
                if key.is_empty() {
                    break;
                }
                let value = r.cstr("StartupMessage")?;
                params.insert(key.to_string(), value.to_string());
            }
            StartupPacket::Startup { minor, params }
        }
    })
}
