//! signetd: the Signet signing appliance daemon.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use signet::config_source::{self, ConfigSource};

/// The Signet signing appliance daemon.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The appliance config: a clear-text file (dev profile only) or `sealed:PATH`, a
    /// config sealed by this box's TPM (`signetctl config seal`).
    #[arg(long, default_value = "/etc/signet/appliance.toml")]
    config: PathBuf,
    /// The TPM's TCTI for a sealed config [default: $SIGNET_TCTI, else device:/dev/tpmrm0].
    #[arg(long)]
    tcti: Option<String>,
    /// The state directory (overrides the config's `state_dir`).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Address of the mTLS API listener (overrides the config); port 0 picks a free port.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Address of the plain-HTTP public listener for OCSP and CRLs (overrides the config).
    #[arg(long)]
    public_listen: Option<SocketAddr>,
    /// Address of the Prometheus metrics listener (overrides the config's `metrics.listen`).
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,
    /// Write the man page and shell completions to this directory, and exit (packaging).
    #[arg(long, hide = true, value_name = "DIR")]
    generate_docs: Option<PathBuf>,
}

fn main() -> ExitCode {
    // Nothing Signet writes (keys, database, logs) is for other users.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    match start(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("signetd: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Harden the process, load the config, and run the daemon until it stops.
fn start(args: Args) -> Result<(), String> {
    if let Some(dir) = &args.generate_docs {
        let command = <Args as clap::CommandFactory>::command().name("signetd");
        return signet::docs::write(command, dir).map_err(|e| format!("{}: {e}", dir.display()));
    }
    // Before any secret is read: no core dumps, not dumpable, memory locked.
    signet::hardening::forbid_dumps().map_err(|e| e.to_string())?;
    let memory = signet::hardening::lock_memory();
    // Before any thread exists: taking the sockets unsets LISTEN_FDS.
    let activated = signet::systemd::ActivatedListeners::take_from_env()
        .map_err(|e| format!("sockets from the service manager: {e}"))?;
    let source = ConfigSource::new(&args.config, config_source::tcti(args.tcti));
    // No fallback: a sealed config that does not unseal stops the start here.
    let mut config = source.load()?;
    let warning = source.daemon_warning(&config)?;
    if let Some(dir) = args.state_dir {
        config.state_dir = dir;
    }
    if let Some(addr) = args.metrics_listen {
        config.metrics.listen = Some(addr);
    }
    // Before any thread exists: SoftHSM reads its config path from the environment.
    signet::settings::prepare_softhsm(&config);
    signet::init_logging(config.log.json);
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    memory_policy(memory, config.profile).inspect_err(|why| tracing::error!("{why}"))?;
    let public = config.public.listen.is_some()
        || args.public_listen.is_some()
        || activated.public.is_some();
    check_open_files(&config, public);
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = config.api.worker_threads {
        runtime.worker_threads(n);
    }
    let runtime = runtime
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let listen = signet::daemon::ListenOverrides {
        api: args.listen,
        public: args.public_listen,
        activated,
    };
    runtime
        .block_on(signet::daemon::run(config, source, listen))
        .map_err(|e| {
            tracing::error!("cannot start: {e}");
            e.to_string()
        })
}

/// Every connection is a descriptor: raise the open-files limit, and say so when it does
/// not cover both listeners' budgets (`public`: the public listener is in use).
fn check_open_files(config: &signet_config::Config, public: bool) {
    let connections = config.api.max_connections as u64
        + if public {
            config.public.max_connections as u64
        } else {
            0
        };
    let needed = connections + signet::hardening::FILES_BESIDES_CONNECTIONS;
    match signet::hardening::raise_open_files() {
        Ok(files) if files.soft >= needed => {
            tracing::info!(
                soft = files.soft,
                hard = files.hard,
                needed,
                "open files limit"
            );
        }
        Ok(files) => tracing::warn!(
            soft = files.soft,
            hard = files.hard,
            needed,
            "open files limit below what the connection budgets need: raise LimitNOFILE= \
             (or `ulimit -Hn`) or lower max_connections"
        ),
        Err(e) => tracing::warn!("open files limit: {e}"),
    }
}

/// Production refuses to hold its PIN in memory that may be swapped out; dev only warns.
fn memory_policy(
    memory: signet::hardening::MemoryLock,
    profile: signet_config::Profile,
) -> Result<(), String> {
    use signet::hardening::MemoryLock;
    let why = match memory {
        MemoryLock::Locked => {
            tracing::info!("memory locked");
            return Ok(());
        }
        MemoryLock::LimitTooLow { limit } => format!(
            "memory not locked: RLIMIT_MEMLOCK is {limit} bytes without CAP_IPC_LOCK \
             (signetd.service sets LimitMEMLOCK=infinity)"
        ),
        MemoryLock::Failed(e) => format!("memory not locked: mlockall: {e}"),
    };
    if profile == signet_config::Profile::Production {
        return Err(why);
    }
    tracing::warn!("{why} (dev profile only)");
    Ok(())
}
