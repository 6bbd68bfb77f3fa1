//! Cloud-neutral core of csi-secrets-provider: the [`SecretBackend`] trait, the mount request
//! and response model, file-name and permission rules, SecretProviderClass manifests and the
//! error type. No cloud SDK and no transport here.
#![forbid(unsafe_code)]

pub mod audit;
pub mod backend;
pub mod certs;
pub mod common;
pub mod deadline;
pub mod egress;
pub mod error;
pub mod files;
pub mod grammar;
pub mod jmes;
pub mod keys;
pub mod kit;
#[cfg(feature = "kube")]
pub mod kube_api;
pub mod mode;
pub mod outcome;
pub mod parameters;
pub(crate) mod path_clash;
pub mod policy;
pub mod request;
pub mod response;
pub mod shape;
pub mod shaping;
pub mod sharing;
pub mod spc;
pub mod stats;
pub mod warning;
pub mod yaml;

pub use audit::{ObjectOutcome, ObjectRecord};
pub use backend::{PlannedSelection, Prepared, SecretBackend, Validation};
pub use common::{CommonParameter, CommonParameters};
pub use deadline::before_deadline;
pub use error::{Error, ErrorKind, Result};
pub use files::{
    FilePlan, MAX_FILES_PER_MOUNT, MAX_OBJECTS_PER_SPC, PlannedFile, SecretBytes, check_file_path,
    check_object_count, translate_slashes,
};
pub use jmes::{JmesEntry, JmesKey, JmesRules};
pub use keys::{ConfigKey, Fields, KeyMatching, unknown_parameters};
pub use mode::FileMode;
pub use outcome::{SkippedObject, StaleObject};
pub use parameters::{Parameters, attr, parse_go_bool};
pub use policy::{Denial, Policy, Requester};
pub use request::{
    MountRequest, NodePublishSecrets, ParsedOr, ParsedSpc, PodInfo, PolicyGate, ServiceAccountToken,
    ServiceAccountTokens,
};
pub use response::{
    DRIVER_MAX_RESPONSE_BYTES, MountResponse, MountedFile, ObjectVersion, check_response_size,
};
pub use sharing::{HeldBytes, MountKind, ReadPolicy, Served, SharedReads, SharingOptions, SharingStats};
pub use stats::{BackendStats, CallOutcome, CloudCallCount, CloudCalls};
pub use warning::Warning;
