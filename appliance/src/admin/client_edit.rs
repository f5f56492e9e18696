//! `client add|remove`: edit the `[[clients]]` of the config file the daemon runs from,
//! keeping every comment and the layout (toml_edit), then reload the policy.
//!
//! The edit is made by signetd itself, through the admin socket: the daemon knows which file
//! it runs from (signetctl would have to be told), edits are serialised in one place, and
//! the reload that follows is the daemon's own. With no daemon running, signetctl edits the
//! file named by `--config` the same way. Either way the new text is checked by the same
//! parser the daemon starts with (and the client policy built from it) before it is
//! written, and written atomically: a refused edit leaves the file as it was.
//!
//! A TPM-sealed config cannot be edited in place (its plaintext exists only in memory):
//! edit the plaintext and seal it again. Comments directly above a removed client's table
//! go with it.

use serde::{Deserialize, Serialize};
use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

use super::AdminError;
use crate::config_source::ConfigSource;

/// A client to add: at least one way to recognise its certificate, what it may do, and
/// with which keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewClient {
    /// Its name (unique).
    pub name: String,
    /// The client CA that must have issued its certificate (default: the appliance's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// The subject DN its certificate must have (RFC 4514).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// A URI its certificate's subjectAltName must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub san_uri: Option<String>,
    /// A DNS name its certificate's subjectAltName must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub san_dns: Option<String>,
    /// SHA-256 of its certificate, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint_sha256: Option<String>,
    /// Operations it may call (`sign`, `cms`, `pdf`, `tsa`).
    pub operations: Vec<String>,
    /// Signing keys it may use.
    #[serde(default)]
    pub keys: Vec<String>,
}

/// Why an edit was refused.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The config is sealed by the TPM.
    #[error(
        "{0} is sealed by the TPM and cannot be edited in place: edit its plaintext, then \
         seal it again (`signetctl config seal`) and restart or reload signetd"
    )]
    Sealed(String),
    /// A client of that name exists.
    #[error("a client named {0:?} exists already")]
    Exists(String),
    /// No client of that name.
    #[error("no client named {0:?}")]
    NotFound(String),
    /// The file is not TOML, or `clients` is not a list of tables.
    #[error("{0}")]
    Unreadable(String),
    /// The edited config does not validate; the file was left unchanged.
    #[error("the edited config is refused (file unchanged): {0}")]
    Invalid(String),
    /// Reading or writing the file failed.
    #[error("{0}")]
    Io(String),
}

impl From<EditError> for AdminError {
    fn from(e: EditError) -> Self {
        let code = match e {
            EditError::Sealed(_) => "sealed-config",
            EditError::Exists(_) => "client-exists",
            EditError::NotFound(_) => "not-found",
            EditError::Unreadable(_) | EditError::Invalid(_) => "invalid-config",
            EditError::Io(_) => "internal",
        };
        AdminError::new(code, e.to_string())
    }
}

/// `text` with `client` appended to its `[[clients]]`.
pub fn add_client(text: &str, client: &NewClient) -> Result<String, EditError> {
    let mut doc = parse(text)?;
    if client_names(&doc)?.contains(&client.name) {
        return Err(EditError::Exists(client.name.clone()));
    }
    let mut matches = InlineTable::new();
    for (key, value) in [
        ("issuer", &client.issuer),
        ("subject", &client.subject),
        ("san_uri", &client.san_uri),
        ("san_dns", &client.san_dns),
        ("fingerprint_sha256", &client.fingerprint_sha256),
    ] {
        if let Some(v) = value {
            matches.insert(key, v.as_str().into());
        }
    }
    let mut table = Table::new();
    table.insert("name", toml_edit::value(client.name.as_str()));
    table.insert("match", toml_edit::value(matches));
    table.insert("operations", toml_edit::value(strings(&client.operations)));
    table.insert("keys", toml_edit::value(strings(&client.keys)));
    match doc.get_mut("clients") {
        None => {
            let mut list = ArrayOfTables::new();
            list.push(table);
            doc.insert("clients", Item::ArrayOfTables(list));
        }
        Some(Item::ArrayOfTables(list)) => list.push(table),
        Some(Item::Value(Value::Array(list))) => list.push(table.into_inline_table()),
        Some(_) => return Err(not_a_list()),
    }
    Ok(doc.to_string())
}

/// `text` without the client named `name`.
pub fn remove_client(text: &str, name: &str) -> Result<String, EditError> {
    let mut doc = parse(text)?;
    let Some(index) = client_names(&doc)?.iter().position(|n| n == name) else {
        return Err(EditError::NotFound(name.to_owned()));
    };
    match doc.get_mut("clients") {
        Some(Item::ArrayOfTables(list)) => list.remove(index),
        Some(Item::Value(Value::Array(list))) => {
            list.remove(index);
        }
        _ => return Err(not_a_list()),
    }
    Ok(doc.to_string())
}

/// Edit the config of `source` with `edit`: check the result with the config parser and the
/// client policy, then write it atomically. Returns the new config's client count.
pub fn apply(
    source: &ConfigSource,
    edit: impl FnOnce(&str) -> Result<String, EditError>,
) -> Result<usize, EditError> {
    let path = match source {
        ConfigSource::Clear(path) => path,
        ConfigSource::Sealed { .. } => return Err(EditError::Sealed(source.name())),
    };
    let text = source.read_text().map_err(EditError::Io)?;
    let edited = edit(&text)?;
    let config = signet_config::Config::parse_as(&source.name(), &edited, source.origin())
        .map_err(|e| EditError::Invalid(e.to_string()))?;
    crate::authz::Policy::new(&config.clients).map_err(EditError::Invalid)?;
    crate::atomic_write::write_atomic(path, edited.as_bytes(), 0o600)
        .map_err(|e| EditError::Io(format!("{}: {e}", path.display())))?;
    Ok(config.clients.len())
}

