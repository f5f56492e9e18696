//! Signet's configuration: the TOML schema, its defaults and its validation.
//!
//! Paths that are not absolute are relative to the state directory, so one directory
//! holds everything an appliance keeps (token, certificates, database).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::Deserialize;

/// The dev quick start's configuration, as shipped.
pub const DEV_TOML: &str = include_str!("../dev.toml");

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
    /// The TOML does not parse or does not fit the schema (the message names line and column).
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, where.
        message: String,
    },
    /// A value that parses but is not allowed.
    #[error("{path}: {field}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The dotted key.
        field: &'static str,
        /// What is wrong and what is allowed.
        message: String,
    },
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
    /// The admin socket that signetctl speaks to.
    #[serde(default)]
    pub admin: AdminConfig,
    /// Keys the signing API offers, with their certificates.
    #[serde(default)]
    pub signing_keys: Vec<SigningKeyConfig>,
    /// Who may call the API, and what each may do.
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
    /// Logging.
    #[serde(default)]
    pub log: LogConfig,
    /// The process itself.
    #[serde(default)]
    pub process: ProcessConfig,
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
    /// The security officer PIN, used by `init` to create a dev token.
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
}

/// A key in the token.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// CKA_LABEL of the key pair.
    pub label: String,
    /// `rsa-2048`, `rsa-3072`, `rsa-4096`, `ec-p256` or `ec-p384`.
    pub algorithm: KeyAlgorithmName,
}

/// Key algorithms as the config names them.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
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

/// The keys the appliance uses.
#[derive(Debug, Deserialize)]
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
            root_days: 3650,
            leaf_days: 825,
        }
    }
}

/// The mutual-TLS API listener and its limits.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// CA certificates (PEM) that client certificates must chain to; default: the root CA.
    pub client_ca: Option<PathBuf>,
    /// Largest request body accepted (binary protocols: TSA, OCSP).
    pub max_body_bytes: usize,
    /// Largest JSON body accepted (the signing API, batches).
    pub max_json_bytes: usize,
    /// Largest document streamed through `/v1/cms` (hashed as it arrives, never stored).
    pub max_stream_bytes: u64,
    /// Most digests in one batch.
    pub max_batch: usize,
    /// Largest request head (request line and headers) accepted.
    pub max_header_bytes: usize,
    /// Time allowed for the TLS handshake and for each request head, in seconds.
    pub header_timeout_secs: u64,
    /// Time allowed for a whole request (head and body) and its answer, in seconds.
    pub request_timeout_secs: u64,
    /// Connections served at once; further ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// Time in-flight requests get to finish after SIGTERM, in seconds.
    pub shutdown_grace_secs: u64,
    /// Threads serving TLS and HTTP (default: one per core). With an in-process software
    /// token the signing threads take the cores, and one is enough; with a network HSM the
    /// signing threads mostly wait, and TLS wants them all.
    pub worker_threads: Option<usize>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            client_ca: None,
            max_body_bytes: 64 * 1024,
            max_json_bytes: 1024 * 1024,
            max_stream_bytes: 4 * 1024 * 1024 * 1024,
            max_batch: 1000,
            max_header_bytes: 16 * 1024,
            header_timeout_secs: 10,
            request_timeout_secs: 30,
            max_connections: 1024,
            shutdown_grace_secs: 10,
            worker_threads: None,
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
}

impl Default for OcspConfig {
    fn default() -> Self {
        OcspConfig {
            validity_secs: 86_400,
            refresh_before_secs: None,
            nonce: NonceMode::Sign,
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

/// The plain-HTTP public listener.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PublicConfig {
    /// Address to listen on (off when absent; `signetd --public-listen` sets it too).
    pub listen: Option<SocketAddr>,
    /// Base URL relying parties reach it at, written into issued certificates (AIA OCSP
    /// `{url}/ocsp`, CRL distribution point `{url}/crl/{ca}.crl`). Default: from `listen`.
    pub url: Option<String>,
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
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            socket: PathBuf::from("/run/signet/admin.sock"),
        }
    }
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
}

/// How a client certificate is recognised: every field given must match.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientMatch {
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
fn default_workers() -> usize {
    2
}
fn default_queue_depth() -> usize {
    1024
}
fn default_accuracy_ms() -> u64 {
    1000
}
fn default_serial_block() -> u64 {
    1000
}

