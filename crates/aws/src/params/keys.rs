//! The typed keys of an `objects` entry and of its `jmesPath` and `failoverObject` parts.

use csi_secrets_provider_core::{ConfigKey, KeyMatching};

/// SecretProviderClass parameters of the AWS provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterKey {
    Objects,
    Region,
    FailoverRegion,
    PathTranslation,
    UsePodIdentity,
    PreferredAddressType,
}

impl ConfigKey for ParameterKey {
    const ALL: &'static [Self] = &[
        Self::Objects,
        Self::Region,
        Self::FailoverRegion,
        Self::PathTranslation,
        Self::UsePodIdentity,
        Self::PreferredAddressType,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::Objects => super::OBJECTS,
            Self::Region => super::REGION,
            Self::FailoverRegion => super::FAILOVER_REGION,
            Self::PathTranslation => super::PATH_TRANSLATION,
            Self::UsePodIdentity => super::USE_POD_IDENTITY,
            Self::PreferredAddressType => super::PREFERRED_ADDRESS_TYPE,
        }
    }
}

/// Keys of an `objects` entry. Upstream decodes them through JSON, which matches field names in
/// any ASCII case (`objectname`), so they are read with [`KeyMatching::IgnoreAsciiCase`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKey {
    ObjectName,
    ObjectType,
    ObjectAlias,
    ObjectVersion,
    ObjectVersionLabel,
    FilePermission,
    JmesPath,
    FailoverObject,
}

impl ConfigKey for ObjectKey {
    const ALL: &'static [Self] = &[
        Self::ObjectName,
        Self::ObjectType,
        Self::ObjectAlias,
        Self::ObjectVersion,
        Self::ObjectVersionLabel,
        Self::FilePermission,
        Self::JmesPath,
        Self::FailoverObject,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Self::ObjectName => "objectName",
            Self::ObjectType => "objectType",
            Self::ObjectAlias => "objectAlias",
            Self::ObjectVersion => "objectVersion",
            Self::ObjectVersionLabel => "objectVersionLabel",
            Self::FilePermission => "filePermission",
            Self::JmesPath => "jmesPath",
            Self::FailoverObject => "failoverObject",
        }
    }
}

/// Keys of a `jmesPath` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JmesKey {
    Path,
    ObjectAlias,
    FilePermission,
}

impl ConfigKey for JmesKey {
    const ALL: &'static [Self] = &[Self::Path, Self::ObjectAlias, Self::FilePermission];

    fn as_str(self) -> &'static str {
        match self {
            Self::Path => "path",
            Self::ObjectAlias => "objectAlias",
            Self::FilePermission => "filePermission",
        }
    }
}

/// Keys of a `failoverObject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverKey {
    ObjectName,
    ObjectVersion,
    ObjectVersionLabel,
}

impl ConfigKey for FailoverKey {
    const ALL: &'static [Self] = &[Self::ObjectName, Self::ObjectVersion, Self::ObjectVersionLabel];

    fn as_str(self) -> &'static str {
        match self {
            Self::ObjectName => "objectName",
            Self::ObjectVersion => "objectVersion",
            Self::ObjectVersionLabel => "objectVersionLabel",
        }
    }
}

/// How upstream's decoder matches every key of an object.
pub(super) const MATCHING: KeyMatching = KeyMatching::IgnoreAsciiCase;
