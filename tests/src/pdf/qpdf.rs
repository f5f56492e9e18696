//! `qpdf --check FILE`: exit 0 and `No syntax or stream encoding errors found` when clean;
//! exit 2 on errors, 3 on warnings only (a damaged file it had to reconstruct).

use std::path::Path;
use std::process::Command;

use super::texts;
use crate::run;

/// What `qpdf --check` said.
#[derive(Debug)]
pub struct QpdfCheck {
    /// qpdf's exit code.
    pub code: Option<i32>,
    /// `File is linearized` was printed.
    pub linearized: bool,
    /// Everything printed.
    pub text: String,
}

impl QpdfCheck {
    /// Exit 0 and no errors found.
    pub fn clean(&self) -> bool {
        self.code == Some(0)
            && self
                .text
                .contains("No syntax or stream encoding errors found")
    }
}

/// Run `qpdf --check` on `file`.
pub fn qpdf_check(file: &Path) -> QpdfCheck {
    let out = run(Command::new("qpdf").arg("--check").arg(file));
    let (stdout, stderr) = texts(&out);
    QpdfCheck {
        code: out.status.code(),
        linearized: stdout.contains("File is linearized"),
        text: format!("{stdout}{stderr}"),
    }
}
