//! Signet's configuration: the TOML schema, its defaults and its validation.
//!
//! Paths that are not absolute are relative to the state directory, so one directory
//! holds everything an appliance keeps (token, certificates, database).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

mod diagnostics;
pub mod sealed;
pub mod validate;

pub use diagnostics::{did_you_mean, line_column, Problem, SpanIndex};
pub use validate::check_oid;

/// The dev quick start's configuration, as shipped.
pub const DEV_TOML: &str = include_str!("../dev.toml");

/// The documented production example, as shipped.
pub const PRODUCTION_EXAMPLE_TOML: &str = include_str!("../appliance.toml");

/// The keys that hold secrets, as (table, key): redacted wherever a config is shown.
pub const SECRET_KEYS: [(&str, &str); 3] = [
    ("hsm", "user_pin"),
    ("hsm", "so_pin"),
    ("store", "password"),
];

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The text is not TOML, does not fit the schema, or breaks a rule: every problem found.
    #[error("{}", render(name, problems))]
    Invalid {
        /// The file (or `sealed:PATH`).
        name: String,
        /// Every problem, in file order.
        problems: Vec<Problem>,
    },
}

/// `NAME:LINE:COLUMN: KEY: MESSAGE`, one problem a line.
fn render(name: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("{name}:{p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Where a config was read from: the production profile accepts secrets only from a
/// sealed one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A clear-text file on disk.
    Clear,
    /// The plaintext of a TPM-sealed file (or a file about to be sealed).
    Sealed,
}

/// The outcome of checking a config: the config when its schema holds, and every problem.
#[derive(Debug)]
pub struct Checked {
    /// The config, when the text fits the schema (rules may still be broken).
    pub config: Option<Config>,
    /// Every problem found, in file order.
    pub problems: Vec<Problem>,
}

/// What the appliance is for: `dev` allows shortcuts that `production` refuses.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Development and tests: clear-text PIN, SoftHSM token made by `init`, clock warnings only.
    Dev,
    /// Production: secrets only from the sealed config, clock sync required.
    Production,
}

/// The whole configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `dev` or `production`.
    pub profile: Profile,
    /// Where the appliance keeps its state; relative to the working directory.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// The PKCS#11 token.
    pub hsm: HsmConfig,
    /// Key labels and algorithms.
    pub keys: KeysConfig,
    /// Names and lifetimes of the certificates `signetctl init` makes.
    #[serde(default)]
    pub pki: PkiConfig,
    /// The mutual-TLS API listener.
    #[serde(default)]
    pub api: ApiConfig,
    /// The time-stamping authority.
    pub tsa: TsaConfig,
    /// The OCSP responder.
    #[serde(default)]
    pub ocsp: OcspConfig,
    /// CRLs.
    #[serde(default)]
    pub crl: CrlConfig,
    /// The plain-HTTP listener for relying parties (OCSP, CRLs).
    #[serde(default)]
    pub public: PublicConfig,
    /// The Prometheus metrics listener.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The admin socket that signetctl speaks to.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Keys the signing API offers, with their certificates.
    #[serde(default)]
    pub signing_keys: Vec<SigningKeyConfig>,
    /// Who may call the API, and what each may do.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// Outside CAs whose client certificates the API also accepts (besides the appliance's
    /// own client CA, `client-ca`), each with where its revocation list comes from.
    #[serde(default)]
    pub client_cas: Vec<ClientCaConfig>,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The audit log.
    #[serde(default)]
    pub audit: AuditConfig,
    /// Disk space: what is given up, and when, before the disk is full.
    #[serde(default)]
    pub disk: DiskConfig,
    /// The process itself.
    #[serde(default)]
    pub process: ProcessConfig,
    /// Where the shared state (certificates, statuses, serials, CRL numbers) is kept.
    #[serde(default)]
    pub store: StoreConfig,
    /// This box among several.
    #[serde(default)]
    pub cluster: ClusterConfig,
}

/// `[cluster]`: how this box names itself in its audit records and to the other boxes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// 1 to 63 of A-Z a-z 0-9 . _ -; the hostname when absent.
    pub node: Option<String>,
}

impl ClusterConfig {
    /// Whether `name` is a node name: 1 to 63 of A-Z a-z 0-9 . _ -.
    pub fn valid_node(name: &str) -> bool {
        (1..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    }
}

/// Which database holds the shared state.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackend {
    /// One SQLite file in the state directory: one box.
    #[default]
    Sqlite,
    /// A PostgreSQL database that two or more boxes share.
    Postgres,
}

