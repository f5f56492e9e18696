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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use aes::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use signet_pki::pades::Source;

type Cipher = ctr::Ctr128BE<aes::Aes256>;

/// What all spools together may take of the disk.
pub struct SpoolQuota {
    limit: u64,
    used: AtomicU64,
}

impl SpoolQuota {
    /// At most `limit` bytes over every spool at once.
    pub fn new(limit: u64) -> Arc<SpoolQuota> {
        Arc::new(SpoolQuota {
            limit,
            used: AtomicU64::new(0),
        })
    }

    /// Take `n` bytes, or refuse with [`io::ErrorKind::StorageFull`].
    fn reserve(&self, n: u64) -> io::Result<()> {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= self.limit)
            })
            .map(|_| ())
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::StorageFull,
                    format!("the spool quota of {} bytes is taken", self.limit),
                )
            })
    }

    fn release(&self, n: u64) {
        self.used.fetch_sub(n, Ordering::AcqRel);
    }

    /// Bytes taken now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

/// An encrypted, nameless spool file.
pub struct Spool {
    file: File,
    key: Zeroizing<[u8; 32]>,
    iv: [u8; 16],
    len: u64,
    quota: Arc<SpoolQuota>,
}

impl Drop for Spool {
    fn drop(&mut self) {
        self.quota.release(self.len);
    }
}

impl Spool {
    /// A new empty spool in `dir`, its bytes counted against `quota`.
    pub fn create(dir: &Path, quota: Arc<SpoolQuota>) -> io::Result<Spool> {
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
            quota,
        })
    }

    fn cipher_at(&self, offset: u64) -> Cipher {
        let mut cipher = Cipher::new(self.key.as_ref().into(), (&self.iv).into());
        cipher.seek(offset);
        cipher
    }

    /// Encrypt `data` and append it, within the quota.
    pub fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let n = data.len() as u64;
        self.quota.reserve(n)?;
        let mut buf = data.to_vec();
        self.cipher_at(self.len).apply_keystream(&mut buf);
        if let Err(e) = self.file.write_all_at(&buf, self.len) {
            self.quota.release(n);
            return Err(e);
        }
        self.len += n;
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
        let mut spool = Spool::create(dir.path(), SpoolQuota::new(1 << 20)).unwrap();
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

    #[test]
    fn spools_share_a_quota_and_give_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let quota = SpoolQuota::new(10_000);
        let mut a = Spool::create(dir.path(), Arc::clone(&quota)).unwrap();
        let mut b = Spool::create(dir.path(), Arc::clone(&quota)).unwrap();
        a.append(&[1; 6000]).unwrap();
        let e = b.append(&[2; 6000]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::StorageFull);
        b.append(&[2; 4000]).unwrap();
        assert_eq!(quota.used(), 10_000);
        drop(a);
        assert_eq!(quota.used(), 4000);
        b.append(&[2; 6000]).unwrap();
    }
}
