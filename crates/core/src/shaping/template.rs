//! `files` templates: Jinja syntax rendered by minijinja in a sandbox. A template sees one
//! variable, `objects` (each object's file name to its value), and our filters; it reaches no
//! file, environment or network, its evaluation is bounded by fuel and recursion limits, and
//! its output by a byte cap.

use std::io;

use base64::Engine as _;
use minijinja::machinery::Token;
use minijinja::syntax::SyntaxConfig;
use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use zeroize::Zeroizing;

use super::json_text::{self, Layout};
pub(crate) use super::own_errors::own_error;

/// The one variable a template sees.
pub(crate) const OBJECTS: &str = "objects";

use super::bounds::{self, FUEL};
/// Macro and call nesting.
const RECURSION_LIMIT: usize = 64;

/// Builtins that build strings from a width the template chooses (`indent(10**12)`), the only
/// way around the fuel bound to exhaust memory.
const WIDTH_FILTERS: &[&str] = &["indent", "center", "format", "wordwrap", "truncate"];

/// The templates' syntax: Jinja's delimiters, a trailing newline kept.
pub(crate) fn syntax() -> SyntaxConfig {
    SyntaxConfig::builder().keep_trailing_newline(true).build().unwrap_or_default()
}

/// The environment every template of one SecretProviderClass is compiled into.
pub(crate) fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_recursion_limit(RECURSION_LIMIT);
    bounds::install(&mut env);
    env.set_syntax(syntax());
    for name in WIDTH_FILTERS {
        env.remove_filter(name);
    }
    env.add_filter("fromjson", from_json);
    env.add_filter("fromyaml", from_yaml);
    env.add_filter("tojson", to_json);
    env.add_filter("b64encode", b64_encode);
    env.add_filter("b64decode", b64_decode);
    env
}

/// A value's text for a filter that parses it, borrowed (no copy of a secret to wipe);
/// bytes that are not UTF-8 are refused.
fn text_of<'v>(value: &'v Value, filter: &str) -> Result<&'v str, minijinja::Error> {
    if let Some(text) = value.as_str() {
        return Ok(text);
    }
    match value.as_bytes().map(std::str::from_utf8) {
        Some(Ok(text)) => Ok(text),
        Some(Err(_)) => Err(own_error(
            ErrorKind::InvalidOperation,
            format!("{filter}: the value is binary, not UTF-8 text"),
        )),
        None => Err(own_error(
            ErrorKind::InvalidOperation,
            format!("{filter} takes a string, got {}", value.kind()),
        )),
    }
}

/// Parses JSON text into a value with its keys in their order.
pub(crate) fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str::<Value>(text).map_err(|e| {
        let what = match e.classify() {
            serde_json::error::Category::Eof => "it ends early",
            serde_json::error::Category::Syntax | serde_json::error::Category::Io => "a syntax error",
            serde_json::error::Category::Data => "a value JSON cannot hold",
        };
        format!("the value is not JSON ({what} at line {} column {})", e.line(), e.column())
    })
}

/// The most `fromjson` answers one mount keeps, and the most text they may have parsed: the
/// parsed values are a dozen times larger than their text and fuel charges only the text, so a
/// mount that parsed large texts in every file kept them all (25 files exceeded the chart's
/// memory limit). Past either, texts are parsed again when asked again.
const MEMO_ENTRIES: usize = 64;
const MEMO_BYTES: usize = 1024 * 1024;

