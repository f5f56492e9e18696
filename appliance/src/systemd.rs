//! The service manager's side of signetd (sd_notify(3), sd_listen_fds(3)): readiness and
//! status lines, the watchdog's keep-alives, and the listeners of `signetd.socket`.
//! Outside systemd (no `NOTIFY_SOCKET`, no `LISTEN_FDS`) each of these does nothing.

use std::future::Future;
use std::io;
use std::net::TcpListener;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::Duration;

/// Where state changes go: the datagram socket named by `NOTIFY_SOCKET`.
#[derive(Clone, Debug)]
pub struct Notifier {
    socket: Option<PathBuf>,
}

impl Notifier {
    /// The service manager of this process, if it has one.
    pub fn from_env() -> Notifier {
        Notifier {
            socket: std::env::var_os("NOTIFY_SOCKET").map(PathBuf::from),
        }
    }

    /// A notifier that sends to `socket`.
    pub fn to(socket: PathBuf) -> Notifier {
        Notifier {
            socket: Some(socket),
        }
    }

    /// `STATUS=`: what the daemon is doing, shown by `systemctl status`.
    pub fn status(&self, text: &str) {
        self.send(&format!("STATUS={text}\n"));
    }

    /// `READY=1`: every listener is bound and answers.
    pub fn ready(&self, text: &str) {
        self.send(&format!("READY=1\nSTATUS={text}\n"));
    }

    /// `STOPPING=1`: shutting down on request.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping\n");
    }

    /// `WATCHDOG=1`: alive (the HSM may be lost and being reconnected; STATUS= says so).
    pub fn keep_alive(&self) {
        self.send("WATCHDOG=1\n");
    }

    fn send(&self, message: &str) {
        let Some(path) = &self.socket else { return };
        if let Err(e) = send_datagram(path, message.as_bytes()) {
            tracing::warn!(socket = %path.display(), error = %e, "cannot notify the service manager");
        }
    }
}

/// One datagram to a socket path; a leading `@` names Linux's abstract namespace.
fn send_datagram(path: &std::path::Path, message: &[u8]) -> io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    let bytes = path.as_os_str().as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(path)?,
    };
    let sent = UnixDatagram::unbound()?.send_to_addr(message, &addr)?;
    if sent != message.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short datagram"));
    }
    Ok(())
}

/// The interval systemd expects keep-alives within (`WATCHDOG_USEC`), when it is meant for
/// this process (`WATCHDOG_PID` absent or ours).
pub fn watchdog_interval() -> Option<Duration> {
    if let Some(pid) = std::env::var_os("WATCHDOG_PID") {
        if pid.to_str()?.parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.parse().ok()?;
    (usec > 0).then(|| Duration::from_micros(usec))
}

/// Send a keep-alive every half `interval` while `healthy` answers `true` within that half.
/// A probe that fails or hangs withholds that keep-alive: twice in a row and systemd
/// restarts the service. signetd's probe asks whether its HSM reconnect loop is stuck in
/// the module: a token that is merely gone is reconnected without a restart.
pub async fn keep_alive<F, Fut>(
    notifier: Notifier,
    interval: Duration,
    healthy: F,
    shutdown: impl Future<Output = ()>,
) where
    F: Fn(Duration) -> Fut,
    Fut: Future<Output = bool>,
{
    let half = interval / 2;
    let mut ticks = tokio::time::interval(half);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = &mut shutdown => return,
        }
        if tokio::time::timeout(half, healthy(half))
            .await
            .unwrap_or(false)
        {
            notifier.keep_alive();
        } else {
            tracing::error!("the HSM module is stuck: watchdog keep-alive withheld");
        }
    }
}

