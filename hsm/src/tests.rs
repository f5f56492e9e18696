//! The HSM layer against a real SoftHSM token in a temporary directory: every scheme signs
//! and verifies, a lost login or session is recovered, a full queue says "busy" at once,
//! and a key that could leave the token is refused.

use std::sync::Arc;
use std::time::Duration;

use cryptoki::mechanism::Mechanism;
use cryptoki::object::Attribute;
use secrecy::SecretString;

use signet_pki::{HashAlg, KeyAlgorithm, SignatureScheme};

use super::module::find_slot;
use super::quirks::Quirks;
use super::session::open_logged_in;
use super::*;

const LABEL: &str = "unit";
const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// One token per test process: SoftHSM reads SOFTHSM2_CONF once, at C_Initialize.
fn token() -> &'static (tempfile::TempDir, HsmSettings) {
    static TOKEN: std::sync::OnceLock<(tempfile::TempDir, HsmSettings)> =
        std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        softhsm::write_conf(dir.path()).expect("conf");
        softhsm::use_token_dir(dir.path());
        let pin = SecretString::from("4321");
        softhsm::init_token(
            MODULE.as_ref(),
            LABEL,
            &SecretString::from("87654321"),
            &pin,
        )
        .expect("token");
        let settings = HsmSettings {
            module: MODULE.into(),
            token_label: LABEL.into(),
            pin,
            workers: 2,
            queue_depth: 8,
            op_timeout: Duration::from_secs(5),
        };
        (dir, settings)
    })
}

/// A logout hits every session of the process: that test runs alone, the others share.
static LOGIN: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    LOGIN.read().unwrap_or_else(|e| e.into_inner())
}

fn hsm() -> Hsm {
    static HSM: std::sync::OnceLock<Hsm> = std::sync::OnceLock::new();
    HSM.get_or_init(|| {
        let hsm = Hsm::open(&token().1).expect("open");
        for (label, alg) in [
            ("rsa", KeyAlgorithm::Rsa(2048)),
            ("p256", KeyAlgorithm::EcP256),
            ("p384", KeyAlgorithm::EcP384),
        ] {
            hsm.generate_key_blocking(label, alg).expect("keygen");
        }
        hsm
    })
    .clone()
}

#[test]
fn every_scheme_signs_and_verifies() {
    let _shared = shared();
    let hsm = hsm();
    let cases = [
        ("rsa", SignatureScheme::RsaPkcs1v15(HashAlg::Sha256)),
        ("rsa", SignatureScheme::RsaPkcs1v15(HashAlg::Sha512)),
        ("rsa", SignatureScheme::RsaPss(HashAlg::Sha256)),
        ("rsa", SignatureScheme::RsaPss(HashAlg::Sha384)),
        ("p256", SignatureScheme::Ecdsa(HashAlg::Sha256)),
        ("p384", SignatureScheme::Ecdsa(HashAlg::Sha384)),
    ];
    for (label, scheme) in cases {
        let key = hsm.key_blocking(label).expect("key");
        let sig = hsm.sign_blocking(&key, scheme, b"message").expect("sign");
        key.public
            .verify_message(scheme, b"message", &sig)
            .expect("verifies");
        assert!(
            key.public.verify_message(scheme, b"massage", &sig).is_err(),
            "{label} {scheme:?}"
        );
        // The slow digest path agrees.
        key.public
            .verify_digest(scheme, &scheme.hash().digest(b"message"), &sig)
            .expect("digest path verifies");
    }
}

#[test]
fn generated_keys_never_leave_the_token() {
    let _shared = shared();
    let hsm = hsm();
    let key = hsm.key_blocking("p256").expect("key");
    assert_eq!(key.algorithm, KeyAlgorithm::EcP256);
    // Generating the same label twice is refused rather than shadowing the first key.
    assert!(matches!(
        hsm.generate_key_blocking("p256", KeyAlgorithm::EcP256),
        Err(HsmError::KeyExists(_))
    ));
}

