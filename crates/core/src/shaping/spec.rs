//! The `files` parameter: files built from the mount's objects, by template or fixed format.

use std::fmt;
use std::sync::Arc;

use minijinja::Environment;
use serde_norway::Value;

use super::template::{self, References};
use crate::error::Error;
use crate::files::{MAX_FILES_PER_MOUNT, check_file_path};
use crate::keys::{ConfigKey, Fields, KeyMatching};
use crate::mode::FileMode;

crate::config_keys! {
    /// Keys of one `files` entry.
    pub enum FilesKey {
        Path => "path",
        FilePermission => "filePermission",
        Template => "template",
        Format => "format",
        From => "from",
    }
}

/// The parameter's name.
pub const FILES: &str = "files";

/// A fixed file format built from every top-level key of JSON objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Dotenv,
    Properties,
    Json,
    Yaml,
}

impl FileFormat {
    pub const ALL: [Self; 4] = [Self::Dotenv, Self::Properties, Self::Json, Self::Yaml];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dotenv => "dotenv",
            Self::Properties => "properties",
            Self::Json => "json",
            Self::Yaml => "yaml",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str().eq_ignore_ascii_case(text.trim()))
    }
}

/// How an entry's contents are made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    /// The template compiled under the entry's name, and what it reads.
    Template(References),
    /// Every top-level key of these objects (file names), in this order.
    Format { format: FileFormat, from: Vec<String> },
}

/// One `files` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    pub path: String,
    /// `filePermission`; the driver's permission when absent.
    pub mode: Option<FileMode>,
    /// `files[<index>]`, as errors name it.
    pub(crate) label: String,
    pub(crate) source: Source,
}

impl FileEntry {
    /// The field an error about this entry names: `files[0]`, `files[0].template`.
    pub(crate) fn field(&self, key: Option<FilesKey>) -> String {
        match key {
            Some(key) => format!("{}.{}", self.label, key.as_str()),
            None => self.label.clone(),
        }
    }

    /// Which kind of file it is, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match &self.source {
            Source::Template(_) => "template",
            Source::Format { format, .. } => format.as_str(),
        }
    }

    /// The object file names it reads (a template's constant lookups; a format's `from`).
    pub fn reads(&self) -> &[String] {
        match &self.source {
            Source::Template(references) => &references.objects,
            Source::Format { from, .. } => from,
        }
    }
}

/// Mounts in a row whose shaping took longer than a mount may hold the thread that answers it,
/// after which a `files` text is shaped elsewhere ([`FilesSpec::is_slow`]).
pub const SLOW_AFTER: u8 = 3;

/// The parsed `files` parameter: cheap to clone (a request carries it).
#[derive(Clone, Default)]
pub struct FilesSpec {
    entries: Arc<[FileEntry]>,
    templates: Option<Arc<Environment<'static>>>,
    /// How many mounts in a row took longer to shape these files than a mount may hold the
    /// thread that answers it: from [`SLOW_AFTER`] on (or from the start, when a template names
    /// work fuel does not bound) the server shapes them elsewhere. Shared by every mount of the
    /// same text, as the compiled templates are.
    slow: Option<Arc<std::sync::atomic::AtomicU8>>,
}

impl fmt::Debug for FilesSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FilesSpec").field("entries", &self.entries).finish_non_exhaustive()
    }
}

impl PartialEq for FilesSpec {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Eq for FilesSpec {}

impl FilesSpec {
    pub fn entries(&self) -> &[FileEntry] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub(crate) fn templates(&self) -> Option<&Environment<'static>> {
        self.templates.as_deref()
    }

    /// Whether shaping these files took longer than a mount may hold the thread that answers
    /// it, [`SLOW_AFTER`] mounts in a row ([`Self::record_time`]), or names work fuel does not
    /// bound.
    pub fn is_slow(&self) -> bool {
        self.slow.as_ref().is_some_and(|slow| slow.load(std::sync::atomic::Ordering::Relaxed) >= SLOW_AFTER)
    }

    /// Records whether a mount's shaping of these files took longer (`over`) than a mount may
    /// hold the thread that answers it: once one machine hiccup (a preempted or throttled
    /// thread) is not a slow template, [`SLOW_AFTER`] in a row are.
    pub fn record_time(&self, over: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        if let Some(slow) = &self.slow {
            let _ = slow.fetch_update(Relaxed, Relaxed, |strikes| match (strikes >= SLOW_AFTER, over) {
                (true, _) => None,
                (false, true) => Some(strikes + 1),
                (false, false) => Some(0),
            });
        }
    }

