//! The PAdES baseline level each signature reaches, by `tests/judges/pades_level.py` (read
//! with pyHanko's parser). pyHanko's `adesverify` judges trust and past validity but names
//! no level, so this checks what each level must contain: B-B (ETSI.CAdES.detached,
//! signing-certificate-v2, no signing-time), B-T (signature-time-stamp), B-LT (a /DSS after
//! the signature with OCSP or CRL for every certificate below the root of the signer's and
//! the TSA's chains), B-LTA (a document timestamp over a revision whose /DSS held all that).

use std::path::Path;
use std::process::Command;

use super::texts;
use crate::{judges_python, repo_root, run};

/// A PAdES baseline level, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Not even B-B.
    None,
    /// B-B.
    BB,
    /// B-T.
    BT,
    /// B-LT.
    BLT,
    /// B-LTA.
    BLTA,
}

impl Level {
    /// Every signing level, lowest first.
    pub const ALL: [Level; 4] = [Level::BB, Level::BT, Level::BLT, Level::BLTA];

    /// As the API and the script spell it: `B-B`, `B-T`, `B-LT`, `B-LTA` (`none`).
    pub fn as_str(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::BB => "B-B",
            Level::BT => "B-T",
            Level::BLT => "B-LT",
            Level::BLTA => "B-LTA",
        }
    }

    fn parse(s: &str) -> Option<Level> {
        [Level::None, Level::BB, Level::BT, Level::BLT, Level::BLTA]
            .into_iter()
            .find(|l| l.as_str() == s)
    }
}

/// The level of one signature and the facts behind it.
#[derive(Debug, Clone)]
pub struct LevelReport {
    /// The signature field's name.
    pub field: String,
    /// The level reached.
    pub level: Level,
    /// Why it stops there (empty when nothing is missing for the level reached).
    pub notes: Vec<String>,
    /// A /VRI entry keyed by the SHA-1 of its /Contents is in the /DSS (B-LT and up).
    pub vri: Option<bool>,
    /// The /DSS also holds OCSP/CRL for the document timestamp's TSA chain (B-LTA).
    pub doc_ts_tsa_revinfo: Option<bool>,
    /// Everything the script found, as JSON.
    pub facts: serde_json::Value,
}

/// Run the level script on `file`: one report per signature (document timestamps aside),
/// or the script's error when the file cannot be read.
pub fn pades_levels(file: &Path) -> Result<Vec<LevelReport>, String> {
    let script = repo_root().join("tests/judges/pades_level.py");
    let out = run(Command::new(judges_python()).arg(&script).arg(file));
    let (stdout, stderr) = texts(&out);
    let doc: serde_json::Value = serde_json::from_str(&stdout)
        .map_err(|e| format!("pades_level.py printed no JSON ({e}):\n{stdout}{stderr}"))?;
    if let Some(err) = doc.get("error").and_then(|e| e.as_str()) {
        return Err(err.to_owned());
    }
    let sigs = doc["signatures"]
        .as_array()
        .ok_or_else(|| format!("no signatures array: {doc}"))?;
    sigs.iter()
        .map(|s| {
            let level = s["level"]
                .as_str()
                .and_then(Level::parse)
                .ok_or_else(|| format!("bad level in {s}"))?;
            Ok(LevelReport {
                field: s["field"].as_str().unwrap_or_default().to_owned(),
                level,
                notes: s["notes"]
                    .as_array()
                    .map(|n| {
                        n.iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default(),
                vri: s.get("vri").and_then(|v| v.as_bool()),
                doc_ts_tsa_revinfo: s.get("doc_ts_tsa_revinfo").and_then(|v| v.as_bool()),
                facts: s.clone(),
            })
        })
        .collect()
}
