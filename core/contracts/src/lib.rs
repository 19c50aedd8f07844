//! The vendors' own API definitions, and checks of what crosses the wire
//! against them.
//!
//! Our clients of Fiken, Folio and Discord are tested against local fakes; a
//! fake written from our own notes can agree with a wrong client. So every fake
//! runs each request it receives, and each answer it gives, past the vendor's
//! published OpenAPI document ([`Document::check_request`],
//! [`Document::check_response`]), and the contract tests decode answers
//! generated from the documents ([`Document::example`]). The documents are
//! embedded (`specs/`, with their sources); where we knowingly depart from one,
//! [`leeway`] says so, in one place.

mod convert;
mod examples;
pub mod fake;
pub mod generated;
pub mod leeway;
mod multipart;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use http::{HeaderMap, Method};
use serde_json::{json, Map, Value};

pub use convert::Direction;
pub use examples::Fullness;

/// A vendor whose published document we hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vendor {
    /// Fiken API v2 (OpenAPI 3.0).
    Fiken,
    /// Folio API v2 (OpenAPI 3.0).
    Folio,
    /// Discord API v10, the endpoints we use (OpenAPI 3.1).
    Discord,
}

impl Vendor {
    /// Every vendor.
    pub const ALL: [Vendor; 3] = [Vendor::Fiken, Vendor::Folio, Vendor::Discord];

    /// Its document, parsed once per process.
    pub fn document(self) -> &'static Document {
        static DOCS: OnceLock<[Document; 3]> = OnceLock::new();
        let docs = DOCS.get_or_init(|| {
            [
                Document::parse(Vendor::Fiken, include_str!("../specs/fiken-v2.json")),
                Document::parse(Vendor::Folio, include_str!("../specs/folio-v2.json")),
                Document::parse(Vendor::Discord, include_str!("../specs/discord-v10-subset.json")),
            ]
        });
        &docs[self as usize]
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Vendor::Fiken => "Fiken",
            Vendor::Folio => "Folio",
            Vendor::Discord => "Discord",
        }
    }
}

/// Where a parameter goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Path,
    Query,
    Header,
}

#[derive(Debug, Clone)]
struct Parameter {
    name: String,
    place: Place,
    required: bool,
    schema: Value,
}

#[derive(Debug, Clone)]
struct Answer {
    /// `200`, `4XX` or `default`.
    status: String,
    /// Media type -> schema (converted for responses), if the document gives one.
    content: Vec<(String, Option<Value>)>,
    /// Header name -> schema.
    headers: Vec<(String, Value)>,
}

/// One method on one path of a document.
#[derive(Debug, Clone)]
pub struct Operation {
    /// The method.
    pub method: Method,
    /// The path template, relative to the server, e.g. `/events/{id}/attachments`.
    pub template: String,
    segments: Vec<Segment>,
    parameters: Vec<Parameter>,
    body_required: bool,
    /// Media type -> request schema (converted for requests).
    body: Vec<(String, Option<Value>)>,
    answers: Vec<Answer>,
    secured: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

impl Operation {
    /// `GET /events`.
    pub fn name(&self) -> String {
        format!("{} {}", self.method, self.template)
    }

    /// Whether the document requires credentials for it.
    pub fn needs_credentials(&self) -> bool {
        self.secured
    }

    /// The statuses the document defines an answer for, e.g. `200`, `4XX`.
    pub fn statuses(&self) -> Vec<&str> {
        self.answers.iter().map(|a| a.status.as_str()).collect()
    }

    fn answer(&self, status: u16) -> Option<&Answer> {
        let exact = status.to_string();
        let range = format!("{}XX", status / 100);
        self.answers
            .iter()
            .find(|a| a.status == exact)
            .or_else(|| self.answers.iter().find(|a| a.status.eq_ignore_ascii_case(&range)))
            .or_else(|| self.answers.iter().find(|a| a.status == "default"))
    }

    /// Matches a path (relative to the server) and returns its path parameters.
    fn matches(&self, segments: &[&str]) -> Option<Vec<(String, String)>> {
        if segments.len() != self.segments.len() {
            return None;
        }
        let mut params = Vec::new();
        for (template, actual) in self.segments.iter().zip(segments) {
            match template {
                Segment::Literal(l) if l == actual => {}
                Segment::Literal(_) => return None,
                Segment::Param(_) if actual.is_empty() => return None,
                Segment::Param(name) => params.push((name.clone(), percent_decode(actual))),
            }
        }
        Some(params)
    }

