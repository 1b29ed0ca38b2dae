//! Request and response bodies for tests: a channel-fed body (streaming, or failing
//! mid-upload) and a complete one.

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, Full};
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::mpsc;

/// A body fed through a channel: each `Ok` is a data frame, an `Err` fails the body, dropping
/// the sender ends it. Used for streaming responses and for request bodies that break
/// mid-upload.
pub struct ChannelBody<E> {
    rx: mpsc::UnboundedReceiver<Result<Bytes, E>>,
}

pub fn channel_body<E>() -> (mpsc::UnboundedSender<Result<Bytes, E>>, ChannelBody<E>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (tx, ChannelBody { rx })
}

impl<E> http_body::Body for ChannelBody<E> {
    type Data = Bytes;
    type Error = E;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, E>>> {
        self.rx
            .poll_recv(cx)
            .map(|item| item.map(|r| r.map(Frame::data)))
    }
}

/// `inboxguard::forward::Body` holding `bytes`.
pub fn full_body(bytes: impl Into<Bytes>) -> inboxguard::forward::Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed()
}
