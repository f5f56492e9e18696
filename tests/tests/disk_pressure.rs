//! A full disk under public load: the audit log and the spool on a small tmpfs, filled
//! while anonymous OCSP and CRL requests keep coming. The daemon stays up; while space is
//! short, public requests are counted (and the count recorded) instead of recorded one by
//! one, and PDF uploads get 507; once the disk is full an API request whose record cannot
//! be written is refused (503), never answered; when space returns the audit log takes
//! writes again by itself, says what it missed, and still verifies.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use signet_e2e::client::{demo_client_config, Connection};
use signet_e2e::pdf::synthetic_pdf;
use signet_e2e::{ocsp, run_ok, tsp, Appliance};

/// The tmpfs: small, so that filling it is quick.
const DISK_BYTES: u64 = 24 << 20;
/// The configured threshold: public requests are counted below it.
const MIN_FREE: u64 = 6 << 20;

/// A tmpfs mounted for the test, unmounted when it ends.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: &Path) -> SmallDisk {
        std::fs::create_dir_all(at).expect("mount point");
        run_ok(
            Command::new("mount")
                .args(["-t", "tmpfs", "-o"])
                .arg(format!("size={DISK_BYTES},mode=0700"))
                .arg("tmpfs")
                .arg(at),
        );
        SmallDisk(at.to_owned())
    }

    fn free(&self) -> u64 {
        let s = nix::sys::statvfs::statvfs(&self.0).expect("statvfs");
        s.blocks_available() * s.fragment_size()
    }

    /// Write a filler file until only `leave` bytes are free (0: until the disk is full).
    fn fill(&self, name: &str, leave: u64) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join(name)).expect("filler");
        let block = vec![0u8; 64 << 10];
        while self.free() > leave {
            let n = (self.free() - leave).min(block.len() as u64) as usize;
            if f.write_all(&block[..n.max(1)]).is_err() {
                break; // full
            }
        }
        let _ = f.sync_all();
    }

    fn empty(&self, name: &str) {
        std::fs::remove_file(self.0.join(name)).expect("remove filler");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The audit log's records of `kind`.
fn records(app: &Appliance, kind: &str) -> Vec<Value> {
    std::fs::read_to_string(app.path("audit/audit.log"))
        .expect("audit log")
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|r| r["event"]["kind"] == kind)
        .collect()
}

fn public_requests_recorded(app: &Appliance) -> usize {
    records(app, "request")
        .iter()
        .filter(|r| r["event"]["listener"] == "public")
        .count()
}

/// Anonymous load: `n` OCSP requests (pre-signed answers) and `n` CRL downloads on the
/// public listener; every one must be answered 200.
async fn public_load(public: std::net::SocketAddr, ocsp_request: &Bytes, n: usize) -> u64 {
    let mut conn = Connection::connect_plain(public).await.expect("public");
    let mut answered = 0;
    for _ in 0..n {
        let (status, _) = conn
            .post("/ocsp", "application/ocsp-request", ocsp_request.clone())
            .await
            .expect("OCSP answer");
        assert_eq!(status, 200, "OCSP under disk pressure");
        let req = hyper::Request::get("/crl/root.crl")
            .body(http_body_util::Full::new(Bytes::new()))
            .expect("request");
        let (status, _, _) = conn.send(req).await.expect("CRL answer");
        assert_eq!(status, 200, "CRL under disk pressure");
        answered += 2;
    }
    answered
}

/// One time-stamp over the API: the HTTP status.
async fn stamp(app: &Appliance, n: u64) -> u16 {
    let addr = app.addr.expect("api");
    let mut conn = Connection::connect(addr, demo_client_config(app))
        .await
        .expect("connect");
    let (status, _) = conn
        .post(
            "/v1/tsa",
            "application/timestamp-query",
            Bytes::from(tsp::request(format!("disk {n}").as_bytes(), n, false)),
        )
        .await
        .expect("answer");
    status.as_u16()
}

/// A PDF upload over the API: the HTTP status and the problem's `code`.
async fn upload_pdf(app: &Appliance) -> (u16, String) {
    let addr = app.addr.expect("api");
    let mut conn = Connection::connect(addr, demo_client_config(app))
        .await
        .expect("connect");
    let (status, body) = conn
        .post(
            "/v1/pdf/doc-rsa",
            "application/pdf",
            Bytes::from(synthetic_pdf(64 << 10, "disk pressure")),
        )
        .await
        .expect("answer");
    let code = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["code"].as_str().map(str::to_owned))
        .unwrap_or_default();
    (status.as_u16(), code)
}

async fn healthy(app: &Appliance) {
    let public = app.public_addr.expect("public");
    let mut conn = Connection::connect_plain(public).await.expect("public");
    let req = hyper::Request::get("/healthz")
        .body(http_body_util::Full::new(Bytes::new()))
        .expect("request");
    let (status, _, _) = conn.send(req).await.expect("healthz");
    assert_eq!(status, 200);
}

