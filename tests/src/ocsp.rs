//! OCSP helpers for the end-to-end tests: requests built by hand (for what openssl's client
//! cannot send), responses read back, and the openssl client run against the appliance.

use std::path::Path;
use std::process::Command;

use const_oid::db::rfc6960::ID_PKIX_OCSP_NONCE;
use der::asn1::OctetString;
use der::{Decode, Encode};
use x509_cert::ext::Extension;
use x509_cert::Certificate;
use x509_ocsp::{BasicOcspResponse, CertStatus, OcspRequest, OcspResponse, OcspResponseStatus};

use signet_pki::ocsp::RequestedCert;
use signet_pki::HashAlg;

use crate::{run, run_ok, Appliance};

/// The (first) certificate of a file in the appliance's PKI directory.
pub fn pki_cert(app: &Appliance, file: &str) -> Certificate {
    let pem = std::fs::read_to_string(app.path(&format!("pki/{file}"))).expect("pem");
    signet_pki::x509::certificates_from_pem(&pem)
        .expect("certificates")
        .remove(0)
}

/// A DER OCSPRequest for `certs` (issued by `issuer`), with a nonce of `nonce_len` octets
/// (0: none).
pub fn request(issuer: &Certificate, certs: &[&Certificate], nonce_len: usize) -> Vec<u8> {
    let request_list = certs
        .iter()
        .map(|c| x509_ocsp::Request {
            req_cert: RequestedCert::for_certificate(issuer, c, HashAlg::Sha1)
                .expect("cert id")
                .cert_id,
            single_request_extensions: None,
        })
        .collect();
    let request_extensions = (nonce_len > 0).then(|| {
        let nonce = OctetString::new(vec![0x5a; nonce_len]).expect("nonce");
        vec![Extension {
            extn_id: ID_PKIX_OCSP_NONCE,
            critical: false,
            extn_value: OctetString::new(nonce.to_der().expect("der")).expect("ext"),
        }]
    });
    OcspRequest {
        tbs_request: x509_ocsp::TbsRequest {
            version: x509_ocsp::Version::V1,
            requestor_name: None,
            request_list,
            request_extensions,
        },
        optional_signature: None,
    }
    .to_der()
    .expect("encode")
}

/// The responseStatus of a DER OCSPResponse.
pub fn status(der: &[u8]) -> OcspResponseStatus {
    OcspResponse::from_der(der)
        .expect("an OCSPResponse")
        .response_status
}

/// The BasicOCSPResponse inside a successful DER OCSPResponse.
pub fn basic(der: &[u8]) -> BasicOcspResponse {
    let resp = OcspResponse::from_der(der).expect("an OCSPResponse");
    assert_eq!(resp.response_status, OcspResponseStatus::Successful);
    let bytes = resp.response_bytes.expect("responseBytes");
    BasicOcspResponse::from_der(bytes.response.as_bytes()).expect("BasicOCSPResponse")
}

/// The status of each SingleResponse, in order: "good", "revoked" or "unknown".
pub fn statuses(der: &[u8]) -> Vec<&'static str> {
    basic(der)
        .tbs_response_data
        .responses
        .iter()
        .map(|r| match r.cert_status {
            CertStatus::Good(_) => "good",
            CertStatus::Revoked(_) => "revoked",
            CertStatus::Unknown(_) => "unknown",
        })
        .collect()
}

/// The nonce octets echoed in a response, if any.
pub fn echoed_nonce(der: &[u8]) -> Option<Vec<u8>> {
    let exts = basic(der).tbs_response_data.response_extensions?;
    let ext = exts.iter().find(|e| e.extn_id == ID_PKIX_OCSP_NONCE)?;
    let inner = OctetString::from_der(ext.extn_value.as_bytes()).ok()?;
    Some(inner.as_bytes().to_vec())
}

/// `openssl ocsp` against `url` for `certs` (PKI file names) issued by the root; returns
/// its combined output. openssl checks the signature, the responder and the nonce.
pub fn openssl_ask(app: &Appliance, url: &str, certs: &[&Path], extra: &[&str]) -> String {
    let root = app.path("pki/root-ca.pem");
    let mut cmd = Command::new("openssl");
    // Options that shape the CertIDs (-sha256, -serial) go after -issuer, before -cert.
    cmd.arg("ocsp").arg("-issuer").arg(&root).args(extra);
    for c in certs {
        cmd.arg("-cert").arg(c);
    }
    cmd.arg("-url").arg(url).arg("-CAfile").arg(&root);
    let out = run(&mut cmd);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// thisUpdate and nextUpdate of the first SingleResponse.
pub fn update_times(der: &[u8]) -> (std::time::SystemTime, Option<std::time::SystemTime>) {
    let single = basic(der).tbs_response_data.responses.remove(0);
    (
        single.this_update.0.to_system_time(),
        single.next_update.map(|n| n.0.to_system_time()),
    )
}

/// `n` certificates with distinct serials from `first_serial` on, recorded as issued by the
/// root: the responder answers from the database, so the signature on them does not matter.
pub fn record_certificates(app: &Appliance, n: usize, first_serial: u64) -> Vec<Certificate> {
    let dir = tempfile::tempdir().expect("tmp");
    let key = dir.path().join("k.pem");
    run_ok(
        Command::new("openssl")
            .args([
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
            ])
            .arg(&key),
    );
    let certs: Vec<Certificate> = (0..n)
        .map(|i| {
            let out = dir.path().join(format!("{i}.pem"));
            run_ok(
                Command::new("openssl")
                    .args(["req", "-x509", "-key"])
                    .arg(&key)
                    .args(["-subj", &format!("/CN=crash-{i}"), "-days", "30"])
                    .args(["-set_serial", &format!("0x{:x}", first_serial + i as u64)])
                    .arg("-out")
                    .arg(&out),
            );
            let pem = std::fs::read_to_string(&out).expect("pem");
            signet_pki::x509::certificate_from_pem(&pem).expect("cert")
        })
        .collect();
    let store = app.store();
    let issued: Vec<(&str, &str, &x509_cert::Certificate)> =
        certs.iter().map(|c| ("root", "test", c)).collect();
    store.record_certificates(&issued).expect("record");
    certs
}
