//! PDFs from outside producers, made in a temporary directory: Ghostscript (PDF 1.4, 1.7,
//! 2.0, PDF/A-2b, an AcroForm without signatures), qpdf (object streams, linearized, PDF 2.0,
//! encrypted), pyHanko (an already signed file with an empty field to sign into), a
//! hybrid-reference file, and the inputs a signer must refuse.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::bytes::{last_xref_kind, pdfa_declared, XrefKind};
use super::level::Level;
use super::pyhanko::pyhanko_sign;
use super::signer::{SoftSigner, Trust};
use super::{hybrid, qpdf_check};
use crate::run_ok;

/// A signer must sign it, or refuse it with a 4xx for the reason named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Signable: every level must validate.
    Good,
    /// Unsignable: the signer must refuse it.
    Bad(Refusal),
}

/// Why a file must be refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not a PDF at all.
    NotPdf,
    /// The first part of a good PDF, no `%%EOF`.
    Truncated,
    /// `startxref` points at no cross-reference and the table and trailer keywords are gone,
    /// so not even a reconstructing reader (qpdf, poppler) can open it.
    BrokenXref,
    /// Encrypted (qpdf, AES-256, empty user password).
    Encrypted,
    /// The field asked for (`sign_into`) already holds a signature.
    FieldAlreadySigned,
}

/// One file of the corpus.
#[derive(Clone, Debug)]
pub struct CorpusFile {
    /// Short name, unique in the corpus.
    pub name: &'static str,
    /// Where it is.
    pub path: PathBuf,
    /// Sign it, or refuse it.
    pub kind: Kind,
    /// How it was made.
    pub producer: &'static str,
    /// The header's version (`1.4`, `1.7`, `2.0`), if it has one.
    pub version: Option<String>,
    /// The kind of cross-reference its newest revision uses.
    pub xref: Option<XrefKind>,
    /// qpdf says `File is linearized`.
    pub linearized: bool,
    /// PDF/A part and conformance its XMP declares.
    pub pdfa: Option<(String, String)>,
    /// Signature fields already signed in it.
    pub signed_fields: Vec<String>,
    /// The field to sign: an existing empty one, an already signed one (refused), or None for
    /// a new invisible field.
    pub sign_into: Option<String>,
    /// pyHanko (the outside signer) signs it; when false, `pyhanko_refusal` says with what
    /// words it refuses.
    pub pyhanko_signs: bool,
    /// What pyHanko says when it refuses to sign it.
    pub pyhanko_refusal: Option<&'static str>,
    /// pyHanko's validators read it only with `--no-strict-syntax` (hybrid references).
    pub needs_lax_syntax: bool,
}

impl CorpusFile {
    /// The file's bytes.
    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.path).expect("corpus file")
    }

    /// Extra arguments pyHanko's validators need for this file.
    pub fn pyhanko_extra(&self) -> &'static [&'static str] {
        if self.needs_lax_syntax {
            &["--no-strict-syntax"]
        } else {
            &[]
        }
    }
}

/// The corpus: its files and the directory that holds them (removed on drop).
pub struct Corpus {
    /// Every file, good ones first.
    pub files: Vec<CorpusFile>,
    dir: tempfile::TempDir,
}

/// Three pages of text: enough for a content stream per page and a font.
const SAMPLE_PS: &str = "%!PS-Adobe-3.0
%%Pages: 3
/Helvetica findfont 18 scalefont setfont
1 1 3 {
  /n exch def
  72 720 moveto (Signet test corpus) show
  72 690 moveto (Page ) show n 10 string cvs show
  72 660 moveto (The quick brown fox jumps over the lazy dog.) show
  showpage
} for
%%EOF
";