thread_local! {
    /// `fromjson` results of the mount being shaped on this thread, by the parsed text: the
    /// templates of one mount that parse one object (`(objects.db | fromjson).user`, then
    /// `.password`, in this template and the next) parse it once. Emptied when the mount's
    /// [`JsonMemo`] is dropped.
    static PARSED_JSON: std::cell::RefCell<Vec<(Value, Value)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The span of one mount's renders (on one thread, with no await between them): `fromjson`
/// results are kept for it and dropped with it.
pub(crate) struct JsonMemo(());

impl JsonMemo {
    pub(crate) fn scope() -> Self {
        PARSED_JSON.with_borrow_mut(Vec::clear);
        Self(())
    }
}

impl Drop for JsonMemo {
    fn drop(&mut self) {
        PARSED_JSON.with_borrow_mut(Vec::clear);
    }
}

fn from_json(value: &Value) -> Result<Value, minijinja::Error> {
    if let Some(text) = value.as_str()
        && let Some(parsed) = PARSED_JSON.with_borrow(|memo| {
            memo.iter().find(|(source, _)| source.as_str() == Some(text)).map(|(_, parsed)| parsed.clone())
        })
    {
        return Ok(parsed);
    }
    let text = text_of(value, "fromjson")?;
    let parsed =
        parse_json(text).map_err(|why| own_error(ErrorKind::InvalidOperation, format!("fromjson: {why}")))?;
    if value.as_str().is_some() {
        PARSED_JSON.with_borrow_mut(|memo| {
            let kept: usize = memo.iter().filter_map(|(source, _)| source.as_str()).map(str::len).sum();
            if memo.len() < MEMO_ENTRIES && kept.saturating_add(text.len()) <= MEMO_BYTES {
                memo.push((value.clone(), parsed.clone()));
            }
        });
    }
    Ok(parsed)
}

fn from_yaml(value: &Value) -> Result<Value, minijinja::Error> {
    let text = text_of(value, "fromyaml")?;
    crate::yaml::parse(text).and_then(serde_norway::from_value::<Value>).map_err(|e| {
        let at =
            e.location().map(|l| format!(" at line {} column {}", l.line(), l.column())).unwrap_or_default();
        // The parser's own words may quote the value; the bound's are ours.
        let why = if e.to_string().contains(crate::yaml::EXPANDS_TOO_FAR) {
            crate::yaml::EXPANDS_TOO_FAR
        } else {
            "the value is not YAML"
        };
        own_error(ErrorKind::InvalidOperation, format!("fromyaml: {why}{at}"))
    })
}

/// JSON text of a value, compact, or indented by `indent` spaces; no HTML escaping (the output
/// is a file, not a web page).
fn to_json(value: &Value, indent: Option<usize>) -> Result<Value, minijinja::Error> {
    let unit = vec![b' '; indent.unwrap_or(0).min(16)];
    let layout = if indent.is_some() { Layout::Indented(&unit) } else { Layout::Compact };
    let mut out = Vec::new();
    let cap = bounds::byte_cap();
    let written = json_text::write_at_most(value, layout, &mut out, cap)
        .ok()
        .and_then(|()| String::from_utf8(out).ok());
    written.map(Value::from_safe_string).ok_or_else(|| {
        own_error(
            ErrorKind::BadSerialization,
            format!("tojson: the value cannot be JSON, or its text would be larger than {cap} bytes"),
        )
    })
}

fn b64_encode(value: &Value) -> Result<Value, minijinja::Error> {
    let encoded = match (value.as_str(), value.as_bytes()) {
        (Some(text), _) => base64::engine::general_purpose::STANDARD.encode(text),
        (None, Some(bytes)) => base64::engine::general_purpose::STANDARD.encode(bytes),
        (None, None) => {
            return Err(own_error(
                ErrorKind::InvalidOperation,
                format!("b64encode takes a string, got {}", value.kind()),
            ));
        }
    };
    Ok(Value::from(encoded))
}

fn b64_decode(value: &Value) -> Result<Value, minijinja::Error> {
    let text = text_of(value, "b64decode")?;
    let bytes = super::Decoding::Base64
        .decode(text.as_bytes())
        .map_err(|why| own_error(ErrorKind::InvalidOperation, format!("b64decode: {why}")))?;
    Ok(text_value(bytes))
}

/// Borrowed bytes as a template value (one copy): a string when they are UTF-8, else bytes.
pub(crate) fn bytes_value(bytes: &[u8]) -> Value {
    match std::str::from_utf8(bytes) {
        Ok(text) => Value::from(text),
        Err(_) => Value::from_bytes(bytes.to_vec()),
    }
}

/// Bytes as a template value: a string when they are UTF-8, else bytes.
pub(crate) fn text_value(bytes: Vec<u8>) -> Value {
    match String::from_utf8(bytes) {
        Ok(text) => Value::from(text),
        Err(e) => Value::from_bytes(e.into_bytes()),
    }
}

/// What a template reads, found without rendering it: the object names it looks up with a
/// constant (`objects["db-creds"]`, `objects.api`, `objects.get("x")`), and variables other than
/// `objects` it uses without defining them (a typo such as `object["x"]`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct References {
    pub objects: Vec<String>,
    pub unknown_variables: Vec<String>,
    /// Filters (`| name`) and tests (`is name`) it uses, checked by `validate`.
    pub filters: Vec<String>,
    pub tests: Vec<String>,
    /// Whether it names (as any identifier: `| f`, `{% filter f %}`) one of
    /// [`UNBOUNDED_ON_A_WORKER`]: it is never shaped on the thread that serves the mount.
    pub names_unbounded_work: bool,
}

