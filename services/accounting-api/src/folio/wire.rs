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

/// `TransactionResponse`: nothing is required, not even `transactions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct TransactionResponse {
    #[serde(default)]
    pub transactions: Booked,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
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
    /// Ours, as seen from `account` (whose transactions these are).
    pub fn into_domain(self, account: &str) -> Result<super::Transaction, FolioError> {
        let written = decimal(&self.transaction_amount.amount)?;
        let is = |p: &Party| p.account_number.as_deref().is_some_and(|n| same_account(n, account));
        let direction = match (is(&self.debtor), is(&self.creditor)) {
            (true, false) => super::Direction::Out,
            (false, true) => super::Direction::In,
            // Between two of the company's own accounts both match; neither, when
            // Folio leaves the numbers out. Then only a sign can tell.
            _ if written < 0 => super::Direction::Out,
            _ => super::Direction::Unknown,
        };
        let magnitude = written.abs();
        Ok(super::Transaction {
            amount_minor: if direction == super::Direction::Out { -magnitude } else { magnitude },
            direction,
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

/// Two account numbers name the same Norwegian account when their BBANs match.
fn same_account(a: &str, b: &str) -> bool {
    matches!((bban(a), bban(b)), (Some(x), Some(y)) if x == y)
}

/// The 11-digit Norwegian account number (BBAN) a party's number holds: as
/// written (`36060000000`, `3606.00.00000`), inside an IBAN (`NO93 3606 0000 000`),
/// or ending a longer run of digits (the form of Folio's document's own party
/// example, `9836061277190`). Folio's accounts are BBANs; its parties may be
/// written either way.
fn bban(text: &str) -> Option<String> {
    let compact: String = text.chars().filter(char::is_ascii_alphanumeric).collect::<String>().to_ascii_uppercase();
    let digits = match compact.strip_prefix("NO") {
        Some(rest) => rest.get(2..)?,
        None => compact.as_str(),
    };
    if digits.len() < 11 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits[digits.len() - 11..].to_string())
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Events {
    pub events: Vec<Event>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub includes: Option<serde_json::Value>,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::folio::Direction;

    fn transaction(amount: &str, debtor: Option<&str>, creditor: Option<&str>) -> Transaction {
        serde_json::from_value(serde_json::json!({
            "id": "8f1fc8d3-7900-4c05-8d67-f513ef760111", "eventId": "8f1fc8d3-7900-4c05-8d67-f513ef760112",
            "description": "x", "bookingDate": "2025-02-25",
            "transactionAmount": {"amount": amount, "currency": "NOK"},
            "currencyAmount": {"amount": amount, "currency": "NOK"},
            "creditor": {"accountNumber": creditor}, "debtor": {"accountNumber": debtor},
            "attachments": [], "complete": false
        }))
        .unwrap()
    }

    #[test]
    fn direction_comes_from_the_parties_and_either_sign_is_accepted() {
        let ours = "36060000000";
        let out = transaction("499.00", Some("3606.00.00000"), Some("12345678901")).into_domain(ours).unwrap();
        // The account written as an IBAN, or as the document's example writes parties.
        let iban = transaction("499.00", Some("NO93 3606 0000 000"), None).into_domain(ours).unwrap();
        assert_eq!(iban.direction, Direction::Out);
        let long = transaction("499.00", None, Some("9836060000000")).into_domain(ours).unwrap();
        assert_eq!(long.direction, Direction::In);
        assert_eq!((out.direction, out.amount_minor), (Direction::Out, -499_00));
        let income = transaction("499.00", Some("12345678901"), Some(ours)).into_domain(ours).unwrap();
        assert_eq!((income.direction, income.amount_minor), (Direction::In, 499_00));
        // A signed amount agrees with the parties, or stands alone.
        let signed = transaction("-499.00", Some(ours), None).into_domain(ours).unwrap();
        assert_eq!((signed.direction, signed.amount_minor), (Direction::Out, -499_00));
        let bare = transaction("-12.50", None, None).into_domain(ours).unwrap();
        assert_eq!((bare.direction, bare.amount_minor), (Direction::Out, -12_50));
        let unknown = transaction("12.50", None, None).into_domain(ours).unwrap();
        assert_eq!((unknown.direction, unknown.amount_minor), (Direction::Unknown, 12_50));
    }
}
