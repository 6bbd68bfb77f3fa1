//! The Azure provider's own unit tests (`pkg/provider/provider_test.go`,
//! `pkg/provider/types/parameters_test.go`), replayed as a user's SecretProviderClasses through
//! our socket against the Key Vault + Azure AD test server: `TestGetLatestNKeyVaultObjects`, the
//! identity-binding and mutual-exclusivity tests, `TestGetCertificate*`, `TestGetSecret*`,
//! `TestFetchCertChain*`, `TestSplitCertAndKey` and the parameter tests (tenant id precedence,
//! trimmed values, file permissions). Our cases and words; upstream's expectations, except where
//! docs/azure.md lists a deliberate difference.
#![cfg(feature = "azure")]

use csi_secrets_provider_server::proto::MountResponse;
use csi_secrets_provider_tests::azure::{CertificateSecret, TestChain, chain_with_key_ids, pem_text, pfx_of};
use csi_secrets_provider_tests::file_contents as file;
use csi_secrets_provider_tests::worlds::{AZURE_CLIENT, AZURE_VAULT as VAULT, AzureWorld, BoxError};
use tonic::Code;

type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

fn versions(response: &MountResponse) -> Vec<(String, String)> {
    response.object_version.iter().map(|v| (v.id.clone(), v.version.clone())).collect()
}

/// The certificates of a PEM file, as DER, in file order.
fn certificates(pem_text: &[u8]) -> Result<Vec<Vec<u8>>, BoxError> {
    Ok(pem::parse_many(pem_text)?
        .into_iter()
        .filter(|block| block.tag() == "CERTIFICATE")
        .map(|block| block.contents().to_vec())
        .collect())
}

/// Every ordering of `items`.
fn permutations<T: Clone>(items: &[T]) -> Vec<Vec<T>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut all = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let mut rest = items.to_vec();
        rest.remove(index);
        for mut tail in permutations(&rest) {
            tail.insert(0, item.clone());
            all.push(tail);
        }
    }
    all
}

/// `TestGetLatestNKeyVaultObjects`: files `<name>/<index>` (no alias), newest first whatever
/// order Key Vault lists them in; fewer versions than asked writes them all; an `objectVersion`
/// starts the history there. Disabled versions are left out (covered in `azure.rs`).
#[tokio::test(flavor = "multi_thread")]
async fn latest_n_versions_by_creation_date() -> TestResult {
    let world = AzureWorld::start(BINARY, &[]).await?;
    let ids: Vec<String> =
        ["a", "b", "c", "d", "e"].iter().map(|v| world.azure.set_secret(VAULT, "secret1", v)).collect();
    let five = world
        .mount(&["objectName: secret1\nobjectType: secret\nobjectVersion: latest\nobjectVersionHistory: 5"])
        .await?;
    let files: Vec<(&str, &[u8])> =
        five.files.iter().map(|f| (f.path.as_str(), f.contents.as_slice())).collect();
    assert_eq!(
        files,
        [
            ("secret1/0", &b"e"[..]),
            ("secret1/1", b"d"),
            ("secret1/2", b"c"),
            ("secret1/3", b"b"),
            ("secret1/4", b"a")
        ]
    );
    let newest_first: Vec<(String, String)> =
        ids.iter().rev().enumerate().map(|(i, id)| (format!("secret/secret1/{i}"), id.clone())).collect();
    assert_eq!(versions(&five), newest_first);

    let two = world.mount(&["objectName: secret1\nobjectType: secret\nobjectVersionHistory: 2"]).await?;
    assert_eq!((file(&two, "secret1/0")?, file(&two, "secret1/1")?), (&b"e"[..], &b"d"[..]));
    assert_eq!(two.files.len(), 2);

    let all = world.mount(&["objectName: secret1\nobjectType: secret\nobjectVersionHistory: 200"]).await?;
    assert_eq!(all.files.len(), 5, "fewer versions than asked: all of them");

    let from_c = format!(
        "objectName: secret1\nobjectType: secret\nobjectVersion: {}\nobjectVersionHistory: 5",
        ids[2]
    );
    let from_c = world.mount(&[from_c.as_str()]).await?;
    let contents: Vec<&[u8]> = from_c.files.iter().map(|f| f.contents.as_slice()).collect();
    assert_eq!(contents, [&b"c"[..], b"b", b"a"], "starts at objectVersion, then older ones");
    Ok(())
}

