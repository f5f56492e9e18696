//! Where the config comes from: a clear-text file (the dev profile only, for signetd) or,
//! as `sealed:PATH`, a file sealed by this box's TPM. The unsealed text lives in
//! zeroizing memory and is never written out.

use std::path::{Path, PathBuf};

use signet_config::sealed::{self, Tpm, DEFAULT_TCTI, TCTI_ENV};
use signet_config::{Config, Origin, Profile};
use zeroize::Zeroizing;

/// The prefix of a sealed config's path on the command line.
pub const SEALED_PREFIX: &str = "sealed:";

/// A config file, clear or sealed.
#[derive(Clone, Debug)]
pub enum ConfigSource {
    /// A clear-text TOML file.
    Clear(PathBuf),
    /// A file sealed by the TPM reached through `tcti`.
    Sealed {
        /// The sealed file.
        path: PathBuf,
        /// The TPM's TCTI string.
        tcti: String,
    },
}

/// The TCTI to use: the flag's, else `SIGNET_TCTI`, else the kernel's resource manager.
pub fn tcti(flag: Option<String>) -> String {
    flag.or_else(|| std::env::var(TCTI_ENV).ok())
        .unwrap_or_else(|| DEFAULT_TCTI.to_owned())
}

impl ConfigSource {
    /// `sealed:PATH` or a plain path; `tcti` reaches the TPM for a sealed one.
    pub fn new(arg: &Path, tcti: String) -> ConfigSource {
        match arg.to_str().and_then(|s| s.strip_prefix(SEALED_PREFIX)) {
            Some(path) => ConfigSource::Sealed {
                path: PathBuf::from(path),
                tcti,
            },
            None => ConfigSource::Clear(arg.to_owned()),
        }
    }

    /// How errors name it.
    pub fn name(&self) -> String {
        match self {
            ConfigSource::Clear(p) => p.display().to_string(),
            ConfigSource::Sealed { path, .. } => format!("{SEALED_PREFIX}{}", path.display()),
        }
    }

    /// The TPM's TCTI: a sealed file's, else `SIGNET_TCTI`, else the kernel's resource manager.
    pub fn tcti(&self) -> String {
        match self {
            ConfigSource::Clear(_) => tcti(None),
            ConfigSource::Sealed { tcti, .. } => tcti.clone(),
        }
    }

    /// Where its secrets may come from.
    pub fn origin(&self) -> Origin {
        match self {
            ConfigSource::Clear(_) => Origin::Clear,
            ConfigSource::Sealed { .. } => Origin::Sealed,
        }
    }

    /// The config text, unsealed by the TPM for a sealed file.
    pub fn read_text(&self) -> Result<Zeroizing<String>, String> {
        match self {
            ConfigSource::Clear(p) => std::fs::read_to_string(p)
                .map(Zeroizing::new)
                .map_err(|e| format!("{}: {e}", p.display())),
            ConfigSource::Sealed { path, tcti } => {
                let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", self.name()))?;
                let mut tpm = Tpm::open(tcti).map_err(|e| format!("{}: {e}", self.name()))?;
                let text = sealed::unseal(&mut tpm, &bytes)
                    .map_err(|e| format!("{}: {e}", self.name()))?;
                let text = std::str::from_utf8(&text)
                    .map_err(|_| format!("{}: the sealed config is not UTF-8 text", self.name()))?;
                Ok(Zeroizing::new(text.to_owned()))
            }
        }
    }

    /// Read, unseal if sealed, and validate.
    pub fn load(&self) -> Result<Config, String> {
        let text = self.read_text()?;
        Config::parse_as(&self.name(), &text, self.origin()).map_err(|e| e.to_string())
    }

    /// What signetd may start from: a sealed config, or a clear one in the dev profile
    /// (with a warning to log at every start). Production without the TPM is refused.
    pub fn daemon_warning(&self, config: &Config) -> Result<Option<String>, String> {
        match (self, config.profile) {
            (ConfigSource::Sealed { .. }, _) => Ok(None),
            (ConfigSource::Clear(_), Profile::Dev) => Ok(Some(format!(
                "running from the clear-text config {} without the TPM: allowed in the dev \
                 profile only; production runs from `--config sealed:PATH`",
                self.name()
            ))),
            (ConfigSource::Clear(_), Profile::Production) => Err(format!(
                "{}: the production profile runs only from a TPM-sealed config \
                 (`signetctl config seal`, then `signetd --config sealed:PATH`)",
                self.name()
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prefix_chooses_the_source() {
        let s = ConfigSource::new(Path::new("sealed:/etc/a.sealed"), "x".into());
        assert!(
            matches!(&s, ConfigSource::Sealed { path, .. } if path == Path::new("/etc/a.sealed"))
        );
        assert_eq!(s.name(), "sealed:/etc/a.sealed");
        let c = ConfigSource::new(Path::new("/etc/a.toml"), "x".into());
        assert!(matches!(c, ConfigSource::Clear(_)));
    }

    #[test]
    fn production_needs_the_tpm_and_dev_is_warned() {
        let dev = Config::parse(Path::new("dev.toml"), signet_config::DEV_TOML).unwrap();
        let clear = ConfigSource::Clear("dev.toml".into());
        let warning = clear.daemon_warning(&dev).unwrap().unwrap();
        assert!(warning.contains("without the TPM"), "{warning}");
        let mut prod = dev;
        prod.profile = Profile::Production;
        let err = clear.daemon_warning(&prod).unwrap_err();
        assert!(
            err.contains("production profile runs only from a TPM-sealed config"),
            "{err}"
        );
    }
}
