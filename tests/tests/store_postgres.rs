//! The store's PostgreSQL backend against a real PostgreSQL server (Debian's, started by
//! the test): two handles stand for two boxes on one database.

use std::collections::HashSet;
use std::process::Command;
use std::sync::OnceLock;
use std::time::SystemTime;

use signet::store::{
    CertStatus, ChangeRefused, PostgresTarget, SerialAllocator, StatusChange, Store, StoreError,
};
use signet_e2e::postgres::{Postgres, PASSWORD};
use signet_e2e::run_ok;
use x509_cert::Certificate;

/// One server for the tests of this binary that do not stop it.
fn shared() -> &'static Postgres {
    static SERVER: OnceLock<Postgres> = OnceLock::new();
    SERVER.get_or_init(Postgres::start)
}

fn target(pg: &Postgres, database: &str) -> PostgresTarget {
    PostgresTarget {
        url: pg.url(database),
        password: Some(PASSWORD.to_owned().into()),
        ca_file: Some(pg.ca_file()),
    }
}

/// Self-signed certificates with serials `first..first + n`: the store keeps what it is
/// given, the signature does not matter.
fn certificates(first: u64, n: u64) -> Vec<Certificate> {
    let dir = tempfile::tempdir().expect("tempdir");
    (first..first + n)
        .map(|serial| {
            let out = dir.path().join(format!("{serial}.pem"));
            run_ok(
                Command::new("openssl")
                    .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
                    .args(["ec_paramgen_curve:P-256", "-nodes", "-days", "30"])
                    .args(["-subj", &format!("/CN=pg-{serial}")])
                    .args(["-set_serial", &format!("0x{serial:x}")])
                    .arg("-keyout")
                    .arg(dir.path().join("k.pem"))
                    .arg("-out")
                    .arg(&out),
            );
            let pem = std::fs::read_to_string(&out).expect("pem");
            signet_pki::x509::certificate_from_pem(&pem).expect("cert")
        })
        .collect()
}

fn record(store: &Store, certs: &[Certificate]) {
    let issued: Vec<(&str, &str, &Certificate)> =
        certs.iter().map(|c| ("root", "test", c)).collect();
    store.record_certificates(&issued).expect("record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_boxes_share_certificates_statuses_serials_and_crl_numbers() {
    let pg = shared();
    let database = pg.create_database();
    // Connecting from async code is allowed: the store dials off the runtime's threads.
    let a = Store::connect(&target(pg, &database)).expect("box a");
    let b = Store::connect(&target(pg, &database)).expect("box b");
    assert_eq!(a.kind(), "postgres");
    record(&a, &certificates(0x1000, 3));
    assert_eq!(b.certificates().await.expect("list").len(), 3);

    let now = SystemTime::now();
    let revoked = a
        .change_status("1001", StatusChange::Revoke("keyCompromise".into()), now)
        .await
        .expect("db")
        .expect("revoked");
    assert!(matches!(revoked.status, CertStatus::Revoked { .. }));
    let seen = b.find_certificate("1001").await.expect("find");
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].status, revoked.status,
        "box b sees box a's revocation"
    );
    assert_eq!(
        b.change_status("1001", StatusChange::Unhold, now)
            .await
            .expect("db")
            .map(|r| r.status),
        Err(ChangeRefused::AlreadyRevoked("1001".into())),
        "a revocation is final on every box"
    );
    assert_eq!(
        b.change_status("abcdef", StatusChange::Unhold, now)
            .await
            .expect("db")
            .map(|r| r.status),
        Err(ChangeRefused::NotFound("abcdef".into()))
    );

    // TSA serials: two boxes, concurrent callers, never one serial twice.
    let (sa, sb) = (
        SerialAllocator::new(a.clone(), "tsa", 16),
        SerialAllocator::new(b.clone(), "tsa", 16),
    );
    let mut tasks = Vec::new();
    for alloc in [sa.clone(), sb.clone(), sa, sb] {
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for _ in 0..100 {
                got.push(alloc.next().await.expect("serial"));
            }
            got
        }));
    }
    let mut all = HashSet::new();
    for task in tasks {
        let got = task.await.expect("task");
        assert!(got.windows(2).all(|w| w[0] < w[1]), "increasing per caller");
        for serial in got {
            assert!(all.insert(serial), "serial {serial} handed out twice");
        }
    }
    assert_eq!(all.len(), 400);

    // CRL numbers: one increasing sequence across boxes; an older CRL never replaces a
    // newer one.
    let (n1, listed) = a.next_crl("root").await.expect("crl number");
    let (n2, _) = b.next_crl("root").await.expect("crl number");
    assert!(n2 > n1, "{n1} then {n2}");
    assert_eq!(listed.len(), 3);
    for (number, store) in [(n2, &b), (n1, &a)] {
        store
            .save_crl(signet::store::crls::StoredCrl {
                ca: "root".into(),
                number,
                this_update: 1,
                next_update: 2,
                der: vec![number as u8],
            })
            .await
            .expect("save");
    }
    let newest = a.latest_crl("root").await.expect("latest").expect("a CRL");
    assert_eq!(newest.number, n2);
    assert_eq!(a.integrity_check().expect("check"), "ok");
}