/// The identity-binding tests (`useAzureTokenProxy`) and `TestGetSecretsStoreObjectContent_MutualExclusivity`:
/// each refused before any call, in upstream's words.
#[tokio::test(flavor = "multi_thread")]
async fn identity_binding_needs_a_client_id_tokens_and_one_identity_mode() -> TestResult {
    let world = AzureWorld::start(BINARY, &[]).await?;
    let object = "objectName: secret1\nobjectType: secret";
    let cases: [(&[(&str, &str)], &str); 3] = [
        (&[("useAzureTokenProxy", "true"), ("clientID", "")], "clientID is required"),
        (&[("useAzureTokenProxy", "invalid-value")], "failed to parse useAzureTokenProxy"),
        (&[("useAzureTokenProxy", "true"), ("usePodIdentity", "true")], "only one identity mode"),
    ];
    for (extra, words) in cases {
        let status = world.mount_as("workload-sa", &[object], extra).await.err().ok_or(words)?;
        assert_eq!(status.code(), Code::InvalidArgument, "{words}: {status:?}");
        assert!(status.message().contains(words), "{words}: {}", status.message());
    }
    // No service account tokens at all (a CSIDriver without tokenRequests).
    let objects = csi_secrets_provider_tests::worlds::azure_objects(&[object]);
    let attributes = csi_secrets_provider_tests::pod_attributes(&[
        ("useAzureTokenProxy", "true"),
        ("clientID", AZURE_CLIENT),
        ("keyvaultName", VAULT),
        ("tenantId", csi_secrets_provider_tests::worlds::AZURE_TENANT),
        ("objects", objects.as_str()),
        ("csi.storage.k8s.io/pod.namespace", "default"),
    ]);
    let status = csi_secrets_provider_tests::DriverClient::new(&world.provider.socket("azure"))
        .mount_raw(attributes.to_string(), "null".to_owned(), "420".to_owned())
        .await
        .err()
        .ok_or("no tokens")?;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("service account tokens are required for identity binding"),
        "{}",
        status.message()
    );
    assert!(
        world.azure.vault_requests().is_empty() && world.azure.token_requests().is_empty(),
        "no call made"
    );
    Ok(())
}

