//! File names and the file plan: what a mount will write, checked before any cloud call.
//!
//! The rules are the driver's (`pkg/util/fileutil` and the atomic writer): a path the driver
//! would refuse fails the whole mount, so we refuse it first, with the object that caused it.

use std::fmt;

use secrecy::{ExposeSecret, SecretSlice};

use crate::error::{Error, Result};
use crate::mode::FileMode;
use crate::path_clash::{directories_of, is_parent, path_hashes};
use crate::shape::FileShape;
use crate::warning::Warning;

/// Longest path the driver accepts.
pub const MAX_PATH_LEN: usize = 4096;
/// Longest path element the driver accepts.
pub const MAX_ELEMENT_LEN: usize = 255;

/// Checks a relative file path against the driver's rules. The error says what is wrong but not
/// which object; callers add that.
pub fn check_file_path(path: &str) -> Result<()> {
    match path_problem(path) {
        Some(message) => Err(Error::invalid_config(message)),
        None => Ok(()),
    }
}

fn path_problem(path: &str) -> Option<String> {
    if is_plainly_clean(path) { None } else { first_broken_rule(path) }
}

/// The driver's rules one by one, in the order that decides which one an error names.
fn first_broken_rule(path: &str) -> Option<String> {
    if path.is_empty() {
        return Some("the file name is empty".to_owned());
    }
    if path.starts_with('/') {
        return Some(format!("file name {path:?} is absolute; it must be relative to the mount"));
    }
    if path.split('/').any(|element| element == "..") {
        return Some(format!("path can not contain ../: file name {path:?} leaves the mount directory"));
    }
    if path.starts_with("..") {
        // It stays in the directory, and a provider that writes files itself (the AWS
        // provider's default) writes it; the driver's writer refuses it.
        return Some(format!(
            "file name {path:?} starts with \"..\", which the driver refuses to write (its atomic writer \
             keeps its own entries under such names); give the object an objectAlias"
        ));
    }
    if path.contains('\0') {
        return Some(format!("file name {path:?} contains a NUL character"));
    }
    if path.split('/').any(|element| element.is_empty() || element == ".") {
        return Some(format!(
            "file name {path:?} is not in clean form (no empty, \".\" or trailing elements)"
        ));
    }
    if path.len() > MAX_PATH_LEN {
        return Some(format!("file name is {} bytes long; the driver allows {MAX_PATH_LEN}", path.len()));
    }
    path.split('/').find(|element| element.len() > MAX_ELEMENT_LEN).map(|long| {
        format!(
            "file name element {long:?} is {} bytes long; the driver allows {MAX_ELEMENT_LEN}",
            long.len()
        )
    })
}

/// Whether `path` passes every rule of [`path_problem`], found in one pass over its bytes (every
/// mount checks each of its paths, usually more than once); `false` sends it through the rules
/// one by one, which say what is wrong.
fn is_plainly_clean(path: &str) -> bool {
    let bytes = path.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_PATH_LEN || bytes.starts_with(b"..") {
        return false;
    }
    let element_is_clean =
        |element: &[u8]| !matches!(element, b"" | b"." | b"..") && element.len() <= MAX_ELEMENT_LEN;
    let mut start = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        match byte {
            0 => return false,
            b'/' => {
                if !element_is_clean(&bytes[start..at]) {
                    return false;
                }
                start = at + 1;
            }
            _ => {}
        }
    }
    element_is_clean(&bytes[start..])
}

/// Replaces every `/` of an object name with `replacement` (the AWS `pathTranslation` rule), so
/// `prod/db/password` becomes one file `prod_db_password`.
pub fn translate_slashes(name: &str, replacement: char) -> String {
    name.chars().map(|c| if c == '/' { replacement } else { c }).collect()
}

/// One file the mount will write, known before fetching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    pub path: String,
    pub mode: FileMode,
    /// The SPC object it comes from (objectName), for error messages.
    pub object: String,
    /// Decoded, expanded, or read for `files` only (`writeFile: false`).
    pub shape: FileShape,
}

/// Most entries one SecretProviderClass may list (`objects`, `secrets`; a folder entry counts
/// once): each is at least one cloud read per mount, and a thousand is far past any real pod.
/// Checked before any entry is parsed, so a hostile list costs no work per entry.
pub const MAX_OBJECTS_PER_SPC: usize = 1_000;

/// `Ok` when a list of `count` entries (the parameter `field`) is within
/// [`MAX_OBJECTS_PER_SPC`].
pub fn check_object_count(count: usize, field: &str) -> Result<()> {
    if count > MAX_OBJECTS_PER_SPC {
        return Err(Error::invalid_config(format!(
            "{field} lists {count} entries, more than {MAX_OBJECTS_PER_SPC} (the most one SecretProviderClass may list)"
        ))
        .with_field(field));
    }
    Ok(())
}