    fn literal_count(&self) -> usize {
        self.segments.iter().filter(|s| matches!(s, Segment::Literal(_))).count()
    }
}

/// A published API document, ready to check requests and responses.
pub struct Document {
    vendor: Vendor,
    base_path: String,
    operations: Vec<Operation>,
    /// `{"components": ...}` converted for each direction: what `$ref`s resolve in.
    request_root: Value,
    response_root: Value,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl std::fmt::Debug for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Document").field("vendor", &self.vendor).field("base_path", &self.base_path).finish()
    }
}

/// What a check found: each entry names the operation and what is wrong.
pub type Violations = Vec<String>;

/// The result of checking a request.
#[derive(Debug)]
pub enum Checked<'d> {
    /// Under the API's base path and as the document defines it.
    Conforms(&'d Operation),
    /// Not a path of the API (a download URL the API handed out; see [`leeway`]).
    OutsideTheApi,
    /// What is wrong with it.
    Violates(Violations),
}

impl Document {
    fn parse(vendor: Vendor, text: &str) -> Document {
        // The documents are embedded at build time and checked by this crate's
        // tests, so a parse failure is a build defect, not an input error.
        let raw: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("{} document: {e}", vendor.name()));
        let dialect = match raw.get("openapi").and_then(Value::as_str) {
            Some(v) if v.starts_with("3.0") => convert::Dialect::OpenApi30,
            _ => convert::Dialect::OpenApi31,
        };
        let server = raw.pointer("/servers/0/url").and_then(Value::as_str).unwrap_or_default();
        let base_path =
            server.split("://").nth(1).and_then(|s| s.find('/').map(|i| s[i..].to_string())).unwrap_or_default();
        let components = raw.get("components").cloned().unwrap_or(json!({}));
        let request_root = json!({
            "components": convert::components(&components, dialect, Direction::Request)
        });
        let response_root = json!({
            "components": convert::components(&components, dialect, Direction::Response)
        });
        let globally_secured = secured(raw.get("security"));
        let mut operations = Vec::new();
        for (template, item) in raw.get("paths").and_then(Value::as_object).into_iter().flatten() {
            let shared: Vec<Value> = item.get("parameters").and_then(Value::as_array).cloned().unwrap_or_default();
            for (method, op) in item.as_object().into_iter().flatten() {
                let Ok(method) = method.to_ascii_uppercase().parse::<Method>() else { continue };
                if method.as_str() == "PARAMETERS" {
                    continue;
                }
                let mut parameters = Vec::new();
                let own: Vec<Value> = op.get("parameters").and_then(Value::as_array).cloned().unwrap_or_default();
                for p in shared.iter().chain(own.iter()) {
                    let p = resolve(&raw, p);
                    let place = match p.get("in").and_then(Value::as_str) {
                        Some("path") => Place::Path,
                        Some("query") => Place::Query,
                        Some("header") => Place::Header,
                        _ => continue,
                    };
                    let name = p.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
                    parameters.retain(|q: &Parameter| !(q.name == name && q.place == place));
                    parameters.push(Parameter {
                        name,
                        place,
                        required: p.get("required").and_then(Value::as_bool).unwrap_or(place == Place::Path),
                        schema: convert::schema(p.get("schema").unwrap_or(&json!({})), dialect, Direction::Request),
                    });
                }
                let body_spec = op.get("requestBody").map(|b| resolve(&raw, b));
                let body_required =
                    body_spec.as_ref().and_then(|b| b.get("required")).and_then(Value::as_bool) == Some(true);
                let body = media(body_spec.as_ref().and_then(|b| b.get("content")), dialect, Direction::Request);
                let mut answers = Vec::new();
                for (status, r) in op.get("responses").and_then(Value::as_object).into_iter().flatten() {
                    let r = resolve(&raw, r);
                    let headers = r
                        .get("headers")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                        .map(|(h, spec)| {
                            let spec = resolve(&raw, spec);
                            let schema = spec.get("schema").cloned().unwrap_or(json!({}));
                            (h.to_ascii_lowercase(), convert::schema(&schema, dialect, Direction::Response))
                        })
                        .collect();
                    answers.push(Answer {
                        status: status.clone(),
                        content: media(r.get("content"), dialect, Direction::Response),
                        headers,
                    });
                }
                let secured = match op.get("security") {
                    Some(s) => secured(Some(s)),
                    None => globally_secured,
                };
                operations.push(Operation {
                    method,
                    template: template.clone(),
                    segments: segments(template),
                    parameters,
                    body_required,
                    body,
                    answers,
                    secured,
                });
            }
        }
        Document { vendor, base_path, operations, request_root, response_root, validators: Mutex::new(HashMap::new()) }
    }

    /// Whose document this is.
    pub fn vendor(&self) -> Vendor {
        self.vendor
    }

    /// The path every API path starts with on the server (`/api/v2`, `/v2`, `/api/v10`).
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// Every operation the document defines.
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }

    /// The operation for `method` on `template`, as written in the document.
    pub fn operation(&self, method: &Method, template: &str) -> Option<&Operation> {
        self.operations.iter().find(|o| o.method == method && o.template == template)
    }

    /// The operation a request on `path` (with the base path, without the query)
    /// reaches, and its path parameters. Literal segments win over parameters
    /// (`/applications/@me` over `/applications/{application_id}`).
    pub fn route(&self, method: &Method, path: &str) -> Option<(&Operation, Vec<(String, String)>)> {
        let relative = self.relative(path)?;
        let parts: Vec<&str> = relative.trim_start_matches('/').split('/').collect();
        self.operations
            .iter()
            .filter(|o| o.method == method)
            .filter_map(|o| o.matches(&parts).map(|p| (o, p)))
            .max_by_key(|(o, _)| o.literal_count())
    }

    fn relative<'p>(&self, path: &'p str) -> Option<&'p str> {
        let rest = path.strip_prefix(self.base_path.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }

    /// Checks one request as it arrives (credentials are the vendor's to refuse,
    /// with 401, as the fakes do): the path and method exist, required
    /// parameters are present and every parameter is one the document defines
    /// and of its type, the content type is one it accepts, and the body
    /// validates against the request schema.
    pub fn check_request(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Checked<'_> {
        if self.relative(path).is_none() {
            return Checked::OutsideTheApi;
        }
        let Some((op, path_params)) = self.route(method, path) else {
            return Checked::Violates(vec![format!(
                "{} {method} {path}: the document defines no such endpoint",
                self.vendor.name()
            )]);
        };
        let mut problems = Vec::new();
        let name = format!("{} {}", self.vendor.name(), op.name());
        let query_pairs = parse_query(query.unwrap_or_default());
        for (key, _) in &query_pairs {
            if !op.parameters.iter().any(|p| p.place == Place::Query && &p.name == key) {
                problems.push(format!("{name}: query parameter `{key}` is not in the document"));
            }
        }
        for (i, p) in op.parameters.iter().enumerate() {
            let given: Vec<String> = match p.place {
                Place::Path => path_params.iter().filter(|(n, _)| n == &p.name).map(|(_, v)| v.clone()).collect(),
                Place::Query => query_pairs.iter().filter(|(n, _)| n == &p.name).map(|(_, v)| v.clone()).collect(),
                Place::Header => {
                    headers.get_all(p.name.as_str()).iter().filter_map(|v| v.to_str().ok()).map(String::from).collect()
                }
            };
            if given.is_empty() && p.required {
                problems.push(format!("{name}: required parameter `{}` is missing", p.name));
            }
            if given.len() > 1 {
                // None of the parameters we send is a list: a repeat is a mistake
                // (which one would the vendor take?).
                problems.push(format!("{name}: parameter `{}` given {} times", p.name, given.len()));
            }
            for text in given {
                let value = typed(&text, &p.schema, &self.request_root);
                for e in self.validate(&format!("{}#param{i}", op.name()), &p.schema, Direction::Request, &value) {
                    problems.push(format!("{name}: parameter `{}` = `{text}`: {e}", p.name));
                }
            }
        }
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
        match (&content_type, body.is_empty()) {
            (None, true) if op.body_required => problems.push(format!("{name}: the request needs a body")),
            (None, true) => {}
            (None, false) if op.body.is_empty() => {
                problems.push(format!("{name}: a body where the document defines none"))
            }
            (None, false) => problems.push(format!("{name}: a body without a Content-Type")),
            (Some(_), true) if op.body.is_empty() => {}
            (Some(_), true) if op.body_required => problems.push(format!("{name}: the request needs a body")),
            (Some(media), _) => match op.body.iter().find(|(m, _)| m == media) {
                None if op.body.is_empty() => problems.push(format!("{name}: a body where the document defines none")),
                None => problems.push(format!(
                    "{name}: Content-Type `{media}` is not one it accepts ({})",
                    op.body.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>().join(", ")
                )),
                Some((_, None)) => {}
                Some((media, Some(schema))) => {
                    let instance = if media == "application/json" {
                        match serde_json::from_slice::<Value>(body) {
                            Ok(v) => Some(v),
                            Err(e) => {
                                problems.push(format!("{name}: the body is not JSON: {e}"));
                                None
                            }
                        }
                    } else if media == "multipart/form-data" {
                        let boundary = headers
                            .get(http::header::CONTENT_TYPE)
                            .and_then(|v| v.to_str().ok())
                            .and_then(multipart::boundary);
                        match boundary.map(|b| multipart::fields(body, &b)) {
                            Some(Ok(fields)) => Some(form_instance(&fields, schema, &self.request_root)),
                            Some(Err(e)) => {
                                problems.push(format!("{name}: {e}"));
                                None
                            }
                            None => {
                                problems.push(format!("{name}: multipart/form-data without a boundary"));
                                None
                            }
                        }
                    } else {
                        None // binary: the media type is the contract
                    };
                    if let Some(instance) = instance {
                        for e in
                            self.validate(&format!("{}#body:{media}", op.name()), schema, Direction::Request, &instance)
                        {
                            problems.push(format!("{name}: body: {e}"));
                        }
                    }
                }
            },
        }
        if problems.is_empty() {
            Checked::Conforms(op)
        } else {
            Checked::Violates(problems)
        }
    }

    /// Checks one answer to a request on `path`: the status is one the document
    /// defines for the operation (or one [`leeway::LEFT_OPEN`] lists), documented
    /// headers are of their type, and a JSON body validates against the schema.
    pub fn check_response(
        &self,
        method: &Method,
        path: &str,
        status: u16,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Violations {
        self.check_answer(method, path, status, headers, Some(body))
    }

    /// [`Document::check_response`] without the body: for an answer whose body
    /// streams (or is cut off on purpose), the status, headers and content type.
    pub fn check_response_head(&self, method: &Method, path: &str, status: u16, headers: &HeaderMap) -> Violations {
        self.check_answer(method, path, status, headers, None)
    }

    fn check_answer(
        &self,
        method: &Method,
        path: &str,
        status: u16,
        headers: &HeaderMap,
        body: Option<&[u8]>,
    ) -> Violations {
        let Some((op, _)) = self.route(method, path) else { return vec![] };
        let name = format!("{} {} -> {status}", self.vendor.name(), op.name());
        let Some(answer) = op.answer(status) else {
            if status >= 400 && leeway::left_open(self.vendor, status) {
                return vec![];
            }
            return vec![format!("{name}: the document defines no such answer ({})", op.statuses().join(", "))];
        };
        let mut problems = Vec::new();
        for (header, schema) in &answer.headers {
            if let Some(text) = headers.get(header.as_str()).and_then(|v| v.to_str().ok()) {
                let value = typed(text, schema, &self.response_root);
                for e in self.validate(
                    &format!("{}#{}h{header}", op.name(), answer.status),
                    schema,
                    Direction::Response,
                    &value,
                ) {
                    problems.push(format!("{name}: header {header}: {e}"));
                }
            }
        }
        let media = headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase());
        if answer.content.is_empty() {
            // The document describes no body (Folio's attachment bytes, Fiken's
            // empty 201): nothing to check it against.
            return problems;
        }
        let Some(media) = media else {
            if !answer.content.is_empty() && status < 300 {
                problems.push(format!("{name}: no Content-Type"));
            }
            return problems;
        };
        match answer.content.iter().find(|(m, _)| m == &media || m == "*/*") {
            None => problems.push(format!("{name}: Content-Type `{media}` is not one the document gives")),
            Some(_) if body.is_none() => {}
            Some((_, Some(schema))) if media == "application/json" => {
                match serde_json::from_slice::<Value>(body.unwrap_or_default()) {
                    Ok(v) => {
                        for e in
                            self.validate(&format!("{}#{}", op.name(), answer.status), schema, Direction::Response, &v)
                        {
                            problems.push(format!("{name}: {e}"));
                        }
                    }
                    Err(e) => problems.push(format!("{name}: the body is not JSON: {e}")),
                }
            }
            Some(_) => {}
        }
        problems
    }

    /// A response body for `status` of `op`, generated from the document.
    pub fn example(&self, op: &Operation, status: &str, fullness: Fullness) -> Option<Value> {
        let answer = op.answers.iter().find(|a| a.status == status)?;
        let (_, schema) = answer.content.iter().find(|(m, _)| m == "application/json")?;
        let schema = schema.as_ref()?;
        Some(examples::Generator { root: &self.response_root, fullness }.generate(schema))
    }

    /// An answer-side example of one of the document's named schemas
    /// (`components.schemas.<name>`), e.g. `MessageResponse`.
    pub fn example_of(&self, component: &str, fullness: Fullness) -> Option<Value> {
        let schema = self.response_root.pointer(&format!("/components/schemas/{component}"))?;
        Some(examples::Generator { root: &self.response_root, fullness }.generate(schema))
    }

    /// Validates `instance` against the response schema of `op` for `status`.
    pub fn validate_response_body(&self, op: &Operation, status: &str, instance: &Value) -> Violations {
        let Some(schema) = op
            .answers
            .iter()
            .find(|a| a.status == status)
            .and_then(|a| a.content.iter().find(|(m, _)| m == "application/json"))
            .and_then(|(_, s)| s.clone())
        else {
            return vec![format!("{}: no JSON answer for {status}", op.name())];
        };
        self.validate(&format!("{}#{status}", op.name()), &schema, Direction::Response, instance)
    }

    fn validate(&self, key: &str, schema: &Value, direction: Direction, instance: &Value) -> Violations {
        let key = format!("{key}:{direction:?}");
        let cached = self.validators.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned();
        let validator = match cached {
            Some(v) => v,
            None => {
                let root = match direction {
                    Direction::Request => &self.request_root,
                    Direction::Response => &self.response_root,
                };
                let mut document = match schema {
                    Value::Object(m) => m.clone(),
                    Value::Bool(true) => Map::new(),
                    other => return vec![format!("unusable schema {other}")],
                };
                document.insert("components".into(), root["components"].clone());
                let built = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .should_validate_formats(true)
                    .should_ignore_unknown_formats(true)
                    .build(&Value::Object(document));
                match built {
                    Ok(v) => {
                        let v = Arc::new(v);
                        self.validators.lock().unwrap_or_else(|p| p.into_inner()).insert(key, v.clone());
                        v
                    }
                    Err(e) => return vec![format!("the document's schema does not compile: {e}")],
                }
            }
        };
        validator.iter_errors(instance).map(|e| format!("at `{}`: {e}", e.instance_path())).take(10).collect()
    }
}