#[test]
fn a_full_disk_is_survived_recorded_and_recovered_from_without_a_restart() {
    let mut app = Appliance::init_with(|t| {
        let clients: toml::Table = toml::from_str(
            r#"clients = [{ name = "demo-app", match = { subject = "CN=demo-app,O=Signet" }, operations = ["tsa", "pdf"], keys = ["doc-rsa"] }]
[disk]
min_free_bytes = 6291456
public_summary_secs = 1
"#,
        )
        .expect("toml");
        for (k, v) in clients {
            t.insert(k, v);
        }
    });
    // The audit log and the spool on the small disk; everything else where it was.
    let disk = SmallDisk::mount(&app.path("small-disk"));
    for dir in ["audit", "spool"] {
        let moved = disk.0.join(dir);
        std::fs::create_dir_all(&moved).expect("dir");
        let old = app.path(dir);
        if old.exists() {
            run_ok(
                Command::new("cp")
                    .arg("-a")
                    .arg(format!("{}/.", old.display()))
                    .arg(&moved),
            );
            std::fs::remove_dir_all(&old).expect("remove");
        }
        std::os::unix::fs::symlink(&moved, &old).expect("symlink");
    }
    app.start();
    let public = app.public_addr.expect("public listener");
    let root = ocsp::pki_cert(&app, "root-ca.pem");
    let tsa_cert = ocsp::pki_cert(&app, "tsa.pem");
    let ocsp_request = Bytes::from(ocsp::request(&root, &[&tsa_cert], 0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let pause = || std::thread::sleep(Duration::from_millis(1200));

    // Plenty of room: every public request has its own record.
    let before = public_requests_recorded(&app);
    rt.block_on(public_load(public, &ocsp_request, 5));
    assert_eq!(public_requests_recorded(&app), before + 10);

    // Short of space, still writable: public requests counted, API requests recorded,
    // PDF uploads refused with 507.
    disk.fill("filler-1", MIN_FREE / 2);
    pause();
    let recorded_before = public_requests_recorded(&app);
    let mut counted = rt.block_on(public_load(public, &ocsp_request, 100));
    assert_eq!(
        rt.block_on(stamp(&app, 1)),
        200,
        "an API request while space is short"
    );
    assert_eq!(
        rt.block_on(upload_pdf(&app)),
        (507, "insufficient-storage".to_owned())
    );

    // Full: the public listener is still served; an API request whose record cannot be
    // written is refused, not answered.
    disk.fill("filler-2", 0);
    counted += rt.block_on(public_load(public, &ocsp_request, 100));
    // An anonymous connection that is not TLS: refused, and counted rather than recorded.
    rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(app.addr.expect("api"))
            .await
            .expect("connect");
        tcp.write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .expect("write");
        let mut rest = Vec::new();
        let _ = tcp.read_to_end(&mut rest).await;
    });
    counted += 1;
    rt.block_on(healthy(&app));
    // The log file's last page may still hold a few records: API requests are answered
    // (and recorded) until it does not, then refused.
    let mut stamps_ok = 2; // the one above, and the one at the end
    let mut n = 10;
    loop {
        n += 1;
        match rt.block_on(stamp(&app, n)) {
            200 => stamps_ok += 1,
            503 => break,
            other => panic!("a time-stamp on a full disk: HTTP {other}"),
        }
        assert!(n < 60, "records kept being written to a full disk");
    }
    assert_eq!(
        rt.block_on(stamp(&app, 100)),
        503,
        "answered without its record"
    );
    pause();
    rt.block_on(healthy(&app));

    // Space returns: no restart, writes resume, and the log says what happened.
    disk.empty("filler-2");
    disk.empty("filler-1");
    let deadline = Instant::now() + Duration::from_secs(10);
    while rt.block_on(stamp(&app, 200)) != 200 {
        assert!(
            Instant::now() < deadline,
            "the audit log never took writes again"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    pause();
    pause();
    assert_eq!(
        public_requests_recorded(&app),
        recorded_before,
        "public requests under pressure are counted, not recorded one by one"
    );
    let summarised: u64 = records(&app, "public-summary")
        .iter()
        .map(|r| r["event"]["requests"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        summarised, counted,
        "every public answer is in a recorded count"
    );
    let resumed = records(&app, "writes-resumed");
    assert!(
        resumed
            .iter()
            .any(|r| r["event"]["refused"].as_u64().unwrap_or(0) >= 2),
        "the log says it missed the refused requests: {resumed:?}"
    );
    rt.block_on(public_load(public, &ocsp_request, 2));
    pause();
    assert_eq!(
        public_requests_recorded(&app),
        recorded_before + 4,
        "recorded one by one again"
    );
    assert_eq!(
        rt.block_on(upload_pdf(&app)).0,
        200,
        "PDFs are signed again"
    );
    let tsa_recorded = records(&app, "request")
        .iter()
        .filter(|r| r["event"]["operation"] == "tsa" && r["event"]["status"] == 200)
        .count();
    assert_eq!(
        tsa_recorded, stamps_ok,
        "every time-stamp answered is recorded"
    );

    let verify = app.ctl(&["audit", "verify"]);
    assert!(
        verify.status.success(),
        "audit verify after the full disk: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(app.stop().expect("was running").success(), "{}", app.log());
    drop(disk);
}
