//! A connection's frame stream that holds no read buffer while it waits: [`LeanRead`]
//! wraps a `FramedRead` of a [`FrameCodec`] and gives its read buffer back when a
//! read batch ends, and, when asked through its [`ReadTrim`], also a buffer that grew
//! for large frames.
//!
//! Why: a node keeps a connection per (peer, link kind) each way, mostly idle, and
//! `FramedRead` keeps its buffer (8 KiB, or what it grew to for the largest frame)
//! for good: at a thousand peers that was most of the memory per peer. Giving the
//! buffer back after every large frame is not an option: a stream of 1 MiB messages
//! would allocate (and page-fault) a fresh frame-sized buffer for every read, which
//! measured cost half the throughput. So:
//! - at the end of a read batch (the socket had nothing more, the inner stream
//!   returned `Pending`), an empty buffer that never grew beyond the read capacity is
//!   given back, and the next poll (the socket became readable) reserves the read
//!   capacity again before it reads: one allocation per read batch, no extra read;
//! - a buffer that grew beyond that (the codec says so, [`FrameCodec::buffer_grown`]:
//!   the buffer's `capacity()` is only what is left of its view once frames were split
//!   off it) is kept across batches (a stream of large frames reuses it) until the
//!   owner asks to trim it ([`ReadTrim::request`]: the receiving core says when, once
//!   a while after its last large frame), and then given back if it is empty.
//!
//! Invariants: bytes buffered are never dropped (only an empty buffer is given back);
//! the inner stream is polled whenever this one is (so no wake-up of the socket is
//! lost); a stream waiting on its socket holds no read buffer unless one grew and no
//! trim came since (a trim asked for while bytes are buffered waits until they are
//! read). The stream and its [`ReadTrim`] live on one actor's thread
//! (`Rc`).

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use futures_core::Stream;
use tokio::io::AsyncRead;
use tokio_util::codec::FramedRead;

use crate::frame::FrameCodec;

#[derive(Default)]
struct TrimState {
    requested: Cell<bool>,
    /// The task that last polled the stream.
    waker: Cell<Option<Waker>>,
}

/// Asks a [`LeanRead`] to give back its read buffer, grown or not, if it is empty.
#[derive(Clone, Default)]
pub(crate) struct ReadTrim(Rc<TrimState>);

impl ReadTrim {
    /// Trims the buffer at the stream's next poll (and wakes the task to poll it).
    pub fn request(&self) {
        self.0.requested.set(true);
        if let Some(waker) = self.0.waker.take() {
            waker.wake();
        }
    }
}

/// See the module documentation.
pub(crate) struct LeanRead<R> {
    framed: FramedRead<R, FrameCodec>,
    trim: Rc<TrimState>,
    /// The buffer was given back: reserve the read capacity before the next read.
    released: bool,
}

impl<R> LeanRead<R> {
    /// Wraps `framed`, whose codec's read capacity is what a fresh buffer gets;
    /// `trim` asks it to give back a grown buffer.
    pub fn new(framed: FramedRead<R, FrameCodec>, trim: &ReadTrim) -> Self {
        LeanRead {
            framed,
            trim: trim.0.clone(),
            released: false,
        }
    }

    /// Gives the read buffer back if it is empty and either `grown_too` or it never
    /// grew beyond the read capacity (the codec knows: the buffer's `capacity()` is
    /// only that of the view left after the frames split off it). Returns whether it
    /// did.
    fn release(&mut self, grown_too: bool) -> bool {
        let grown = self.framed.decoder().buffer_grown();
        let buffer = self.framed.read_buffer_mut();
        if buffer.is_empty() && buffer.capacity() > 0 && (grown_too || !grown) {
            *buffer = BytesMut::new();
            self.framed.decoder_mut().buffer_replaced();
            self.released = true;
            return true;
        }
        false
    }

    /// Carries out a trim asked for, if the buffer can go now (it is empty); a
    /// trim that cannot stays asked for, until a poll finds the buffer empty.
    fn trim_if_asked(&mut self) -> bool {
        let trimmed = self.trim.requested.get() && self.release(true);
        if trimmed {
            self.trim.requested.set(false);
        }
        trimmed
    }
}

