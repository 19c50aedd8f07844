//! Folio's JSON, as sent on the wire, and its conversion to our types. Shared by
//! the client (reading) and the fake (writing), so both speak the same shapes.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{decimal, FolioError};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Money {
    pub amount: String,
    pub currency: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Accounts {
    pub accounts: Vec<Account>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Account {
    pub account_number: String,
    pub name: String,
    pub balance: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub balance_updated_at: String,
    pub matching_transactions_at: String,
    pub complete_transactions_at: String,
}

impl Account {
    pub fn into_domain(self) -> Result<super::Account, FolioError> {
        Ok(super::Account {
            balance_minor: decimal(&self.balance)?,
            account_number: self.account_number,
            name: self.name,
            kind: self.kind,
        })
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AccountBalance {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incoming_balance: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outgoing_balance: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct TransactionResponse {
    pub transactions: Booked,
    #[serde(default)]
    pub includes: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Booked {
    pub booked: Vec<Transaction>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Party {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_number: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Attachment {
    pub id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    pub mime_type: String,
    pub file_size: u64,
    pub org_num: String,
    pub uploaded_by_agent_id: Uuid,
    pub average_color: String,
}

impl Attachment {
    fn into_domain(self) -> super::Attachment {
        super::Attachment { id: self.id, filename: self.filename, mime_type: self.mime_type, size: self.file_size }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Transaction {
    pub id: Uuid,
    pub event_id: Uuid,
    pub description: String,
    pub booking_date: chrono::NaiveDate,
    pub transaction_amount: Money,
    pub currency_amount: Money,
    pub creditor: Party,
    pub debtor: Party,
    pub attachments: Vec<Attachment>,
    pub complete: bool,
}

impl Transaction {
    pub fn into_domain(self) -> Result<super::Transaction, FolioError> {
        Ok(super::Transaction {
            amount_minor: decimal(&self.transaction_amount.amount)?,
            currency: self.transaction_amount.currency,
            id: self.id,
            event_id: self.event_id,
            description: self.description,
            booking_date: self.booking_date,
            creditor: self.creditor.name,
            attachments: self.attachments.into_iter().map(Attachment::into_domain).collect(),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Events {
    pub events: Vec<Event>,
    #[serde(default)]
    pub includes: serde_json::Value,
}

/// `GET /events/{id}` (UNVERIFIED shape, see the client).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct OneEvent {
    pub event: Event,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Event {
    pub id: Uuid,
    pub time: chrono::DateTime<chrono::Utc>,
    pub amount: Money,
    #[serde(default)]
    pub transactions: Vec<serde_json::Value>,
    pub attachments: Vec<Attachment>,
    pub complete: bool,
}

impl Event {
    pub fn into_domain(self) -> Result<super::Event, FolioError> {
        Ok(super::Event {
            amount_minor: decimal(&self.amount.amount)?,
            currency: self.amount.currency,
            id: self.id,
            time: self.time,
            attachments: self.attachments.into_iter().map(Attachment::into_domain).collect(),
            complete: self.complete,
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Created {
    pub id: Uuid,
}
