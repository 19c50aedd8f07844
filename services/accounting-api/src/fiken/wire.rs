//! Fiken's JSON on the wire (amounts are integer øre), shared by client and fake.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Company {
    pub name: String,
    pub slug: String,
    pub organization_number: String,
    pub has_api_access: bool,
    pub test_company: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BankAccount {
    pub bank_account_id: i64,
    pub name: String,
    pub account_code: String,
    pub bank_account_number: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub reconciled_balance: i64,
    pub reconciled_date: String,
    pub inactive: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ContactRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_number: Option<String>,
    #[serde(default)]
    pub supplier: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Contact {
    pub contact_id: i64,
    pub name: String,
    #[serde(default)]
    pub organization_number: Option<String>,
    #[serde(default)]
    pub supplier: bool,
    #[serde(default)]
    pub supplier_account_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct OrderLine {
    pub description: String,
    pub vat_type: String,
    pub net_price: i64,
    pub vat: i64,
    pub account: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct PurchaseRequest {
    pub date: String,
    pub kind: String,
    pub paid: bool,
    pub lines: Vec<OrderLine>,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplier_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Purchase {
    pub purchase_id: i64,
    pub date: String,
    pub kind: String,
    pub paid: bool,
    pub lines: Vec<OrderLine>,
    pub currency: String,
    #[serde(default)]
    pub identifier: Option<String>,
    #[serde(default)]
    pub due_date: Option<String>,
    #[serde(default)]
    pub supplier: Option<Contact>,
    #[serde(default)]
    pub purchase_attachments: Vec<serde_json::Value>,
    #[serde(default)]
    pub deleted: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InboxDocument {
    pub document_id: i64,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub filename: String,
    pub status: bool,
    pub created_at: String,
}
