//! Bounds on what one template may build, enforced before the memory is taken.
//!
//! minijinja's fuel counts instructions, and bytes only after most operations made them: one
//! `"x" * 63000000`, `+` of two lists in a doubling loop (kept lazy, costing no fuel), a `join`
//! with an empty separator or a `string` of a large list allocates first and is charged after.
//! A template is an SPC author's code run inside the node's provider, so:
//!
//! - the operators `+`, `*` and `~` are rewritten, before the template is compiled, into calls
//!   of [`add`], [`mul`] and [`concat`] (from the parser's own syntax tree, so precedence and
//!   parentheses are minijinja's): each refuses a string longer than the render's byte cap or a
//!   list of more than [`MAX_ITEMS`] items before building it, and builds lists eagerly;
//! - list, tuple and map literals are rewritten into [`list`], [`tuple`] and [`map`], and
//!   `dict()`/`namespace()` are ours: with `+` and `*` they refuse a value holding more than
//!   [`MAX_WEIGHT`] values over its whole tree (shared parts counted each time), which is what
//!   printing or comparing it costs;
//! - the filters that build text or lists from any value (`join`, `string`, `split`, `lines`,
//!   `sum`, `tojson`) are ours, with the same checks; `pprint` and `debug` are removed;
//! - every value written to the output goes through a formatter that stops at the cap;
//! - the rest (loops, captures, the nesting depth of values) is bounded by [`FUEL`], and a
//!   render runs on a thread whose stack holds the deepest value that fuel lets a template
//!   build (`server`'s render pool).

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::LazyLock;

use minijinja::value::{Kwargs, Rest, Value, ValueKind};
use minijinja::{Environment, ErrorKind, Expression, State};

use super::own_errors::own_error;
use super::rewrite::{ADD_FN, ASSIGN_FN, CONCAT_FN, LIST_FN, MAP_FN, MUL_FN, TUPLE_FN};

/// Instructions one template may run. Real templates take a few thousand; a loop that does not
/// end stops within milliseconds. Fuel is also what bounds how deep a template can nest a value
/// (about 1.6 steps a level at best: some 60,000 levels) and how much a capture block collects
/// (minijinja charges a step per 64 bytes written).
pub(crate) const FUEL: u64 = 30_000;

/// Most items a list built by a template may have (`range` stops at the same number).
pub(crate) const MAX_ITEMS: usize = 100_000;

/// Stack for a render thread: the deepest value [`FUEL`] allows takes about 45 MiB to compare
/// or print and less to drop; the stack is reserved address space, committed only as used.
pub const RENDER_STACK_BYTES: usize = 256 * 1024 * 1024;