#[test]
fn an_extractable_key_is_refused() {
    // Alone, on a pool of its own with fresh sessions: after the module-reset test, SoftHSM
    // may hand a stale session handle of the shared pool to another session.
    let _alone = LOGIN.write().unwrap_or_else(|e| e.into_inner());
    let _keys = hsm();
    let hsm = Hsm::open(&token().1).expect("open");
    hsm.run_blocking(|w| {
        let common = |private| {
            vec![
                Attribute::Token(true),
                Attribute::Private(private),
                Attribute::Label(b"leaky".to_vec()),
            ]
        };
        let mut public = common(false);
        public.extend([
            Attribute::Verify(true),
            Attribute::EcParams(vec![
                0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
            ]),
        ]);
        let mut private = common(true);
        private.extend([
            Attribute::Sign(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(true),
        ]);
        // Through the retry, as the pool's own operations: an earlier test may have left
        // this worker's session dead (module reset) or logged out.
        w.with_retry(|w| {
            w.session()?
                .generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)?;
            Ok(())
        })
    })
    .expect("make a leaky key");
    match hsm.key_blocking("leaky") {
        Err(HsmError::UnsafeKey { label, reason }) => {
            assert_eq!(label, "leaky");
            assert!(reason.contains("CKA_EXTRACTABLE"), "{reason}");
        }
        other => panic!("an extractable key was accepted: {other:?}"),
    }
}

#[test]
fn a_lost_login_is_recovered_without_a_restart() {
    let _alone = LOGIN.write().unwrap_or_else(|e| e.into_inner());
    let hsm = hsm();
    let key = hsm.key_blocking("p256").expect("key");
    let scheme = SignatureScheme::Ecdsa(HashAlg::Sha256);
    hsm.sign_blocking(&key, scheme, b"before").expect("sign");
    // Log the application out from a session of its own: every session loses its login.
    let ctx = hsm.context();
    let slot = find_slot(&ctx, LABEL).expect("slot");
    let pin = cryptoki::types::AuthPin::new("4321".into());
    let other = open_logged_in(&ctx, slot, &pin).expect("session");
    other.logout().expect("logout");
    drop(other);
    for _ in 0..4 {
        hsm.sign_blocking(&key, scheme, b"after logout")
            .expect("signs again after relogin");
    }
}

#[test]
fn a_full_queue_says_busy_at_once() {
    let _shared = shared();
    let settings = HsmSettings {
        workers: 1,
        queue_depth: 1,
        ..token().1.clone()
    };
    let hsm = Hsm::open(&settings).expect("open");
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let rx = Arc::new(std::sync::Mutex::new(rx));
    // Occupy the only worker until told, and fill the one queue slot.
    let r = Arc::clone(&rx);
    let _running = hsm.submit(move |_| {
        let _ = r.lock().map(|r| r.recv_timeout(Duration::from_secs(10)));
        Ok(())
    });
    std::thread::sleep(Duration::from_millis(50));
    let _queued = hsm.submit(|_| Ok(())).expect("one job fits in the queue");
    let start = std::time::Instant::now();
    assert!(matches!(hsm.submit(|_| Ok(())), Err(HsmError::Busy)));
    assert!(
        start.elapsed() < Duration::from_millis(50),
        "busy must not wait"
    );
    tx.send(()).expect("release the worker");
}

#[test]
fn a_module_reset_is_recovered_without_a_restart() {
    let _alone = LOGIN.write().unwrap_or_else(|e| e.into_inner());
    let hsm = hsm();
    let key = hsm.key_blocking("rsa").expect("key");
    let scheme = SignatureScheme::RsaPkcs1v15(HashAlg::Sha256);
    hsm.sign_blocking(&key, scheme, b"before").expect("sign");
    // C_Finalize then C_Initialize: every session handle the workers hold is now dead
    // (CKR_SESSION_HANDLE_INVALID), as after a network HSM's client restarts.
    hsm.context().finalize().expect("finalize");
    hsm.context()
        .initialize(cryptoki::context::CInitializeArgs::new(
            cryptoki::context::CInitializeFlags::OS_LOCKING_OK,
        ))
        .expect("initialize");
    for _ in 0..4 {
        hsm.sign_blocking(&key, scheme, b"after reset")
            .expect("signs again after reopening");
    }
}

