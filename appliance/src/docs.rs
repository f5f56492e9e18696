//! Man pages and shell completions, written from a binary's own clap definition so they
//! never drift from it (the Debian package ships them).

use std::path::Path;

use clap_complete::Shell;

/// Section 8: both binaries are for the administrator.
const SECTION: &str = "8";

/// Write, for `cmd` named as its binary, `DIR/man/NAME.8` (and `NAME-SUB.8` for every visible subcommand) and
/// `DIR/completions/{NAME.bash,_NAME,NAME.fish}`.
pub fn write(cmd: clap::Command, dir: &Path) -> std::io::Result<()> {
    let name = cmd.get_name().to_owned();
    let man = dir.join("man");
    std::fs::create_dir_all(&man)?;
    let mut built = cmd.clone().disable_help_subcommand(true);
    built.build();
    write_man(built, &man)?;
    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd.clone(), &name, &completions)?;
    }
    Ok(())
}

fn write_man(cmd: clap::Command, dir: &Path) -> std::io::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_man(sub.clone(), dir)?;
    }
    clap_mangen::Man::new(cmd)
        .section(SECTION)
        .manual("Signet")
        .generate_to(dir)
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_visible_subcommand_gets_a_page_and_hidden_ones_none() {
        let cmd = clap::Command::new("tool")
            .about("A tool.")
            .subcommand(
                clap::Command::new("cert")
                    .about("Certificates.")
                    .subcommand(clap::Command::new("list").about("List them.")),
            )
            .subcommand(clap::Command::new("secret").hide(true));
        let dir = tempfile::tempdir().unwrap();
        write(cmd, dir.path()).unwrap();
        let mut pages: Vec<String> = std::fs::read_dir(dir.path().join("man"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        pages.sort();
        assert_eq!(pages, ["tool-cert-list.8", "tool-cert.8", "tool.8"]);
        let page = std::fs::read_to_string(dir.path().join("man/tool-cert.8")).unwrap();
        assert!(page.contains(".TH tool-cert 8"), "{page}");
        for f in ["tool.bash", "_tool", "tool.fish"] {
            let text = std::fs::read_to_string(dir.path().join("completions").join(f)).unwrap();
            assert!(
                text.contains("cert") && text.contains("list"),
                "{f}: {text}"
            );
        }
    }
}