/// `[store]`: SQLite by default; PostgreSQL for several boxes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `sqlite` (default) or `postgres`.
    pub backend: StoreBackend,
    /// PostgreSQL: a libpq-style URL or key=value string, without the password.
    pub url: Option<String>,
    /// PostgreSQL: the password. In clear only in the dev profile, like the HSM PIN.
    pub password: Option<SecretString>,
    /// PostgreSQL: the CA of the server's certificate. TLS is then required and the
    /// server's name checked (verify-full); required in the production profile.
    pub ca_file: Option<PathBuf>,
}

/// The PKCS#11 module and token.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HsmConfig {
    /// Path of the PKCS#11 module (shared library).
    pub module: PathBuf,
    /// The token's label.
    pub token_label: String,
    /// The user PIN. In clear only in the dev profile; production reads it from the sealed config.
    pub user_pin: Option<SecretString>,
    /// The security officer PIN, used by `init` to create the token (C_InitToken on a free
    /// slot) when the module has none labelled `token_label`: SoftHSM, tpm2-pkcs11.
    pub so_pin: Option<SecretString>,
    /// Directory (under the state directory) of a SoftHSM token that `init` creates and
    /// signet points SOFTHSM2_CONF at. Dev only.
    pub softhsm_dir: Option<PathBuf>,
    /// Signing threads, each with its own logged-in session.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Requests that may wait for a signing thread; beyond that callers are told "busy" at once.
    #[serde(default = "default_queue_depth")]
    pub queue_depth: usize,
    /// Longest a request waits for one HSM operation (queue included), milliseconds; past
    /// that it is answered "unavailable" and the HSM is probed. Default: 5000.
    #[serde(default = "default_op_timeout_ms")]
    pub op_timeout_ms: u64,
    /// Accept `[[signing_keys]]` marked `imported = true` in the production profile: keys
    /// that existed outside the token once (CKA_NEVER_EXTRACTABLE or CKA_ALWAYS_SENSITIVE
    /// false). Default: false; the dev profile accepts them with a warning.
    #[serde(default)]
    pub allow_imported_keys: bool,
}

/// A key in the token.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// CKA_LABEL of the key pair.
    pub label: String,
    /// `rsa-2048`, `rsa-3072`, `rsa-4096`, `ec-p256` or `ec-p384`.
    pub algorithm: KeyAlgorithmName,
}

/// Key algorithms as the config names them.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
pub enum KeyAlgorithmName {
    /// RSA, 2048 bits.
    #[serde(rename = "rsa-2048")]
    Rsa2048,
    /// RSA, 3072 bits.
    #[serde(rename = "rsa-3072")]
    Rsa3072,
    /// RSA, 4096 bits.
    #[serde(rename = "rsa-4096")]
    Rsa4096,
    /// ECDSA P-256.
    #[serde(rename = "ec-p256")]
    EcP256,
    /// ECDSA P-384.
    #[serde(rename = "ec-p384")]
    EcP384,
}

/// The keys the appliance uses: its infrastructure keys, which create trust (CA, TSA, OCSP
/// signer) or guard the appliance (TLS, audit). [`KeysConfig::entries`] lists them all.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    /// The root CA.
    pub root_ca: KeySpec,
    /// The time-stamping unit.
    pub tsa: KeySpec,
    /// The TLS server.
    pub tls_server: KeySpec,
    /// The root CA's delegated OCSP signer.
    pub ocsp_signer: KeySpec,
    /// The key that signs the audit log's checkpoints.
    #[serde(default = "default_audit_key")]
    pub audit: KeySpec,
    /// The appliance's client CA: it issues the certificates API clients authenticate with,
    /// and nothing else (the root signs the infrastructure certificates).
    #[serde(default = "default_client_ca_key")]
    pub client_ca: KeySpec,
}

impl KeysConfig {
    /// Every infrastructure key, as (config name, spec): every field of this struct, found
    /// through its serialised form, so a key added here (a `client_ca`, optional or not) is
    /// listed without anyone remembering to list it.
    pub fn entries(&self) -> Vec<(String, KeySpec)> {
        let Ok(toml::Value::Table(table)) = toml::Value::try_from(self) else {
            return Vec::new();
        };
        table
            .into_iter()
            .filter_map(|(name, v)| v.try_into::<KeySpec>().ok().map(|k| (name, k)))
            .collect()
    }
}

