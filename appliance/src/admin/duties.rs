//! Separation of duties on the admin socket: two roles, each a Unix group.
//!
//! - **admin** (`[admin] group`): day-to-day operation: status, listings, revocation,
//!   `cert issue` of `tls-client` and `document-signing`, `client remove`, key generation,
//!   CRLs, audit, reload.
//! - **CA officer** (`[admin] officer_group`): besides that, what creates trust or widens
//!   grants: `cert issue` of every other profile (`tsa`, `ocsp-signer`, and any CA-grade
//!   profile added later: the plain list is an allow list), a `tls-client` certificate that
//!   a `[[clients]]` entry would accept (a new credential for existing grants), `client add`
//!   (a new client is a new grant), and `csr`, `cert import` or `key generate` for an
//!   infrastructure key (recognised by public key, [`crate::infrastructure`]).
//!
//! Root and the user signetd runs as hold both roles: they reach the keys without the
//! socket anyway (root by any means, the daemon's user through the PIN it unseals), so
//! refusing them here would protect nothing.
//!
//! Why a second group and not M-of-N approval by two operators: a group is checked on the
//! one connection that carries the command, by the kernel's SO_PEERCRED and the group
//! database the host already manages (and audits); M-of-N needs pending requests that
//! outlive a connection, a second authenticated channel and expiry rules, which is more
//! state and more ways to get it wrong than the threat (an admin overreaching) calls for.
//! A privileged command is audited with the Unix identity (uid, user name) and the role it
//! acted under (and what granted it); a refused one too, with what it needed.

use nix::unistd::{Gid, Group, User};
use serde::Serialize;

use super::{AdminError, Command};

/// The `cert issue` profiles a plain admin may use; every other one needs the officer role.
pub const PLAIN_PROFILES: [&str; 2] = ["tls-client", "document-signing"];

/// A role on the admin socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Day-to-day administration.
    Admin,
    /// Administration, and what creates trust or widens grants.
    Officer,
}

impl Role {
    /// `admin` or `officer`.
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Officer => "officer",
        }
    }
}

/// A role, and what granted it (`root`, `daemon user`, `group NAME`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The role.
    pub role: Role,
    /// What granted it.
    pub via: String,
}

/// The two groups, resolved.
#[derive(Clone, Debug, Default)]
pub struct Roles {
    /// The admin group.
    pub admin: Option<(String, Gid)>,
    /// The CA officer group.
    pub officer: Option<(String, Gid)>,
}

/// A group named in the config, resolved; `what` names it in errors.
pub fn resolve_group(what: &str, name: Option<&str>) -> Result<Option<(String, Gid)>, String> {
    let Some(name) = name else { return Ok(None) };
    match Group::from_name(name) {
        Ok(Some(g)) => Ok(Some((name.to_owned(), g.gid))),
        Ok(None) => Err(format!("{what} {name:?} does not exist")),
        Err(e) => Err(format!("{what} {name:?}: {e}")),
    }
}

impl Roles {
    /// The groups of `config`'s `[admin]`.
    pub fn from_config(admin: &signet_config::AdminConfig) -> Result<Roles, String> {
        Ok(Roles {
            admin: resolve_group("admin group", admin.group.as_deref())?,
            officer: resolve_group("officer group", admin.officer_group.as_deref())?,
        })
    }

    /// The role of `uid` (whose primary group is `gid`), when `owner` is the user signetd
    /// runs as; `None` when it has neither. Supplementary groups count: they are read
    /// from the group database for the user (getgrouplist), not only the process's gid.
    pub fn grant(&self, uid: u32, gid: u32, owner: Option<u32>) -> Option<Grant> {
        let grant = |role, via: &str| {
            Some(Grant {
                role,
                via: via.to_owned(),
            })
        };
        if uid == 0 {
            return grant(Role::Officer, "root");
        }
        if owner == Some(uid) {
            return grant(Role::Officer, "daemon user");
        }
        let groups = groups_of(uid, gid);
        if let Some((name, g)) = &self.officer {
            if groups.contains(g) {
                return grant(Role::Officer, &format!("group {name}"));
            }
        }
        if let Some((name, g)) = &self.admin {
            if groups.contains(g) {
                return grant(Role::Admin, &format!("group {name}"));
            }
        }
        None
    }

    /// The refusal of a command that needs the officer role.
    pub fn refusal(&self, who: &str, duty: &str) -> AdminError {
        let group = match &self.officer {
            Some((name, _)) => format!("group {name}"),
            None => "root; no [admin] officer_group is configured".into(),
        };
        AdminError::new(
            "forbidden",
            format!("permission denied: {who}: {duty} needs the CA officer role ({group})"),
        )
    }
}

