//! One test per class of validation error: the message, and the line and column it
//! points at (found here by searching the text, so an edit of dev.toml cannot fool them).

use std::path::Path;

use crate::{line_column, Config, ConfigError, Origin, Problem, DEV_TOML, PRODUCTION_EXAMPLE_TOML};

/// The problems of `text` (a clear-text file).
fn problems(text: &str, origin: Origin) -> Vec<Problem> {
    match Config::parse_as("t.toml", text, origin) {
        Ok(_) => Vec::new(),
        Err(ConfigError::Invalid { problems, .. }) => problems,
        Err(e) => panic!("{e}"),
    }
}

/// Line and column of the `nth` occurrence of `needle` in `text`.
fn position(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    let at = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("`{needle}` not in the text"))
        .0;
    line_column(text, at)
}

fn assert_at(p: &Problem, (line, column): (usize, usize)) {
    assert_eq!((p.line, p.column), (line, column), "{p}");
}

/// `dev.toml` with `old` replaced by `new` (which must have been there).
fn dev_with(old: &str, new: &str) -> String {
    assert!(DEV_TOML.contains(old), "`{old}` not in dev.toml");
    DEV_TOML.replacen(old, new, 1)
}

#[test]
fn the_shipped_configs_are_valid() {
    assert!(problems(DEV_TOML, Origin::Clear).is_empty());
    // The production example is meant to be sealed: its PIN is then expected.
    assert!(problems(PRODUCTION_EXAMPLE_TOML, Origin::Sealed).is_empty());
    let c = Config::parse_as("appliance.toml", PRODUCTION_EXAMPLE_TOML, Origin::Sealed).unwrap();
    assert_eq!(c.profile, crate::Profile::Production);
    assert!(c.require_clock_sync());
}

#[test]
fn unknown_key_says_did_you_mean_and_where() {
    let text = dev_with("[tsa]\n", "[tsa]\npolcy = \"1.2\"\n");
    let p = problems(&text, Origin::Clear);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_at(&p[0], position(&text, "polcy", 0));
    assert_eq!(p[0].key, "tsa.polcy");
    assert!(
        p[0].message
            .contains("unknown key `polcy`; did you mean `policy`?"),
        "{}",
        p[0].message
    );
    assert!(
        p[0].message
            .contains("allowed: `policy`, `accepted_policies`"),
        "{}",
        p[0].message
    );
}

#[test]
fn unknown_key_in_an_inline_table_and_an_array_of_tables() {
    let text = dev_with(
        "match = { issuer = \"client-ca\", subject = \"CN=demo-app,O=Signet\" }",
        "match = { issuer = \"client-ca\", subjet = \"CN=demo-app,O=Signet\" }",
    );
    let p = problems(&text, Origin::Clear);
    // The misspelt key goes; the client then matches nothing, which is reported too.
    assert_eq!(p.len(), 2, "{p:?}");
    let typo = p
        .iter()
        .find(|p| p.key == "clients[0].match.subjet")
        .expect("the typo");
    assert_at(typo, position(&text, "subjet", 0));
    assert!(
        typo.message.contains("did you mean `subject`?"),
        "{}",
        typo.message
    );
    let empty = p
        .iter()
        .find(|p| p.key == "clients[0].match")
        .expect("the rule");
    assert!(
        empty.message.contains("matches nothing"),
        "{}",
        empty.message
    );
}

#[test]
fn wrong_type_says_what_was_found_and_what_is_expected() {
    let text = dev_with("workers = 2", "workers = \"two\"");
    let p = problems(&text, Origin::Clear);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "hsm.workers");
    assert_at(&p[0], position(&text, "\"two\"", 0));
    assert!(
        p[0].message
            .contains("invalid type: string \"two\", expected usize"),
        "{}",
        p[0].message
    );
}

#[test]
fn unknown_enum_value_lists_the_allowed_ones() {
    let text = dev_with(
        "tsa = { label = \"tsa\", algorithm = \"rsa-2048\" }",
        "tsa = { label = \"tsa\", algorithm = \"rsa-2084\" }",
    );
    let p = problems(&text, Origin::Clear);
    assert_eq!(p[0].key, "keys.tsa.algorithm");
    assert_at(&p[0], position(&text, "\"rsa-2084\"", 0));
    assert!(
        p[0].message
            .contains("unknown value `rsa-2084`; did you mean `rsa-2048`?"),
        "{}",
        p[0].message
    );
}