thread_local! {
    /// The byte cap of the render running on this thread (`--max-response-bytes`).
    static BYTE_CAP: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The cap in force while a render runs on this thread; restored when dropped.
pub(crate) struct ByteCap(usize);

impl ByteCap {
    pub(crate) fn set(cap: usize) -> Self {
        Self(BYTE_CAP.replace(cap))
    }
}

impl Drop for ByteCap {
    fn drop(&mut self) {
        BYTE_CAP.set(self.0);
    }
}

pub(crate) fn byte_cap() -> usize {
    BYTE_CAP.get()
}

fn too_large(what: &str) -> minijinja::Error {
    own_error(
        ErrorKind::InvalidOperation,
        format!("{what} would be larger than {} bytes, the most one file may hold", byte_cap()),
    )
}

fn too_many(what: &str) -> minijinja::Error {
    own_error(ErrorKind::InvalidOperation, format!("{what} would have more than {MAX_ITEMS} items"))
}

/// Most a value a template builds may weigh, counted over its whole tree: one a node (an item,
/// a key, a value), and one more per 64 bytes of a string. Lists built from shared parts
/// (`[x] * 100`, `[d, d, d]` nested a few times) are cheap to build and exponentially large to
/// print or compare: the weight counts each shared part as often as it appears, which is what
/// printing or comparing it costs.
pub(crate) const MAX_WEIGHT: usize = 100_000;

fn too_heavy(what: &str) -> minijinja::Error {
    own_error(
        ErrorKind::InvalidOperation,
        format!("{what} would hold more than {MAX_WEIGHT} values (a string counts one per 64 bytes)"),
    )
}

/// The weight of `values` together (see [`MAX_WEIGHT`]); an error once past `MAX_WEIGHT`,
/// without walking further. The walk costs fuel, one step per 64 values walked.
fn weigh(state: &State, values: &[&Value], what: &str) -> Result<usize, minijinja::Error> {
    walk(state, values, what, false)
}

/// [`weigh`], refusing also (with `no_namespaces`) a value that holds a namespace.
fn walk(
    state: &State,
    values: &[&Value],
    what: &str,
    no_namespaces: bool,
) -> Result<usize, minijinja::Error> {
    let mut total = 0usize;
    let mut stack: Vec<Value> = values.iter().map(|v| (*v).clone()).collect();
    let mut result = Ok(());
    while let Some(value) = stack.pop() {
        let bytes = value.as_str().map(str::len).or_else(|| value.as_bytes().map(<[u8]>::len)).unwrap_or(0);
        total = total.saturating_add(1 + bytes / 64);
        if total > MAX_WEIGHT {
            result = Err(too_heavy(what));
            break;
        }
        if no_namespaces && is_namespace(&value) {
            result = Err(own_error(
                ErrorKind::InvalidOperation,
                format!("{what} holds a namespace: a namespace cannot hold one (it could hold itself)"),
            ));
            break;
        }
        match value.kind() {
            ValueKind::Seq | ValueKind::Iterable => {
                if let Ok(items) = value.try_iter() {
                    stack.extend(items);
                }
            }
            ValueKind::Map => {
                if let Ok(keys) = value.try_iter() {
                    for key in keys {
                        stack.push(value.get_item(&key).unwrap_or_default());
                        stack.push(key);
                    }
                }
            }
            _ => {}
        }
    }
    state.consume_fuel(u64::try_from(total / 64 + 1).unwrap_or(u64::MAX))?;
    result.map(|()| total)
}

/// `[a, b]` (a list literal, as the operators are rewritten): its items, if they weigh little
/// enough together.
pub(crate) fn list(state: &State, items: Rest<Value>) -> Result<Value, minijinja::Error> {
    weigh(state, &items.0.iter().collect::<Vec<_>>(), "a list")?;
    Ok(Value::from(items.0))
}

/// `(a, b)`: a tuple literal, bounded like a list.
pub(crate) fn tuple(state: &State, items: Rest<Value>) -> Result<Value, minijinja::Error> {
    weigh(state, &items.0.iter().collect::<Vec<_>>(), "a tuple")?;
    Ok(Value::from_object(minijinja::value::Tuple::from(items.0)))
}

/// `{k: v, …}`: a map literal (keys and values alternating), bounded like a list.
pub(crate) fn map(state: &State, items: Rest<Value>) -> Result<Value, minijinja::Error> {
    weigh(state, &items.0.iter().collect::<Vec<_>>(), "a map")?;
    let mut items = items.0.into_iter();
    let mut pairs = Vec::new();
    while let (Some(key), Some(value)) = (items.next(), items.next()) {
        pairs.push((key, value));
    }
    Ok(Value::from_pairs(pairs))
}

/// `dict(…)`: minijinja's, once its values weigh little enough.
pub(crate) fn dict(
    state: &State,
    value: Option<Value>,
    update_with: Kwargs,
) -> Result<Value, minijinja::Error> {
    let mut values: Vec<Value> = value.iter().cloned().collect();
    for key in update_with.args() {
        values.push(update_with.peek::<Value>(key)?);
    }
    weigh(state, &values.iter().collect::<Vec<_>>(), "dict()")?;
    minijinja::functions::dict(value, update_with)
}

/// Whether `value` is a namespace (minijinja's type is its own: known by its type's name).
fn is_namespace(value: &Value) -> bool {
    static NAMESPACE: LazyLock<Option<&'static str>> = LazyLock::new(|| {
        minijinja::functions::namespace(None).ok().and_then(|ns| ns.as_object().map(|o| o.type_name()))
    });
    // Without the name (it is always there), every object counts as one: refused, not unbounded.
    value.as_object().is_some_and(|object| NAMESPACE.is_none_or(|name| object.type_name() == name))
}

