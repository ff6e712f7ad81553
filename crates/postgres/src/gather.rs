//! [`GatherWriter`]: what the relay sends toward the client, gathered into as few system
//! calls as the socket allows.
//!
//! The resource-to-client half answers each read from the resource with a burst of
//! writes: a message or two taken one by one (a DataRow, a CommandComplete) and a block of
//! rows as read (or as masked). Through a fixed-size buffer, a block that does not fit
//! costs two `send`s: one for what the buffer held, one for the block. Here small writes
//! are copied together, blocks are queued as they are (no copy: they are the read
//! buffer's own bytes), and `flush` hands all of it to one vectored write.
//!
//! Memory: nothing is allocated until something is written, at most [`HIGH_WATER`] is
//! held before it is written out (so a client that does not read still slows the relay
//! down, as it must), and after a flush the copy buffer is let go if it grew past
//! [`KEPT_CAPACITY`], so an idle session holds next to nothing.

use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::AsyncWrite;

/// Blocks shorter than this are copied with the small writes around them: a `send` per
/// slice would cost more than the copy.
pub const COPY_BELOW: usize = 4096;
/// What may wait to be written; more is written out first.
pub const HIGH_WATER: usize = 256 * 1024;
/// The copy buffer's capacity kept across flushes.
pub const KEPT_CAPACITY: usize = 8 * 1024;
/// Slices handed to one vectored write (Linux takes up to 1024; a burst has a few).
const MAX_SLICES: usize = 64;

/// A writer that gathers small writes and whole blocks, and writes them at `flush`.
pub struct GatherWriter<W> {
    inner: W,
    /// Queued blocks, in order; `small` follows the last of them.
    blocks: VecDeque<Bytes>,
    /// Small writes since the last queued block, copied together.
    small: BytesMut,
    /// Bytes in `blocks` and `small`.
    pending: usize,
    /// Whether the stream writes several slices in one call; if not, every block is
    /// copied, so that a flush is still one write.
    vectored: bool,
}

impl<W: AsyncWrite + Unpin> GatherWriter<W> {
    pub fn new(inner: W) -> Self {
        let vectored = inner.is_write_vectored();
        GatherWriter {
            inner,
            blocks: VecDeque::new(),
            small: BytesMut::new(),
            pending: 0,
            vectored,
        }
    }

    /// Adds `block` to what the next flush writes: queued as it is when it is large,
    /// copied when small. Writes out what is waiting first if holding `block` too would
    /// pass [`HIGH_WATER`].
    pub async fn queue(&mut self, block: Bytes) -> io::Result<()> {
        if block.is_empty() {
            return Ok(());
        }
        if self.pending > 0 && self.pending + block.len() > HIGH_WATER {
            self.write_pending().await?;
        }
        self.pending += block.len();
        if block.len() < COPY_BELOW || !self.vectored {
            self.small.extend_from_slice(&block);
        } else {
            if !self.small.is_empty() {
                self.blocks.push_back(self.small.split().freeze());
            }
            self.blocks.push_back(block);
        }
        Ok(())
    }

    /// Bytes waiting to be written.
    pub fn pending(&self) -> usize {
        self.pending
    }

