//! A connection whose writes must make progress: when a write (or flush) has waited
//! `write_timeout` without the socket taking a single byte (the client stopped reading), it
//! fails with `TimedOut` and the connection is closed. A slow client that keeps reading is
//! never cut: every byte taken restarts the clock.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

pub struct TimedIo<I> {
    io: I,
    timeout: Duration,
    /// Armed when a write first waits; cleared when one makes progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<I> TimedIo<I> {
    pub fn new(io: I, timeout: Duration) -> Self {
        Self {
            io,
            timeout,
            stalled: None,
        }
    }

    /// Passes `poll` through, failing it once the writes have waited `timeout` in a row.
    fn guard<T>(&mut self, cx: &mut Context<'_>, poll: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if poll.is_ready() {
            self.stalled = None;
            return poll;
        }
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client read nothing for server.write_timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for TimedIo<I> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for TimedIo<I> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write(cx, buf);
        this.guard(cx, poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.guard(cx, poll)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_flush(cx);
        this.guard(cx, poll)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let poll = Pin::new(&mut this.io).poll_shutdown(cx);
        this.guard(cx, poll)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A peer that reads nothing: once the pipe is full, the write fails with `TimedOut`
    /// instead of waiting forever.
    #[tokio::test]
    async fn a_write_the_peer_never_takes_fails() {
        let (ours, _theirs) = tokio::io::duplex(1024);
        let mut io = TimedIo::new(ours, Duration::from_millis(200));
        let err = io.write_all(&[0_u8; 64 * 1024]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }

    /// A peer that reads slowly but steadily is served in full, although the whole transfer
    /// takes longer than the timeout: each byte it takes restarts the clock.
    #[tokio::test]
    async fn a_slow_reader_that_keeps_reading_gets_everything() {
        let (ours, mut theirs) = tokio::io::duplex(1024);
        let mut io = TimedIo::new(ours, Duration::from_secs(2));
        let reader = async move {
            let mut got = 0;
            let mut buf = [0_u8; 64];
            loop {
                tokio::time::sleep(Duration::from_millis(10)).await;
                match theirs.read(&mut buf).await.unwrap() {
                    0 => return got,
                    n => got += n,
                }
            }
        };
        let writer = async move {
            io.write_all(&[1_u8; 16 * 1024]).await.unwrap();
            io.shutdown().await.unwrap();
        };
        let (got, ()) = tokio::join!(reader, writer);
        assert_eq!(got, 16 * 1024);
    }
}
