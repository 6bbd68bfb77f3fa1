//! A backend that lives in test code only. It plans files with the core helpers exactly as the
//! cloud backends do, and serves values from its parameters, so protocol behaviour can be tested
//! without a cloud.
//!
//! Parameters: `objects` (YAML list of `{objectName, objectAlias?, filePermission?, value?,
//! version?, sizeBytes?, optional?, writeFile?, expandKeys?, decode?}`), `pathTranslation` (`false` or one character, default `_`),
//! `delayMs` (sleep before answering), `startedFile` (a file created when a mount starts, so
//! a test can wait for a mount to be in flight instead of sleeping), `holdUntilFile` (the mount
//! answers only once that file exists, at most 60 s: a test decides when an in-flight mount
//! ends), `fail` (`notfound`, `denied`, `throttled`,
//! `unavailable`, `panic`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use csi_secrets_provider_core::shaping::FileShape;
use csi_secrets_provider_core::yaml::non_empty;
use csi_secrets_provider_core::{
    Error, Fields, FileMode, FilePlan, KeyMatching, MountRequest, MountResponse, MountedFile, ObjectRecord,
    ObjectVersion, Parameters, ParsedSpc, Prepared, Result, SecretBackend, Validation, translate_slashes,
};
use serde_norway::Value;

pub const NAME: &str = "test";

/// Without a store, an object with no `value` reads `value-of-<name>`; with one, it is looked up
/// there and a missing name is `NotFound`.
#[derive(Debug, Default, Clone)]
pub struct TestBackend {
    store: Option<Arc<TestStore>>,
}

impl TestBackend {
    pub fn with_store(store: Arc<TestStore>) -> Self {
        Self { store: Some(store) }
    }
}

/// Values by name with a version counter, standing in for a cloud's secret store.
#[derive(Debug, Default)]
pub struct TestStore {
    values: Mutex<HashMap<String, (String, u64)>>,
    faults: Mutex<HashMap<String, crate::conformance::Fault>>,
    reads: std::sync::atomic::AtomicUsize,
    parses: std::sync::atomic::AtomicUsize,
}

impl TestStore {
    /// Creates or replaces (as a new version) a value.
    pub fn put(&self, name: &str, value: &str) {
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        let version = values.get(name).map_or(1, |(_, v)| v + 1);
        values.insert(name.to_owned(), (value.to_owned(), version));
    }

    /// Makes every read of `name` fail with `fault`.
    pub fn inject(&self, name: &str, fault: crate::conformance::Fault) {
        self.faults.lock().unwrap_or_else(PoisonError::into_inner).insert(name.to_owned(), fault);
    }

