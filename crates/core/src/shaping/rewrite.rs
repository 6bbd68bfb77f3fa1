//! Templates compiled with their operators and literals bounded: `a + b`, `a * b`, `a ~ b`,
//! list, tuple and map literals and `{% set ns.attr = value %}` are rewritten, from minijinja's
//! own syntax tree, into calls of the bounded functions of [`super::bounds`].

/// The names the operators and literals are rewritten to: not names a template would use (two
/// leading underscores), and harmless when it does (the same bounded functions).
pub(crate) const CONCAT_FN: &str = "__csp_concat";
pub(crate) const ADD_FN: &str = "__csp_add";
pub(crate) const MUL_FN: &str = "__csp_mul";
pub(crate) const LIST_FN: &str = "__csp_list";
pub(crate) const TUPLE_FN: &str = "__csp_tuple";
pub(crate) const MAP_FN: &str = "__csp_map";
pub(crate) const ASSIGN_FN: &str = "__csp_assign";

/// `source` with every `a + b`, `a * b` and `a ~ b` and every list, tuple and map literal
/// written as a call of the bounded function, from minijinja's syntax tree (so precedence and
/// parentheses are its own); names assigned to (`for a, b in`, `set a, b =`, `with`, macro
/// arguments) stay. Line numbers stay: no line break is added. `Err` when the source does not
/// parse (compiling it says why) or a node is not where its span says.
pub(crate) fn rewrite_operators(source: &str, syntax: minijinja::syntax::SyntaxConfig) -> Result<String, ()> {
    let tree = minijinja::machinery::parse(source, "template", syntax).map_err(|_| ())?;
    // Through text: serde_json's writer takes every number a constant can be (i128), its
    // `Value` serializer does not; constants are not read here. The tree nests at most as deep
    // as minijinja's parser lets a template (150), a few JSON levels a node: no depth limit on
    // reading it back.
    let text = serde_json::to_string(&tree).map_err(|_| ())?;
    let mut reader = serde_json::Deserializer::from_str(&text);
    reader.disable_recursion_limit();
    let tree: serde_json::Value = serde::Deserialize::deserialize(&mut reader).map_err(|_| ())?;
    let mut edits = Vec::new();
    collect(source, &tree, &mut edits)?;
    if edits.is_empty() {
        return Ok(source.to_owned());
    }
    apply(source, &mut edits)
}

/// One change to the source: text put before the character at `at`, or the character at `at`
/// replaced.
#[derive(Debug)]
enum Edit {
    /// `(` of a call: the outer expression (the one that ends later) opens first.
    Open {
        at: usize,
        ends: usize,
        text: &'static str,
    },
    /// `)` of a call: the inner expression (the one that starts later) closes first.
    Close {
        at: usize,
        starts: usize,
    },
    Replace {
        at: usize,
        text: &'static str,
    },
    /// The character at `at` (an opening bracket) replaced by `function(`.
    Call {
        at: usize,
        function: &'static str,
    },
}

impl Edit {
    /// Where it applies, then in which order among the edits at one place: closers, then
    /// openers, then the character's replacement.
    fn order(&self) -> (usize, u8, std::cmp::Reverse<usize>) {
        match self {
            Self::Close { at, starts } => (*at, 0, std::cmp::Reverse(*starts)),
            Self::Open { at, ends, .. } => (*at, 1, std::cmp::Reverse(*ends)),
            Self::Replace { at, .. } | Self::Call { at, .. } => (*at, 2, std::cmp::Reverse(0)),
        }
    }
}

/// A node's span (`inner[1]`) as byte offsets.
fn span(node: &serde_json::Value) -> Option<(usize, usize)> {
    let span = node.get("inner")?.get(1)?;
    let offset = |key: &str| span.get(key)?.as_u64().and_then(|n| usize::try_from(n).ok());
    Some((offset("start_offset")?, offset("end_offset")?))
}

/// The byte offset of `wanted` between `from` and `to` (between two operands, or a key and its
/// value): only spaces, parentheses and the token itself stand there.
fn find_between(source: &str, from: usize, to: usize, wanted: char) -> Result<usize, ()> {
    let gap = source.get(from..to).ok_or(())?;
    gap.find(wanted).map(|at| at + from).ok_or(())
}

