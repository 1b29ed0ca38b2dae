//! Taking connections off a listener, the same way for the proxy and the admin listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

/// A listener with a connection limit. The slot is taken *before* `accept`, so past the limit
/// new connections wait in the kernel's backlog instead of costing a task each (as tokio's
/// mini-redis). An accept error (EMFILE, ECONNABORTED) is logged and retried after a pause
/// that doubles from `first_pause` up to `max_pause` while errors go on, rather than ending
/// the server.
pub(crate) struct Acceptor {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    /// Names the listener in the log.
    name: &'static str,
    first_pause: Duration,
    max_pause: Duration,
}

impl Acceptor {
    /// The pauses are the first and the longest after accept errors.
    pub(crate) fn new(
        listener: TcpListener,
        name: &'static str,
        max_connections: usize,
        (first_pause, max_pause): (Duration, Duration),
    ) -> Acceptor {
        Acceptor {
            listener,
            slots: Arc::new(Semaphore::new(max_connections)),
            name,
            first_pause,
            max_pause,
        }
    }

    /// The next connection with its slot (released when the permit is dropped), or `None`
    /// once `shutdown` changes.
    pub(crate) async fn next(
        &self,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<(OwnedSemaphorePermit, TcpStream, SocketAddr)> {
        let slot = tokio::select! {
            // The semaphore is never closed; if it were, nothing more could be served.
            slot = self.slots.clone().acquire_owned() => slot.ok()?,
            _ = shutdown.changed() => return None,
        };
        let mut pause = self.first_pause;
        loop {
            tokio::select! {
                r = self.listener.accept() => match r {
                    Ok((stream, peer)) => return Some((slot, stream, peer)),
                    Err(e) => {
                        tracing::warn!(listener = self.name, error = %e, "accept failed; retrying");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(self.max_pause);
                    }
                },
                _ = shutdown.changed() => return None,
            }
        }
    }
}
