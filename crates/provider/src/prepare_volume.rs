//! `prepare-volume`: gives the provider directory to the user `serve` runs as.
//!
//! The chart runs `serve` as UID 0 without any capability, so it can make its sockets only in a
//! directory it owns. Kubelet creates a missing hostPath directory as root, but the GCP
//! provider's manifest and chart chown `/etc/kubernetes/secrets-store-csi-providers` to
//! 1000:1000 (an init container), and a provider that replaces it on that directory cannot
//! replace its stale `gcp.sock`. The chart's `providerVolumeChown` runs this first, as root with
//! CAP_CHOWN only: the directory itself changes owner (not what is in it: a socket left there is
//! removed by `serve`, which owns the directory then).

use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;

/// A numeric user and group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

/// `UID:GID`, both numbers (a scratch image has no user database to look names up in).
pub fn parse_owner(value: &str) -> Result<Owner, String> {
    let (uid, gid) = value.split_once(':').ok_or_else(|| format!("{value:?}: expected UID:GID"))?;
    let number = |part: &str| {
        part.parse::<u32>().map_err(|_| format!("{value:?}: {part:?} is not a numeric user or group id"))
    };
    Ok(Owner { uid: number(uid)?, gid: number(gid)? })
}

/// `prepare-volume --provider-volume DIR --owner UID:GID`.
pub fn run(provider_volume: &std::path::Path, owner: Owner) -> ExitCode {
    match prepare(provider_volume, owner) {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn prepare(dir: &std::path::Path, owner: Owner) -> Result<String, String> {
    let shown = dir.display();
    // Not followed: a link in a hostPath could name any directory of the node.
    let metadata = std::fs::symlink_metadata(dir).map_err(|e| format!("cannot read {shown}: {e}"))?;
    if !metadata.is_dir() {
        return Err(format!("{shown} is not a directory (the provider directory is a hostPath directory)"));
    }
    let before = Owner { uid: metadata.uid(), gid: metadata.gid() };
    if before == owner {
        return Ok(format!("{shown} is already owned by {}:{}", owner.uid, owner.gid));
    }
    std::os::unix::fs::lchown(dir, Some(owner.uid), Some(owner.gid)).map_err(|e| {
        format!(
            "cannot give {shown} (owned by {}:{}) to {}:{}: {e} (needs root with CAP_CHOWN)",
            before.uid, before.gid, owner.uid, owner.gid
        )
    })?;
    Ok(format!("{shown}: owner {}:{} -> {}:{}", before.uid, before.gid, owner.uid, owner.gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_numbers() {
        assert_eq!(parse_owner("1000:1000"), Ok(Owner { uid: 1000, gid: 1000 }));
        assert_eq!(parse_owner("0:65532"), Ok(Owner { uid: 0, gid: 65532 }));
        for bad in ["1000", "root:root", "1:", ":1", "-1:0", "1:2:3"] {
            assert!(parse_owner(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_link_or_a_file_is_not_prepared() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("file");
        std::fs::write(&file, "")?;
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(dir.path(), &link)?;
        for path in [&file, &link] {
            let refused = prepare(path, Owner { uid: 0, gid: 0 });
            assert!(refused.is_err_and(|e| e.contains("is not a directory")), "{}", path.display());
        }
        Ok(())
    }
}
