//! The input of the API request being served: the body readers feed what they read into a
//! task-local SHA-256, so that the router can audit the digest of the input without each
//! handler passing it back. Handlers whose key or item count is in the body rather than the
//! path (the CSC API) note them here the same way.

use std::cell::RefCell;
use std::future::Future;

use sha2::{Digest, Sha256};

tokio::task_local! {
    static INPUT: RefCell<Option<Sha256>>;
    static NOTED: RefCell<Noted>;
}

/// What a handler noted of its request for the audit record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Noted {
    /// The signing key the request used, when its route does not name it.
    pub key: Option<String>,
    /// How many items (hashes, digests) it carried.
    pub items: Option<u64>,
}

/// What [`scope`] saw of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// SHA-256 of whatever body it read (`None` if it read none).
    pub input: Option<[u8; 32]>,
    /// What its handler noted.
    pub noted: Noted,
}

/// Run `fut` (one request) with a fresh input digest and nothing noted; returns its output
/// and what it read and noted.
pub async fn scope<F: Future>(fut: F) -> (F::Output, Seen) {
    INPUT
        .scope(RefCell::new(None), async {
            NOTED
                .scope(RefCell::new(Noted::default()), async {
                    let out = fut.await;
                    let input = INPUT
                        .try_with(|cell| cell.borrow_mut().take().map(|h| h.finalize().into()))
                        .ok()
                        .flatten();
                    let noted = NOTED.try_with(|cell| cell.take()).unwrap_or_default();
                    (out, Seen { input, noted })
                })
                .await
        })
        .await
}

/// Note the key the request used (a no-op outside [`scope`]). Cut to 64 characters: it
/// came from outside.
pub fn note_key(key: &str) {
    let _ = NOTED.try_with(|cell| cell.borrow_mut().key = Some(key.chars().take(64).collect()));
}

/// Note how many items the request carried (a no-op outside [`scope`]).
pub fn note_items(n: u64) {
    let _ = NOTED.try_with(|cell| cell.borrow_mut().items = Some(n));
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
        let ((), seen) = scope(async {
            feed(b"ab");
            tokio::task::yield_now().await;
            feed(b"c");
            note_key("doc-rsa");
            note_items(3);
        })
        .await;
        assert_eq!(seen.input, Some(Sha256::digest(b"abc").into()));
        assert_eq!(
            seen.noted,
            Noted {
                key: Some("doc-rsa".into()),
                items: Some(3)
            }
        );
        let ((), seen) = scope(async {}).await;
        assert_eq!(seen, Seen::default());
        feed(b"outside any request");
        note_items(1);
    }
}