/// Names and lifetimes of the dev PKI.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PkiConfig {
    /// Root CA subject DN.
    pub root_subject: String,
    /// TSA subject DN.
    pub tsa_subject: String,
    /// TLS server subject DN.
    pub tls_subject: String,
    /// DNS names and IP addresses in the TLS server certificate.
    pub tls_names: Vec<String>,
    /// Demo client subject DN.
    pub demo_client_subject: String,
    /// Subject DN of the root CA's delegated OCSP signer.
    pub ocsp_signer_subject: String,
    /// Subject DN of the audit log's checkpoint signer.
    pub audit_subject: String,
    /// Subject DN of the client CA (issued by the root, issues client certificates only).
    pub client_ca_subject: String,
    /// Root CA lifetime in days.
    pub root_days: u32,
    /// Lifetime of the other certificates in days.
    pub leaf_days: u32,
}

impl Default for PkiConfig {
    fn default() -> Self {
        PkiConfig {
            root_subject: "CN=Signet Dev Root CA,O=Signet".into(),
            tsa_subject: "CN=Signet Dev TSA,O=Signet".into(),
            tls_subject: "CN=localhost,O=Signet".into(),
            tls_names: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            demo_client_subject: "CN=demo-app,O=Signet".into(),
            ocsp_signer_subject: "CN=Signet Dev OCSP Signer,O=Signet".into(),
            audit_subject: "CN=Signet Dev Audit,O=Signet".into(),
            client_ca_subject: "CN=Signet Dev Client CA,O=Signet".into(),
            root_days: 3650,
            leaf_days: 825,
        }
    }
}

/// The mutual-TLS API listener and its limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to listen on, `IP:PORT`; port 0 picks a free port.
    #[serde(deserialize_with = "listen::address")]
    pub listen: SocketAddr,
    /// Largest request body accepted (binary protocols: TSA, OCSP).
    pub max_body_bytes: usize,
    /// Largest JSON body accepted (the signing API, batches).
    pub max_json_bytes: usize,
    /// Largest document streamed through `/v1/cms` (hashed as it arrives, never stored).
    pub max_stream_bytes: u64,
    /// Most digests in one batch.
    pub max_batch: usize,
    /// How long a SAD from the CSC API's `credentials/authorize` stays good, in seconds.
    pub csc_sad_lifetime_secs: u64,
    /// Largest request head (request line and headers) accepted.
    pub max_header_bytes: usize,
    /// Time allowed for the TLS handshake and for each request head, in seconds.
    pub header_timeout_secs: u64,
    /// Time allowed for a whole request (head and body) and its answer, in seconds.
    pub request_timeout_secs: u64,
    /// Connections open at once on this listener; when it is full, a new connection takes
    /// the place of the oldest one that has not sent a request head yet, or is closed.
    pub max_connections: usize,
    /// Time in-flight requests get to finish after SIGTERM, in seconds.
    pub shutdown_grace_secs: u64,
    /// Threads serving TLS and HTTP (default: one per core). With an in-process software
    /// token the signing threads take the cores, and one is enough; with a network HSM the
    /// signing threads mostly wait, and TLS wants them all.
    pub worker_threads: Option<usize>,
    /// The connection budget of this listener (`[api.connections]`).
    pub connections: ConnectionBudget,
    /// TLS handshakes signed per second by the server's key in the HSM, on average, over
    /// every source: a TLS 1.3 handshake is signed before the client shows a certificate,
    /// so this bounds what anonymous callers can take of the token. Resumed sessions cost
    /// no signature. Beyond it a handshake fails.
    pub handshake_signatures_per_sec: u32,
    /// Handshake signatures at once above that average.
    pub handshake_signature_burst: u32,
}