/// Filters whose work fuel does not bound (a PFX's key derivation, a YAML document's aliases),
/// or that nest a value one level a step (`batch`, `slice`, `groupby`: a value nested thousands
/// deep needs a deep stack to print or drop).
pub(crate) const UNBOUNDED_ON_A_WORKER: [&str; 7] =
    ["pfx", "pem_certs", "pem_key", "fromyaml", "batch", "slice", "groupby"];

/// Scans a template that compiled; names in the order they appear, once each.
pub(crate) fn references(env: &Environment<'static>, name: &str, source: &str) -> References {
    let mut found = References::default();
    let tokens: Vec<Token<'_>> = minijinja::machinery::tokenize(source, false, SyntaxConfig::default())
        .filter_map(Result::ok)
        .map(|(token, _)| token)
        .collect();
    let constant = |token: Option<&Token<'_>>| match token {
        Some(Token::Str(text)) => Some((*text).to_owned()),
        Some(Token::String(text)) => Some(text.to_string()),
        _ => None,
    };
    found.names_unbounded_work = tokens
        .iter()
        .any(|token| matches!(token, Token::Ident(name) if UNBOUNDED_ON_A_WORKER.contains(name)));
    for (i, token) in tokens.iter().enumerate() {
        let previous = i.checked_sub(1).map(|p| &tokens[p]);
        match (previous, token) {
            (Some(Token::Pipe), Token::Ident(filter)) if !found.filters.iter().any(|f| f == filter) => {
                found.filters.push((*filter).to_owned());
            }
            (Some(Token::Ident("is" | "not")), Token::Ident(test))
                if *test != "not" && !found.tests.iter().any(|t| t == test) =>
            {
                found.tests.push((*test).to_owned());
            }
            _ => {}
        }
        if !matches!(token, Token::Ident(OBJECTS))
            || matches!(i.checked_sub(1).map(|p| &tokens[p]), Some(Token::Dot))
        {
            continue;
        }
        let named = match (tokens.get(i + 1), tokens.get(i + 2), tokens.get(i + 3)) {
            (Some(Token::BracketOpen), key, Some(Token::BracketClose)) => constant(key),
            (Some(Token::Dot), Some(Token::Ident("get")), Some(Token::ParenOpen)) => {
                constant(tokens.get(i + 4))
            }
            (Some(Token::Dot), Some(Token::Ident(attribute)), next)
                if !matches!(next, Some(Token::ParenOpen)) =>
            {
                Some((*attribute).to_owned())
            }
            _ => None,
        };
        if let Some(named) = named
            && !found.objects.contains(&named)
        {
            found.objects.push(named);
        }
    }
    if let Ok(template) = env.get_template(name) {
        let globals: Vec<&str> = env.globals().map(|(global, _)| global).collect();
        let mut unknown: Vec<String> = template
            .undeclared_variables(false)
            .into_iter()
            .filter(|variable| variable != OBJECTS && !globals.contains(&variable.as_str()))
            .collect();
        unknown.sort();
        found.unknown_variables = unknown;
    }
    found
}