fn secured(security: Option<&Value>) -> bool {
    // Security is required unless one alternative is the empty requirement `{}`.
    match security.and_then(Value::as_array) {
        Some(alternatives) if !alternatives.is_empty() => {
            !alternatives.iter().any(|a| a.as_object().is_some_and(|o| o.is_empty()))
        }
        _ => false,
    }
}

fn resolve(raw: &Value, v: &Value) -> Value {
    let mut current = v.clone();
    for _ in 0..8 {
        match current.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
            Some(pointer) => match raw.pointer(pointer) {
                Some(target) => current = target.clone(),
                None => break,
            },
            None => break,
        }
    }
    current
}

fn media(content: Option<&Value>, dialect: convert::Dialect, direction: Direction) -> Vec<(String, Option<Value>)> {
    content
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(m, spec)| (m.to_ascii_lowercase(), spec.get("schema").map(|s| convert::schema(s, dialect, direction))))
        .collect()
}

fn segments(template: &str) -> Vec<Segment> {
    template
        .trim_start_matches('/')
        .split('/')
        .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) => Segment::Param(name.to_string()),
            None => Segment::Literal(s.to_string()),
        })
        .collect()
}

fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(&k.replace('+', " ")), percent_decode(&v.replace('+', " ")))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(b) = hex {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The JSON value of a parameter's text, by the type its schema declares.
fn typed(text: &str, schema: &Value, root: &Value) -> Value {
    let resolved = resolve(root, schema);
    let declared: Vec<&str> = match resolved.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if declared.contains(&"integer") || declared.contains(&"number") {
        if let Ok(n) = text.parse::<i64>() {
            return json!(n);
        }
        if let Ok(f) = text.parse::<f64>() {
            return json!(f);
        }
    }
    if declared.contains(&"boolean") {
        match text {
            "true" => return json!(true),
            "false" => return json!(false),
            _ => {}
        }
    }
    json!(text)
}

/// A form as the JSON object its schema describes: text fields typed by their
/// property's declared type, files as strings.
fn form_instance(fields: &[(String, Vec<u8>)], schema: &Value, root: &Value) -> Value {
    let resolved = resolve(root, schema);
    let mut out = Map::new();
    for (name, bytes) in fields {
        let text = String::from_utf8_lossy(bytes).into_owned();
        let property = resolved.pointer(&format!("/properties/{}", name.replace('~', "~0").replace('/', "~1")));
        let value = match property {
            Some(p) if p.get("format").and_then(Value::as_str) == Some("binary") => json!("<binary>"),
            Some(p) => typed(&text, p, root),
            None => json!(text),
        };
        out.insert(name.clone(), value);
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