/// What one connection may take of a listener, and what one source address may take: every
/// listener has its own, so one can never starve another. Behind a load balancer or proxy
/// every connection comes from its address: raise the per-source caps to match.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnectionBudget {
    /// Seconds from accept to the first complete request head, the TLS handshake (and
    /// HTTP/2 prior-knowledge sniffing) included; a connection that has not sent one by then
    /// is closed.
    pub first_request_secs: u64,
    /// Seconds a connection may stay open with no request in progress (HTTP/1.1 keep-alive
    /// between requests; HTTP/2 with no stream open); then it is closed gracefully.
    pub idle_secs: u64,
    /// Seconds between HTTP/2 keep-alive PINGs.
    pub ping_interval_secs: u64,
    /// Seconds an HTTP/2 PING may stay unanswered before the connection is closed.
    pub ping_timeout_secs: u64,
    /// Seconds after which a connection is closed gracefully (in-flight requests finish; a
    /// client reconnects), however busy.
    pub max_age_secs: u64,
    /// Connections open at once from one source address (an IPv6 /64 counts as one).
    pub max_per_source: usize,
    /// New connections (TLS handshakes on the API) per second from one source address, on
    /// average; more are closed at once, before any handshake.
    pub handshakes_per_sec: u32,
    /// New connections one source address may open in a burst above that average.
    pub handshake_burst: u32,
    /// Source addresses tracked at once (the memory bound of the per-source accounting).
    pub max_sources: usize,
}

impl Default for ConnectionBudget {
    fn default() -> Self {
        ConnectionBudget {
            first_request_secs: 10,
            idle_secs: 60,
            ping_interval_secs: 20,
            ping_timeout_secs: 10,
            max_age_secs: 3600,
            max_per_source: 512,
            handshakes_per_sec: 200,
            handshake_burst: 512,
            max_sources: 8192,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            max_body_bytes: 64 * 1024,
            max_json_bytes: 1024 * 1024,
            max_stream_bytes: 4 * 1024 * 1024 * 1024,
            max_batch: 1000,
            csc_sad_lifetime_secs: 300,
            max_header_bytes: 16 * 1024,
            header_timeout_secs: 10,
            request_timeout_secs: 30,
            max_connections: 1024,
            shutdown_grace_secs: 10,
            worker_threads: None,
            connections: ConnectionBudget::default(),
            handshake_signatures_per_sec: 500,
            handshake_signature_burst: 1000,
        }
    }
}

/// The time-stamping authority.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TsaConfig {
    /// The policy OID stamped when a request names none.
    pub policy: String,
    /// Further policy OIDs a request may ask for.
    #[serde(default)]
    pub accepted_policies: Vec<String>,
    /// Accuracy of genTime, in milliseconds (at least 1000: genTime has whole seconds).
    #[serde(default = "default_accuracy_ms")]
    pub accuracy_ms: u64,
    /// Accept SHA-1 message imprints.
    #[serde(default)]
    pub allow_sha1: bool,
    /// Refuse to stamp while the kernel says the clock is unsynchronised.
    /// Default: true in production, false (warn only) in dev.
    pub require_clock_sync: Option<bool>,
    /// Serial numbers reserved in the database at a time.
    #[serde(default = "default_serial_block")]
    pub serial_block: u64,
    /// Serve `POST /tsa` to clients without a certificate (on the public listener, and on
    /// the API listener), each source address under its own rate limit.
    #[serde(default)]
    pub public: bool,
    /// With `public`: time-stamps per second for one source address, on average; beyond
    /// it the source gets 429 with Retry-After.
    #[serde(default = "default_public_per_source_per_sec")]
    pub public_per_source_per_sec: u32,
    /// With `public`: time-stamps one source may have at once above that average.
    #[serde(default = "default_public_per_source_burst")]
    pub public_per_source_burst: u32,
    /// With `public`: anonymous time-stamps per second over all sources together (twice
    /// that at once); beyond it 503 with Retry-After. What many sources can take of the
    /// TSA key's HSM time.
    #[serde(default = "default_public_total_per_sec")]
    pub public_total_per_sec: u32,
}

/// What the OCSP responder does with a request's nonce (RFC 9654).
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NonceMode {
    /// Sign a fresh response that echoes it.
    Sign,
    /// Answer from the pre-signed cache as if there were no nonce.
    Ignore,
    /// Refuse requests with a nonce (malformedRequest).
    Reject,
}

/// The OCSP responder.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcspConfig {
    /// nextUpdate - thisUpdate of every response, in seconds.
    pub validity_secs: u64,
    /// Re-sign a cached response when less than this is left before its nextUpdate, in
    /// seconds (default: half the validity).
    pub refresh_before_secs: Option<u64>,
    /// `sign`, `ignore` or `reject`.
    pub nonce: NonceMode,
    /// Lifetime of the delegated OCSP signer's certificate, in seconds; signetd renews it
    /// at half its life.
    pub signer_lifetime_secs: u64,
    /// Whether each renewal makes a new key in the token (else the certificate alone is
    /// renewed; a revoked signer always gets a new key).
    pub signer_new_key: bool,
    /// Answers signed live (a nonce, several CertIDs, an unknown serial) per second for one
    /// source address of the public listener, on average; beyond it the source is told
    /// tryLater. Pre-signed answers are not counted, nor requests of API clients.
    pub live_per_source_per_sec: u32,
    /// Answers one source may have signed live at once above that average.
    pub live_per_source_burst: u32,
}

