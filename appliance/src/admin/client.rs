//! signetctl's side of the admin socket.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::{AdminError, Command, ProgressLine, Request, Response, PROTOCOL_VERSION};

/// Longest answer read: an audit export can be large.
const MAX_ANSWER: u64 = 1 << 30;

/// Why the daemon could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens on the socket (no daemon runs).
    #[error("no daemon at {0}")]
    NotRunning(String),
    /// The socket exists but the conversation failed.
    #[error("admin socket {path}: {source}")]
    Io {
        /// The socket.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The daemon's answer did not parse.
    #[error("admin socket: bad answer: {0}")]
    BadAnswer(String),
    /// The daemon refused or failed.
    #[error(transparent)]
    Refused(#[from] AdminError),
}

/// Send `command` to the daemon at `path` and wait (up to `timeout`) for its answer.
pub fn call(
    path: &Path,
    command: Command,
    timeout: Duration,
) -> Result<serde_json::Value, ClientError> {
    call_inner(path, command, timeout, None)
}

/// [`call`], passing `(done, total)` to `progress` whenever the daemon reports how far a
/// long command has got; `timeout` then bounds the wait between two reports.
pub fn call_watched(
    path: &Path,
    command: Command,
    timeout: Duration,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<serde_json::Value, ClientError> {
    call_inner(path, command, timeout, Some(progress))
}

fn call_inner(
    path: &Path,
    command: Command,
    timeout: Duration,
    mut progress: Option<&mut dyn FnMut(u64, u64)>,
) -> Result<serde_json::Value, ClientError> {
    let shown = path.display().to_string();
    let io = |source| ClientError::Io {
        path: shown.clone(),
        source,
    };
    let mut stream = match UnixStream::connect(path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ClientError::NotRunning(shown))
        }
        Err(e) => return Err(io(e)),
    };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let mut line = serde_json::to_vec(&Request {
        version: PROTOCOL_VERSION,
        command,
        progress: progress.is_some(),
    })
    .map_err(|e| ClientError::BadAnswer(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(io)?;
    let mut reader = BufReader::new(&stream);
    let response = loop {
        let mut answer = Vec::new();
        (&mut reader)
            .take(MAX_ANSWER)
            .read_until(b'\n', &mut answer)
            .map_err(io)?;
        match serde_json::from_slice::<ProgressLine>(&answer) {
            Ok(ProgressLine { progress: p }) => {
                if let Some(show) = progress.as_mut() {
                    show(p.done, p.total);
                }
            }
            Err(_) => {
                break serde_json::from_slice::<Response>(&answer).map_err(|e| {
                    ClientError::BadAnswer(format!("{e} (connection closed early?)"))
                })?
            }
        }
    };
    match (response.ok, response.result, response.error) {
        (true, Some(v), _) => Ok(v),
        (false, _, Some(e)) => Err(ClientError::Refused(e)),
        _ => Err(ClientError::BadAnswer("neither result nor error".into())),
    }
}

use std::io::Read as _;
