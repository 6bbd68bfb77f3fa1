//! The Secrets Store CSI Driver's side of a mount after the provider answered, as the driver's
//! code does it (sigs.k8s.io/secrets-store-csi-driver v1.6.1: `MountContent` in
//! `pkg/secrets-store/provider_client.go`, `WritePayloads`/`Validate` in
//! `pkg/util/fileutil/writer.go`, the atomic writer in `pkg/util/fileutil/atomic_writer.go`):
//!
//! - an answer without object versions is refused (`missing object versions`);
//! - an answer without files writes nothing: the pod keeps what it had;
//! - every path is validated (`validatePath`: not empty, relative, at most 4096 bytes, no `..`
//!   element, no element over 255 bytes, a first element may not start with `..`; and
//!   `filepath.Clean` must leave it unchanged);
//! - the payload replaces the volume's files as a whole: written to a new timestamped
//!   directory, `..data` switched to it, user-visible symlinks for the top-level names, paths
//!   of the old payload missing from the new one removed — unless no file changed and none is
//!   gone, when nothing is written;
//! - modes are Go `os.FileMode(mode)`: the permission bits only (setuid, setgid and sticky,
//!   0o7000 in Unix terms, are other bits in Go and dropped).

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use csi_secrets_provider_server::proto::MountResponse;

const DATA_DIR: &str = "..data";
const NEW_DATA_DIR: &str = "..data_tmp";

/// What the driver did with an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// A new payload replaced the volume's files.
    Replaced,
    /// The payload equals what is there: nothing written.
    Unchanged,
    /// The answer had no files: nothing written, the old files stay.
    NoFiles,
}

/// Why the driver failed the mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DriverError {
    MissingObjectVersions,
    InvalidPath(String),
    Io(String),
}

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingObjectVersions => f.write_str("missing object versions"),
            Self::InvalidPath(why) => write!(f, "{why}"),
            Self::Io(why) => write!(f, "{why}"),
        }
    }
}

impl std::error::Error for DriverError {}

impl From<io::Error> for DriverError {
    fn from(e: io::Error) -> Self {
        Self::Io(e.to_string())
    }
}

/// A pod volume's target directory, written as the driver writes it.
#[derive(Debug)]
pub struct TargetDir {
    dir: tempfile::TempDir,
    generation: std::cell::Cell<u32>,
}

impl TargetDir {
    pub fn new() -> io::Result<Self> {
        Ok(Self { dir: tempfile::tempdir()?, generation: std::cell::Cell::new(0) })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `MountContent` after the gRPC answer: the object versions the driver records, or its
    /// error; the files written as `WritePayloads` writes them.
    pub fn apply(
        &self,
        response: &MountResponse,
    ) -> Result<(BTreeMap<String, String>, Written), DriverError> {
        // A repeated field decodes as a nil slice in Go when empty.
        if response.object_version.is_empty() {
            return Err(DriverError::MissingObjectVersions);
        }
        let versions = response.object_version.iter().map(|v| (v.id.clone(), v.version.clone())).collect();
        if response.files.is_empty() {
            return Ok((versions, Written::NoFiles));
        }
        for file in &response.files {
            crate::driver_paths::driver_accepts(&file.path).map_err(DriverError::InvalidPath)?;
        }
        // A later file of the same path replaces an earlier one (a Go map).
        let payload: BTreeMap<String, (Vec<u8>, u32)> = response
            .files
            .iter()
            .map(|f| (f.path.clone(), (f.contents.clone(), go_file_mode(f.mode))))
            .collect();
        let written = self.write(&payload)?;
        Ok((versions, written))
    }

    /// The atomic writer's `Write`.
    fn write(&self, payload: &BTreeMap<String, (Vec<u8>, u32)>) -> Result<Written, DriverError> {
        let target = self.path();
        let old = std::fs::read_link(target.join(DATA_DIR)).ok();
        let mut to_remove = Vec::new();
        if let Some(old) = &old {
            let old_dir = target.join(old);
            let mut old_paths = Vec::new();
            walk(&old_dir, &old_dir, &mut old_paths)?;
            let mut new_paths = std::collections::BTreeSet::new();
            for path in payload.keys() {
                let mut sub = Path::new(path);
                loop {
                    new_paths.insert(sub.to_string_lossy().into_owned());
                    match sub.parent() {
                        Some(parent) if !parent.as_os_str().is_empty() => sub = parent,
                        _ => break,
                    }
                }
            }
            to_remove = old_paths.into_iter().filter(|p| !new_paths.contains(p)).collect();
            let changed = payload.iter().any(|(path, (contents, _))| {
                std::fs::read(old_dir.join(path)).map_or(true, |on_disk| on_disk != *contents)
            });
            if !changed && to_remove.is_empty() {
                return Ok(Written::Unchanged);
            }
        }
        let generation = self.generation.get() + 1;
        self.generation.set(generation);
        let ts_name = format!("..2026_01_01_00_00_00.{generation:08}");
        let ts_dir = target.join(&ts_name);
        std::fs::create_dir(&ts_dir)?;
        std::fs::set_permissions(&ts_dir, std::fs::Permissions::from_mode(0o755))?;
        for (path, (contents, mode)) in payload {
            let full = ts_dir.join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&full, contents)?;
            std::fs::set_permissions(&full, std::fs::Permissions::from_mode(*mode))?;
        }
        for path in payload.keys() {
            let first = path.split('/').next().unwrap_or(path);
            let visible = target.join(first);
            if std::fs::symlink_metadata(&visible).is_err() {
                std::os::unix::fs::symlink(Path::new(DATA_DIR).join(first), &visible)?;
            }
        }
        let new_data = target.join(NEW_DATA_DIR);
        std::os::unix::fs::symlink(&ts_name, &new_data)?;
        std::fs::rename(&new_data, target.join(DATA_DIR))?;
        // Only top-level names are user-visible (symlinks); deeper ones went with the old
        // timestamped directory.
        for path in &to_remove {
            if !path.contains('/') {
                let visible = target.join(path);
                if std::fs::symlink_metadata(&visible).is_ok() {
                    std::fs::remove_file(&visible)?;
                }
            }
        }
        if let Some(old) = old {
            std::fs::remove_dir_all(target.join(old))?;
        }
        Ok(Written::Replaced)
    }