impl Default for OcspConfig {
    fn default() -> Self {
        OcspConfig {
            validity_secs: 86_400,
            refresh_before_secs: None,
            nonce: NonceMode::Sign,
            signer_lifetime_secs: 604_800,
            signer_new_key: true,
            live_per_source_per_sec: 20,
            live_per_source_burst: 50,
        }
    }
}

/// CRLs.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrlConfig {
    /// nextUpdate - thisUpdate, in seconds; a CRL is re-signed at half its life and on
    /// every status change.
    pub validity_secs: u64,
}

impl Default for CrlConfig {
    fn default() -> Self {
        CrlConfig {
            validity_secs: 7 * 86_400,
        }
    }
}

/// The Prometheus metrics listener: `GET /metrics`, plain HTTP on a loopback address (a
/// local agent scrapes it), mutual TLS with the API's client policy on any other (a client
/// granted `metrics` scrapes it).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address to listen on, `IP:PORT` (off when absent; dev.toml: 127.0.0.1:9464).
    #[serde(deserialize_with = "listen::optional_address")]
    pub listen: Option<SocketAddr>,
    /// Mutual TLS with the API's certificate and client policy: only clients granted
    /// `metrics` scrape. Required for an address beyond loopback.
    pub mtls: bool,
}

/// The plain-HTTP public listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublicConfig {
    /// Address to listen on, `IP:PORT` (off when absent; `signetd --public-listen` sets it too).
    #[serde(deserialize_with = "listen::optional_address")]
    pub listen: Option<SocketAddr>,
    /// Base URL relying parties reach it at, written into issued certificates (AIA OCSP
    /// `{url}/ocsp`, CRL distribution point `{url}/crl/{ca}.crl`). Default: from `listen`.
    pub url: Option<String>,
    /// Connections open at once on this listener; when it is full, a new connection takes
    /// the place of the oldest one that has not sent a request head yet, or is closed.
    pub max_connections: usize,
    /// The connection budget of this listener (`[public.connections]`).
    pub connections: ConnectionBudget,
}

impl Default for PublicConfig {
    fn default() -> Self {
        PublicConfig {
            listen: None,
            url: None,
            max_connections: 1024,
            connections: ConnectionBudget::default(),
        }
    }
}

impl PublicConfig {
    /// The base URL for issued certificates, if there is one.
    pub fn base_url(&self) -> Option<String> {
        self.url
            .clone()
            .or_else(|| self.listen.map(|a| format!("http://{a}")))
            .map(|u| u.trim_end_matches('/').to_owned())
    }
}

/// The admin socket.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Path of the Unix socket; relative paths are under the state directory.
    pub socket: PathBuf,
    /// A group whose members may administer too (besides root and the daemon's own user);
    /// the socket is made group-accessible to it.
    pub group: Option<String>,
    /// The CA officer role: members of this group (and root, and the daemon's own user) may
    /// also run the commands that create trust or widen grants: `cert issue` with a profile
    /// other than `tls-client` and `document-signing`, `client add`, `csr` and `cert import`
    /// for an infrastructure key. Plain admins are refused them. Officers reach the socket
    /// through the admin group, so they belong to both.
    pub officer_group: Option<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            socket: PathBuf::from("/run/signet/admin.sock"),
            group: None,
            officer_group: None,
        }
    }
}

/// The audit log: a hash chain with checkpoints signed by the audit key.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// A checkpoint after this many records...
    pub checkpoint_every: u64,
    /// ...or after this many seconds with records not yet covered, whichever comes first.
    pub checkpoint_secs: u64,
    /// Whether the anchor carries the value of a monotonic TPM counter (rollback
    /// protection): `auto` (default: when the config is sealed by the TPM, as production's
    /// is), `required` (always; signetd does not start without it) or `off` (dev only).
    pub tpm_counter: TpmCounterMode,
    /// The TPM NV index of that counter, in the owner range 0x01000000 to 0x013fffff.
    /// Default: 0x0100a0d1.
    pub tpm_counter_index: u32,
}