/// One page with a filled text field in an /AcroForm (pdfmark), and no signature field.
const FORM_PS: &str = "%!PS-Adobe-3.0
/Helvetica findfont 14 scalefont setfont
72 720 moveto (A form with one text field and no signature) show
[ /_objdef {namefield} /Subtype /Widget /Rect [72 600 300 620] /FT /Tx /T (Name) /V (Alice)
  /F 4 /DA (/Helv 10 Tf 0 g) /ANN pdfmark
[ {Catalog} << /AcroForm << /Fields [ {namefield} ] /DA (/Helv 10 Tf 0 g) >> >> /PUT pdfmark
showpage
";

impl Corpus {
    /// Make every file. `signer` signs the already-signed file (pyHanko, B-B), `trust`
    /// trusts its root.
    pub fn make(signer: &SoftSigner, trust: &Trust) -> Corpus {
        let dir = tempfile::Builder::new()
            .prefix("signet-pdf-corpus-")
            .tempdir()
            .expect("tempdir");
        let d = dir.path();
        let p = |name: &str| d.join(name);
        std::fs::write(p("sample.ps"), SAMPLE_PS).expect("write");
        std::fs::write(p("form.ps"), FORM_PS).expect("write");

        for v in ["1.4", "1.7", "2.0"] {
            run_ok(
                Command::new("ps2pdf")
                    .arg(format!("-dCompatibilityLevel={v}"))
                    .arg(p("sample.ps"))
                    .arg(p(&format!("gs-{v}.pdf"))),
            );
        }
        run_ok(
            Command::new("gs")
                .args(["-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-sDEVICE=pdfwrite"])
                .args(["-dPDFA=2", "-dPDFACompatibilityPolicy=1"])
                .arg("-sColorConversionStrategy=RGB")
                .arg(format!("-sOutputFile={}", p("pdfa-2b.pdf").display()))
                .arg(p("sample.ps")),
        );
        run_ok(
            Command::new("ps2pdf")
                .arg("-dCompatibilityLevel=1.4")
                .arg(p("form.ps"))
                .arg(p("acroform-1.4.pdf")),
        );
        run_ok(
            Command::new("qpdf")
                .arg("--object-streams=generate")
                .arg(p("gs-1.7.pdf"))
                .arg(p("qpdf-objstm.pdf")),
        );
        run_ok(
            Command::new("qpdf")
                .arg("--linearize")
                .arg(p("gs-1.7.pdf"))
                .arg(p("qpdf-linearized.pdf")),
        );
        run_ok(
            Command::new("qpdf")
                .args([
                    "--force-version=2.0",
                    "--object-streams=generate",
                    "--linearize",
                ])
                .arg(p("gs-1.7.pdf"))
                .arg(p("qpdf-2.0-objstm-linearized.pdf")),
        );
        std::fs::write(
            p("hybrid.pdf"),
            hybrid::from_object_streams(&p("qpdf-objstm.pdf")),
        )
        .expect("write");
        // Already signed: an empty field Sig2 added by pyHanko, then Sig1 signed by it.
        run_ok(
            Command::new(super::pyhanko_bin())
                .args(["sign", "addfields", "--field", "1/0,0,0,0/Sig2"])
                .arg(p("gs-1.4.pdf"))
                .arg(p("empty-field.pdf")),
        );
        pyhanko_sign(
            &p("empty-field.pdf"),
            &p("presigned.pdf"),
            "Sig1",
            Level::BB,
            signer,
            trust,
            None,
            true,
        )
        .unwrap_or_else(|e| panic!("pyHanko signs the pre-signed file: {e}"));

        // What a signer must refuse.
        std::fs::write(p("not-a-pdf.pdf"), b"GIF89a: this is not a PDF\n").expect("write");
        let full = std::fs::read(p("gs-1.7.pdf")).expect("read");
        std::fs::write(p("truncated.pdf"), &full[..full.len() / 2]).expect("write");
        std::fs::write(p("broken-xref.pdf"), break_xref(&full)).expect("write");
        run_ok(
            Command::new("qpdf")
                .args(["--encrypt", "", "owner", "256", "--"])
                .arg(p("gs-1.7.pdf"))
                .arg(p("encrypted.pdf")),
        );

        let good = |name: &'static str, producer: &'static str| spec(d, name, producer);
        let mut files = vec![
            good("gs-1.4", "ps2pdf -dCompatibilityLevel=1.4"),
            good("gs-1.7", "ps2pdf -dCompatibilityLevel=1.7"),
            CorpusFile {
                pyhanko_signs: false,
                pyhanko_refusal: Some("Generic processing error."),
                ..good(
                    "gs-2.0",
                    "ps2pdf -dCompatibilityLevel=2.0 (XMP malformed by gs 10.00)",
                )
            },
            good("qpdf-objstm", "qpdf --object-streams=generate"),
            good("qpdf-linearized", "qpdf --linearize"),
            good(
                "qpdf-2.0-objstm-linearized",
                "qpdf --force-version=2.0 --object-streams=generate --linearize",
            ),
            CorpusFile {
                needs_lax_syntax: true,
                ..good(
                    "hybrid",
                    "qpdf --object-streams=generate, then a hybrid xref table",
                )
            },
            good("pdfa-2b", "gs -dPDFA=2 -dPDFACompatibilityPolicy=1"),
            good(
                "acroform-1.4",
                "ps2pdf pdfmark: /AcroForm with a text field",
            ),
            CorpusFile {
                signed_fields: vec!["Sig1".into()],
                sign_into: Some("Sig2".into()),
                ..good(
                    "presigned",
                    "pyhanko sign addfields Sig2, then addsig Sig1 (B-B)",
                )
            },
        ];
        let bad = |name: &'static str, file: &str, refusal, words, producer| CorpusFile {
            kind: Kind::Bad(refusal),
            pyhanko_signs: false,
            pyhanko_refusal: Some(words),
            ..spec_file(d, name, file, producer)
        };
        files.extend([
            bad(
                "not-a-pdf",
                "not-a-pdf.pdf",
                Refusal::NotPdf,
                "Illegal PDF header",
                "a GIF-like text",
            ),
            bad(
                "truncated",
                "truncated.pdf",
                Refusal::Truncated,
                "EOF marker not found",
                "first half of gs-1.7",
            ),
            bad(
                "broken-xref",
                "broken-xref.pdf",
                Refusal::BrokenXref,
                "Could not find xref table at specified location",
                "gs-1.7 with startxref 17 and no xref/trailer keywords",
            ),
            bad(
                "encrypted",
                "encrypted.pdf",
                Refusal::Encrypted,
                "Password for encrypted file",
                "qpdf --encrypt '' owner 256",
            ),
            CorpusFile {
                signed_fields: vec!["Sig1".into()],
                sign_into: Some("Sig1".into()),
                ..bad(
                    "field-already-signed",
                    "presigned.pdf",
                    Refusal::FieldAlreadySigned,
                    "Signature field with name Sig1 appears to be filled already.",
                    "presigned, asked to sign into Sig1",
                )
            },
        ]);
        Corpus { files, dir }
    }

    /// The file named `name`.
    pub fn get(&self, name: &str) -> &CorpusFile {
        self.files
            .iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("no corpus file {name}"))
    }

    /// The files a signer must sign.
    pub fn good(&self) -> impl Iterator<Item = &CorpusFile> {
        self.files.iter().filter(|f| f.kind == Kind::Good)
    }

    /// The files a signer must refuse.
    pub fn bad(&self) -> impl Iterator<Item = &CorpusFile> {
        self.files.iter().filter(|f| f.kind != Kind::Good)
    }

    /// The corpus directory (for outputs beside the inputs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn spec(dir: &Path, name: &'static str, producer: &'static str) -> CorpusFile {
    spec_file(dir, name, &format!("{name}.pdf"), producer)
}

