//! Which PCRs a config is sealed to: `sha256:0,2,4,7`.

use std::fmt;

/// TPM_ALG_SHA256: the one PCR bank sealing uses.
pub const TPM_ALG_SHA256: u16 = 0x000B;
/// Length of a SHA-256 PCR value.
pub const PCR_VALUE_LEN: usize = 32;
/// PCRs a PC-client TPM has.
const PCR_COUNT: u8 = 24;

/// A set of SHA-256 PCRs, sorted, without repeats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrSelection {
    indices: Vec<u8>,
}

/// The default binding: firmware (0), option ROMs (2), boot loader (4), Secure Boot state (7).
pub const DEFAULT_PCRS: &str = "sha256:0,2,4,7";

impl PcrSelection {
    /// PCRs `indices` of the SHA-256 bank; 1 to 24 of them, each below 24.
    pub fn new(mut indices: Vec<u8>) -> Result<PcrSelection, String> {
        indices.sort_unstable();
        indices.dedup();
        if indices.is_empty() {
            return Err("no PCR selected: name at least one, e.g. sha256:7".into());
        }
        if let Some(i) = indices.iter().find(|i| **i >= PCR_COUNT) {
            return Err(format!("PCR {i} does not exist: PCRs are 0 to 23"));
        }
        Ok(PcrSelection { indices })
    }

    /// `sha256:0,2,4,7`.
    pub fn parse(text: &str) -> Result<PcrSelection, String> {
        let allowed = "allowed: sha256:N[,N...] with N from 0 to 23, e.g. sha256:0,2,4,7";
        let Some((bank, list)) = text.split_once(':') else {
            return Err(format!("`{text}`: no bank; {allowed}"));
        };
        if !bank.eq_ignore_ascii_case("sha256") {
            return Err(format!(
                "bank `{bank}`: only sha256 is supported; {allowed}"
            ));
        }
        let indices = list
            .split(',')
            .map(|n| n.trim().parse::<u8>())
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| format!("`{list}` is not a list of PCR numbers; {allowed}"))?;
        PcrSelection::new(indices)
    }

    /// The PCR numbers, ascending.
    pub fn indices(&self) -> &[u8] {
        &self.indices
    }
}

impl fmt::Display for PcrSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list: Vec<String> = self.indices.iter().map(u8::to_string).collect();
        write!(f, "sha256:{}", list.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sorts_and_prints() {
        let s = PcrSelection::parse("sha256:7,0,4,2,7").unwrap();
        assert_eq!(s.indices(), &[0, 2, 4, 7]);
        assert_eq!(s.to_string(), DEFAULT_PCRS);
    }

    #[test]
    fn refuses_what_it_cannot_seal_to() {
        for bad in [
            "7",
            "sha1:7",
            "sha256:",
            "sha256:24",
            "sha256:x",
            "sha256:-1",
        ] {
            assert!(PcrSelection::parse(bad).is_err(), "{bad}");
        }
    }
}
