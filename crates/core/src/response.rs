//! The mount result model and the driver's rules on it.

use crate::error::{Error, Result};
use crate::files::{MAX_FILES_PER_MOUNT, SecretBytes, check_file_path};
use crate::mode::FileMode;
pub use crate::outcome::{SkippedObject, StaleObject};
use crate::shape::FileShape;
use crate::warning::Warning;
use std::sync::Arc;

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
    /// What the server does with it before answering (decode, expand, not write); see
    /// [`crate::shaping`].
    pub shape: FileShape,
    /// The object it comes from, for errors about its shape; set with the shape.
    object: Option<Arc<str>>,
}

impl MountedFile {
    pub fn new(path: impl Into<String>, mode: FileMode, contents: impl Into<SecretBytes>) -> Self {
        Self { path: path.into(), mode, contents: contents.into(), shape: FileShape::PLAIN, object: None }
    }

    /// The file of `object`, shaped as that object (or `jmesPath` entry) says.
    #[must_use]
    pub fn shaped(mut self, object: &str, shape: FileShape) -> Self {
        if !shape.is_plain() {
            self.shape = shape;
            self.object = Some(Arc::from(object));
        }
        self
    }

    /// The object it comes from, as errors name it (its file name when not shaped).
    pub fn object_name(&self) -> &str {
        self.object.as_deref().unwrap_or(&self.path)
    }
}

/// Everything one mount writes: all files or, on error, nothing (the driver deletes files that
/// are missing from a later response, so a partial success would delete secrets).
#[derive(Debug, Clone, Default)]
pub struct MountResponse {
    pub files: Vec<MountedFile>,
    pub versions: Vec<ObjectVersion>,
    /// Logged by the server with the pod's name; never sent to the driver.
    pub warnings: Vec<Warning>,
    /// Optional objects (`optional: true`) the cloud does not have: no file was written for
    /// them. Logged and counted by the server; never sent to the driver.
    pub skipped: Vec<SkippedObject>,
    /// Objects served their last good value because the cloud was out (`staleIfError`).
    /// Logged as warnings and counted by the server; never sent to the driver.
    pub stale: Vec<StaleObject>,
    /// One record per object of the SecretProviderClass: how it was served, for the audit
    /// trail. Never sent to the driver.
    pub records: Vec<crate::audit::ObjectRecord>,
}

impl MountResponse {
    /// Keeps the last file of each path (and the last version of each id), as the driver's
    /// writer would: a SecretProviderClass may name one file twice, as upstream allows.
    pub fn keep_last_per_path(&mut self) {
        /// Keeps the last item of each key, in order. A handful of items (every mount's usual
        /// case) are compared pair by pair; more go through a set of borrowed keys.
        fn keep_last<T>(items: &mut Vec<T>, key: impl Fn(&T) -> &str) {
            let replaced: Vec<bool> = if items.len() <= 32 {
                (0..items.len())
                    .map(|i| items[i + 1..].iter().any(|later| key(later) == key(&items[i])))
                    .collect()
            } else {
                let mut seen = std::collections::HashSet::with_capacity(items.len());
                let mut replaced: Vec<bool> =
                    items.iter().rev().map(|item| !seen.insert(key(item))).collect();
                replaced.reverse();
                replaced
            };
            if replaced.contains(&true) {
                let mut at = 0;
                items.retain(|_| {
                    at += 1;
                    !replaced[at - 1]
                });
            }
        }
        keep_last(&mut self.files, |f| f.path.as_str());
        keep_last(&mut self.versions, |v| v.id.as_str());
    }

    /// The error for a SecretProviderClass that selects nothing: the driver refuses an answer
    /// without object versions ("missing object versions"), so it is said here, clearly.
    pub fn no_objects() -> Error {
        Error::invalid_config("the SecretProviderClass selects no objects; the driver needs at least one")
            .with_field("objects")
    }

