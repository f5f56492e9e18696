//! Where things live under the state directory. The ceremony writes here, the daemon reads.

use std::path::{Path, PathBuf};

/// Paths under one state directory.
#[derive(Clone, Debug)]
pub struct StateLayout {
    root: PathBuf,
}

impl StateLayout {
    /// The layout under `root`.
    pub fn new(root: &Path) -> Self {
        StateLayout {
            root: root.to_owned(),
        }
    }

    /// The state directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// Certificates the appliance made or was given.
    pub fn pki_dir(&self) -> PathBuf {
        self.root.join("pki")
    }
    /// The root CA certificate (PEM).
    pub fn root_ca(&self) -> PathBuf {
        self.pki_dir().join("root-ca.pem")
    }
    /// The TSA certificate (PEM).
    pub fn tsa_cert(&self) -> PathBuf {
        self.pki_dir().join("tsa.pem")
    }
    /// The client CA certificate (PEM): issued by the root, the trust anchor of API clients.
    pub fn client_ca(&self) -> PathBuf {
        self.pki_dir().join("client-ca.pem")
    }
    /// The root CA's delegated OCSP signer certificate (PEM).
    pub fn ocsp_signer_cert(&self) -> PathBuf {
        self.pki_dir().join("ocsp-signer.pem")
    }
    /// The audit key's certificate (PEM): all an auditor needs to verify an export.
    pub fn audit_cert(&self) -> PathBuf {
        self.pki_dir().join("audit.pem")
    }
    /// The audit log's directory.
    pub fn audit_dir(&self) -> PathBuf {
        self.root.join("audit")
    }
    /// The audit log: one JSON record per line, hash-chained (its write-ahead ring beside
    /// it, `audit.log.ring`).
    pub fn audit_log(&self) -> PathBuf {
        self.audit_dir().join("audit.log")
    }
    /// The latest checkpoint's sequence number and hash (and the TPM counter's value),
    /// signed by the audit key, kept beside the log so that a log truncated past it is caught.
    pub fn audit_anchor(&self) -> PathBuf {
        self.audit_dir().join("anchor.json")
    }
    /// The TLS server certificate followed by its issuers (PEM).
    pub fn tls_chain(&self) -> PathBuf {
        self.pki_dir().join("tls-server-chain.pem")
    }
    /// The demo application's files.
    pub fn demo_dir(&self) -> PathBuf {
        self.root.join("demo")
    }
    /// The demo client certificate (PEM).
    pub fn demo_cert(&self) -> PathBuf {
        self.demo_dir().join("client.pem")
    }
    /// The demo client's software key (PKCS#8 PEM, mode 0600).
    pub fn demo_key(&self) -> PathBuf {
        self.demo_dir().join("client.key")
    }
    /// The SQLite database.
    pub fn database(&self) -> PathBuf {
        self.root.join("signet.db")
    }
}