impl<R: AsyncRead + Unpin> Stream for LeanRead<R> {
    type Item = <FramedRead<R, FrameCodec> as Stream>::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // The inner stream is polled even for a trim: the task may have been woken by
        // the socket too, and that wake-up must not be lost. A trimmed buffer is not
        // refilled for this poll (the read, if any, starts small; the next poll refills).
        let trimmed = self.trim_if_asked();
        if self.released && !trimmed {
            self.released = false;
            let capacity = self.framed.decoder().read_capacity();
            let buffer = self.framed.read_buffer_mut();
            buffer.reserve(capacity.saturating_sub(buffer.len()));
        }
        let polled = Pin::new(&mut self.framed).poll_next(cx);
        if polled.is_pending() {
            // The end of a read batch: a trim asked for while bytes were buffered
            // (a partial frame, or frames left unread while the gate was closed)
            // happens now if they are gone.
            if !self.trim_if_asked() {
                self.release(false);
            }
            self.trim.waker.set(Some(cx.waker().clone()));
        }
        polled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{Decoded, Framing};
    use std::collections::VecDeque;
    use std::io;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;
    use tokio::io::ReadBuf;

    /// A socket that hands out scripted chunks, `Pending` when none is left.
    #[derive(Default)]
    struct Script {
        chunks: VecDeque<Vec<u8>>,
        reads: usize,
    }