/// `{% set ns.attr = value %}` (as the assignment is rewritten): the value, if it holds no
/// namespace and weighs little enough. A namespace is the one value a template can change, so
/// it is the only way to make a value that holds itself, which printing, comparing or writing
/// as JSON would follow without end (down the thread's stack, taking the process with it).
pub(crate) fn assign(state: &State, value: Value) -> Result<Value, minijinja::Error> {
    walk(state, &[&value], "the value set", true)?;
    Ok(value)
}

/// `namespace(…)`: minijinja's, once its defaults weigh little enough.
pub(crate) fn namespace(
    state: &State,
    defaults: Option<minijinja::value::ValueOrKwargs>,
) -> Result<Value, minijinja::Error> {
    if let Some(defaults) = &defaults {
        weigh(state, &[&**defaults], "namespace()")?;
    }
    minijinja::functions::namespace(defaults)
}

/// Text written into a string that refuses to grow past its limit.
struct CappedText {
    text: String,
    limit: usize,
}

impl std::fmt::Write for CappedText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.text.len().saturating_add(s.len()) > self.limit {
            return Err(std::fmt::Error);
        }
        self.text.push_str(s);
        Ok(())
    }
}

/// `value`'s text (what `{{ value }}` writes), refused past the cap.
fn capped_display(value: &Value, what: &str) -> Result<String, minijinja::Error> {
    if let Some(text) = value.as_str() {
        return if text.len() > byte_cap() { Err(too_large(what)) } else { Ok(text.to_owned()) };
    }
    let mut out = CappedText { text: String::new(), limit: byte_cap() };
    write!(out, "{value}").map_err(|_| too_large(what))?;
    Ok(out.text)
}

/// `a ~ b`: both as text, joined.
pub(crate) fn concat(a: &Value, b: &Value) -> Result<Value, minijinja::Error> {
    // As minijinja's `~` under the templates' undefined behaviour: a missing object or key is
    // an error, not an empty string.
    if a.is_undefined() || b.is_undefined() {
        return Err(minijinja::Error::from(ErrorKind::UndefinedError));
    }
    let (left, right) = (capped_display(a, "a ~ b")?, capped_display(b, "a ~ b")?);
    if left.len().saturating_add(right.len()) > byte_cap() {
        return Err(too_large("a ~ b"));
    }
    Ok(Value::from(left + &right))
}

/// A sequence's items, if `value` is a list, tuple or iterable of known length.
fn items_of(value: &Value) -> Option<usize> {
    matches!(value.kind(), ValueKind::Seq | ValueKind::Iterable).then(|| value.len()).flatten()
}

/// The items of `value` (a sequence of known length), in a new list.
fn collect_items(value: &Value, into: &mut Vec<Value>) -> Result<(), minijinja::Error> {
    for item in value.try_iter()? {
        into.push(item);
    }
    Ok(())
}

/// `a + b`: strings joined and lists (or tuples) concatenated within the bounds, built at
/// once; numbers (and every error) as minijinja computes them.
pub(crate) fn add(state: &State, a: &Value, b: &Value) -> Result<Value, minijinja::Error> {
    if let (Some(left), Some(right)) = (a.as_str(), b.as_str()) {
        if left.len().saturating_add(right.len()) > byte_cap() {
            return Err(too_large("a + b"));
        }
        return Ok(Value::from([left, right].concat()));
    }
    let both_sequences = matches!(a.kind(), ValueKind::Seq | ValueKind::Iterable)
        && matches!(b.kind(), ValueKind::Seq | ValueKind::Iterable);
    if both_sequences && a.is_tuple() == b.is_tuple() {
        let (Some(left), Some(right)) = (items_of(a), items_of(b)) else {
            return Err(own_error(ErrorKind::InvalidOperation, "+ takes lists of known length"));
        };
        let total = left.saturating_add(right);
        if total > MAX_ITEMS {
            return Err(too_many("a + b"));
        }
        weigh(state, &[a, b], "a + b")?;
        let mut items = Vec::with_capacity(total);
        collect_items(a, &mut items)?;
        collect_items(b, &mut items)?;
        return Ok(if a.is_tuple() {
            Value::from_object(minijinja::value::Tuple::from(items))
        } else {
            Value::from(items)
        });
    }
    minijinja_op(&ADD, a, b)
}