/// `[…]` or `{…}` written as `function(…)`: its brackets replaced (the span must start and end
/// with them).
fn call_instead_of_brackets(
    source: &str,
    node: &serde_json::Value,
    (open, close): (char, char),
    function: &'static str,
    edits: &mut Vec<Edit>,
) -> Result<(), ()> {
    let (start, end) = span(node).ok_or(())?;
    let char_at = |at: usize| source.get(at..).and_then(|rest| rest.chars().next());
    if char_at(start) != Some(open) || char_at(end.saturating_sub(1)) != Some(close) {
        return Err(());
    }
    edits.push(Edit::Call { at: start, function });
    edits.push(Edit::Replace { at: end - 1, text: ")" });
    Ok(())
}

/// Walks the serialized tree (iteratively) and collects the edits for every operator and
/// literal that is a value (not a name assigned to).
fn collect(source: &str, tree: &serde_json::Value, edits: &mut Vec<Edit>) -> Result<(), ()> {
    let mut stack = vec![tree];
    while let Some(node) = stack.pop() {
        let map = match node {
            serde_json::Value::Object(map) => map,
            serde_json::Value::Array(items) => {
                stack.extend(items.iter());
                continue;
            }
            _ => continue,
        };
        let inner = node.get("inner").and_then(|inner| inner.get(0));
        match (map.get("expr").and_then(serde_json::Value::as_str), inner) {
            (Some("BinOp"), Some(binop)) => {
                let function = match binop.get("op").and_then(serde_json::Value::as_str) {
                    Some("Add") => Some((ADD_FN, '+')),
                    Some("Mul") => Some((MUL_FN, '*')),
                    Some("Concat") => Some((CONCAT_FN, '~')),
                    _ => None,
                };
                if let Some((text, operator)) = function {
                    let (start, end) = span(node).ok_or(())?;
                    let left = binop.get("left").and_then(span).ok_or(())?;
                    let right = binop.get("right").and_then(span).ok_or(())?;
                    edits.push(Edit::Open { at: start, ends: end, text });
                    edits.push(Edit::Replace {
                        at: find_between(source, left.1, right.0, operator)?,
                        text: ",",
                    });
                    edits.push(Edit::Close { at: end, starts: start });
                }
            }
            (Some("List"), Some(_)) => call_instead_of_brackets(source, node, ('[', ']'), LIST_FN, edits)?,
            (Some("Map"), Some(literal)) => {
                call_instead_of_brackets(source, node, ('{', '}'), MAP_FN, edits)?;
                let keys = literal.get("keys").and_then(serde_json::Value::as_array).ok_or(())?;
                let values = literal.get("values").and_then(serde_json::Value::as_array).ok_or(())?;
                for (key, value) in keys.iter().zip(values) {
                    let (key, value) = (span(key).ok_or(())?, span(value).ok_or(())?);
                    edits.push(Edit::Replace { at: find_between(source, key.1, value.0, ':')?, text: "," });
                }
            }
            (Some("Tuple"), Some(literal)) => {
                let (start, end, parenthesized) = tuple_bounds(source, node, literal)?;
                if parenthesized {
                    edits.push(Edit::Call { at: start, function: TUPLE_FN });
                } else {
                    edits.push(Edit::Open { at: start, ends: end, text: "__csp_tuple" });
                    edits.push(Edit::Close { at: end, starts: start });
                }
            }
            _ => {}
        }
        // `{% set ns.attr = value %}` (its target holds an attribute): the value through
        // `__csp_assign`, the outermost call of the statement.
        if let (Some(target), Some(value)) = (map.get("target"), map.get("expr").filter(|e| e.is_object()))
            && map.len() == 2
            && holds_attribute(target)
        {
            let (start, end) = expression_bounds(source, value)?;
            edits.push(Edit::Open { at: start, ends: usize::MAX, text: ASSIGN_FN });
            edits.push(Edit::Close { at: end, starts: 0 });
        }
        for (key, value) in map {
            match key.as_str() {
                // Names assigned to: `for a, b in`, `set a, b =`, macro arguments.
                "target" => {}
                "args" if map.contains_key("defaults") => {}
                // `with a = x, b = y`: each pair's name.
                "assignments" => {
                    let pairs = value.as_array().map(Vec::as_slice).unwrap_or_default();
                    stack.extend(pairs.iter().filter_map(|pair| pair.get(1)));
                }
                _ => stack.push(value),
            }
        }
    }
    Ok(())
}

