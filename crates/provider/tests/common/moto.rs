//! SDK clients straight to moto (not through the provider), to seed and change what the tests
//! read. Shared by the AWS test files, each of which includes it with `#[path]`.

/// Secrets Manager and SSM clients straight to moto in `region`, with moto's test credentials.
pub async fn clients(region: &str) -> (aws_sdk_secretsmanager::Client, aws_sdk_ssm::Client) {
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .endpoint_url(csi_secrets_provider_tests::aws::moto_endpoint())
        .credentials_provider(aws_credential_types::Credentials::new("test", "test", None, None, "seed"))
        .load()
        .await;
    (aws_sdk_secretsmanager::Client::new(&config), aws_sdk_ssm::Client::new(&config))
}
