//! The rules that serde's types cannot say: ranges, relations between keys, and the
//! dangerous modes the production profile refuses. Every rule that fails is reported.

use std::collections::HashSet;

use crate::{Config, Origin, Profile, StoreBackend};

/// A rule that failed: the dotted key it is about, and what is wrong and allowed.
pub type Finding = (String, String);

/// The rules of one listener's connection budget: (key, what is wrong).
fn budget_findings(b: &crate::ConnectionBudget) -> Vec<(&'static str, String)> {
    const DAY: u64 = 86_400;
    let mut out = Vec::new();
    for (key, value, max) in [
        ("first_request_secs", b.first_request_secs, 3600),
        ("idle_secs", b.idle_secs, DAY),
        ("ping_interval_secs", b.ping_interval_secs, DAY),
        ("ping_timeout_secs", b.ping_timeout_secs, DAY),
        ("max_age_secs", b.max_age_secs, 365 * DAY),
    ] {
        if value == 0 || value > max {
            out.push((key, format!("must be between 1 and {max} seconds")));
        }
    }
    if b.max_per_source == 0 {
        out.push(("max_per_source", "must be at least 1".into()));
    }
    if b.handshakes_per_sec == 0 {
        out.push(("handshakes_per_sec", "must be at least 1".into()));
    }
    if b.handshake_burst == 0 {
        out.push(("handshake_burst", "must be at least 1".into()));
    }
    if !(16..=1_048_576).contains(&b.max_sources) {
        out.push(("max_sources", "must be between 16 and 1048576".into()));
    }
    out
}

/// Every rule `config` breaks, when it was read from `origin`: each part of the config is
/// checked by a function of its own below.
pub fn findings(config: &Config, origin: Origin) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    let mut bad = |key: &str, message: String| out.push((key.to_owned(), message));
    secrets(config, origin, &mut bad);
    hsm_limits(config, &mut bad);
    tsa(config, &mut bad);
    listeners(config, &mut bad);
    signing_keys(config, &mut bad);
    let ca_names = client_cas(config, &mut bad);
    clients(config, &ca_names, &mut bad);
    revocation_and_disk(config, &mut bad);
    store(config, origin, &mut bad);
    cluster(config, &mut bad);
    out
}

/// `[store]`: PostgreSQL needs a URL without a password in it; production needs TLS and
/// keeps the password sealed.
fn cluster(config: &Config, bad: &mut dyn FnMut(&str, String)) {
    if let Some(node) = &config.cluster.node {
        if !crate::ClusterConfig::valid_node(node) {
            bad(
                "cluster.node",
                format!("{node:?}: 1 to 63 of A-Z a-z 0-9 . _ -"),
            );
        }
    }
}

fn store(config: &Config, origin: Origin, bad: &mut dyn FnMut(&str, String)) {
    let s = &config.store;
    let production = config.profile == Profile::Production;
    if s.backend == StoreBackend::Sqlite {
        if s.url.is_some() || s.password.is_some() || s.ca_file.is_some() {
            bad(
                "store",
                "url, password and ca_file are for backend = \"postgres\"".into(),
            );
        }
        return;
    }
    match &s.url {
        None => bad("store.url", "backend = \"postgres\" needs a url".into()),
        Some(url) if url_has_password(url) => bad(
            "store.url",
            "the url carries a password: put it in store.password (sealed)".into(),
        ),
        Some(_) => {}
    }
    if production && s.ca_file.is_none() {
        bad(
            "store.ca_file",
            "the production profile reaches PostgreSQL over verified TLS only: name the \
             server's CA"
                .into(),
        );
    }
    if production && origin == Origin::Clear && s.password.is_some() {
        bad(
            "store.password",
            "a clear-text password is refused in the production profile: seal the config \
             (`signetctl config seal`) and remove the clear file"
                .into(),
        );
    }
}