/// Disk space. The state directory (the audit log) and the spool share the disk with
/// whatever else the box writes: below `min_free_bytes` on the audit log's filesystem, the
/// public listener's requests (anyone's, unauthenticated) are counted per interval instead
/// of recorded one by one; below it on the spool's, PDF uploads are refused with 507.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskConfig {
    /// Free space (bytes, for an unprivileged user) under which the above applies.
    pub min_free_bytes: u64,
    /// Seconds between two counts of public requests while the disk is short.
    pub public_summary_secs: u64,
    /// PDF uploads spooled at once; more are refused with 503 and Retry-After.
    pub spool_max_in_flight: usize,
    /// Bytes all spooled PDFs may take together; an upload that would pass it is refused
    /// with 507.
    pub spool_quota_bytes: u64,
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            min_free_bytes: 256 * 1024 * 1024,
            public_summary_secs: 10,
            spool_max_in_flight: 16,
            spool_quota_bytes: 8 * 1024 * 1024 * 1024,
        }
    }
}

/// The TPM NV index the audit counter takes unless configured otherwise.
pub const DEFAULT_AUDIT_COUNTER_INDEX: u32 = 0x0100_A0D1;

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            checkpoint_every: 1000,
            checkpoint_secs: 60,
            tpm_counter: TpmCounterMode::Auto,
            tpm_counter_index: DEFAULT_AUDIT_COUNTER_INDEX,
        }
    }
}

impl AuditConfig {
    /// Whether the TPM counter is used by an appliance whose config came from `origin`.
    pub fn uses_tpm_counter(&self, origin: Origin) -> bool {
        match self.tpm_counter {
            TpmCounterMode::Required => true,
            TpmCounterMode::Auto => origin == Origin::Sealed,
            TpmCounterMode::Off => false,
        }
    }
}

/// When the audit anchor carries a TPM counter.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TpmCounterMode {
    /// When the config is sealed by the TPM (a TPM exists); not from a clear-text config.
    #[default]
    Auto,
    /// Always: signetd refuses to start without the TPM.
    Required,
    /// Never: the anchor is only signed (the dev profile only).
    Off,
}

/// A key the signing API offers.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningKeyConfig {
    /// CKA_LABEL of the key pair in the token; the API names the key by it.
    pub label: String,
    /// Its algorithm (`init` makes dev keys with it; `signetd` checks it).
    pub algorithm: KeyAlgorithmName,
    /// What it is for, e.g. `document-signing`.
    #[serde(default = "default_purpose")]
    pub purpose: String,
    /// Its certificate followed by the issuers (PEM; relative: under `state_dir`).
    pub certificate_chain: PathBuf,
    /// The operator vouches for a key that was not generated in the token (its
    /// CKA_NEVER_EXTRACTABLE or CKA_ALWAYS_SENSITIVE is false). Without this mark such a
    /// key is refused; with it, production still needs `hsm.allow_imported_keys`.
    #[serde(default)]
    pub imported: bool,
}

/// An operation a client may be granted.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    /// Raw digest signatures (`/v1/sign`).
    Sign,
    /// CMS / CAdES (`/v1/cms`).
    Cms,
    /// PAdES (`/v1/pdf`).
    Pdf,
    /// Time-stamps (`/v1/tsa`).
    Tsa,
    /// Scrapes of `/metrics` when the metrics listener is bound beyond loopback (mTLS).
    Metrics,
}

/// The name of the appliance's own client CA, the default issuer of `[[clients]]`.
pub const OWN_CLIENT_CA: &str = "client-ca";

/// An outside CA that issues client certificates the API accepts.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCaConfig {
    /// Its name: what `[[clients]] match.issuer` names, and what logs and audit say.
    pub name: String,
    /// The CA certificate (PEM) that issues the client certificates directly: the trust
    /// anchor of its clients (an intermediate of a bigger PKI is fine).
    pub certificate: PathBuf,
    /// Where its CRL comes from: a file (DER or PEM; relative paths under state_dir), or an
    /// `http://` URL. Read at start and every `crl_refresh_secs`.
    pub crl: Option<String>,
    /// Seconds between two reads of the CRL. Default: 300.
    #[serde(default = "default_crl_refresh_secs")]
    pub crl_refresh_secs: u64,
    /// What happens to its clients while no fresh CRL is at hand (none read yet, or past its
    /// nextUpdate): `fail-closed` (refused; the default) or `fail-open` (admitted, logged).
    #[serde(default)]
    pub revocation: RevocationFailMode,
}

