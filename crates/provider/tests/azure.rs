//! The Azure backend end to end: the real binary's `azure.sock`, driven by a driver-shaped
//! client, against the project's Key Vault + Azure AD test server over TLS.
#![cfg(feature = "azure")]

use base64::Engine;
use csi_secrets_provider_server::proto::MountResponse;
use csi_secrets_provider_tests::azure::{CertificateSecret, TestChain};
use csi_secrets_provider_tests::worlds::{
    AZURE_CLIENT as CLIENT, AZURE_TENANT as TENANT, AZURE_VAULT as VAULT, AzureWorld, BoxError,
    azure_objects as seed_parameters,
};
use csi_secrets_provider_tests::{DriverClient, file_contents as file, pod_attributes};
use tonic::Code;

type TestResult = Result<(), BoxError>;

const BINARY: &str = env!("CARGO_BIN_EXE_csi-secrets-provider");

type World = AzureWorld;

async fn world(extra: &[&str]) -> Result<World, BoxError> {
    AzureWorld::start(BINARY, extra).await
}

fn versions(response: &MountResponse) -> Vec<(String, String)> {
    response.object_version.iter().map(|v| (v.id.clone(), v.version.clone())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_blog_spc_end_to_end() -> TestResult {
    let world = world(&[]).await?;
    let version = world.azure.set_secret(VAULT, "sql-password", "Sup3r-S3cret!");
    let response = world
        .mount(&[
            "objectName: sql-password\nobjectType: secret\nobjectVersion: \"\"\nobjectAlias: SQL_PASSWORD",
        ])
        .await?;
    assert_eq!(file(&response, "SQL_PASSWORD")?, b"Sup3r-S3cret!");
    assert_eq!(response.files[0].mode, 0o644);
    assert_eq!(versions(&response), [("secret/sql-password".to_owned(), version)]);
    let requests = world.azure.token_requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].grant, "assertion");
    assert_eq!(requests[0].scope, "https://vault.test/.default", "scope from the Key Vault challenge");
    assert!(!world.provider.log_text().contains("Sup3r-S3cret!"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn version_pin_rotation_and_history() -> TestResult {
    let world = world(&[]).await?;
    let v1 = world.azure.set_secret(VAULT, "db", "one");
    let v2 = world.azure.set_secret(VAULT, "db", "two");
    let pinned = world.mount(&[&format!("objectName: db\nobjectType: secret\nobjectVersion: {v1}")]).await?;
    assert_eq!(file(&pinned, "db")?, b"one");
    assert_eq!(versions(&pinned), [("secret/db".to_owned(), v1.clone())]);

    let latest = world.mount(&["objectName: db\nobjectType: secret"]).await?;
    assert_eq!(file(&latest, "db")?, b"two");
    // Rotation: a new version shows as new content and a new version.
    let v3 = world.azure.set_secret(VAULT, "db", "three");
    let rotated = world.mount(&["objectName: db\nobjectType: secret"]).await?;
    assert_eq!(file(&rotated, "db")?, b"three");
    assert_eq!(versions(&rotated), [("secret/db".to_owned(), v3.clone())]);

    // History: enabled versions only, newest first, N files.
    world.azure.disable_secret_version(VAULT, "db", &v2);
    let history = world
        .mount(&["objectName: db\nobjectType: secret\nobjectAlias: hist\nobjectVersionHistory: 5"])
        .await?;
    assert_eq!(file(&history, "hist/0")?, b"three");
    assert_eq!(file(&history, "hist/1")?, b"one");
    assert_eq!(history.files.len(), 2, "the disabled version is skipped: {:?}", history.files);
    assert_eq!(versions(&history), [("secret/db/0".to_owned(), v3), ("secret/db/1".to_owned(), v1)]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_as_cert_pem_and_pfx() -> TestResult {
    let world = world(&["--write-cert-and-key-in-separate-files"]).await?;
    let chain = TestChain::new()?;
    // Stored root first: the provider must order leaf → intermediate → root.
    let pfx = chain.pfx([2, 0, 1])?;
    world.azure.import_certificate(VAULT, "tls", &chain.leaf, CertificateSecret::Pfx(pfx.clone()));
    let stored_pem = chain.pem([0, 2, 1]);
    world.azure.import_certificate(VAULT, "tls-pem", &chain.leaf, CertificateSecret::Pem(stored_pem.clone()));
    let response = world
        .mount(&[
            "objectName: tls\nobjectType: cert\nobjectAlias: leaf.pem",
            "objectName: tls\nobjectType: secret\nobjectAlias: bundle.pem\nfilePermission: \"0600\"",
            "objectName: tls\nobjectType: secret\nobjectFormat: pfx\nobjectAlias: bundle.pfx.b64",
            "objectName: tls\nobjectType: secret\nobjectFormat: PFX\nobjectEncoding: base64\nobjectAlias: bundle.pfx",
            "objectName: tls-pem\nobjectType: secret\nobjectAlias: stored.pem",
        ])
        .await?;
    let leaf = pem::parse(file(&response, "leaf.pem")?)?;
    assert_eq!((leaf.tag(), leaf.contents()), ("CERTIFICATE", chain.leaf.as_slice()));

    let bundle = pem::parse_many(file(&response, "bundle.pem")?)?;
    let blocks: Vec<(&str, &[u8])> = bundle.iter().map(|b| (b.tag(), b.contents())).collect();
    assert_eq!(
        blocks,
        [
            ("PRIVATE KEY", chain.leaf_key.as_slice()),
            ("CERTIFICATE", chain.leaf.as_slice()),
            ("CERTIFICATE", chain.intermediate.as_slice()),
            ("CERTIFICATE", chain.root.as_slice()),
        ],
        "PKCS#8 key first, then the chain leaf to root"
    );
    assert_eq!(response.files.iter().find(|f| f.path == "bundle.pem").map(|f| f.mode), Some(0o600));
    assert_eq!(pem::parse_many(file(&response, "bundle.pem.crt")?)?.len(), 3);
    assert_eq!(pem::parse(file(&response, "bundle.pem.key")?)?.contents(), chain.leaf_key.as_slice());

    let base64_text = base64::engine::general_purpose::STANDARD.encode(&pfx);
    assert_eq!(
        file(&response, "bundle.pfx.b64")?,
        base64_text.as_bytes(),
        "objectFormat pfx: the stored base64 text"
    );
    assert_eq!(file(&response, "bundle.pfx")?, pfx.as_slice(), "with objectEncoding base64: the PFX bytes");
    assert_eq!(
        file(&response, "stored.pem")?,
        stored_pem.as_bytes(),
        "PEM-stored certificates are written as stored"
    );
    assert!(
        response
            .object_version
            .iter()
            .all(|v| v.id == "cert/tls" || v.id == "secret/tls" || v.id == "secret/tls-pem")
    );
    Ok(())
}

/// docs/shaping-files.md's Azure certificate recipe: a Key Vault certificate read as a secret
/// (its key and chain as PEM) split into `tls.crt`, `tls.key` and `ca.crt` by `pem_certs` and
/// `pem_key`; the same certificate as its PFX (`objectFormat: pfx`, empty password) through
/// `pfx`.
#[tokio::test(flavor = "multi_thread")]
async fn an_azure_certificate_becomes_tls_files() -> TestResult {
    let world = world(&[]).await?;
    let chain = TestChain::new()?;
    world.azure.import_certificate(
        VAULT,
        "app-cert",
        &chain.leaf,
        CertificateSecret::Pfx(chain.pfx([2, 0, 1])?),
    );
    let files = r#"
- path: tls.crt
  template: '{{ objects["app.pem"] | pem_certs }}'
- path: tls.key
  filePermission: "0400"
  template: '{{ objects["app.pem"] | pem_key }}'
- path: ca.crt
  template: '{{ objects["app.pem"] | pem_certs("issuers") }}'
- path: from-pfx/tls.crt
  template: '{% set p = objects["app.pfx"] | pfx %}{{ p.cert }}{{ p.chain }}'
- path: from-pfx/tls.key
  template: '{{ (objects["app.pfx"] | pfx).key }}'
"#;
    let response = world
        .mount_as(
            "workload-sa",
            &[
                "objectName: app-cert\nobjectType: secret\nobjectAlias: app.pem\nwriteFile: false",
                "objectName: app-cert\nobjectType: secret\nobjectFormat: pfx\nobjectAlias: app.pfx\nwriteFile: false",
            ],
            &[("files", files)],
        )
        .await?;
    let pem_of = |der: &[u8]| csi_secrets_provider_core::certs::pem_block("CERTIFICATE", der);
    let full_chain = format!("{}{}{}", pem_of(&chain.leaf), pem_of(&chain.intermediate), pem_of(&chain.root));
    let key = csi_secrets_provider_core::certs::pem_block("PRIVATE KEY", &chain.leaf_key);
    for dir in ["", "from-pfx/"] {
        assert_eq!(String::from_utf8_lossy(file(&response, &format!("{dir}tls.crt"))?), full_chain, "{dir}");
        assert_eq!(String::from_utf8_lossy(file(&response, &format!("{dir}tls.key"))?), key, "{dir}");
    }
    let ca = format!("{}{}", pem_of(&chain.intermediate), pem_of(&chain.root));
    assert_eq!(String::from_utf8_lossy(file(&response, "ca.crt")?), ca);
    assert_eq!(response.files.iter().find(|f| f.path == "tls.key").map(|f| f.mode), Some(0o400));
    assert!(response.files.iter().all(|f| f.path != "app.pem" && f.path != "app.pfx"), "writeFile: false");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn rsa_and_ec_keys_as_pem_that_parse_back() -> TestResult {
    use rcgen::PublicKeyData;
    use x509_parser::prelude::FromDer;
    use x509_parser::public_key::PublicKey;
    let world = world(&[]).await?;
    let b64url = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let rsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)?;
    let rsa_der = rsa.subject_public_key_info();
    let (_, rsa_spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&rsa_der)?;
    let PublicKey::RSA(rsa_key) = rsa_spki.parsed()? else { return Err("not RSA".into()) };
    let modulus = rsa_key.modulus.strip_prefix(&[0]).unwrap_or(rsa_key.modulus);
    world.azure.set_key(
        VAULT,
        "rsa",
        serde_json::json!({ "kty": "RSA-HSM", "n": b64url(modulus), "e": b64url(rsa_key.exponent) }),
    );
    let mut ec_keys = Vec::new();
    for (name, alg, crv) in [
        ("ec256", &rcgen::PKCS_ECDSA_P256_SHA256, "P-256"),
        ("ec384", &rcgen::PKCS_ECDSA_P384_SHA384, "P-384"),
    ] {
        let key = rcgen::KeyPair::generate_for(alg)?;
        let point = key.public_key_raw().to_vec();
        let half = (point.len() - 1) / 2;
        world.azure.set_key(VAULT, name, serde_json::json!({ "kty": "EC", "crv": crv, "x": b64url(&point[1..=half]), "y": b64url(&point[1 + half..]) }));
        ec_keys.push((name, key.subject_public_key_info()));
    }
    let response = world
        .mount(&[
            "objectName: rsa\nobjectType: key",
            "objectName: ec256\nobjectType: key",
            "objectName: ec384\nobjectType: key",
        ])
        .await?;
    let rsa_pem = pem::parse(file(&response, "rsa")?)?;
    assert_eq!(rsa_pem.tag(), "PUBLIC KEY");
    assert_eq!(rsa_pem.contents(), rsa.subject_public_key_info().as_slice(), "the same RSA key, PKIX");
    for (name, der) in ec_keys {
        let parsed = pem::parse(file(&response, name)?)?;
        assert_eq!((parsed.tag(), parsed.contents()), ("PUBLIC KEY", der.as_slice()), "{name}");
    }
    assert!(versions(&response).iter().any(|(id, _)| id == "key/rsa"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn hex_and_base64_encodings() -> TestResult {
    let world = world(&[]).await?;
    world.azure.set_secret(VAULT, "hexed", "00ff41");
    world.azure.set_secret(VAULT, "b64", "AP9B");
    let response = world
        .mount(&[
            "objectName: hexed\nobjectType: secret\nobjectEncoding: hex",
            "objectName: b64\nobjectType: secret\nobjectEncoding: Base64",
        ])
        .await?;
    assert_eq!(file(&response, "hexed")?, [0, 0xff, b'A']);
    assert_eq!(file(&response, "b64")?, [0, 0xff, b'A']);
    Ok(())
}

/// What upstream accepts mounts here too: line-wrapped base64 (Go's decoder skips CR and LF),
/// `filePermission` as Go's base-8 parse reads it, `objectFormat: PFX` on a key or certificate.
#[tokio::test(flavor = "multi_thread")]
async fn upstream_leniencies_mount() -> TestResult {
    let world = world(&[]).await?;
    let bytes: Vec<u8> = (0..=255).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
    let wrapped: Vec<&str> =
        encoded.as_bytes().chunks(76).filter_map(|c| std::str::from_utf8(c).ok()).collect();
    world.azure.set_secret(VAULT, "wrapped", &wrapped.join("\r\n"));
    world.azure.set_secret(VAULT, "plain", "p");
    let chain = TestChain::new()?;
    world.azure.import_certificate(VAULT, "tls", &chain.leaf, CertificateSecret::Pem(chain.pem([0, 1, 2])));
    let response = world
        .mount(&[
            "objectName: wrapped\nobjectType: secret\nobjectEncoding: base64",
            "objectName: plain\nobjectType: secret\nobjectAlias: five-digits\nfilePermission: \"00640\"",
            "objectName: plain\nobjectType: secret\nobjectAlias: zero\nfilePermission: \"0\"",
            "objectName: tls\nobjectType: cert\nobjectFormat: PFX",
            // One file named twice (the last wins, as upstream) and a key upstream ignores.
            "objectName: plain\nobjectType: secret\nobjectAlias: twice",
            "objectName: wrapped\nobjectType: secret\nobjectAlias: twice\nobjectalias: ignored",
        ])
        .await?;
    assert_eq!(file(&response, "wrapped")?, bytes.as_slice());
    assert_eq!(file(&response, "twice")?, wrapped.join("\r\n").as_bytes(), "the last object wins");
    let log = world.provider.log_text();
    assert!(log.contains("unknown key `objectalias` is ignored (did you mean `objectAlias`?)"), "{log}");
    assert!(log.contains("the last one wins"), "{log}");
    let mode = |path: &str| response.files.iter().find(|f| f.path == path).map(|f| f.mode);
    assert_eq!((mode("five-digits"), mode("zero")), (Some(0o640), Some(0)));
    assert!(file(&response, "tls")?.starts_with(b"-----BEGIN CERTIFICATE-----"));

    // Still refused: the exact `pfx` on a certificate (as upstream), and a mode that is not octal
    // (upstream silently writes mode 0).
    for (object, field) in [
        ("objectName: tls\nobjectType: cert\nobjectFormat: pfx", "objectFormat"),
        ("objectName: plain\nobjectType: secret\nfilePermission: \"0o644\"", "filePermission"),
    ] {
        let status = world.mount(&[object]).await.err().ok_or(object)?;
        assert_eq!(status.code(), Code::InvalidArgument, "{object}");
        assert!(status.message().contains(&format!("field \"{field}\"")), "{}", status.message());
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn identity_and_lookup_errors() -> TestResult {
    let world = world(&[]).await?;
    world.azure.set_secret(VAULT, "present", "x");
    let status = world
        .mount_as("wrong-sa", &["objectName: present\nobjectType: secret"], &[])
        .await
        .err()
        .ok_or("wrong SA")?;
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("AADSTS70021"), "{}", status.message());
    assert!(
        status.message().contains("system:serviceaccount:default:wrong-sa"),
        "AAD's words verbatim: {}",
        status.message()
    );
    assert!(status.message().contains("hint: "), "{}", status.message());

    let status = world
        .mount(&["objectName: present\nobjectType: secret", "objectName: no-such-secret\nobjectType: secret"])
        .await
        .err()
        .ok_or("unknown object")?;
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("object \"no-such-secret\""), "{}", status.message());
    assert!(status.message().contains("SecretNotFound"), "{}", status.message());
    assert!(
        status
            .message()
            .contains("failed to get objectType:secret, objectName:no-such-secret, objectVersion:: "),
        "upstream's prefix, which alerts grep for: {}",
        status.message()
    );
    Ok(())
}

/// AKS identity binding as the Azure provider does it: the pod's `api://AKSIdentityBinding`
/// token goes to the cluster's token proxy (TLS server name derived from the API server's
/// certificate), not to Azure AD.
#[tokio::test(flavor = "multi_thread")]
async fn aks_identity_binding_through_the_token_proxy() -> TestResult {
    use csi_secrets_provider_tests::azure::{BINDING_AUDIENCE, BINDING_SNI, service_account_token_for};
    let world = world(&[]).await?;
    world.azure.set_secret(VAULT, "db", "through the proxy");
    let objects = ["objectName: db\nobjectType: secret"];
    let binding_token = serde_json::json!({
        BINDING_AUDIENCE: { "token": service_account_token_for("default", "workload-sa", BINDING_AUDIENCE), "expirationTimestamp": "2099-01-01T00:00:00Z" }
    })
    .to_string();
    let through_proxy = [
        ("useAzureTokenProxy", "true"),
        ("csi.storage.k8s.io/serviceAccount.tokens", binding_token.as_str()),
    ];
    let response = world.mount_as("workload-sa", &objects, &through_proxy).await?;
    assert_eq!(file(&response, "db")?, b"through the proxy");
    let requests = world.azure.token_requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert!(requests[0].via_proxy && requests[0].granted && requests[0].grant == "assertion", "{requests:?}");
    let log = world.provider.log_text();
    assert!(log.contains(BINDING_SNI), "the SNI name was derived from the API server certificate: {log}");

    // Without the binding audience in the CSIDriver's tokenRequests: a clear error, no request.
    let status = world
        .mount_as("workload-sa", &objects, &[("useAzureTokenProxy", "true")])
        .await
        .err()
        .ok_or("no binding token")?;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("token for audience api://AKSIdentityBinding not found"),
        "{}",
        status.message()
    );
    assert_eq!(world.azure.token_requests().len(), 1);
    Ok(())
}

/// AAD pod identity as the Azure provider does it: a token from the node's NMI for the pod,
/// for whatever identity is bound to it (`userAssignedIdentityID` is not read in this mode).
#[tokio::test(flavor = "multi_thread")]
async fn aad_pod_identity_through_nmi() -> TestResult {
    let world = world(&[]).await?;
    world.azure.set_secret(VAULT, "db", "from pod identity");
    world.azure.bind_pod_identity("default", "web-0", TENANT, "pod-identity-app");
    world.azure.restrict(VAULT, "db", &["pod-identity-app"]);
    let seed_spc = [
        ("usePodIdentity", "true"),
        ("userAssignedIdentityID", "ignored-in-this-mode"),
        ("clientID", ""),
        ("csi.storage.k8s.io/pod.name", "web-0"),
    ];
    let objects = ["objectName: db\nobjectType: secret"];
    let pod = csi_secrets_provider_tests::new_target_path();
    let response = world.mount_at(&pod, "no-federation-sa", &objects, &seed_spc).await?;
    assert_eq!(file(&response, "db")?, b"from pod identity");
    assert_eq!(world.azure.nmi_requests(), 1);
    assert!(world.azure.token_requests().is_empty(), "no Azure AD exchange: NMI gave the token");
    // The remount uses the cached token; it reads afresh (the only kept read is its own).
    world.mount_at(&pod, "no-federation-sa", &objects, &seed_spc).await?;
    assert_eq!((world.azure.nmi_requests(), world.azure.vault_reads()), (1, 2));

    // A pod NMI knows nothing about gets NMI's refusal.
    let unbound = [("csi.storage.k8s.io/pod.name", "stranger-0"), seed_spc[0], seed_spc[2]];
    let status = world.mount_as("no-federation-sa", &objects, &unbound).await.err().ok_or("unbound pod")?;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status.message().contains("no AzureAssignedIdentity found for pod:default/stranger-0"),
        "{}",
        status.message()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn throttled_twice_then_success() -> TestResult {
    let world = world(&[]).await?;
    world.azure.set_secret(VAULT, "busy", "eventually");
    world.azure.throttle("/secrets/busy", 2, 1);
    let response = world.mount(&["objectName: busy\nobjectType: secret"]).await?;
    assert_eq!(file(&response, "busy")?, b"eventually");
    let statuses: Vec<u16> = world
        .azure
        .vault_requests()
        .iter()
        .filter(|r| r.path.trim_end_matches('/') == "/secrets/busy")
        .map(|r| r.status)
        .collect();
    // Two 429s served and retried, then Key Vault's challenge (the first unthrottled request of a
    // new client carries no token), then the read.
    assert_eq!(statuses, [429, 429, 401, 200], "{statuses:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn service_principal_from_the_node_publish_secret() -> TestResult {
    let world = world(&[]).await?;
    world.azure.add_client_secret(TENANT, "sp-client", "sp-secret-value");
    world.azure.set_secret(VAULT, "db", "via-sp");
    let objects = seed_parameters(&["objectName: db\nobjectType: secret"]);
    let attributes = pod_attributes(&[
        ("keyvaultName", VAULT),
        ("tenantID", TENANT),
        ("objects", objects.as_str()),
        ("csi.storage.k8s.io/pod.namespace", "default"),
    ])
    .to_string();
    let mut client = DriverClient::new(&world.provider.socket("azure"));
    let secrets = r#"{"ClientID":"sp-client","ClientSecret":"sp-secret-value"}"#.to_owned();
    let response = client.mount_raw(attributes.clone(), secrets, "420".to_owned()).await?;
    assert_eq!(file(&response, "db")?, b"via-sp");
    assert_eq!(world.azure.token_requests().last().map(|r| r.grant.clone()).as_deref(), Some("secret"));

    let wrong = r#"{"clientid":"sp-client","clientsecret":"nope"}"#.to_owned();
    let status =
        client.mount_raw(attributes.clone(), wrong, "420".to_owned()).await.err().ok_or("wrong secret")?;
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(status.message().contains("AADSTS7000215"), "{}", status.message());
    assert!(!status.message().contains("nope"), "the secret is not echoed");

    let status =
        client.mount_raw(attributes, "null".to_owned(), "420".to_owned()).await.err().ok_or("no secret")?;
    assert!(status.message().contains("nodePublishSecretRef secret is not set"), "{}", status.message());
    assert!(!world.provider.log_text().contains("sp-secret-value"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn one_token_per_identity() -> TestResult {
    let world = world(&[]).await?;
    world.azure.federate(TENANT, CLIENT, "default", "other-sa");
    for name in ["a", "b", "c"] {
        world.azure.set_secret(VAULT, name, name);
    }
    let objects = [
        "objectName: a\nobjectType: secret",
        "objectName: b\nobjectType: secret",
        "objectName: c\nobjectType: secret",
    ];
    for _ in 0..5 {
        world.mount(&objects).await?;
    }
    let granted =
        |sa_count: usize| world.azure.token_requests().iter().filter(|r| r.granted).count() == sa_count;
    assert!(granted(1), "five mounts of three objects, one token: {:?}", world.azure.token_requests());
    world.mount_as("other-sa", &objects, &[]).await?;
    assert!(granted(2), "a second identity gets its own token: {:?}", world.azure.token_requests());
    Ok(())
}

/// The Azure provider checks the pod before anything else, in its own words
/// (`pod name is not provided`, `pod namespace is not provided`); ours keep them.
#[tokio::test(flavor = "multi_thread")]
async fn a_missing_pod_name_or_namespace_is_said_in_upstreams_words() -> TestResult {
    let world = world(&[]).await?;
    for (attribute, words) in [
        ("csi.storage.k8s.io/pod.name", "pod name is not provided"),
        ("csi.storage.k8s.io/pod.namespace", "pod namespace is not provided"),
    ] {
        // Objects that would fail too: the pod is what the answer names.
        let status = world
            .mount_as("workload-sa", &["objectName: db\nobjectType: nonsense"], &[(attribute, "")])
            .await
            .err()
            .ok_or("must fail")?;
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().contains(words), "{}", status.message());
        assert!(!status.message().contains("nonsense"), "{}", status.message());
    }
    assert_eq!(world.azure.vault_reads(), 0);
    Ok(())
}

/// The Azure provider's `objects: "\narray:"` (no objects) answers no files and no error; the
/// driver then refuses that answer ("missing object versions"). This provider refuses the
/// SecretProviderClass itself, saying why (docs/azure.md, "Differences").
#[tokio::test(flavor = "multi_thread")]
async fn an_empty_objects_array_is_refused_saying_why() -> TestResult {
    let world = world(&[]).await?;
    let status = world
        .mount_as(
            "workload-sa",
            &[],
            &[("objects", "\narray:"), ("useVMManagedIdentity", "true"), ("clientID", "")],
        )
        .await
        .err()
        .ok_or("an SPC without objects must be refused")?;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("selects no objects; the driver needs at least one"),
        "{}",
        status.message()
    );
    assert_eq!(world.azure.vault_reads(), 0);
    Ok(())
}

/// Key Vault's diagnostic logs (`clientInfo`) say which pod read what: every request, the
/// listing of `objectVersionHistory` and the 401 challenge included, names the mounting pod
/// after the SDK's own User-Agent, though the clients are shared by every pod of the identity.
#[tokio::test(flavor = "multi_thread")]
async fn every_key_vault_request_names_the_mounting_pod() -> TestResult {
    let world = world(&[]).await?;
    world.azure.set_secret(VAULT, "db", "one");
    world.azure.set_secret(VAULT, "db", "two");
    let objects = [
        "objectName: db\nobjectType: secret",
        "objectName: db\nobjectType: secret\nobjectAlias: hist\nobjectVersionHistory: 2",
    ];
    world.mount(&objects).await?;
    world.mount_as("workload-sa", &objects[..1], &[("csi.storage.k8s.io/pod.name", "api-7")]).await?;
    let requests = world.azure.vault_requests();
    assert!(requests.len() >= 5, "{requests:?}");
    let (web, api): (Vec<_>, Vec<_>) =
        requests.iter().partition(|r| r.user_agent.ends_with(" csi-default.web-0"));
    assert!(api.iter().all(|r| r.user_agent.ends_with(" csi-default.api-7")), "{api:?}");
    assert!(!api.is_empty() && web.iter().any(|r| r.path.ends_with("/versions")), "{requests:?}");
    assert!(requests.iter().all(|r| r.user_agent.starts_with("azsdk-rust-")), "{requests:?}");
    Ok(())
}

/// `objectType: acr`: the pod's Azure AD token for the cloud's Resource Manager exchanged at the
/// registry's `/oauth2/exchange` for a refresh token, written as a Docker config for user
/// `00000000-0000-0000-0000-000000000000`, the version its expiry; a remount within half its
/// lifetime takes the kept login (no exchange); a registry the app may not pull from is refused
/// naming it; one of another cloud's suffix is refused before any call.
#[tokio::test(flavor = "multi_thread")]
async fn an_acr_registry_is_a_docker_config_from_the_token_exchange() -> TestResult {
    let resolve = [
        "--azure-resolve",
        "appreg.azurecr.test=127.0.0.1",
        "--azure-resolve",
        "otherreg.azurecr.test=127.0.0.1",
    ];
    let world = world(&resolve).await?;
    world.azure.add_registry("appreg", &[csi_secrets_provider_tests::worlds::AZURE_CLIENT]);
    world.azure.add_registry("otherreg", &["someone-else"]);
    let host = world.azure.registry_host("appreg");
    let entry = format!("objectName: {host}\nobjectType: acr\nobjectAlias: .dockerconfigjson");
    let target = csi_secrets_provider_tests::new_target_path();
    let first = world.mount_at(&target, "workload-sa", &[entry.as_str()], &[]).await?;
    let config: serde_json::Value = serde_json::from_slice(file(&first, ".dockerconfigjson")?)?;
    let login = &config["auths"][host.as_str()];
    assert_eq!(login["username"], "00000000-0000-0000-0000-000000000000");
    let token = login["password"].as_str().ok_or("no password")?;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).ok_or("not a JWT")?)?,
    )?;
    assert_eq!(
        claims["sub"],
        csi_secrets_provider_tests::worlds::AZURE_CLIENT,
        "the pod's app's refresh token"
    );
    let version = first.object_version.iter().find(|v| v.id == ".dockerconfigjson").ok_or("no version")?;
    let expiry = humantime::parse_rfc3339(&version.version)?;
    assert_eq!(
        expiry.duration_since(std::time::UNIX_EPOCH)?.as_secs(),
        claims["exp"].as_u64().ok_or("no exp")?,
        "the version is the refresh token's expiry"
    );
    let exchanges = world.azure.acr_exchanges();
    assert_eq!((exchanges.len(), exchanges[0].granted), (1, true));

    world.mount_at(&target, "workload-sa", &[entry.as_str()], &[]).await?;
    assert_eq!(world.azure.acr_exchanges().len(), 1, "the kept login, no exchange");

    let other = format!("objectName: {}\nobjectType: acr", world.azure.registry_host("otherreg"));
    let status = world.mount(&[other.as_str()]).await.err().ok_or("a registry the app may not pull from")?;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("otherreg.azurecr.test"), "{}", status.message());

    let calls = world.azure.acr_exchanges().len();
    let status = world
        .mount(&["objectName: appreg.azurecr.io\nobjectType: acr"])
        .await
        .err()
        .ok_or("another cloud's")?;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("is not a registry of this cloud"), "{}", status.message());
    assert_eq!(world.azure.acr_exchanges().len(), calls);
    Ok(())
}