/// Whether a PostgreSQL URL (`postgres://user:pw@host/db`) or key=value string
/// (`password=...`) holds a password.
fn url_has_password(url: &str) -> bool {
    if let Some(rest) = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
    {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let userinfo = authority.rsplit_once('@').map_or("", |(u, _)| u);
        return userinfo.contains(':') || rest.contains("password=");
    }
    url.split_whitespace().any(|kv| kv.starts_with("password="))
}

/// The PINs by profile and origin, SoftHSM, and the audit log's TPM counter.
fn secrets(config: &Config, origin: Origin, bad: &mut dyn FnMut(&str, String)) {
    let production = config.profile == Profile::Production;
    match (production, origin, config.hsm.user_pin.is_some()) {
        (true, Origin::Clear, true) => bad(
            "hsm.user_pin",
            "a clear-text PIN is refused in the production profile: seal the config \
             (`signetctl config seal`) and remove the clear file"
                .into(),
        ),
        (true, Origin::Sealed, false) => bad(
            "hsm.user_pin",
            "the production profile needs the HSM PIN here, in the sealed config".into(),
        ),
        _ => {}
    }
    if production && config.hsm.so_pin.is_some() && origin == Origin::Clear {
        bad(
            "hsm.so_pin",
            "a clear-text PIN is refused in the production profile; the SO PIN has no place \
             in the appliance config"
                .into(),
        );
    }
    if production && config.hsm.softhsm_dir.is_some() {
        bad(
            "hsm.softhsm_dir",
            "a SoftHSM token is for the dev profile only".into(),
        );
    }
    let (first, last) = crate::sealed::counter::OWNER_NV_RANGE;
    if !(first..=last).contains(&config.audit.tpm_counter_index) {
        bad(
            "audit.tpm_counter_index",
            format!(
                "{:#010x} is not in the owner range of NV indices: {first:#010x} to {last:#010x}",
                config.audit.tpm_counter_index
            ),
        );
    }
    if production && config.audit.tpm_counter == crate::TpmCounterMode::Off {
        bad(
            "audit.tpm_counter",
            "`off` leaves the audit log open to rollback (an older log and anchor put back): \
             refused in the production profile; use `auto` or `required`"
                .into(),
        );
    }
}

/// The worker pool, its queue and its timeout.
fn hsm_limits(config: &Config, bad: &mut dyn FnMut(&str, String)) {
    if config.hsm.workers == 0 || config.hsm.workers > 256 {
        bad(
            "hsm.workers",
            format!("{} is out of range: 1 to 256", config.hsm.workers),
        );
    }
    if config.hsm.queue_depth == 0 {
        bad("hsm.queue_depth", "must be at least 1".into());
    }
    if !(100..=600_000).contains(&config.hsm.op_timeout_ms) {
        bad(
            "hsm.op_timeout_ms",
            format!(
                "{} is out of range: 100 to 600000",
                config.hsm.op_timeout_ms
            ),
        );
    }
}

/// The TSA's policies, accuracy and serial blocks.
fn tsa(config: &Config, bad: &mut dyn FnMut(&str, String)) {
    if let Err(why) = check_oid(&config.tsa.policy) {
        bad("tsa.policy", format!("`{}`: {why}", config.tsa.policy));
    }
    for (i, oid) in config.tsa.accepted_policies.iter().enumerate() {
        if let Err(why) = check_oid(oid) {
            bad(
                &format!("tsa.accepted_policies[{i}]"),
                format!("`{oid}`: {why}"),
            );
        }
    }
    if config.tsa.accuracy_ms < 1000 {
        bad(
            "tsa.accuracy_ms",
            "genTime has whole seconds, so accuracy must be at least 1000 ms".into(),
        );
    }
    if config.tsa.serial_block == 0 {
        bad("tsa.serial_block", "must be at least 1".into());
    }
}

