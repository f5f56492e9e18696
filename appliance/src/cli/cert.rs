//! `signetctl cert list|show|revoke|unhold`: through the running daemon's admin socket, or
//! straight on the database when no daemon runs (it publishes the change when it starts).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::admin::client::{self, ClientError};
use crate::admin::ops::{self, Target, REASONS};
use crate::admin::Command;
use crate::cli::progress::Progress;
use crate::issuance::{IssueRequest, Issuers, PROFILES};
use crate::layout::StateLayout;
use crate::statelock::StateLock;
use crate::store::Store;

/// Where to find the appliance.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// The appliance config.
    #[arg(long, default_value = "/etc/signet/appliance.toml", global = true)]
    pub config: PathBuf,
    /// The state directory (overrides the config's `state_dir`).
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Speak to the daemon on this admin socket (no config is read; the daemon must run).
    #[arg(long, global = true)]
    pub socket: Option<PathBuf>,
}

/// Issued certificates and their status.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    common: Common,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// List every issued certificate with its status.
    List,
    /// Show one certificate (status and PEM).
    Show {
        /// Serial number, hex (colons allowed).
        serial: String,
    },
    /// Revoke a certificate; `certificateHold` suspends it instead. Durable and published
    /// (OCSP and CRL) when this returns.
    Revoke {
        /// Serial number, hex (colons allowed).
        serial: String,
        /// Why (RFC 5280 CRLReason).
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(REASONS))]
        reason: String,
    },
    /// Lift a hold.
    Unhold {
        /// Serial number, hex (colons allowed).
        serial: String,
    },
    /// Issue a certificate from a PKCS#10 request (PEM), signed by the root CA in the token.
    Issue {
        /// The request file.
        #[arg(long)]
        csr: PathBuf,
        /// The certificate profile.
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(PROFILES))]
        profile: String,
        /// Lifetime in days (default: the config's `pki.leaf_days`).
        #[arg(long)]
        days: Option<u32>,
        /// A DNS name for the subjectAltName (repeatable).
        #[arg(long)]
        san_dns: Vec<String>,
        /// A URI for the subjectAltName (repeatable).
        #[arg(long)]
        san_uri: Vec<String>,
        /// Write the certificate (PEM) here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Put a chain from an outside CA in service for a key in the token: the first
    /// certificate must certify the key, each must be signed by the next and valid now.
    Import {
        /// The key's label (CKA_LABEL).
        #[arg(long)]
        key: String,
        /// The chain, PEM, the key's certificate first.
        file: PathBuf,
    },
}

/// Run the command and print its result.
pub fn exec(args: Args) -> Result<(), String> {
    let mut out_file = None;
    let command = match args.action {
        Action::List => Command::CertList,
        Action::Show { serial } => Command::CertShow { serial },
        Action::Revoke { serial, reason } => Command::CertRevoke { serial, reason },
        Action::Unhold { serial } => Command::CertUnhold { serial },
        Action::Issue {
            csr,
            profile,
            days,
            san_dns,
            san_uri,
            out,
        } => {
            out_file = out;
            let csr_pem =
                std::fs::read_to_string(&csr).map_err(|e| format!("{}: {e}", csr.display()))?;
            Command::CertIssue(IssueRequest {
                csr_pem,
                profile,
                days,
                san_dns,
                san_uri,
            })
        }
        Action::Import { key, file } => {
            let chain_pem =
                std::fs::read_to_string(&file).map_err(|e| format!("{}: {e}", file.display()))?;
            Command::CertImport {
                label: key,
                chain_pem,
            }
        }
    };
    let listing = command == Command::CertList;
    let importing = matches!(command, Command::CertImport { .. });
    let result = run(&args.common, command)?;
    if let (Some(path), Some(pem)) = (&out_file, result.get("pem").and_then(Value::as_str)) {
        std::fs::write(path, pem).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if args.common.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?
        );
    } else if listing {
        print_table(&result);
    } else if importing {
        print_imported(&result);
    } else {
        print_one(&result);
    }
    Ok(())
}

/// Send `command` to the daemon, or run it on the database if no daemon runs.
pub fn run(common: &Common, command: Command) -> Result<Value, String> {
    run_watched(common, command, &Progress::none())
}

