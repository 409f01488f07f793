//! The Redfish query parameters that reshape a response: `$filter`, `$expand`, `$select` and
//! `only`. The service root advertises them in `ProtocolFeaturesSupported`; `$top` and `$skip`
//! stay with the handlers that page, `excerpt` is accepted and ignored.
//!
//! A GET with any of them is first served as if they were absent. [`QueryOptions::apply`]
//! then reshapes that body, fetching the members and linked resources it needs through a
//! callback that reads them as the same user.

use http::StatusCode;
use serde_json::{Map, Value};

use crate::read::{page_members, Paging};
use crate::reply::{msg, ErrorReply};

/// Deepest `$levels` accepted, as advertised in `ExpandQuery.MaxLevels`.
pub(crate) const MAX_EXPAND_LEVELS: u32 = 3;

/// Deepest nesting of parentheses and `not` accepted in `$filter`. The parser and the
/// evaluator recurse once per level, so an unbounded depth would overflow the stack.
const MAX_FILTER_DEPTH: usize = 32;

/// Maximum number of comparisons in one `$filter`. Each `and` or `or` adds a level to the parsed
/// tree, which is evaluated and dropped recursively, so long chains are bounded too.
const MAX_FILTER_COMPARISONS: usize = 64;

/// Properties that `$select` always keeps.
const ALWAYS_SELECTED: [&str; 4] = ["@odata.id", "@odata.type", "@odata.context", "@odata.etag"];

/// The reshaping options of one request.
#[derive(Debug, Default)]
pub(crate) struct QueryOptions {
    filter: Option<Filter>,
    expand: Option<Expand>,
    select: Option<Vec<String>>,
    only: bool,
    /// `$skip`/`$top` taken over from the handler because they must apply after `$filter`.
    paging: Option<(usize, Option<usize>)>,
}

/// The references that `$expand` replaces, and the depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expand {
    subordinates: bool,
    links: bool,
    levels: u32,
}

impl QueryOptions {
    /// Takes the reshaping options out of `query` and returns them with the parameters left
    /// for the handlers.
    ///
    /// # Errors
    ///
    /// 400 `QueryParameterValueFormatError` for a value that does not parse, and
    /// `QueryParameterValueTypeError` for `only` with a value.
    pub(crate) fn split(
        query: &[(String, String)],
    ) -> Result<(Self, Vec<(String, String)>), ErrorReply> {
        let mut options = Self::default();
        let mut rest = Vec::new();
        for (name, value) in query {
            match name.as_str() {
                "$filter" => options.filter = Some(Filter::parse(value)?),
                "$expand" => options.expand = Some(parse_expand(value)?),
                "$select" => {
                    let names: Vec<String> = value
                        .split(',')
                        .map(|s| s.trim().to_owned())
                        .filter(|s| !s.is_empty())
                        .collect();
                    if names.is_empty() {
                        return Err(format_error(value, name));
                    }
                    options.select = Some(names);
                }
                "only" if !value.is_empty() => {
                    return Err(ErrorReply::new(
                        StatusCode::BAD_REQUEST,
                        msg::query_parameter_value_type_error(value, name),
                    ));
                }
                "only" => options.only = true,
                _ => rest.push((name.clone(), value.clone())),
            }
        }
        if options.filter.is_some() {
            // Paging applies to the filtered members, so it moves here.
            let mut skip = 0;
            let mut top = None;
            let mut matching = Vec::new();
            for (name, value) in rest {
                let number = || {
                    value.parse::<usize>().map_err(|_| {
                        ErrorReply::new(
                            StatusCode::BAD_REQUEST,
                            msg::query_parameter_value_type_error(&value, &name),
                        )
                    })
                };
                match name.as_str() {
                    "$skip" => skip = number()?,
                    "$top" => top = Some(number()?),
                    _ => matching.push((name, value)),
                }
            }
            options.paging = Some((skip, top));
            rest = matching;
        }
        Ok((options, rest))
    }