    /// What the pod sees: every regular file under the target, through the symlinks, with its
    /// permission bits.
    pub fn files(&self) -> io::Result<BTreeMap<String, (Vec<u8>, u32)>> {
        let mut found = BTreeMap::new();
        for entry in std::fs::read_dir(self.path())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("..") {
                continue;
            }
            collect(&self.path().join(&name), &name, &mut found)?;
        }
        Ok(found)
    }
}

fn collect(path: &Path, shown: &str, found: &mut BTreeMap<String, (Vec<u8>, u32)>) -> io::Result<()> {
    let metadata = std::fs::metadata(path)?;
    if metadata.is_dir() {
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            collect(&path.join(&name), &format!("{shown}/{name}"), found)?;
        }
    } else {
        found.insert(shown.to_owned(), (std::fs::read(path)?, metadata.permissions().mode() & 0o7777));
    }
    Ok(())
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let relative = path.strip_prefix(root).map_err(io::Error::other)?.to_string_lossy().into_owned();
        out.push(relative);
        if entry.file_type()?.is_dir() {
            walk(root, &path, out)?;
        }
    }
    Ok(())
}

/// `os.FileMode(mode)` as `os.WriteFile` and `os.Chmod` apply it: Go keeps its own special
/// bits elsewhere, so of a Unix mode only the permission bits count.
pub fn go_file_mode(mode: i32) -> u32 {
    u32::from_ne_bytes(mode.to_ne_bytes()) & 0o777
}

#[cfg(test)]
mod tests {
    use super::*;
    use csi_secrets_provider_server::proto::{File, ObjectVersion};

    fn answer(files: &[(&str, &str, i32)]) -> MountResponse {
        MountResponse {
            object_version: vec![ObjectVersion { id: "o".to_owned(), version: "1".to_owned() }],
            error: None,
            files: files
                .iter()
                .map(|(path, contents, mode)| File {
                    path: (*path).to_owned(),
                    mode: *mode,
                    contents: contents.as_bytes().to_vec(),
                })
                .collect(),
        }
    }

    fn seen(target: &TargetDir) -> Result<Vec<(String, String, u32)>, io::Error> {
        Ok(target
            .files()?
            .into_iter()
            .map(|(path, (contents, mode))| (path, String::from_utf8_lossy(&contents).into_owned(), mode))
            .collect())
    }

    #[test]
    fn an_answer_without_versions_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let target = TargetDir::new()?;
        let mut bare = answer(&[("a", "x", 0o644)]);
        bare.object_version.clear();
        assert_eq!(target.apply(&bare), Err(DriverError::MissingObjectVersions));
        assert!(seen(&target)?.is_empty());
        Ok(())
    }

    #[test]
    fn an_answer_without_files_writes_nothing_and_the_old_files_stay()
    -> Result<(), Box<dyn std::error::Error>> {
        let target = TargetDir::new()?;
        target.apply(&answer(&[("a", "x", 0o644)]))?;
        let (_, written) = target.apply(&answer(&[]))?;
        assert_eq!(written, Written::NoFiles);
        assert_eq!(seen(&target)?, [("a".to_owned(), "x".to_owned(), 0o644)]);
        Ok(())
    }

    #[test]
    fn each_payload_replaces_the_last_as_a_whole() -> Result<(), Box<dyn std::error::Error>> {
        let target = TargetDir::new()?;
        target.apply(&answer(&[("a", "1", 0o644), ("dir/b", "2", 0o644), ("dir/c", "3", 0o644)]))?;
        let (_, written) = target.apply(&answer(&[("dir/b", "2", 0o644)]))?;
        assert_eq!(written, Written::Replaced);
        assert_eq!(seen(&target)?, [("dir/b".to_owned(), "2".to_owned(), 0o644)]);
        let (_, again) = target.apply(&answer(&[("dir/b", "2", 0o644)]))?;
        assert_eq!(again, Written::Unchanged);
        Ok(())
    }

    #[test]
    fn paths_are_validated_as_the_driver_does() -> Result<(), Box<dyn std::error::Error>> {
        let target = TargetDir::new()?;
        let (long_name, long_path) = ("n".repeat(256), "a/".repeat(2049));
        let refused =
            ["", "/abs", "a/../b", "..", "..a/b", "a//b", "./a", "a/", "a/.", &long_name, &long_path];
        for bad in refused {
            let applied = target.apply(&answer(&[(bad, "x", 0o644)]));
            assert!(matches!(applied, Err(DriverError::InvalidPath(_))), "{bad:?}: {applied:?}");
        }
        for good in ["a", "a/b", ".hidden", "a/..b", "n".repeat(255).as_str()] {
            assert!(crate::driver_paths::driver_accepts(good).is_ok(), "{good:?}");
        }
        Ok(())
    }

    #[test]
    fn modes_keep_only_the_permission_bits() -> Result<(), Box<dyn std::error::Error>> {
        let target = TargetDir::new()?;
        target.apply(&answer(&[("setuid", "x", 0o4755), ("plain", "y", 0o640)]))?;
        let modes: Vec<u32> = seen(&target)?.into_iter().map(|(_, _, mode)| mode).collect();
        assert_eq!(modes, [0o640, 0o755]);
        Ok(())
    }
}
