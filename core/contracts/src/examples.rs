//! Responses generated from a document: the *maximal* one (every property the
//! document defines, with the document's own example values) and the *minimal*
//! one (only what is required, `null` wherever null is allowed). A client that
//! decodes both accepts everything the vendor promises, and demands nothing
//! the vendor does not.

use serde_json::{json, Map, Value};

/// How much of a schema to fill in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fullness {
    /// Every defined property, examples where given.
    Maximal,
    /// Only required properties; `null` where allowed; empty arrays.
    Minimal,
}

/// Deeper than this, a maximal example turns minimal (recursive schemas).
const MAX_DEPTH: usize = 14;

pub(crate) struct Generator<'a> {
    pub root: &'a Value,
    pub fullness: Fullness,
}

impl Generator<'_> {
    pub fn generate(&self, schema: &Value) -> Value {
        self.value(schema, 0, &mut Vec::new())
    }

    fn resolve<'s>(&'s self, reference: &str) -> Option<&'s Value> {
        self.root.pointer(reference.strip_prefix('#')?)
    }

    fn value(&self, schema: &Value, depth: usize, refs: &mut Vec<String>) -> Value {
        let Value::Object(s) = schema else { return Value::Null };
        let fullness = if depth > MAX_DEPTH { Fullness::Minimal } else { self.fullness };
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            if refs.iter().any(|seen| seen == r) && fullness == Fullness::Maximal {
                // A recursive structure: stop with its smallest form.
                let shallow = Generator { root: self.root, fullness: Fullness::Minimal };
                return self.resolve(r).map(|t| shallow.value(t, MAX_DEPTH + 1, &mut refs.clone())).unwrap_or_default();
            }
            let Some(target) = self.resolve(r) else { return Value::Null };
            refs.push(r.to_string());
            let mut out = self.value(target, depth + 1, refs);
            refs.pop();
            // 2020-12: siblings of `$ref` apply too.
            let rest: Map<String, Value> =
                s.iter().filter(|(k, _)| *k != "$ref").map(|(k, v)| (k.clone(), v.clone())).collect();
            if rest.contains_key("properties") {
                merge(&mut out, self.value(&Value::Object(rest), depth + 1, refs));
            }
            return out;
        }
        if let Some(c) = s.get("const") {
            return c.clone();
        }
        let nullable = allows_null(s);
        if fullness == Fullness::Minimal && nullable {
            return Value::Null;
        }
        if let Some(Value::Array(branches)) = s.get("allOf") {
            let mut out = Value::Null;
            for b in branches {
                merge(&mut out, self.value(b, depth + 1, refs));
            }
            if let Value::Object(_) = out {
                return out;
            }
        }
        for key in ["oneOf", "anyOf"] {
            if let Some(Value::Array(branches)) = s.get(key) {
                let non_null = branches.iter().find(|b| b.get("type").and_then(Value::as_str) != Some("null"));
                if let Some(b) = non_null {
                    return self.value(b, depth + 1, refs);
                }
                return Value::Null;
            }
        }
        if let Some(e) = s.get("example").or_else(|| s.get("examples").and_then(|e| e.get(0))) {
            if !e.is_object() && !e.is_array() && fits_type(s, e) {
                return e.clone();
            }
        }
        if let Some(Value::Array(values)) = s.get("enum") {
            if let Some(v) = values.iter().find(|v| !v.is_null()) {
                return v.clone();
            }
        }
        match first_type(s).as_deref() {
            Some("object") => self.object(s, fullness, depth, refs),
            Some("array") => {
                let min = s.get("minItems").and_then(Value::as_u64).unwrap_or(0);
                let n = if fullness == Fullness::Maximal { min.max(1) } else { min };
                let item = s.get("items").cloned().unwrap_or(json!({}));
                Value::Array((0..n).map(|_| self.value(&item, depth + 1, refs)).collect())
            }
            Some("string") => Value::String(string(s)),
            Some("integer") => json!(s.get("minimum").and_then(Value::as_i64).unwrap_or(1).max(1)),
            Some("number") => json!(s.get("minimum").and_then(Value::as_f64).unwrap_or(1.5)),
            Some("boolean") => Value::Bool(true),
            Some("null") => Value::Null,
            _ if s.contains_key("properties") => self.object(s, fullness, depth, refs),
            _ => Value::Null,
        }
    }

    fn object(&self, s: &Map<String, Value>, fullness: Fullness, depth: usize, refs: &mut Vec<String>) -> Value {
        let required: Vec<&str> =
            s.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let mut out = Map::new();
        for (name, p) in s.get("properties").and_then(Value::as_object).into_iter().flatten() {
            if p == &Value::Bool(false) {
                continue; // not allowed this way (writeOnly in a response)
            }
            if fullness == Fullness::Maximal || required.contains(&name.as_str()) {
                out.insert(name.clone(), self.value(p, depth + 1, refs));
            }
        }
        for name in required {
            // Required but never defined (it happens): any value will do.
            out.entry(name.to_string()).or_insert(Value::Null);
        }
        Value::Object(out)
    }
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => a.extend(b),
        (slot @ Value::Null, other) => *slot = other,
        _ => {}
    }
}

fn types(s: &Map<String, Value>) -> Vec<String> {
    match s.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).map(String::from).collect(),
        _ => vec![],
    }
}

fn allows_null(s: &Map<String, Value>) -> bool {
    types(s).iter().any(|t| t == "null")
        || ["oneOf", "anyOf"].iter().any(|k| {
            s.get(*k)
                .and_then(Value::as_array)
                .is_some_and(|bs| bs.iter().any(|b| b.get("type").and_then(Value::as_str) == Some("null")))
        })
}

fn first_type(s: &Map<String, Value>) -> Option<String> {
    types(s).into_iter().find(|t| t != "null")
}

fn fits_type(s: &Map<String, Value>, e: &Value) -> bool {
    match first_type(s).as_deref() {
        Some("string") => e.is_string(),
        Some("integer") => e.is_i64() || e.is_u64(),
        Some("number") => e.is_number(),
        Some("boolean") => e.is_boolean(),
        None => true,
        _ => false,
    }
}

/// A string that satisfies the schema's format or pattern, for the few the
/// documents use without an example.
fn string(s: &Map<String, Value>) -> String {
    let format = s.get("format").and_then(Value::as_str).unwrap_or_default();
    let pattern = s.get("pattern").and_then(Value::as_str).unwrap_or_default();
    let text = match (format, pattern) {
        ("date", _) => "2025-01-13",
        ("date-time", _) => "2025-01-13T13:37:00Z",
        ("uuid", _) => "8f1fc8d3-7900-4c05-8d67-f513ef760111",
        ("uri", _) => "https://example.invalid/x",
        ("snowflake", _) => "1234567890123456789",
        (_, "^\\d+\\.\\d{2}$") | (_, "^\\d+\\.\\d+$") => "1000.00",
        (_, "^[A-Z]{3}$") => "NOK",
        (_, "^(0|[1-9][0-9]*)$") => "1234567890123456789",
        (_, "^\\d+-?$") => "1248103",
        _ => "text",
    };
    let max = s.get("maxLength").and_then(Value::as_u64).unwrap_or(u64::MAX) as usize;
    let min = s.get("minLength").and_then(Value::as_u64).unwrap_or(0) as usize;
    let mut out: String = text.chars().take(max).collect();
    while out.chars().count() < min {
        out.push('x');
    }
    out
}