/// The filters and tests of `references` the environment does not have, found by trying each
/// on a constant (minijinja does not list them).
pub(crate) fn unknown_filters_and_tests(env: &Environment<'static>, references: &References) -> Vec<String> {
    let filters = references.filters.iter().filter(|name| {
        env.render_str(&format!("{{{{ 1 | {name} }}}}"), ())
            .is_err_and(|e| e.kind() == ErrorKind::UnknownFilter)
    });
    let tests = references.tests.iter().filter(|name| {
        env.render_str(&format!("{{{{ 1 is {name} }}}}"), ())
            .is_err_and(|e| e.kind() == ErrorKind::UnknownTest)
    });
    filters.map(|f| format!("the filter {f:?}")).chain(tests.map(|t| format!("the test {t:?}"))).collect()
}

/// The most operators, filters, attribute and item lookups and calls one tag (`{{ … }}` or
/// `{% … %}`) may hold. minijinja's parser bounds the nesting of brackets and blocks, not a
/// chain (`x | f | f | …`, `x.a.a.…`, `not not …`, `- - …`, `1 + 1 + …`), which it builds as a
/// tree as deep as the chain is long and then compiles and drops recursively: 6,000 filters
/// overflowed a 2 MiB stack (an abort of the process, before any render). Real tags hold a few.
pub(crate) const MAX_OPERATORS_PER_TAG: usize = 1_000;

/// The count of the first tag of `source` past [`MAX_OPERATORS_PER_TAG`], read from its tokens
/// (the tokenizer does not recurse); `None` when every tag is within it, or when the source
/// does not tokenize (compiling it says why).
pub(crate) fn deepest_block(source: &str) -> Option<usize> {
    use minijinja::machinery::Token as T;
    let mut in_tag = 0usize;
    for token in minijinja::machinery::tokenize(source, false, syntax()) {
        let Ok((token, _)) = token else { return None };
        match token {
            T::VariableStart | T::BlockStart | T::VariableEnd | T::BlockEnd => in_tag = 0,
            T::Plus
            | T::Minus
            | T::Mul
            | T::Div
            | T::FloorDiv
            | T::Pow
            | T::Mod
            | T::Dot
            | T::Tilde
            | T::Pipe
            | T::Eq
            | T::Ne
            | T::Gt
            | T::Gte
            | T::Lt
            | T::Lte
            | T::BracketOpen
            | T::ParenOpen => in_tag += 1,
            T::Ident("not" | "and" | "or" | "in" | "is" | "if") => in_tag += 1,
            _ => {}
        }
        if in_tag > MAX_OPERATORS_PER_TAG {
            return Some(in_tag);
        }
    }
    None
}

/// Why a render failed: the line, and a message that holds no value of the mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RenderFailure {
    pub line: Option<usize>,
    pub message: String,
}

/// Renders template `name` with `objects`, at most `cap` bytes of output. `expected` is about
/// how long the output will be (the template and the values it names): the output buffer starts
/// that large, so it is not grown, copied and left behind unwiped on the way.
pub(crate) fn render(
    env: &Environment<'static>,
    name: &str,
    objects: Value,
    expected: usize,
    cap: usize,
) -> Result<Zeroizing<Vec<u8>>, RenderFailure> {
    super::own_errors::forget();
    let _cap = bounds::ByteCap::set(cap);
    let template = env.get_template(name).map_err(|e| failure(&e))?;
    let capacity = expected.saturating_add(template.source().len()).clamp(256, cap.max(256));
    let mut out = CappedOutput { bytes: Zeroizing::new(Vec::with_capacity(capacity)), cap, over: false };
    let context = Value::from_pairs([(OBJECTS, objects)]);
    let rendered = template.render_captured_to(context, &mut out);
    match rendered {
        Ok(_) => Ok(out.bytes),
        Err(_) if out.over => {
            Err(RenderFailure { line: None, message: format!("the output is larger than {cap} bytes") })
        }
        Err(e) => Err(failure(&e)),
    }
}