/// Most files one mount may plan or write (objects, `jmesPath` files, folders' secrets,
/// `expandKeys` keys, `files` entries together). The driver writes every file of an answer into
/// one tmpfs directory per pod and its answer is at most 4 MiB; ten thousand files is far past
/// any real pod and keeps a hostile SPC's work per mount small.
pub const MAX_FILES_PER_MOUNT: usize = 10_000;

/// The ordered set of files of one mount, with the driver's path rules and duplicate checks,
/// and the warnings found while planning it. Adding a file costs the length of its path (two
/// indexes: files by path, and the directories written files make), so a plan of `n` files is
/// built in linear time.
#[derive(Debug, Clone, Default)]
pub struct FilePlan {
    /// In the order they were planned; `None` where a later file of the same path replaced
    /// one.
    entries: Vec<Option<PlannedFile>>,
    /// The live files, in order: what [`Self::files`] shows, made when first asked.
    files: std::sync::OnceLock<Vec<PlannedFile>>,
    /// The entry of each live path.
    by_path: std::collections::HashMap<String, usize>,
    /// Each directory of a written file (by its hash), with how many written files are under it.
    directories: std::collections::HashMap<u64, usize>,
    /// Each written file's path (by its hash), with how many: to find a directory of a new path
    /// that is a file without hashing every directory of it on its own.
    written: std::collections::HashMap<u64, usize>,
    /// The keys of those hashes, this plan's own.
    keys: std::hash::RandomState,
    warnings: Vec<Warning>,
    /// Objects marked `optional: true`: skipped, not failed, when the cloud has no such object.
    optional: Vec<String>,
}

impl PartialEq for FilePlan {
    fn eq(&self, other: &Self) -> bool {
        self.files() == other.files() && self.warnings == other.warnings && self.optional == other.optional
    }
}

impl Eq for FilePlan {}

impl FilePlan {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file, refusing bad paths and a name that is also used as a directory by another
    /// file (`a` and `a/0`), which the driver's writer cannot create. A name used twice is what
    /// the official providers let through and the driver writes with the last one winning: the
    /// later file replaces the earlier, with a warning.
    pub fn add(&mut self, object: &str, path: impl Into<String>, mode: FileMode) -> Result<()> {
        self.add_shaped(object, path, mode, FileShape::PLAIN)
    }

    /// [`Self::add`] for a file with its object's `writeFile`, `expandKeys` and `decode`.
    pub fn add_shaped(
        &mut self,
        object: &str,
        path: impl Into<String>,
        mode: FileMode,
        shape: FileShape,
    ) -> Result<()> {
        let path = path.into();
        check_file_path(&path).map_err(|e| e.or_object(object))?;
        if self.by_path.len() >= MAX_FILES_PER_MOUNT && !self.by_path.contains_key(&path) {
            return Err(Error::invalid_config(format!(
                "more than {MAX_FILES_PER_MOUNT} files in one mount (the most one mount may write)"
            ))
            .with_object(object));
        }
        if let Some(index) = self.by_path.remove(&path) {
            let earlier = self.remove_entry(index);
            self.warnings.push(
                Warning::new(format!(
                    "file {path:?} is written more than once (objects {:?} and {object:?}); the last one wins, as with the official provider",
                    earlier.object
                ))
                .with_object(object),
            );
        }
        // A file read for `files` only (`writeFile: false`) is never written, so it cannot be
        // in the way of a directory (an object's `jmesPath` files under its name).
        if shape.write_file {
            let hashes = path_hashes(&self.keys, &path);
            // A hash says "perhaps"; the paths themselves say whether (on this rare path only).
            let in_a_file = hashes.directories.iter().any(|hash| self.written.contains_key(hash))
                && directories_of(&path).any(|directory| self.is_written_file(directory));
            let a_directory = self.directories.get(&hashes.whole).is_some_and(|&count| count > 0)
                && self
                    .entries
                    .iter()
                    .flatten()
                    .any(|file| file.shape.write_file && is_parent(&path, &file.path));
            if in_a_file || a_directory {
                return Err(self.clash(object, &path));
            }
            for hash in hashes.directories {
                *self.directories.entry(hash).or_default() += 1;
            }
            *self.written.entry(hashes.whole).or_default() += 1;
        }
        self.by_path.insert(path.clone(), self.entries.len());
        self.entries.push(Some(PlannedFile { path, mode, object: object.to_owned(), shape }));
        self.files.take();
        Ok(())
    }

