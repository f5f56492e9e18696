//! Client identity with software keys: EKU, issuer binding, the appliance's own statuses
//! and an outside CA's CRL under both failure modes.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use der::Encode;
use p256::ecdsa::signature::Signer;
use p256::pkcs8::EncodePublicKey;
use spki::SubjectPublicKeyInfoOwned;

use signet_pki::crl::{CrlParams, RevokedEntry};
use signet_pki::x509::{self, CertificateParams, Issuer, Profile, Revocation};
use signet_pki::{HashAlg, RevocationReason, SignatureScheme};

use super::*;

const ECDSA: SignatureScheme = SignatureScheme::Ecdsa(HashAlg::Sha256);

struct Key(p256::ecdsa::SigningKey);

impl Key {
    fn new(seed: u8) -> Key {
        Key(p256::ecdsa::SigningKey::from_slice(&[seed; 32]).expect("key"))
    }
    fn spki(&self) -> SubjectPublicKeyInfoOwned {
        let der = self
            .0
            .verifying_key()
            .to_public_key_der()
            .expect("spki der");
        SubjectPublicKeyInfoOwned::from_der(der.as_bytes()).expect("spki")
    }
    fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let sig: p256::ecdsa::Signature = self.0.sign(msg);
        sig.to_der().as_bytes().to_vec()
    }
}

fn certificate(
    profile: Profile,
    dn: &str,
    key: &Key,
    serial: u8,
    issuer: Option<(&Certificate, &Key)>,
) -> Certificate {
    let params = CertificateParams {
        profile,
        subject: x509::parse_name(dn).expect("dn"),
        public_key: key.spki(),
        serial: vec![serial],
        not_before: SystemTime::now() - Duration::from_secs(60),
        lifetime: Duration::from_secs(3600),
        revocation: Revocation::default(),
    };
    let by = issuer.map(|(c, _)| Issuer::from_certificate(c, ECDSA));
    let tbs = x509::prepare(&params, by.as_ref(), ECDSA).expect("tbs");
    let signer = issuer.map_or(key, |(_, k)| k);
    let sig = signer.sign(tbs.tbs_der());
    tbs.finish(&sig).expect("cert")
}

/// The appliance's records, as the status index would answer.
#[derive(Default)]
struct Records(Mutex<HashMap<Vec<u8>, Standing>>);

impl IssuedStatus for Records {
    fn standing(&self, ca: &str, serial: &[u8]) -> Standing {
        assert_eq!(ca, "client-ca");
        self.0
            .lock()
            .expect("lock")
            .get(serial)
            .cloned()
            .unwrap_or(Standing::Unknown)
    }
}

struct World {
    own_key: Key,
    own: Certificate,
    partner_key: Key,
    partner: Certificate,
    records: Arc<Records>,
}

fn world() -> World {
    let own_key = Key::new(1);
    let own = certificate(
        Profile::Ca { path_len: Some(0) },
        "CN=Client CA",
        &own_key,
        1,
        None,
    );
    let partner_key = Key::new(2);
    let partner = certificate(
        Profile::Ca { path_len: None },
        "CN=Partner CA",
        &partner_key,
        2,
        None,
    );
    World {
        own_key,
        own,
        partner_key,
        partner,
        records: Arc::new(Records::default()),
    }
}

fn trust(w: &World, mode: RevocationFailMode) -> ClientTrust {
    ClientTrust::new("client-ca", w.own.clone(), w.records.clone())
        .with_outside_ca("partner", w.partner.clone(), mode)
        .expect("partner")
}

fn der(c: &Certificate) -> Vec<u8> {
    c.to_der().expect("der")
}

fn partner_crl(w: &World, revoked: &[u8], next_update: SystemTime) -> Vec<u8> {
    let params = CrlParams {
        issuer: Issuer::from_certificate(&w.partner, ECDSA),
        number: 1,
        this_update: SystemTime::now() - Duration::from_secs(3600 * 48),
        next_update,
        revoked: revoked
            .iter()
            .map(|s| RevokedEntry {
                serial: vec![*s],
                revoked_at: SystemTime::now() - Duration::from_secs(60),
                reason: Some(RevocationReason::KeyCompromise),
            })
            .collect(),
    };
    let prepared = signet_pki::crl::prepare(&params).expect("crl");
    let sig = w.partner_key.sign(prepared.tbs_der());
    prepared.finish(&sig).expect("crl")
}