#[test]
fn port_out_of_range_names_the_range() {
    let text = dev_with(
        "listen = \"127.0.0.1:8443\"",
        "listen = \"127.0.0.1:84430\"",
    );
    let p = problems(&text, Origin::Clear);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "api.listen");
    assert_at(&p[0], position(&text, "\"127.0.0.1:84430\"", 0));
    assert!(
        p[0].message.contains(
            "port 84430 is out of range; allowed: IP:PORT or [IPv6]:PORT, the port from 0 to 65535"
        ),
        "{}",
        p[0].message
    );
}

#[test]
fn clear_text_pin_is_refused_in_production_at_the_pin() {
    let text = dev_with("profile = \"dev\"", "profile = \"production\"").replacen(
        "softhsm_dir = \"softhsm\"\n",
        "\n",
        1,
    );
    let p = problems(&text, Origin::Clear);
    let pin = p
        .iter()
        .find(|p| p.key == "hsm.user_pin")
        .expect("user_pin refused");
    assert_at(pin, position(&text, "\"1234\"", 0));
    assert!(
        pin.message
            .contains("a clear-text PIN is refused in the production profile: seal the config"),
        "{}",
        pin.message
    );
    // The same text, about to be sealed, is fine on that count.
    let sealed = problems(&text, Origin::Sealed);
    assert!(sealed.iter().all(|p| p.key != "hsm.user_pin"), "{sealed:?}");
}

#[test]
fn missing_or_unreadable_certificate_files_are_named_at_their_key() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not-pem.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let text = dev_with(
        "state_dir = \".signet\"",
        &format!("state_dir = \"{}\"", dir.path().display()),
    )
    .replacen("\"pki/doc-ec-chain.pem\"", "\"not-pem.pem\"", 1);
    let config = Config::parse(Path::new("t.toml"), &text).unwrap();
    let findings = crate::validate::certificate_findings(&config);
    let index = crate::SpanIndex::new(&text).unwrap();
    let p: Vec<Problem> = findings
        .into_iter()
        .map(|(k, m)| index.problem_at_key(&k, m))
        .collect();
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0].key, "signing_keys[0].certificate_chain");
    assert_at(&p[0], position(&text, "\"pki/doc-rsa-chain.pem\"", 0));
    assert!(
        p[0].message.contains("doc-rsa-chain.pem does not exist"),
        "{}",
        p[0].message
    );
    assert!(
        p[0].message.contains("a readable PEM file is required"),
        "{}",
        p[0].message
    );
    assert_eq!(p[1].key, "signing_keys[1].certificate_chain");
    assert_at(&p[1], position(&text, "\"not-pem.pem\"", 0));
    assert!(
        p[1].message.contains("holds no PEM certificate"),
        "{}",
        p[1].message
    );
}

#[test]
fn every_error_is_reported_at_once_in_file_order() {
    let text = dev_with("[tsa]\n", "[tsa]\npolcy = \"1.2\"\n")
        .replacen("workers = 2", "workers = \"two\"", 1)
        .replacen(
            "listen = \"127.0.0.1:8080\"",
            "listen = \"127.0.0.1:99999\"",
            1,
        )
        .replacen("validity_secs = 86400", "validity_secs = 5", 1)
        .replacen("[log]\n", "[log]\njsn = true\n", 1);
    let p = problems(&text, Origin::Clear);
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "hsm.workers",
            "tsa.polcy",
            "ocsp.validity_secs",
            "public.listen",
            "log.jsn"
        ],
        "{p:?}"
    );
    let (line, column) = position(&text, "validity_secs = 5\n", 0);
    assert_at(&p[2], (line, column + "validity_secs = ".len()));
    let err = Config::parse(Path::new("t.toml"), &text)
        .unwrap_err()
        .to_string();
    assert_eq!(err.lines().count(), 5, "{err}");
    assert!(err.lines().all(|l| l.starts_with("t.toml:")), "{err}");
}

#[test]
fn syntax_error_has_a_position() {
    let text = dev_with("[hsm]\n", "[hsm\n");
    let p = problems(&text, Origin::Clear);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].line, position(&text, "[hsm\n", 0).0);
    assert!(p[0].message.starts_with("not TOML"), "{}", p[0].message);
}

#[test]
fn missing_required_key_points_at_its_table() {
    let text = dev_with("token_label = \"signet-dev\"\n", "");
    let p = problems(&text, Origin::Clear);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(
        p[0].message.contains("missing field `token_label`"),
        "{}",
        p[0].message
    );
    assert_eq!(p[0].line, position(&text, "[hsm]", 0).0);
}