/// Facts read from the file itself, so a producer that changes its output fails the test
/// that relies on them rather than going unseen.
fn spec_file(dir: &Path, name: &'static str, file: &str, producer: &'static str) -> CorpusFile {
    let path = dir.join(file);
    let bytes = std::fs::read(&path).expect("corpus file");
    let version = bytes
        .strip_prefix(b"%PDF-")
        .map(|v| String::from_utf8_lossy(&v[..3.min(v.len())]).into_owned());
    CorpusFile {
        name,
        kind: Kind::Good,
        producer,
        version,
        xref: last_xref_kind(&bytes),
        linearized: qpdf_check(&path).linearized,
        pdfa: pdfa_declared(&bytes),
        signed_fields: Vec::new(),
        sign_into: None,
        pyhanko_signs: true,
        pyhanko_refusal: None,
        needs_lax_syntax: false,
        path,
    }
}

/// `startxref` pointed into the header, and the `xref` and `trailer` keywords renamed: no
/// offset to follow and nothing for a reconstructing reader to find a trailer in.
fn break_xref(pdf: &[u8]) -> Vec<u8> {
    let at = pdf
        .windows(9)
        .rposition(|w| w == b"startxref")
        .expect("startxref");
    let mut out = pdf[..at].to_vec();
    out.extend_from_slice(b"startxref\n17\n%%EOF\n");
    replace_all(
        &replace_all(&out, b"\nxref", b"\nxrex"),
        b"trailer",
        b"trailex",
    )
}

fn replace_all(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}