fn parse(text: &str) -> Result<DocumentMut, EditError> {
    text.parse::<DocumentMut>()
        .map_err(|e| EditError::Unreadable(format!("the config is not TOML: {e}")))
}

fn not_a_list() -> EditError {
    EditError::Unreadable("`clients` is not a list of tables".into())
}

fn client_names(doc: &DocumentMut) -> Result<Vec<String>, EditError> {
    let name = |t: Option<&Item>| {
        t.and_then(Item::as_str)
            .map(str::to_owned)
            .unwrap_or_default()
    };
    match doc.get("clients") {
        None => Ok(Vec::new()),
        Some(Item::ArrayOfTables(list)) => Ok(list.iter().map(|t| name(t.get("name"))).collect()),
        Some(Item::Value(Value::Array(list))) => Ok(list
            .iter()
            .map(|v| {
                v.as_inline_table()
                    .and_then(|t| t.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_default()
            })
            .collect()),
        Some(_) => Err(not_a_list()),
    }
}

fn strings(items: &[String]) -> Array {
    items.iter().map(String::as_str).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# The appliance.
state_dir = "/var/lib/signet"   # where state lives

# Who may call the API.
[[clients]]
name = "demo-app"
match = { subject = "CN=demo-app,O=Signet" }
operations = ["sign"]   # only raw signatures
keys = ["doc-rsa"]

# Logging.
[log]
json = false
"#;

    fn stamper() -> NewClient {
        NewClient {
            name: "stamper".into(),
            issuer: None,
            subject: Some("CN=stamper,O=Signet".into()),
            san_uri: None,
            san_dns: None,
            fingerprint_sha256: None,
            operations: vec!["tsa".into()],
            keys: vec![],
        }
    }

    #[test]
    fn adding_keeps_everything_else_and_removing_restores_it() {
        let added = add_client(TEXT, &stamper()).unwrap();
        for line in TEXT.lines() {
            assert!(added.contains(line), "{line:?} survives in:\n{added}");
        }
        assert!(added.contains(r#"match = { subject = "CN=stamper,O=Signet" }"#));
        let doc: DocumentMut = added.parse().unwrap();
        assert_eq!(client_names(&doc).unwrap(), ["demo-app", "stamper"]);
        assert_eq!(remove_client(&added, "stamper").unwrap(), TEXT);
    }

    #[test]
    fn duplicates_and_unknown_names_are_refused() {
        let mut dup = stamper();
        dup.name = "demo-app".into();
        assert!(matches!(add_client(TEXT, &dup), Err(EditError::Exists(_))));
        assert!(matches!(
            remove_client(TEXT, "nobody"),
            Err(EditError::NotFound(_))
        ));
        assert!(matches!(
            add_client("clients = 3", &stamper()),
            Err(EditError::Unreadable(_))
        ));
        assert!(matches!(
            add_client("[[[", &stamper()),
            Err(EditError::Unreadable(_))
        ));
    }

    #[test]
    fn a_first_client_and_inline_lists_work_too() {
        let first = add_client("# nothing yet\n", &stamper()).unwrap();
        assert!(first.contains("# nothing yet\n"), "{first}");
        assert!(first.contains("[[clients]]"), "{first}");
        let inline = "clients = [{ name = \"a\", match = { subject = \"CN=a\" } }]\n";
        let added = add_client(inline, &stamper()).unwrap();
        assert!(added.contains("name = \"stamper\""), "{added}");
        assert_eq!(
            remove_client(&remove_client(&added, "stamper").unwrap(), "a").unwrap(),
            "clients = []\n"
        );
    }

    #[test]
    fn a_sealed_config_is_not_edited() {
        let sealed = ConfigSource::new(std::path::Path::new("sealed:/nonexistent"), "x".into());
        let err = apply(&sealed, |t| Ok(t.to_owned())).unwrap_err();
        assert!(matches!(err, EditError::Sealed(_)));
        assert!(err.to_string().contains("seal it again"), "{err}");
    }

    #[test]
    fn an_invalid_edit_leaves_the_file_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("appliance.toml");
        let text =
            signet_config::DEV_TOML.replace("state_dir = ", "# a comment to keep\nstate_dir = ");
        std::fs::write(&path, &text).unwrap();
        let source = ConfigSource::Clear(path.clone());
        let mut bad = stamper();
        bad.operations = vec!["teleport".into()];
        let err = apply(&source, |t| add_client(t, &bad)).unwrap_err();
        assert!(matches!(err, EditError::Invalid(_)), "{err}");
        let mut no_key = stamper();
        no_key.keys = vec!["no-such-key".into()];
        assert!(matches!(
            apply(&source, |t| add_client(t, &no_key)),
            Err(EditError::Invalid(_))
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
        assert_eq!(apply(&source, |t| add_client(t, &stamper())).unwrap(), 2);
        let now = std::fs::read_to_string(&path).unwrap();
        assert!(now.contains("# a comment to keep\n"));
        assert_eq!(apply(&source, |t| remove_client(t, "stamper")).unwrap(), 1);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
}
