//! PKCS#10 requests made by OpenSSL (tests/data/csr) verify; a tampered one does not.
#![allow(clippy::expect_used)]

use signet_pki::x509::csr::verify_csr_pem;

fn vector(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/data/csr/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect(name)
}

#[test]
fn openssl_requests_verify_and_a_tampered_one_does_not() {
    for (file, cn) in [("ec.csr", "csr-ec"), ("rsa.csr", "csr-rsa")] {
        let csr = verify_csr_pem(&vector(file)).expect(file);
        assert_eq!(
            csr.subject.to_string(),
            format!("O=Signet,CN={cn}"),
            "RFC 4514 writes the last RDN first"
        );
    }
    assert!(verify_csr_pem(&vector("ec-tampered.csr")).is_err());
}
