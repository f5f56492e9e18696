//! Incremental updates on PDFs from outside producers (vectors made by Ghostscript and
//! qpdf): each revision keeps the input as a prefix, reads back with our reader, and passes
//! `qpdf --check`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use signet_pki::alg::Hasher;
use signet_pki::pades::{
    Document, Object, SignatureKind, SignatureOptions, ValidationData, XrefKind,
};
use signet_pki::HashAlg;

const VECTORS: [(&str, XrefKind); 3] = [
    ("gs-1.4.pdf", XrefKind::Table),
    ("qpdf-objstm.pdf", XrefKind::Stream),
    ("qpdf-linearized.pdf", XrefKind::Table),
];

fn vector(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/vectors/pdf")
            .join(name),
    )
    .expect("read vector")
}

fn options(kind: SignatureKind, field: Option<&str>) -> SignatureOptions {
    SignatureOptions {
        kind,
        field: field.map(str::to_owned),
        name: Some("Signet Test".into()),
        reason: Some("approval é".into()),
        location: None,
        contact_info: None,
        signing_time: SystemTime::now(),
        contents_len: 64,
    }
}

fn qpdf_check(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.pdf");
    std::fs::write(&path, bytes).unwrap();
    let out = Command::new("qpdf")
        .arg("--check")
        .arg(&path)
        .output()
        .expect("run qpdf");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "qpdf --check: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("No syntax or stream encoding errors found"),
        "{text}"
    );
}

/// Sign, add a DSS, add a document timestamp: three revisions, each checked.
#[test]
fn three_revisions_on_every_vector() {
    for (name, kind) in VECTORS {
        let original = vector(name);
        let mut doc = Document::open(original.clone()).expect(name);
        assert_eq!(doc.xref_kind(), kind, "{name}");

        let pending = doc
            .prepare_signature(&options(SignatureKind::Cades, None))
            .unwrap();
        assert_eq!(pending.field(), "Signature1");
        let range = pending.byte_range();
        let mut hasher = Hasher::new(HashAlg::Sha256);
        hasher.update(&original);
        let digest = pending.digest(&hasher);
        let revision = pending.fill(&[0x30, 0x03, 0x02, 0x01, 0x01]).unwrap();
        let mut out = original.clone();
        out.extend_from_slice(&revision.bytes);
        // The digest is over exactly the two byte ranges.
        let mut check = Hasher::new(HashAlg::Sha256);
        check.update(&out[range[0] as usize..(range[0] + range[1]) as usize]);
        check.update(&out[range[2] as usize..(range[2] + range[3]) as usize]);
        assert_eq!(check.finish(), digest, "{name}");
        assert_eq!(range[2] + range[3], out.len() as u64);
        assert_eq!(
            &out[range[1] as usize..range[1] as usize + 11],
            b"<3003020101",
            "{name}"
        );
        doc.commit(revision.state);
        qpdf_check(&out);

        let reread = Document::open(out.clone()).expect("reread");
        assert_eq!(
            reread.xref_kind(),
            kind,
            "{name}: same kind of cross-reference"
        );
        let catalog = reread.catalog().unwrap();
        let form = reread.resolve(catalog.get("AcroForm").unwrap()).unwrap();
        let Object::Dict(form) = form else { panic!() };
        assert_eq!(form.integer("SigFlags"), Some(3));

        let dss = doc
            .prepare_dss(
                &[&out[range[1] as usize + 1..range[2] as usize - 1]],
                &ValidationData {
                    certs: vec![b"cert".to_vec(), b"cert".to_vec()],
                    ocsps: vec![b"ocsp".to_vec()],
                    crls: vec![b"crl".to_vec()],
                },
            )
            .unwrap();
        out.extend_from_slice(&dss.bytes);
        doc.commit(dss.state);
        qpdf_check(&out);

        let ts = doc
            .prepare_signature(&options(SignatureKind::DocTimeStamp, None))
            .unwrap();
        assert_eq!(ts.field(), "DocumentTimestamp1");
        let revision = ts.fill(&[0x30, 0x00]).unwrap();
        out.extend_from_slice(&revision.bytes);
        qpdf_check(&out);
        assert!(out.starts_with(&original));

        let last = Document::open(out.clone()).expect("reread all");
        let catalog = last.catalog().unwrap();
        let Object::Dict(dss) = last.resolve(catalog.get("DSS").unwrap()).unwrap() else {
            panic!()
        };
        let Some(Object::Array(certs)) = dss.get("Certs") else {
            panic!()
        };
        assert_eq!(certs.len(), 1, "duplicates are stored once");
    }
}

