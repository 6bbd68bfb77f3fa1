//! The Secrets Store CSI Driver's rules for a file path in a Mount answer, as its code states
//! them (v1.6.1 `pkg/util/fileutil`: `Validate`, the atomic writer's `validatePath`, Go's
//! `filepath.Clean`). Plain `std` and nothing of this project, so the backends' property tests
//! can include it by path (`#[path]`) as an oracle that does not share the code it checks.

const MAX_FILE_NAME_LENGTH: usize = 255;
const MAX_PATH_LENGTH: usize = 4096;

/// Whether the driver writes a file at `path`: `validatePath`, and `filepath.Clean` leaving it
/// unchanged (`Validate`); the driver's words when not.
pub fn driver_accepts(path: &str) -> Result<(), String> {
    validate_path(path)?;
    if clean(path) != path {
        return Err(format!("invalid filepath: {path:?}"));
    }
    Ok(())
}

/// The atomic writer's `validatePath`.
pub fn validate_path(path: &str) -> Result<(), String> {
    let invalid = |why: String| Err(why);
    if path.is_empty() {
        return invalid(format!("invalid path: must not be empty: {path:?}"));
    }
    if path.starts_with('/') {
        return invalid(format!("invalid path: must be relative path: {path}"));
    }
    if path.len() > MAX_PATH_LENGTH {
        return invalid(format!("invalid path: must be less than or equal to {MAX_PATH_LENGTH} characters"));
    }
    let items: Vec<&str> = path.split('/').collect();
    for item in &items {
        if *item == ".." {
            return invalid(format!("invalid path: must not contain '..': {path}"));
        }
        if item.len() > MAX_FILE_NAME_LENGTH {
            return invalid(format!(
                "invalid path: filenames must be less than or equal to {MAX_FILE_NAME_LENGTH} characters"
            ));
        }
    }
    if items[0].starts_with("..") && items[0].len() > 2 {
        return invalid(format!("invalid path: must not start with '..': {path}"));
    }
    Ok(())
}

/// Go's `filepath.Clean` on Unix: the shortest lexically equal path.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".to_owned();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if rooted => {}
                _ => parts.push(".."),
            },
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}