/// `a * b`: a string or a list repeated within the bounds (a negative count repeats none, as
/// minijinja's); numbers (and every error) as minijinja computes them.
pub(crate) fn mul(state: &State, a: &Value, b: &Value) -> Result<Value, minijinja::Error> {
    let count =
        |n: &Value| i128::try_from(n.clone()).ok().map(|n| usize::try_from(n.max(0)).unwrap_or(usize::MAX));
    if let Some((text, n)) = a.as_str().map(|s| (s, b)).or_else(|| b.as_str().map(|s| (s, a))) {
        let Some(n) = count(n) else { return minijinja_op(&MUL, a, b) };
        if text.len().checked_mul(n).is_none_or(|len| len > byte_cap()) {
            return Err(too_large("a * b"));
        }
        return Ok(Value::from(text.repeat(n)));
    }
    let sequence =
        [(a, b), (b, a)].into_iter().find(|(s, _)| matches!(s.kind(), ValueKind::Seq | ValueKind::Iterable));
    if let Some((sequence, n)) = sequence
        && let Some(n) = count(n)
    {
        let Some(len) = items_of(sequence) else {
            return Err(own_error(ErrorKind::InvalidOperation, "* repeats lists of known length only"));
        };
        let total =
            len.checked_mul(n).filter(|total| *total <= MAX_ITEMS).ok_or_else(|| too_many("a * b"))?;
        let mut items = Vec::with_capacity(total);
        // An empty list repeated any number of times is empty: no loop over the count.
        if total > 0 {
            let one_weight = weigh(state, &[sequence], "a * b")?;
            if one_weight.checked_mul(n).is_none_or(|weight| weight > MAX_WEIGHT) {
                return Err(too_heavy("a * b"));
            }
            let mut one = Vec::with_capacity(len);
            collect_items(sequence, &mut one)?;
            for _ in 0..n {
                items.extend(one.iter().cloned());
            }
        }
        return Ok(if sequence.is_tuple() {
            Value::from_object(minijinja::value::Tuple::from(items))
        } else {
            Value::from(items)
        });
    }
    minijinja_op(&MUL, a, b)
}

/// minijinja's own operators, for what the bounds above leave to it (numbers, and the errors
/// it says for anything else), in an environment of their own with the templates' undefined
/// behaviour.
static OPERATORS: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::empty();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
    env
});
static ADD: LazyLock<Option<Expression<'static, 'static>>> =
    LazyLock::new(|| OPERATORS.compile_expression("a + b").ok());
static MUL: LazyLock<Option<Expression<'static, 'static>>> =
    LazyLock::new(|| OPERATORS.compile_expression("a * b").ok());

fn minijinja_op(
    expression: &LazyLock<Option<Expression<'static, 'static>>>,
    a: &Value,
    b: &Value,
) -> Result<Value, minijinja::Error> {
    let expression = expression
        .as_ref()
        .ok_or_else(|| own_error(ErrorKind::InvalidOperation, "an operator could not be prepared"))?;
    expression.eval(minijinja::context! { a => a.clone(), b => b.clone() })
}