#[test]
fn signing_into_a_named_field_then_refusing_it_signed() {
    let original = vector("gs-1.4.pdf");
    let mut doc = Document::open(original.clone()).unwrap();
    let pending = doc
        .prepare_signature(&options(SignatureKind::Cades, Some("Approval")))
        .unwrap();
    assert_eq!(pending.field(), "Approval");
    let revision = pending.fill(&[0x30, 0x00]).unwrap();
    let mut out = original;
    out.extend_from_slice(&revision.bytes);
    doc.commit(revision.state);
    let again = Document::open(out).unwrap();
    let err = again
        .prepare_signature(&options(SignatureKind::Cades, Some("Approval")))
        .unwrap_err();
    assert_eq!(err.code(), "field-already-signed");
}

#[test]
fn a_signature_too_big_for_its_hole_is_refused() {
    let doc = Document::open(vector("gs-1.4.pdf")).unwrap();
    let pending = doc
        .prepare_signature(&options(SignatureKind::Cades, None))
        .unwrap();
    assert!(pending.fill(&[0u8; 65]).is_err());
}

#[test]
fn bad_inputs_get_their_own_errors() {
    let good = vector("gs-1.4.pdf");
    let code = |bytes: Vec<u8>| Document::open(bytes).err().map(|e| e.code());
    assert_eq!(code(b"hello world".to_vec()), Some("not-a-pdf"));
    assert_eq!(code(Vec::new()), Some("not-a-pdf"));
    assert_eq!(code(good[..good.len() / 2].to_vec()), Some("pdf-truncated"));
    // startxref pointing into the middle of a page's content.
    let at = good.windows(9).rposition(|w| w == b"startxref").unwrap();
    let mut broken = good[..at].to_vec();
    broken.extend_from_slice(b"startxref\n15\n%%EOF\n");
    assert_eq!(code(broken), Some("pdf-broken-xref"));
    // Every prefix of a valid file is refused cleanly, never a panic.
    for cut in (0..good.len()).step_by(7) {
        let _ = Document::open(good[..cut].to_vec());
    }
}

/// Caller text that looks like the signature dictionary's own syntax is only a string:
/// the `/ByteRange` and the `/Contents` hole land where they belong, and the text reads back.
#[test]
fn hostile_signature_text_is_just_a_string() {
    const HOSTILE: [&str; 9] = [
        "/ByteRange [",
        "/Contents <>",
        "/Contents <",
        ")",
        "(",
        "\\",
        ">>endobj",
        "x)>>endobj\n1 0 obj<</ByteRange [0 0 0 0]/Contents <00>>>",
        "Zürich 東京 😀",
    ];
    for (name, _) in VECTORS {
        let original = vector(name);
        for value in HOSTILE {
            for slot in 0..4 {
                let mut opts = options(SignatureKind::Cades, None);
                let target = match slot {
                    0 => &mut opts.reason,
                    1 => &mut opts.location,
                    2 => &mut opts.name,
                    _ => &mut opts.contact_info,
                };
                *target = Some(value.to_owned());
                let doc = Document::open(original.clone()).unwrap();
                let pending = doc.prepare_signature(&opts).unwrap();
                let range = pending.byte_range();
                assert_eq!(pending.reserved(), 64, "{name} {value:?}");
                let revision = pending.fill(&[0x30, 0x03, 0x02, 0x01, 0x01]).unwrap();
                let mut out = original.clone();
                out.extend_from_slice(&revision.bytes);
                let (a, b) = (range[1] as usize, range[2] as usize);
                assert_eq!(range[0], 0);
                assert_eq!(b as u64 + range[3], out.len() as u64);
                assert_eq!(&out[a - b"/Contents ".len()..a], b"/Contents ");
                assert!(out[a..b].starts_with(b"<3003020101"), "{name} {value:?}");
                assert_eq!(out[b - 1], b'>');
                let written = format!("/ByteRange [0 {} {} {}", range[1], range[2], range[3]);
                assert!(
                    out.windows(written.len()).any(|w| w == written.as_bytes()),
                    "{name} {value:?}"
                );
                // The text reads back as written, from the object just appended.
                let reread = Document::open(out.clone()).unwrap();
                let sig = reread.size() - 1;
                let key = ["Reason", "Location", "Name", "ContactInfo"][slot];
                let found = (0..sig + 1)
                    .rev()
                    .filter_map(|n| reread.dict(signet_pki::pades::Ref::new(n, 0)).ok())
                    .find(|d| d.name("Type") == Some(b"Sig"))
                    .expect("signature dictionary");
                let expected = if value.bytes().all(|b| (0x20..0x7f).contains(&b)) {
                    value.as_bytes().to_vec()
                } else {
                    let mut v = vec![0xfe, 0xff];
                    v.extend(value.encode_utf16().flat_map(u16::to_be_bytes));
                    v
                };
                assert_eq!(
                    found.get(key),
                    Some(&Object::String(expected)),
                    "{name} {value:?}"
                );
                qpdf_check(&out);
            }
        }
    }
}