/// What to do when a client's revocation status cannot be known.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub enum RevocationFailMode {
    /// Refuse the client.
    #[default]
    #[serde(rename = "fail-closed")]
    FailClosed,
    /// Admit the client, with a warning in the log.
    #[serde(rename = "fail-open")]
    FailOpen,
}

/// How a client certificate is recognised: every field given must match.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientMatch {
    /// The CA that must have issued it: `client-ca` (the appliance's own, the default) or
    /// the name of a `[[client_cas]]` entry. A subject from another CA never matches.
    pub issuer: Option<String>,
    /// The subject DN, RFC 4514 (`CN=demo-app,O=Signet`), compared exactly.
    pub subject: Option<String>,
    /// A URI in the subjectAltName.
    pub san_uri: Option<String>,
    /// A DNS name in the subjectAltName.
    pub san_dns: Option<String>,
    /// SHA-256 of the certificate's DER, hex (colons allowed).
    pub fingerprint_sha256: Option<String>,
}

/// A token bucket: `per_second` requests per second on average, bursts up to `burst`.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Sustained rate.
    pub per_second: f64,
    /// Bucket size.
    pub burst: f64,
}

/// One client of the API.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// Its identity in logs and audit.
    pub name: String,
    /// How its certificate is recognised.
    #[serde(rename = "match")]
    pub matches: ClientMatch,
    /// What it may do.
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// Which signing keys (labels) it may use for `sign`, `cms` and `pdf`.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Its rate limit (none: unlimited).
    pub rate_limit: Option<RateLimit>,
}

/// Logging.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Emit JSON lines instead of human-readable text.
    pub json: bool,
}

/// Listen addresses, with a message that says what is allowed.
mod listen {
    use std::net::{IpAddr, SocketAddr};

    use serde::{de::Error, Deserialize, Deserializer};

    pub fn address<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(D::Error::custom)
    }

    pub fn optional_address<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<SocketAddr>, D::Error> {
        address(d).map(Some)
    }

    /// `IP:PORT` or `[IPv6]:PORT`, the port from 0 to 65535.
    pub fn parse(text: &str) -> Result<SocketAddr, String> {
        let allowed =
            "allowed: IP:PORT or [IPv6]:PORT, the port from 0 to 65535 (0 picks a free port)";
        let Some((host, port)) = text.rsplit_once(':') else {
            return Err(format!("`{text}` has no port; {allowed}"));
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip: IpAddr = host
            .parse()
            .map_err(|_| format!("`{host}` is not an IP address; {allowed}"))?;
        let port: u16 = match port.parse::<u64>() {
            Ok(p) => {
                u16::try_from(p).map_err(|_| format!("port {p} is out of range; {allowed}"))?
            }
            Err(_) => return Err(format!("`{port}` is not a port number; {allowed}")),
        };
        Ok(SocketAddr::new(ip, port))
    }
}

/// The process itself.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProcessConfig {
    /// The user signetd becomes when started as root outside systemd, once its listeners
    /// are bound and the token is open (systemd starts it as this user directly).
    pub user: Option<String>,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/signet")
}
fn default_purpose() -> String {
    "document-signing".into()
}
fn default_audit_key() -> KeySpec {
    KeySpec {
        label: "audit".into(),
        algorithm: KeyAlgorithmName::EcP256,
    }
}
fn default_client_ca_key() -> KeySpec {
    KeySpec {
        label: "client-ca".into(),
        algorithm: KeyAlgorithmName::EcP256,
    }
}
fn default_crl_refresh_secs() -> u64 {
    300
}
fn default_workers() -> usize {
    2
}
fn default_queue_depth() -> usize {
    1024
}
fn default_op_timeout_ms() -> u64 {
    5000
}
fn default_accuracy_ms() -> u64 {
    1000
}
fn default_serial_block() -> u64 {
    1000
}
fn default_public_per_source_per_sec() -> u32 {
    5
}
fn default_public_per_source_burst() -> u32 {
    20
}
fn default_public_total_per_sec() -> u32 {
    100
}

