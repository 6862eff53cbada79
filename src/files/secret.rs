//! Files that hold secret material: created new (never an existing file, never through a
//! symbolic link) with owner-only permissions from the first byte, so no other user can read
//! them while they are written and nobody can plant a file for the secret to land in.

use crate::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Creates `path` holding `bytes`, readable and writable by its owner only. Refuses an existing
/// path of any kind (file, directory, symbolic link, dangling or not): `O_CREAT | O_EXCL`
/// with mode 0600 on Unix; on Windows the file is created new and opened unshared while it is
/// written, and inherits its directory's access list. A partly written file is removed.
pub fn create_secret_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let fail = |why: String| Error::Data {
        path: path.display().to_string(),
        why,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        options.share_mode(0);
    }
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            fail(
                "already exists: a secret key is never written over an existing file or link; \
                 remove it or choose another directory"
                    .into(),
            )
        } else {
            fail(e.to_string())
        }
    })?;
    let written = file.write_all(bytes).and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = std::fs::remove_file(path);
        return Err(fail(e.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> std::path::PathBuf {
        super::super::scratch(&format!("secret-{tag}"))
    }

    #[test]
    fn the_file_is_owner_only_and_never_reused() {
        let dir = scratch("new");
        let path = dir.join("secret.key");
        create_secret_file(&path, b"s3cret").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"s3cret");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        let e = create_secret_file(&path, b"other").unwrap_err();
        assert!(e.to_string().contains("already exists"), "{e}");
        assert_eq!(std::fs::read(&path).unwrap(), b"s3cret");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_link_is_not_followed() {
        let dir = scratch("link");
        let target = dir.join("attacker-owned");
        let link = dir.join("secret.key");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(create_secret_file(&link, b"s3cret").is_err());
        assert!(!target.exists(), "the secret went through the link");
        std::fs::write(&target, b"").unwrap();
        assert!(create_secret_file(&link, b"s3cret").is_err());
        assert_eq!(std::fs::read(&target).unwrap(), b"");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