/// Wait until `hsm` says ready, at most `limit`; returns how long it took.
fn until_ready(hsm: &Hsm, limit: Duration) -> Option<Duration> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if hsm.is_ready() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn a_lost_token_is_refused_at_once_and_reconnected_in_the_background() {
    // Alone: the reconnect finalises the module every pool of this process shares.
    let _alone = LOGIN.write().unwrap_or_else(|e| e.into_inner());
    let _keys = hsm();
    let hsm = Hsm::open(&token().1).expect("open");
    let key = hsm.key_blocking("p256").expect("key");
    let scheme = SignatureScheme::Ecdsa(HashAlg::Sha256);
    hsm.sign_blocking(&key, scheme, b"before").expect("sign");
    let readiness = hsm.readiness();

    hsm.force_lost();
    let start = std::time::Instant::now();
    assert!(matches!(
        hsm.sign_blocking(&key, scheme, b"while lost"),
        Err(HsmError::Lost)
    ));
    assert!(
        start.elapsed() < Duration::from_millis(50),
        "lost must not wait"
    );
    assert!(HsmError::Lost.is_unavailable());

    let took = until_ready(&hsm, Duration::from_secs(5)).expect("reconnected by itself");
    println!("reconnected in {took:?}");
    assert!(readiness.has_changed().expect("sender alive"));
    for _ in 0..4 {
        hsm.sign_blocking(&key, scheme, b"after reconnect")
            .expect("signs again");
    }
    assert!(hsm.alive());
}

#[test]
fn a_key_replaced_while_the_token_was_away_is_not_used() {
    let _alone = LOGIN.write().unwrap_or_else(|e| e.into_inner());
    let _keys = hsm();
    let hsm = Hsm::open(&token().1).expect("open");
    let key = hsm
        .generate_key_blocking("swapped", KeyAlgorithm::EcP256)
        .expect("keygen");
    // Another key under the same label, behind the pool's back (its cache keeps the old).
    hsm.run_blocking(|w| {
        w.with_retry(|w| keys::destroy(w.session()?, "swapped"))?;
        w.with_retry(|w| {
            let session = w.session()?;
            keys::generate(
                session,
                "swapped",
                KeyAlgorithm::EcP256,
                b"other",
                Quirks::default(),
            )
        })?;
        w.forget_handles();
        Ok(())
    })
    .expect("replace the key");

    hsm.force_lost();
    assert!(
        until_ready(&hsm, Duration::from_secs(3)).is_none(),
        "reconnected to a token whose key changed"
    );
    assert!(matches!(
        hsm.sign_blocking(&key, SignatureScheme::Ecdsa(HashAlg::Sha256), b"x"),
        Err(HsmError::Lost)
    ));
    assert!(hsm.alive(), "refusing the key is not being stuck");
}

#[test]
fn no_caller_waits_past_the_operation_timeout() {
    let _shared = shared();
    let settings = HsmSettings {
        workers: 2,
        op_timeout: Duration::from_millis(200),
        ..token().1.clone()
    };
    let hsm = Hsm::open(&settings).expect("open");
    let start = std::time::Instant::now();
    let slow = hsm.run_blocking(|_| {
        std::thread::sleep(Duration::from_millis(800));
        Ok(())
    });
    let waited = start.elapsed();
    assert!(matches!(slow, Err(HsmError::Timeout(_))), "{slow:?}");
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_millis(500),
        "waited {waited:?}"
    );
    // The other worker still answers: a slow call is not a lost token.
    assert!(hsm.random_blocking(1).is_ok());
    assert!(hsm.is_ready());
}

#[test]
fn device_errors_mean_lost_and_session_errors_mean_retry() {
    use cryptoki::error::{Error as CkError, RvError};
    let rv = |r| HsmError::Pkcs11(CkError::Pkcs11(r, cryptoki::context::Function::Sign));
    for r in [
        RvError::DeviceError,
        RvError::DeviceRemoved,
        RvError::TokenNotPresent,
        RvError::CryptokiNotInitialized,
    ] {
        assert!(rv(r).is_device_lost(), "{r:?}");
        assert!(!rv(r).is_session_lost(), "{r:?}");
        assert!(rv(r).is_unavailable(), "{r:?}");
    }
    for r in [RvError::SessionHandleInvalid, RvError::UserNotLoggedIn] {
        assert!(rv(r).is_session_lost(), "{r:?}");
        assert!(!rv(r).is_device_lost(), "{r:?}");
    }
    for r in [
        RvError::KeyTypeInconsistent,
        RvError::DataLenRange,
        RvError::GeneralError,
    ] {
        assert!(!rv(r).is_unavailable(), "{r:?}");
    }
    assert!(HsmError::TokenNotFound("t".into()).is_device_lost());
    assert!(HsmError::Timeout(Duration::from_secs(1)).is_unavailable());
    assert!(!HsmError::KeyChanged("k".into()).is_unavailable());
}

