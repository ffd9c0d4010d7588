//! Files generated from the code and checked in (the book's reference
//! pages): a test compares each with what it generates now.

use std::path::Path;

/// Whether a stale file is rewritten rather than reported: asked for with
/// `ORCHESTR8_BLESS=1`, and never under CI, where a stale file must fail.
pub fn blessing() -> bool {
    std::env::var_os("ORCHESTR8_BLESS").is_some() && std::env::var_os("CI").is_none_or(|v| v.is_empty())
}

/// Compares the file at `path` with `generated`. When they differ, rewrites
/// it if [`blessing`], else returns what differs (`-` on disk, `+`
/// generated) and how to regenerate it with `how` (a command line).
pub fn check(path: &Path, generated: &str, how: &str) -> Result<(), String> {
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    if on_disk == generated {
        return Ok(());
    }
    if blessing() {
        std::fs::create_dir_all(path.parent().expect("a file has a parent")).map_err(|e| e.to_string())?;
        return std::fs::write(path, generated).map_err(|e| format!("{}: {e}", path.display()));
    }
    let diff = similar::TextDiff::from_lines(on_disk.as_str(), generated);
    Err(format!(
        "{} is stale (- on disk, + generated); run `{how}` and commit it:\n{}",
        path.display(),
        diff.unified_diff().context_radius(2)
    ))
}
