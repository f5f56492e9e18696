//! The judges of PAdES, judged: files signed by pyHanko (an outside signer, software key,
//! certificate and timestamps from a live appliance) must pass pyHanko's `validate` and
//! `adesverify`, poppler's pdfsig, `qpdf --check` and the level script at every level; one
//! changed byte must make pyHanko and pdfsig say so; the bad inputs must be unsignable. The
//! same glue then judges the appliance's own signatures.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use signet_e2e::pdf::{
    is_prefix, last_xref_kind, pades_levels, pdfa_declared, pdfsig, pyhanko_adesverify,
    pyhanko_sign, pyhanko_validate, pyhanko_validate_pretty, qpdf_check, tamper_signed_byte,
    Corpus, CorpusFile, Kind, Level, Refusal, SoftSigner, Trust, TsaBridge, XrefKind,
};
use signet_e2e::{run_ok, Appliance};

/// One appliance (its TSA, OCSP and CRLs reachable at the URLs its certificates carry), a
/// software signer it certified, and the corpus, for this test binary.
struct World {
    app: Appliance,
    signer: SoftSigner,
    trust: Trust,
    tsa: TsaBridge,
    corpus: Corpus,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let mut app = Appliance::init_reachable(|_| {});
        app.start();
        let signer = SoftSigner::issue(&app, "pdf-judge");
        let trust = Trust::new(&[&app.path("pki/root-ca.pem")]);
        let tsa = TsaBridge::start(&app);
        // The earlier signature is another signer's, as it will be beside the appliance's:
        // poppler 22.12 checks the second signature of one certificate in a file wrongly
        // ("Unknown issue with Certificate or corrupted data.").
        let corpus = Corpus::make(&SoftSigner::issue(&app, "pdf-presigner"), &trust);
        World {
            app,
            signer,
            trust,
            tsa,
            corpus,
        }
    })
}

fn out_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("signet-pdf-out-")
        .tempdir()
        .expect("tempdir")
}

/// The field pyHanko signs in `file`: the existing empty one if any, else a new `Sig1`.
fn field_of(file: &CorpusFile) -> &str {
    file.sign_into.as_deref().unwrap_or("Sig1")
}

#[test]
fn the_corpus_is_what_its_producers_say() {
    let c = &world().corpus;
    let versions: Vec<(&str, Option<&str>)> = c
        .files
        .iter()
        .map(|f| (f.name, f.version.as_deref()))
        .collect();
    for (name, version) in [
        ("gs-1.4", "1.4"),
        ("gs-1.7", "1.7"),
        ("gs-2.0", "2.0"),
        ("qpdf-2.0-objstm-linearized", "2.0"),
        ("acroform-1.4", "1.4"),
    ] {
        assert!(versions.contains(&(name, Some(version))), "{versions:?}");
    }
    assert_eq!(c.get("gs-1.7").xref, Some(XrefKind::Table));
    assert_eq!(c.get("qpdf-objstm").xref, Some(XrefKind::Stream));
    assert_eq!(c.get("hybrid").xref, Some(XrefKind::Hybrid));
    assert!(c.get("qpdf-linearized").linearized);
    assert!(c.get("qpdf-2.0-objstm-linearized").linearized);
    assert!(!c.get("gs-1.7").linearized);
    assert_eq!(c.get("pdfa-2b").pdfa, Some(("2".into(), "B".into())));
    assert_eq!(c.get("gs-1.7").pdfa, None);
    // Object streams really hold objects (qpdf lists them as compressed).
    for name in ["qpdf-objstm", "hybrid", "qpdf-2.0-objstm-linearized"] {
        let xref = run_ok(
            Command::new("qpdf")
                .arg("--show-xref")
                .arg(&c.get(name).path),
        );
        assert!(xref.contains("compressed; stream"), "{name}: {xref}");
    }
    let form = String::from_utf8_lossy(&c.get("acroform-1.4").bytes()).into_owned();
    assert!(form.contains("/AcroForm") && !form.contains("/FT /Sig"));

    for f in c.good() {
        let check = qpdf_check(&f.path);
        assert!(check.clean(), "{}: {}", f.name, check.text);
    }
    // The pre-signed file: Sig1 signed and valid, Sig2 empty.
    let pre = c.get("presigned");
    let report = pyhanko_validate(&world().trust, &pre.path, &[]);
    assert!(report.all_trusted(), "{}", report.text);
    let poppler = pdfsig(&world().trust, &pre.path);
    assert!(
        poppler.field("Sig1").unwrap().valid_trusted(),
        "{}",
        poppler.text
    );
    assert!(
        poppler.field("Sig2").unwrap().unsigned_field,
        "{}",
        poppler.text
    );

    // The bad inputs defeat every reader (the encrypted one needs its password).
    for f in c.bad() {
        let check = qpdf_check(&f.path);
        match f.kind {
            Kind::Bad(Refusal::NotPdf | Refusal::Truncated | Refusal::BrokenXref) => {
                assert_eq!(check.code, Some(2), "{}: {}", f.name, check.text);
                let p = pdfsig(&world().trust, &f.path);
                assert_eq!(p.code, Some(1), "{}: {}", f.name, p.text);
            }
            Kind::Bad(Refusal::Encrypted) => {
                let out = signet_e2e::run(Command::new("qpdf").arg("--is-encrypted").arg(&f.path));
                assert_eq!(out.status.code(), Some(0), "qpdf --is-encrypted");
            }
            Kind::Bad(Refusal::FieldAlreadySigned) => assert!(check.clean()),
            Kind::Good => unreachable!(),
        }
    }
}

