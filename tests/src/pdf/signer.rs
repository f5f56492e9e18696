//! A software signer for the outside producer (pyHanko), and the trust the judges are given.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{run_ok, Appliance};

/// A P-256 key made by openssl with a document-signing certificate issued by the appliance's
/// root (`signetctl cert issue`), so its OCSP and CRL URLs are the appliance's own.
pub struct SoftSigner {
    /// PEM private key, unencrypted.
    pub key: PathBuf,
    /// PEM certificate.
    pub cert: PathBuf,
    /// PEM chain above it (the root).
    pub chain: PathBuf,
}

impl SoftSigner {
    /// A new key and a certificate `CN=<cn>,O=Signet` from `app`'s root, in `app`'s state dir.
    pub fn issue(app: &Appliance, cn: &str) -> SoftSigner {
        let dir = app.path("soft-signers");
        std::fs::create_dir_all(&dir).expect("dir");
        let (key, csr) = crate::p256_csr(&dir, cn, &format!("/O=Signet/CN={cn}"));
        let cert = dir.join(format!("{cn}.pem"));
        let out = app.ctl(&[
            "cert",
            "issue",
            "--profile",
            "document-signing",
            "--csr",
            &csr.to_string_lossy(),
            "--out",
            &cert.to_string_lossy(),
        ]);
        assert!(
            out.status.success(),
            "cert issue: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SoftSigner {
            key,
            cert,
            chain: app.path("pki/root-ca.pem"),
        }
    }
}

/// The roots the judges trust: for pyHanko `--trust R --trust-replace`, for pdfsig an NSS
/// database (made with certutil) holding them as trusted CAs.
pub struct Trust {
    /// PEM roots.
    pub roots: Vec<PathBuf>,
    /// `sql:` NSS database directory for pdfsig.
    pub nssdb: PathBuf,
    _dir: tempfile::TempDir,
}

impl Trust {
    /// Trust exactly `roots`.
    pub fn new(roots: &[&Path]) -> Trust {
        let dir = tempfile::Builder::new()
            .prefix("signet-nss-")
            .tempdir()
            .expect("tempdir");
        let nssdb = dir.path().join("nssdb");
        std::fs::create_dir_all(&nssdb).expect("nssdb dir");
        let db = format!("sql:{}", nssdb.display());
        run_ok(Command::new("certutil").args(["-N", "-d", &db, "--empty-password"]));
        for (i, root) in roots.iter().enumerate() {
            run_ok(
                Command::new("certutil")
                    .args(["-A", "-d", &db, "-n", &format!("root{i}"), "-t", "CT,C,C"])
                    .arg("-i")
                    .arg(root),
            );
        }
        Trust {
            roots: roots.iter().map(|r| r.to_path_buf()).collect(),
            nssdb,
            _dir: dir,
        }
    }

    /// pyHanko's arguments: every root, and nothing from the OS store.
    pub fn pyhanko_args(&self) -> Vec<std::ffi::OsString> {
        let mut args = Vec::new();
        for r in &self.roots {
            args.push("--trust".into());
            args.push(r.as_os_str().to_owned());
        }
        args.push("--trust-replace".into());
        args
    }
}
