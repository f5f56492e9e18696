//! PAdES baseline signatures (ETSI EN 319 142-1) on a spooled PDF: B-B, then B-T with a
//! signature-time-stamp, B-LT with a DSS of fresh validation data, B-LTA with a document
//! timestamp. Each level appends one revision; the original is only ever read.
//!
//! `/Contents` is sized from the real signature: the first try reserves an estimate, and
//! a signature that does not fit is made again with exactly the room it asked for. It
//! never overflows and never ships truncated.

use std::time::SystemTime;

use der::Encode;
use x509_cert::Certificate;

use signet_pki::alg::Hasher;
use signet_pki::cms::cades::{self, CadesProfile};
use signet_pki::cms::SignerIdentity;
use signet_pki::pades::{
    Document, PdfError, PendingSignature, Revision, SignatureKind, SignatureOptions, ValidationData,
};
use signet_pki::HashAlg;

use crate::crl::CrlService;
use crate::ocsp::OcspService;
use crate::signing_keys::SigningKey;
use crate::tsa::TsaService;
use signet_hsm::{Hsm, HsmError};
use signet_state::spool::Spool;

/// Tries at sizing `/Contents`: the estimate, then the exact size asked for.
const SIZING_TRIES: usize = 3;
/// Slack added to a signature's own report of its size: ECDSA and token lengths vary by a few bytes.
const SLACK: usize = 64;

/// Which PAdES baseline level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// B-B: the signature.
    Bb,
    /// B-T: and a signature-time-stamp.
    Bt,
    /// B-LT: and the validation data in a DSS.
    Blt,
    /// B-LTA: and a document timestamp.
    Blta,
}

impl Level {
    /// The level named `B-B`, `B-T`, `B-LT` or `B-LTA`.
    pub fn parse(name: &str) -> Option<Level> {
        match name {
            "B-B" => Some(Level::Bb),
            "B-T" => Some(Level::Bt),
            "B-LT" => Some(Level::Blt),
            "B-LTA" => Some(Level::Blta),
            _ => None,
        }
    }
}

/// What the signature dictionary says.
#[derive(Clone, Debug, Default)]
pub struct Appearance {
    /// The field to sign (an existing empty one, or a new one of this name).
    pub field: Option<String>,
    /// `/Name`.
    pub name: Option<String>,
    /// `/Reason`.
    pub reason: Option<String>,
    /// `/Location`.
    pub location: Option<String>,
    /// `/ContactInfo`.
    pub contact_info: Option<String>,
}

/// The services a PAdES signature draws on.
pub struct Services<'a> {
    /// Signs with the document key.
    pub hsm: &'a Hsm,
    /// Stamps.
    pub tsa: &'a TsaService,
    /// Answers for the DSS.
    pub ocsp: &'a OcspService,
    /// CRLs for the DSS.
    pub crls: &'a CrlService,
}