#[test]
fn the_tsa_bridge_carries_the_appliances_own_tokens() {
    let w = world();
    let dir = out_dir();
    let data = dir.path().join("data.bin");
    std::fs::write(&data, b"stamp me\n").unwrap();
    let query = dir.path().join("q.tsq");
    run_ok(
        Command::new("openssl")
            .args(["ts", "-query", "-sha256", "-cert", "-data"])
            .arg(&data)
            .arg("-out")
            .arg(&query),
    );
    let reply = dir.path().join("r.tsr");
    run_ok(
        Command::new("curl")
            .args(["-sSf", "--max-time", "30", "-H"])
            .arg("Content-Type: application/timestamp-query")
            .arg("--data-binary")
            .arg(format!("@{}", query.display()))
            .arg("-o")
            .arg(&reply)
            .arg(&w.tsa.url),
    );
    let out = signet_e2e::run(
        Command::new("openssl")
            .args(["ts", "-verify", "-queryfile"])
            .arg(&query)
            .arg("-in")
            .arg(&reply)
            .arg("-CAfile")
            .arg(w.app.path("pki/root-ca.pem")),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Verification: OK"),
        "{out:?}"
    );
}

/// Sign `file` with pyHanko at `level` and judge the result with every judge; returns the
/// signed file.
fn sign_and_judge(file: &CorpusFile, level: Level, dir: &Path) -> PathBuf {
    let w = world();
    let field = field_of(file);
    let out = dir.join(format!("{}-{}.pdf", file.name, level.as_str()));
    pyhanko_sign(
        &file.path,
        &out,
        field,
        level,
        &w.signer,
        &w.trust,
        Some(&w.tsa.url),
        !file.needs_lax_syntax,
    )
    .unwrap_or_else(|e| panic!("pyHanko signs {} at {}: {e}", file.name, level.as_str()));
    judge(file, level, field, &out, dir, "pyHanko");
    out
}

