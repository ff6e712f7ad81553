//! Framing: `tag (1 byte) | length (4 bytes, including itself) | body`.

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// One whole message, header included, as it came off the wire.
#[derive(Debug, Clone)]
pub struct Frame {
    pub tag: u8,
    /// The whole message: tag, length and body. Forwarded as is.
    pub raw: Bytes,
}

impl Frame {
    /// The body after the 5-byte header.
    pub fn body(&self) -> &[u8] {
        &self.raw[5..]
    }
}

/// Errors reading frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("connection closed")]
    Closed,
    #[error("connection closed in the middle of a message")]
    Truncated,
    #[error("invalid message length {0}")]
    BadLength(i32),
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads frames from a stream through a buffer, so several small messages arriving in one
/// packet cost one read.
pub struct FrameReader<R> {
    inner: R,
    buf: BytesMut,
    max_len: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub fn new(inner: R, max_len: usize) -> Self {
        FrameReader {
            inner,
            buf: BytesMut::with_capacity(16 * 1024),
            max_len,
        }
    }

    /// A reader that starts with bytes already received (after splitting a stream).
    pub fn with_buffer(inner: R, buf: BytesMut, max_len: usize) -> Self {
        FrameReader {
            inner,
            buf,
            max_len,
        }
    }

    /// Bytes already received but not yet returned as frames.
    pub fn has_buffered_frame(&self) -> bool {
        self.complete_len().is_some_and(|n| self.buf.len() >= n)
    }

    fn complete_len(&self) -> Option<usize> {
        if self.buf.len() < 5 {
            return None;
        }
        let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
        usize::try_from(len).ok().map(|l| l + 1)
    }

    /// A whole frame already in the buffer, without reading: lets a relay forward a burst
    /// of messages (a result's rows) in one pass and flush once.
    pub fn try_next(&mut self) -> Option<Result<Frame, FrameError>> {
        match self.buffered() {
            Ok(Some(frame)) => Some(Ok(frame)),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// The longest run of whole frames at the front of the buffer whose tags all satisfy
    /// `plain`, as one block (no frame is split off on its own), or `None` if the first
    /// frame is partial or not plain. A relay forwards such a run with one write.
    pub fn take_run(&mut self, plain: impl Fn(u8) -> bool) -> Option<Bytes> {
        let mut end = 0;
        while self.buf.len() >= end + 5 {
            let header = &self.buf[end..end + 5];
            let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]);
            // Invalid lengths are left for `next`, which reports them.
            if len < 4 || len as usize + 1 > self.max_len || !plain(header[0]) {
                break;
            }
            let total = len as usize + 1;
            if self.buf.len() < end + total {
                break;
            }
            end += total;
        }
        (end > 0).then(|| self.buf.split_to(end).freeze())
    }

    /// Takes one whole frame from the buffer if there is one; makes room for the rest of a
    /// partial one.
    fn buffered(&mut self) -> Result<Option<Frame>, FrameError> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = i32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
        if len < 4 {
            return Err(FrameError::BadLength(len));
        }
        let total = len as usize + 1;
        if total > self.max_len {
            return Err(FrameError::TooLarge {
                len: total,
                max: self.max_len,
            });
        }
        if self.buf.len() >= total {
            let raw = self.buf.split_to(total).freeze();
            return Ok(Some(Frame { tag: raw[0], raw }));
        }
        self.buf.reserve(total - self.buf.len());
        Ok(None)
    }

    /// The next whole frame. Cancel-safe: a frame is only taken from the buffer once whole.
    pub async fn next(&mut self) -> Result<Frame, FrameError> {
        loop {
            if let Some(frame) = self.buffered()? {
                return Ok(frame);
            }
            let n = self.inner.read_buf(&mut self.buf).await?;
            if n == 0 {
                return Err(if self.buf.is_empty() {
                    FrameError::Closed
                } else {
                    FrameError::Truncated
                });
            }
        }
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Gives back the stream and whatever was read past the last frame.
    pub fn into_parts(self) -> (R, BytesMut) {
        (self.inner, self.buf)
    }
}

/// A cursor over a message body with PostgreSQL's field types.
pub struct BodyReader<'a> {
    body: &'a [u8],
}

/// A message body that does not follow its format.
#[derive(Debug, thiserror::Error)]
#[error("malformed {0} message")]
pub struct Malformed(pub &'static str);

impl<'a> BodyReader<'a> {
    pub fn new(body: &'a [u8]) -> Self {
        BodyReader { body }
    }

    /// A NUL-terminated string, as UTF-8.
    pub fn cstr(&mut self, what: &'static str) -> Result<&'a str, Malformed> {
        let end = self
            .body
            .iter()
            .position(|b| *b == 0)
            .ok_or(Malformed(what))?;
        let s = std::str::from_utf8(&self.body[..end]).map_err(|_| Malformed(what))?;
        self.body = &self.body[end + 1..];
        Ok(s)
    }

    pub fn u8(&mut self, what: &'static str) -> Result<u8, Malformed> {
        if self.body.is_empty() {
            return Err(Malformed(what));
        }
        Ok(self.body.get_u8())
    }

    pub fn i16(&mut self, what: &'static str) -> Result<i16, Malformed> {
        if self.body.len() < 2 {
            return Err(Malformed(what));
        }
        Ok(self.body.get_i16())
    }

    pub fn i32(&mut self, what: &'static str) -> Result<i32, Malformed> {
        if self.body.len() < 4 {
            return Err(Malformed(what));
        }
        Ok(self.body.get_i32())
    }

    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Malformed> {
        if self.body.len() < n {
            return Err(Malformed(what));
        }
        let (head, tail) = self.body.split_at(n);
        self.body = tail;
        Ok(head)
    }

    pub fn rest(&self) -> &'a [u8] {
        self.body
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.body.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    #[tokio::test]
    async fn runs_stop_at_a_tag_that_needs_a_look_and_at_a_partial_frame() {
        let mut bytes = Vec::new();
        bytes.extend(frame(b'D', b"row 1"));
        bytes.extend(frame(b'D', b"row 2"));
        bytes.extend(frame(b'C', b"SELECT 2\0"));
        bytes.extend(frame(b'Z', b"I"));
        bytes.extend(frame(b'D', b"row 3"));
        let partial = frame(b'D', b"row 4");
        bytes.extend(&partial[..7]);
        let mut reader =
            FrameReader::with_buffer(tokio::io::empty(), BytesMut::from(&bytes[..]), 1 << 20);
        let plain = |tag: u8| tag != b'Z';
        let run = reader.take_run(plain).expect("a run");
        assert_eq!(run.len(), 10 + 10 + 14);
        assert!(
            reader.take_run(plain).is_none(),
            "ReadyForQuery comes on its own"
        );
        assert_eq!(reader.try_next().unwrap().unwrap().tag, b'Z');
        assert_eq!(reader.take_run(plain).unwrap().len(), 10);
        assert!(reader.take_run(plain).is_none(), "a partial frame stays");
        assert!(reader.try_next().is_none());
    }
}
