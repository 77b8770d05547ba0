//! Writing files atomically: a reader (or a run killed half-way) sees the old file or the new
//! one, never a partial write.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

/// The temporary sibling of `path` that [`write_atomic`] writes first.
fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Writes `bytes` to `path` through a temporary file in the same folder, synced to disk and then
/// renamed over `path`. The folder must exist.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = temp_path(path);
    let result = (|| {
        let mut file = fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// A file the engine could not save: the folder could not be created or the file not written.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}", path.display())]
pub struct SaveError {
    /// `create` (the folder) or `write` (the file).
    action: &'static str,
    /// The folder or file.
    path: PathBuf,
    /// What the system said.
    source: io::Error,
}

/// [`write_atomic`] for the engine: creates the folder first and reports a failure naming the
/// folder or file.
pub fn save(path: &Path, bytes: &[u8]) -> Result<(), SaveError> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|source| SaveError { action: "create", path: dir.to_path_buf(), source })?;
    write_atomic(path, bytes).map_err(|source| SaveError { action: "write", path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("fewshot-files-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.txt");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "second");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        assert!(write_atomic(&dir.join("missing/out.txt"), b"x").is_err());
        fs::remove_dir_all(&dir).unwrap();
    }
}