/// Sign `file` through the appliance's API (`POST /v1/pdf/doc-rsa`) at `level`: into the
/// file's empty field when it has one, else into a new field the appliance names.
fn appliance_sign_and_judge(file: &CorpusFile, level: Level, dir: &Path) -> PathBuf {
    let out = dir.join(format!("{}-{}-signet.pdf", file.name, level.as_str()));
    let mut query = format!("level={}&reason=judged", level.as_str());
    if let Some(f) = &file.sign_into {
        query.push_str(&format!("&field={f}"));
    }
    let (code, headers, body) = appliance_post(&file.path, &query);
    assert_eq!(
        code,
        200,
        "{} at {}: {}",
        file.name,
        level.as_str(),
        String::from_utf8_lossy(&body)
    );
    std::fs::write(&out, &body).unwrap();
    let field = headers
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("signet-signature-field")
                .then(|| value.trim().to_owned())
        })
        .expect("the signed field's name");
    judge(file, level, &field, &out, dir, "Signet");
    out
}

/// POST `pdf` to `/v1/pdf/doc-rsa?query` as the demo client: (status, headers, body).
fn appliance_post(pdf: &Path, query: &str) -> (u16, String, Vec<u8>) {
    let app = &world().app;
    let dir = out_dir();
    let (body, head) = (dir.path().join("body"), dir.path().join("head"));
    let out = signet_e2e::run(
        app.curl()
            .arg("-o")
            .arg(&body)
            .arg("-D")
            .arg(&head)
            .args(["-w", "%{http_code}", "-H", "Content-Type: application/pdf"])
            .arg("--data-binary")
            .arg(format!("@{}", pdf.display()))
            .arg(app.url(&format!("/v1/pdf/doc-rsa?{query}"))),
    );
    let code = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (
        code,
        std::fs::read_to_string(&head).unwrap_or_default(),
        std::fs::read(&body).unwrap_or_default(),
    )
}