/// `TestFetchCertChain` and `TestDecodePKCS12` (several certificates in one PFX): a certificate
/// whose PFX holds root, intermediate and leaf in any of the six orders is written key first,
/// then leaf → intermediate → root; the `cert` object is the leaf. A PEM-stored certificate is
/// written as stored, as upstream does (it orders only what it decodes from a PFX).
/// `TestSplitCertAndKey` (`--write-cert-and-key-in-separate-files`): `.crt` holds the
/// certificates as the main file has them, `.key` the key.
#[tokio::test(flavor = "multi_thread")]
async fn pfx_chains_in_any_order_are_written_leaf_first_and_split() -> TestResult {
    let world = AzureWorld::start(BINARY, &["--write-cert-and-key-in-separate-files"]).await?;
    let chain = TestChain::new()?;
    let ordered = [chain.leaf.clone(), chain.intermediate.clone(), chain.root.clone()];
    for (index, order) in permutations(&[0usize, 1, 2]).into_iter().enumerate() {
        let name = format!("tls{index}");
        let pfx = chain.pfx([order[0], order[1], order[2]])?;
        world.azure.import_certificate(VAULT, &name, &chain.leaf, CertificateSecret::Pfx(pfx));
        let secret = format!("objectName: {name}\nobjectType: secret\nobjectAlias: bundle");
        let cert = format!("objectName: {name}\nobjectType: cert\nobjectAlias: leaf");
        let response = world.mount(&[secret.as_str(), cert.as_str()]).await?;
        assert_eq!(certificates(file(&response, "bundle")?)?, ordered, "stored order {order:?}");
        let blocks = pem::parse_many(file(&response, "bundle")?)?;
        assert_eq!(
            (blocks[0].tag(), blocks[0].contents()),
            ("PRIVATE KEY", chain.leaf_key.as_slice()),
            "key first"
        );
        assert_eq!(certificates(file(&response, "leaf")?)?, std::slice::from_ref(&chain.leaf));
        assert_eq!(certificates(file(&response, "bundle.crt")?)?, ordered);
        let key = pem::parse_many(file(&response, "bundle.key")?)?;
        let key: Vec<(&str, &[u8])> = key.iter().map(|b| (b.tag(), b.contents())).collect();
        assert_eq!(key, [("PRIVATE KEY", chain.leaf_key.as_slice())]);
    }
    // Stored as PEM, root first and the key last (upstream's split case): as stored, split.
    let stored = pem_text(None, &[&chain.root, &chain.intermediate, &chain.leaf])
        + &pem_text(Some(&chain.leaf_key), &[]);
    world.azure.import_certificate(VAULT, "stored", &chain.leaf, CertificateSecret::Pem(stored.clone()));
    let response = world.mount(&["objectName: stored\nobjectType: secret"]).await?;
    assert_eq!(file(&response, "stored")?, stored.as_bytes());
    let stored_order = [chain.root.clone(), chain.intermediate.clone(), chain.leaf.clone()];
    assert_eq!(certificates(file(&response, "stored.crt")?)?, stored_order);
    assert_eq!(pem::parse_many(file(&response, "stored.key")?)?.len(), 1);
    Ok(())
}

/// `TestFetchCertChainWithLeafMissingSKI`: two intermediates, issuers named by authority key
/// identifiers, a leaf without a subject key identifier; every one of the 24 orders in the PFX
/// (12 upstream) is written leaf → intermediate 2 → intermediate 1 → root.
/// `TestFetchCertChainWarning`: a chain missing its intermediate keeps the stored order, and the
/// log says so in upstream's words.
#[tokio::test(flavor = "multi_thread")]
async fn chains_by_key_identifier_and_incomplete_chains() -> TestResult {
    let world = AzureWorld::start(BINARY, &[]).await?;
    let (ordered, key) = chain_with_key_ids(2)?;
    for (index, order) in permutations(&[0usize, 1, 2, 3]).into_iter().enumerate() {
        let name = format!("long{index}");
        let stored: Vec<&[u8]> = order.iter().map(|&i| ordered[i].as_slice()).collect();
        world.azure.import_certificate(
            VAULT,
            &name,
            &ordered[0],
            CertificateSecret::Pfx(pfx_of(&key, &stored)?),
        );
        let object = format!("objectName: {name}\nobjectType: secret");
        let response = world.mount(&[object.as_str()]).await?;
        assert_eq!(certificates(file(&response, &name)?)?, ordered, "stored order {order:?}");
    }

    let stored = [ordered[0].as_slice(), ordered[3].as_slice()];
    world.azure.import_certificate(
        VAULT,
        "partial",
        &ordered[0],
        CertificateSecret::Pfx(pfx_of(&key, &stored)?),
    );
    let response = world.mount(&["objectName: partial\nobjectType: secret"]).await?;
    assert_eq!(certificates(file(&response, "partial")?)?, [ordered[0].clone(), ordered[3].clone()]);
    let log = world.provider.log_text();
    assert!(
        log.contains("certificate chain is not complete due to missing intermediate/root certificates in the cert from key vault"),
        "{log}"
    );
    Ok(())
}