    /// Checks whether `query` names any reshaping option, without parsing the values, so
    /// that a request is authenticated before its options are parsed.
    pub(crate) fn requested(query: &[(String, String)]) -> bool {
        query
            .iter()
            .any(|(name, _)| matches!(name.as_str(), "$filter" | "$expand" | "$select" | "only"))
    }

    /// Checks whether the request had none of the reshaping options.
    pub(crate) fn is_empty(&self) -> bool {
        self.filter.is_none() && self.expand.is_none() && self.select.is_none() && !self.only
    }

    /// Reshapes `body`, the resource at `path`; `fetch` reads another resource by URI path.
    ///
    /// # Errors
    ///
    /// 400 `QueryNotSupportedOnResource` for `$filter` or `only` on a resource that is not a
    /// collection.
    pub(crate) fn apply(
        &self,
        path: &str,
        mut body: Value,
        fetch: &mut dyn FnMut(&str) -> Option<Value>,
    ) -> Result<Value, ErrorReply> {
        let is_collection = body.get("Members").is_some_and(Value::is_array);
        let not_supported = || {
            ErrorReply::new(
                StatusCode::BAD_REQUEST,
                msg::query_not_supported_on_resource(),
            )
        };

        // 1. `only`: a collection with exactly one member is replaced by that member.
        if self.only {
            if !is_collection {
                return Err(not_supported());
            }
            let single = match body
                .get("Members")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
            {
                Some([member]) => member_path(member),
                _ => None,
            };
            if let Some(member) = single.and_then(|p| fetch(&p)) {
                body = member;
            }
        }

        // 2. `$filter` keeps the members that match, then pages them.
        if let Some(filter) = &self.filter {
            if !is_collection {
                return Err(not_supported());
            }
            if let Some(members) = body.get_mut("Members").and_then(Value::as_array_mut) {
                let mut matching = Vec::new();
                for member in members.drain(..) {
                    let resolved = if is_reference(&member) {
                        member_path(&member).and_then(|p| fetch(&p))
                    } else {
                        Some(member.clone())
                    };
                    if resolved.is_some_and(|m| filter.matches(&m)) {
                        matching.push(member);
                    }
                }
                *members = matching;
            }
            let (skip, top) = self.paging.unwrap_or((0, None));
            page_members(&mut body, path, &Paging::new(skip, top));
        }

        // 3. `$expand` replaces references with the resources they name.
        if let Some(expand) = self.expand {
            expand_value(&mut body, false, expand, expand.levels, true, fetch);
        }

        // 4. `$select` keeps the named properties (of the members, for a collection).
        if let Some(names) = &self.select {
            if is_collection && !self.only {
                if let Some(members) = body.get_mut("Members").and_then(Value::as_array_mut) {
                    for member in members.iter_mut().filter(|m| !is_reference(m)) {
                        *member = select(member, names);
                    }
                }
            } else {
                body = select(&body, names);
            }
        }
        Ok(body)
    }
}

fn format_error(value: &str, name: &str) -> ErrorReply {
    ErrorReply::new(
        StatusCode::BAD_REQUEST,
        msg::query_parameter_value_format_error(value, name),
    )
}

/// Parses `*`, `.` or `~`, each optionally followed by `($levels=N)`.
fn parse_expand(value: &str) -> Result<Expand, ErrorReply> {
    let bad = || format_error(value, "$expand");
    let value = value.trim();
    let (kind, rest) = value.split_at(value.len().min(1));
    let (subordinates, links) = match kind {
        "*" => (true, true),
        "." => (true, false),
        "~" => (false, true),
        _ => return Err(bad()),
    };
    let levels = if rest.is_empty() {
        1
    } else {
        let number = rest
            .strip_prefix("($levels=")
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(bad)?;
        number
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_EXPAND_LEVELS).contains(n))
            .ok_or_else(bad)?
    };
    Ok(Expand {
        subordinates,
        links,
        levels,
    })
}

/// Checks whether `value` is a bare reference: an object with `@odata.id` only.
fn is_reference(value: &Value) -> bool {
    value
        .as_object()
        .is_some_and(|map| map.len() == 1 && map.get("@odata.id").is_some_and(Value::is_string))
}