/// What went wrong, in words that hold no value of the mount: the detail only when this
/// project wrote it ([`own_error`](super::own_errors::own_error)), else only the kind of error and the line.
fn failure(error: &minijinja::Error) -> RenderFailure {
    let detail = error.detail().filter(|detail| super::own_errors::is_ours(detail));
    let message = match (error.kind(), detail) {
        (ErrorKind::OutOfFuel, _) => {
            format!("the template runs too long (more than {FUEL} steps); is there a loop that does not end?")
        }
        (ErrorKind::UndefinedError, detail) => format!(
            "{} (an object this mount does not have, or a key its value does not have; test optional \
             objects with `is defined` or `default`)",
            detail.unwrap_or("undefined value")
        ),
        (kind, Some(detail)) => format!("{kind}: {detail}"),
        (kind, None) => format!("{kind} (details withheld: they may quote a secret value)"),
    };
    RenderFailure { line: error.line(), message }
}

/// Collects output and fails the write past `cap` bytes.
struct CappedOutput {
    bytes: Zeroizing<Vec<u8>>,
    cap: usize,
    over: bool,
}

impl io::Write for CappedOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len().saturating_add(buf.len()) > self.cap {
            self.over = true;
            return Err(io::Error::other("output cap reached"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chains of filters, attributes, unary and binary operators: each tree as deep as the
    /// chain is long, which compiling overflowed a 2 MiB stack with; refused from their tokens.
    #[test]
    fn long_chains_in_one_tag_are_refused_before_they_are_parsed() {
        let chains = [
            format!("{{{{ 1{} }}}}", " | string".repeat(6000)),
            format!("{{{{ objects{} }}}}", ".a".repeat(20000)),
            format!("{{{{ {}1 }}}}", "not ".repeat(10000)),
            format!("{{{{ {}1 }}}}", "-".repeat(30000)),
            format!("{{{{ 1{} }}}}", " + 1".repeat(5000)),
            format!("{{% if {}1 %}}x{{% endif %}}", "not ".repeat(5000)),
        ];
        for chain in &chains {
            assert!(deepest_block(chain).is_some_and(|n| n > MAX_OPERATORS_PER_TAG), "{}", &chain[..40]);
        }
        let many_tags = "{{ a.b | c }}".repeat(5000);
        assert_eq!(deepest_block(&many_tags), None, "tags are counted one by one");
        assert_eq!(deepest_block("{{ (objects.db | fromjson).user ~ '@' ~ objects.host }}"), None);
    }

    /// A mount keeps at most 64 `fromjson` answers and 1 MiB of the texts they parsed.
    #[test]
    fn the_fromjson_memo_is_bounded() -> Result<(), minijinja::Error> {
        let _memo = JsonMemo::scope();
        for i in 0..100 {
            from_json(&Value::from(format!("[{i}]")))?;
        }
        assert_eq!(PARSED_JSON.with_borrow(Vec::len), MEMO_ENTRIES);
        let _memo = JsonMemo::scope();
        let large = format!("[\"{}\"]", "x".repeat(MEMO_BYTES));
        from_json(&Value::from(large))?;
        assert_eq!(PARSED_JSON.with_borrow(Vec::len), 0, "a text past the bytes is not kept");
        from_json(&Value::from("[1]"))?;
        assert_eq!(PARSED_JSON.with_borrow(Vec::len), 1);
        Ok(())
    }
}