    /// Parses `files` (absent or blank: none); every problem names its entry and key. Templates
    /// are compiled here, so a syntax error is found before any cloud call. Every pod of a
    /// SecretProviderClass sends the same text on every mount: what compiled is kept by its text
    /// (see [`Compiled`]), so a mount pays for a lookup, not a compilation.
    pub fn parse(text: Option<&str>) -> Result<Self, Vec<Error>> {
        let Some(text) = text.filter(|t| !t.trim().is_empty()) else { return Ok(Self::default()) };
        if let Some(known) = COMPILED.get(text) {
            return Ok(known);
        }
        let parsed = Self::compile(text)?;
        COMPILED.keep(text, &parsed);
        Ok(parsed)
    }

    fn compile(text: &str) -> Result<Self, Vec<Error>> {
        let items = match crate::yaml::parse(text) {
            Ok(Value::Sequence(items)) => items,
            Ok(_) => {
                return Err(vec![
                    Error::invalid_config(
                        "files must be a YAML list of {path, template} or {path, format, from}",
                    )
                    .with_field(FILES),
                ]);
            }
            Err(e) => {
                return Err(vec![
                    Error::invalid_config(format!("files is not valid YAML: {e}")).with_field(FILES),
                ]);
            }
        };
        if items.len() > MAX_FILES_PER_MOUNT {
            return Err(vec![
                Error::invalid_config(format!(
                    "files lists {} entries, more than {MAX_FILES_PER_MOUNT} files in one mount (the most one mount may write)",
                    items.len()
                ))
                .with_field(FILES),
            ]);
        }
        let mut env = template::environment();
        super::cert_filters::install(&mut env);
        let mut problems = Vec::new();
        let mut entries: Vec<FileEntry> = Vec::new();
        // Each path's first entry, by path: found in linear time.
        let mut first_of: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        for (index, item) in items.iter().enumerate() {
            let label = format!("{FILES}[{index}]");
            match parse_entry(&label, item, &mut env) {
                Ok(entry) => {
                    if let Some(earlier) = first_of.get(&entry.path) {
                        problems.push(
                            Error::invalid_config(format!(
                                "file {:?} is named twice in files ({earlier} and {label})",
                                entry.path
                            ))
                            .with_field(entry.field(Some(FilesKey::Path))),
                        );
                    } else {
                        first_of.insert(entry.path.clone(), entry.label.clone());
                    }
                    entries.push(entry);
                }
                Err(mut found) => problems.append(&mut found),
            }
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let templates =
            entries.iter().any(|e| matches!(e.source, Source::Template(_))).then(|| Arc::new(env));
        // Shaped where the mount is served only if kept by its text (the latch below is then
        // shared by its mounts) and no template names a step that fuel does not bound.
        let light = text.len() <= Compiled::MAX_TEXT
            && entries.iter().all(|e| !matches!(&e.source, Source::Template(r) if r.names_unbounded_work));
        Ok(Self {
            entries: entries.into(),
            templates,
            slow: Some(Arc::new(std::sync::atomic::AtomicU8::new(if light { 0 } else { SLOW_AFTER }))),
        })
    }

    /// What `validate` reports without a cloud: names a template or format reads that are no
    /// object file of the SecretProviderClass (`known`), variables other than `objects`, and
    /// paths that are also another file's. A name `selected` may be (a prefix entry's file,
    /// known only once listed) is not reported.
    pub fn check_names(&self, known: &[&str], selected: &dyn Fn(&str) -> bool) -> Vec<Error> {
        let mut problems = Vec::new();
        for entry in self.entries.iter() {
            let (key, what) = match &entry.source {
                Source::Template(references) => {
                    let unknown = self
                        .templates
                        .as_deref()
                        .map(|env| template::unknown_filters_and_tests(env, references))
                        .unwrap_or_default();
                    for what in unknown {
                        problems.push(
                            Error::invalid_config(format!(
                                "the template of {:?} uses {what}, which does not exist (see docs/shaping-files.md for the filters)",
                                entry.path
                            ))
                            .with_field(entry.field(Some(FilesKey::Template))),
                        );
                    }
                    for variable in &references.unknown_variables {
                        problems.push(
                            Error::invalid_config(format!(
                                "the template of {:?} uses the variable {variable:?}, which is not defined; \
                                 a template sees one variable, `objects`",
                                entry.path
                            ))
                            .with_field(entry.field(Some(FilesKey::Template))),
                        );
                    }
                    (FilesKey::Template, "the template reads")
                }
                Source::Format { .. } => (FilesKey::From, "it reads"),
            };
            for name in entry.reads() {
                if !known.contains(&name.as_str()) && !selected(name) {
                    problems.push(
                        Error::invalid_config(format!(
                            "{what} object {name:?}, which is not a file of this SecretProviderClass's objects \
                             (objects are named by their file name: objectAlias, or the name after path rules){}",
                            suggestion(name, known)
                        ))
                        .with_field(entry.field(Some(key))),
                    );
                }
            }
            if known.contains(&entry.path.as_str()) {
                problems.push(
                    Error::invalid_config(format!(
                        "file {:?} is also an object's file; give one of them another name",
                        entry.path
                    ))
                    .with_field(entry.field(Some(FilesKey::Path))),
                );
            }
        }
        problems
    }
}

/// What compiled, by its text: at most [`Compiled::ENTRIES`] texts of at most
/// [`Compiled::MAX_TEXT`] bytes, the least recently used forgotten first. Texts that do not
/// compile are not kept (their errors are cheap to find again).
pub(crate) struct Compiled {
    entries: std::sync::Mutex<CompiledEntries>,
}

#[derive(Default)]
struct CompiledEntries {
    /// Counts lookups; an entry's `used` is the count at its last one.
    clock: u64,
    by_text: std::collections::HashMap<String, CompiledEntry>,
}

struct CompiledEntry {
    spec: FilesSpec,
    used: u64,
}

static COMPILED: std::sync::LazyLock<Compiled> = std::sync::LazyLock::new(Compiled::default);

impl Default for Compiled {
    fn default() -> Self {
        Self { entries: std::sync::Mutex::new(CompiledEntries::default()) }
    }
}

impl Compiled {
    const ENTRIES: usize = 128;
    const MAX_TEXT: usize = 64 * 1024;