/// `gid` and every group the user `uid` belongs to.
fn groups_of(uid: u32, gid: u32) -> Vec<Gid> {
    let mut groups = vec![Gid::from_raw(gid)];
    if let Ok(Some(user)) = User::from_uid(nix::unistd::Uid::from_raw(uid)) {
        groups.push(user.gid);
        if let Some(list) = std::ffi::CString::new(user.name.as_bytes())
            .ok()
            .and_then(|name| nix::unistd::getgrouplist(&name, user.gid).ok())
        {
            groups.extend(list);
        }
    }
    groups
}

/// What about `command` needs the officer role, if anything. `infrastructure` tells the
/// `[keys]` name of an infrastructure key by its label (by public key), or `None`;
/// `clients` are the configured clients, whose grants a new client certificate may carry.
pub fn officer_duty(
    command: &Command,
    clients: &[signet_config::ClientConfig],
    infrastructure: impl FnOnce(&str) -> Result<Option<String>, String>,
) -> Result<Option<String>, AdminError> {
    let infra = |label: &str, what: &str| {
        infrastructure(label)
            .map(|name| name.map(|n| format!("{what} the infrastructure key keys.{n}")))
            .map_err(|e| AdminError::new("internal", e))
    };
    match command {
        Command::CertIssue(req) if !PLAIN_PROFILES.contains(&req.profile.as_str()) => {
            Ok(Some(format!("issuing a {:?} certificate", req.profile)))
        }
        Command::CertIssue(req) if req.profile == "tls-client" => {
            Ok(client_accepting(req, clients).map(|name| {
                format!("issuing a client certificate that client {name:?} would accept")
            }))
        }
        Command::ClientAdd(c) => Ok(Some(format!("adding client {:?} (a new grant)", c.name))),
        Command::Csr { label, .. } => infra(label, "a CSR for"),
        Command::CertImport { label, .. } => infra(label, "a certificate for"),
        Command::KeyGenerate { label, .. } => infra(label, "generating"),
        _ => Ok(None),
    }
}

/// The configured client that a `tls-client` certificate issued for `req` would be: one
/// bound to the appliance's client CA whose every criterion the request meets (a client
/// matched by fingerprint never is: a new certificate has a new fingerprint).
fn client_accepting<'a>(
    req: &crate::issuance::IssueRequest,
    clients: &'a [signet_config::ClientConfig],
) -> Option<&'a str> {
    // A request that does not verify is refused by issuance itself, with its reason.
    let subject = signet_pki::x509::csr::verify_csr_pem(&req.csr_pem)
        .ok()?
        .subject
        .to_string();
    clients
        .iter()
        .find(|c| {
            let m = &c.matches;
            m.issuer
                .as_deref()
                .is_none_or(|i| i == signet_config::OWN_CLIENT_CA)
                && m.fingerprint_sha256.is_none()
                && m.subject.as_ref().is_none_or(|s| *s == subject)
                && m.san_uri.as_ref().is_none_or(|u| req.san_uri.contains(u))
                && m.san_dns
                    .as_ref()
                    .is_none_or(|d| req.san_dns.iter().any(|r| r.eq_ignore_ascii_case(d)))
        })
        .map(|c| c.name.as_str())
}