impl Config {
    /// Read and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Parse and validate config text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |field, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            field,
            message,
        };
        if self.profile == Profile::Production && self.hsm.user_pin.is_some() {
            return Err(invalid(
                "hsm.user_pin",
                "a clear-text PIN is refused in the production profile; seal the config".into(),
            ));
        }
        if self.profile == Profile::Production && self.hsm.softhsm_dir.is_some() {
            return Err(invalid(
                "hsm.softhsm_dir",
                "a SoftHSM token is for the dev profile only".into(),
            ));
        }
        if self.hsm.workers == 0 || self.hsm.workers > 256 {
            return Err(invalid("hsm.workers", "must be between 1 and 256".into()));
        }
        if self.hsm.queue_depth == 0 {
            return Err(invalid("hsm.queue_depth", "must be at least 1".into()));
        }
        for (field, oid) in std::iter::once(("tsa.policy", &self.tsa.policy)).chain(
            self.tsa
                .accepted_policies
                .iter()
                .map(|p| ("tsa.accepted_policies", p)),
        ) {
            if let Err(why) = check_oid(oid) {
                return Err(invalid(field, format!("`{oid}`: {why}")));
            }
        }
        if self.tsa.accuracy_ms < 1000 {
            return Err(invalid(
                "tsa.accuracy_ms",
                "genTime has whole seconds, so accuracy must be at least 1000 ms".into(),
            ));
        }
        if self.tsa.serial_block == 0 {
            return Err(invalid("tsa.serial_block", "must be at least 1".into()));
        }
        if self.api.max_body_bytes == 0 {
            return Err(invalid("api.max_body_bytes", "must be at least 1".into()));
        }
        if self.api.max_header_bytes < 8192 {
            return Err(invalid(
                "api.max_header_bytes",
                "must be at least 8192".into(),
            ));
        }
        if self.api.header_timeout_secs == 0 || self.api.request_timeout_secs == 0 {
            return Err(invalid(
                "api.*_timeout_secs",
                "timeouts must be at least 1 second".into(),
            ));
        }
        if self.api.worker_threads.is_some_and(|n| n == 0 || n > 1024) {
            return Err(invalid(
                "api.worker_threads",
                "must be between 1 and 1024".into(),
            ));
        }
        if self.api.max_batch == 0 || self.api.max_json_bytes < 1024 {
            return Err(invalid(
                "api.max_batch",
                "max_batch must be at least 1 and max_json_bytes at least 1024".into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for k in &self.signing_keys {
            if !seen.insert(k.label.as_str()) {
                return Err(invalid(
                    "signing_keys",
                    format!("key `{}` is declared twice", k.label),
                ));
            }
        }
        for c in &self.clients {
            let m = &c.matches;
            if m.subject.is_none()
                && m.san_uri.is_none()
                && m.san_dns.is_none()
                && m.fingerprint_sha256.is_none()
            {
                return Err(invalid(
                    "clients.match",
                    format!("client `{}` matches nothing: give subject, san_uri, san_dns or fingerprint_sha256", c.name),
                ));
            }
            if let Some(k) = c.keys.iter().find(|k| !seen.contains(k.as_str())) {
                return Err(invalid(
                    "clients.keys",
                    format!(
                        "client `{}` is granted `{k}`, which is not in [[signing_keys]]",
                        c.name
                    ),
                ));
            }
            if c.rate_limit
                .is_some_and(|r| !(r.per_second > 0.0 && r.burst >= 1.0))
            {
                return Err(invalid(
                    "clients.rate_limit",
                    format!(
                        "client `{}`: per_second must be above 0 and burst at least 1",
                        c.name
                    ),
                ));
            }
        }
        if self.ocsp.validity_secs < 60 {
            return Err(invalid("ocsp.validity_secs", "must be at least 60".into()));
        }
        if self
            .ocsp
            .refresh_before_secs
            .is_some_and(|r| r == 0 || r >= self.ocsp.validity_secs)
        {
            return Err(invalid(
                "ocsp.refresh_before_secs",
                "must be between 1 and ocsp.validity_secs - 1".into(),
            ));
        }
        if self.crl.validity_secs < 60 {
            return Err(invalid("crl.validity_secs", "must be at least 60".into()));
        }
        if let Some(url) = &self.public.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) || !url.is_ascii() {
                return Err(invalid(
                    "public.url",
                    format!("`{url}` is not an http:// or https:// URL"),
                ));
            }
        }
        if self.api.max_connections == 0 {
            return Err(invalid("api.max_connections", "must be at least 1".into()));
        }
        Ok(())
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

/// A dotted OID that the ASN.1 stack can hold: digits only, first arc 0 to 2, second arc
/// below 40 under 0 and 1, every arc within 32 bits (const-oid 0.9 stores arcs as u32, and
/// overflows on larger ones such as UUID arcs under 2.25), at most 20 arcs.
fn check_oid(s: &str) -> Result<(), &'static str> {
    let arcs: Vec<&str> = s.split('.').collect();
    if arcs.len() < 2 || arcs.len() > 20 {
        return Err("an OID has 2 to 20 dotted arcs");
    }
    let mut values = Vec::with_capacity(arcs.len());
    for a in &arcs {
        if a.is_empty() || !a.bytes().all(|b| b.is_ascii_digit()) {
            return Err("arcs are decimal numbers");
        }
        values.push(
            a.parse::<u32>()
                .map_err(|_| "every arc must fit in 32 bits")?,
        );
    }
    match (values[0], values[1]) {
        (0 | 1, second) if second >= 40 => Err("under arcs 0 and 1 the second arc is below 40"),
        (0..=2, _) => Ok(()),
        _ => Err("the first arc is 0, 1 or 2"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_documented_production_config_is_valid_and_names_its_user() {
        let text = include_str!("../appliance.toml");
        let c = Config::parse(Path::new("appliance.toml"), text).expect("appliance.toml is valid");
        assert_eq!(c.profile, Profile::Production);
        assert!(c.hsm.user_pin.is_none());
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
    fn unknown_key_is_named_with_its_line() {
        let text = DEV_TOML.replace("[tsa]\n", "[tsa]\npolcy = \"1.2\"\n");
        let err = Config::parse(Path::new("x.toml"), &text).expect_err("unknown key");
        let msg = err.to_string();
        assert!(msg.contains("polcy") && msg.contains("line"), "{msg}");
    }

    #[test]
    fn clear_pin_is_refused_in_production() {
        let text = DEV_TOML.replace("profile = \"dev\"", "profile = \"production\"");
        let err = Config::parse(Path::new("p.toml"), &text).expect_err("clear PIN");
        assert!(err.to_string().contains("hsm.user_pin"), "{err}");
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
            assert!(err.to_string().contains("tsa.policy"), "{err}");
        }
        assert!(check_oid("2.999.1").is_ok());
    }
}