/// The API's limits and both listeners' connection budgets.
fn listeners(config: &Config, bad: &mut dyn FnMut(&str, String)) {
    let api = &config.api;
    if api.max_body_bytes == 0 {
        bad("api.max_body_bytes", "must be at least 1".into());
    }
    if api.max_header_bytes < 8192 {
        bad("api.max_header_bytes", "must be at least 8192".into());
    }
    if api.header_timeout_secs == 0 {
        bad(
            "api.header_timeout_secs",
            "must be at least 1 second".into(),
        );
    }
    if api.request_timeout_secs == 0 {
        bad(
            "api.request_timeout_secs",
            "must be at least 1 second".into(),
        );
    }
    if api.worker_threads.is_some_and(|n| n == 0 || n > 1024) {
        bad("api.worker_threads", "must be between 1 and 1024".into());
    }
    if !(1..=3600).contains(&api.csc_sad_lifetime_secs) {
        bad(
            "api.csc_sad_lifetime_secs",
            "must be between 1 and 3600".into(),
        );
    }
    if api.max_batch == 0 {
        bad("api.max_batch", "must be at least 1".into());
    }
    if api.max_json_bytes < 1024 {
        bad("api.max_json_bytes", "must be at least 1024".into());
    }
    if api.max_connections == 0 {
        bad("api.max_connections", "must be at least 1".into());
    }
    if config.public.max_connections == 0 {
        bad("public.max_connections", "must be at least 1".into());
    }
    for (prefix, budget) in [
        ("api.connections", &api.connections),
        ("public.connections", &config.public.connections),
    ] {
        for (key, problem) in budget_findings(budget) {
            bad(&format!("{prefix}.{key}"), problem);
        }
    }
}

/// Signing keys: declared once, not an infrastructure key, imported ones by profile.
fn signing_keys(config: &Config, bad: &mut dyn FnMut(&str, String)) {
    let production = config.profile == Profile::Production;
    let infrastructure = config.keys.entries();
    let mut labels = HashSet::new();
    for (i, k) in config.signing_keys.iter().enumerate() {
        if !labels.insert(k.label.as_str()) {
            bad(
                &format!("signing_keys[{i}].label"),
                format!("key `{}` is declared twice", k.label),
            );
        }
        // signetd also compares public keys at start, which catches another label for the
        // same key; this catches the plain case early, in `config check` and at reload.
        if let Some((name, _)) = infrastructure.iter().find(|(_, s)| s.label == k.label) {
            bad(
                &format!("signing_keys[{i}].label"),
                format!(
                    "`{}` is the infrastructure key keys.{name}: it is never offered for \
                     signing; declare a document-signing key of its own",
                    k.label
                ),
            );
        }
        if k.imported && production && !config.hsm.allow_imported_keys {
            bad(
                &format!("signing_keys[{i}].imported"),
                format!(
                    "key `{}` is marked imported, which the production profile refuses \
                     unless hsm.allow_imported_keys = true",
                    k.label
                ),
            );
        }
    }
}

/// Outside client CAs; returns every client CA name a client may name.
fn client_cas<'a>(config: &'a Config, bad: &mut dyn FnMut(&str, String)) -> HashSet<&'a str> {
    let mut ca_names: HashSet<&str> = HashSet::from([crate::OWN_CLIENT_CA]);
    for (i, ca) in config.client_cas.iter().enumerate() {
        let name_ok = !ca.name.is_empty()
            && ca.name.len() <= 64
            && ca
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !name_ok {
            bad(
                &format!("client_cas[{i}].name"),
                format!("`{}`: names are 1 to 64 of A-Z a-z 0-9 - _", ca.name),
            );
        } else if ca.name == "root" || !ca_names.insert(ca.name.as_str()) {
            bad(
                &format!("client_cas[{i}].name"),
                format!(
                    "`{}` is taken (`root` and `{}` are the appliance's own CAs)",
                    ca.name,
                    crate::OWN_CLIENT_CA
                ),
            );
        }
        if !(10..=86_400).contains(&ca.crl_refresh_secs) {
            bad(
                &format!("client_cas[{i}].crl_refresh_secs"),
                format!("{} is out of range: 10 to 86400", ca.crl_refresh_secs),
            );
        }
        match &ca.crl {
            Some(url) if url.contains("://") && !url.starts_with("http://") => bad(
                &format!("client_cas[{i}].crl"),
                format!("`{url}`: a file path or an http:// URL"),
            ),
            None if ca.revocation == crate::RevocationFailMode::FailClosed => bad(
                &format!("client_cas[{i}].crl"),
                format!(
                    "client CA `{}` has no CRL, so under `revocation = \"fail-closed\"` none \
                     of its clients would get in: give a CRL, or choose `fail-open`",
                    ca.name
                ),
            ),
            _ => {}
        }
    }
    ca_names
}

