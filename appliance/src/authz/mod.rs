//! Who may do what: a client certificate is matched to a configured client, which is granted
//! operations on named keys under a rate limit. The policy reloads (SIGHUP) without
//! dropping connections: each request reads the current one.

mod identity;
mod issued;
mod peer;

pub use identity::{ClientTrust, IssuedStatus, Refusal, Standing};
pub use peer::PeerCert;
pub use signet_services::bucket::TokenBucket;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use signet_config::{ClientConfig, Operation};

/// The answer to "may this peer do that".
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Go ahead; `client` is who it is.
    Allowed {
        /// The client's configured name.
        client: Arc<str>,
    },
    /// No configured client matches the certificate.
    UnknownClient,
    /// A known client without this grant.
    Forbidden {
        /// The client's configured name.
        client: Arc<str>,
    },
    /// Over its rate limit; try again after this long.
    Limited {
        /// The client's configured name.
        client: Arc<str>,
        /// When a token will be there.
        retry_after: Duration,
    },
}

struct Client {
    name: Arc<str>,
    issuer: String,
    subject: Option<String>,
    san_uri: Option<String>,
    san_dns: Option<String>,
    fingerprint: Option<Vec<u8>>,
    operations: HashSet<Operation>,
    keys: HashSet<String>,
    bucket: Option<Mutex<TokenBucket>>,
}

impl Client {
    fn from_config(c: &ClientConfig) -> Result<Client, String> {
        let fingerprint = match &c.matches.fingerprint_sha256 {
            Some(f) => {
                let hex: String = f.chars().filter(|c| *c != ':').collect();
                let bytes = hex::decode(&hex)
                    .ok()
                    .filter(|b| b.len() == 32)
                    .ok_or_else(|| {
                        format!(
                            "client `{}`: fingerprint_sha256 is not 32 hex octets",
                            c.name
                        )
                    })?;
                Some(bytes)
            }
            None => None,
        };
        Ok(Client {
            name: c.name.as_str().into(),
            issuer: c
                .matches
                .issuer
                .clone()
                .unwrap_or_else(|| signet_config::OWN_CLIENT_CA.to_owned()),
            subject: c.matches.subject.clone(),
            san_uri: c.matches.san_uri.clone(),
            san_dns: c.matches.san_dns.clone(),
            fingerprint,
            operations: c.operations.iter().copied().collect(),
            keys: c.keys.iter().cloned().collect(),
            bucket: c
                .rate_limit
                .map(|r| Mutex::new(TokenBucket::new(r.per_second, r.burst, Instant::now()))),
        })
    }

    /// Every criterion given must hold, and the certificate must come from the client's CA:
    /// the same subject from another CA is someone else.
    fn matches(&self, peer: &PeerCert) -> bool {
        *self.issuer == *peer.issuer
            && self.subject.as_ref().is_none_or(|s| *s == peer.subject)
            && self
                .san_uri
                .as_ref()
                .is_none_or(|u| peer.san_uris.contains(u))
            && self
                .san_dns
                .as_ref()
                .is_none_or(|d| peer.san_dns.iter().any(|p| p.eq_ignore_ascii_case(d)))
            && self
                .fingerprint
                .as_ref()
                .is_none_or(|f| f.as_slice() == peer.fingerprint.as_slice())
    }
}

/// The clients and their grants.
pub struct Policy {
    clients: Vec<Client>,
}

impl Policy {
    /// The policy of `clients` (from the config, already validated).
    pub fn new(clients: &[ClientConfig]) -> Result<Policy, String> {
        Ok(Policy {
            clients: clients
                .iter()
                .map(Client::from_config)
                .collect::<Result<_, _>>()?,
        })
    }

    /// The first configured client the certificate matches.
    fn client(&self, peer: &PeerCert) -> Option<&Client> {
        self.clients.iter().find(|c| c.matches(peer))
    }

    /// May `peer` do `op` (on `key`, for key operations)? Takes a token when it may.
    pub fn authorize(&self, peer: &PeerCert, op: Operation, key: Option<&str>) -> Decision {
        let Some(client) = self.client(peer) else {
            return Decision::UnknownClient;
        };
        let name = Arc::clone(&client.name);
        if !client.operations.contains(&op) || key.is_some_and(|k| !client.keys.contains(k)) {
            return Decision::Forbidden { client: name };
        }
        if let Some(bucket) = &client.bucket {
            let wait = bucket
                .lock()
                .map(|mut b| b.take(Instant::now()))
                .unwrap_or(Ok(()));
            if let Err(retry_after) = wait {
                return Decision::Limited {
                    client: name,
                    retry_after,
                };
            }
        }
        Decision::Allowed { client: name }
    }

    /// Take `n` more tokens from `peer`'s rate limit, for work beyond the one token its
    /// request took (the other digests of a batch): each signature costs the same, alone
    /// or in a batch. `None` when it may go on; otherwise how long until it could.
    pub fn charge(&self, peer: &PeerCert, n: u32) -> Option<(Arc<str>, Duration)> {
        let client = self.client(peer)?;
        let bucket = client.bucket.as_ref()?;
        let taken = bucket
            .lock()
            .map(|mut b| b.take_n(n, Instant::now()))
            .unwrap_or(Ok(()));
        taken.err().map(|wait| (Arc::clone(&client.name), wait))
    }

