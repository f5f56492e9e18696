//! Small PDFs that ask a reader for far more than they hold: a cross-reference stream
//! declaring 64 M entries, a stream declaring 2 GB, objects nested deep and spread wide.
//! Each is a few kilobytes to a few megabytes; a reader that believes them runs out of
//! memory or time. Also kept in `fuzz/regressions/pdf_reader/`.

use std::io::Write;

/// A file of `objects` (bodies of objects 1..), a cross-reference table, and a trailer.
fn classic(objects: &[Vec<u8>]) -> Vec<u8> {
    let mut pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        pdf.extend_from_slice(body);
        pdf.extend_from_slice(b"\nendobj\n");
    }
    let xref = pdf.len();
    pdf.extend_from_slice(
        format!("xref\n0 {}\n0000000000 65535 f\r\n", offsets.len() + 1).as_bytes(),
    );
    for o in &offsets {
        pdf.extend_from_slice(format!("{o:010} 00000 n\r\n").as_bytes());
    }
    pdf.extend_from_slice(
        format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n",
            offsets.len() + 1
        )
        .as_bytes(),
    );
    pdf
}

const PAGES: [&[u8]; 2] = [
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
];

/// Catalog, pages, page, then an xref stream with `dict` (without `/Type /XRef` and
/// `/Length`) and `data`, declared `/Length` `length` (the real length when `None`).
fn with_xref_stream(dict: &str, data: &[u8], length: Option<u64>) -> Vec<u8> {
    let mut pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let bodies: [&[u8]; 3] = [b"<< /Type /Catalog /Pages 2 0 R >>", PAGES[0], PAGES[1]];
    for (i, body) in bodies.iter().enumerate() {
        pdf.extend_from_slice(format!("{} 0 obj\n", i + 1).as_bytes());
        pdf.extend_from_slice(body);
        pdf.extend_from_slice(b"\nendobj\n");
    }
    let at = pdf.len();
    let length = length.unwrap_or(data.len() as u64);
    pdf.extend_from_slice(
        format!("4 0 obj\n<< /Type /XRef /Root 1 0 R {dict} /Length {length} >>\nstream\n")
            .as_bytes(),
    );
    pdf.extend_from_slice(data);
    pdf.extend_from_slice(format!("\nendstream\nendobj\nstartxref\n{at}\n%%EOF\n").as_bytes());
    pdf
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(data).expect("compress");
    z.finish().expect("compress")
}

/// About 65 KB: a flate-compressed cross-reference stream, `/W [1 0 0]`, of 64 M entries.
pub fn xref_stream_64m_entries() -> Vec<u8> {
    const N: usize = 67_108_848;
    let data = zlib(&vec![1u8; N]);
    with_xref_stream(
        &format!("/Size {N} /W [1 0 0] /Index [0 {N}] /Filter /FlateDecode"),
        &data,
        None,
    )
}

/// A cross-reference stream that declares `/Length 2147483648` in a file of a few hundred bytes.
pub fn xref_stream_2gb_length() -> Vec<u8> {
    let data = zlib(&[1, 0, 0, 0, 1, 0, 9, 0, 1, 0, 50, 0, 1, 0, 99, 0]);
    with_xref_stream(
        "/Size 5 /W [1 2 1] /Filter /FlateDecode",
        &data,
        Some(2 << 30),
    )
}

/// A catalog holding arrays nested 100 000 deep.
pub fn deep_arrays() -> Vec<u8> {
    let mut catalog = b"<< /Type /Catalog /Pages 2 0 R /Deep ".to_vec();
    catalog.extend(std::iter::repeat_n(b'[', 100_000));
    catalog.extend(std::iter::repeat_n(b']', 100_000));
    catalog.extend_from_slice(b" >>");
    classic(&[catalog, PAGES[0].to_vec(), PAGES[1].to_vec()])
}

/// A form whose `/Fields` array holds 400 000 references.
pub fn wide_array() -> Vec<u8> {
    let mut catalog = b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [".to_vec();
    for _ in 0..400_000 {
        catalog.extend_from_slice(b"3 0 R ");
    }
    catalog.extend_from_slice(b"] >> >>");
    classic(&[catalog, PAGES[0].to_vec(), PAGES[1].to_vec()])
}

/// A form of 120 000 distinct fields, each with a widget: a graph too wide to walk.
pub fn wide_graph() -> Vec<u8> {
    const FIELDS: usize = 120_000;
    let first = 4; // objects 4.. are fields, then their widgets
    let mut catalog = b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [".to_vec();
    for i in 0..FIELDS {
        catalog.extend_from_slice(format!("{} 0 R ", first + i).as_bytes());
    }
    catalog.extend_from_slice(b"] >> >>");
    let mut objects = vec![catalog, PAGES[0].to_vec(), PAGES[1].to_vec()];
    for i in 0..FIELDS {
        objects.push(
            format!("<< /T (f{i}) /FT /Tx /Kids [{} 0 R] >>", first + FIELDS + i).into_bytes(),
        );
    }
    for i in 0..FIELDS {
        objects.push(format!("<< /Parent {} 0 R /Subtype /Widget >>", first + i).into_bytes());
    }
    classic(&objects)
}

/// Every hostile file, by a name fit for a file.
pub fn hostile_pdfs() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("xref-stream-64m-entries", xref_stream_64m_entries()),
        ("xref-stream-2gb-length", xref_stream_2gb_length()),
        ("deep-arrays", deep_arrays()),
        ("wide-array", wide_array()),
        ("wide-graph", wide_graph()),
    ]
}