    fn lock(&self) -> std::sync::MutexGuard<'_, CompiledEntries> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, text: &str) -> Option<FilesSpec> {
        let mut entries = self.lock();
        entries.clock += 1;
        let clock = entries.clock;
        let entry = entries.by_text.get_mut(text)?;
        entry.used = clock;
        Some(entry.spec.clone())
    }

    fn keep(&self, text: &str, spec: &FilesSpec) {
        if text.len() > Self::MAX_TEXT {
            return;
        }
        let mut entries = self.lock();
        if entries.by_text.len() >= Self::ENTRIES
            && let Some(oldest) =
                entries.by_text.iter().min_by_key(|(_, entry)| entry.used).map(|(text, _)| text.clone())
        {
            entries.by_text.remove(&oldest);
        }
        entries.clock += 1;
        let used = entries.clock;
        entries.by_text.insert(text.to_owned(), CompiledEntry { spec: spec.clone(), used });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().by_text.len()
    }
}

/// ` (did you mean "x"?)` for a name one or two edits from a known one.
fn suggestion(name: &str, known: &[&str]) -> String {
    crate::keys::nearest_name(name, known.iter().copied())
        .map(|k| format!(" (did you mean {k:?}?)"))
        .unwrap_or_default()
}

fn parse_entry(label: &str, item: &Value, env: &mut Environment<'static>) -> Result<FileEntry, Vec<Error>> {
    let at = |key: FilesKey| format!("{label}.{}", key.as_str());
    if !item.is_mapping() {
        return Err(vec![
            Error::invalid_config(
                "a files entry must be a mapping with path and template, or path, format and from",
            )
            .with_field(label),
        ]);
    }
    let fields: Fields<'_, FilesKey> = Fields::read(item, KeyMatching::Exact);
    // A new parameter keeps no compatibility with typos: an unknown key is an error.
    let mut problems: Vec<Error> = fields
        .unknown_keys("", "")
        .into_iter()
        .map(|warning| {
            Error::invalid_config(warning.message.replace(" is ignored", ""))
                .with_field(format!("{label}.{}", warning.field.unwrap_or_default()))
        })
        .collect();
    let text = |key: FilesKey, problems: &mut Vec<Error>| match fields.non_empty(key) {
        Ok(value) => value,
        Err(e) => {
            problems.push(e.with_field(at(key)));
            None
        }
    };
    let path = text(FilesKey::Path, &mut problems);
    let permission = text(FilesKey::FilePermission, &mut problems);
    let template_source = text(FilesKey::Template, &mut problems);
    let format = text(FilesKey::Format, &mut problems);
    let Some(path) = path else {
        problems.push(Error::invalid_config("path must be specified").with_field(at(FilesKey::Path)));
        return Err(problems);
    };
    if let Err(e) = check_file_path(&path) {
        problems.push(e.with_field(at(FilesKey::Path)));
    }
    let mode = permission.and_then(|p| match FileMode::parse_go_octal(p.trim()) {
        Ok(mode) => Some(mode),
        Err(e) => {
            problems.push(e.with_field(at(FilesKey::FilePermission)));
            None
        }
    });
    let from = fields.get(FilesKey::From);
    let source = match (template_source, format) {
        (Some(_), Some(_)) => {
            problems.push(
                Error::invalid_config(format!("file {path:?} has both template and format; give one"))
                    .with_field(label),
            );
            None
        }
        (None, None) => {
            problems.push(
                Error::invalid_config(format!(
                    "file {path:?} has neither template nor format (dotenv, properties, json, yaml); give one"
                ))
                .with_field(label),
            );
            None
        }
        (Some(source), None) => {
            if from.is_some() {
                problems.push(
                    Error::invalid_config("from goes with format; a template names its objects itself")
                        .with_field(at(FilesKey::From)),
                );
            }
            if let Some(count) = template::deepest_block(&source) {
                problems.push(
                    Error::invalid_config(format!(
                        "the template of {path:?} has a tag with {count} operators, filters or attributes, more than {} (split it)",
                        template::MAX_OPERATORS_PER_TAG
                    ))
                    .with_field(at(FilesKey::Template)),
                );
                return Err(problems);
            }
            match env.add_template_owned(label.to_owned(), source.clone()) {
                Ok(()) => {
                    // Read as written; compiled with its operators bounded (`bounds`).
                    let references = template::references(env, label, &source);
                    let bounded =
                        super::rewrite::rewrite_operators(&source, template::syntax()).and_then(|bounded| {
                            env.add_template_owned(label.to_owned(), bounded).map_err(|_| ())
                        });
                    match bounded {
                        Ok(()) => Some(Source::Template(references)),
                        Err(()) => {
                            problems.push(
                                Error::invalid_config(format!(
                                    "the template of {path:?} could not be prepared (its +, * and ~ operators); please report it"
                                ))
                                .with_field(at(FilesKey::Template)),
                            );
                            None
                        }
                    }
                }
                Err(e) => {
                    let line = e.line().map(|l| format!(" at line {l}")).unwrap_or_default();
                    let detail = e.detail().unwrap_or("syntax error");
                    problems.push(
                        Error::invalid_config(format!(
                            "the template of {path:?} does not parse{line}: {detail}"
                        ))
                        .with_field(at(FilesKey::Template)),
                    );
                    None
                }
            }
        }
        (None, Some(format_text)) => match FileFormat::parse(&format_text) {
            None => {
                problems.push(
                    Error::invalid_config(format!(
                        "format must be dotenv, properties, json or yaml, got {format_text:?}"
                    ))
                    .with_field(at(FilesKey::Format)),
                );
                None
            }
            Some(format) => match from_list(from) {
                Ok(from) => Some(Source::Format { format, from }),
                Err(message) => {
                    problems.push(Error::invalid_config(message).with_field(at(FilesKey::From)));
                    None
                }
            },
        },
    };
    match source {
        Some(source) if problems.is_empty() => Ok(FileEntry { path, mode, label: label.to_owned(), source }),
        _ => Err(problems),
    }
}