/// Why a PDF was not signed.
#[derive(Debug, thiserror::Error)]
pub enum PadesError {
    /// The document: the client's fault.
    #[error(transparent)]
    Pdf(#[from] PdfError),
    /// The HSM could not sign.
    #[error("HSM: {0}")]
    Hsm(#[from] HsmError),
    /// The TSA refused to stamp.
    #[error("time-stamp: {0}")]
    Timestamp(String),
    /// Validation data could not be gathered.
    #[error("validation data: {0}")]
    Validation(String),
    /// Anything else on our side.
    #[error("{0}")]
    Internal(String),
}

/// A signed document: the spooled original and the revisions to append to it.
pub struct SignedPdf {
    /// The original, still encrypted on disk.
    pub original: Spool,
    /// The appended revisions, in order.
    pub revisions: Vec<Vec<u8>>,
    /// The field signed.
    pub field: String,
}

impl SignedPdf {
    /// Length of the whole signed document.
    pub fn len(&self) -> u64 {
        use signet_pki::pades::Source;
        self.original.len() + self.revisions.iter().map(|r| r.len() as u64).sum::<u64>()
    }

    /// Whether the document is empty (never).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Sign `original` at `level` with `key`. `hashed` is the hash, with the key's hash
/// algorithm, of the original's bytes, computed as they streamed in.
pub async fn sign(
    services: &Services<'_>,
    key: &SigningKey,
    original: Spool,
    mut hashed: Hasher,
    hash: HashAlg,
    level: Level,
    appearance: Appearance,
) -> Result<SignedPdf, PadesError> {
    let doc = blocking(move || Document::open(original).map_err(PadesError::from)).await?;
    let mut doc = doc;
    let mut revisions = Vec::new();

    let options = SignatureOptions {
        kind: SignatureKind::Cades,
        field: appearance.field,
        name: appearance.name,
        reason: appearance.reason,
        location: appearance.location,
        contact_info: appearance.contact_info,
        signing_time: SystemTime::now(),
        contents_len: cms_estimate(key, services.tsa, level),
    };
    let (d, revision, contents, field) = sized(doc, options, |pending| {
        let digest = pending.digest(&hashed);
        async move { sign_cms(services, key, hash, &digest, level).await }
    })
    .await?;
    doc = d;
    append(&mut doc, &mut hashed, &mut revisions, revision);

    if level >= Level::Blt {
        let data = validation_data(services, key).await?;
        let (d, revision) = blocking(move || {
            let revision = doc.prepare_dss(&[&contents], &data)?;
            Ok((doc, revision))
        })
        .await?;
        doc = d;
        append(&mut doc, &mut hashed, &mut revisions, revision);
    }

    if level == Level::Blta {
        let options = SignatureOptions {
            kind: SignatureKind::DocTimeStamp,
            field: None,
            name: None,
            reason: None,
            location: None,
            contact_info: None,
            signing_time: SystemTime::now(),
            contents_len: token_estimate(services.tsa),
        };
        let (d, revision, _, _) = sized(doc, options, |pending| {
            let digest = pending.digest(&hashed);
            async move {
                services
                    .tsa
                    .stamp_digest(hash, &digest)
                    .await
                    .map_err(|e| PadesError::Timestamp(e.to_string()))
            }
        })
        .await?;
        doc = d;
        append(&mut doc, &mut hashed, &mut revisions, revision);
    }

    Ok(SignedPdf {
        original: doc.into_source(),
        revisions,
        field,
    })
}

fn append(
    doc: &mut Document<Spool>,
    hashed: &mut Hasher,
    revisions: &mut Vec<Vec<u8>>,
    revision: Revision,
) {
    hashed.update(&revision.bytes);
    doc.commit(revision.state);
    revisions.push(revision.bytes);
}

/// Lay out a signature, make it with `make`, and put it in; when it does not fit, lay it
/// out again with the room it needs. Returns the document, the revision, the padded
/// `/Contents` bytes (the /VRI key is their hash) and the field's name.
async fn sized<F, Fut>(
    mut doc: Document<Spool>,
    mut options: SignatureOptions,
    make: F,
) -> Result<(Document<Spool>, Revision, Vec<u8>, String), PadesError>
where
    F: Fn(&PendingSignature) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<u8>, PadesError>>,
{
    for _ in 0..SIZING_TRIES {
        let opts = options.clone();
        let (d, pending) = blocking(move || {
            let pending = doc.prepare_signature(&opts)?;
            Ok((doc, pending))
        })
        .await?;
        doc = d;
        let der = make(&pending).await?;
        let reserved = pending.reserved();
        let field = pending.field().to_owned();
        match pending.fill(&der) {
            Ok(revision) => {
                let mut contents = der;
                contents.resize(reserved, 0);
                return Ok((doc, revision, contents, field));
            }
            Err(PdfError::ContentsTooSmall { needed, .. }) => {
                tracing::debug!(
                    needed,
                    reserved,
                    "signature larger than its estimate; laying out again"
                );
                options.contents_len = needed + SLACK;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(PadesError::Internal(
        "the signature's size kept growing".into(),
    ))
}

/// The CMS over `digest`, with a signature-time-stamp from B-T up.
async fn sign_cms(
    services: &Services<'_>,
    key: &SigningKey,
    hash: HashAlg,
    digest: &[u8],
    level: Level,
) -> Result<Vec<u8>, PadesError> {
    let internal = |e: signet_pki::Error| PadesError::Internal(format!("CMS: {e}"));
    let cert = key
        .chain
        .first()
        .ok_or_else(|| PadesError::Internal("the key has no certificate".into()))?;
    let signer = SignerIdentity::new(cert.clone(), key.chain[1..].to_vec(), key.cms_scheme(hash))
        .map_err(internal)?;
    let prepared = cades::prepare_detached(&signer, digest, SystemTime::now(), CadesProfile::Pades)
        .map_err(internal)?;
    let signature = services
        .hsm
        .sign(&key.key, prepared.scheme(), prepared.signed_bytes())
        .await?;
    let der = prepared
        .finish(&signature)
        .map_err(internal)?
        .to_der()
        .map_err(|e| internal(e.into()))?;
    if level == Level::Bb {
        return Ok(der);
    }
    let value = cades::signature_value(&der).map_err(internal)?;
    let token = services
        .tsa
        .stamp_digest(HashAlg::Sha256, &HashAlg::Sha256.digest(&value))
        .await
        .map_err(|e| PadesError::Timestamp(e.to_string()))?;
    cades::add_signature_timestamp(&der, &token).map_err(internal)
}

/// Everything a validator needs later for the signer's and the TSA's chains: the
/// certificates, the OCSP responder's certificate, a fresh OCSP answer for every
/// certificate below a root, and the current CRLs.
async fn validation_data(
    services: &Services<'_>,
    key: &SigningKey,
) -> Result<ValidationData, PadesError> {
    let mut data = ValidationData::default();
    let tsa_chain = services.tsa.chain();
    for chain in [key.chain.as_slice(), tsa_chain.as_slice()] {
        for (i, cert) in chain.iter().enumerate() {
            data.certs.push(der_of(cert)?);
            let Some(issuer) = chain.get(i + 1) else {
                continue;
            };
            let answer = services
                .ocsp
                .answer_for(issuer, cert)
                .await
                .map_err(|e| PadesError::Validation(format!("OCSP: {e}")))?;
            data.ocsps.push(answer);
        }
    }
    for cert in services.ocsp.responder_certificates() {
        data.certs.push(der_of(&cert)?);
    }
    let names: Vec<String> = services.crls.names().map(str::to_owned).collect();
    for name in names {
        if let Some(crl) = services.crls.current(&name) {
            data.crls.push(crl.der.to_vec());
        }
    }
    Ok(data)
}

fn der_of(cert: &Certificate) -> Result<Vec<u8>, PadesError> {
    cert.to_der()
        .map_err(|e| PadesError::Internal(format!("certificate: {e}")))
}

/// Room for the CMS: its certificates, attributes and signature, and at B-T the token.
fn cms_estimate(key: &SigningKey, tsa: &TsaService, level: Level) -> usize {
    let certs: usize = key
        .chain
        .iter()
        .filter_map(|c| c.encoded_len().ok())
        .map(|l| usize::try_from(u32::from(l)).unwrap_or(0))
        .sum();
    let base = certs + 1024 + 512;
    if level >= Level::Bt {
        base + token_estimate(tsa)
    } else {
        base
    }
}

/// Room for a timestamp token from our TSA.
fn token_estimate(tsa: &TsaService) -> usize {
    let certs: usize = tsa
        .chain()
        .iter()
        .filter_map(|c| c.encoded_len().ok())
        .map(|l| usize::try_from(u32::from(l)).unwrap_or(0))
        .sum();
    certs + 1024 + 512
}

/// Run PDF work (disk reads, decompression) off the async threads.
async fn blocking<T, F>(f: F) -> Result<T, PadesError>
where
    F: FnOnce() -> Result<T, PadesError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| PadesError::Internal(format!("PDF task: {e}")))?
}