/// API clients: their match criteria and grants.
fn clients(config: &Config, ca_names: &HashSet<&str>, bad: &mut dyn FnMut(&str, String)) {
    let labels: HashSet<&str> = config
        .signing_keys
        .iter()
        .map(|k| k.label.as_str())
        .collect();
    for (i, c) in config.clients.iter().enumerate() {
        let m = &c.matches;
        if let Some(issuer) = &m.issuer {
            if !ca_names.contains(issuer.as_str()) {
                bad(
                    &format!("clients[{i}].match.issuer"),
                    format!(
                        "client `{}`: no client CA named `{issuer}`; `{}` or a \
                         [[client_cas]] name",
                        c.name,
                        crate::OWN_CLIENT_CA
                    ),
                );
            }
        }
        if m.subject.is_none()
            && m.san_uri.is_none()
            && m.san_dns.is_none()
            && m.fingerprint_sha256.is_none()
        {
            bad(
                &format!("clients[{i}].match"),
                format!(
                    "client `{}` matches nothing: give subject, san_uri, san_dns or \
                     fingerprint_sha256",
                    c.name
                ),
            );
        }
        for (j, k) in c.keys.iter().enumerate() {
            if !labels.contains(k.as_str()) {
                bad(
                    &format!("clients[{i}].keys[{j}]"),
                    format!(
                        "client `{}` is granted `{k}`, which is not in [[signing_keys]]",
                        c.name
                    ),
                );
            }
        }
        if c.rate_limit
            .is_some_and(|r| !(r.per_second > 0.0 && r.burst >= 1.0))
        {
            bad(
                &format!("clients[{i}].rate_limit"),
                format!(
                    "client `{}`: per_second must be above 0 and burst at least 1",
                    c.name
                ),
            );
        }
    }
}

/// OCSP and CRL lifetimes, the budgets of anonymous callers, the disk, the public URL, the
/// metrics listener.
fn revocation_and_disk(config: &Config, bad: &mut dyn FnMut(&str, String)) {
    if let Some(addr) = config.metrics.listen {
        if !addr.ip().is_loopback() && !config.metrics.mtls {
            bad(
                "metrics.mtls",
                format!("{addr} is beyond loopback: set metrics.mtls = true (clients granted `metrics`)"),
            );
        }
    }
    if config.ocsp.validity_secs < 60 {
        bad("ocsp.validity_secs", "must be at least 60".into());
    }
    if config
        .ocsp
        .refresh_before_secs
        .is_some_and(|r| r == 0 || r >= config.ocsp.validity_secs)
    {
        bad(
            "ocsp.refresh_before_secs",
            "must be between 1 and ocsp.validity_secs - 1".into(),
        );
    }
    if !(60..=3650 * 86_400).contains(&config.ocsp.signer_lifetime_secs) {
        bad(
            "ocsp.signer_lifetime_secs",
            "must be between 60 and 315360000 (ten years)".into(),
        );
    }
    budgets(config, bad);
    if !(1..=3600).contains(&config.disk.public_summary_secs) {
        bad(
            "disk.public_summary_secs",
            "must be between 1 and 3600".into(),
        );
    }
    if config.disk.spool_max_in_flight == 0 {
        bad("disk.spool_max_in_flight", "must be at least 1".into());
    }
    if config.disk.spool_quota_bytes < config.api.max_stream_bytes.min(1 << 20) {
        bad(
            "disk.spool_quota_bytes",
            "must be at least 1 MiB (or api.max_stream_bytes)".into(),
        );
    }
    if config.crl.validity_secs < 60 {
        bad("crl.validity_secs", "must be at least 60".into());
    }
    if let Some(url) = &config.public.url {
        if !(url.starts_with("http://") || url.starts_with("https://")) || !url.is_ascii() {
            bad(
                "public.url",
                format!("`{url}` is not an http:// or https:// URL"),
            );
        }
    }
}