/// `from`: a non-empty list of object file names, each once.
fn from_list(value: Option<&Value>) -> Result<Vec<String>, String> {
    let items = match value {
        Some(Value::Sequence(items)) if !items.is_empty() => items,
        Some(Value::String(one)) if !one.trim().is_empty() => return Ok(vec![one.clone()]),
        _ => return Err("from must list the objects (their file names) whose keys the file holds".to_owned()),
    };
    let mut names: Vec<String> = Vec::new();
    for item in items {
        let name = crate::yaml::scalar_value(Some(item), FilesKey::From.as_str())
            .ok()
            .flatten()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| "every entry of from must be an object's file name".to_owned())?;
        if names.contains(&name) {
            return Err(format!("object {name:?} is listed twice in from"));
        }
        names.push(name);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compiled_texts_are_kept_within_bounds() {
        let cache = Compiled::default();
        let spec = FilesSpec::default();
        for i in 0..Compiled::ENTRIES + 10 {
            let text = format!("- path: f{i}\n  template: x\n");
            cache.keep(&text, &spec);
            assert!(cache.get("- path: f0\n  template: x\n").is_some(), "f0 is in use");
        }
        assert_eq!(cache.len(), Compiled::ENTRIES);
        assert!(cache.get("- path: f0\n  template: x\n").is_some(), "the one in use stays");
        assert!(cache.get("- path: f1\n  template: x\n").is_none(), "the oldest unused went");
        cache.keep(&"x".repeat(Compiled::MAX_TEXT + 1), &spec);
        assert!(cache.get(&"x".repeat(Compiled::MAX_TEXT + 1)).is_none(), "large texts are not kept");
    }
}
