//! Public outputs, written whole or not at all, never through a planted link.

use crate::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Writes `bytes` to `path`, replacing a file that is there. The bytes go to a temporary file
/// created new (`O_CREAT | O_EXCL`: never an existing file or link) in the same directory,
/// given the replaced file's permissions, synced and renamed over `path`: a reader never sees
/// half a file. A symbolic link at `path` is an error (see [`refuse_link`]); one planted
/// between that check and the rename is replaced by the rename, never written through. The
/// temporary is removed when anything fails. A character device named on purpose
/// (`/dev/null`, a terminal) is written into, opened without following links; pipes and
/// sockets are refused.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let fail = |why: String| Error::Data {
        path: path.display().to_string(),
        why,
    };
    refuse_link(path)?;
    let existing = std::fs::symlink_metadata(path).ok();
    if let Some(m) = &existing {
        if m.is_dir() {
            return Err(fail("is a directory".into()));
        }
        if is_char_device(m) {
            return write_into_device(path, bytes).map_err(|e| fail(e.to_string()));
        }
        if !m.is_file() {
            return Err(fail(
                "is neither a regular file nor a character device (a pipe or a socket)".into(),
            ));
        }
    }
    let temporary = temporary_beside(path).ok_or_else(|| fail("not a file name".into()))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary)
        .map_err(|e| fail(e.to_string()))?;
    let written = file
        .write_all(bytes)
        .and_then(|()| match &existing {
            Some(m) => file.set_permissions(m.permissions()),
            None => Ok(()),
        })
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&temporary, path));
    drop(file);
    written.map_err(|e| {
        let _ = std::fs::remove_file(&temporary);
        fail(e.to_string())
    })
}

#[cfg(unix)]
fn is_char_device(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    m.file_type().is_char_device()
}

#[cfg(not(unix))]
fn is_char_device(_: &std::fs::Metadata) -> bool {
    false
}

/// Writes into the character device at `path`, opened with `O_NOFOLLOW` and checked again
/// through the open handle (a link swapped in after the first check is refused).
#[cfg(unix)]
fn write_into_device(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut device = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    if !is_char_device(&device.metadata()?) {
        return Err(std::io::Error::other("changed while it was opened"));
    }
    device.write_all(bytes)
}

#[cfg(not(unix))]
fn write_into_device(_: &Path, _: &[u8]) -> std::io::Result<()> {
    Err(std::io::Error::other("not a regular file"))
}

/// An error when `path` is a symbolic link: in a directory others can write, a link planted
/// where hegpu writes a file would redirect it onto someone else's file; replacing the link
/// instead would break links the caller made on purpose.
pub fn refuse_link(path: &Path) -> Result<()> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_symlink()) {
        return Err(Error::Data {
            path: path.display().to_string(),
            why: "is a symbolic link: hegpu never writes through or over a link (one planted in \
                  a shared directory would redirect the file); remove it, or name the file it \
                  points to"
                .into(),
        });
    }
    Ok(())
}

/// A name no other writer uses, in `path`'s directory: `.NAME.PID-COUNT.tmp`.
fn temporary_beside(path: &Path) -> Option<PathBuf> {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name()?.to_string_lossy();
    let unique = COUNT.fetch_add(1, Ordering::Relaxed);
    Some(path.with_file_name(format!(".{name}.{}-{unique}.tmp", std::process::id())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        super::super::scratch(&format!("public-{tag}"))
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_file_is_written_and_replaced_whole() {
        let dir = scratch("replace");
        let path = dir.join("params.bin");
        write_file(&path, b"first").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        }
        write_file(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(
                mode & 0o777,
                0o640,
                "the replaced file's permissions: {mode:o}"
            );
        }
        assert_eq!(entries(&dir), ["params.bin"], "no temporary left behind");
        let e = write_file(&dir, b"x").unwrap_err().to_string();
        assert!(e.contains("directory"), "{e}");
        let e = write_file(&dir.join("missing/params.bin"), b"x").unwrap_err();
        assert!(e.to_string().contains("missing"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_link_is_refused_not_followed() {
        use std::os::unix::fs::FileTypeExt;
        let dir = scratch("link");
        let victim = dir.join("victim.txt");
        std::fs::write(&victim, b"the victim's data").unwrap();
        let link = dir.join("params.bin");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = write_file(&link, b"public parameters")
            .unwrap_err()
            .to_string();
        assert!(e.contains("params.bin: is a symbolic link"), "{e}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"the victim's data");
        // A dangling link: nothing is created where it points.
        let elsewhere = dir.join("elsewhere");
        let dangling = dir.join("evaluation-keys.bin");
        std::os::unix::fs::symlink(&elsewhere, &dangling).unwrap();
        assert!(write_file(&dangling, b"keys").is_err());
        assert!(!elsewhere.exists());
        assert_eq!(
            entries(&dir),
            ["evaluation-keys.bin", "params.bin", "victim.txt"]
        );
        // A stream named on purpose is written into, not replaced.
        let null = Path::new("/dev/null");
        write_file(null, b"report").unwrap();
        // A link to a device is a link: refused (it could lead to a disk or a pipe).
        let to_device = dir.join("report.json");
        std::os::unix::fs::symlink(null, &to_device).unwrap();
        assert!(write_file(&to_device, b"report").is_err());
        assert!(
            std::fs::metadata(null)
                .unwrap()
                .file_type()
                .is_char_device()
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
