//! OpenAPI schemas to JSON Schema (draft 2020-12), for one direction of travel.
//!
//! OpenAPI 3.1 schemas are JSON Schema already (type arrays, `const`, `$ref`
//! with siblings). OpenAPI 3.0 ones differ in ways a validator must be told:
//! `nullable: true` adds `null` to the type; `readOnly` properties never appear
//! in a request and `writeOnly` ones never in a response (so they are neither
//! required nor allowed there). And our own stance on 3.0 documents: what we
//! *send* has only the properties the document defines (request objects are
//! closed), while what we *read* may carry more (response objects stay open).

use serde_json::{json, Map, Value};

/// Which way a body travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From our client to the vendor.
    Request,
    /// From the vendor to our client.
    Response,
}

/// The OpenAPI version family of a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// 3.0.x: `nullable`, `readOnly`/`writeOnly` as above.
    OpenApi30,
    /// 3.1.x: JSON Schema 2020-12 as written.
    OpenApi31,
}

/// Converts one schema (and everything under it) for `direction`.
pub fn schema(value: &Value, dialect: Dialect, direction: Direction) -> Value {
    match dialect {
        Dialect::OpenApi31 => value.clone(),
        Dialect::OpenApi30 => convert30(value, direction, false),
    }
}

/// Converts every schema under `components.schemas`.
pub fn components(components: &Value, dialect: Dialect, direction: Direction) -> Value {
    let schemas = components.get("schemas").and_then(Value::as_object);
    let mut out = Map::new();
    for (name, s) in schemas.into_iter().flatten() {
        // A component used as an `allOf` branch must stay open, or the branch
        // would refuse the properties of its siblings.
        let branch = dialect == Dialect::OpenApi30 && is_all_of_branch(components, name);
        let converted = match dialect {
            Dialect::OpenApi31 => s.clone(),
            Dialect::OpenApi30 => convert30(s, direction, branch),
        };
        out.insert(name.clone(), converted);
    }
    json!({ "schemas": out })
}

fn is_all_of_branch(components: &Value, name: &str) -> bool {
    let target = format!("#/components/schemas/{name}");
    fn walk(v: &Value, target: &str) -> bool {
        match v {
            Value::Object(m) => {
                if let Some(Value::Array(branches)) = m.get("allOf") {
                    if branches.iter().any(|b| b.get("$ref").and_then(Value::as_str) == Some(target)) {
                        return true;
                    }
                }
                m.values().any(|x| walk(x, target))
            }
            Value::Array(a) => a.iter().any(|x| walk(x, target)),
            _ => false,
        }
    }
    walk(components, &target)
}

fn convert30(value: &Value, direction: Direction, open: bool) -> Value {
    let Value::Object(map) = value else { return value.clone() };
    let mut out = Map::new();
    for (key, v) in map {
        let converted = match key.as_str() {
            "properties" => {
                let mut props = Map::new();
                for (name, p) in v.as_object().into_iter().flatten() {
                    if hidden(p, direction) {
                        // Neither required nor allowed this way.
                        props.insert(name.clone(), Value::Bool(false));
                    } else {
                        props.insert(name.clone(), convert30(p, direction, false));
                    }
                }
                Value::Object(props)
            }
            "required" => {
                let props = map.get("properties").and_then(Value::as_object);
                let kept: Vec<Value> = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|r| {
                        let name = r.as_str().unwrap_or_default();
                        !props.and_then(|p| p.get(name)).is_some_and(|p| hidden(p, direction))
                    })
                    .cloned()
                    .collect();
                Value::Array(kept)
            }
            "items" | "not" | "additionalProperties" => convert30(v, direction, false),
            "allOf" => {
                Value::Array(v.as_array().into_iter().flatten().map(|b| convert30(b, direction, true)).collect())
            }
            "anyOf" | "oneOf" => {
                Value::Array(v.as_array().into_iter().flatten().map(|b| convert30(b, direction, false)).collect())
            }
            // 3.0 keywords with no JSON Schema meaning (`example` stays: the
            // validator ignores it and the example generator reads it).
            "nullable" | "discriminator" | "xml" | "externalDocs" => continue,
            _ => v.clone(),
        };
        out.insert(key.clone(), converted);
    }
    if map.get("nullable").and_then(Value::as_bool) == Some(true) {
        match out.get("type").cloned() {
            Some(Value::String(t)) => {
                out.insert("type".into(), json!([t, "null"]));
                if let Some(Value::Array(values)) = out.get_mut("enum") {
                    values.push(Value::Null);
                }
            }
            _ => {
                let inner = Value::Object(std::mem::take(&mut out));
                out.insert("anyOf".into(), json!([inner, {"type": "null"}]));
            }
        }
    }
    let is_object = out.get("type").and_then(Value::as_str) == Some("object") || out.contains_key("properties");
    if direction == Direction::Request
        && is_object
        && !open
        && out.contains_key("properties")
        && !out.contains_key("additionalProperties")
        && !out.contains_key("allOf")
    {
        out.insert("additionalProperties".into(), Value::Bool(false));
        // Required but never defined (Fiken's purchaseRequest requires `paid`
        // without listing it): required means allowed.
        let required: Vec<String> = out
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(String::from))
            .collect();
        if let Some(Value::Object(props)) = out.get_mut("properties") {
            for name in required {
                props.entry(name).or_insert(json!({}));
            }
        }
    }
    Value::Object(out)
}

fn hidden(property: &Value, direction: Direction) -> bool {
    let flag = match direction {
        Direction::Request => "readOnly",
        Direction::Response => "writeOnly",
    };
    property.get(flag).and_then(Value::as_bool) == Some(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nullable_read_only_and_closed_requests() {
        let s = json!({
            "type": "object",
            "required": ["id", "name"],
            "properties": {
                "id": {"type": "integer", "readOnly": true},
                "name": {"type": "string", "nullable": true, "example": "x"},
                "secret": {"type": "string", "writeOnly": true}
            }
        });
        let request = convert30(&s, Direction::Request, false);
        assert_eq!(request["required"], json!(["name"]));
        assert_eq!(request["properties"]["id"], json!(false));
        assert_eq!(request["properties"]["name"], json!({"type": ["string", "null"], "example": "x"}));
        assert_eq!(request["additionalProperties"], json!(false));
        let response = convert30(&s, Direction::Response, false);
        assert_eq!(response["required"], json!(["id", "name"]));
        assert_eq!(response["properties"]["secret"], json!(false));
        assert!(response.get("additionalProperties").is_none());
    }
}
