//! The daemon's side of the admin socket.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::ops::{self, Target};
use super::{parse_request, AdminError, Response, MAX_LINE};
use crate::revocation::StatusAuthority;

/// How long a peer may take to send a request line.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Bind the socket at `path`, replacing a stale one (the state lock says no other daemon
/// runs), readable and writable by the owner only.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serve admin connections until `shutdown` resolves.
pub async fn serve(
    listener: UnixListener,
    authority: Arc<StatusAuthority>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let authority = Arc::clone(&authority);
        tokio::spawn(async move {
            if let Err(e) = connection(stream, authority).await {
                tracing::debug!(error = %e, "admin connection ended");
            }
        });
    }
}

/// Whether the peer may administer: root, or the user the daemon runs as.
fn authorised(stream: &UnixStream) -> Result<u32, AdminError> {
    let cred = stream
        .peer_cred()
        .map_err(|e| AdminError::new("forbidden", format!("no peer credentials: {e}")))?;
    let me = nix::unistd::geteuid().as_raw();
    if cred.uid() == 0 || cred.uid() == me {
        Ok(cred.uid())
    } else {
        Err(AdminError::new(
            "forbidden",
            format!("uid {} may not administer this appliance", cred.uid()),
        ))
    }
}

async fn connection(stream: UnixStream, authority: Arc<StatusAuthority>) -> std::io::Result<()> {
    let peer = authorised(&stream);
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read.take(u64::MAX));
    let uid = match peer {
        Ok(uid) => uid,
        Err(e) => {
            tracing::warn!(error = %e, "admin connection refused");
            return send(&mut write, Response::from_result(Err(e))).await;
        }
    };
    loop {
        let mut line = Vec::new();
        let read = tokio::time::timeout(
            READ_TIMEOUT,
            (&mut lines)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut line),
        )
        .await;
        match read {
            Ok(Ok(0)) | Err(_) => return Ok(()),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(_)) => {}
        }
        if line.len() > MAX_LINE {
            let e = AdminError::new("bad-request", format!("request over {MAX_LINE} bytes"));
            return send(&mut write, Response::from_result(Err(e))).await;
        }
        let outcome = match parse_request(&line) {
            Ok(command) => {
                tracing::info!(uid, ?command, "admin command");
                ops::execute(Target::Live(&authority), command).await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = &outcome {
            tracing::info!(uid, error = %e, "admin command failed");
        }
        send(&mut write, Response::from_result(outcome)).await?;
    }
}

async fn send(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    response: Response,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    write.flush().await
}