/// `join`: the items' text with `separator` between them, refused past the cap.
pub(crate) fn join(
    value: &Value,
    separator: Option<&str>,
    attribute: Option<&str>,
    kwargs: Kwargs,
) -> Result<Value, minijinja::Error> {
    let separator = match separator {
        Some(separator) => separator.to_owned(),
        None => kwargs.get::<Option<String>>("d")?.unwrap_or_default(),
    };
    let attribute = match attribute {
        Some(attribute) => Some(attribute.to_owned()),
        None => kwargs.get::<Option<String>>("attribute")?,
    };
    kwargs.assert_all_used()?;
    let (separator, attribute) = (separator.as_str(), attribute.as_deref());
    let mut out = CappedText { text: String::new(), limit: byte_cap() };
    for (index, item) in value.try_iter()?.enumerate() {
        if index >= MAX_ITEMS {
            return Err(too_many("join"));
        }
        let item = match attribute {
            Some(path) => path.split('.').try_fold(item, |item, name| item.get_attr(name))?,
            None => item,
        };
        let written = if index > 0 { out.write_str(separator) } else { Ok(()) };
        written
            .and_then(|()| match item.as_str() {
                Some(text) => out.write_str(text),
                None => write!(out, "{item}"),
            })
            .map_err(|_| too_large("join"))?;
    }
    Ok(Value::from(out.text))
}

/// `string`: the value's text, refused past the cap.
pub(crate) fn string(state: &State, value: &Value) -> Result<Value, minijinja::Error> {
    if value.is_undefined() {
        return minijinja::filters::string(state, value);
    }
    if value.kind() == ValueKind::String {
        return Ok(value.clone());
    }
    capped_display(value, "string").map(Value::from)
}

/// A string's text, or bytes as minijinja's string filters read them (lossy UTF-8).
fn text_or_bytes(value: &Value) -> Option<std::borrow::Cow<'_, str>> {
    value.as_str().map(std::borrow::Cow::Borrowed).or_else(|| value.as_bytes().map(String::from_utf8_lossy))
}

/// `split`: minijinja's, once the number of pieces is known to be within [`MAX_ITEMS`].
pub(crate) fn split(
    value: &Value,
    separator: Option<std::sync::Arc<str>>,
    max: Option<i64>,
) -> Result<Value, minijinja::Error> {
    let text = text_or_bytes(value);
    if let Some(text) = text {
        let pieces = match separator.as_deref() {
            None => text.split_whitespace().count(),
            // Splitting on "" gives every character, and an empty piece at each end.
            Some("") => text.chars().count().saturating_add(2),
            Some(separator) => text.matches(separator).count().saturating_add(1),
        };
        let limited =
            max.and_then(|m| usize::try_from(m).ok()).map_or(pieces, |m| pieces.min(m.saturating_add(1)));
        if limited > MAX_ITEMS {
            return Err(too_many("split"));
        }
    }
    minijinja::filters::split(value, separator, max)
}

/// `lines`: minijinja's, once the number of lines is known to be within [`MAX_ITEMS`].
pub(crate) fn lines(value: &Value) -> Result<Value, minijinja::Error> {
    let text = text_or_bytes(value);
    if text.is_some_and(|text| text.lines().count() > MAX_ITEMS) {
        return Err(too_many("lines"));
    }
    minijinja::filters::lines(value)
}

/// `sum`: of numbers only (minijinja's would also add lists, lazily and without bound).
pub(crate) fn sum(
    state: &State,
    values: Value,
    attribute: Option<&str>,
    start: Option<Value>,
    kwargs: Kwargs,
) -> Result<Value, minijinja::Error> {
    let start = match start {
        Some(start) => Some(start),
        None => kwargs.get::<Option<Value>>("start")?,
    };
    if start.as_ref().is_some_and(|start| !start.is_number()) {
        return Err(own_error(ErrorKind::InvalidOperation, "sum adds numbers; its start must be a number"));
    }
    minijinja::filters::sum(state, values, attribute, start, kwargs)
}

