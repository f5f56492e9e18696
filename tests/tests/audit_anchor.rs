//! The audit anchor: signed by the audit key, and carrying a monotonic TPM counter (a real
//! swtpm). An older log and anchor put back together are a rollback that `audit verify`
//! names with both numbers, and signetd does not start on; a hand-edited anchor fails its
//! signature; a record rewritten after the last checkpoint breaks the chain.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use signet_e2e::swtpm::Swtpm;
use signet_e2e::{run, Appliance};

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn log_path(a: &Appliance) -> PathBuf {
    a.path("audit/audit.log")
}

fn anchor_path(a: &Appliance) -> PathBuf {
    a.path("audit/anchor.json")
}

fn anchor(a: &Appliance) -> Value {
    serde_json::from_slice(&std::fs::read(anchor_path(a)).expect("anchor")).expect("json")
}

fn lines(a: &Appliance) -> Vec<String> {
    std::fs::read_to_string(log_path(a))
        .expect("log")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `signetctl ARGS --config ...` with the TPM at `tcti` (SIGNET_TCTI), or none.
fn ctl(a: &Appliance, tcti: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = a.signetctl();
    if let Some(t) = tcti {
        cmd.env("SIGNET_TCTI", t);
    }
    run(cmd.args(args).arg("--config").arg(&a.config))
}

/// Admin commands (each one audited) until the log holds `n` more checkpoints.
fn checkpoints(a: &Appliance, n: usize) {
    let count = |a: &Appliance| {
        lines(a)
            .iter()
            .filter(|l| l.contains("\"kind\":\"checkpoint\""))
            .count()
    };
    let want = count(a) + n;
    let deadline = Instant::now() + Duration::from_secs(60);
    while count(a) < want {
        assert!(Instant::now() < deadline, "no checkpoints: {}", a.log());
        let out = a.ctl(&["status"]);
        assert!(out.status.success(), "{}", text(&out));
    }
}

fn start_with_tpm(a: &mut Appliance, tcti: &str) {
    let config = a.config.clone();
    a.try_start_from(config.as_os_str(), &[("SIGNET_TCTI", tcti)])
        .unwrap_or_else(|log| panic!("signetd with the TPM counter: {log}"));
}

#[test]
fn an_older_log_and_anchor_put_back_are_a_rollback_named_by_the_tpm_counter() {
    let tpm = Swtpm::start();
    let tcti = tpm.tcti();
    let mut a = Appliance::init_with(|t| {
        t["audit"]["checkpoint_every"] = toml::Value::Integer(4);
        t["audit"]["tpm_counter"] = toml::Value::String("required".into());
    });
    start_with_tpm(&mut a, &tcti);
    assert!(
        a.log().contains("audit rollback protection: TPM counter"),
        "{}",
        a.log()
    );
    checkpoints(&a, 2);
    // Online: the daemon reads the counter and the anchor together.
    let out = ctl(&a, None, &["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("rollback check: the TPM counter"),
        "{}",
        text(&out)
    );
    a.stop();

    // An early checkpoint: the log ends with it (stop writes one) and the anchor names it.
    let early_log = std::fs::read(log_path(&a)).unwrap();
    let early_anchor = std::fs::read(anchor_path(&a)).unwrap();
    let early: Value = serde_json::from_slice(&early_anchor).unwrap();
    let early_counter = early["tpm_counter"]
        .as_u64()
        .expect("the anchor carries the counter");
    let early_seq = early["seq"].as_u64().unwrap();
    assert!(early["signature"].is_string(), "{early}");
    let out = ctl(&a, Some(&tcti), &["audit", "verify", "--json"]);
    assert!(out.status.success(), "offline: {}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rollback_check"]["tpm_counter"], early_counter, "{v}");

    // More checkpoints, each one incrementing the counter.
    start_with_tpm(&mut a, &tcti);
    checkpoints(&a, 3);
    a.stop();
    let late = anchor(&a);
    let late_counter = late["tpm_counter"].as_u64().unwrap();
    assert!(late_counter >= early_counter + 3, "{early} {late}");
    let out = ctl(&a, Some(&tcti), &["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    let now = std::fs::read(log_path(&a)).unwrap();
    assert!(now.starts_with(&early_log), "the log only grows");

    // Put back: the log truncated to the early checkpoint, and the early genuine anchor.
    std::fs::write(log_path(&a), &early_log).unwrap();
    std::fs::write(anchor_path(&a), &early_anchor).unwrap();
    let out = ctl(&a, Some(&tcti), &["audit", "verify"]);
    assert!(!out.status.success(), "a rolled-back log verified");
    let want = format!(
        "audit log rolled back: the TPM counter is at {late_counter}, the anchor at \
         {early_counter} (checkpoint seq {early_seq})"
    );
    assert!(text(&out).contains(&want), "want `{want}`: {}", text(&out));

    // signetd does not start on it (it would sign a new anchor over the rollback).
    let config = a.config.clone();
    let log = a
        .try_start_from(config.as_os_str(), &[("SIGNET_TCTI", &tcti)])
        .expect_err("signetd started on a rolled-back log");
    assert!(log.contains(&want), "{log}");
    assert_eq!(
        std::fs::read(log_path(&a)).unwrap(),
        early_log,
        "nothing appended"
    );

    // Without the counter the same files pass: the signature alone cannot tell.
    a.edit_config(|t| t["audit"]["tpm_counter"] = toml::Value::String("off".into()));
    let out = ctl(&a, None, &["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("no TPM counter is kept"),
        "{}",
        text(&out)
    );
    a.edit_config(|t| t["audit"]["tpm_counter"] = toml::Value::String("required".into()));

    // The genuine files back: it verifies and starts again.
    std::fs::write(log_path(&a), &now).unwrap();
    std::fs::write(anchor_path(&a), serde_json::to_vec(&late).unwrap()).unwrap();
    let out = ctl(&a, Some(&tcti), &["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    start_with_tpm(&mut a, &tcti);
    a.stop();
}

#[test]
fn a_hand_edited_anchor_fails_its_signature() {
    let mut a = Appliance::init_with(|t| {
        t["audit"]["checkpoint_every"] = toml::Value::Integer(4);
    });
    a.start();
    assert!(
        a.log().contains("audit rollback protection is limited"),
        "{}",
        a.log()
    );
    checkpoints(&a, 3);
    a.stop();
    let out = ctl(&a, None, &["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    let genuine = std::fs::read(anchor_path(&a)).unwrap();
    let good = anchor(&a);
    let ls = lines(&a);

    // The forger's aim: the anchor moved back to an earlier checkpoint, the log cut there.
    // The chain alone would pass; the anchor's signature does not.
    let earlier: Value = ls
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["event"]["kind"] == "checkpoint")
        .find(|r| r["seq"] != good["seq"])
        .unwrap();
    let seq = earlier["seq"].as_u64().unwrap() as usize;
    let mut forged = good.clone();
    forged["seq"] = earlier["seq"].clone();
    forged["hash"] = earlier["hash"].clone();
    std::fs::write(log_path(&a), ls[..=seq].join("\n") + "\n").unwrap();
    std::fs::write(anchor_path(&a), serde_json::to_vec(&forged).unwrap()).unwrap();
    let out = ctl(&a, None, &["audit", "verify"]);
    assert!(!out.status.success(), "a forged anchor verified");
    assert!(
        text(&out).contains(&format!(
            "the audit anchor's signature does not verify with the audit certificate \
             (checkpoint seq {seq})"
        )),
        "{}",
        text(&out)
    );
    let log = a
        .try_start()
        .expect_err("signetd started on a forged anchor");
    assert!(log.contains("signature does not verify"), "{log}");

    // The log whole again, the hash alone changed: still its signature.
    std::fs::write(log_path(&a), ls.join("\n") + "\n").unwrap();
    let mut forged = good.clone();
    forged["hash"] = Value::String("ab".repeat(32));
    std::fs::write(anchor_path(&a), serde_json::to_vec(&forged).unwrap()).unwrap();
    let out = ctl(&a, None, &["audit", "verify"]);
    assert!(
        text(&out).contains("signature does not verify"),
        "{}",
        text(&out)
    );

    // No signature at all: named as such.
    let mut unsigned = good.clone();
    unsigned.as_object_mut().unwrap().remove("signature");
    unsigned.as_object_mut().unwrap().remove("algorithm");
    std::fs::write(anchor_path(&a), serde_json::to_vec(&unsigned).unwrap()).unwrap();
    let out = ctl(&a, None, &["audit", "verify"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("anchor is not signed"),
        "{}",
        text(&out)
    );

    // The genuine anchor back: it verifies.
    std::fs::write(anchor_path(&a), &genuine).unwrap();
    let out = ctl(&a, None, &["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn a_record_rewritten_after_the_last_checkpoint_breaks_the_chain() {
    let mut a = Appliance::init_with(|t| {
        t["audit"]["checkpoint_every"] = toml::Value::Integer(4);
    });
    a.start();
    checkpoints(&a, 1);
    // Records after the last checkpoint, then a crash: no closing checkpoint covers them.
    let covered = lines(&a).len();
    while lines(&a).len() < covered + 2 {
        assert!(a.ctl(&["status"]).status.success());
    }
    a.kill9();
    let ls = lines(&a);
    let last_checkpoint = ls
        .iter()
        .rposition(|l| l.contains("\"kind\":\"checkpoint\""))
        .unwrap();
    assert!(
        ls.len() > last_checkpoint + 1,
        "records after the checkpoint"
    );
    let out = ctl(&a, None, &["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));

    // One record after the checkpoint rewritten (its time): its hash no longer matches.
    let k = last_checkpoint + 1;
    let mut edited = ls.clone();
    let mut r: Value = serde_json::from_str(&edited[k]).unwrap();
    r["time_ms"] = Value::from(r["time_ms"].as_u64().unwrap() + 1);
    let mut rec: signet::audit::Record = serde_json::from_value(r).unwrap();
    edited[k] = rec.to_line();
    std::fs::write(log_path(&a), edited.join("\n") + "\n").unwrap();
    let out = ctl(&a, None, &["audit", "verify"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!("broken at record {k} ")),
        "{}",
        text(&out)
    );

    // What remains possible (README): a forger who recomputes the hashes from there on,
    // after the last checkpoint, passes; only the next checkpoint's signature would cover
    // those records. This pins that limit down, so that a change to it is seen.
    rec.hash = hex::encode(rec.digest());
    edited[k] = rec.to_line();
    let mut prev = rec.hash.clone();
    for line in edited.iter_mut().skip(k + 1) {
        let mut r: signet::audit::Record = serde_json::from_str(line).unwrap();
        r.prev = prev;
        r.hash = hex::encode(r.digest());
        prev = r.hash.clone();
        *line = r.to_line();
    }
    std::fs::write(log_path(&a), edited.join("\n") + "\n").unwrap();
    let out = ctl(&a, None, &["audit", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
}
