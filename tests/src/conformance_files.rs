//! The conformance checks of shaped files (`files`, `writeFile`, `expandKeys`, `decode`): core's
//! for every backend, so every backend passes the same ones through its socket.

use tonic::Code;

use crate::conformance::{BoxError, Capabilities, Fixture, ObjectRef, contents, ensure};

fn with_files(mut parameters: Vec<(String, String)>, files: &str) -> Vec<(String, String)> {
    parameters.push(("files".to_owned(), files.to_owned()));
    parameters
}

fn text(
    response: &csi_secrets_provider_server::proto::MountResponse,
    file: &str,
) -> Result<String, BoxError> {
    Ok(crate::client::file_text(response, file)?)
}

fn paths(response: &csi_secrets_provider_server::proto::MountResponse) -> Vec<&str> {
    response.files.iter().map(|f| f.path.as_str()).collect()
}

/// A DSN template, dotenv, properties, JSON and YAML from two JSON secrets, one of them read but
/// not written; the versions are the objects'; a new version of a source changes the files.
pub async fn templates_and_formats_build_files_from_objects_and_rotate(
    fixture: &dyn Fixture,
    _: &Capabilities,
) -> Result<(), BoxError> {
    let (db, api) = (fixture.unique("conf-files-db"), fixture.unique("conf-files-api"));
    fixture.put(&db, r#"{"username": "app", "password": "it's $ecret"}"#).await?;
    fixture.put(&api, r#"{"API_KEY": "k-1", "retries": 3}"#).await?;
    let objects =
        [ObjectRef::new(&db, "db-creds").with("writeFile", "false"), ObjectRef::new(&api, "api.json")];
    let files = r#"
- path: dsn
  filePermission: "0400"
  template: 'postgres://{{ (objects["db-creds"] | fromjson).username }}@db/app?key={{ (objects["api.json"] | fromjson).API_KEY }}'
- path: app.env
  format: dotenv
  from: [api.json]
- path: app.properties
  format: properties
  from: [db-creds, api.json]
- path: merged.json
  format: json
  from: [db-creds, api.json]
- path: config/merged.yaml
  format: yaml
  from: [api.json]
"#;
    let parameters = with_files(fixture.parameters(&objects), files);
    let first = fixture.mount(&parameters).await?;
    let mut written = paths(&first);
    written.sort_unstable();
    ensure(
        written == ["api.json", "app.env", "app.properties", "config/merged.yaml", "dsn", "merged.json"],
        || format!("files written: {written:?} (db-creds is read, not written)"),
    )?;
    ensure(text(&first, "dsn")? == "postgres://app@db/app?key=k-1", || "the DSN".into())?;
    ensure(first.files.iter().any(|f| f.path == "dsn" && f.mode == 0o400), || "dsn is 0400".into())?;
    ensure(text(&first, "app.env")? == "API_KEY='k-1'\nretries='3'\n", || "dotenv".into())?;
    ensure(
        text(&first, "app.properties")? == "username=app\npassword=it's $ecret\nAPI_KEY=k-1\nretries=3\n",
        || format!("properties: {:?}", text(&first, "app.properties")),
    )?;
    ensure(
        text(&first, "merged.json")?
            == "{\n  \"username\": \"app\",\n  \"password\": \"it's $ecret\",\n  \"API_KEY\": \"k-1\",\n  \"retries\": 3\n}\n",
        || "json".into(),
    )?;
    ensure(text(&first, "config/merged.yaml")? == "API_KEY: k-1\nretries: 3\n", || "yaml".into())?;
    ensure(first.object_version.len() >= 2, || {
        format!("a version per object read: {:?}", first.object_version)
    })?;

    fixture.put(&api, r#"{"API_KEY": "k-2", "retries": 3}"#).await?;
    let second = fixture.mount(&parameters).await?;
    ensure(text(&second, "dsn")? == "postgres://app@db/app?key=k-2", || "the DSN follows the source".into())?;
    ensure(text(&second, "app.env")? == "API_KEY='k-2'\nretries='3'\n", || "dotenv follows".into())?;
    ensure(second.object_version != first.object_version, || "the source's version changed".into())
}

/// One file per key of a JSON secret (also of one not written), and base64 decoded to bytes.
pub async fn expand_keys_and_decode(fixture: &dyn Fixture, _: &Capabilities) -> Result<(), BoxError> {
    let (creds, keystore) = (fixture.unique("conf-expand"), fixture.unique("conf-decode"));
    fixture.put(&creds, r#"{"user": "u", "nested": {"a": [1, 2]}}"#).await?;
    fixture.put(&keystore, "AAEC/w==").await?;
    let objects = [
        ObjectRef::new(&creds, "creds").with("expandKeys", "true").with("writeFile", "false"),
        ObjectRef::new(&keystore, "keystore.p12").with("decode", "base64"),
    ];
    let response = fixture.mount(&fixture.parameters(&objects)).await?;
    let mut written = paths(&response);
    written.sort_unstable();
    ensure(written == ["keystore.p12", "nested", "user"], || format!("files: {written:?}"))?;
    ensure(contents(&response, "user")? == b"u", || "a string key as it is".into())?;
    ensure(contents(&response, "nested")? == br#"{"a":[1,2]}"#, || "others as JSON text".into())?;
    ensure(contents(&response, "keystore.p12")? == [0u8, 1, 2, 255], || "decoded bytes".into())
}

/// A template that tests for an optional object the store does not have renders; one that
/// uses it without testing fails naming it.
pub async fn a_skipped_optional_object_is_tested_for(
    fixture: &dyn Fixture,
    _: &Capabilities,
) -> Result<(), BoxError> {
    let (present, absent) = (fixture.unique("conf-opt-here"), fixture.unique("conf-opt-gone"));
    fixture.put(&present, "here").await?;
    let objects =
        [ObjectRef::new(&present, "here"), ObjectRef::new(&absent, "gone").with("optional", "true")];
    let tested = "- path: out\n  template: '{{ objects.here }} {{ objects.gone | default(\"none\") }} {% if objects.get(\"gone\") is none %}absent{% endif %}'\n";
    let response = fixture.mount(&with_files(fixture.parameters(&objects), tested)).await?;
    ensure(text(&response, "out")? == "here none absent", || format!("{:?}", text(&response, "out")))?;
    let untested = "- path: out\n  template: 'x{{ objects.gone }}'\n";
    let status = fixture
        .mount(&with_files(fixture.parameters(&objects), untested))
        .await
        .err()
        .ok_or("a template using a skipped object rendered")?;
    ensure(status.code() == Code::InvalidArgument, || format!("{status:?}"))?;
    ensure(
        status.message().contains("files[0].template") && status.message().contains(r#"named "gone""#),
        || format!("names the entry and the object: {}", status.message()),
    )
}

/// Every kind of bad `files` is `InvalidArgument` naming the entry, answered with no file.
pub async fn bad_files_fail_the_mount_and_write_nothing(
    fixture: &dyn Fixture,
    _: &Capabilities,
) -> Result<(), BoxError> {
    let (json, plain) = (fixture.unique("conf-bad-json"), fixture.unique("conf-bad-plain"));
    fixture.put(&json, r#"{"A": "1"}"#).await?;
    fixture.put(&plain, "not json, s3cr3t-value").await?;
    let objects = [ObjectRef::new(&json, "a.json"), ObjectRef::new(&plain, "plain")];
    let before = fixture.cloud_calls().await;
    let cases = [
        ("- path: x\n  template: |\n    ok\n    {{ objects[ }}\n", "line 2", true),
        ("- path: x\n  template: '{{ objects.nothere }}'\n", r#"named "nothere""#, false),
        ("- path: x\n  template: '{{ objects.plain | fromjson }}'\n", "not JSON", false),
        ("- path: x\n  format: dotenv\n  from: [a.json, a2]\n", r#"no object file named "a2""#, false),
        ("- path: x\n  format: json\n  from: [plain]\n", "not JSON", false),
        ("- path: a.json\n  format: json\n  from: [a.json]\n", "collides", false),
        (
            "- path: x\n  template: '{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}'\n",
            "runs too long",
            false,
        ),
    ];
    for (files, expected, before_any_read) in cases {
        let status = fixture
            .mount(&with_files(fixture.parameters(&objects), files))
            .await
            .err()
            .ok_or_else(|| format!("mounted with {files}"))?;
        ensure(status.code() == Code::InvalidArgument, || format!("{files}: {status:?}"))?;
        ensure(status.message().contains("files[0]") && status.message().contains(expected), || {
            format!("{files}: names the entry and says {expected}: {}", status.message())
        })?;
        ensure(!status.message().contains("s3cr3t"), || format!("a value in {}", status.message()))?;
        if before_any_read {
            let after = fixture.cloud_calls().await;
            ensure(after == before, || {
                format!("a template that does not parse cost {} call(s)", after - before)
            })?;
        }
    }
    let status = fixture
        .mount(&fixture.parameters(&[ObjectRef::new(&plain, "ks").with("decode", "base64")]))
        .await
        .err()
        .ok_or("a value that is not base64 was decoded")?;
    ensure(status.code() == Code::InvalidArgument && status.message().contains(&plain), || {
        format!("decode names the object: {status:?}")
    })?;
    ensure(status.message().contains("not base64") && !status.message().contains("s3cr3t"), || {
        format!("says why without the value: {}", status.message())
    })
}
