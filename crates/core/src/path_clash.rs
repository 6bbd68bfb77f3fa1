//! Which paths of a mount cannot be written together: one that is a directory of another
//! (`a` and `a/b`), and, where asked, one path twice.
//!
//! Every mount asks this of its files (the shaped files against the others, and the whole
//! answer before it goes out), so a mount of a handful of files compares them pair by pair,
//! allocating nothing and hashing nothing, and only a long list (a folder, `expandKeys`) goes
//! through hash sets, which keep it linear in the paths' lengths.

use std::collections::HashSet;

/// Lists at most this long are compared pair by pair (at most 496 comparisons).
const PAIRWISE_AT_MOST: usize = 32;

/// Whether a path must not be written with another: one is the other's directory, or (with
/// `same_clashes`) they are the same path.
fn clash(a: &str, b: &str, same_clashes: bool) -> bool {
    (same_clashes && a == b) || is_parent(a, b) || is_parent(b, a)
}

/// Two paths that clash: `earlier` comes before `later` in the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Clash {
    pub earlier: usize,
    pub later: usize,
}

/// The first path of `paths[from..]` that clashes with a path before it, and the first path it
/// clashes with. Paths before `from` are not checked against each other.
pub(crate) fn first_clash(paths: &[&str], from: usize, same_clashes: bool) -> Option<Clash> {
    let earliest = |later: usize| {
        (0..later)
            .find(|&earlier| clash(paths[earlier], paths[later], same_clashes))
            .map(|earlier| Clash { earlier, later })
    };
    if paths.len() <= PAIRWISE_AT_MOST {
        return (from..paths.len()).find_map(earliest);
    }
    let mut seen: HashSet<&str> = HashSet::with_capacity(paths.len());
    let mut directories: HashSet<&str> = HashSet::new();
    for (at, &path) in paths.iter().enumerate() {
        let clashes = at >= from
            && ((same_clashes && seen.contains(path))
                || directories.contains(path)
                || directories_of(path).any(|directory| seen.contains(directory)));
        if clashes {
            // Found in linear time; which earlier path it is, only on this error path.
            return earliest(at);
        }
        seen.insert(path);
        directories.extend(directories_of(path));
    }
    None
}

/// Whether `path` lies inside directory `dir`.
pub(crate) fn is_parent(dir: &str, path: &str) -> bool {
    path.strip_prefix(dir).is_some_and(|rest| rest.starts_with('/'))
}

/// The directories `path` lies in, innermost last: `a/b/c` gives `a`, `a/b`.
pub(crate) fn directories_of(path: &str) -> impl Iterator<Item = &str> {
    path.match_indices('/').map(move |(at, _)| &path[..at])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every earlier path against every later one: what `first_clash` must find, at any length.
    fn by_every_pair(paths: &[&str], from: usize, same_clashes: bool) -> Option<Clash> {
        (from..paths.len()).find_map(|later| {
            (0..later)
                .find(|&earlier| clash(paths[earlier], paths[later], same_clashes))
                .map(|earlier| Clash { earlier, later })
        })
    }

    #[test]
    fn short_and_long_lists_find_the_same_first_clash() {
        let names: Vec<String> = (0..200).map(|i| format!("dir-{}/file-{i}", i % 7)).collect();
        let mut paths: Vec<&str> = names.iter().map(String::as_str).collect();
        for (from, same) in [(0, true), (0, false), (50, true)] {
            assert_eq!(first_clash(&paths, from, same), None);
        }
        paths.insert(150, "dir-3/file-3/inner");
        paths.insert(170, "dir-5");
        paths.insert(180, "dir-4/file-4");
        for (from, same) in [(0, true), (0, false), (160, true), (175, true), (175, false), (190, true)] {
            let expected = by_every_pair(&paths, from, same);
            assert_eq!(first_clash(&paths, from, same), expected, "from {from}, same {same}");
            assert_eq!(
                first_clash(&paths[..30], from.min(30), same),
                by_every_pair(&paths[..30], from.min(30), same)
            );
        }
        assert_eq!(first_clash(&paths, 0, true), Some(Clash { earlier: 3, later: 150 }));
        assert_eq!(first_clash(&paths, 171, true), Some(Clash { earlier: 170, later: 175 }));
        paths.remove(170);
        assert_eq!(first_clash(&paths, 160, true), Some(Clash { earlier: 4, later: 179 }));
        assert_eq!(first_clash(&paths, 160, false), None, "the same path twice, allowed");
    }

    #[test]
    fn a_prefix_that_is_not_a_directory_is_no_clash() {
        assert_eq!(first_clash(&["ab", "a", "a-b/c", "a.b"], 0, true), None);
        assert_eq!(first_clash(&["a/b", "a"], 0, false), Some(Clash { earlier: 0, later: 1 }));
        assert_eq!(first_clash(&["x", "a/b", "a"], 2, false), Some(Clash { earlier: 1, later: 2 }));
    }
}