#[test]
fn workers_stuck_in_the_token_mark_it_lost_for_the_callers_after() {
    // Alone: the reconnect that follows finalises the module every pool shares.
    let _alone = LOGIN.write().unwrap_or_else(|e| e.into_inner());
    let _keys = hsm();
    let settings = HsmSettings {
        workers: 1,
        op_timeout: Duration::from_millis(200),
        ..token().1.clone()
    };
    let hsm = Hsm::open(&settings).expect("open");
    // The only worker does not come back (a token that stopped answering).
    let stuck = hsm.run_blocking(|_| {
        std::thread::sleep(Duration::from_millis(1000));
        Ok(())
    });
    assert!(matches!(stuck, Err(HsmError::Timeout(_))), "{stuck:?}");
    let start = std::time::Instant::now();
    assert!(matches!(hsm.random_blocking(1), Err(HsmError::Lost)));
    assert!(
        start.elapsed() < Duration::from_millis(50),
        "refused at once"
    );
    // Once the worker is back, the pool reconnects by itself.
    until_ready(&hsm, Duration::from_secs(5)).expect("ready again");
    assert!(hsm.random_blocking(1).is_ok());
}

#[test]
fn an_urgent_job_passes_the_bulk_work_queued_before_it() {
    let _shared = shared();
    let settings = HsmSettings {
        workers: 1,
        queue_depth: 16,
        ..token().1.clone()
    };
    let hsm = Hsm::open(&settings).expect("open");
    let (release, hold) = std::sync::mpsc::channel::<()>();
    let _running = hsm.submit(move |_| {
        let _ = hold.recv_timeout(Duration::from_secs(10));
        Ok(())
    });
    std::thread::sleep(Duration::from_millis(50));
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let note = |tag: &'static str| {
        let order = Arc::clone(&order);
        move |_: &mut session::WorkerSession| {
            order.lock().map(|mut o| o.push(tag)).ok();
            Ok(())
        }
    };
    let mut waits = Vec::new();
    for _ in 0..4 {
        waits.push(hsm.submit(note("bulk")).expect("queued"));
    }
    waits.push(hsm.urgent().submit(note("urgent")).expect("queued"));
    release.send(()).expect("release the worker");
    for rx in waits {
        rx.blocking_recv().expect("answered").expect("ran");
    }
    let order = order.lock().map(|o| o.clone()).unwrap_or_default();
    assert_eq!(order, ["urgent", "bulk", "bulk", "bulk", "bulk"]);
}

#[test]
fn a_batch_longer_than_the_operation_timeout_is_not_a_lost_token() {
    let _shared = shared();
    let _keys = hsm();
    let settings = HsmSettings {
        workers: 1,
        op_timeout: Duration::from_millis(150),
        ..token().1.clone()
    };
    let hsm = Hsm::open(&settings).expect("open");
    let key = hsm.key_blocking("rsa").expect("key");
    let scheme = SignatureScheme::RsaPkcs1v15(HashAlg::Sha256);
    let digests = vec![vec![7u8; 32]; 600];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let start = std::time::Instant::now();
    let signed = rt
        .block_on(hsm.sign_digests(&key, scheme, digests))
        .expect("the whole batch is signed");
    // Longer than one operation may take: it was cut into many short ones.
    assert!(
        start.elapsed() > Duration::from_millis(150),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(signed.len(), 600);
    assert!(signed.iter().all(Result::is_ok));
    assert!(
        hsm.is_ready(),
        "a long honest batch must not mark the token lost"
    );
}