/// [`run`], showing `progress` while it works (a bar where the work is done here).
pub fn run_watched(
    common: &Common,
    command: Command,
    progress: &Progress,
) -> Result<Value, String> {
    let mut shown = |done, total| {
        progress.set_length(total);
        progress.set(done);
    };
    let mut ask = |socket: &std::path::Path, command| {
        client::call_watched(socket, command, Duration::from_secs(60), &mut shown)
    };
    if let Some(socket) = &common.socket {
        return ask(socket, command).map_err(|e| e.to_string());
    }
    let config = super::load_config(&common.config, common.state_dir.clone())?;
    super::prepare_softhsm(&config);
    let socket = config.state_path(&config.admin.socket);
    match ask(&socket, command.clone()) {
        Ok(v) => Ok(v),
        Err(ClientError::NotRunning(_)) => match command {
            Command::ClientAdd(_) | Command::ClientRemove { .. } => {
                crate::admin::duties::check_offline(&config, &command, |_| Ok(None))?;
                edit_offline(&common.config, command)
            }
            command => {
                let origin =
                    crate::config_source::ConfigSource::new(&common.config, String::new()).origin();
                offline(&config, origin, command, progress)
            }
        },
        Err(e) => Err(e.to_string()),
    }
}

/// A client edit with no daemon running: the file named by `--config`, edited the same way
/// (it takes effect when signetd starts).
fn edit_offline(path: &std::path::Path, command: Command) -> Result<Value, String> {
    use crate::admin::client_edit::{add_client, apply, remove_client};
    let source = crate::config_source::ConfigSource::new(path, crate::config_source::tcti(None));
    let edited = match &command {
        Command::ClientAdd(c) => apply(&source, |t| add_client(t, c)),
        Command::ClientRemove { name } => apply(&source, |t| remove_client(t, name)),
        _ => return Err("not a config edit".into()),
    };
    let clients = edited.map_err(|e| crate::admin::AdminError::from(e).to_string())?;
    let mut answer = serde_json::json!({ "clients": clients, "config": source.name() });
    match command {
        Command::ClientAdd(c) => answer["added"] = Value::String(c.name),
        Command::ClientRemove { name } => answer["removed"] = Value::String(name),
        _ => {}
    }
    Ok(answer)
}

fn offline(
    config: &signet_config::Config,
    origin: signet_config::Origin,
    command: Command,
    progress: &Progress,
) -> Result<Value, String> {
    use crate::admin::{daemon_ops, key_ops};
    match &command {
        Command::Status | Command::CrlPublish | Command::Reload => {
            return Err("signetd is not running (this command acts on the running daemon)".into())
        }
        Command::ClientList => return daemon_ops::client_list(config).map_err(|e| e.to_string()),
        _ => {}
    }
    let layout = StateLayout::new(&config.state_dir);
    // Holding the lock proves no daemon runs (its socket may merely be gone).
    let _state = StateLock::acquire(layout.root())
        .map_err(|e| format!("{e}; is signetd running with another admin socket?"))?;
    if let Command::Audit(c) = command {
        let mut shown = |done, total| {
            progress.set_length(total);
            progress.set(done);
        };
        let counter = config
            .audit
            .uses_tpm_counter(origin)
            .then(|| crate::audit::TpmCounter {
                tcti: crate::config_source::tcti(None),
                index: config.audit.tpm_counter_index,
            });
        return crate::admin::audit_ops::offline(&layout, counter.as_ref(), c, &mut shown)
            .map_err(|e| e.to_string());
    }
    if let Command::KeyList | Command::KeyShow { .. } = &command {
        let hsm =
            crate::hsm::Hsm::open(&crate::settings::hsm(config)?).map_err(|e| e.to_string())?;
        let shown = match command {
            Command::KeyShow { label } => daemon_ops::key_show(&hsm, &label).map(|mut v| {
                daemon_ops::show_marked(&mut v, config, &label);
                if let Some(chain) = key_ops::stored_chain(config, &label) {
                    key_ops::show_chain(&mut v, &chain);
                }
                v
            }),
            _ => daemon_ops::key_list(&hsm),
        };
        return shown.map_err(|e| e.to_string());
    }
    let store = Store::open(&layout.database()).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    if let Command::Csr { .. } | Command::CertImport { .. } = &command {
        let hsm =
            crate::hsm::Hsm::open(&crate::settings::hsm(config)?).map_err(|e| e.to_string())?;
        runtime.block_on(async { officer_check(config, &hsm, &command) })?;
        let done = runtime.block_on(async {
            match command {
                Command::Csr {
                    label,
                    subject,
                    san_dns,
                } => key_ops::csr(&hsm, &label, &subject, &san_dns).await,
                Command::CertImport { label, chain_pem } => {
                    let target = key_ops::ImportTarget {
                        hsm: &hsm,
                        config,
                        store: &store,
                        keys: None,
                    };
                    key_ops::import(target, &label, &chain_pem).await
                }
                _ => Err(crate::admin::AdminError::new(
                    "internal",
                    "not a key command",
                )),
            }
        });
        return done.map_err(|e| e.to_string());
    }
    // Only issuance and key generation need the HSM (and so the PIN).
    let ca = match &command {
        Command::CertIssue(_) | Command::KeyGenerate { .. } => {
            let hsm =
                crate::hsm::Hsm::open(&crate::settings::hsm(config)?).map_err(|e| e.to_string())?;
            runtime.block_on(async { officer_check(config, &hsm, &command) })?;
            Some(runtime.block_on(async { Issuers::load(config, &hsm) })?)
        }
        _ => None,
    };
    runtime
        .block_on(ops::execute(Target::Offline(&store, ca.as_ref()), command))
        .map_err(|e| e.to_string())
}

