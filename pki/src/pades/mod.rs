//! PAdES: signatures in PDF documents (ETSI EN 319 142-1), added by incremental update.
//!
//! ```text
//! original bytes | revision 1: field, widget, /Sig with /ByteRange and a /Contents hole
//!                | revision 2 (B-LT): /DSS with certificates, OCSP answers and CRLs
//!                | revision 3 (B-LTA): a /DocTimeStamp over everything before it
//! ```
//!
//! The original is never rewritten: every revision is appended, so the input is a prefix
//! of the output and signatures already in the file stay valid. A [`Document`] reads the
//! structure it needs through a [`Source`] a few kilobytes at a time; a revision is built
//! in memory (it is small) and the caller streams the original past a hasher, so memory
//! does not grow with the document.

mod document;
mod dss;
mod filter;
mod object;
mod parse;
mod signature;
mod source;
mod update;
mod xref;

pub use document::Document;
pub use dss::ValidationData;
pub use object::{hex_upper, Dict, Object, Ref};
pub use signature::{PendingSignature, SignatureKind, SignatureOptions};
pub use source::Source;
pub use update::Revision;
pub use xref::XrefKind;

/// Why a document cannot be signed.
#[derive(Debug, thiserror::Error)]
pub enum PdfError {
    /// The bytes do not start like a PDF file.
    #[error("not a PDF file (no %PDF- header)")]
    NotPdf,
    /// The file ends before its cross-reference data: cut off in transit.
    #[error("truncated PDF file (no startxref and %%EOF at its end)")]
    Truncated,
    /// The cross-reference data cannot be followed.
    #[error("broken cross-reference: {0}")]
    BrokenXref(String),
    /// An encrypted document: signing it would need its password.
    #[error("encrypted PDF documents cannot be signed")]
    Encrypted,
    /// Syntax or structure that is not valid PDF.
    #[error("malformed PDF: {0}")]
    Malformed(String),
    /// Valid PDF using something this signer does not implement.
    #[error("unsupported PDF feature: {0}")]
    Unsupported(String),
    /// The document needs more than a request may spend: entries, bytes or objects.
    #[error("the document exceeds a processing limit: {0}")]
    TooLarge(String),
    /// The named signature field already holds a signature.
    #[error("signature field {0:?} is already signed")]
    FieldAlreadySigned(String),
    /// The named field exists but is not a signature field.
    #[error("field {0:?} is not a signature field")]
    NotASignatureField(String),
    /// The signature does not fit the space reserved for it.
    #[error("signature of {needed} bytes does not fit the {reserved} reserved")]
    ContentsTooSmall {
        /// Bytes the signature needs.
        needed: usize,
        /// Bytes reserved.
        reserved: usize,
    },
    /// Reading the document failed.
    #[error("reading the document: {0}")]
    Io(#[from] std::io::Error),
}

impl PdfError {
    pub(crate) fn malformed(what: &str) -> Self {
        PdfError::Malformed(what.to_owned())
    }

    pub(crate) fn too_large(what: &str) -> Self {
        PdfError::TooLarge(what.to_owned())
    }

    /// Whether the fault lies with the document (a 4xx), not with the signer.
    pub fn is_bad_input(&self) -> bool {
        !matches!(self, PdfError::Io(_) | PdfError::ContentsTooSmall { .. })
    }

    /// A short stable code for the fault, for problem documents and the audit log.
    pub fn code(&self) -> &'static str {
        match self {
            PdfError::NotPdf => "not-a-pdf",
            PdfError::Truncated => "pdf-truncated",
            PdfError::BrokenXref(_) => "pdf-broken-xref",
            PdfError::Encrypted => "pdf-encrypted",
            PdfError::Malformed(_) => "pdf-malformed",
            PdfError::Unsupported(_) => "pdf-unsupported",
            PdfError::TooLarge(_) => "pdf-too-large",
            PdfError::FieldAlreadySigned(_) => "field-already-signed",
            PdfError::NotASignatureField(_) => "field-not-signature",
            PdfError::ContentsTooSmall { .. } => "internal",
            PdfError::Io(_) => "internal",
        }
    }
}

/// Result with a [`PdfError`].
pub type Result<T> = core::result::Result<T, PdfError>;
