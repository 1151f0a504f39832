//! The per-task workspace sandbox shared by the file tools: relative paths only, no `..`,
//! no symlink leading outside, blocked name patterns on every component, an extension
//! allowlist, size limits; files opened with `O_NOFOLLOW`.

mod read;
mod write;

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

pub use read::FileRead;
pub(crate) use read::read_text;
pub use write::FileWrite;

use crate::config::FileSettings;
use crate::error::ToolError;

/// Splits a model-supplied path into normal components, refusing anything that could
/// climb out: absolute paths, `..`, NUL bytes, backslashes (ambiguous on purpose).
pub(crate) fn relative_components(raw: &str) -> Result<Vec<String>, ToolError> {
    if raw.is_empty() {
        return Err(ToolError::invalid("/path", "empty path"));
    }
    if raw.contains('\0') || raw.contains('\\') {
        return Err(ToolError::refused("NUL or backslash in the path"));
    }
    let path = Path::new(raw);
    if path.is_absolute() {
        return Err(ToolError::refused(format!(
            "`{raw}` is absolute: paths are relative to the workspace"
        )));
    }
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(s) => out.push(s.to_string_lossy().into_owned()),
            Component::CurDir => {}
            Component::ParentDir => {
                return Err(ToolError::refused(format!("`{raw}` contains `..`")));
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ToolError::refused(format!("`{raw}` is absolute")));
            }
        }
    }
    if out.is_empty() {
        return Err(ToolError::invalid(
            "/path",
            "the path names the workspace itself",
        ));
    }
    Ok(out)
}

/// `*` and `?` glob over one name (both lower-case).
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Blocked patterns on every component, the extension allowlist on the last one.
pub(crate) fn check_names(components: &[String], settings: &FileSettings) -> Result<(), ToolError> {
    for c in components {
        let lower = c.to_lowercase();
        if let Some(p) = settings
            .blocked_patterns
            .iter()
            .find(|p| glob_match(p, &lower))
        {
            return Err(ToolError::refused(format!(
                "`{c}` matches the blocked pattern `{p}`"
            )));
        }
    }
    let last = components.last().map(String::as_str).unwrap_or_default();
    let ext = Path::new(last)
        .extension()
        .map(|e| e.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    if !settings.allowed_extensions.contains(&ext) {
        return Err(ToolError::refused(format!(
            "extension `{ext}` of `{last}` is not allowed"
        )));
    }
    Ok(())
}

/// The canonical workspace root (symlinks in the caller's path resolved once).
pub(crate) fn workspace_root(workspace: &Path) -> Result<PathBuf, ToolError> {
    workspace
        .canonicalize()
        .map_err(|e| ToolError::Failed(format!("the task workspace is not usable: {e}")))
}

/// Resolves an existing file: canonical, inside the root, names allowed on both the requested
/// and the resolved path (a symlink `notes.txt -> .env` must not leak `.env`).
pub(crate) fn resolve_existing(
    root: &Path,
    raw: &str,
    settings: &FileSettings,
) -> Result<(PathBuf, String), ToolError> {
    let comps = relative_components(raw)?;
    check_names(&comps, settings)?;
    let joined = comps.iter().fold(root.to_path_buf(), |p, c| p.join(c));
    let canon = joined.canonicalize().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => ToolError::Failed(format!("`{raw}` does not exist")),
        _ => ToolError::Failed(format!("cannot open `{raw}`: {}", e.kind())),
    })?;
    let rel = canon
        .strip_prefix(root)
        .map_err(|_| ToolError::refused(format!("`{raw}` resolves outside the workspace")))?;
    let rel_comps: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    check_names(&rel_comps, settings)?;
    Ok((canon, rel_comps.join("/")))
}

/// Opens `path` read-only without following a symlink in its last component, and reads at
/// most `max_bytes` (refusing anything larger).
pub(crate) fn read_limited(path: &Path, raw: &str, max_bytes: u64) -> Result<Vec<u8>, ToolError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| ToolError::Failed(format!("cannot open `{raw}`: {}", e.kind())))?;
    let meta = file
        .metadata()
        .map_err(|e| ToolError::Failed(format!("cannot stat `{raw}`: {}", e.kind())))?;
    if !meta.is_file() {
        return Err(ToolError::Failed(format!("`{raw}` is not a regular file")));
    }
    let too_large = || ToolError::TooLarge {
        what: format!("file `{raw}`"),
        limit: max_bytes,
    };
    if meta.len() > max_bytes {
        return Err(too_large());
    }
    let mut buf = Vec::new();
    // The file may grow after the stat; never read past the limit.
    File::take(file, max_bytes + 1)
        .read_to_end(&mut buf)
        .map_err(|e| ToolError::Failed(format!("cannot read `{raw}`: {}", e.kind())))?;
    if buf.len() as u64 > max_bytes {
        return Err(too_large());
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_stars_and_question_marks() {
        assert!(glob_match("*.env", "prod.env"));
        assert!(glob_match("*.env", ".env"));
        assert!(!glob_match("*.env", "env.txt"));
        assert!(glob_match("*secret*", "my_secrets.txt"));
        assert!(glob_match("id_rsa*", "id_rsa.pub"));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("*", ""));
    }

    #[test]
    fn relative_components_refuse_climbing() {
        assert_eq!(
            relative_components("a/./b.txt").expect("ok"),
            ["a", "b.txt"]
        );
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a\\..\\b",
            "",
            ".",
            "a/..",
        ] {
            assert!(relative_components(bad).is_err(), "{bad}");
        }
    }
}