    /// Times a backend with this store parsed a SecretProviderClass.
    pub fn parses(&self) -> usize {
        self.parses.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Reads made of the store so far.
    pub fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether reads of `name` never answer ([`Fault::Hang`](crate::conformance::Fault::Hang)).
    fn hangs(&self, name: &str) -> bool {
        let faults = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        faults.get(name) == Some(&crate::conformance::Fault::Hang)
    }

    fn get(&self, name: &str) -> Result<Option<(String, u64)>> {
        use crate::conformance::Fault;
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let fault = self.faults.lock().unwrap_or_else(PoisonError::into_inner).get(name).copied();
        let failed = |error: Error| Err(error.with_object(name));
        match fault {
            Some(Fault::Denied) => failed(Error::permission_denied(format!("access to {name} denied"))),
            Some(Fault::Throttled) => {
                failed(Error::throttled(format!("reads of {name} throttled"), Some(Duration::from_secs(1))))
            }
            Some(Fault::Unavailable) => {
                failed(Error::unavailable(format!("the store did not answer for {name}")))
            }
            Some(Fault::Hang) | None => {
                Ok(self.values.lock().unwrap_or_else(PoisonError::into_inner).get(name).cloned())
            }
        }
    }
}

struct Planned {
    plan: FilePlan,
    objects: Vec<TestObject>,
}

struct TestObject {
    name: String,
    /// The file it writes and its mode.
    file: String,
    mode: FileMode,
    value: Option<String>,
    version: String,
    size: Option<usize>,
    shape: FileShape,
    optional: bool,
}

csi_secrets_provider_core::config_keys! {
    /// The per-object keys every backend reads with [`FileShape::read`].
    enum ShapeKey {
        WriteFile => "writeFile",
        ExpandKeys => "expandKeys",
        Decode => "decode",
    }
}

csi_secrets_provider_core::shape_keys!(ShapeKey);

/// `writeFile`, `expandKeys` and `decode`, read as every backend reads them.
fn shape_of(item: &Value, name: &str) -> std::result::Result<FileShape, Vec<Error>> {
    let (shape, problems) = FileShape::read(&Fields::<ShapeKey>::read(item, KeyMatching::Exact));
    if problems.is_empty() {
        Ok(shape)
    } else {
        Err(problems.into_iter().map(|e| e.with_object(name)).collect())
    }
}

fn plan(parameters: &Parameters, default_mode: FileMode) -> std::result::Result<Planned, Vec<Error>> {
    let mut problems = Vec::new();
    let translation = match parameters.get("pathTranslation").unwrap_or_default() {
        "" => Some('_'),
        off if off.eq_ignore_ascii_case("false") => None,
        one if one.chars().count() == 1 => one.chars().next(),
        other => {
            problems.push(
                Error::invalid_config(format!("bad pathTranslation {other:?}")).with_field("pathTranslation"),
            );
            None
        }
    };
    let items = match parameters.get("objects").map(serde_norway::from_str::<Value>) {
        Some(Ok(Value::Sequence(items))) => items,
        Some(Ok(_)) | None => {
            problems.push(Error::invalid_config("objects must be a YAML list").with_field("objects"));
            return Err(problems);
        }
        Some(Err(e)) => {
            problems.push(Error::invalid_config(format!("objects is not YAML: {e}")).with_field("objects"));
            return Err(problems);
        }
    };
    let mut planned = Planned { plan: FilePlan::new(), objects: Vec::new() };
    for item in &items {
        let get = |key: &str| non_empty(item, key).ok().flatten();
        let Some(name) = get("objectName") else {
            problems.push(Error::invalid_config("objectName is required").with_field("objectName"));
            continue;
        };
        let mode = match get("filePermission").map(|p| FileMode::parse_go_octal(&p)) {
            None => default_mode,
            Some(Ok(mode)) => mode,
            Some(Err(e)) => {
                problems.push(e.with_object(&name));
                continue;
            }
        };
        let file = get("objectAlias").unwrap_or_else(|| name.clone());
        let file = match translation {
            Some(c) => translate_slashes(&file, c),
            None => file,
        };
        let shape = match shape_of(item, &name) {
            Ok(shape) => shape,
            Err(mut found) => {
                problems.append(&mut found);
                continue;
            }
        };
        if let Err(e) = planned.plan.add_shaped(&name, file.clone(), mode, shape) {
            problems.push(e.with_field("objectAlias"));
            continue;
        }
        let optional = get("optional").is_some_and(|o| o.eq_ignore_ascii_case("true"));
        if optional {
            planned.plan.mark_optional(&name);
        }
        planned.objects.push(TestObject {
            file,
            mode,
            value: get("value"),
            version: get("version").unwrap_or_else(|| "v1".to_owned()),
            size: get("sizeBytes").and_then(|s| s.parse().ok()),
            shape,
            optional,
            name,
        });
    }
    if problems.is_empty() { Ok(planned) } else { Err(problems) }
}

impl TestBackend {
    /// [`plan`], counted in the store (a mount should parse its SecretProviderClass once).
    fn plan(
        &self,
        parameters: &Parameters,
        default_mode: FileMode,
    ) -> std::result::Result<Planned, Vec<Error>> {
        if let Some(store) = &self.store {
            store.parses.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        plan(parameters, default_mode)
    }
}

#[async_trait]
impl SecretBackend for TestBackend {
    fn name(&self) -> &'static str {
        NAME
    }

