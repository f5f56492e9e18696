//! The daemon's side of the admin socket.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use super::dispatch::{self, Target};
use super::duties::{self, Grant, Role, Roles};
use super::{parse_request, AdminError, Advance, Command, ProgressLine, Response, MAX_LINE};
use crate::audit::{AuditLog, Event};
use crate::infrastructure::Infrastructure;
use crate::revocation::StatusAuthority;

/// How long a peer may take to send a request line.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a progress line may wait for a peer that does not read.
const PROGRESS_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Bind the socket at `path`, replacing a stale one (the state lock says no other daemon
/// runs): readable and writable by the owner, and by `group` when there is an admin group.
pub fn bind(path: &Path, group: Option<nix::unistd::Gid>) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(path)?;
    let mode = match group {
        Some(gid) => {
            nix::unistd::chown(path, None, Some(gid)).map_err(std::io::Error::from)?;
            0o660
        }
        None => 0o600,
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(listener)
}

/// The admin group named in the config, resolved.
pub fn admin_group(name: Option<&str>) -> Result<Option<nix::unistd::Gid>, String> {
    let Some(name) = name else { return Ok(None) };
    match nix::unistd::Group::from_name(name) {
        Ok(Some(g)) => Ok(Some(g.gid)),
        Ok(None) => Err(format!("admin group {name:?} does not exist")),
        Err(e) => Err(format!("admin group {name:?}: {e}")),
    }
}

/// What the admin socket acts on.
pub struct AdminContext {
    /// Certificates, their status, OCSP and CRLs.
    pub authority: Arc<StatusAuthority>,
    /// The audit log: every command is recorded before it is answered.
    pub audit: AuditLog,
    /// Members of this group may administer, besides root and the daemon's user.
    pub group: Option<nix::unistd::Gid>,
    /// Members of this group hold the CA officer role ([`super::duties`]), as root and
    /// the daemon's user do.
    pub officer: Option<(String, nix::unistd::Gid)>,
    /// Where the state lives.
    pub layout: crate::layout::StateLayout,
    /// What the daemon-wide commands (status, keys, CRLs, clients, reload) act on.
    pub daemon: super::daemon_ops::Daemon,
}

/// Serve admin connections until `shutdown` resolves.
pub async fn serve(
    listener: UnixListener,
    context: Arc<AdminContext>,
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
        let context = Arc::clone(&context);
        tokio::spawn(async move {
            if let Err(e) = connection(stream, context).await {
                tracing::debug!(error = %e, "admin connection ended");
            }
        });
    }
}

/// Who is on the other end, by SO_PEERCRED, and the role it holds.
struct Peer {
    uid: u32,
    user: Option<String>,
    grant: Option<Grant>,
}

impl Peer {
    fn who(&self) -> String {
        self.user
            .clone()
            .unwrap_or_else(|| format!("uid {}", self.uid))
    }
}

/// The roles of `context`'s groups.
fn roles(context: &AdminContext) -> Roles {
    let admin = context.group.map(|gid| {
        let name = nix::unistd::Group::from_gid(gid)
            .ok()
            .flatten()
            .map_or_else(|| gid.to_string(), |g| g.name);
        (name, gid)
    });
    Roles {
        admin,
        officer: context.officer.clone(),
    }
}

/// Whether the peer may administer: root, the user the daemon runs as, or a member of the
/// admin or officer group (primary or supplementary); and in which role.
fn authorised(stream: &UnixStream, roles: &Roles) -> Result<Peer, (Peer, AdminError)> {
    use nix::unistd::{Uid, User};
    let cred = match stream.peer_cred() {
        Ok(c) => c,
        Err(e) => {
            let peer = Peer {
                uid: u32::MAX,
                user: None,
                grant: None,
            };
            return Err((
                peer,
                AdminError::new(
                    "forbidden",
                    format!("permission denied: no peer credentials: {e}"),
                ),
            ));
        }
    };
    let user = User::from_uid(Uid::from_raw(cred.uid())).ok().flatten();
    let me = nix::unistd::geteuid().as_raw();
    let peer = Peer {
        uid: cred.uid(),
        user: user.as_ref().map(|u| u.name.clone()),
        grant: roles.grant(cred.uid(), cred.gid(), Some(me)),
    };
    if peer.grant.is_some() {
        return Ok(peer);
    }
    let why = match roles.admin {
        Some(_) => "is neither root nor in the admin group",
        None => "is not root",
    };
    let message = format!("permission denied: {} {why}", peer.who());
    Err((peer, AdminError::new("forbidden", message)))
}