/// The rates that bound what anonymous callers take: each at least 1.
fn budgets(config: &Config, bad: &mut dyn FnMut(&str, String)) {
    for (key, value) in [
        (
            "tsa.public_per_source_per_sec",
            config.tsa.public_per_source_per_sec,
        ),
        (
            "tsa.public_per_source_burst",
            config.tsa.public_per_source_burst,
        ),
        ("tsa.public_total_per_sec", config.tsa.public_total_per_sec),
        (
            "ocsp.live_per_source_per_sec",
            config.ocsp.live_per_source_per_sec,
        ),
        (
            "ocsp.live_per_source_burst",
            config.ocsp.live_per_source_burst,
        ),
        (
            "api.handshake_signatures_per_sec",
            config.api.handshake_signatures_per_sec,
        ),
        (
            "api.handshake_signature_burst",
            config.api.handshake_signature_burst,
        ),
    ] {
        if value == 0 {
            bad(key, "must be at least 1".into());
        }
    }
}

/// A dotted OID that the ASN.1 stack can hold: digits only, first arc 0 to 2, second arc
/// below 40 under 0 and 1, every arc within 32 bits (const-oid 0.9 stores arcs as u32, and
/// overflows on larger ones such as UUID arcs under 2.25), at most 20 arcs.
pub fn check_oid(s: &str) -> Result<(), &'static str> {
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

/// Certificate files the config names that are missing, unreadable or hold no PEM
/// certificate. Separate from [`findings`]: `signetctl init` loads the config before the
/// files it makes exist.
pub fn certificate_findings(config: &Config) -> Vec<Finding> {
    let mut files: Vec<(String, &std::path::Path)> = Vec::new();
    for (i, ca) in config.client_cas.iter().enumerate() {
        files.push((format!("client_cas[{i}].certificate"), &ca.certificate));
    }
    for (i, k) in config.signing_keys.iter().enumerate() {
        files.push((
            format!("signing_keys[{i}].certificate_chain"),
            &k.certificate_chain,
        ));
    }
    let mut out = Vec::new();
    for (key, p) in files {
        let path = config.state_path(p);
        let why = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some("does not exist".into()),
            Err(e) => Some(format!("cannot be read: {e}")),
            Ok(bytes) if !contains_pem_certificate(&bytes) => {
                Some("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".into())
            }
            Ok(_) => None,
        };
        if let Some(why) = why {
            out.push((
                key,
                format!(
                    "certificate file {} {why}; a readable PEM file is required (relative \
                     paths are under state_dir)",
                    path.display()
                ),
            ));
        }
    }
    out
}

fn contains_pem_certificate(bytes: &[u8]) -> bool {
    let begin = b"-----BEGIN CERTIFICATE-----";
    let end = b"-----END CERTIFICATE-----";
    let find = |needle: &[u8]| bytes.windows(needle.len()).position(|w| w == needle);
    matches!((find(begin), find(end)), (Some(b), Some(e)) if b < e)
}