/// Listeners the service manager opened for us (`signetd.socket`): `api` (mutual TLS) and
/// `public` (plain HTTP), by `FileDescriptorName=` when a socket is named so, otherwise in
/// that order.
#[derive(Debug, Default)]
pub struct ActivatedListeners {
    /// The mutual-TLS API.
    pub api: Option<TcpListener>,
    /// The plain-HTTP public listener.
    pub public: Option<TcpListener>,
}

impl ActivatedListeners {
    /// Take the sockets passed with `LISTEN_FDS`. Call before any thread starts: it unsets
    /// the variables so that nothing else takes the same descriptors.
    pub fn take_from_env() -> io::Result<ActivatedListeners> {
        let names = std::env::var("LISTEN_FDNAMES").ok();
        let mut fds = listenfd::ListenFd::from_env();
        let invalid = |m: String| io::Error::new(io::ErrorKind::InvalidInput, m);
        let mut taken = ActivatedListeners::default();
        for idx in 0..fds.len() {
            let role = match names.as_deref().and_then(|n| n.split(':').nth(idx)) {
                Some(name @ ("api" | "public")) => name,
                _ => *["api", "public"]
                    .get(idx)
                    .ok_or_else(|| invalid(format!("{} sockets: signetd takes two", fds.len())))?,
            };
            let listener = fds
                .take_tcp_listener(idx)?
                .ok_or_else(|| invalid(format!("socket #{idx} is not a TCP listener")))?;
            let slot = if role == "api" {
                &mut taken.api
            } else {
                &mut taken.public
            };
            if slot.replace(listener).is_some() {
                return Err(invalid(format!("two sockets for {role:?}")));
            }
        }
        Ok(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    fn listener() -> (tempfile::TempDir, UnixDatagram, Notifier) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_nonblocking(true).unwrap();
        (dir, socket, Notifier::to(path))
    }

    fn received(socket: &UnixDatagram) -> Vec<String> {
        let mut out = Vec::new();
        let mut buf = [0u8; 512];
        while let Ok(n) = socket.recv(&mut buf) {
            out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
        out
    }

    #[test]
    fn states_reach_the_socket_as_sd_notify_lines() {
        let (_dir, socket, notifier) = listener();
        notifier.status("opening the HSM");
        notifier.ready("serving");
        notifier.stopping();
        assert_eq!(
            received(&socket),
            [
                "STATUS=opening the HSM\n",
                "READY=1\nSTATUS=serving\n",
                "STOPPING=1\nSTATUS=stopping\n"
            ]
        );
    }

    #[test]
    fn abstract_socket_names_are_understood() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("signet-test-{}", std::process::id());
        let socket =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        socket.set_nonblocking(true).unwrap();
        Notifier::to(PathBuf::from(format!("@{name}"))).keep_alive();
        assert_eq!(received(&socket), ["WATCHDOG=1\n"]);
    }

    #[tokio::test(start_paused = true)]
    async fn keep_alives_stop_while_the_hsm_does_not_answer() {
        let (_dir, socket, notifier) = listener();
        let healthy = Arc::new(AtomicBool::new(true));
        let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        let h = Arc::clone(&healthy);
        let task = tokio::spawn(keep_alive(
            notifier,
            Duration::from_secs(2),
            move |_| {
                let ok = h.load(Ordering::SeqCst);
                async move { ok }
            },
            async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            },
        ));
        // Ticks at 0, 1, 2 and 3 s: four keep-alives.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert_eq!(received(&socket).len(), 4);
        healthy.store(false, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(received(&socket).is_empty(), "no keep-alive for a dead HSM");
        healthy.store(true, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(received(&socket), ["WATCHDOG=1\n"]);
        stop_tx.send(true).unwrap();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_probe_withholds_the_keep_alive() {
        let (_dir, socket, notifier) = listener();
        let (_stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(keep_alive(
            notifier,
            Duration::from_secs(2),
            |_| std::future::pending::<bool>(),
            async move {
                let _ = stop_rx.wait_for(|s| *s).await;
            },
        ));
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(received(&socket).is_empty());
    }
}