#[test]
fn the_hsm_operation_timeout_is_bounded() {
    for (value, ok) in [
        ("50", false),
        ("100", true),
        ("5000", true),
        ("600001", false),
    ] {
        let text = dev_with(
            "queue_depth = 1024",
            &format!("queue_depth = 1024\nop_timeout_ms = {value}"),
        );
        let p = problems(&text, Origin::Clear);
        if ok {
            assert!(p.is_empty(), "{value}: {p:?}");
        } else {
            assert_eq!(p.len(), 1, "{value}: {p:?}");
            assert_eq!(p[0].key, "hsm.op_timeout_ms");
        }
    }
    let default = Config::parse_as("dev.toml", DEV_TOML, Origin::Clear).expect("dev.toml");
    assert_eq!(default.hsm.op_timeout_ms, 5000);
}

#[test]
fn every_infrastructure_key_is_listed_and_none_is_a_signing_key() {
    let c = Config::parse(Path::new("dev.toml"), DEV_TOML).unwrap();
    let mut names: Vec<String> = c.keys.entries().into_iter().map(|(n, _)| n).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "audit",
            "client_ca",
            "ocsp_signer",
            "root_ca",
            "tls_server",
            "tsa"
        ]
    );
    for label in ["root-ca", "audit", "tsa", "client-ca"] {
        let text = dev_with("label = \"doc-ec\"", &format!("label = \"{label}\""))
            .replace("keys = [\"doc-rsa\", \"doc-ec\"]", "keys = [\"doc-rsa\"]");
        let p = problems(&text, Origin::Clear);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].key, "signing_keys[1].label");
        assert!(
            p[0].message.contains("is the infrastructure key keys."),
            "{}",
            p[0].message
        );
    }
}

#[test]
fn an_imported_signing_key_needs_allow_imported_keys_in_production() {
    let marked = PRODUCTION_EXAMPLE_TOML.replacen("imported = false", "imported = true", 1);
    assert_ne!(marked, PRODUCTION_EXAMPLE_TOML);
    let p = problems(&marked, Origin::Sealed);
    assert_eq!(p.len(), 1, "{p:?}");
    assert!(p[0].key.ends_with(".imported"), "{p:?}");
    assert!(p[0].message.contains("hsm.allow_imported_keys"), "{p:?}");
    let allowed = marked.replacen(
        "allow_imported_keys = false",
        "allow_imported_keys = true",
        1,
    );
    assert_ne!(allowed, marked);
    assert!(problems(&allowed, Origin::Sealed).is_empty());
    // The dev profile takes the mark (signetd warns).
    let dev = dev_with("[[signing_keys]]\n", "[[signing_keys]]\nimported = true\n");
    assert!(problems(&dev, Origin::Clear).is_empty());
}

#[test]
fn connection_budgets_are_checked_per_listener() {
    let text = dev_with(
        "[public.connections]\nfirst_request_secs = 10\n",
        "[public.connections]\nfirst_request_secs = 0\nmax_sources = 1\n",
    );
    let p = problems(&text, Origin::Clear);
    let keys: Vec<&str> = p.iter().map(|p| p.key.as_str()).collect();
    assert!(
        keys.contains(&"public.connections.first_request_secs"),
        "{p:?}"
    );
    assert!(keys.contains(&"public.connections.max_sources"), "{p:?}");
    assert!(!keys.iter().any(|k| k.starts_with("api.")), "{p:?}");
    let text = dev_with("max_per_source = 512\n", "max_per_source = 0\n");
    let p = problems(&text, Origin::Clear);
    assert!(
        p.iter().any(|p| p.key == "api.connections.max_per_source"),
        "{p:?}"
    );
    // Absent, the defaults hold.
    let c = Config::parse_as("x.toml", "[public]\n", Origin::Clear);
    if let Ok(c) = c {
        assert_eq!(c.public.connections.first_request_secs, 10);
        assert_eq!(c.api.connections.max_per_source, 512);
        assert_eq!(c.public.max_connections, 1024);
    }
}