    fn is_written_file(&self, path: &str) -> bool {
        self.by_path
            .get(path)
            .and_then(|&index| self.entries[index].as_ref())
            .is_some_and(|file| file.shape.write_file)
    }

    /// Takes entry `index` out (its path already out of `by_path`).
    fn remove_entry(&mut self, index: usize) -> PlannedFile {
        let removed = self.entries[index].take().unwrap_or_else(|| PlannedFile {
            path: String::new(),
            mode: FileMode::DEFAULT,
            object: String::new(),
            shape: FileShape::PLAIN,
        });
        if removed.shape.write_file {
            let hashes = path_hashes(&self.keys, &removed.path);
            let forget = |counts: &mut std::collections::HashMap<u64, usize>, hash: u64| {
                if let Some(count) = counts.get_mut(&hash) {
                    *count = count.saturating_sub(1);
                    if *count == 0 {
                        counts.remove(&hash);
                    }
                }
            };
            for hash in hashes.directories {
                forget(&mut self.directories, hash);
            }
            forget(&mut self.written, hashes.whole);
        }
        self.files.take();
        removed
    }

    /// The error for `path` colliding with a written file (one is the other's directory): the
    /// first such file in plan order, found on this error path only.
    fn clash(&self, object: &str, path: &str) -> Error {
        let existing = self.entries.iter().flatten().find(|existing| {
            existing.shape.write_file && (is_parent(&existing.path, path) || is_parent(path, &existing.path))
        });
        let (other_path, other_object) =
            existing.map_or(("", ""), |existing| (existing.path.as_str(), existing.object.as_str()));
        let also = if other_object == object {
            String::new()
        } else {
            format!(" (also written by object {other_object:?})")
        };
        Error::invalid_config(format!(
            "file names {other_path:?} and {path:?} collide: one would be a directory of the other{also}"
        ))
        .with_object(object)
    }

    /// Records a file the server builds from the objects (a `files` entry), already checked
    /// against the others; `validate` lists it and `secretObjects` may name it.
    pub fn built(&mut self, path: String) {
        self.entries.push(Some(PlannedFile {
            object: path.clone(),
            path,
            mode: FileMode::DEFAULT,
            shape: FileShape::PLAIN,
        }));
        self.files.take();
    }

    pub fn files(&self) -> &[PlannedFile] {
        self.files.get_or_init(|| self.entries.iter().flatten().cloned().collect())
    }

    /// Records something the mount goes on with but the user should fix.
    pub fn warn(&mut self, warning: Warning) {
        self.warnings.push(warning);
    }

    pub fn warnings(&self) -> &[Warning] {
        &self.warnings
    }

    /// Marks `object` optional (`optional: true`).
    pub fn mark_optional(&mut self, object: &str) {
        if !self.optional.iter().any(|o| o == object) {
            self.optional.push(object.to_owned());
        }
    }

    /// The optional objects, in SecretProviderClass order.
    pub fn optional_objects(&self) -> &[String] {
        &self.optional
    }

    pub fn len(&self) -> usize {
        self.files().len()
    }

    pub fn is_empty(&self) -> bool {
        self.files().is_empty()
    }
}

/// Bytes of a file to hand to the driver. Zeroed on drop; `Debug` shows only the length.
#[derive(Clone)]
pub struct SecretBytes(SecretSlice<u8>);

impl SecretBytes {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(SecretSlice::from(bytes))
    }

    pub fn expose(&self) -> &[u8] {
        self.0.expose_secret()
    }

    pub fn len(&self) -> usize {
        self.expose().len()
    }

    pub fn is_empty(&self) -> bool {
        self.expose().is_empty()
    }
}