/// Returns the URI path that a member or reference names. A URI with a fragment points inside
/// a resource, so it gives `None` and is not expanded.
fn member_path(value: &Value) -> Option<String> {
    let uri = value.get("@odata.id")?.as_str()?;
    (!uri.contains('#')).then(|| crate::tree::normalize_path(uri))
}

/// Replaces the references in `value` that `expand` covers. `in_links` is true when `value`
/// sits inside a `Links` object, and `top` when it is the requested resource itself.
fn expand_value(
    value: &mut Value,
    in_links: bool,
    expand: Expand,
    levels: u32,
    top: bool,
    fetch: &mut dyn FnMut(&str) -> Option<Value>,
) {
    if levels == 0 {
        return;
    }
    if !top && is_reference(value) {
        let expected = if in_links {
            expand.links
        } else {
            expand.subordinates
        };
        if !expected {
            return;
        }
        if let Some(mut resource) = member_path(value).and_then(|p| fetch(&p)) {
            expand_value(&mut resource, false, expand, levels - 1, true, fetch);
            *value = resource;
        }
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key.starts_with('@') || key == "Actions" {
                    continue;
                }
                let links = in_links || key == "Links";
                expand_value(child, links, expand, levels, false, fetch);
            }
        }
        Value::Array(items) => {
            for item in items {
                expand_value(item, in_links, expand, levels, false, fetch);
            }
        }
        _ => {}
    }
}

/// Keeps the `names` (each a property or a `A/B` path) and the OData annotations of `body`.
fn select(body: &Value, names: &[String]) -> Value {
    let Some(map) = body.as_object() else {
        return body.clone();
    };
    if names.iter().any(|n| n == "*") {
        return body.clone();
    }
    let mut out = Map::new();
    for key in ALWAYS_SELECTED {
        if let Some(value) = map.get(key) {
            out.insert(key.to_owned(), value.clone());
        }
    }
    for name in names {
        copy_path(map, &mut out, name);
    }
    Value::Object(out)
}

/// Copies the property at `path` (`A` or `A/B/...`) from `from` into `to`.
fn copy_path(from: &Map<String, Value>, to: &mut Map<String, Value>, path: &str) {
    let (head, rest) = match path.split_once('/') {
        Some((head, rest)) => (head, Some(rest)),
        None => (path, None),
    };
    let Some(value) = from.get(head) else {
        return;
    };
    match (rest, value.as_object()) {
        (Some(rest), Some(inner)) => {
            let entry = to
                .entry(head.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if let Some(target) = entry.as_object_mut() {
                copy_path(inner, target, rest);
            }
        }
        _ => {
            to.insert(head.to_owned(), value.clone());
        }
    }
}

/// A parsed `$filter` expression.
#[derive(Debug, Clone, PartialEq)]
enum Filter {
    Compare(String, Op, Value),
    Not(Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

/// A comparison operator of `$filter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A token of a `$filter` expression.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    Word(String),
    Literal(Value),
}

impl Filter {
    /// Parses a filter such as `Id eq 'Administrator' or not (Enabled eq false)`.
    fn parse(text: &str) -> Result<Self, ErrorReply> {
        let bad = || format_error(text, "$filter");
        let tokens = tokenize(text).ok_or_else(bad)?;
        let mut parser = Parser {
            tokens,
            at: 0,
            depth: 0,
            comparisons: 0,
        };
        let filter = parser.or().ok_or_else(bad)?;
        if parser.at != parser.tokens.len() {
            return Err(bad());
        }
        Ok(filter)
    }

    /// Evaluates the filter on a member body; a missing property compares as `null`.
    fn matches(&self, body: &Value) -> bool {
        match self {
            Filter::Not(inner) => !inner.matches(body),
            Filter::And(a, b) => a.matches(body) && b.matches(body),
            Filter::Or(a, b) => a.matches(body) || b.matches(body),
            Filter::Compare(property, op, literal) => {
                let pointer = format!("/{property}");
                let actual = body.pointer(&pointer).unwrap_or(&Value::Null);
                compare(actual, *op, literal)
            }
        }
    }
}

fn compare(actual: &Value, op: Op, literal: &Value) -> bool {
    use std::cmp::Ordering;
    let order = match (actual, literal) {
        (Value::Number(a), Value::Number(b)) => a
            .as_f64()
            .zip(b.as_f64())
            .and_then(|(a, b)| a.partial_cmp(&b)),
        (Value::String(a), Value::String(b)) => Some(a.cmp(b)),
        (a, b) if a == b => Some(Ordering::Equal),
        _ => None,
    };
    match op {
        Op::Eq => order == Some(Ordering::Equal),
        Op::Ne => order != Some(Ordering::Equal),
        Op::Gt => order == Some(Ordering::Greater),
        Op::Ge => matches!(order, Some(Ordering::Greater | Ordering::Equal)),
        Op::Lt => order == Some(Ordering::Less),
        Op::Le => matches!(order, Some(Ordering::Less | Ordering::Equal)),
    }
}

/// Splits a filter into tokens; `None` for an unterminated string or a stray character.
fn tokenize(text: &str) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' | '\t' => {
                chars.next();
            }
            '(' => {
                chars.next();
                tokens.push(Token::Open);
            }
            ')' => {
                chars.next();
                tokens.push(Token::Close);
            }
            '\'' => {
                chars.next();
                let mut literal = String::new();
                loop {
                    match chars.next()? {
                        // Two quotes inside a string stand for one.
                        '\'' if chars.peek() == Some(&'\'') => {
                            chars.next();
                            literal.push('\'');
                        }
                        '\'' => break,
                        other => literal.push(other),
                    }
                }
                tokens.push(Token::Literal(Value::String(literal)));
            }
            c if c.is_ascii_alphanumeric() || matches!(c, '_' | '/' | '.' | '-' | '@' | '#') => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || matches!(c, '_' | '/' | '.' | '-' | '@' | '#') {
                        word.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(Token::Word(word));
            }
            _ => return None,
        }
    }
    Some(tokens)
}

