//! Which paths of a mount cannot be written together: one that is a directory of another
//! (`a` and `a/b`), and, where asked, one path twice.
//!
//! Every mount asks this of its files (the shaped files against the others, and the whole
//! answer before it goes out), so a mount of a handful of files compares them pair by pair,
//! allocating nothing and hashing nothing, and only a long list (a folder, `expandKeys`) is
//! sorted and walked as the tree its paths make (`n log n` comparisons).

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
    if paths.len() <= PAIRWISE_AT_MOST {
        return (from..paths.len()).find_map(|later| {
            (0..later)
                .find(|&earlier| clash(paths[earlier], paths[later], same_clashes))
                .map(|earlier| Clash { earlier, later })
        });
    }
    let earliest = earliest_partners(paths, same_clashes);
    (from..paths.len()).find_map(|later| {
        earliest[later].filter(|&earlier| earlier < later).map(|earlier| Clash { earlier, later })
    })
}

/// For each path, the first path (by index) it clashes with, in `n log n` comparisons and one
/// pass: sorted with `/` before every other byte, a path's descendants follow it at once, so a
/// stack of the current path's ancestors (a walk of the tree the paths make) gives each path
/// its ancestors and, when it is left, its descendants. Hashing every directory of every path
/// instead costs a path's length times its depth: a few hundred paths 4,096 bytes deep took
/// seconds.
fn earliest_partners(paths: &[&str], same_clashes: bool) -> Vec<Option<usize>> {
    fn tree_order(path: &str) -> impl Iterator<Item = u8> + '_ {
        path.bytes().map(|byte| if byte == b'/' { 0 } else { byte })
    }
    let mut order: Vec<usize> = (0..paths.len()).collect();
    order.sort_by(|&a, &b| tree_order(paths[a]).cmp(tree_order(paths[b])).then(a.cmp(&b)));
    // Equal paths side by side: one group each, its first index the smallest.
    let mut groups: Vec<(&str, usize)> = Vec::new();
    let mut group_of = vec![0; paths.len()];
    for &index in &order {
        if groups.last().is_none_or(|&(path, _)| path != paths[index]) {
            groups.push((paths[index], index));
        }
        group_of[index] = groups.len() - 1;
    }
    // Per group: the smallest index among its ancestors, and among its descendants.
    let (mut ancestors, mut descendants) = (vec![usize::MAX; groups.len()], vec![usize::MAX; groups.len()]);
    // (group, smallest index of it and its ancestors, smallest index of its descendants so far)
    let mut stack: Vec<(usize, usize, usize)> = Vec::new();
    let leave = |stack: &mut Vec<(usize, usize, usize)>, descendants: &mut Vec<usize>| {
        if let Some((group, _, below)) = stack.pop() {
            descendants[group] = below;
            if let Some(parent) = stack.last_mut() {
                parent.2 = parent.2.min(below).min(groups[group].1);
            }
        }
    };
    for (group, &(path, first)) in groups.iter().enumerate() {
        while stack.last().is_some_and(|&(top, _, _)| !is_parent(groups[top].0, path)) {
            leave(&mut stack, &mut descendants);
        }
        ancestors[group] = stack.last().map_or(usize::MAX, |&(_, chain, _)| chain);
        stack.push((group, ancestors[group].min(first), usize::MAX));
    }
    while !stack.is_empty() {
        leave(&mut stack, &mut descendants);
    }
    (0..paths.len())
        .map(|index| {
            let group = group_of[index];
            let first = groups[group].1;
            let twin = if same_clashes && first != index { first } else { usize::MAX };
            Some(ancestors[group].min(descendants[group]).min(twin)).filter(|&i| i != usize::MAX)
        })
        .collect()
}

/// Hashes of a path's directories (the text before each `/`) and of the whole path, made in one
/// pass under `keys`: a text hashes the same as a directory of one path and as another whole
/// path. Hashing each directory on its own costs a path's length times its depth (a 4,096-byte
/// path can be 2,048 directories deep).
pub(crate) struct PathHashes {
    pub directories: Vec<u64>,
    pub whole: u64,
}

pub(crate) fn path_hashes(keys: &std::hash::RandomState, path: &str) -> PathHashes {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = keys.build_hasher();
    let mut directories = Vec::new();
    let mut from = 0;
    for (at, _) in path.match_indices('/') {
        hasher.write(&path.as_bytes()[from..at]);
        directories.push(hasher.clone().finish());
        from = at;
    }
    hasher.write(&path.as_bytes()[from..]);
    PathHashes { directories, whole: hasher.finish() }
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
    fn a_directory_hashes_as_the_same_text_whole() {
        let keys = std::hash::RandomState::new();
        let deep = path_hashes(&keys, "a/bc/d");
        let whole: Vec<u64> = ["a", "a/bc"].iter().map(|p| path_hashes(&keys, p).whole).collect();
        assert_eq!(deep.directories, whole);
        assert_ne!(path_hashes(&keys, "a/b").whole, path_hashes(&keys, "ab").whole);
    }

    /// Lists of 33 to 120 random paths over `a`, `b`, `-` and `/` (equal paths, prefixes that
    /// are and are not directories): the walk finds what every pair finds.
    #[test]
    fn the_tree_walk_agrees_with_every_pair() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |below: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % below
        };
        for _ in 0..400 {
            let count = 33 + next(88) as usize;
            let names: Vec<String> = (0..count)
                .map(|_| {
                    let elements = 1 + next(3);
                    (0..elements)
                        .map(|_| {
                            (0..1 + next(2)).map(|_| ['a', 'b', '-'][next(3) as usize]).collect::<String>()
                        })
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .collect();
            let paths: Vec<&str> = names.iter().map(String::as_str).collect();
            for from in [0, count / 2, count - 1] {
                for same in [true, false] {
                    assert_eq!(
                        first_clash(&paths, from, same),
                        by_every_pair(&paths, from, same),
                        "{paths:?}"
                    );
                }
            }
        }
    }

    /// Three hundred paths 4,000 bytes and 2,000 directories deep: hashing every directory of
    /// every path took seconds.
    #[test]
    fn deep_paths_are_checked_quickly() {
        let deep = ["d"; 1999].join("/");
        let names: Vec<String> = (0..300).map(|i| format!("{deep}/f{i}")).collect();
        let mut paths: Vec<&str> = names.iter().map(String::as_str).collect();
        let started = std::time::Instant::now();
        assert_eq!(first_clash(&paths, 0, true), None);
        paths.push(&deep);
        assert_eq!(first_clash(&paths, 0, true), Some(Clash { earlier: 0, later: 300 }));
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[test]
    fn a_prefix_that_is_not_a_directory_is_no_clash() {
        assert_eq!(first_clash(&["ab", "a", "a-b/c", "a.b"], 0, true), None);
        assert_eq!(first_clash(&["a/b", "a"], 0, false), Some(Clash { earlier: 0, later: 1 }));
        assert_eq!(first_clash(&["x", "a/b", "a"], 2, false), Some(Clash { earlier: 1, later: 2 }));
    }
}