/// Every judge on `out`, `file` signed at `level` into `field` by `who`.
fn judge(file: &CorpusFile, level: Level, field: &str, out: &Path, dir: &Path, who: &str) {
    let w = world();
    let what = format!("{} at {} by {who}", file.name, level.as_str());
    let input = file.bytes();
    let signed = std::fs::read(out).unwrap();

    assert!(is_prefix(&input, &signed), "{what}: input is not a prefix");
    let check = qpdf_check(out);
    assert!(check.clean(), "{what}: {}", check.text);
    if file.pdfa.is_some() {
        assert_eq!(pdfa_declared(&signed), file.pdfa, "{what}");
    }
    // Appended revisions use the kind of cross-reference the input ends with.
    if file.xref != Some(XrefKind::Hybrid) {
        assert_eq!(last_xref_kind(&signed), file.xref, "{what}");
    }

    // Ghostscript 10's PDF 2.0 carries malformed XMP. pyHanko's diff policy checks the XMP
    // of every revision after a signature (its global MetadataUpdateRule), so it flags the
    // DSS and document-timestamp revisions of such a file whoever appends them; Signet
    // leaves a document's metadata alone. There the diff analysis is judged on its own: its
    // one complaint must be that XMP, and the rest is judged without it.
    let broken_xmp = file.name == "gs-2.0" && level >= Level::BLT;
    let mut extra: Vec<&str> = file.pyhanko_extra().to_vec();
    if broken_xmp {
        let o = signet_e2e::run(
            Command::new(signet_e2e::pdf::pyhanko_bin())
                .args(["--verbose", "sign", "validate"])
                .args(w.trust.pyhanko_args())
                .arg(out),
        );
        let log = String::from_utf8_lossy(&o.stderr);
        let complaints = log.matches("SuspiciousModification:").count();
        assert!(
            complaints >= 1
                && complaints
                    == log
                        .matches("/Metadata XML syntax could not be validated")
                        .count(),
            "{what}: the diff analysis objects to more than the input's XMP:\n{log}"
        );
        extra.push("--no-diff-analysis");
    }
    let extra = extra.as_slice();
    let report = pyhanko_validate(&w.trust, out, extra);
    // Without the diff analysis pyHanko cannot clear the later revisions, so it does not
    // exit 0; every signature must still be intact and trusted.
    let trusted = |r: &signet_e2e::pdf::PyhankoReport| match broken_xmp {
        false => r.all_trusted(),
        true => {
            !r.signatures.is_empty()
                && r.signatures.iter().all(|s| {
                    s.intact
                        && s.trust.as_deref() == Some("TRUSTED")
                        && s.timestamp.as_deref().is_none_or(|t| t == "INTACT:TRUSTED")
                })
        }
    };
    assert!(trusted(&report), "{what}:\n{}", report.text);
    let new = report
        .field(field)
        .unwrap_or_else(|| panic!("{what}: no signature in {field:?}:\n{}", report.text));
    let (timestamp, coverage, modifications) = match level {
        Level::BB => (None, "UNTOUCHED", None),
        Level::BT => (Some("INTACT:TRUSTED"), "UNTOUCHED", None),
        _ => (
            Some("INTACT:TRUSTED"),
            "EXTENDED_WITH_LTA_UPDATES",
            Some("ACCEPTABLE_MODIFICATIONS"),
        ),
    };
    assert_eq!(new.timestamp.as_deref(), timestamp, "{what}: {}", new.raw);
    if !broken_xmp {
        assert_eq!(
            new.coverage.as_deref(),
            Some(coverage),
            "{what}: {}",
            new.raw
        );
        assert_eq!(
            new.modifications.as_deref(),
            modifications,
            "{what}: {}",
            new.raw
        );
    }
    for old in &file.signed_fields {
        let s = report.field(old).expect("the earlier signature");
        assert!(s.intact_trusted(), "{what}: {old}: {}", s.raw);
        assert_eq!(
            s.modifications.as_deref(),
            Some("ACCEPTABLE_MODIFICATIONS"),
            "{what}: {}",
            s.raw
        );
    }
    assert_eq!(
        report.signatures.len(),
        file.signed_fields.len() + 1,
        "{what}: {}",
        report.text
    );

    // adesverify, with the appliance's responder up for fresh status.
    let ades = pyhanko_adesverify(&w.trust, out, extra);
    assert!(trusted(&ades), "{what}:\n{}", ades.text);
    assert_eq!(
        ades.field(field).map(|s| &s.raw),
        Some(&new.raw),
        "{what}: adesverify and validate agree"
    );

    // poppler: every CAdES signature valid and trusted.
    let poppler = pdfsig(&w.trust, out);
    let cades: Vec<_> = poppler
        .signatures
        .iter()
        .filter(|s| s.sig_type.as_deref() == Some("ETSI.CAdES.detached"))
        .collect();
    assert_eq!(
        cades.len(),
        file.signed_fields.len() + 1,
        "{what}: {}",
        poppler.text
    );
    assert!(
        cades.iter().all(|s| s.valid_trusted()),
        "{what}: {}",
        poppler.text
    );
    let doc_ts = poppler
        .signatures
        .iter()
        .filter(|s| s.sig_type.as_deref() == Some("unknown"))
        .count();
    assert_eq!(
        doc_ts,
        usize::from(level == Level::BLTA),
        "{what}: {}",
        poppler.text
    );

    // The structural level.
    let levels = pades_levels(out).unwrap_or_else(|e| panic!("{what}: {e}"));
    let mine = levels.iter().find(|l| l.field == field).expect("level");
    assert_eq!(mine.level, level, "{what}: {:?}", mine.facts);
    if level >= Level::BLT {
        assert_eq!(mine.vri, Some(true), "{what}: {:?}", mine.facts);
    }
    if level == Level::BLTA {
        assert_eq!(
            mine.doc_ts_tsa_revinfo,
            Some(true),
            "{what}: {:?}",
            mine.facts
        );
    }

    // One byte changed inside the signed ranges: every judge says so.
    let (tampered, _) = tamper_signed_byte(&signed);
    let bad = dir.join(format!("{}-{}-tampered.pdf", file.name, level.as_str()));
    std::fs::write(&bad, tampered).unwrap();
    let report = pyhanko_validate(&w.trust, &bad, extra);
    assert!(!report.exit_ok, "{what} tampered:\n{}", report.text);
    assert!(
        report
            .signatures
            .iter()
            .all(|s| !s.intact && s.raw == "INVALID"),
        "{what} tampered:\n{}",
        report.text
    );
    assert_eq!(report.signatures.len(), file.signed_fields.len() + 1);
    let poppler = pdfsig(&w.trust, &bad);
    let cades: Vec<_> = poppler
        .signatures
        .iter()
        .filter(|s| s.sig_type.as_deref() == Some("ETSI.CAdES.detached"))
        .collect();
    assert!(
        !cades.is_empty() && cades.iter().all(|s| s.digest_mismatch()),
        "{what} tampered: {}",
        poppler.text
    );
}