    impl AsyncRead for Script {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            self.reads += 1;
            let Some(mut chunk) = self.chunks.pop_front() else {
                return Poll::Pending;
            };
            let n = chunk.len().min(buf.remaining());
            buf.put_slice(&chunk[..n]);
            if n < chunk.len() {
                self.chunks.push_front(chunk.split_off(n));
            }
            Poll::Ready(Ok(()))
        }
    }

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn frame(len: usize) -> Vec<u8> {
        let mut codec = FrameCodec::new(Framing::Crc);
        let mut wire = BytesMut::new();
        codec
            .encode_payload(&vec![7u8; len], true, &mut wire)
            .unwrap();
        wire.to_vec()
    }

    fn lean(chunks: &[Vec<u8>], trim: &ReadTrim) -> LeanRead<Script> {
        let script = Script {
            chunks: chunks.iter().cloned().collect(),
            reads: 0,
        };
        LeanRead::new(FramedRead::new(script, FrameCodec::new(Framing::Crc)), trim)
    }

    /// Polls until `Pending`: the payload lengths of the frames read.
    fn drain(stream: &mut LeanRead<Script>, cx: &mut Context<'_>) -> Vec<usize> {
        let mut lens = Vec::new();
        loop {
            match Pin::new(&mut *stream).poll_next(cx) {
                Poll::Ready(Some(Ok(Decoded::Frame(f)))) => lens.push(f.payload.len()),
                Poll::Pending => return lens,
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// A frame of `len` arrives and is read in one read (then one `Pending`).
    fn reads_in_one(stream: &mut LeanRead<Script>, cx: &mut Context<'_>, len: usize) {
        stream.framed.get_mut().chunks.push_back(frame(len));
        let reads = stream.framed.get_ref().reads;
        assert_eq!(drain(stream, cx), vec![len]);
        assert_eq!(
            stream.framed.get_ref().reads - reads,
            2,
            "one read, one Pending"
        );
    }

    fn capacity(stream: &mut LeanRead<Script>) -> usize {
        stream.framed.read_buffer_mut().capacity()
    }

    #[test]
    fn a_small_buffer_is_given_back_at_the_end_of_a_batch_and_reserved_again_to_read() {
        let trim = ReadTrim::default();
        let mut stream = lean(&[frame(100), frame(200)], &trim);
        let wakes = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        assert_eq!(drain(&mut stream, &mut cx), vec![100, 200]);
        assert_eq!(capacity(&mut stream), 0, "nothing held while waiting");
        // More arrives: the read capacity is reserved before the read, so the whole
        // chunk comes in one read.
        reads_in_one(&mut stream, &mut cx, 3000);
        assert_eq!(capacity(&mut stream), 0);
    }

    #[test]
    fn a_grown_buffer_is_kept_across_batches_until_a_trim_and_then_given_back() {
        let trim = ReadTrim::default();
        let mut stream = lean(&[frame(60_000)], &trim);
        let wakes = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        assert_eq!(drain(&mut stream, &mut cx), vec![60_000]);
        let grown = capacity(&mut stream);
        assert!(grown > 8 * 1024, "grown for the large frame: {grown}");
        stream.framed.get_mut().chunks.push_back(frame(60_000));
        assert_eq!(drain(&mut stream, &mut cx), vec![60_000]);
        assert!(
            capacity(&mut stream) > 8 * 1024,
            "kept for the next large frame"
        );

        trim.request();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1, "the task is woken");
        assert!(Pin::new(&mut stream).poll_next(&mut cx).is_pending());
        assert_eq!(capacity(&mut stream), 0, "trimmed, nothing refilled");
        // And it reads on as before.
        stream.framed.get_mut().chunks.push_back(frame(10));
        assert_eq!(drain(&mut stream, &mut cx), vec![10]);
    }

    #[test]
    fn a_grown_buffer_is_kept_while_its_frames_are_still_held() {
        // The handlers still hold the large frames: what is left of the buffer is a
        // small view of a large allocation, which must not count as a small buffer.
        let trim = ReadTrim::default();
        let mut stream = lean(&[frame(60_000), frame(60_000)], &trim);
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let mut cx = Context::from_waker(&waker);
        let mut held = Vec::new();
        loop {
            match Pin::new(&mut stream).poll_next(&mut cx) {
                Poll::Ready(Some(Ok(Decoded::Frame(f)))) => held.push(f),
                Poll::Pending => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(held.len(), 2);
        assert!(!stream.released, "a grown buffer waits for the trim");
        trim.request();
        assert!(Pin::new(&mut stream).poll_next(&mut cx).is_pending());
        assert!(stream.released);
        assert_eq!(capacity(&mut stream), 0);
        assert!(!stream.framed.decoder().buffer_grown());
    }

    #[test]
    fn a_trim_that_comes_with_data_reads_it() {
        // The socket's wake-up and the trim's arrive together: the data is read.
        let trim = ReadTrim::default();
        let mut stream = lean(&[frame(60_000)], &trim);
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let mut cx = Context::from_waker(&waker);
        assert_eq!(drain(&mut stream, &mut cx), vec![60_000]);
        stream.framed.get_mut().chunks.push_back(frame(30));
        trim.request();
        assert_eq!(drain(&mut stream, &mut cx), vec![30]);
        assert_eq!(capacity(&mut stream), 0);
        // And the next read gets the read capacity again.
        reads_in_one(&mut stream, &mut cx, 3000);
    }

    #[test]
    fn a_trim_asked_for_while_bytes_are_buffered_happens_once_they_are_read() {
        let trim = ReadTrim::default();
        let small = frame(100);
        let (head, tail) = small.split_at(50);
        let mut stream = lean(&[frame(60_000), head.to_vec()], &trim);
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let mut cx = Context::from_waker(&waker);
        assert_eq!(drain(&mut stream, &mut cx), vec![60_000]);
        // Half a small frame is buffered when the trim comes: it cannot happen yet.
        trim.request();
        assert_eq!(drain(&mut stream, &mut cx), Vec::<usize>::new());
        assert!(stream.framed.decoder().buffer_grown());
        // The rest arrives: once the buffer is empty, the grown buffer goes.
        stream.framed.get_mut().chunks.push_back(tail.to_vec());
        assert_eq!(drain(&mut stream, &mut cx), vec![100]);
        assert_eq!(capacity(&mut stream), 0);
        assert!(!stream.framed.decoder().buffer_grown());
        assert!(!trim.0.requested.get(), "done");
    }

    #[test]
    fn buffered_bytes_are_never_given_back() {
        let trim = ReadTrim::default();
        let whole = frame(60_000);
        let (head, tail) = whole.split_at(30_000);
        let mut stream = lean(&[head.to_vec()], &trim);
        let waker = Waker::from(Arc::new(Count(AtomicUsize::new(0))));
        let mut cx = Context::from_waker(&waker);
        assert_eq!(drain(&mut stream, &mut cx), Vec::<usize>::new());
        trim.request();
        assert_eq!(drain(&mut stream, &mut cx), Vec::<usize>::new());
        assert!(capacity(&mut stream) > 0, "half a frame buffered");
        stream.framed.get_mut().chunks.push_back(tail.to_vec());
        assert_eq!(drain(&mut stream, &mut cx), vec![60_000]);
    }
}