/// `TestGetCertificateError` and `TestGetSecretError`: a certificate without its DER and a
/// certificate's secret that is not a PFX fail the mount, naming the object, and write nothing.
#[tokio::test(flavor = "multi_thread")]
async fn broken_certificates_fail_the_mount_naming_the_object() -> TestResult {
    let world = AzureWorld::start(BINARY, &[]).await?;
    let chain = TestChain::new()?;
    world.azure.import_certificate(VAULT, "nocer", &chain.leaf, CertificateSecret::Pem(chain.pem([0, 1, 2])));
    let id = format!("https://{VAULT}.vault.azure.net/certificates/nocer/0123");
    world.azure.garble("/certificates/nocer", 10, &serde_json::json!({ "id": id }).to_string());
    let status = world.mount(&["objectName: nocer\nobjectType: cert"]).await.err().ok_or("no DER")?;
    assert!(
        status.message().contains("objectName:nocer") && status.message().contains("without its DER"),
        "{}",
        status.message()
    );

    world.azure.import_certificate(
        VAULT,
        "badpfx",
        &chain.leaf,
        CertificateSecret::Pfx(b"not a pfx".to_vec()),
    );
    let status = world.mount(&["objectName: badpfx\nobjectType: secret"]).await.err().ok_or("bad pfx")?;
    assert!(status.message().contains("objectName:badpfx"), "{}", status.message());
    assert!(
        status.message().to_lowercase().contains("pfx") || status.message().contains("PKCS"),
        "{}",
        status.message()
    );
    Ok(())
}

/// `parameters_test.go`: `tenantID` wins over the older `tenantId`; values are trimmed;
/// `usePodIdentity`/`useVMManagedIdentity` take Go's booleans (`True`, `FALSE`, ` true `);
/// `filePermission` is an octal mode, empty meaning the driver's default, anything else refused.
#[tokio::test(flavor = "multi_thread")]
async fn parameters_as_upstream_reads_them() -> TestResult {
    let world = AzureWorld::start(BINARY, &[]).await?;
    world.azure.set_secret(VAULT, "db", "v");
    let object = "objectName: db\nobjectType: secret";
    // The right tenant under tenantID, a wrong one under tenantId: tenantID is used.
    let tenant = csi_secrets_provider_tests::worlds::AZURE_TENANT;
    let padded_tenant = format!(" {tenant} ");
    let padded_vault = format!(" {VAULT} ");
    world
        .mount_as(
            "workload-sa",
            &[object],
            &[
                ("tenantID", padded_tenant.as_str()),
                ("tenantId", "wrong-tenant"),
                ("keyvaultName", padded_vault.as_str()),
            ],
        )
        .await?;
    for value in ["False", "FALSE", " false ", "0", "f"] {
        world
            .mount_as("workload-sa", &[object], &[("usePodIdentity", value), ("useVMManagedIdentity", value)])
            .await?;
    }
    let status =
        world.mount_as("workload-sa", &[object], &[("usePodIdentity", "tru")]).await.err().ok_or("tru")?;
    assert!(status.message().contains("failed to parse usePodIdentity"), "{}", status.message());

    for (permission, mode) in [("\"0600\"", 0o600), ("\"\"", 0o644)] {
        let with_mode = format!("{object}\nfilePermission: {permission}");
        let response = world.mount(&[with_mode.as_str()]).await?;
        assert_eq!(response.files[0].mode, mode, "{permission}");
    }
    for bad in ["abcd", "0900"] {
        let with_mode = format!("{object}\nfilePermission: \"{bad}\"");
        let status = world.mount(&[with_mode.as_str()]).await.err().ok_or(bad)?;
        assert_eq!(status.code(), Code::InvalidArgument, "{bad}: {status:?}");
        assert!(status.message().contains("filePermission"), "{bad}: {}", status.message());
    }
    Ok(())
}
