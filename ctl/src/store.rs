//! `signetctl store migrate --to postgres`: move a one-box appliance's state (certificates
//! and their statuses, counters with the TSA serials' high-water mark and the CRL numbers,
//! the newest CRLs) from its SQLite file into an empty PostgreSQL schema, read it back and
//! compare. The daemon must be stopped; the config is changed by the operator afterwards.

use std::path::PathBuf;

use secrecy::SecretString;
use zeroize::Zeroizing;

use signet::layout::StateLayout;
use signet::statelock::StateLock;
use signet::store::{PostgresTarget, Store};
use signet_config::StoreBackend;

/// The store.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The appliance config.
    #[arg(long, default_value = "/etc/signet/appliance.toml", global = true)]
    config: PathBuf,
    /// The state directory (overrides the config's `state_dir`).
    #[arg(long, global = true)]
    state_dir: Option<PathBuf>,
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Copy this box's SQLite state into an empty PostgreSQL schema and verify the copy.
    Migrate {
        /// The destination backend.
        #[arg(long, value_parser = ["postgres"])]
        to: String,
        /// libpq-style URL or key=value string, without the password.
        #[arg(long)]
        url: String,
        /// The server's CA (PEM): TLS required, the server's name checked.
        #[arg(long)]
        ca_file: Option<PathBuf>,
        /// A file holding the password (its first line); never on the command line.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
}

/// Run it.
pub fn exec(args: Args) -> Result<(), String> {
    let Action::Migrate {
        to: _,
        url,
        ca_file,
        password_file,
    } = args.action;
    let config = super::load_config(&args.config, args.state_dir)?;
    if config.store.backend == StoreBackend::Postgres {
        return Err("this appliance's store is PostgreSQL already".into());
    }
    let layout = StateLayout::new(&config.state_dir);
    // The daemon holds this lock while it runs: nothing changes the file during the copy.
    let _lock = StateLock::acquire(layout.root())
        .map_err(|e| format!("{e} (stop signetd before migrating its store)"))?;
    let password = password_file.map(|path| read_password(&path)).transpose()?;
    let source = Store::open(&layout.database()).map_err(|e| format!("SQLite store: {e}"))?;
    let snapshot = source
        .snapshot()
        .map_err(|e| format!("SQLite store: {e}"))?;
    let target = Store::connect(&PostgresTarget {
        url,
        password,
        ca_file,
    })
    .map_err(|e| format!("PostgreSQL: {e}"))?;
    target
        .restore(&snapshot)
        .map_err(|e| format!("PostgreSQL: {e}"))?;
    let copy = target
        .snapshot()
        .map_err(|e| format!("PostgreSQL, reading the copy back: {e}"))?;
    if let Some(difference) = snapshot.difference(&copy) {
        return Err(format!("the copy in PostgreSQL differs: {difference}"));
    }
    let (revoked, held) = snapshot.revoked_and_held();
    println!(
        "copied {} certificates ({revoked} revoked, {held} on hold), {} counters and {} CRLs \
         into PostgreSQL, and read them back: identical",
        snapshot.certificates.len(),
        snapshot.counters.len(),
        snapshot.crls.len()
    );
    println!(
        "next: set [store] backend = \"postgres\", url, ca_file and password (sealed) in the \
         config, then start signetd; the SQLite file stays as it was"
    );
    Ok(())
}

fn read_password(path: &std::path::Path) -> Result<SecretString, String> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?,
    );
    let first = text.lines().next().unwrap_or("");
    if first.is_empty() {
        return Err(format!("{}: no password on its first line", path.display()));
    }
    Ok(SecretString::from(first.to_owned()))
}
