//! The mount result model and the driver's rules on it.

use crate::error::{Error, Result};
use crate::files::{FilePlan, SecretBytes};
use crate::mode::FileMode;

/// The driver's default `--max-call-recv-msg-size`: the whole response must fit in it.
pub const DRIVER_MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// One object's version; the driver records these in the SecretProviderClassPodStatus, so a
/// change of version is what shows a rotation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectVersion {
    pub id: String,
    pub version: String,
}

impl ObjectVersion {
    pub fn new(id: impl Into<String>, version: impl Into<String>) -> Self {
        Self { id: id.into(), version: version.into() }
    }
}

/// A file for the driver to write into the pod's volume.
#[derive(Debug, Clone)]
pub struct MountedFile {
    pub path: String,
    pub mode: FileMode,
    pub contents: SecretBytes,
}

impl MountedFile {
    pub fn new(path: impl Into<String>, mode: FileMode, contents: impl Into<SecretBytes>) -> Self {
        Self { path: path.into(), mode, contents: contents.into() }
    }
}

/// Everything one mount writes: all files or, on error, nothing (the driver deletes files that
/// are missing from a later response, so a partial success would delete secrets).
#[derive(Debug, Clone, Default)]
pub struct MountResponse {
    pub files: Vec<MountedFile>,
    pub versions: Vec<ObjectVersion>,
}

impl MountResponse {
    /// Refuses a response the driver would refuse or misapply: no versions, a bad path, a path
    /// twice. Backends plan files before fetching; this is the last line of defence.
    pub fn check(&self) -> Result<()> {
        if self.versions.is_empty() {
            return Err(Error::invalid_config(
                "the SecretProviderClass selects no objects; the driver needs at least one",
            )
            .with_field("objects"));
        }
        let mut plan = FilePlan::new();
        for file in &self.files {
            plan.add(&file.path, file.path.clone(), file.mode)?;
        }
        Ok(())
    }

    /// Total bytes of file contents.
    pub fn content_bytes(&self) -> usize {
        self.files.iter().map(|f| f.contents.len()).sum()
    }
}

/// Refuses a response whose encoded size exceeds what the driver will receive, naming the
/// largest files so the user knows what to move out.
pub fn check_response_size(encoded_bytes: usize, limit: usize, files: &[MountedFile]) -> Result<()> {
    if encoded_bytes <= limit {
        return Ok(());
    }
    let mut largest: Vec<&MountedFile> = files.iter().collect();
    largest.sort_by_key(|f| std::cmp::Reverse(f.contents.len()));
    let named: Vec<String> =
        largest.iter().take(3).map(|f| format!("{} ({} bytes)", f.path, f.contents.len())).collect();
    Err(Error::invalid_config(format!(
        "the mount response is {encoded_bytes} bytes, over the {limit}-byte limit of the driver's \
         gRPC receive size (--max-call-recv-msg-size); largest files: {}",
        named.join(", ")
    ))
    .with_field("objects"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_needs_versions() {
        let error = MountResponse::default().check().err();
        assert!(error.is_some_and(|e| e.message().contains("no objects")));
    }

    #[test]
    fn duplicate_paths_are_refused() {
        let file = MountedFile::new("a", FileMode::DEFAULT, b"x".to_vec());
        let response =
            MountResponse { files: vec![file.clone(), file], versions: vec![ObjectVersion::new("a", "1")] };
        assert!(response.check().is_err());
    }

    #[test]
    fn size_limit_names_the_largest_files() {
        let files = vec![
            MountedFile::new("small", FileMode::DEFAULT, vec![0; 10]),
            MountedFile::new("big", FileMode::DEFAULT, vec![0; 100]),
        ];
        assert_eq!(check_response_size(100, 100, &files), Ok(()));
        let error = check_response_size(101, 100, &files).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("big (100 bytes), small (10 bytes)"), "{error}");
        assert!(error.contains("101 bytes"), "{error}");
    }
}
