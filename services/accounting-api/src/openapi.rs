//! The OpenAPI 3.1 description of the HTTP API, served at `/openapi.json`.
//! Written by hand: it is small, and a test checks every route in it answers.

use serde_json::{json, Value};

fn error_responses() -> Value {
    json!({
        "400": {"$ref": "#/components/responses/Error"},
        "401": {"$ref": "#/components/responses/Error"},
        "502": {"$ref": "#/components/responses/Error"},
        "503": {"$ref": "#/components/responses/Error"}
    })
}

fn with_errors(ok: Value) -> Value {
    let mut responses = error_responses();
    responses["200"] = ok;
    responses
}

fn period_parameters() -> Value {
    json!([
        {"name": "from", "in": "query", "schema": {"type": "string", "format": "date"},
         "description": "First day, inclusive (default: 30 days before `to`)."},
        {"name": "to", "in": "query", "schema": {"type": "string", "format": "date"},
         "description": "Last day, inclusive (default: today). At most 366 days after `from`."}
    ])
}

/// The document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Bookkeeper Accounting API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Documents and read-only queries over Folio (bank) and Fiken (accounting). \
                Changes to the books are never made over HTTP: they are events in the log. \
                Amounts are integer minor units (`*_minor`) with a decimal string beside them. \
                When the connectors are the local sandbox, every answer says `\"sandbox\": true`."
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "An error. 503 carries `Retry-After`.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
                }
            },
            "schemas": {
                "Error": {
                    "type": "object", "required": ["error"],
                    "properties": {
                        "error": {"type": "string"},
                        "retry_after_seconds": {"type": "integer"}
                    }
                },
                "Transaction": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"}, "event_id": {"type": "string"},
                        "account_number": {"type": "string"}, "booking_date": {"type": "string", "format": "date"},
                        "description": {"type": "string"}, "amount_minor": {"type": "integer"},
                        "direction": {"type": "string", "enum": ["out", "in", "unknown"]},
                        "amount": {"type": "string"}, "currency": {"type": "string"},
                        "creditor": {"type": ["string", "null"]},
                        "receipts": {"type": "integer", "description": "Attachments on its Folio event."}
                    }
                }
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": {"summary": "Liveness", "security": [], "responses": {"200": {"description": "Up"}}}},
            "/readyz": {"get": {"summary": "Ready when the database answers", "security": [],
                "responses": {"200": {"description": "Ready"}, "503": {"$ref": "#/components/responses/Error"}}}},
            "/openapi.json": {"get": {"summary": "This document", "security": [],
                "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/documents": {"post": {
                "summary": "Store a receipt or invoice; returns its SHA-256",
                "requestBody": {"required": true, "content": {
                    "application/pdf": {}, "image/jpeg": {}, "image/png": {}, "image/heic": {},
                    "application/octet-stream": {}
                }},
                "responses": {
                    "201": {"description": "Stored (storing the same bytes again gives the same hash)",
                        "content": {"application/json": {"schema": {"type": "object", "properties": {
                            "sha256": {"type": "string"}, "content_type": {"type": "string"},
                            "size": {"type": "integer"}}}}}},
                    "413": {"$ref": "#/components/responses/Error"},
                    "415": {"$ref": "#/components/responses/Error"}
                }
            }},
            "/documents/{sha256}": {"get": {
                "summary": "A stored document",
                "parameters": [{"name": "sha256", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "The bytes, with their type"},
                    "404": {"$ref": "#/components/responses/Error"}}
            }},
            "/folio/balance": {"get": {
                "summary": "Balance per bank account",
                "parameters": [{"name": "date", "in": "query", "schema": {"type": "string", "format": "date"},
                    "description": "End of this day instead of now"}],
                "responses": with_errors(json!({"description": "`{total_minor, total, currency, accounts: [...]}`"}))
            }},
            "/folio/transactions": {"get": {
                "summary": "Booked bank transactions",
                "parameters": period_parameters().as_array().cloned().unwrap_or_default().into_iter()
                    .chain([json!({"name": "account", "in": "query", "schema": {"type": "string"}})]).collect::<Vec<_>>(),
                "responses": with_errors(json!({"description": "`{from, to, transactions: [Transaction]}`"}))
            }},
            "/fiken/purchases": {"get": {
                "summary": "Purchases registered in Fiken",
                "parameters": period_parameters(),
                "responses": with_errors(json!({"description": "`{from, to, purchases: [...]}`"}))
            }},
            "/checks/missing-receipts": {"get": {
                "summary": "Money out of the bank with no receipt attached",
                "parameters": [
                    {"name": "older_than_days", "in": "query", "schema": {"type": "integer", "default": 7}},
                    {"name": "lookback_days", "in": "query", "schema": {"type": "integer", "default": 90}}
                ],
                "responses": with_errors(json!({"description": "`{count, transactions: [Transaction]}`"}))
            }}
        }
    })
}