    /// Refuses a response the driver would refuse or misapply: no versions, a bad path, a path
    /// twice. Backends plan files before fetching; this is the last line of defence.
    pub fn check(&self) -> Result<()> {
        if self.versions.is_empty() {
            return Err(Self::no_objects());
        }
        if self.files.len() > MAX_FILES_PER_MOUNT {
            return Err(Error::invalid_config(format!(
                "the answer has {} files, more than {MAX_FILES_PER_MOUNT} files in one mount (the most one mount may write)",
                self.files.len()
            ))
            .with_field("files"));
        }
        for file in &self.files {
            check_file_path(&file.path).map_err(|e| e.or_object(&file.path))?;
        }
        let paths: Vec<&str> = self.files.iter().map(|f| f.path.as_str()).collect();
        match crate::path_clash::first_clash(&paths, 0, false) {
            None => Ok(()),
            Some(clash) => Err(Error::invalid_config(format!(
                "file names {:?} and {:?} collide: one would be a directory of the other",
                paths[clash.earlier], paths[clash.later]
            ))
            .with_object(paths[clash.later])),
        }
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
    fn a_path_named_twice_keeps_the_last_file_and_bad_paths_are_refused() {
        let mut response = MountResponse {
            files: vec![
                MountedFile::new("a", FileMode::DEFAULT, b"first".to_vec()),
                MountedFile::new("b", FileMode::DEFAULT, b"b".to_vec()),
                MountedFile::new("a", FileMode::DEFAULT, b"last".to_vec()),
            ],
            versions: vec![ObjectVersion::new("a", "1"), ObjectVersion::new("a", "2")],
            ..MountResponse::default()
        };
        response.keep_last_per_path();
        let files: Vec<(&str, &[u8])> =
            response.files.iter().map(|f| (f.path.as_str(), f.contents.expose())).collect();
        assert_eq!(files, [("b", b"b".as_slice()), ("a", b"last".as_slice())]);
        assert_eq!(response.versions, [ObjectVersion::new("a", "2")]);
        assert_eq!(response.check(), Ok(()));
        response.files.push(MountedFile::new("a/x", FileMode::DEFAULT, b"x".to_vec()));
        let clash = response.check().err().map(|e| (e.message().to_owned(), e.object().map(str::to_owned)));
        assert_eq!(
            clash,
            Some((
                r#"file names "a" and "a/x" collide: one would be a directory of the other"#.to_owned(),
                Some("a/x".to_owned())
            )),
            "a file that is also a directory"
        );
        response.files.pop();
        response.files.push(MountedFile::new("../x", FileMode::DEFAULT, b"x".to_vec()));
        let bad = response.check().err();
        assert!(bad.is_some_and(|e| e.message().contains("leaves the mount") && e.object() == Some("../x")));
    }

    #[test]
    fn an_answer_of_more_files_than_a_mount_may_write_is_refused() {
        let files: Vec<MountedFile> = (0..=MAX_FILES_PER_MOUNT)
            .map(|i| MountedFile::new(format!("f{i}"), FileMode::DEFAULT, vec![1]))
            .collect();
        let response =
            MountResponse { files, versions: vec![ObjectVersion::new("a", "1")], ..MountResponse::default() };
        let error = response.check().err().map(|e| e.message().to_owned()).unwrap_or_default();
        assert!(error.contains("more than 10000 files in one mount"), "{error}");
    }

    #[test]
    fn many_files_keep_the_last_of_each_path_too() {
        let files: Vec<MountedFile> =
            (0..80).map(|i| MountedFile::new(format!("f{}", i % 50), FileMode::DEFAULT, vec![i])).collect();
        let mut response = MountResponse { files, ..MountResponse::default() };
        response.keep_last_per_path();
        let kept: Vec<(String, u8)> =
            response.files.iter().map(|f| (f.path.clone(), f.contents.expose()[0])).collect();
        let expected: Vec<(String, u8)> = (30..80).map(|i| (format!("f{}", i % 50), i)).collect();
        assert_eq!(kept, expected);
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