#[test]
fn only_client_certificates_of_a_client_ca_in_good_standing_get_in() {
    let w = world();
    let t = trust(&w, RevocationFailMode::FailClosed);
    let leaf = Key::new(7);
    let client = certificate(
        Profile::TlsClient(vec![]),
        "CN=app",
        &leaf,
        0x10,
        Some((&w.own, &w.own_key)),
    );
    // Issued but not (yet) in the records: not taken.
    assert!(matches!(
        t.identify(&der(&client)),
        Err(Refusal::StatusUnknown { .. })
    ));
    w.records
        .0
        .lock()
        .expect("lock")
        .insert(vec![0x10], Standing::Good);
    let peer = t.identify(&der(&client)).expect("admitted");
    assert_eq!(&*peer.issuer, "client-ca");
    assert_eq!(peer.subject, "CN=app");
    assert_eq!(peer.serial, vec![0x10]);

    // Revoked after the handshake: the next check refuses the same identity.
    w.records.0.lock().expect("lock").insert(
        vec![0x10],
        Standing::Revoked {
            reason: "certificateHold".into(),
        },
    );
    match t.check(&peer) {
        Err(Refusal::Revoked { reason, serial, .. }) => {
            assert_eq!(reason, "certificateHold");
            assert_eq!(serial, "10");
        }
        other => panic!("not refused: {other:?}"),
    }
    assert!(t.identify(&der(&client)).is_err());

    // Same CA, same records, but not a client-authentication certificate.
    for (profile, serial) in [
        (Profile::DocumentSigning, 0x11),
        (Profile::TimeStamping, 0x12),
        (Profile::OcspSigning, 0x13),
    ] {
        w.records
            .0
            .lock()
            .expect("lock")
            .insert(vec![serial], Standing::Good);
        let c = certificate(profile, "CN=app", &leaf, serial, Some((&w.own, &w.own_key)));
        assert_eq!(t.identify(&der(&c)), Err(Refusal::NotForClientAuth));
    }

    // A CA under the same name but with another key: its certificates are nobody's.
    let impostor_key = Key::new(9);
    let impostor = certificate(
        Profile::Ca { path_len: None },
        "CN=Client CA",
        &impostor_key,
        3,
        None,
    );
    let forged = certificate(
        Profile::TlsClient(vec![]),
        "CN=app",
        &leaf,
        0x10,
        Some((&impostor, &impostor_key)),
    );
    assert_eq!(t.identify(&der(&forged)), Err(Refusal::UnknownIssuer));
    assert!(matches!(
        t.identify(b"\x30\x03\x02\x01\x00"),
        Err(Refusal::Malformed(_))
    ));
}

#[test]
fn an_outside_ca_answers_from_its_crl() {
    let w = world();
    let leaf = Key::new(8);
    let good = certificate(
        Profile::TlsClient(vec![]),
        "CN=app",
        &leaf,
        0x20,
        Some((&w.partner, &w.partner_key)),
    );
    let listed = certificate(
        Profile::TlsClient(vec![]),
        "CN=app",
        &leaf,
        0x21,
        Some((&w.partner, &w.partner_key)),
    );
    let tomorrow = SystemTime::now() + Duration::from_secs(86_400);

    let closed = trust(&w, RevocationFailMode::FailClosed);
    assert!(matches!(
        closed.identify(&der(&good)),
        Err(Refusal::StatusUnknown { .. })
    ));
    assert_eq!(
        closed.take_crl("partner", &partner_crl(&w, &[0x21], tomorrow)),
        Ok(1)
    );
    let peer = closed.identify(&der(&good)).expect("admitted");
    assert_eq!(&*peer.issuer, "partner");
    assert!(matches!(
        closed.identify(&der(&listed)),
        Err(Refusal::Revoked { .. })
    ));
    // A CRL signed by someone else, or one older than the one in force, is not taken.
    let mut bad = partner_crl(&w, &[], tomorrow + Duration::from_secs(60));
    let n = bad.len();
    bad[n - 5] ^= 1;
    assert!(closed.take_crl("partner", &bad).is_err());
    assert!(closed
        .take_crl(
            "partner",
            &partner_crl(&w, &[], tomorrow - Duration::from_secs(60))
        )
        .is_err());
    assert!(closed.identify(&der(&listed)).is_err());
    // Past its nextUpdate: fail-closed refuses, fail-open admits; a listed serial never.
    let stale = partner_crl(&w, &[0x21], SystemTime::now() - Duration::from_secs(60));
    let closed = trust(&w, RevocationFailMode::FailClosed);
    closed.take_crl("partner", &stale).expect("stale CRL read");
    assert!(matches!(
        closed.identify(&der(&good)),
        Err(Refusal::StatusUnknown { .. })
    ));
    let open = trust(&w, RevocationFailMode::FailOpen);
    assert!(open.identify(&der(&good)).is_ok());
    open.take_crl("partner", &stale).expect("stale CRL read");
    assert!(open.identify(&der(&good)).is_ok());
    assert!(matches!(
        open.identify(&der(&listed)),
        Err(Refusal::Revoked { .. })
    ));
    // PEM is taken too.
    let pem = format!(
        "-----BEGIN X509 CRL-----\n{}\n-----END X509 CRL-----\n",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            partner_crl(&w, &[], tomorrow + Duration::from_secs(120))
        )
    );
    assert_eq!(open.take_crl("partner", pem.as_bytes()), Ok(0));
    assert!(open.take_crl("client-ca", &stale).is_err());
}