#[test]
fn bad_settings_are_one_line_errors_that_name_the_problem() {
    let pg = shared();
    let database = pg.create_database();
    let good = target(pg, &database);
    let expect_err = |t: PostgresTarget, needle: &str| {
        let err = match Store::connect(&t) {
            Ok(_) => panic!("connected with {t:?}"),
            Err(e) => e,
        };
        let text = err.to_string();
        assert!(!text.contains('\n'), "one line: {text}");
        assert!(text.contains(needle), "{text:?} should name {needle:?}");
        assert!(!text.contains(PASSWORD), "the password leaked: {text}");
        err
    };
    let wrong_password = PostgresTarget {
        password: Some("not-the-password".to_owned().into()),
        ..good.clone()
    };
    let err = expect_err(wrong_password, "password authentication failed");
    assert!(matches!(err, StoreError::Settings(_)), "{err:?}");
    let in_url = PostgresTarget {
        url: format!("{} password={PASSWORD}", good.url),
        ..good.clone()
    };
    expect_err(in_url, "store.password");
    let nobody_there = PostgresTarget {
        url: format!("host=127.0.0.1 port=1 user=signet dbname={database}"),
        ..good.clone()
    };
    let err = expect_err(nobody_there, "unreachable");
    assert!(matches!(err, StoreError::Unreachable(_)), "{err:?}");
    expect_err(
        PostgresTarget {
            url: "host=127.0.0.1 port=notaport".into(),
            ..good.clone()
        },
        "store.url",
    );
    expect_err(
        PostgresTarget {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..good.clone()
        },
        "store.ca_file",
    );
    // Another CA than the one that signed the server: the handshake fails.
    let stranger = Postgres::start_without_tls();
    let other_ca = PostgresTarget {
        url: pg.url(&database),
        ca_file: Some(stranger_ca()),
        ..good.clone()
    };
    expect_err(other_ca, "certificate");
    // TLS required, the server offers none.
    let clear_db = stranger.create_database();
    let clear = PostgresTarget {
        url: stranger.url(&clear_db),
        ..good.clone()
    };
    expect_err(clear, "TLS");
    drop(stranger);

    // A schema from a newer Signet is refused.
    drop(Store::connect(&good).expect("migrate"));
    pg.psql(&database, "UPDATE signet_schema SET version = 99");
    let err = expect_err(good, "newer than this Signet knows");
    assert!(matches!(err, StoreError::TooNew(99, _)), "{err:?}");
}

/// A CA certificate that signed nothing the server holds.
fn stranger_ca() -> std::path::PathBuf {
    let dir = tempfile::tempdir().expect("tempdir").keep();
    let ca = dir.join("other-ca.pem");
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "1", "-subj", "/CN=Some other CA"])
            .arg("-keyout")
            .arg(dir.join("other-ca.key"))
            .arg("-out")
            .arg(&ca),
    );
    ca
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_changes_nothing_and_the_store_reconnects_by_itself() {
    let mut pg = Postgres::start();
    let database = pg.create_database();
    let store = Store::connect(&target(&pg, &database)).expect("connect");
    record(&store, &certificates(0x2000, 2));
    pg.stop();
    let err = store
        .change_status(
            "2000",
            StatusChange::Revoke("keyCompromise".into()),
            SystemTime::now(),
        )
        .await
        .expect_err("no server");
    assert!(matches!(err, StoreError::Unreachable(_)), "{err:?}");
    assert!(matches!(
        store.certificates().await,
        Err(StoreError::Unreachable(_))
    ));
    pg.start_again();
    let listed = store.certificates().await.expect("reconnected");
    assert!(
        listed.iter().all(|r| r.status == CertStatus::Good),
        "the refused revoke left nothing behind: {listed:?}"
    );
    store
        .change_status(
            "2000",
            StatusChange::Revoke("keyCompromise".into()),
            SystemTime::now(),
        )
        .await
        .expect("db")
        .expect("revoked after the server came back");
}

#[test]
fn signetd_refuses_to_start_on_a_bad_store_with_one_line_that_names_it() {
    let pg = shared();
    let future = pg.create_database();
    drop(Store::connect(&target(pg, &future)).expect("migrate"));
    pg.psql(&future, "UPDATE signet_schema SET version = 99");
    let clear_server = Postgres::start_without_tls();
    let clear_db = clear_server.create_database();
    let mut app = signet_e2e::Appliance::init();
    let cases = [
        (
            pg.url(&pg.create_database()),
            "wrong",
            "password authentication failed",
        ),
        (clear_server.url(&clear_db), PASSWORD, "TLS"),
        (pg.url(&future), PASSWORD, "newer than this Signet knows"),
        (
            "host=127.0.0.1 port=1 user=signet dbname=x".to_owned(),
            PASSWORD,
            "unreachable",
        ),
    ];
    for (url, password, needle) in cases {
        app.edit_config(|t| {
            let mut store = toml::Table::new();
            store.insert("backend".into(), "postgres".into());
            store.insert("url".into(), url.clone().into());
            store.insert("password".into(), password.into());
            store.insert(
                "ca_file".into(),
                pg.ca_file().to_string_lossy().into_owned().into(),
            );
            t.insert("store".into(), toml::Value::Table(store));
        });
        let log = app.try_start().expect_err("started on a bad store");
        assert!(!log.contains("panicked"), "{log}");
        assert!(
            !log.contains(PASSWORD) && !log.contains("wrong\""),
            "a password in the log: {log}"
        );
        let (status, text) = log.split_once('\n').unwrap_or((&log, ""));
        assert!(
            status.starts_with("exited with exit status: ") && !status.ends_with(": 0"),
            "{log}"
        );
        // One line for the operator, `signetd: <what is wrong>`, names the problem.
        let said: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("signetd: "))
            .collect();
        assert!(
            said.len() == 1 && said[0].contains(needle),
            "one `signetd:` line names {needle:?}:\n{text}"
        );
    }
}