/// Offline, the same separation of duties as on the socket ([`crate::admin::duties`]).
fn officer_check(
    config: &signet_config::Config,
    hsm: &crate::hsm::Hsm,
    command: &Command,
) -> Result<(), String> {
    crate::admin::duties::check_offline(config, command, |label| {
        crate::infrastructure::Infrastructure::load(config, hsm)?.of_label(hsm, label)
    })
}

fn field<'a>(v: &'a Value, name: &str) -> &'a str {
    v.get(name).and_then(Value::as_str).unwrap_or("")
}

fn print_table(list: &Value) {
    println!(
        "{:<34} {:<12} {:<9} {:<20} SUBJECT",
        "SERIAL", "PROFILE", "STATUS", "NOT AFTER"
    );
    for c in list.as_array().into_iter().flatten() {
        let not_after = c.get("not_after").and_then(Value::as_u64).unwrap_or(0);
        println!(
            "{:<34} {:<12} {:<9} {:<20} {}",
            field(c, "serial"),
            field(c, "profile"),
            field(c, "status"),
            httpdate::fmt_http_date(crate::store::certs::from_unix_secs(not_after))
                .get(5..16)
                .unwrap_or(""),
            field(c, "subject")
        );
    }
}

fn print_imported(v: &Value) {
    for key in ["label", "subject", "issuer", "serial"] {
        println!("{key:<10} {}", field(v, key));
    }
    println!(
        "{:<10} {}",
        "chain",
        v.get("chain_file").and_then(Value::as_str).unwrap_or("")
    );
    let in_service = v.get("in_service").and_then(Value::as_bool) == Some(true);
    println!(
        "{:<10} {}",
        "in use",
        if in_service {
            "now, by the running signetd"
        } else {
            "from the next start of signetd"
        }
    );
    if let Some(note) = v.get("note").and_then(Value::as_str) {
        println!("{note}");
    }
}

fn print_one(c: &Value) {
    for key in ["serial", "ca", "subject", "profile", "status", "reason"] {
        if let Some(v) = c.get(key).and_then(Value::as_str) {
            println!("{key:<8} {v}");
        }
    }
    if let Some(at) = c.get("at").and_then(Value::as_u64) {
        println!(
            "{:<8} {}",
            "since",
            httpdate::fmt_http_date(crate::store::certs::from_unix_secs(at))
        );
    }
    if let Some(pem) = c.get("pem").and_then(Value::as_str) {
        print!("{pem}");
    }
}
