//! `fieldhook config check`: every problem of a configuration file, each
//! with its key path and the fix.

use std::path::Path;

use fieldhook::config::Config;

/// Exit status of a file that is not a valid configuration (sysexits
/// EX_CONFIG), so service managers and scripts can tell it from a crash.
pub const EX_CONFIG: i32 = 78;

/// Prints the file's problems to stderr (or that it is valid, to stdout);
/// returns the exit status.
pub fn check(path: &Path) -> i32 {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("{}: cannot read: {e}", path.display());
            return EX_CONFIG;
        }
    };
    let base = path.parent().unwrap_or(Path::new("."));
    let problems = Config::problems(&text, base);
    if problems.is_empty() {
        // `problems` covers what `parse` checks; parse as well so a check
        // that passes means `serve` will accept the file.
        if let Err(e) = Config::parse(&text, base) {
            eprintln!("{}: {e}", path.display());
            return EX_CONFIG;
        }
        println!("{}: valid", path.display());
        return 0;
    }
    for problem in &problems {
        eprintln!("{}: {problem}", path.display());
    }
    eprintln!(
        "{}: {} problem{}",
        path.display(),
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    EX_CONFIG
}
