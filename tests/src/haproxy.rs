//! Real HAProxy (Debian's `haproxy`) in front of two boxes, started with the shipped
//! `deploy/haproxy/signet.cfg` and the boxes' addresses in its environment, on ports the
//! test picks; stopped on drop.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{free_port, register_child, repo_root, unregister_child, Appliance};

/// A running HAProxy.
pub struct HaProxy {
    child: Option<Child>,
    /// The load-balanced API (mutual TLS passes through to the boxes).
    pub api: SocketAddr,
    /// The load-balanced public listener (OCSP, CRLs, anonymous TSA).
    pub public: SocketAddr,
    log: std::path::PathBuf,
}

impl HaProxy {
    /// Balance over `a` and `b`, whose ports must not change between starts
    /// ([`Appliance::pin_ports`]). Missing HAProxy is a failure: the install script puts it
    /// there.
    pub fn start(a: &Appliance, b: &Appliance, log_dir: &std::path::Path) -> HaProxy {
        let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let public: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().expect("addr");
        let mut cmd = Command::new("haproxy");
        cmd.arg("-db")
            .arg("-f")
            .arg(repo_root().join("deploy/haproxy/signet.cfg"))
            .env("SIGNET_LB_API", api.to_string())
            .env("SIGNET_LB_PUBLIC", public.to_string());
        for (name, app) in [("A", a), ("B", b)] {
            let (host, port) = app
                .public_listen
                .rsplit_once(':')
                .expect("public listen host:port");
            assert_ne!(port, "0", "box {name}: pin its ports before HAProxy");
            cmd.env(format!("SIGNET_{name}_API"), &app.api_listen)
                .env(format!("SIGNET_{name}_PUBLIC_HOST"), host)
                .env(format!("SIGNET_{name}_PUBLIC_PORT"), port);
        }
        let log = log_dir.join("haproxy.log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(std::fs::File::create(log.with_extension("err")).expect("log"))
            .spawn()
            .expect("haproxy not found: run scripts/install-deps.sh");
        register_child(child.id());
        let mut proxy = HaProxy {
            child: Some(child),
            api,
            public,
            log,
        };
        proxy.wait_listening();
        proxy
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(self.public).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("haproxy exited with {status}: {}", self.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "haproxy did not listen: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What HAProxy said on stderr (alerts, servers going up and down).
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default()
    }
}

impl Drop for HaProxy {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            unregister_child(child.id());
        }
    }
}