/// The appliance signs every good file of the corpus (Ghostscript's PDF 2.0 too, which
/// pyHanko refuses to sign) and every judge says valid at the level asked for.
fn appliance_signs_corpus_at(level: Level) {
    let dir = out_dir();
    let mut signed = 0;
    for f in world().corpus.good() {
        appliance_sign_and_judge(f, level, dir.path());
        signed += 1;
    }
    assert!(signed >= 10, "only {signed} files signed");
}

#[test]
fn signet_b_b_passes_every_judge_on_every_corpus_file() {
    appliance_signs_corpus_at(Level::BB);
}

#[test]
fn signet_b_t_passes_every_judge_on_every_corpus_file() {
    appliance_signs_corpus_at(Level::BT);
}

#[test]
fn signet_b_lt_passes_every_judge_on_every_corpus_file() {
    appliance_signs_corpus_at(Level::BLT);
}

#[test]
fn signet_b_lta_passes_every_judge_on_every_corpus_file() {
    appliance_signs_corpus_at(Level::BLTA);
}

/// Each bad input gets its own 4xx problem, never a 5xx or a partial PDF, and the daemon
/// goes on signing.
#[test]
fn signet_refuses_every_bad_input_with_its_4xx() {
    let mut seen = Vec::new();
    for f in world().corpus.bad() {
        let Kind::Bad(refusal) = f.kind else { continue };
        let query = match &f.sign_into {
            Some(field) => format!("level=B-B&field={field}"),
            None => "level=B-B".to_owned(),
        };
        let (code, headers, body) = appliance_post(&f.path, &query);
        let (want_code, want_problem) = match refusal {
            Refusal::NotPdf => (422, "not-a-pdf"),
            Refusal::Truncated => (422, "pdf-truncated"),
            Refusal::BrokenXref => (422, "pdf-broken-xref"),
            Refusal::Encrypted => (422, "pdf-encrypted"),
            Refusal::FieldAlreadySigned => (409, "field-already-signed"),
        };
        let text = String::from_utf8_lossy(&body);
        assert_eq!(code, want_code, "{}: {text}", f.name);
        assert!(
            headers.contains("content-type: application/problem+json"),
            "{}: {headers}",
            f.name
        );
        let problem: serde_json::Value = serde_json::from_slice(&body).expect("problem JSON");
        assert_eq!(problem["code"], want_problem, "{}: {text}", f.name);
        seen.push(refusal);
    }
    assert_eq!(seen.len(), 5, "{seen:?}");
    let (code, _, body) = appliance_post(&world().corpus.get("gs-1.7").path, "level=B-B");
    assert_eq!(
        code,
        200,
        "still signing: {}",
        String::from_utf8_lossy(&body)
    );
}

fn sign_corpus_at(level: Level) {
    let dir = out_dir();
    let mut signed = 0;
    for f in world().corpus.good().filter(|f| f.pyhanko_signs) {
        sign_and_judge(f, level, dir.path());
        signed += 1;
    }
    assert!(signed >= 9, "only {signed} files signed");
}

#[test]
fn pyhanko_b_b_passes_every_judge_on_every_corpus_file() {
    sign_corpus_at(Level::BB);
}

#[test]
fn pyhanko_b_lta_passes_every_judge_on_every_corpus_file() {
    sign_corpus_at(Level::BLTA);
}