impl Config {
    /// Read and validate a clear-text config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Parse and validate clear-text config text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        Config::parse_as(&path.display().to_string(), text, Origin::Clear)
    }

    /// Parse and validate config text read from `origin`; `name` names it in errors.
    pub fn parse_as(name: &str, text: &str, origin: Origin) -> Result<Config, ConfigError> {
        let checked = Config::check(text, origin, |_| Vec::new());
        match checked.config {
            Some(config) if checked.problems.is_empty() => Ok(config),
            _ => Err(ConfigError::Invalid {
                name: name.to_owned(),
                problems: checked.problems,
            }),
        }
    }

    /// Every problem of config `text` read from `origin`: syntax, schema, the rules, and
    /// `more` (further checks on the parsed config, as dotted key and message).
    pub fn check(
        text: &str,
        origin: Origin,
        more: impl FnOnce(&Config) -> Vec<validate::Finding>,
    ) -> Checked {
        let index = match SpanIndex::new(text) {
            Ok(i) => i,
            Err(p) => {
                return Checked {
                    config: None,
                    problems: vec![p],
                }
            }
        };
        let (config, mut problems) = diagnostics::deserialize_all::<Config>(text, &index);
        if let Some(c) = &config {
            let mut findings = validate::findings(c, origin);
            findings.extend(more(c));
            for (key, message) in findings {
                // A key already reported by the schema has its default now: do not judge it.
                if !problems.iter().any(|p| p.key == key) {
                    problems.push(index.problem_at_key(&key, message));
                }
            }
        }
        problems.sort_by_key(|p| (p.line, p.column));
        Checked { config, problems }
    }

    /// Whether the TSA must refuse to stamp while the clock is unsynchronised.
    pub fn require_clock_sync(&self) -> bool {
        self.tsa
            .require_clock_sync
            .unwrap_or(self.profile == Profile::Production)
    }

    /// A path from the config, resolved against the state directory.
    pub fn state_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_owned()
        } else {
            self.state_dir.join(p)
        }
    }
}

#[cfg(test)]
mod validation_tests;

#[cfg(test)]
mod tests {
    #[test]
    fn the_documented_production_config_is_valid_and_names_its_user() {
        // The example holds the PIN it is to be sealed with: valid as a sealed config's
        // plaintext, refused as a clear file.
        let text = include_str!("../appliance.toml");
        let c = Config::parse_as("appliance.toml", text, Origin::Sealed)
            .expect("appliance.toml is valid once sealed");
        assert_eq!(c.profile, Profile::Production);
        assert!(c.hsm.user_pin.is_some());
        assert!(Config::parse(Path::new("appliance.toml"), text).is_err());
        assert_eq!(c.process.user.as_deref(), Some("signet"));
    }

    use super::*;

    #[test]
    fn dev_config_parses() {
        let c = Config::parse(Path::new("dev.toml"), DEV_TOML).expect("dev.toml is valid");
        assert_eq!(c.profile, Profile::Dev);
        assert!(!c.require_clock_sync());
    }

    #[test]
    fn a_metrics_listener_beyond_loopback_needs_mutual_tls() {
        let dev_line = "listen = \"127.0.0.1:9464\"";
        assert!(DEV_TOML.contains(dev_line), "the dev metrics line moved");
        let open = DEV_TOML.replace(dev_line, "listen = \"0.0.0.0:9464\"");
        let err =
            Config::parse(Path::new("m.toml"), &open).expect_err("plain HTTP beyond loopback");
        assert!(err.to_string().contains("metrics.mtls"), "{err}");
        let gated = DEV_TOML.replace(dev_line, "listen = \"0.0.0.0:9464\"\nmtls = true");
        let c = Config::parse(Path::new("m.toml"), &gated).expect("mTLS beyond loopback");
        assert!(c.metrics.mtls);
        let dev = Config::parse(Path::new("dev.toml"), DEV_TOML).expect("dev.toml");
        assert!(dev.metrics.listen.is_some_and(|a| a.ip().is_loopback()) && !dev.metrics.mtls);
    }

    #[test]
    fn bad_policy_oids_are_refused_with_a_reason() {
        for bad in [
            "x1.3.6",
            "1",
            "3.1",
            "1.40.1",
            "1..2",
            // a UUID arc: valid X.667, but larger than the ASN.1 stack's 32-bit arcs
            "2.25.291309599133306319798343810959018613113",
        ] {
            let text = DEV_TOML.replace(
                "policy = \"1.3.6.1.4.1.32473.1.1\"",
                &format!("policy = \"{bad}\""),
            );
            assert_ne!(text, DEV_TOML, "the dev policy line moved");
            let err = Config::parse(Path::new("p.toml"), &text).expect_err(bad);
            assert!(err.to_string().contains(": tsa.policy: "), "{err}");
        }
        assert!(check_oid("2.999.1").is_ok());
    }
}