impl From<Vec<u8>> for SecretBytes {
    fn from(bytes: Vec<u8>) -> Self {
        Self::new(bytes)
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([REDACTED {} bytes])", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_path_rules() {
        for good in ["a", "a.txt", "alias/0", "a/b/c", "foo..bar", ".hidden"] {
            assert_eq!(check_file_path(good), Ok(()), "{good}");
        }
        for bad in ["", "/abs", "..", "../x", "..foo", "a/../b", "a/..", "a//b", "a/", "./a", "a/./b", "a\0b"]
        {
            assert!(check_file_path(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(check_file_path(&"x".repeat(256)).is_err());
        assert!(check_file_path(&["y"; 2100].join("/")).is_err());
        assert_eq!(check_file_path(&"x".repeat(255)), Ok(()));
    }

    /// Every path of up to six characters from the characters the rules look at: the one-pass
    /// check lets through exactly what the rules let through.
    #[test]
    fn the_one_pass_check_agrees_with_the_rules() {
        let alphabet = ['a', '.', '/', '\0'];
        let mut paths = vec![String::new()];
        let mut compared = 0;
        for _ in 0..6 {
            paths =
                paths.iter().flat_map(|path| alphabet.iter().map(move |c| format!("{path}{c}"))).collect();
            for path in &paths {
                assert_eq!(is_plainly_clean(path), first_broken_rule(path).is_none(), "{path:?}");
                compared += 1;
            }
        }
        for long in ["x".repeat(255), "x".repeat(256), ["y"; 2048].join("/"), ["y"; 2049].join("/")] {
            assert_eq!(is_plainly_clean(&long), first_broken_rule(&long).is_none(), "{} bytes", long.len());
        }
        assert_eq!(compared, 5460);
        assert!(is_plainly_clean("") == first_broken_rule("").is_none());
    }

    /// A hundred objects aliased 2,000 directories deep: each directory was copied and hashed on
    /// its own (400 MB and 0.6 s for a hundred; a thousand took the provider into the OOM
    /// killer).
    #[test]
    fn deep_paths_cost_their_length() -> Result<()> {
        let deep = ["d"; 2000].join("/");
        let mut plan = FilePlan::new();
        let started = std::time::Instant::now();
        for i in 0..1000 {
            plan.add(&format!("o{i}"), format!("x{i}/{deep}/f"), FileMode::DEFAULT)?;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
        assert!(plan.add("clash", format!("x7/{deep}"), FileMode::DEFAULT).is_err());
        assert!(plan.add("clash", format!("x7/{deep}/f/g"), FileMode::DEFAULT).is_err());
        assert_eq!(plan.add("again", format!("x7/{deep}/f"), FileMode::DEFAULT), Ok(()), "the last one wins");
        Ok(())
    }

    #[test]
    fn a_file_that_is_not_written_is_no_directory_in_the_way() -> Result<()> {
        let read_only = FileShape { write_file: false, ..FileShape::PLAIN };
        let mut plan = FilePlan::new();
        plan.add_shaped("db", "app/db", FileMode::DEFAULT, read_only)?;
        plan.add("db", "app/db/password", FileMode::DEFAULT)?;
        assert!(
            plan.add("other", "app/db/password/x", FileMode::DEFAULT).is_err(),
            "written files still collide"
        );
        Ok(())
    }

    #[test]
    fn traversal_error_keeps_upstream_words() {
        let error = check_file_path("a/../b").err().map(|e| e.to_string()).unwrap_or_default();
        assert!(error.contains("path can not contain ../"), "{error}");
    }

    #[test]
    fn slashes_translate() {
        assert_eq!(translate_slashes("prod/db/password", '_'), "prod_db_password");
        assert_eq!(translate_slashes("plain", '_'), "plain");
    }

    #[test]
    fn plan_lets_the_last_duplicate_win_and_refuses_dir_clashes_naming_objects() {
        let mut plan = FilePlan::new();
        assert_eq!(plan.add("one", "a", FileMode::DEFAULT), Ok(()));
        assert_eq!(plan.add("two", "b/0", FileMode::DEFAULT), Ok(()));
        let mode = FileMode::new(0o600).unwrap_or_default();
        assert_eq!(plan.add("three", "a", mode), Ok(()), "a duplicate is mounted, as upstream");
        let a = plan.files().iter().find(|f| f.path == "a");
        assert_eq!(a.map(|f| (f.object.as_str(), f.mode)), Some(("three", mode)), "the last one wins");
        let warning = plan.warnings().first().map(ToString::to_string).unwrap_or_default();
        assert!(
            warning.contains(r#"object "three""#) && warning.contains(r#"objects "one" and "three""#),
            "{warning}"
        );
        let clash = plan.add("four", "b", FileMode::DEFAULT).err();
        assert!(clash.is_some_and(|e| e.message().contains("collide")));
        let clash = plan.add("five", "a/x", FileMode::DEFAULT).err();
        assert!(clash.is_some_and(|e| e.message().contains("collide")));
        let bad = plan.add("six", "../etc", FileMode::DEFAULT).err();
        assert_eq!(bad.as_ref().and_then(Error::object), Some("six"));
        assert_eq!(plan.len(), 2);
        // prefix that is not a directory boundary is fine
        assert_eq!(plan.add("seven", "ab", FileMode::DEFAULT), Ok(()));
    }

    #[test]
    fn secret_bytes_debug_hides_content() {
        let bytes = SecretBytes::new(b"hunter2".to_vec());
        assert_eq!(format!("{bytes:?}"), "SecretBytes([REDACTED 7 bytes])");
        assert_eq!(bytes.expose(), b"hunter2");
    }
}
