//! Conformance of whole folders (`objectPrefix`, GCP `resourcePrefix`): every cloud backend
//! selects what its store holds under a prefix, one file per secret under the entry's
//! directory, each its own object version; a later mount sees a secret added; the cap, an empty
//! folder and an optional empty folder answer alike everywhere.

use tonic::Code;

use crate::conformance::{BoxError, Capabilities, Fixture, contents, ensure};

/// A fresh folder prefix with `members` stored under it, or `None` for a backend without
/// folders, once it is checked that the backend says so (its fixture makes no folder
/// parameters).
async fn folder_with(
    fixture: &dyn Fixture,
    capabilities: &Capabilities,
    members: &[&str],
) -> Result<Option<String>, BoxError> {
    if !capabilities.folders {
        ensure(fixture.folder("x-", None, "").is_none(), || {
            "the capabilities say no folders, but the fixture makes folder parameters".to_owned()
        })?;
        return Ok(None);
    }
    let prefix = format!("{}-", fixture.unique("folder"));
    for member in members {
        fixture.put(&format!("{prefix}{member}"), &format!("value-{member}")).await?;
    }
    Ok(Some(prefix))
}

pub async fn a_folder_mounts_every_secret_under_its_prefix(
    fixture: &dyn Fixture,
    capabilities: &Capabilities,
) -> Result<(), BoxError> {
    let Some(prefix) = &folder_with(fixture, capabilities, &["a", "b"]).await? else { return Ok(()) };
    let parameters = fixture.folder(prefix, Some("dir"), "").ok_or("no folder parameters")?;
    let response = fixture.mount(&parameters).await?;
    let paths = crate::file_paths(&response);
    ensure(paths == ["dir/a", "dir/b"], || format!("files {paths:?}"))?;
    ensure(contents(&response, "dir/a")? == b"value-a", || "the value of dir/a".to_owned())?;
    ensure(response.object_version.len() == 2, || format!("versions {:?}", response.object_version))?;

    fixture.put(&format!("{prefix}c"), "value-c").await?;
    let response = fixture.mount(&parameters).await?;
    ensure(response.files.len() == 3, || {
        format!("a secret added is mounted next time: {:?}", response.files.len())
    })?;
    ensure(contents(&response, "dir/c")? == b"value-c", || "the value of dir/c".to_owned())?;
    Ok(())
}

pub async fn folder_bounds_are_the_same_everywhere(
    fixture: &dyn Fixture,
    capabilities: &Capabilities,
) -> Result<(), BoxError> {
    let Some(prefix) = &folder_with(fixture, capabilities, &["a", "b", "c"]).await? else { return Ok(()) };
    let capped = fixture.folder(prefix, None, "maxObjects: 2").ok_or("no folder parameters")?;
    let status = fixture.mount(&capped).await.err().ok_or("more than maxObjects must fail")?;
    ensure(
        status.code() == Code::InvalidArgument
            && status.message().contains("selects 3 secrets, more than maxObjects (2)"),
        || format!("{status:?}"),
    )?;

    let empty = format!("{}-", fixture.unique("empty"));
    let required = fixture.folder(&empty, None, "").ok_or("no folder parameters")?;
    let status = fixture.mount(&required).await.err().ok_or("an empty folder must fail")?;
    ensure(status.code() == Code::NotFound && status.message().contains("selects no secret"), || {
        format!("{status:?}")
    })?;
    let optional = fixture.folder(&empty, None, "optional: true").ok_or("no folder parameters")?;
    let response = fixture.mount(&optional).await?;
    ensure(
        response.files.len() == 1 && response.files[0].path == csi_secrets_provider_server::NO_FILES_MARKER,
        || {
            "an optional empty folder writes only the marker that makes the driver replace the files"
                .to_owned()
        },
    )?;
    ensure(
        response.object_version.len() == 1 && response.object_version[0].version.starts_with("skipped"),
        || format!("one version saying it was skipped: {:?}", response.object_version),
    )?;
    Ok(())
}