/// A recursive-descent parser over the tokens: `or` binds loosest, then `and`, then `not`.
/// It returns `None` once nesting passes [`MAX_FILTER_DEPTH`] or the comparisons pass
/// [`MAX_FILTER_COMPARISONS`].
struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// Parentheses and `not` open around the current token.
    depth: usize,
    /// Comparisons parsed so far.
    comparisons: usize,
}

impl Parser {
    fn peek_word(&self, word: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token::Word(w)) if w == word)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn or(&mut self) -> Option<Filter> {
        let mut left = self.and()?;
        while self.peek_word("or") {
            self.at += 1;
            let right = self.and()?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Some(left)
    }

    fn and(&mut self) -> Option<Filter> {
        let mut left = self.unary()?;
        while self.peek_word("and") {
            self.at += 1;
            let right = self.unary()?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Some(left)
    }

    fn unary(&mut self) -> Option<Filter> {
        if self.peek_word("not") {
            self.at += 1;
            self.enter()?;
            let inner = self.unary()?;
            self.depth -= 1;
            return Some(Filter::Not(Box::new(inner)));
        }
        if self.tokens.get(self.at) == Some(&Token::Open) {
            self.at += 1;
            self.enter()?;
            let inner = self.or()?;
            self.depth -= 1;
            return (self.next()? == Token::Close).then_some(inner);
        }
        self.comparisons += 1;
        if self.comparisons > MAX_FILTER_COMPARISONS {
            return None;
        }
        let Token::Word(property) = self.next()? else {
            return None;
        };
        let Token::Word(op) = self.next()? else {
            return None;
        };
        let op = match op.as_str() {
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            _ => return None,
        };
        let literal = match self.next()? {
            Token::Literal(value) => value,
            Token::Word(word) => match word.as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                number => Value::Number(number.parse::<serde_json::Number>().ok()?),
            },
            _ => return None,
        };
        Some(Filter::Compare(property, op, literal))
    }

    /// Opens one nesting level, or returns `None` past [`MAX_FILTER_DEPTH`].
    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_FILTER_DEPTH).then_some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn matches(filter: &str, body: Value) -> bool {
        Filter::parse(filter).unwrap().matches(&body)
    }

    #[test]
    fn filter_combines_comparisons_with_not_and_or() {
        let admin = json!({"Id": "Administrator", "Count": 3, "Status": {"Health": "OK"}});
        assert!(matches("Id eq 'Administrator'", admin.clone()));
        assert!(!matches("not (Id eq 'Administrator')", admin.clone()));
        assert!(matches("Id eq 'x' or Id eq 'Administrator'", admin.clone()));
        assert!(matches("Count gt 2 and Count le 3", admin.clone()));
        assert!(!matches("Count lt 3", admin.clone()));
        assert!(matches("Status/Health eq 'OK'", admin.clone()));
        assert!(matches("Missing eq null", admin));
    }

    #[test]
    fn malformed_filter_is_rejected() {
        for bad in [
            "Id eq",
            "Id is 'x'",
            "(Id eq 'x'",
            "Id eq 'x",
            "Id eq 'x' extra",
        ] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deeply_nested_filter_is_rejected() {
        let parens = format!("{}Id eq 1{}", "(".repeat(1000), ")".repeat(1000));
        assert!(Filter::parse(&parens).is_err());
        let nots = format!("{}Id eq 1", "not ".repeat(2000));
        assert!(Filter::parse(&nots).is_err());
        let chain = vec!["Id eq 1"; 5000].join(" and ");
        assert!(Filter::parse(&chain).is_err());
    }

    #[test]
    fn filter_at_depth_limit_parses() {
        let depth = MAX_FILTER_DEPTH;
        let parens = format!("{}Id eq 1{}", "(".repeat(depth), ")".repeat(depth));
        assert!(matches(&parens, json!({"Id": 1})));
        let nots = format!("{}Id eq 1", "not ".repeat(depth));
        assert!(matches(&nots, json!({"Id": 1})));
        let chain = vec!["Id eq 1"; MAX_FILTER_COMPARISONS].join(" and ");
        assert!(matches(&chain, json!({"Id": 1})));
    }

    #[test]
    fn expand_forms_parse_with_levels() {
        assert_eq!(
            parse_expand(".($levels=2)").unwrap(),
            Expand {
                subordinates: true,
                links: false,
                levels: 2
            }
        );
        assert!(parse_expand("~").unwrap().links);
        assert!(parse_expand("*($levels=9)").is_err());
        assert!(parse_expand("Members").is_err());
    }

    #[test]
    fn expand_dot_leaves_links_as_references() {
        let (options, _) = QueryOptions::split(&[("$expand".into(), ".".into())]).unwrap();
        let body = json!({
            "@odata.id": "/r",
            "Systems": {"@odata.id": "/r/Systems"},
            "Links": {"Sessions": {"@odata.id": "/r/Sessions"}},
        });
        let mut fetch = |path: &str| Some(json!({"@odata.id": path, "Name": "x"}));
        let out = options.apply("/r", body, &mut fetch).unwrap();
        assert_eq!(out["Systems"]["Name"], "x");
        assert_eq!(
            out["Links"]["Sessions"],
            json!({"@odata.id": "/r/Sessions"})
        );
    }

    #[test]
    fn select_keeps_named_and_odata_properties() {
        let body = json!({"@odata.id": "/a", "@odata.type": "#T", "Name": "n", "Other": 1,
            "Status": {"Health": "OK", "State": "Enabled"}});
        let out = select(&body, &["Name".into(), "Status/Health".into()]);
        assert_eq!(
            out,
            json!({"@odata.id": "/a", "@odata.type": "#T", "Name": "n", "Status": {"Health": "OK"}})
        );
    }

    #[test]
    fn filter_and_only_reject_single_resources() {
        let (options, _) = QueryOptions::split(&[("only".into(), String::new())]).unwrap();
        let mut fetch = |_: &str| None;
        assert!(options
            .apply("/a", json!({"Name": "x"}), &mut fetch)
            .is_err());
    }
}
