//! Fiken's JSON on the wire (amounts are integer øre), shared by client and fake.
//!
//! Two kinds of type, as Fiken's document (`core/contracts/specs/fiken-v2.json`)
//! has them. What we *send* is strict (`deny_unknown_fields`, and the fake
//! refuses anything else). What we *read* demands only what the document
//! requires, ignores properties it does not know, and leaves the rest optional:
//! Fiken may add properties, and promises few.

use serde::{Deserialize, Serialize};

/// `company`: no property is required.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Company {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_api_access: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_company: Option<bool>,
}

/// `bankAccountResult`: no property is required.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BankAccount {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_account_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_account_number: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_balance: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconciled_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inactive: Option<bool>,
}

/// `contact` as we send it to create a supplier.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ContactRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_number: Option<String>,
    #[serde(default)]
    pub supplier: bool,
}

/// `contact` as Fiken answers it: only `name` is required.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Contact {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact_id: Option<i64>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplier: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplier_account_code: Option<String>,
}

/// `orderLine` as we send it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct OrderLine {
    pub description: String,
    pub vat_type: String,
    pub net_price: i64,
    pub vat: i64,
    pub account: String,
}

/// `orderLine` as Fiken answers it: `description` and `vatType` are required;
/// it may carry properties a request never sends (`netPriceInCurrency`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OrderLineResult {
    pub description: String,
    pub vat_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_price: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub net_price_in_currency: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vat_in_currency: Option<i64>,
}

impl From<OrderLine> for OrderLineResult {
    fn from(l: OrderLine) -> OrderLineResult {
        OrderLineResult {
            description: l.description,
            vat_type: l.vat_type,
            net_price: Some(l.net_price),
            vat: Some(l.vat),
            account: Some(l.account),
            net_price_in_currency: Some(l.net_price),
            vat_in_currency: Some(l.vat),
        }
    }
}

/// `purchaseRequest`.
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

/// `attachment`: no property is required.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Attachment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub download_url: Option<String>,
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `purchaseResult`: `date`, `kind`, `paid`, `lines` and `currency` are required.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Purchase {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_id: Option<i64>,
    pub date: String,
    pub kind: String,
    pub paid: bool,
    pub lines: Vec<OrderLineResult>,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_date: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplier: Option<Contact>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purchase_attachments: Vec<Attachment>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
}

/// `inboxResult`: no property is required.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InboxDocument {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}