/// Whether `command` needs the officer role, resolved for signetctl on the database
/// without a daemon: the caller's real uid, with the state directory's owner standing for
/// the daemon's user. Nothing is audited offline (no daemon holds the log), so this is the
/// same rule as on the socket, not more.
pub fn check_offline(
    config: &signet_config::Config,
    command: &Command,
    infrastructure: impl FnOnce(&str) -> Result<Option<String>, String>,
) -> Result<(), AdminError> {
    use std::os::unix::fs::MetadataExt;
    let Some(duty) = officer_duty(command, &config.clients, infrastructure)? else {
        return Ok(());
    };
    let roles = Roles::from_config(&config.admin).map_err(|e| AdminError::new("internal", e))?;
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let owner = std::fs::metadata(&config.state_dir).ok().map(|m| m.uid());
    match roles.grant(uid, gid, owner) {
        Some(Grant {
            role: Role::Officer,
            ..
        }) => Ok(()),
        _ => {
            let who = User::from_uid(nix::unistd::Uid::from_raw(uid))
                .ok()
                .flatten()
                .map_or_else(|| format!("uid {uid}"), |u| u.name);
            Err(roles.refusal(&who, &duty))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::issuance::IssueRequest;

    fn issue(profile: &str) -> Command {
        Command::CertIssue(IssueRequest {
            csr_pem: String::new(),
            profile: profile.into(),
            days: None,
            san_dns: vec![],
            san_uri: vec![],
        })
    }

    #[test]
    fn trust_and_grants_need_the_officer_and_the_rest_does_not() {
        let none = |_: &str| Ok(None);
        let root = |l: &str| Ok((l == "second-label").then(|| "root_ca".to_owned()));
        for p in ["tsa", "ocsp-signer", "root", "sub-ca", ""] {
            assert!(officer_duty(&issue(p), &[], none).unwrap().is_some(), "{p}");
        }
        for p in PLAIN_PROFILES {
            assert_eq!(officer_duty(&issue(p), &[], none).unwrap(), None, "{p}");
        }
        let csr = |label: &str| Command::Csr {
            label: label.into(),
            subject: "CN=x".into(),
            san_dns: vec![],
        };
        assert_eq!(
            officer_duty(&csr("second-label"), &[], root)
                .unwrap()
                .as_deref(),
            Some("a CSR for the infrastructure key keys.root_ca")
        );
        assert_eq!(officer_duty(&csr("doc-ec"), &[], root).unwrap(), None);
        assert_eq!(
            officer_duty(&csr("x"), &[], |_| Err("token gone".into()))
                .unwrap_err()
                .code,
            "internal"
        );
        assert_eq!(
            officer_duty(&Command::ClientRemove { name: "a".into() }, &[], none).unwrap(),
            None
        );
        assert_eq!(officer_duty(&Command::CertList, &[], none).unwrap(), None);
    }

    /// A PEM CSR for `subject`, signed by a software P-256 key.
    fn csr_pem(subject: &str) -> String {
        use der::Decode;
        use p256::ecdsa::signature::Signer;
        use p256::pkcs8::EncodePublicKey;
        let key = p256::ecdsa::SigningKey::from_slice(&[5; 32]).expect("key");
        let spki_der = key.verifying_key().to_public_key_der().expect("spki");
        let spki = spki::SubjectPublicKeyInfoOwned::from_der(spki_der.as_bytes()).expect("spki");
        let scheme = signet_pki::SignatureScheme::Ecdsa(signet_pki::HashAlg::Sha256);
        let prepared = signet_pki::x509::csr::prepare_csr(
            signet_pki::x509::parse_name(subject).expect("dn"),
            spki,
            &[],
            scheme,
        )
        .expect("csr");
        let sig: p256::ecdsa::Signature = key.sign(prepared.tbs_der());
        let req = prepared.finish(sig.to_der().as_bytes()).expect("csr");
        signet_pki::x509::csr::csr_to_pem(&req).expect("pem")
    }

    #[test]
    fn a_client_certificate_for_a_configured_client_needs_the_officer() {
        let config: signet_config::Config =
            signet_config::Config::parse(std::path::Path::new("dev.toml"), signet_config::DEV_TOML)
                .expect("dev config");
        let issue_for = |subject: &str, dns: &[&str]| {
            Command::CertIssue(IssueRequest {
                csr_pem: csr_pem(subject),
                profile: "tls-client".into(),
                days: None,
                san_dns: dns.iter().map(|d| d.to_string()).collect(),
                san_uri: vec![],
            })
        };
        let none = |_: &str| Ok(None);
        // The demo client's subject: a new credential for its grants.
        let duty = officer_duty(
            &issue_for("CN=demo-app,O=Signet", &[]),
            &config.clients,
            none,
        )
        .expect("checked");
        assert!(
            duty.as_deref().is_some_and(|d| d.contains("\"demo-app\"")),
            "{duty:?}"
        );
        // A subject no client has: a plain admin's job.
        assert_eq!(
            officer_duty(
                &issue_for("CN=new-app,O=Signet", &[]),
                &config.clients,
                none
            )
            .expect("checked"),
            None
        );
        // A client bound to another CA, or matched by fingerprint, is not at stake.
        let mut bound = config.clients.clone();
        bound[0].matches.issuer = Some("partner".into());
        assert_eq!(
            officer_duty(&issue_for("CN=demo-app,O=Signet", &[]), &bound, none).expect("ok"),
            None
        );
        bound[0].matches.issuer = None;
        bound[0].matches.fingerprint_sha256 = Some("00".repeat(32));
        assert_eq!(
            officer_duty(&issue_for("CN=demo-app,O=Signet", &[]), &bound, none).expect("ok"),
            None
        );
    }

    #[test]
    fn root_and_the_daemon_user_are_officers_and_strangers_nothing() {
        let roles = Roles::default();
        assert_eq!(roles.grant(0, 0, None).map(|g| g.role), Some(Role::Officer));
        assert_eq!(
            roles.grant(4242, 4242, Some(4242)).map(|g| g.via),
            Some("daemon user".into())
        );
        assert_eq!(roles.grant(4242, 4242, Some(1)), None);
        let e = roles.refusal("alice", "issuing a \"tsa\" certificate");
        assert_eq!(e.code, "forbidden");
        assert!(e.message.contains("needs the CA officer role"), "{e}");
    }
}
