//! A document spooled to disk while it is signed: encrypted with AES-256-CTR under a key
//! that lives only in this process's memory for one request, in a file with no name.
//!
//! The file is made with `O_TMPFILE` (an unlinked temporary file), so it vanishes when the
//! request ends or the process dies; even a copy of the disk taken meanwhile shows only
//! ciphertext. CTR mode gives random access: the PDF reader seeks anywhere and decrypts a
//! few kilobytes at a time.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

use aes::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use signet_pki::pades::Source;

type Cipher = ctr::Ctr128BE<aes::Aes256>;

/// An encrypted, nameless spool file.
pub struct Spool {
    file: File,
    key: Zeroizing<[u8; 32]>,
    iv: [u8; 16],
    len: u64,
}

impl Spool {
    /// A new empty spool in `dir`.
    pub fn create(dir: &Path) -> io::Result<Spool> {
        let file = tempfile::tempfile_in(dir)?;
        let mut key = Zeroizing::new([0u8; 32]);
        let mut iv = [0u8; 16];
        OsRng.fill_bytes(key.as_mut());
        OsRng.fill_bytes(&mut iv);
        Ok(Spool {
            file,
            key,
            iv,
            len: 0,
        })
    }

    fn cipher_at(&self, offset: u64) -> Cipher {
        let mut cipher = Cipher::new(self.key.as_ref().into(), (&self.iv).into());
        cipher.seek(offset);
        cipher
    }

    /// Encrypt `data` and append it.
    pub fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let mut buf = data.to_vec();
        self.cipher_at(self.len).apply_keystream(&mut buf);
        self.file.write_all_at(&buf, self.len)?;
        self.len += data.len() as u64;
        Ok(())
    }
}

impl Source for Spool {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.len.saturating_sub(offset)).unwrap_or(usize::MAX));
        let n = self.file.read_at(&mut buf[..want], offset)?;
        self.cipher_at(offset).apply_keystream(&mut buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_any_range_and_stores_only_ciphertext() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::create(dir.path()).unwrap();
        let text: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        for chunk in text.chunks(7777) {
            spool.append(chunk).unwrap();
        }
        assert_eq!(spool.len(), text.len() as u64);
        for (at, len) in [(0, 10), (12_345, 4096), (99_990, 100)] {
            assert_eq!(
                spool.read_vec(at, len).unwrap(),
                text[at as usize..(at as usize + len).min(text.len())]
            );
        }
        let mut raw = vec![0u8; 4096];
        spool.file.read_at(&mut raw, 0).unwrap();
        assert_ne!(raw, text[..4096], "the file holds ciphertext");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "the file has no name"
        );
    }
}