    /// The keys `peer` may use for any operation, and the client's name.
    pub fn keys_of(&self, peer: &PeerCert) -> Option<(Arc<str>, Vec<String>)> {
        let c = self.client(peer)?;
        let mut keys: Vec<String> = c.keys.iter().cloned().collect();
        keys.sort();
        Some((Arc::clone(&c.name), keys))
    }
}

/// The current policy, replaceable while requests run.
pub struct Authorizer {
    current: RwLock<Arc<Policy>>,
}

impl Authorizer {
    /// Start with `policy`.
    pub fn new(policy: Policy) -> Self {
        Authorizer {
            current: RwLock::new(Arc::new(policy)),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        match self.current.read() {
            Ok(p) => Arc::clone(&p),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Put `policy` in force for every later request.
    pub fn replace(&self, policy: Policy) {
        match self.current.write() {
            Ok(mut p) => *p = Arc::new(policy),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(policy),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use signet_config::{ClientMatch, RateLimit};

    fn peer(subject: &str, dns: &[&str]) -> PeerCert {
        PeerCert {
            issuer: signet_config::OWN_CLIENT_CA.into(),
            serial: vec![1],
            subject: subject.into(),
            san_uris: vec![],
            san_dns: dns.iter().map(|d| d.to_string()).collect(),
            fingerprint: [7; 32],
        }
    }

    fn client(name: &str, m: ClientMatch, ops: &[Operation], keys: &[&str]) -> ClientConfig {
        ClientConfig {
            name: name.into(),
            matches: m,
            operations: ops.to_vec(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            rate_limit: None,
        }
    }

    #[test]
    fn grants_are_per_client_operation_and_key() {
        let a = client(
            "a",
            ClientMatch {
                subject: Some("CN=a".into()),
                ..Default::default()
            },
            &[Operation::Sign],
            &["k1"],
        );
        let b = client(
            "b",
            ClientMatch {
                san_dns: Some("b.example".into()),
                ..Default::default()
            },
            &[Operation::Tsa],
            &[],
        );
        let by_print = client(
            "c",
            ClientMatch {
                fingerprint_sha256: Some(hex::encode([7u8; 32])),
                subject: Some("CN=c".into()),
                ..Default::default()
            },
            &[Operation::Cms],
            &["k2"],
        );
        let policy = Policy::new(&[a, b, by_print]).expect("policy");
        let allowed = |d: Decision| matches!(d, Decision::Allowed { .. });
        let pa = peer("CN=a", &[]);
        assert!(allowed(policy.authorize(&pa, Operation::Sign, Some("k1"))));
        assert!(matches!(
            policy.authorize(&pa, Operation::Sign, Some("k2")),
            Decision::Forbidden { .. }
        ));
        assert!(matches!(
            policy.authorize(&pa, Operation::Tsa, None),
            Decision::Forbidden { .. }
        ));
        let pb = peer("CN=whoever", &["B.example"]);
        assert!(allowed(policy.authorize(&pb, Operation::Tsa, None)));
        assert!(allowed(policy.authorize(
            &peer("CN=c", &[]),
            Operation::Cms,
            Some("k2")
        )));
        assert_eq!(
            policy.authorize(&peer("CN=stranger", &[]), Operation::Tsa, None),
            Decision::UnknownClient
        );
    }

    #[test]
    fn a_client_is_bound_to_its_issuer() {
        let by_subject = |issuer: Option<&str>| {
            client(
                "a",
                ClientMatch {
                    issuer: issuer.map(str::to_owned),
                    subject: Some("CN=a".into()),
                    ..Default::default()
                },
                &[Operation::Tsa],
                &[],
            )
        };
        let own = Policy::new(&[by_subject(None)]).expect("policy");
        let partner = Policy::new(&[by_subject(Some("partner"))]).expect("policy");
        let from_own = peer("CN=a", &[]);
        let from_partner = PeerCert {
            issuer: "partner".into(),
            ..peer("CN=a", &[])
        };
        let allowed = |d: Decision| matches!(d, Decision::Allowed { .. });
        assert!(allowed(own.authorize(&from_own, Operation::Tsa, None)));
        assert_eq!(
            own.authorize(&from_partner, Operation::Tsa, None),
            Decision::UnknownClient
        );
        assert!(allowed(partner.authorize(
            &from_partner,
            Operation::Tsa,
            None
        )));
        assert_eq!(
            partner.authorize(&from_own, Operation::Tsa, None),
            Decision::UnknownClient
        );
    }

    #[test]
    fn the_rate_limit_says_when_to_come_back() {
        let mut c = client(
            "a",
            ClientMatch {
                subject: Some("CN=a".into()),
                ..Default::default()
            },
            &[Operation::Tsa],
            &[],
        );
        c.rate_limit = Some(RateLimit {
            per_second: 1.0,
            burst: 2.0,
        });
        let policy = Policy::new(&[c]).expect("policy");
        let p = peer("CN=a", &[]);
        for _ in 0..2 {
            assert!(matches!(
                policy.authorize(&p, Operation::Tsa, None),
                Decision::Allowed { .. }
            ));
        }
        match policy.authorize(&p, Operation::Tsa, None) {
            Decision::Limited { retry_after, .. } => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1))
            }
            other => panic!("not limited: {other:?}"),
        }
    }
}
