//! Stream filters a reader of cross-reference and object streams needs: FlateDecode with
//! the PNG and TIFF predictors (ISO 32000-2 7.4.4).
//!
//! Data is decoded straight from the document ([`SourceReader`]): the raw bytes of a stream
//! are never held, and the decoded bytes stop at a cap given by the caller.

use std::io::{self, Read};

use super::object::{Dict, Object};
use super::source::Source;
use super::PdfError;

/// Largest decoded stream accepted: a bomb of a few kilobytes must not become gigabytes.
pub const MAX_DECODED: u64 = 16 << 20;

/// Reads `len` bytes of a [`Source`] from `offset`, a chunk at a time.
pub struct SourceReader<'a, S: ?Sized> {
    src: &'a S,
    offset: u64,
    end: u64,
}

impl<'a, S: Source + ?Sized> SourceReader<'a, S> {
    /// The `len` bytes at `offset`; `None` when they run past the end of the document.
    pub fn new(src: &'a S, offset: u64, len: u64) -> Option<Self> {
        let end = offset.checked_add(len).filter(|e| *e <= src.len())?;
        Some(SourceReader { src, offset, end })
    }
}

impl<S: Source + ?Sized> Read for SourceReader<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = usize::try_from(self.end - self.offset).unwrap_or(usize::MAX);
        let want = buf.len().min(left);
        if want == 0 {
            return Ok(0);
        }
        let n = self.src.read_at(self.offset, &mut buf[..want])?;
        self.offset += n as u64;
        Ok(n)
    }
}

/// Decode the stream with dictionary `dict` whose raw data `raw` yields, into at most
/// `cap` bytes; more is refused as too large, not read on.
pub fn decode(dict: &Dict, raw: impl Read, cap: u64) -> Result<Vec<u8>, PdfError> {
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
    if filters.len() > 4 {
        return Err(PdfError::Unsupported(
            "more than four stream filters".into(),
        ));
    }
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
    let mut raw = Some(raw);
    let mut bytes: Option<Vec<u8>> = None;
    for (i, filter) in filters.iter().enumerate() {
        let decoded = match filter.as_slice() {
            b"FlateDecode" | b"Fl" => {
                let inflated = match (bytes.take(), raw.take()) {
                    (Some(previous), _) => inflate(previous.as_slice(), cap)?,
                    (None, Some(r)) => inflate(r, cap)?,
                    (None, None) => return Err(PdfError::malformed("stream filter chain")),
                };
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
        bytes = Some(decoded);
    }
    match (bytes, raw) {
        (Some(b), _) => Ok(b),
        (None, None) => Err(PdfError::malformed("stream filter chain")),
        (None, Some(raw)) => read_capped(raw, cap)
            .map_err(|_| PdfError::malformed("a stream cannot be read"))?
            .ok_or_else(|| PdfError::too_large("a stream is longer than allowed")),
    }
}
/// Read `reader` to its end into at most `cap` bytes; `None` if there is more. The buffer
/// grows by doubling but never past the cap, so a capped read never holds twice the cap.
fn read_capped(mut reader: impl Read, cap: u64) -> io::Result<Option<Vec<u8>>> {
    let cap = usize::try_from(cap).unwrap_or(usize::MAX);
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return Ok(Some(out)),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if out.len() + n > cap {
            return Ok(None);
        }
        if out.capacity() - out.len() < n {
            let want = (out.capacity() * 2).max(64 << 10).min(cap);
            out.reserve_exact(want.max(out.len() + n) - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
}

fn inflate(data: impl Read, cap: u64) -> Result<Vec<u8>, PdfError> {
    read_capped(flate2::read::ZlibDecoder::new(data), cap)
        .map_err(|_| PdfError::malformed("a FlateDecode stream does not inflate"))?
        .ok_or_else(|| PdfError::too_large("a stream inflates to more than allowed"))
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
        10..=15 => png(data, bpp, row),
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

/// Undo PNG predictors in place: row `k` (a type byte and `row` bytes) becomes the `row`
/// bytes at `k * row`, always at or before where it was read, so no second buffer is needed.
fn png(mut data: Vec<u8>, bpp: usize, row: usize) -> Result<Vec<u8>, PdfError> {
    let stride = row + 1;
    let rows = data.len().div_ceil(stride);
    let mut written = 0;
    for k in 0..rows {
        let src = k * stride;
        let kind = data[src];
        let raw_len = (data.len() - src - 1).min(row);
        let dst = k * row;
        for i in 0..raw_len {
            let x = data[src + 1 + i];
            let left = if i >= bpp { data[dst + i - bpp] } else { 0 };
            let (up, up_left) = if k == 0 {
                (0, 0)
            } else {
                let prev = dst - row;
                (
                    data[prev + i],
                    if i >= bpp { data[prev + i - bpp] } else { 0 },
                )
            };
            data[dst + i] = match kind {
                0 => x,
                1 => x.wrapping_add(left),
                2 => x.wrapping_add(up),
                3 => x.wrapping_add(((u16::from(left) + u16::from(up)) / 2) as u8),
                4 => x.wrapping_add(paeth(left, up, up_left)),
                _ => return Err(PdfError::malformed("unknown PNG predictor row type")),
            };
        }
        written = dst + raw_len;
    }
    data.truncate(written);
    Ok(data)
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
            decode(&dict, z.finish().unwrap().as_slice(), MAX_DECODED).unwrap(),
            vec![1, 2, 3, 2, 3, 4]
        );
    }

    /// The predictor as first written, with a second buffer: the in-place one must agree.
    fn reference_png(data: &[u8], bpp: usize, row: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut prev = vec![0u8; row];
        for line in data.chunks(row + 1) {
            let (&kind, raw) = line.split_first().unwrap();
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
                    _ => cur[i].wrapping_add(paeth(left, up, up_left)),
                };
            }
            out.extend_from_slice(&cur[..raw.len().min(row)]);
            prev = cur;
        }
        out
    }

    #[test]
    fn in_place_png_matches_the_two_buffer_one() {
        let mut seed = 0x2545_f491_u32;
        for (bpp, row, len) in [(1, 5, 60), (2, 6, 71), (3, 7, 8), (1, 1, 10), (4, 12, 129)] {
            let data: Vec<u8> = (0..len)
                .enumerate()
                .map(|(i, _)| {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    if i % (row + 1) == 0 {
                        (seed % 5) as u8
                    } else {
                        seed as u8
                    }
                })
                .collect();
            assert_eq!(
                png(data.clone(), bpp, row).unwrap(),
                reference_png(&data, bpp, row)
            );
        }
    }

    #[test]
    fn garbage_does_not_inflate() {
        let mut dict = Dict::new();
        dict.set("Filter", Object::name("FlateDecode"));
        assert!(decode(&dict, &b"not zlib"[..], MAX_DECODED).is_err());
    }

    #[test]
    fn a_bomb_stops_at_the_cap() {
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
        z.write_all(&vec![0u8; 8 << 20]).unwrap();
        let bomb = z.finish().unwrap();
        let mut dict = Dict::new();
        dict.set("Filter", Object::name("FlateDecode"));
        let err = decode(&dict, bomb.as_slice(), 1 << 20).unwrap_err();
        assert_eq!(err.code(), "pdf-too-large");
        assert_eq!(
            decode(&dict, bomb.as_slice(), 8 << 20).unwrap().len(),
            8 << 20
        );
        let plain = Dict::new();
        assert!(decode(&plain, &[1u8; 10][..], 9).is_err());
        assert_eq!(decode(&plain, &[1u8; 10][..], 10).unwrap().len(), 10);
    }
}