#[test]
fn the_pretty_report_names_the_appliances_tsa_and_a_valid_bottom_line() {
    let w = world();
    let dir = out_dir();
    let out = dir.path().join("bt.pdf");
    let f = w.corpus.get("gs-1.7");
    pyhanko_sign(
        &f.path,
        &out,
        "Sig1",
        Level::BT,
        &w.signer,
        &w.trust,
        Some(&w.tsa.url),
        true,
    )
    .unwrap();
    let (verdicts, text) = pyhanko_validate_pretty(&w.trust, &out, &[]);
    assert_eq!(verdicts, vec![("Sig1".to_owned(), true)], "{text}");
    assert!(
        text.contains(
            "TSA certificate subject: \"Common Name: Signet Dev TSA, Organization: Signet\""
        ),
        "{text}"
    );
    assert!(text.contains("The TSA certificate is trusted."), "{text}");

    let (tampered, _) = tamper_signed_byte(&std::fs::read(&out).unwrap());
    let bad = dir.path().join("bt-tampered.pdf");
    std::fs::write(&bad, tampered).unwrap();
    let (verdicts, text) = pyhanko_validate_pretty(&w.trust, &bad, &[]);
    assert_eq!(verdicts, vec![("Sig1".to_owned(), false)], "{text}");
    assert!(
        text.contains("The signature is cryptographically unsound."),
        "{text}"
    );
}

#[test]
fn the_judges_refuse_trust_to_another_root() {
    let w = world();
    let dir = out_dir();
    let (key, other) = (dir.path().join("o.key"), dir.path().join("other.pem"));
    run_ok(
        Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
            ])
            .args(["-nodes", "-days", "2", "-subj", "/CN=Another Root"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&other),
    );
    let stranger = Trust::new(&[&other]);
    let signed = &w.corpus.get("presigned").path;
    let report = pyhanko_validate(&stranger, signed, &[]);
    assert!(!report.exit_ok, "{}", report.text);
    assert_eq!(
        report.field("Sig1").and_then(|s| s.trust.as_deref()),
        Some("UNTRUSTED"),
        "{}",
        report.text
    );
    let poppler = pdfsig(&stranger, signed);
    let sig = poppler.field("Sig1").unwrap();
    assert_eq!(
        sig.signature_validation.as_deref(),
        Some("Signature is Valid."),
        "{}",
        poppler.text
    );
    assert!(!sig.valid_trusted(), "{}", poppler.text);
}

#[test]
fn every_bad_input_is_unsignable_and_pyhanko_says_why() {
    let w = world();
    let dir = out_dir();
    let mut seen = Vec::new();
    for f in w.corpus.bad() {
        let out = dir.path().join(format!("{}.pdf", f.name));
        let err = pyhanko_sign(
            &f.path,
            &out,
            field_of(f),
            Level::BB,
            &w.signer,
            &w.trust,
            None,
            true,
        )
        .expect_err(f.name);
        let words = f.pyhanko_refusal.expect("refusal words");
        assert!(err.contains(words), "{}: {err}", f.name);
        if let Kind::Bad(r) = f.kind {
            seen.push(r);
        }
    }
    for r in [
        Refusal::NotPdf,
        Refusal::Truncated,
        Refusal::BrokenXref,
        Refusal::Encrypted,
        Refusal::FieldAlreadySigned,
    ] {
        assert!(seen.contains(&r), "{r:?} missing from the corpus");
    }
    // Ghostscript 10.00's PDF 2.0 has XMP pyHanko cannot parse: it refuses to sign it.
    let gs20 = w.corpus.get("gs-2.0");
    let err = pyhanko_sign(
        &gs20.path,
        &dir.path().join("gs20.pdf"),
        "Sig1",
        Level::BB,
        &w.signer,
        &w.trust,
        None,
        true,
    )
    .expect_err("pyHanko refuses gs 2.0");
    assert!(err.contains(gs20.pyhanko_refusal.unwrap()), "{err}");
}