    fn validate(&self, parameters: &Parameters) -> Validation {
        self.prepare(parameters, FileMode::DEFAULT).validation
    }

    fn prepare(&self, parameters: &Parameters, default_mode: FileMode) -> Prepared {
        match self.plan(parameters, default_mode) {
            Ok(planned) => Prepared {
                validation: Validation {
                    reads: planned.objects.iter().map(|o| o.name.clone()).collect(),
                    ..Ok(planned.plan.clone()).into()
                },
                parsed: Some(ParsedSpc::new(planned)),
            },
            Err(problems) => Prepared { validation: Validation::failed(problems), parsed: None },
        }
    }

    async fn mount(&self, request: &MountRequest) -> Result<MountResponse> {
        let planned = request
            .parsed_or(|| self.plan(&request.parameters, request.default_mode))
            .map_err(Error::from_problems)?;
        if let Some(marker) = request.parameters.get("startedFile") {
            std::fs::write(marker, b"started")
                .map_err(|e| Error::internal(format!("cannot write {marker}: {e}")))?;
        }
        if let Some(delay) = request.parameters.get("delayMs").and_then(|d| d.parse().ok()) {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if let Some(gate) = request.parameters.get("holdUntilFile") {
            let until = std::time::Instant::now() + Duration::from_secs(60);
            while !std::path::Path::new(gate).exists() && std::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        let first = planned.objects.first().map(|o| o.name.clone()).unwrap_or_default();
        match request.parameters.get("fail") {
            Some("notfound") => {
                return Err(Error::not_found(format!("secret {first} not found")).with_object(first));
            }
            Some("denied") => return Err(Error::permission_denied("access denied")),
            Some("throttled") => return Err(Error::throttled("slow down", Some(Duration::from_secs(3)))),
            Some("unavailable") => return Err(Error::unavailable("try later")),
            Some("panic") => panic!("test backend asked to panic"),
            _ => {}
        }
        let mut response = MountResponse::default();
        for object in &planned.objects {
            let (contents, version) = match (object.size, &object.value, &self.store) {
                (Some(size), _, _) => (vec![b'x'; size], object.version.clone()),
                (None, Some(value), _) => (value.clone().into_bytes(), object.version.clone()),
                (None, None, Some(store)) if store.hangs(&object.name) => {
                    let never = std::future::pending::<Result<()>>();
                    csi_secrets_provider_core::before_deadline(
                        request.deadline,
                        "the test store",
                        &[&object.name],
                        never,
                    )
                    .await?;
                    continue;
                }
                (None, None, Some(store)) => match store.get(&object.name)? {
                    Some((value, version)) => (value.into_bytes(), version.to_string()),
                    None if object.optional => {
                        response.skipped.push(csi_secrets_provider_core::SkippedObject {
                            object: object.name.clone(),
                            reason: "not found".to_owned(),
                        });
                        response.records.push(ObjectRecord::skipped(&object.name, &object.name));
                        continue;
                    }
                    None => {
                        return Err(Error::not_found(format!("secret {} not found", object.name))
                            .with_object(&object.name));
                    }
                },
                (None, None, None) => {
                    (format!("value-of-{}", object.name).into_bytes(), object.version.clone())
                }
            };
            response.files.push(
                MountedFile::new(object.file.clone(), object.mode, contents)
                    .shaped(&object.name, object.shape),
            );
            // The audit record every backend gives (the kit's `MountAssembly` does it for the
            // cloud backends).
            let served = csi_secrets_provider_core::Served::fresh(());
            response.records.push(ObjectRecord::served(&object.name, &object.name, &version, &served));
            response.versions.push(ObjectVersion::new(object.file.clone(), version));
        }
        Ok(response)
    }
}
