//! Files hegpu writes, created so that nobody else can redirect them: public outputs (keys
//! for the server, ciphertexts, models, reports) through a new temporary in the same directory
//! renamed into place, secrets created new with owner-only permissions. Neither ever follows
//! a symbolic link planted where the file goes: both refuse it.

mod public;
mod secret;

pub use public::{refuse_link, write_file};
pub use secret::create_secret_file;

/// An empty directory of its own for a test (`tag` names it).
#[cfg(test)]
fn scratch(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("hegpu-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