    async fn write_pending(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_write_pending(cx)).await
    }

    /// Writes everything waiting, as few slices per call as there are pieces.
    fn poll_write_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.pending > 0 {
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut count = 0;
            for block in self.blocks.iter().take(MAX_SLICES) {
                slices[count] = IoSlice::new(block);
                count += 1;
            }
            if count < MAX_SLICES && count == self.blocks.len() && !self.small.is_empty() {
                slices[count] = IoSlice::new(&self.small);
                count += 1;
            }
            let written =
                ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, &slices[..count]))?;
            if written == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.consume(written);
        }
        if self.small.capacity() > KEPT_CAPACITY {
            self.small = BytesMut::new();
        }
        Poll::Ready(Ok(()))
    }

    /// Drops the first `written` bytes of what waits.
    fn consume(&mut self, mut written: usize) {
        self.pending -= written;
        while written > 0 {
            match self.blocks.front_mut() {
                Some(front) if written >= front.len() => {
                    written -= front.len();
                    self.blocks.pop_front();
                }
                Some(front) => {
                    front.advance(written);
                    written = 0;
                }
                None => {
                    self.small.advance(written);
                    written = 0;
                }
            }
        }
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for GatherWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending > 0 && this.pending + buf.len() > HIGH_WATER {
            ready!(this.poll_write_pending(cx))?;
        }
        this.small.extend_from_slice(buf);
        this.pending += buf.len();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncWriteExt;

    /// A stream that records each write call's bytes and takes at most `limit` per call.
    #[derive(Clone, Default)]
    struct Recorder {
        calls: Arc<Mutex<Vec<Vec<u8>>>>,
        limit: Option<usize>,
        vectored: bool,
    }

    impl Recorder {
        fn take(&self, slices: &[IoSlice<'_>]) -> usize {
            let mut call = Vec::new();
            for slice in slices {
                call.extend_from_slice(slice);
                if !self.vectored {
                    break;
                }
            }
            call.truncate(self.limit.unwrap_or(usize::MAX));
            let n = call.len();
            self.calls.lock().unwrap().push(call);
            n
        }

        fn calls(&self) -> Vec<Vec<u8>> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(self.take(&[IoSlice::new(buf)])))
        }

        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Ok(self.take(bufs)))
        }

        fn is_write_vectored(&self) -> bool {
            self.vectored
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn block(byte: u8, len: usize) -> Bytes {
        Bytes::from(vec![byte; len])
    }

    #[tokio::test]
    async fn a_burst_of_messages_and_blocks_is_one_write_in_order() {
        let stream = Recorder {
            vectored: true,
            ..Default::default()
        };
        let mut writer = GatherWriter::new(stream.clone());
        writer.write_all(b"first").await.unwrap();
        writer.queue(block(b'a', 20_000)).await.unwrap();
        writer.queue(block(b'b', 10)).await.unwrap();
        writer.write_all(b"last").await.unwrap();
        writer.queue(block(b'c', 8_000)).await.unwrap();
        assert!(
            stream.calls().is_empty(),
            "nothing is written before the flush"
        );
        writer.flush().await.unwrap();
        let calls = stream.calls();
        assert_eq!(calls.len(), 1);
        let mut expected = b"first".to_vec();
        expected.extend(vec![b'a'; 20_000]);
        expected.extend(vec![b'b'; 10]);
        expected.extend(b"last");
        expected.extend(vec![b'c'; 8_000]);
        assert_eq!(calls[0], expected);
        assert_eq!(writer.pending(), 0);
    }

    #[tokio::test]
    async fn short_writes_resume_where_they_stopped() {
        for vectored in [true, false] {
            let stream = Recorder {
                limit: Some(3_001),
                vectored,
                ..Default::default()
            };
            let mut writer = GatherWriter::new(stream.clone());
            let mut expected = Vec::new();
            for (i, len) in [5, 9_000, 100, 4_096, 7, 12_345].into_iter().enumerate() {
                let piece = block(b'a' + i as u8, len);
                expected.extend_from_slice(&piece);
                if len < 50 {
                    writer.write_all(&piece).await.unwrap();
                } else {
                    writer.queue(piece).await.unwrap();
                }
            }
            writer.flush().await.unwrap();
            let calls = stream.calls();
            assert_eq!(calls.concat(), expected, "vectored: {vectored}");
            assert!(calls.iter().all(|c| c.len() <= 3_001));
        }
    }

    #[tokio::test]
    async fn without_vectored_writes_blocks_are_copied_into_one_write() {
        let stream = Recorder::default();
        let mut writer = GatherWriter::new(stream.clone());
        writer.write_all(b"x").await.unwrap();
        writer.queue(block(b'a', 10_000)).await.unwrap();
        writer.queue(block(b'b', 10_000)).await.unwrap();
        writer.flush().await.unwrap();
        assert_eq!(stream.calls().len(), 1);
        assert_eq!(stream.calls()[0].len(), 20_001);
    }

    #[tokio::test]
    async fn no_more_than_the_high_water_mark_waits() {
        let stream = Recorder {
            vectored: true,
            ..Default::default()
        };
        let mut writer = GatherWriter::new(stream.clone());
        for _ in 0..10 {
            writer.queue(block(b'a', 100_000)).await.unwrap();
            assert!(writer.pending() <= HIGH_WATER);
        }
        for _ in 0..1_000 {
            writer.write_all(&[b'b'; 1_000]).await.unwrap();
            assert!(writer.pending() <= HIGH_WATER);
        }
        writer.flush().await.unwrap();
        let written: usize = stream.calls().iter().map(Vec::len).sum();
        assert_eq!(written, 10 * 100_000 + 1_000 * 1_000);
    }

    #[tokio::test]
    async fn a_grown_copy_buffer_is_let_go_after_the_flush() {
        let mut writer = GatherWriter::new(Recorder::default());
        writer.write_all(&[0; 100_000]).await.unwrap();
        writer.flush().await.unwrap();
        assert!(writer.small.capacity() <= KEPT_CAPACITY);
    }
}
