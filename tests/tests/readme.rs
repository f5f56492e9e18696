//! The README's first command does what it says: it runs signetd, and the commands it
//! prints get a timestamp that openssl verifies.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use signet_e2e::{repo_root, run};

#[test]
fn quickstart_runs_signetd_and_its_printed_commands_get_a_verified_timestamp() {
    let state = tempfile::Builder::new()
        .prefix("signet-quickstart-")
        .tempdir()
        .expect("tmp");
    let log_path = state.path().join("quickstart.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let mut child = Command::new("bash")
        .arg(repo_root().join("scripts/quickstart.sh"))
        .env("SIGNET_STATE_DIR", state.path().join("state"))
        .env("SIGNET_LISTEN", "127.0.0.1:0")
        .env("SIGNET_PUBLIC_LISTEN", "127.0.0.1:0")
        .env("SIGNET_METRICS_LISTEN", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .process_group(0)
        .spawn()
        .expect("quickstart");
    let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
    let stop = || {
        let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGTERM);
    };
    let deadline = Instant::now() + Duration::from_secs(600);
    let (text, addr) = loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if let Some(rest) = text.split("listening on https://").nth(1) {
            let addr: String = rest
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ':')
                .collect();
            break (text.clone(), addr);
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("quickstart exited with {status}:\n{text}");
        }
        if Instant::now() > deadline {
            stop();
            panic!("quickstart did not start signetd:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // Exactly the commands it printed, with the port it picked.
    let block: String = text
        .split("# --- try it ---")
        .nth(1)
        .and_then(|b| b.split("# ---").next())
        .unwrap_or_else(|| panic!("no try-it block:\n{text}"))
        .replace("127.0.0.1:0", &addr);
    let work = tempfile::tempdir().expect("tmp");
    let mut script = block;
    for scratch in ["signet-data.txt", "signet-req.tsq", "signet-resp.tsr"] {
        script = script.replace(
            &format!("/tmp/{scratch}"),
            &work.path().join(scratch).to_string_lossy(),
        );
    }
    let out = run(Command::new("bash")
        .args(["-euo", "pipefail", "-c"])
        .arg(&script));
    stop();
    let _ = child.wait();
    let out_text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the printed commands failed:\n{script}\n{out_text}"
    );
    assert!(out_text.contains("Status: Granted."), "{out_text}");
    assert!(out_text.contains("Verification: OK"), "{out_text}");
    // A healthy start says nothing alarming but the documented dev-profile warning (and, on
    // a machine without NTP, that the clock is not synchronised).
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let expected = [
        "running from the clear-text config",
        "clock is not synchronised; stamping anyway",
        "(dev profile only)",
    ];
    let alarming: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
        .filter(|l| !expected.iter().any(|e| l.contains(e)))
        .collect();
    assert!(
        alarming.is_empty(),
        "quickstart logged:\n{}",
        alarming.join("\n")
    );
    assert!(log.contains("running from the clear-text config"), "{log}");
}
