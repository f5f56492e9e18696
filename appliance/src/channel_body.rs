//! An HTTP body of known length fed through a channel: a signed PDF streamed from its
//! spool, or a document uploaded by `signetctl` with a progress bar.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use tokio::sync::mpsc;

/// Chunks waiting in the channel: a little read-ahead, bounded memory.
const DEPTH: usize = 4;

/// A body of exactly `len` bytes, sent by the other end of a channel.
pub struct ChannelBody {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    remaining: u64,
}

impl ChannelBody {
    /// A body of `len` bytes and the sender that feeds it.
    pub fn new(len: u64) -> (mpsc::Sender<std::io::Result<Bytes>>, ChannelBody) {
        let (tx, rx) = mpsc::channel(DEPTH);
        (tx, ChannelBody { rx, remaining: len })
    }
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                if bytes.len() as u64 > self.remaining {
                    return Poll::Ready(Some(Err(std::io::Error::other(
                        "more bytes than the body's length",
                    ))));
                }
                self.remaining -= bytes.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            // The sender gave up early: an error, so the peer never takes it for the whole.
            Poll::Ready(None) if self.remaining > 0 => Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the body ended early",
            )))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
