//! The typed keys of the parameters, of an `objects` entry and of its `failoverObject` (the
//! `jmesPath` keys are core's, shared with the Azure backend).

use csi_secrets_provider_core::KeyMatching;

csi_secrets_provider_core::config_keys! {
    /// SecretProviderClass parameters of the AWS provider.
    pub enum ParameterKey {
        Objects => super::OBJECTS,
        Region => super::REGION,
        FailoverRegion => super::FAILOVER_REGION,
        PathTranslation => super::PATH_TRANSLATION,
        UsePodIdentity => super::USE_POD_IDENTITY,
        PreferredAddressType => super::PREFERRED_ADDRESS_TYPE,
        AssumeRoleArn => super::ASSUME_ROLE_ARN,
        AssumeRoleExternalId => super::ASSUME_ROLE_EXTERNAL_ID,
        AssumeRoleDurationSeconds => super::ASSUME_ROLE_DURATION_SECONDS,
    }
}

csi_secrets_provider_core::config_keys! {
    /// Keys of an `objects` entry. Upstream decodes them through JSON, which matches field names in
    /// any ASCII case (`objectname`), so they are read with [`KeyMatching::IgnoreAsciiCase`].
    pub enum ObjectKey {
        ObjectName => "objectName",
        ObjectType => "objectType",
        ObjectAlias => "objectAlias",
        ObjectVersion => "objectVersion",
        ObjectVersionLabel => "objectVersionLabel",
        FilePermission => "filePermission",
        JmesPath => "jmesPath",
        FailoverObject => "failoverObject",
        // This provider's own: not in the official provider, which ignores them.
        Optional => "optional",
        Region => "region",
        WriteFile => "writeFile",
        ExpandKeys => "expandKeys",
        Decode => "decode",
        ObjectPrefix => "objectPrefix",
        Tags => "tags",
        MaxObjects => "maxObjects",
    }
}

csi_secrets_provider_core::shape_keys!(ObjectKey);

csi_secrets_provider_core::config_keys! {
    /// Keys of a `failoverObject`.
    #[allow(clippy::enum_variant_names, reason = "the variants are the upstream key names")]
    pub enum FailoverKey {
        ObjectName => "objectName",
        ObjectVersion => "objectVersion",
        ObjectVersionLabel => "objectVersionLabel",
    }
}

/// How upstream's decoder matches every key of an object.
pub(super) const MATCHING: KeyMatching = KeyMatching::IgnoreAsciiCase;
