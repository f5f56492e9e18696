//! The peers that signetd's OCSP responder is measured against, run as a user would run
//! them: OpenSSL's own responder (`openssl ocsp -index ... -port`, which signs every answer
//! live) and cfssl's (`cfssl ocspserve`, which serves pre-signed answers from a file). Also
//! a throwaway PKI made with the openssl CLI, requests for it, and checks of the answers.
//!
//! OpenSSL 3.0's responder listens on every address whatever it is told (`-port` takes a
//! bare port number), so it must only be run in a private network namespace: call
//! [`enter_private_netns`] first thing in `main`. It also spins forever on a connection
//! that closes without sending a request, so nothing here ever connects to it to see
//! whether it is up: [`OpensslResponder::start`] waits for its port with `ss -ltn`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{register_child, run, run_ok, unregister_child};

/// Set in the environment of the process that [`enter_private_netns`] re-executes.
pub const NETNS_ENV: &str = "SIGNET_BENCH_NETNS";

/// Make sure this process runs in a network namespace of its own, with only a loopback
/// interface, which is up: re-execute the current program under `unshare --net` (with
/// `--user --map-root-user` added when not root) after `ip link set lo up`, with the same
/// arguments and [`NETNS_ENV`] set. Returns only in the private namespace; call it before
/// starting anything. Panics if that cannot be done: nothing here may listen on a shared
/// network.
pub fn enter_private_netns() {
    if std::env::var_os(NETNS_ENV).is_some() {
        let interfaces = net_interfaces();
        assert!(
            interfaces == ["lo"],
            "{NETNS_ENV} is set but this network namespace has the interfaces {interfaces:?}: \
             run the benchmark without setting it"
        );
        // Loopback must be up: a listener of our own must take a connection.
        let l = TcpListener::bind("127.0.0.1:0").expect("bind on loopback");
        TcpStream::connect_timeout(&l.local_addr().expect("addr"), Duration::from_secs(2))
            .expect("loopback is not up in the private network namespace");
        return;
    }
    let exe = std::env::current_exe().expect("current executable");
    let mut cmd = Command::new("unshare");
    if !nix::unistd::geteuid().is_root() {
        cmd.args(["--user", "--map-root-user"]);
    }
    cmd.args([
        "--net",
        "--",
        "sh",
        "-c",
        r#"ip link set lo up && exec "$0" "$@""#,
    ])
    .arg(exe)
    .args(std::env::args_os().skip(1))
    .env(NETNS_ENV, "1");
    let err = cmd.exec();
    panic!("cannot run {cmd:?} (util-linux's unshare, and iproute2's ip): {err}");
}

/// The network interfaces of this process's namespace, from /proc/net/dev.
fn net_interfaces() -> Vec<String> {
    std::fs::read_to_string("/proc/net/dev")
        .expect("/proc/net/dev")
        .lines()
        .skip(2)
        .filter_map(|l| l.split_once(':').map(|(name, _)| name.trim().to_owned()))
        .collect()
}

/// A TCP port that was free on 127.0.0.1 a moment ago (bound to port 0, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Check that `der` is a DER OCSPResponse whose responseStatus is successful and which
/// carries responseBytes: `30 len 0a 01 00 a0 ...`, its outer length covering it exactly.
/// (The error answers are OCSPResponses too, `30 03 0a 01 0N`, often with HTTP status 200.)
pub fn check_ocsp_response(der: &[u8]) -> Result<(), String> {
    let head: String = der.iter().take(8).map(|b| format!("{b:02x} ")).collect();
    if der.first() != Some(&0x30) {
        return Err(format!("not a DER SEQUENCE: {head}"));
    }
    let (len, header) = match der.get(1) {
        Some(&n) if n < 0x80 => (n as usize, 2),
        Some(&n) if (0x81..=0x84).contains(&n) => {
            let k = (n & 0x7f) as usize;
            let bytes = der
                .get(2..2 + k)
                .ok_or_else(|| format!("truncated: {head}"))?;
            (
                bytes.iter().fold(0usize, |a, b| a << 8 | *b as usize),
                2 + k,
            )
        }
        _ => return Err(format!("bad DER length: {head}")),
    };
    if header + len != der.len() {
        return Err(format!(
            "DER length {} but {} bytes: {head}",
            header + len,
            der.len()
        ));
    }
    match der.get(header..header + 3) {
        Some([0x0a, 0x01, 0x00]) => {}
        Some([0x0a, 0x01, s]) => {
            let name = match s {
                1 => "malformedRequest",
                2 => "internalError",
                3 => "tryLater",
                5 => "sigRequired",
                6 => "unauthorized",
                _ => "unknown",
            };
            return Err(format!("responseStatus {s} ({name})"));
        }
        _ => return Err(format!("no responseStatus: {head}")),
    }
    if der.get(header + 3) != Some(&0xa0) {
        return Err(format!("successful but no responseBytes: {head}"));
    }
    Ok(())
}