/// Refuse `command` unless `peer`'s role allows it; returns what officer duty it is, if any.
async fn check_duty(
    context: &AdminContext,
    roles: &Roles,
    peer: &Peer,
    command: &Command,
) -> Result<Option<String>, AdminError> {
    let d = &context.daemon;
    let config = d
        .current_config()
        .map_err(|e| AdminError::new("internal", e))?;
    let duty = duties::officer_duty(command, &config.clients, |label| {
        Infrastructure::load(&config, &d.hsm)?.of_label(&d.hsm, label)
    })?;
    match (&duty, &peer.grant) {
        (None, _)
        | (
            Some(_),
            Some(Grant {
                role: Role::Officer,
                ..
            }),
        ) => Ok(duty),
        (Some(what), _) => Err(roles.refusal(&peer.who(), what)),
    }
}

async fn connection(stream: UnixStream, context: Arc<AdminContext>) -> std::io::Result<()> {
    let roles = roles(&context);
    let peer = authorised(&stream, &roles);
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read.take(u64::MAX));
    let peer = match peer {
        Ok(peer) => peer,
        Err((peer, e)) => {
            tracing::warn!(uid = peer.uid, error = %e, "admin connection refused");
            let _ = context
                .audit
                .record(Event::AdminRefused {
                    uid: (peer.uid != u32::MAX).then_some(peer.uid),
                    user: peer.user,
                    reason: e.message.clone(),
                })
                .await;
            return send(&mut write, &Response::from_result(Err(e))).await;
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
            return send(&mut write, &Response::from_result(Err(e))).await;
        }
        let outcome = answer(&context, &roles, &peer, &line, &mut write).await;
        send(&mut write, &Response::from_result(outcome)).await?;
    }
}

/// Run one request line for `peer` and put it on record; the outcome to send back.
async fn answer(
    context: &AdminContext,
    roles: &Roles,
    peer: &Peer,
    line: &[u8],
    write: &mut tokio::net::unix::OwnedWriteHalf,
) -> Result<serde_json::Value, AdminError> {
    let mut duty = None;
    let (command, outcome) = match parse_request(line) {
        Ok(request) => {
            let command = request.command;
            tracing::info!(uid = peer.uid, ?command, "admin command");
            let shown = serde_json::to_value(&command).unwrap_or_default();
            let outcome = match check_duty(context, roles, peer, &command).await {
                Err(e) => Err(e),
                Ok(d) => {
                    duty = d;
                    if request.progress {
                        execute_reporting(context, command, write).await
                    } else {
                        dispatch::execute(Target::Live(context), command, None).await
                    }
                }
            };
            (shown, outcome)
        }
        Err(e) => (
            serde_json::Value::String(String::from_utf8_lossy(line).chars().take(256).collect()),
            Err(e),
        ),
    };
    if let (Err(e), None) = (&outcome, &duty) {
        // A refusal for want of the officer role names the duty it was refused.
        if e.code == "forbidden" {
            duty = Some(e.message.clone());
        }
    }
    if let Err(e) = &outcome {
        tracing::info!(uid = peer.uid, error = %e, "admin command failed");
    }
    let event = Event::Admin {
        uid: peer.uid,
        user: peer.user.clone(),
        command,
        ok: outcome.is_ok(),
        error: outcome.as_ref().err().map(|e| e.code.clone()),
        role: peer.grant.as_ref().map(|g| g.role.name().to_owned()),
        role_via: peer.grant.as_ref().map(|g| g.via.clone()),
        duty,
    };
    // The answer goes out only once the command is on record.
    match context.audit.record(event).await {
        Ok(_) => outcome,
        Err(e) => Err(AdminError::new("audit-unavailable", e.to_string())),
    }
}

/// [`dispatch::execute`], passing on its progress to the peer as it comes. A peer that stops reading
/// stops getting progress, but the command still runs to its end and onto the record.
async fn execute_reporting(
    context: &AdminContext,
    command: Command,
    write: &mut tokio::net::unix::OwnedWriteHalf,
) -> Result<serde_json::Value, AdminError> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let work = dispatch::execute(Target::Live(context), command, Some(tx));
    tokio::pin!(work);
    let mut listening = true;
    let outcome = loop {
        tokio::select! {
            outcome = &mut work => break outcome,
            Some(progress) = rx.recv() => {
                listening = listening && pass_on(write, progress).await;
            }
        }
    };
    // What was reported just before the end (the last step, at 100%) still goes out.
    while let (true, Ok(progress)) = (listening, rx.try_recv()) {
        listening = pass_on(write, progress).await;
    }
    outcome
}

/// Send one progress line; false if the peer does not take it in time.
async fn pass_on(write: &mut tokio::net::unix::OwnedWriteHalf, progress: Advance) -> bool {
    let line = ProgressLine { progress };
    let sent = tokio::time::timeout(PROGRESS_WRITE_TIMEOUT, send(write, &line)).await;
    matches!(sent, Ok(Ok(())))
}

async fn send(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    line: &impl serde::Serialize,
) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(line).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    write.flush().await
}