/// Writes a value to the output: text as it is, anything else through its text refused past
/// the cap (a list of a hundred thousand references to one large string prints no further).
pub(crate) fn formatter(
    out: &mut minijinja::Output<'_>,
    state: &mut State<'_, '_>,
    value: &Value,
) -> Result<(), minijinja::Error> {
    match value.kind() {
        ValueKind::Seq | ValueKind::Iterable | ValueKind::Map | ValueKind::Plain => {
            let text = capped_display(value, "the value written")?;
            minijinja::escape_formatter(out, state, &Value::from(text))
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// Sets the bounds on `env`: the operator functions, our filters in place of minijinja's, the
/// formatter, and no `pprint` or `debug`.
pub(crate) fn install(env: &mut Environment<'static>) {
    env.set_fuel(Some(FUEL));
    env.add_function(CONCAT_FN, concat);
    env.add_function(ADD_FN, add);
    env.add_function(MUL_FN, mul);
    env.add_filter("join", join);
    env.add_filter("string", string);
    env.add_filter("split", split);
    env.add_filter("lines", lines);
    env.add_filter("sum", sum);
    env.add_function(LIST_FN, list);
    env.add_function(TUPLE_FN, tuple);
    env.add_function(MAP_FN, map);
    env.add_function(ASSIGN_FN, assign);
    env.add_function("dict", dict);
    env.add_function("namespace", namespace);
    env.remove_filter("pprint");
    env.remove_global("debug");
    env.set_formatter(formatter);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shaping::rewrite::rewrite_operators;

    fn render(template: &str, cap: usize) -> Result<String, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
        install(&mut env);
        let source = rewrite_operators(template, minijinja::syntax::SyntaxConfig::default())
            .map_err(|()| "does not parse".to_owned())?;
        let _cap = ByteCap::set(cap);
        env.render_str(&source, ()).map_err(|e| format!("{e:#}"))
    }

    /// A namespace that holds itself would be printed, compared or written as JSON without end,
    /// down the thread's stack: it cannot be made.
    #[test]
    fn a_namespace_cannot_hold_a_namespace() {
        for template in [
            "{% set ns = namespace(x=1) %}{% set ns.x = ns %}{{ ns }}",
            "{% set ns = namespace(x=1) %}{% set ns.x = [ns] %}{{ ns }}",
            "{% set ns = namespace(x=1) %}{% set ns.x = {'a': ns} %}{{ ns == ns }}",
            "{% set a = namespace() %}{% set b = namespace(x=a) %}{% set a.x, a.y = 1, b %}{{ a }}",
            "{% set ns = namespace() %}{% set ns.x = dict(y=ns) %}{{ ns }}",
        ] {
            let error = render(template, 1 << 20).err().unwrap_or_default();
            assert!(error.contains("a namespace cannot hold one"), "{template}: {error}");
        }
        assert_eq!(
            render(
                "{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
                1 << 20
            ),
            Ok("3".to_owned())
        );
        assert_eq!(
            render("{% set ns = namespace() %}{% set ns.l = [1, 2] %}{{ ns.l }}", 1 << 20),
            Ok("[1, 2]".to_owned())
        );
    }

    /// What minijinja itself renders, without the bounds.
    fn unbounded(template: &str) -> Result<String, String> {
        let mut env = Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::SemiStrict);
        env.render_str(template, ()).map_err(|e| format!("{e:#}"))
    }

    #[test]
    fn values_stay_what_minijinja_makes_them() -> Result<(), String> {
        for (template, expected) in [
            ("{{ 'a' ~ 1 ~ none ~ [1, 'b'] ~ {'k': 2} }}", "a1none[1, \"b\"]{\"k\": 2}"),
            ("{{ 1 + 2 }} {{ 1.5 + 1 }} {{ 'a' + 'b' }}", "3 2.5 ab"),
            ("{{ [1] + [2, 3] }} {{ (1,) + (2,) }}", "[1, 2, 3] (1, 2)"),
            ("{{ 'ab' * 2 }} {{ 2 * 'c' }} {{ [1] * 3 }} {{ 'x' * -1 }}|", "abab cc [1, 1, 1] |"),
            ("{{ 3 * 4 }} {{ 9223372036854775807 + 1 }}", "12 9223372036854775808"),
            ("{{ [1, 2] | join('-') }} {{ [{'a': 1}] | join(attribute='a') }}", "1-2 1"),
            ("{{ [1, 2] | string }} {{ 'a b' | split | length }} {{ [1, 2] | sum }}", "[1, 2] 2 3"),
            ("{{ {'a': [1, (2, 3)], 'b': {}} }} {{ (1,) }} {{ () }} {{ [] }}", ""),
            (
                "{% for k, v in {'a': 1} | items %}{{ k }}={{ v }}{% endfor %}{% set x, y = (1, 2) %}{{ x + y }}",
                "",
            ),
            (
                "{% set ns = namespace(l=[]) %}{% set ns.l = ns.l + [1] %}{{ ns.l }} {{ dict(a=1, b=[2]) }}",
                "",
            ),
            ("{{ [] * 1000000000000000000 }} {{ ('ab' | split('')) }}", ""),
        ] {
            assert_eq!(render(template, 1024)?, unbounded(template)?, "{template}");
            let _ = expected;
        }
        Ok(())
    }

    #[test]
    fn growth_past_the_bounds_is_refused_before_it_is_built() {
        for (template, words) in [
            ("{% set a = 'x' * 63000000 %}", "larger than 1024 bytes"),
            ("{% set a = 'x' * 1000 %}{{ a ~ a }}", "larger than 1024 bytes"),
            // Refused by the item bound or, first, by the fuel its items cost.
            (
                "{% set ns = namespace(x=[1]) %}{% for i in range(40) %}{% set ns.x = ns.x + ns.x %}{% endfor %}",
                "100000 items|out of fuel",
            ),
            (
                "{% set ns = namespace(s='xx') %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
                "larger than",
            ),
            ("{{ ([('x' * 1000)] * 100) | join }}", "larger than"),
            ("{{ ([('x' * 1000)] * 100) | string }}", "larger than"),
            ("{{ [('x' * 1000)] * 100 }}", "larger than"),
            ("{{ [1] * 1000000 }}", "more than 100000 items"),
            ("{{ [1, 2] | sum(start=[]) }}", "must be a number"),
            ("{{ (',' * 1000) | split(',') | length }}", ""),
            ("{{ [1] | pprint }}", "unknown filter"),
            // Shared parts: cheap to build, exponential to print or compare.
            (
                "{% set a=[1]*100 %}{% set b=[a]*100 %}{% set c=[b]*100 %}{{ c | upper }}",
                "more than 100000 values",
            ),
            (
                "{% set a=[1,1,1,1,1,1,1,1,1,1] %}{% set b=[a,a,a,a,a,a,a,a,a,a] %}{% set c=[b,b,b,b,b,b,b,b,b,b] %}{% set d=[c,c,c,c,c,c,c,c,c,c] %}{% set e=[d,d,d,d,d,d,d,d,d,d] %}{{ e == e }}",
                "more than 100000 values",
            ),
            (
                "{% set a={'k': [1]*1000} %}{% set b={'1': a, '2': a, '3': a, '4': a, '5': a, '6': a, '7': a, '8': a, '9': a, '10': a} %}{% set c=dict(x=b, y=b, z=b, w=b, v=b, u=b, t=b, s=b, r=b, q=b) %}",
                "more than 100000 values",
            ),
            (
                "{% set a=(1,)*1000 %}{% set b=(a, a, a, a, a, a, a, a, a, a) %}{% set c = b, b, b, b, b, b, b, b, b, b %}",
                "more than 100000 values",
            ),
            ("{{ missing ~ 'x' }}", "undefined"),
            ("{{ ('x' * 1000) | split('') | length }}", ""),
            ("{{ debug() }}", "unknown function"),
        ] {
            let result = render(template, 1024);
            if words.is_empty() {
                assert!(result.is_ok(), "{template}: {result:?}");
            } else {
                let said = |e: &String| words.split('|').any(|word| e.contains(word));
                assert!(result.as_ref().is_err_and(said), "{template}: {result:?}");
            }
        }
    }
}