/// Where a tuple literal starts and ends in the source, and whether in its own parentheses:
/// `(a, b)` (its span starts before its first item, at the parenthesis) or `a, b`, whose span
/// minijinja does not start at its first item (the items say where it starts and ends).
fn tuple_bounds(
    source: &str,
    node: &serde_json::Value,
    literal: &serde_json::Value,
) -> Result<(usize, usize, bool), ()> {
    let char_at = |at: usize| source.get(at..).and_then(|rest| rest.chars().next());
    let (start, end) = span(node).ok_or(())?;
    let items = literal.get("items").and_then(serde_json::Value::as_array).ok_or(())?;
    let first = items.first().and_then(span);
    let last = items.last().and_then(span);
    if char_at(start) == Some('(') && first.is_none_or(|first| first.0 > start) {
        return Ok((start, end, true));
    }
    // An item in parentheses (`(a), (b)`) has its span inside them.
    let widen_back = |at: usize| {
        let before = source.get(..at).unwrap_or_default();
        let from = before.trim_end_matches(|c: char| c == '(' || c.is_whitespace()).len();
        let widened = &before[from..];
        if widened.trim_start().starts_with('(') { at - widened.trim_start().len() } else { at }
    };
    let widen_forward = |at: usize| {
        let after = source.get(at..).unwrap_or_default();
        let close = after.len() - after.trim_start_matches(|c: char| c == ')' || c.is_whitespace()).len();
        at + after[..close].trim_end().len()
    };
    let start = first.map_or(start, |f| widen_back(f.0));
    let end = last.map_or(end, |l| widen_forward(l.1.max(end)));
    Ok((start, end, false))
}

/// Where an expression starts and ends in the source (a tuple without parentheses by its items).
fn expression_bounds(source: &str, node: &serde_json::Value) -> Result<(usize, usize), ()> {
    match (node.get("expr").and_then(serde_json::Value::as_str), node.get("inner").and_then(|i| i.get(0))) {
        (Some("Tuple"), Some(literal)) => {
            tuple_bounds(source, node, literal).map(|(start, end, _)| (start, end))
        }
        _ => span(node).ok_or(()),
    }
}

