//! `signetctl config check FILE`: every problem of a config at once, each with its line
//! and column: syntax, schema, rules, certificate files, and key labels missing from the
//! token when the token can be reached.

use std::path::PathBuf;

use signet_config::validate::{certificate_findings, Finding};
use signet_config::{Config, Origin, Problem, SpanIndex};

use signet::config_source::{self, ConfigSource};
use signet::hsm::{Hsm, HsmError};

/// Check a config file.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The config: a clear-text file or `sealed:PATH`.
    pub file: PathBuf,
    /// The file is about to be sealed: the secrets the production profile keeps sealed
    /// are expected in it.
    #[arg(long)]
    pub to_seal: bool,
    /// Do not log in to the token to look for the configured key labels.
    #[arg(long)]
    pub offline: bool,
    /// The state directory (overrides the config's `state_dir`).
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// The TPM's TCTI for a sealed config [default: $SIGNET_TCTI, else device:/dev/tpmrm0].
    #[arg(long)]
    pub tcti: Option<String>,
}

/// What a check found.
#[derive(Debug)]
pub struct Report {
    /// The file as named in messages.
    pub name: String,
    /// Every problem, in file order.
    pub problems: Vec<Problem>,
    /// What could not be checked, and why.
    pub notes: Vec<String>,
}

/// Print every problem; fail if there is one.
pub fn exec(args: Args) -> Result<(), String> {
    let report = check(&args)?;
    for note in &report.notes {
        eprintln!("signetctl: note: {note}");
    }
    for p in &report.problems {
        println!("{}:{p}", report.name);
    }
    match report.problems.len() {
        0 => {
            println!("{}: OK", report.name);
            Ok(())
        }
        n => Err(format!(
            "{n} problem{} in {}",
            if n == 1 { "" } else { "s" },
            report.name
        )),
    }
}

/// Check the config `args` name.
pub fn check(args: &Args) -> Result<Report, String> {
    let source = ConfigSource::new(&args.file, config_source::tcti(args.tcti.clone()));
    let text = source.read_text()?;
    let origin = if args.to_seal {
        Origin::Sealed
    } else {
        source.origin()
    };
    let checked = Config::check(&text, origin, |_| Vec::new());
    let mut report = Report {
        name: source.name(),
        problems: checked.problems,
        notes: Vec::new(),
    };
    let Some(mut config) = checked.config else {
        report
            .notes
            .push("the file does not fit the schema: files and token not checked".into());
        return Ok(report);
    };
    if let Some(dir) = &args.state_dir {
        config.state_dir = dir.clone();
    }
    let mut findings = certificate_findings(&config);
    if args.offline {
        report
            .notes
            .push("--offline: key labels not looked for in the token".into());
    } else {
        match token_findings(&config) {
            Ok(f) => findings.extend(f),
            Err(why) => report
                .notes
                .push(format!("key labels not looked for in the token: {why}")),
        }
    }
    let index = SpanIndex::new(&text).map_err(|p| p.to_string())?;
    for (key, message) in findings {
        if !report.problems.iter().any(|p| p.key == key) {
            report.problems.push(index.problem_at_key(&key, message));
        }
    }
    report.problems.sort_by_key(|p| (p.line, p.column));
    Ok(report)
}

/// Every configured key label that the token does not hold as a usable key pair.
/// Err: the token could not be reached, so nothing was checked.
fn token_findings(config: &Config) -> Result<Vec<Finding>, String> {
    signet::settings::prepare_softhsm(config);
    let mut settings = signet::settings::hsm(config)?;
    settings.workers = 1;
    let hsm = Hsm::open(&settings).map_err(|e| e.to_string())?;
    let keys = &config.keys;
    let mut labels: Vec<(String, &str)> = vec![
        ("keys.root_ca.label".into(), &keys.root_ca.label),
        ("keys.tsa.label".into(), &keys.tsa.label),
        ("keys.tls_server.label".into(), &keys.tls_server.label),
        ("keys.ocsp_signer.label".into(), &keys.ocsp_signer.label),
        ("keys.audit.label".into(), &keys.audit.label),
        ("keys.client_ca.label".into(), &keys.client_ca.label),
    ];
    for (i, k) in config.signing_keys.iter().enumerate() {
        labels.push((format!("signing_keys[{i}].label"), &k.label));
    }
    let mut out = Vec::new();
    for (key, label) in labels {
        let why = match hsm.key_blocking(label) {
            Ok(_) => continue,
            Err(HsmError::KeyNotFound(_)) => format!(
                "no key pair labelled `{label}` on token `{}`; allowed: the label of a key \
                 pair in the token (`signetctl init` or `signetctl key generate` makes one)",
                config.hsm.token_label
            ),
            Err(e) => format!("key `{label}` on token `{}`: {e}", config.hsm.token_label),
        };
        out.push((key, why));
    }
    Ok(out)
}
