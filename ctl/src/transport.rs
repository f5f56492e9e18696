//! How a command reaches the appliance: over the running daemon's admin socket, or, when
//! no daemon runs, straight on the appliance at rest (the one dispatch in
//! `signet::admin::dispatch`, under the state lock).

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use signet::admin::client::{self, ClientError};
use signet::admin::dispatch::{self, Target};
use signet::admin::offline::Offline;
use signet::admin::{Advance, Command};
use signet::config_source::ConfigSource;

use crate::progress::Progress;

/// How long a command on the socket may take.
const SOCKET_TIMEOUT: Duration = Duration::from_secs(60);

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

/// Send `command` to the daemon, or run it on the appliance at rest if no daemon runs.
pub fn run(common: &Common, command: Command) -> Result<Value, String> {
    run_watched(common, command, &Progress::none())
}

/// [`run`], showing `progress` while it works.
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
        client::call_watched(socket, command, SOCKET_TIMEOUT, &mut shown)
    };
    if let Some(socket) = &common.socket {
        return ask(socket, command).map_err(|e| e.to_string());
    }
    let config = crate::load_config(&common.config, common.state_dir.clone())?;
    signet::settings::prepare_softhsm(&config);
    let socket = config.state_path(&config.admin.socket);
    match ask(&socket, command.clone()) {
        Err(ClientError::NotRunning(_)) => {
            let source = ConfigSource::new(&common.config, signet::config_source::tcti(None));
            at_rest(Offline::new(config, source), command, progress)
        }
        answer => answer.map_err(|e| e.to_string()),
    }
}

/// Run `command` here, on the appliance at rest, its progress shown as it comes.
fn at_rest(appliance: Offline, command: Command, progress: &Progress) -> Result<Value, String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Advance>(8);
    let outcome = std::thread::scope(|scope| {
        scope.spawn(|| {
            while let Some(Advance { done, total }) = rx.blocking_recv() {
                progress.set_length(total);
                progress.set(done);
            }
        });
        let target = Target::Offline(&appliance);
        // The sender goes with the command, so the progress thread ends with it.
        runtime.block_on(dispatch::execute(target, command, Some(tx)))
    });
    outcome.map_err(|e| e.to_string())
}