/// A throwaway PKI made with the openssl CLI: an RSA-2048 CA, an RSA-2048 delegated OCSP
/// signer (EKU OCSPSigning) and a P-256 leaf, all issued by the CA, and an openssl
/// `index.txt` in which the leaf is valid.
pub struct OcspPki {
    /// The directory of its files, where `request` and `presign` write theirs.
    pub dir: PathBuf,
    /// The CA certificate (PEM).
    pub ca_pem: PathBuf,
    /// The CA key (PEM).
    pub ca_key: PathBuf,
    /// The OCSP signer's certificate (PEM).
    pub signer_cert: PathBuf,
    /// The OCSP signer's key (PEM).
    pub signer_key: PathBuf,
    /// The leaf certificate (PEM).
    pub leaf_pem: PathBuf,
    /// The openssl CA database.
    pub index_txt: PathBuf,
    /// The leaf's serial number, in upper-case hex as openssl writes it.
    pub leaf_serial: String,
}

impl OcspPki {
    /// Make the PKI in `dir`.
    pub fn make(dir: &Path) -> OcspPki {
        let p = |name: &str| dir.join(name);
        let pki = OcspPki {
            dir: dir.to_owned(),
            ca_pem: p("ca.pem"),
            ca_key: p("ca.key"),
            signer_cert: p("rsigner.pem"),
            signer_key: p("rkey.pem"),
            leaf_pem: p("leaf.pem"),
            index_txt: p("index.txt"),
            leaf_serial: "2002".into(),
        };
        let openssl = || {
            let mut c = Command::new("openssl");
            c.current_dir(dir);
            c
        };
        run_ok(openssl().args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-noenc",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=Signet OCSP bench CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]));
        std::fs::write(
            p("signer.ext"),
            "basicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\n\
             extendedKeyUsage=critical,OCSPSigning\n",
        )
        .expect("signer.ext");
        std::fs::write(
            p("leaf.ext"),
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n",
        )
        .expect("leaf.ext");
        for (name, key_file, key, ext, serial, subject) in [
            (
                "rsigner",
                "rkey.pem",
                "rsa:2048",
                "signer.ext",
                "1001",
                "/CN=Signet OCSP bench responder",
            ),
            (
                "leaf",
                "leaf.key",
                "ec",
                "leaf.ext",
                pki.leaf_serial.as_str(),
                "/CN=leaf",
            ),
        ] {
            let mut req = openssl();
            req.args(["req", "-newkey", key]);
            if key == "ec" {
                req.args(["-pkeyopt", "ec_paramgen_curve:P-256"]);
            }
            let csr = format!("{name}.csr");
            run_ok(req.args([
                "-noenc", "-keyout", key_file, "-out", &csr, "-subj", subject,
            ]));
            run_ok(openssl().args([
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                &format!("0x{serial}"),
                "-days",
                "30",
                "-extfile",
                ext,
                "-out",
                &format!("{name}.pem"),
            ]));
        }
        // index.txt: status, expiry (YYMMDDHHMMSSZ), revocation date, serial, file, subject.
        let end = run_ok(openssl().args([
            "x509", "-in", "leaf.pem", "-noout", "-enddate", "-dateopt", "iso_8601",
        ]));
        // notAfter=2026-12-23 18:45:44Z
        let digits: String = end
            .trim()
            .trim_start_matches("notAfter=")
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        assert_eq!(digits.len(), 14, "leaf notAfter: {end}");
        std::fs::write(
            &pki.index_txt,
            format!(
                "V\t{}Z\t\t{}\tunknown\t/CN=leaf\n",
                &digits[2..],
                pki.leaf_serial
            ),
        )
        .expect("index.txt");
        pki
    }

    /// Write an OCSP request for the leaf (issued by the CA) to `dir/name` (DER), with a
    /// fresh nonce or none, and return its bytes.
    pub fn request(&self, name: &str, nonce: bool) -> Vec<u8> {
        let out = self.dir.join(name);
        run_ok(
            Command::new("openssl")
                .arg("ocsp")
                .arg("-issuer")
                .arg(&self.ca_pem)
                .arg("-cert")
                .arg(&self.leaf_pem)
                .arg(if nonce { "-nonce" } else { "-no_nonce" })
                .arg("-reqout")
                .arg(&out),
        );
        std::fs::read(&out).expect("request")
    }

    /// Answer the request in `dir/req` offline with `openssl ocsp -index ... -reqin`, signed
    /// by the delegated signer, valid for an hour; write it to `dir/resp` and return it.
    pub fn presign(&self, req: &str, resp: &str) -> Vec<u8> {
        let out = self.dir.join(resp);
        run_ok(
            Command::new("openssl")
                .arg("ocsp")
                .arg("-index")
                .arg(&self.index_txt)
                .arg("-CA")
                .arg(&self.ca_pem)
                .arg("-rsigner")
                .arg(&self.signer_cert)
                .arg("-rkey")
                .arg(&self.signer_key)
                .args(["-nmin", "60", "-reqin"])
                .arg(self.dir.join(req))
                .arg("-respout")
                .arg(&out),
        );
        std::fs::read(&out).expect("response")
    }

    /// Check `resp` (DER) fully with the openssl CLI as the answer to `req` (DER): a
    /// successful response whose signature verifies up to the CA, saying the leaf is good,
    /// and, if `expect_nonce`, echoing the request's nonce (else carrying none).
    pub fn verify_response(
        &self,
        req: &[u8],
        resp: &[u8],
        expect_nonce: bool,
    ) -> Result<(), String> {
        check_ocsp_response(resp)?;
        let tmp = tempfile::Builder::new()
            .prefix("verify-")
            .tempdir_in(&self.dir)
            .expect("tempdir");
        let (req_file, resp_file) = (tmp.path().join("req.der"), tmp.path().join("resp.der"));
        std::fs::write(&req_file, req).expect("write");
        std::fs::write(&resp_file, resp).expect("write");
        let out = run(Command::new("openssl")
            .args(["ocsp", "-resp_text", "-reqin"])
            .arg(&req_file)
            .arg("-respin")
            .arg(&resp_file)
            .arg("-CAfile")
            .arg(&self.ca_pem));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let fail = |why: &str| Err(format!("{why}:\n{text}"));
        if !out.status.success() || !text.contains("Response verify OK") {
            return fail("does not verify");
        }
        if !text.contains("Cert Status: good") {
            return fail("the leaf is not good");
        }
        if !text.contains(&format!("Serial Number: {}", self.leaf_serial)) {
            return fail("not about the leaf");
        }
        let has_nonce = text.contains("OCSP Nonce");
        if expect_nonce && (!has_nonce || text.contains("no nonce in response")) {
            return fail("the nonce is not echoed");
        }
        if !expect_nonce && has_nonce {
            return fail("a nonce nobody asked for");
        }
        Ok(())
    }
}

/// Start `cmd` with its stdout and stderr to `log`, registered to be killed at exit.
fn spawn_logged(cmd: &mut Command, log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("log file");
    let child = cmd
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log file"))
        .stderr(file)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    register_child(child.id());
    child
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
    unregister_child(child.id());
}

/// Panic with the log if the child has exited or the deadline has passed.
fn still_starting(child: &mut Child, what: &str, log: &Path, deadline: Instant) {
    let status = child.try_wait().expect("try_wait");
    let timed_out = Instant::now() > deadline;
    if status.is_some() || timed_out {
        if status.is_none() {
            kill(child);
        } else {
            unregister_child(child.id());
        }
        panic!(
            "{what} did not start ({}):\n{}",
            status.map_or("timed out".to_owned(), |s| s.to_string()),
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

/// `openssl ocsp -index ... -port PORT`: OpenSSL's responder, one process signing every
/// answer live with the delegated signer's key; killed on drop.
///
/// It answers HTTP/1.0 and closes the connection after every answer (no keep-alive).
pub struct OpensslResponder {
    child: Child,
    /// Where it answers (it listens on every address of the namespace, on this port).
    pub addr: SocketAddr,
    log: PathBuf,
}

impl OpensslResponder {
    /// Start it from `dir` (where its log goes) on a free port and wait until that port is
    /// listening, seen with `ss -ltn` (never by connecting: see the module's doc).
    pub fn start(
        dir: &Path,
        ca_pem: &Path,
        index_txt: &Path,
        signer_cert: &Path,
        signer_key: &Path,
    ) -> OpensslResponder {
        let port = free_port();
        let log = dir.join(format!("openssl-ocsp-{port}.log"));
        let mut child = spawn_logged(
            Command::new("openssl")
                .current_dir(dir)
                .arg("ocsp")
                .arg("-index")
                .arg(index_txt)
                .arg("-CA")
                .arg(ca_pem)
                .arg("-rsigner")
                .arg(signer_cert)
                .arg("-rkey")
                .arg(signer_key)
                .arg("-port")
                .arg(port.to_string())
                .args(["-nmin", "60"]),
            &log,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while !port_listening(port) {
            still_starting(&mut child, "openssl ocsp", &log, deadline);
            std::thread::sleep(Duration::from_millis(20));
        }
        OpensslResponder {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            log,
        }
    }

    /// Where it answers.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for OpensslResponder {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Whether some socket of this namespace listens on TCP `port` (`ss -ltnH sport = :PORT`).
fn port_listening(port: u16) -> bool {
    let out = run(Command::new("ss")
        .args(["-ltnH", "sport", "=", &format!(":{port}")])
        .stderr(Stdio::piped()));
    assert!(
        out.status.success(),
        "ss failed (iproute2): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.starts_with("LISTEN"))
}

/// `cfssl ocspserve`: cfssl's responder, serving pre-signed answers from a file (looked up
/// by the request's serial number, whatever else the request holds); killed on drop.
pub struct CfsslResponder {
    child: Child,
    /// Where it answers.
    pub addr: SocketAddr,
    log: PathBuf,
}

impl CfsslResponder {
    /// Write `responses` (DER OCSPResponses) to `dir` in the format `-responses` reads (each
    /// response's DER in standard base64 on a line of its own), start it on 127.0.0.1 on a
    /// free port, and wait until it says it read them all and answers HTTP.
    pub fn start(dir: &Path, responses: &[Vec<u8>]) -> CfsslResponder {
        let port = free_port();
        let file = dir.join(format!("cfssl-responses-{port}.txt"));
        let text: String = responses
            .iter()
            .map(|r| format!("{}\n", base64(r)))
            .collect();
        std::fs::write(&file, text).expect("responses file");
        let log = dir.join(format!("cfssl-ocspserve-{port}.log"));
        let mut child = spawn_logged(
            Command::new("cfssl")
                .current_dir(dir)
                .args(["ocspserve", "-address", "127.0.0.1", "-port"])
                .arg(port.to_string())
                .arg("-responses")
                .arg(&file),
            &log,
        );
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !answers_http(addr) {
            still_starting(&mut child, "cfssl ocspserve", &log, deadline);
            std::thread::sleep(Duration::from_millis(20));
        }
        let responder = CfsslResponder { child, addr, log };
        // It skips what it cannot parse, saying only how many it kept.
        let read = format!("Read {} OCSP responses", responses.len());
        assert!(
            responder.log().contains(&read),
            "cfssl did not read every response (expected `{read}`):\n{}",
            responder.log()
        );
        responder
    }

    /// Where it answers.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for CfsslResponder {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Whether something at `addr` answers an HTTP request with an HTTP status line. For
/// servers that cope with probes (not OpenSSL's responder).
fn answers_http(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET / HTTP/1.0\r\nHost: probe\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 5];
    s.read_exact(&mut head).is_ok() && &head == b"HTTP/"
}

/// Standard base64 with padding (RFC 4648 section 4).
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The GET form of an OCSP request (RFC 6960 appendix A.1): `/` and the URL-encoding of
/// the request's base64.
pub fn get_path(request: &[u8]) -> String {
    let mut path = String::from("/");
    for c in base64(request).chars() {
        match c {
            '+' => path.push_str("%2B"),
            '/' => path.push_str("%2F"),
            '=' => path.push_str("%3D"),
            c => path.push(c),
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
        assert_eq!(base64(&[0xfb, 0xff]), "+/8=");
        assert_eq!(get_path(&[0xfb, 0xff]), "/%2B%2F8%3D");
    }

    /// The throwaway PKI, the full verification (which must refuse what is wrong) and the
    /// cfssl peer, which needs no private network namespace (it listens on 127.0.0.1 only).
    #[test]
    fn pki_verification_and_cfssl() {
        let dir = tempfile::tempdir().unwrap();
        let pki = OcspPki::make(dir.path());
        let plain = pki.request("req.der", false);
        let nonce = pki.request("req-nonce.der", true);
        let presigned = pki.presign("req.der", "resp.der");
        pki.verify_response(&plain, &presigned, false).unwrap();
        assert!(pki.verify_response(&plain, &presigned, true).is_err());
        // No nonce where one is expected is refused; another request's nonce does not verify.
        assert!(pki.verify_response(&nonce, &presigned, true).is_err());
        let answered = pki.presign("req-nonce.der", "resp-nonce.der");
        pki.verify_response(&nonce, &answered, true).unwrap();
        let other = pki.request("req-nonce2.der", true);
        let e = pki.verify_response(&other, &answered, true).unwrap_err();
        assert!(e.contains("does not verify"), "{e}");
        assert!(pki
            .verify_response(&plain, &[0x30, 0x03, 0x0a, 0x01, 0x06], false)
            .is_err());

        let cfssl = CfsslResponder::start(dir.path(), std::slice::from_ref(&presigned));
        let (status, body) = crate::load::fetch(
            cfssl.addr(),
            &crate::load::LoadRequest::post("/", "application/ocsp-request", plain),
        )
        .unwrap();
        assert_eq!(status, 200);
        assert_eq!(&body[..], &presigned[..]);
        let pid = cfssl.child.id();
        drop(cfssl);
        assert!(!Path::new(&format!("/proc/{pid}")).exists(), "cfssl killed");
    }

    #[test]
    fn ocsp_response_check() {
        // The error answers.
        let e = check_ocsp_response(&[0x30, 0x03, 0x0a, 0x01, 0x06]).unwrap_err();
        assert!(e.contains("unauthorized"), "{e}");
        assert!(check_ocsp_response(&[0x30, 0x03, 0x0a, 0x01, 0x01]).is_err());
        assert!(check_ocsp_response(b"<html>").is_err());
        assert!(check_ocsp_response(&[]).is_err());
        // Successful, short and long form lengths.
        assert!(check_ocsp_response(&[0x30, 0x05, 0x0a, 0x01, 0x00, 0xa0, 0x00]).is_ok());
        let mut long = vec![0x30, 0x81, 0x86, 0x0a, 0x01, 0x00, 0xa0, 0x81, 0x80];
        long.extend([0u8; 0x80]);
        assert!(check_ocsp_response(&long).is_ok());
        long.push(0);
        assert!(check_ocsp_response(&long).is_err(), "trailing byte");
        // Successful without responseBytes is malformed.
        assert!(check_ocsp_response(&[0x30, 0x03, 0x0a, 0x01, 0x00]).is_err());
    }
}
