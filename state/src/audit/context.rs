//! The input of the API request being served: the body readers feed what they read into a
//! task-local SHA-256, so that the router can audit the digest of the input without each
//! handler passing it back.

use std::cell::RefCell;
use std::future::Future;

use sha2::{Digest, Sha256};

tokio::task_local! {
    static INPUT: RefCell<Option<Sha256>>;
}

/// Run `fut` (one request) with a fresh input digest; returns its output and the SHA-256
/// of whatever body it read (`None` if it read none).
pub async fn scope<F: Future>(fut: F) -> (F::Output, Option<[u8; 32]>) {
    INPUT
        .scope(RefCell::new(None), async {
            let out = fut.await;
            let digest = INPUT
                .try_with(|cell| cell.borrow_mut().take().map(|h| h.finalize().into()))
                .ok()
                .flatten();
            (out, digest)
        })
        .await
}

/// Note `bytes` of the request body as read (a no-op outside [`scope`]).
pub fn feed(bytes: &[u8]) {
    let _ = INPUT.try_with(|cell| {
        cell.borrow_mut()
            .get_or_insert_with(Sha256::new)
            .update(bytes);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn what_the_request_read_is_hashed_and_nothing_leaks_between_requests() {
        let ((), d) = scope(async {
            feed(b"ab");
            tokio::task::yield_now().await;
            feed(b"c");
        })
        .await;
        assert_eq!(d, Some(Sha256::digest(b"abc").into()));
        let ((), d) = scope(async {}).await;
        assert_eq!(d, None);
        feed(b"outside any request");
    }
}