/// Whether an assignment's target names an attribute (`ns.x`, or `a, ns.x`).
fn holds_attribute(target: &serde_json::Value) -> bool {
    let mut stack = vec![target];
    while let Some(node) = stack.pop() {
        match node {
            serde_json::Value::Object(map) => {
                if map.get("expr").and_then(serde_json::Value::as_str) == Some("GetAttr") {
                    return true;
                }
                stack.extend(map.values());
            }
            serde_json::Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    false
}

/// Applies the edits in order of place; at one place, closers, openers, then the character.
fn apply(source: &str, edits: &mut [Edit]) -> Result<String, ()> {
    edits.sort_by_key(Edit::order);
    let mut out = String::with_capacity(source.len() + edits.len() * 12);
    let mut next = 0;
    for (offset, character) in source.char_indices().chain(std::iter::once((source.len(), '\0'))) {
        let mut replaced = false;
        while let Some(edit) = edits.get(next).filter(|edit| edit.order().0 == offset) {
            match edit {
                Edit::Close { .. } => out.push(')'),
                Edit::Open { text, .. } => {
                    out.push_str(text);
                    out.push('(');
                }
                Edit::Replace { text, .. } => {
                    if replaced {
                        return Err(());
                    }
                    out.push_str(text);
                    replaced = true;
                }
                Edit::Call { function, .. } => {
                    if replaced {
                        return Err(());
                    }
                    out.push_str(function);
                    out.push('(');
                    replaced = true;
                }
            }
            next += 1;
        }
        if offset == source.len() {
            break;
        }
        if !replaced {
            out.push(character);
        }
    }
    if next == edits.len() { Ok(out) } else { Err(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(source: &str) -> String {
        rewrite_operators(source, minijinja::syntax::SyntaxConfig::default())
            .unwrap_or_else(|()| "(failed)".into())
    }

    #[test]
    fn operators_become_bounded_calls_with_minijinjas_precedence() {
        assert_eq!(rewritten("{{ a ~ b }}"), "{{ __csp_concat(a , b) }}");
        assert_eq!(rewritten("{{ a ~ b ~ c }}"), "{{ __csp_concat(__csp_concat(a , b) , c) }}");
        assert_eq!(rewritten("{{ (a ~ b) * 3 }}"), "{{ __csp_mul((__csp_concat(a , b)) , 3) }}");
        assert_eq!(rewritten("{{ a + b * c }}"), "{{ __csp_add(a , __csp_mul(b , c)) }}");
        assert_eq!(rewritten("{{ x | f(a+b) ~ 'y' }}"), "{{ __csp_concat(x | f(__csp_add(a,b)) , 'y') }}");
        assert_eq!(rewritten("{{ '+' ~ '*' }}"), "{{ __csp_concat('+' , '*') }}");
        assert_eq!(rewritten("{{ a ** 2 - b / c }}"), "{{ a ** 2 - b / c }}");
        assert_eq!(
            rewritten("{% set ns.x = ns.x + ns.x %}"),
            "{% set ns.x = __csp_assign(__csp_add(ns.x , ns.x)) %}"
        );
        assert_eq!(rewritten("plain {# ~ #} text"), "plain {# ~ #} text");
    }

    #[test]
    fn literals_become_bounded_calls_and_names_assigned_to_stay() {
        assert_eq!(rewritten("{{ [a, [b]] }}"), "{{ __csp_list(a, __csp_list(b)) }}");
        assert_eq!(rewritten("{{ {'k': v, 'j': [w]} }}"), "{{ __csp_map('k', v, 'j', __csp_list(w)) }}");
        assert_eq!(
            rewritten("{{ (a, b) }}{{ (a,) }}{{ () }}"),
            "{{ __csp_tuple(a, b) }}{{ __csp_tuple(a,) }}{{ __csp_tuple() }}"
        );
        assert_eq!(rewritten("{% set t = a, b %}"), "{% set t = __csp_tuple(a, b) %}");
        assert_eq!(rewritten("{% set t = (a), (b) %}"), "{% set t = __csp_tuple((a), (b)) %}");
        assert_eq!(
            rewritten(
                "{% for k, v in [(1, 2)] %}{% endfor %}{% set a, b = x %}{% with c = [1] %}{% endwith %}"
            ),
            "{% for k, v in __csp_list(__csp_tuple(1, 2)) %}{% endfor %}{% set a, b = x %}{% with c = __csp_list(1) %}{% endwith %}"
        );
        assert_eq!(
            rewritten("{% macro m(a, b=[1]) %}{% endmacro %}{{ [a] ~ b }}"),
            "{% macro m(a, b=__csp_list(1)) %}{% endmacro %}{{ __csp_concat(__csp_list(a) , b) }}"
        );
    }

    #[test]
    fn attribute_assignments_go_through_assign_and_names_do_not() {
        assert_eq!(rewritten("{% set ns.x = ns %}"), "{% set ns.x = __csp_assign(ns) %}");
        assert_eq!(
            rewritten("{% set ns.n = ns.n + 1 %}"),
            "{% set ns.n = __csp_assign(__csp_add(ns.n , 1)) %}"
        );
        assert_eq!(
            rewritten("{% set a, ns.b = 1, [ns] %}"),
            "{% set a, ns.b = __csp_assign(__csp_tuple(1, __csp_list(ns))) %}"
        );
        assert_eq!(rewritten("{% set ns.t = (1, 2) %}"), "{% set ns.t = __csp_assign(__csp_tuple(1, 2)) %}");
        assert_eq!(
            rewritten("{% set x = ns %}{% set ns.y %}text{% endset %}"),
            "{% set x = ns %}{% set ns.y %}text{% endset %}"
        );
    }
}
