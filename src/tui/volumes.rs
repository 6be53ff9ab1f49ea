//! Per-user volumes, remembered across sessions: `volumes.toml` in the client's state
//! directory (beside the log), one `"user-id" = percent` line each. Read at start, written
//! whole (to a temporary file, then renamed) whenever a volume changes.
//! Must never stop the client: a missing file is no volumes; a file that does not parse is
//! reported and ignored (and replaced at the next change).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cromulent_protocol::UserId;

use crate::engine::MAX_VOLUME_PERCENT;

/// The file in `state_dir`.
pub fn file_in(state_dir: &Path) -> PathBuf {
    state_dir.join("volumes.toml")
}

/// The remembered volumes; values over the maximum are clamped.
pub fn load(path: &Path) -> Result<BTreeMap<UserId, u16>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let table: BTreeMap<UserId, u16> =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(table
        .into_iter()
        .map(|(user, p)| (user, p.min(MAX_VOLUME_PERCENT)))
        .collect())
}

pub fn save(path: &Path, volumes: &BTreeMap<UserId, u16>) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = toml::to_string(volumes).map_err(std::io::Error::other)?;
    let temporary = path.with_extension("toml.new");
    std::fs::write(
        &temporary,
        format!("# Volumes set in cromulent, in percent by user id.\n{text}"),
    )?;
    std::fs::rename(&temporary, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_survive_a_round_trip_and_bad_files_are_reported() {
        let dir = std::env::temp_dir().join(format!("cromulent-volumes-{}", std::process::id()));
        let path = file_in(&dir.join("state"));
        assert_eq!(load(&path).unwrap(), BTreeMap::new(), "no file: no volumes");
        let volumes = BTreeMap::from([
            ("bob".to_owned(), 50),
            ("Ann Smith \"quoted\" = x".to_owned(), 0),
            ("carol".to_owned(), 200),
        ]);
        save(&path, &volumes).unwrap();
        assert_eq!(load(&path).unwrap(), volumes);
        std::fs::write(&path, "bob = 900\n").unwrap();
        assert_eq!(load(&path).unwrap()["bob"], MAX_VOLUME_PERCENT);
        std::fs::write(&path, "bob = \"loud\"\n").unwrap();
        assert!(load(&path).unwrap_err().contains("volumes.toml"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
