//! The `files` of the examples (docs/shaping-files.md shows them) render what the page says,
//! from values shaped like the ones the examples' comments describe.

use csi_secrets_provider_core::shaping::{Decoding, FileShape, FilesSpec, shape};
use csi_secrets_provider_core::spc::{Document, parse_documents};
use csi_secrets_provider_core::{FileMode, MountResponse, MountedFile, ObjectVersion};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn files_of(example: &str) -> Result<FilesSpec, Box<dyn std::error::Error>> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples").join(example);
    let documents = parse_documents(&std::fs::read_to_string(path)?)?;
    for document in documents {
        if let Document::SecretProviderClass { spc, .. } = document {
            return FilesSpec::parse(spc.parameters.get("files")).map_err(|e| format!("{e:?}").into());
        }
    }
    Err("no SecretProviderClass".into())
}

fn mount(
    files: &[(&str, &[u8], FileShape)],
    spec: &FilesSpec,
) -> Result<MountResponse, Box<dyn std::error::Error>> {
    let mut response = MountResponse {
        files: files
            .iter()
            .map(|(path, value, shape)| {
                MountedFile::new(*path, FileMode::DEFAULT, value.to_vec()).shaped(path, *shape)
            })
            .collect(),
        versions: files.iter().map(|(path, _, _)| ObjectVersion::new(*path, "1")).collect(),
        ..MountResponse::default()
    };
    shape(&mut response, spec, FileMode::DEFAULT, 1 << 22)?;
    Ok(response)
}

fn text(response: &MountResponse, path: &str) -> String {
    response
        .files
        .iter()
        .find(|f| f.path == path)
        .map(|f| String::from_utf8_lossy(f.contents.expose()).into_owned())
        .unwrap_or_else(|| format!("<no {path}>"))
}

const HIDDEN: FileShape = FileShape { write_file: false, expand_keys: false, decode: None };

#[test]
fn aws_dotenv_dsn_and_properties() -> TestResult {
    let spec = files_of("aws-files-dotenv-dsn-properties.yaml")?;
    let response = mount(
        &[
            ("db-creds", br#"{"username": "app", "password": "p@ss/w rd", "host": "db.internal"}"#, HIDDEN),
            ("settings.json", br#"{"API_KEY": "k-1", "LOG_LEVEL": "info"}"#, FileShape::PLAIN),
        ],
        &spec,
    )?;
    assert_eq!(text(&response, "app.env"), "API_KEY='k-1'\nLOG_LEVEL='info'\n");
    assert_eq!(text(&response, "dsn"), "postgres://app:p%40ss%2Fw%20rd@db.internal:5432/app");
    assert_eq!(
        text(&response, "application.properties"),
        "username=app\npassword=p@ss/w rd\nhost=db.internal\nAPI_KEY=k-1\nLOG_LEVEL=info\n"
    );
    assert!(response.files.iter().all(|f| f.path != "db-creds"));
    Ok(())
}

#[test]
fn azure_dockerconfigjson_and_bundle() -> TestResult {
    let spec = files_of("azure-files-dockerconfig-bundle.yaml")?;
    let response = mount(
        &[
            (
                "registry",
                br#"{"server": "registry.example.com", "username": "bot", "password": "pw"}"#,
                HIDDEN,
            ),
            ("tls.pem", b"-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n", FileShape::PLAIN),
            ("internal-ca", b"-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n", HIDDEN),
            ("keystore.jks", b"/u3+7Q==", FileShape::decoded(Some(Decoding::Base64))),
        ],
        &spec,
    )?;
    let config: serde_json::Value = serde_json::from_str(&text(&response, ".dockerconfigjson"))?;
    assert_eq!(
        config,
        serde_json::json!({"auths": {"registry.example.com": {"username": "bot", "password": "pw", "auth": "Ym90OnB3"}}})
    );
    assert_eq!(
        text(&response, "bundle.pem"),
        "-----BEGIN CERTIFICATE-----\nLEAF\n-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n"
    );
    let keystore =
        response.files.iter().find(|f| f.path == "keystore.jks").map(|f| f.contents.expose().to_vec());
    assert_eq!(keystore, Some(vec![0xfe, 0xed, 0xfe, 0xed]), "the JKS magic, decoded");
    Ok(())
}

#[test]
fn gcp_every_key_as_a_file_and_merged_yaml() -> TestResult {
    let spec = files_of("gcp-files-expand-keys.yaml")?;
    let expand_hidden = FileShape { write_file: false, expand_keys: true, decode: None };
    let response = mount(
        &[
            ("config.json", br#"{"DB_USER": "app", "DB_PASSWORD": "pw"}"#, expand_hidden),
            ("flags.json", br#"{"beta": true}"#, HIDDEN),
            ("client.p12", b"MIIK", FileShape::decoded(Some(Decoding::Base64))),
        ],
        &spec,
    )?;
    let mut paths: Vec<&str> = response.files.iter().map(|f| f.path.as_str()).collect();
    paths.sort_unstable();
    assert_eq!(paths, ["DB_PASSWORD", "DB_USER", "client.p12", "settings.yaml"]);
    assert_eq!(text(&response, "DB_PASSWORD"), "pw");
    assert_eq!(text(&response, "settings.yaml"), "DB_USER: app\nDB_PASSWORD: pw\nbeta: true\n");
    Ok(())
}
