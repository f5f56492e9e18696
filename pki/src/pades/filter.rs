//! Stream filters a reader of cross-reference and object streams needs: FlateDecode with
//! the PNG and TIFF predictors (ISO 32000-2 7.4.4).

use std::io::Read;

use super::object::{Dict, Object};
use super::PdfError;

/// Largest decoded stream accepted: a bomb of a few kilobytes must not become gigabytes.
pub const MAX_DECODED: u64 = 64 << 20;

/// Decode `data`, the raw bytes of a stream with dictionary `dict`.
pub fn decode(dict: &Dict, data: &[u8]) -> Result<Vec<u8>, PdfError> {
    let filters = match dict.get("Filter") {
        None => Vec::new(),
        Some(Object::Name(n)) => vec![n.clone()],
        Some(Object::Array(items)) => items
            .iter()
            .map(|f| match f {
                Object::Name(n) => Ok(n.clone()),
                _ => Err(PdfError::malformed("a /Filter entry is not a name")),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(PdfError::malformed("/Filter is not a name or an array")),
    };
    let parms: Vec<Option<&Dict>> = match dict.get("DecodeParms") {
        Some(Object::Dict(d)) => vec![Some(d)],
        Some(Object::Array(items)) => items
            .iter()
            .map(|p| match p {
                Object::Dict(d) => Some(d),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut bytes = data.to_vec();
    for (i, filter) in filters.iter().enumerate() {
        bytes = match filter.as_slice() {
            b"FlateDecode" | b"Fl" => {
                let inflated = inflate(&bytes)?;
                match parms.get(i).copied().flatten() {
                    Some(p) => unpredict(p, inflated)?,
                    None => inflated,
                }
            }
            other => {
                return Err(PdfError::Unsupported(format!(
                    "stream filter /{}",
                    String::from_utf8_lossy(other)
                )))
            }
        };
    }
    Ok(bytes)
}

fn inflate(data: &[u8]) -> Result<Vec<u8>, PdfError> {
    let mut out = Vec::new();
    let mut decoder = flate2::read::ZlibDecoder::new(data).take(MAX_DECODED + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|_| PdfError::malformed("a FlateDecode stream does not inflate"))?;
    if out.len() as u64 > MAX_DECODED {
        return Err(PdfError::malformed("a stream inflates to more than 64 MiB"));
    }
    Ok(out)
}

/// Undo a /Predictor: 1 is none, 2 is TIFF, 10..=15 are PNG filters per row.
fn unpredict(parms: &Dict, data: Vec<u8>) -> Result<Vec<u8>, PdfError> {
    let predictor = parms.integer("Predictor").unwrap_or(1);
    let colors = parms.integer("Colors").unwrap_or(1);
    let bits = parms.integer("BitsPerComponent").unwrap_or(8);
    let columns = parms.integer("Columns").unwrap_or(1);
    if !(1..=32).contains(&colors)
        || ![1, 2, 4, 8, 16].contains(&bits)
        || !(1..=1 << 20).contains(&columns)
    {
        return Err(PdfError::malformed("bad predictor parameters"));
    }
    let bpp = ((colors * bits + 7) / 8) as usize;
    let row = ((colors * bits * columns + 7) / 8) as usize;
    match predictor {
        1 => Ok(data),
        2 if bits == 8 => Ok(tiff(data, bpp, row)),
        10..=15 => png(&data, bpp, row),
        _ => Err(PdfError::Unsupported(format!("predictor {predictor}"))),
    }
}

fn tiff(mut data: Vec<u8>, bpp: usize, row: usize) -> Vec<u8> {
    for line in data.chunks_mut(row) {
        for i in bpp..line.len() {
            line[i] = line[i].wrapping_add(line[i - bpp]);
        }
    }
    data
}

fn png(data: &[u8], bpp: usize, row: usize) -> Result<Vec<u8>, PdfError> {
    let mut out = Vec::with_capacity(data.len());
    let mut prev = vec![0u8; row];
    for line in data.chunks(row + 1) {
        let (&kind, raw) = line
            .split_first()
            .ok_or(PdfError::malformed("empty predictor row"))?;
        let mut cur = raw.to_vec();
        cur.resize(row, 0);
        for i in 0..row {
            let left = if i >= bpp { cur[i - bpp] } else { 0 };
            let up = prev[i];
            let up_left = if i >= bpp { prev[i - bpp] } else { 0 };
            cur[i] = match kind {
                0 => cur[i],
                1 => cur[i].wrapping_add(left),
                2 => cur[i].wrapping_add(up),
                3 => cur[i].wrapping_add(((u16::from(left) + u16::from(up)) / 2) as u8),
                4 => cur[i].wrapping_add(paeth(left, up, up_left)),
                _ => return Err(PdfError::malformed("unknown PNG predictor row type")),
            };
        }
        out.extend_from_slice(&cur[..raw.len().min(row)]);
        prev = cur;
    }
    Ok(out)
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let p = i16::from(a) + i16::from(b) - i16::from(c);
    let (pa, pb, pc) = (
        (p - i16::from(a)).abs(),
        (p - i16::from(b)).abs(),
        (p - i16::from(c)).abs(),
    );
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn png_up_predictor_round_trip() {
        // Two rows of 3 bytes, PNG "Up": the second row stores differences from the first.
        let raw = [2u8, 1, 2, 3, 2, 1, 1, 1];
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        z.write_all(&raw).unwrap();
        let mut parms = Dict::new();
        parms.set("Predictor", Object::Integer(12));
        parms.set("Columns", Object::Integer(3));
        let mut dict = Dict::new();
        dict.set("Filter", Object::name("FlateDecode"));
        dict.set("DecodeParms", Object::Dict(parms));
        assert_eq!(
            decode(&dict, &z.finish().unwrap()).unwrap(),
            vec![1, 2, 3, 2, 3, 4]
        );
    }

    #[test]
    fn garbage_does_not_inflate() {
        let mut dict = Dict::new();
        dict.set("Filter", Object::name("FlateDecode"));
        assert!(decode(&dict, b"not zlib").is_err());
    }
}