#[test]
fn the_audit_tpm_counter_is_used_from_a_sealed_config_and_off_is_refused_in_production() {
    let c = Config::parse_as("dev.toml", DEV_TOML, Origin::Clear).unwrap();
    assert_eq!(
        c.audit.tpm_counter_index,
        crate::DEFAULT_AUDIT_COUNTER_INDEX
    );
    assert!(!c.audit.uses_tpm_counter(Origin::Clear));
    assert!(c.audit.uses_tpm_counter(Origin::Sealed));
    let required = dev_with("tpm_counter = \"auto\"", "tpm_counter = \"required\"");
    let c = Config::parse_as("dev.toml", &required, Origin::Clear).unwrap();
    assert!(c.audit.uses_tpm_counter(Origin::Clear));

    // Outside the owner range of NV indices.
    let text = dev_with(
        "tpm_counter = \"auto\"",
        "tpm_counter = \"auto\"\ntpm_counter_index = 0x01800000",
    );
    let p = problems(&text, Origin::Clear);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "audit.tpm_counter_index");
    assert!(p[0].message.contains("owner range"), "{}", p[0].message);

    // `off`: dev only.
    let off =
        PRODUCTION_EXAMPLE_TOML.replacen("tpm_counter = \"auto\"", "tpm_counter = \"off\"", 1);
    assert_ne!(off, PRODUCTION_EXAMPLE_TOML);
    let p = problems(&off, Origin::Sealed);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].key, "audit.tpm_counter");
    assert_at(&p[0], position(&off, "\"off\"", 0));
    assert!(
        p[0].message.contains("refused in the production profile"),
        "{}",
        p[0].message
    );
    let dev_off = dev_with("tpm_counter = \"auto\"", "tpm_counter = \"off\"");
    assert!(problems(&dev_off, Origin::Clear).is_empty());
}

#[test]
fn the_postgres_store_needs_a_url_without_a_password_and_in_production_tls_and_a_seal() {
    let keys = |text: &str, origin| -> Vec<String> {
        problems(text, origin).into_iter().map(|p| p.key).collect()
    };
    let dev = |store: &str| format!("{DEV_TOML}\n[store]\n{store}\n");
    assert!(keys(&dev("backend = \"sqlite\""), Origin::Clear).is_empty());
    assert!(keys(
        &dev("backend = \"postgres\"\nurl = \"host=db user=signet\"\npassword = \"pw\""),
        Origin::Clear
    )
    .is_empty());
    assert_eq!(
        keys(&dev("backend = \"postgres\""), Origin::Clear),
        ["store.url"]
    );
    for url in [
        "postgres://signet:pw@db/signet",
        "host=db user=signet password=pw",
        "postgresql://db/signet?password=pw",
    ] {
        let text = dev(&format!("backend = \"postgres\"\nurl = \"{url}\""));
        assert_eq!(keys(&text, Origin::Clear), ["store.url"], "{url}");
    }
    assert!(keys(
        &dev("backend = \"postgres\"\nurl = \"postgres://signet@db/signet\""),
        Origin::Clear
    )
    .is_empty());
    assert_eq!(
        keys(&dev("url = \"host=db\""), Origin::Clear),
        ["store"],
        "settings of PostgreSQL with the SQLite backend"
    );
    assert!(!problems(&dev("backend = \"mysql\""), Origin::Clear).is_empty());

    let production = |store: &str| format!("{PRODUCTION_EXAMPLE_TOML}\n[store]\n{store}\n");
    let clear_pw = "backend = \"postgres\"\nurl = \"host=db user=signet\"\npassword = \"pw\"";
    let found = keys(&production(clear_pw), Origin::Sealed);
    assert_eq!(found, ["store.ca_file"], "production needs verified TLS");
    let with_ca = format!("{clear_pw}\nca_file = \"/etc/signet/db-ca.pem\"");
    assert!(keys(&production(&with_ca), Origin::Sealed).is_empty());
    assert!(
        keys(&production(&with_ca), Origin::Clear).contains(&"store.password".to_owned()),
        "a clear-text password is refused in production"
    );
    let sealed = crate::sealed::redact(&production(&with_ca)).expect("redact");
    assert!(
        !sealed.contains("\"pw\""),
        "config unseal shows no password: {sealed}"
    );
}

#[test]
fn a_node_name_is_a_short_plain_word() {
    let keys = |node: &str| -> Vec<String> {
        let text = format!("{DEV_TOML}\n[cluster]\nnode = {node:?}\n");
        problems(&text, Origin::Clear)
            .into_iter()
            .map(|p| p.key)
            .collect()
    };
    for good in ["box-a", "signet-2.dc1", "n_1"] {
        assert!(keys(good).is_empty(), "{good}");
    }
    for bad in ["", "box a", "box/a", "é", &"x".repeat(64)] {
        assert_eq!(keys(bad), ["cluster.node"], "{bad:?}");
    }
}
