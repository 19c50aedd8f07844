//! What a machine read from a receipt or an invoice, field by field, each with a
//! confidence; and the check digits that make some fields checkable at all.
//!
//! The reader (`bookkeeper-reader`) produces a [`Reading`]; Book-E records it in a
//! `...Read` event, shows it to the person, and records what they confirmed or
//! corrected in the proposal ([`ConfirmedReading`]). Pure data: nothing here reads
//! a document.

use std::collections::BTreeMap;
use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// At or above this, a field is stated as read; below it, it is marked unsure and
/// the person is asked.
pub const SURE: f32 = 0.8;

/// One field's value and how sure the reader is of it (0 to 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field<T> {
    /// What was read.
    pub value: T,
    /// How sure the reader is: at least [`SURE`] when cross-checks agree.
    /// Written with two decimals (`0.9`, not `0.8999999761581421`).
    #[serde(serialize_with = "two_decimals")]
    pub confidence: f32,
}

impl<T> Field<T> {
    /// A field read with this confidence (clamped to 0..=1).
    pub fn new(value: T, confidence: f32) -> Field<T> {
        let confidence = if confidence.is_nan() { 0.0 } else { confidence.clamp(0.0, 1.0) };
        Field { value, confidence }
    }

    /// Whether the reader states it (confidence at least [`SURE`]).
    pub fn is_sure(&self) -> bool {
        self.confidence >= SURE
    }
}

fn two_decimals<S: serde::Serializer>(c: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((f64::from(*c) * 100.0).round() / 100.0)
}

// A confidence is never NaN: `Field::new` makes it a number, and JSON has no NaN.
impl<T: Eq> Eq for Field<T> {}

/// Everything read from one document. A field is absent when it was not found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reading {
    /// Who issued it (the shop, the supplier).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<Field<String>>,
    /// The issuer's organisation number, nine digits (MOD11-checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization_number: Option<Field<String>>,
    /// The purchase or invoice date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<Field<NaiveDate>>,
    /// The total paid or to pay, VAT included, in minor units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_minor: Option<Field<i64>>,
    /// ISO 4217 code of the total (`NOK`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<Field<String>>,
    /// VAT of every rate together, in minor units.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vat_minor: Option<Field<i64>>,
    /// An invoice's number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_number: Option<Field<String>>,
    /// An invoice's due date.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_date: Option<Field<NaiveDate>>,
    /// The account to pay to, eleven digits (MOD11-checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_number: Option<Field<String>>,
    /// The payment reference (KID, MOD10- or MOD11-checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<Field<String>>,
}

/// The fields of a [`Reading`], by the names they have in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FieldName {
    /// [`Reading::vendor`].
    Vendor,
    /// [`Reading::organization_number`].
    OrganizationNumber,
    /// [`Reading::date`].
    Date,
    /// [`Reading::total_minor`].
    TotalMinor,
    /// [`Reading::currency`].
    Currency,
    /// [`Reading::vat_minor`].
    VatMinor,
    /// [`Reading::invoice_number`].
    InvoiceNumber,
    /// [`Reading::due_date`].
    DueDate,
    /// [`Reading::account_number`].
    AccountNumber,
    /// [`Reading::kid`].
    Kid,
}

impl FieldName {
    /// Every field, in the order they are shown.
    pub const ALL: [FieldName; 10] = [
        FieldName::Vendor,
        FieldName::OrganizationNumber,
        FieldName::Date,
        FieldName::TotalMinor,
        FieldName::Currency,
        FieldName::VatMinor,
        FieldName::InvoiceNumber,
        FieldName::DueDate,
        FieldName::AccountNumber,
        FieldName::Kid,
    ];

    /// The field's JSON name.
    pub fn name(self) -> &'static str {
        match self {
            FieldName::Vendor => "vendor",
            FieldName::OrganizationNumber => "organization_number",
            FieldName::Date => "date",
            FieldName::TotalMinor => "total_minor",
            FieldName::Currency => "currency",
            FieldName::VatMinor => "vat_minor",
            FieldName::InvoiceNumber => "invoice_number",
            FieldName::DueDate => "due_date",
            FieldName::AccountNumber => "account_number",
            FieldName::Kid => "kid",
        }
    }

    /// The field named exactly `name`.
    pub fn parse(name: &str) -> Option<FieldName> {
        FieldName::ALL.into_iter().find(|f| f.name() == name)
    }
}

impl fmt::Display for FieldName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Reading {
    /// A field's value as text and its confidence, if it was read.
    pub fn get(&self, field: FieldName) -> Option<(String, f32)> {
        fn of<T: ToString>(f: &Option<Field<T>>) -> Option<(String, f32)> {
            f.as_ref().map(|f| (f.value.to_string(), f.confidence))
        }
        match field {
            FieldName::Vendor => of(&self.vendor),
            FieldName::OrganizationNumber => of(&self.organization_number),
            FieldName::Date => of(&self.date),
            FieldName::TotalMinor => of(&self.total_minor),
            FieldName::Currency => of(&self.currency),
            FieldName::VatMinor => of(&self.vat_minor),
            FieldName::InvoiceNumber => of(&self.invoice_number),
            FieldName::DueDate => of(&self.due_date),
            FieldName::AccountNumber => of(&self.account_number),
            FieldName::Kid => of(&self.kid),
        }
    }

    /// Whether no field was read at all.
    pub fn is_empty(&self) -> bool {
        FieldName::ALL.iter().all(|f| self.get(*f).is_none())
    }

    /// Drops every field below [`SURE`]: what may be stated without asking.
    pub fn sure_only(&self) -> Reading {
        fn keep<T: Clone>(f: &Option<Field<T>>) -> Option<Field<T>> {
            f.as_ref().filter(|f| f.is_sure()).cloned()
        }
        Reading {
            vendor: keep(&self.vendor),
            organization_number: keep(&self.organization_number),
            date: keep(&self.date),
            total_minor: keep(&self.total_minor),
            currency: keep(&self.currency),
            vat_minor: keep(&self.vat_minor),
            invoice_number: keep(&self.invoice_number),
            due_date: keep(&self.due_date),
            account_number: keep(&self.account_number),
            kid: keep(&self.kid),
        }
    }
}

/// What a proposal made from a reading records: what was read, by which reader,
/// and what the person confirmed or changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfirmedReading {
    /// The `...Read` event the person confirmed.
    pub read_event_id: uuid::Uuid,
    /// The reader and the engines it used, with their versions.
    pub reader: String,
    /// Everything read, as read (unsure fields included).
    pub read: Reading,
    /// Who confirmed it (`user:<id>`).
    pub confirmed_by: String,
    /// Fields the person gave or changed, by JSON name, as they wrote them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub corrected: BTreeMap<String, String>,
}

/// Check digits of Norwegian numbers.
pub mod check {
    fn digits(text: &str) -> Option<Vec<u32>> {
        text.chars().map(|c| c.to_digit(10)).collect()
    }

    /// MOD11 with the weights 2, 3, 4, 5, 6, 7 repeating from the right (the
    /// digit before the check digit first): `None` when the remainder makes no
    /// valid check digit (10).
    fn mod11_check(body: &[u32], weights: &[u32]) -> Option<u32> {
        let sum: u32 = body.iter().rev().zip(weights.iter().cycle()).map(|(d, w)| d * w).sum();
        match 11 - sum % 11 {
            11 => Some(0),
            10 => None,
            c => Some(c),
        }
    }

    fn mod11_valid(text: &str, len: usize, weights: &[u32]) -> bool {
        match digits(text) {
            Some(d) if d.len() == len => mod11_check(&d[..len - 1], weights) == Some(d[len - 1]),
            _ => false,
        }
    }

    /// An organisation number: nine digits, MOD11 with weights 3 2 7 6 5 4 3 2.
    pub fn organization_number(text: &str) -> bool {
        // Weights from the left are 3 2 7 6 5 4 3 2; from the right 2 3 4 5 6 7 2 3.
        mod11_valid(text, 9, &[2, 3, 4, 5, 6, 7]) && text.starts_with(['8', '9'])
    }

    /// A bank account number: eleven digits, MOD11 with weights 5 4 3 2 7 6 5 4 3 2.
    pub fn account_number(text: &str) -> bool {
        mod11_valid(text, 11, &[2, 3, 4, 5, 6, 7])
    }

    /// MOD10 (Luhn) over every digit, the last being the check digit.
    pub fn mod10(text: &str) -> bool {
        let Some(d) = digits(text) else { return false };
        if d.len() < 2 {
            return false;
        }
        let sum: u32 = d
            .iter()
            .rev()
            .enumerate()
            .map(|(i, &x)| {
                if i % 2 == 1 {
                    if x * 2 > 9 {
                        x * 2 - 9
                    } else {
                        x * 2
                    }
                } else {
                    x
                }
            })
            .sum();
        sum % 10 == 0
    }

    /// A KID: 2 to 25 digits whose last is a MOD10 or a MOD11 check digit (a
    /// MOD11 remainder of 10 is written `-`).
    pub fn kid(text: &str) -> bool {
        if !text.is_ascii() {
            return false;
        }
        let len = text.len();
        if !(2..=25).contains(&len) {
            return false;
        }
        if mod10(text) {
            return true;
        }
        let (body, last) = text.split_at(text.len() - 1);
        let Some(body) = digits(body) else { return false };
        match (mod11_check(&body, &[2, 3, 4, 5, 6, 7]), last) {
            (Some(c), l) => l.parse::<u32>().ok() == Some(c),
            (None, "-") => true,
            _ => false,
        }
    }

    /// The MOD10 check digit that completes `body` (for generating test data).
    pub fn mod10_digit(body: &str) -> Option<u32> {
        (0..10).find(|c| mod10(&format!("{body}{c}")))
    }

    /// The MOD11 check digit that completes `body`, if one exists.
    pub fn mod11_digit(body: &str) -> Option<u32> {
        mod11_check(&digits(body)?, &[2, 3, 4, 5, 6, 7])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn organisation_numbers_are_checked() {
        // Brønnøysundregistrene's own number, and one digit off.
        assert!(check::organization_number("974760673"));
        assert!(!check::organization_number("974760674"));
        assert!(!check::organization_number("97476067"));
        assert!(!check::organization_number("97476067a"));
    }

    #[test]
    fn account_numbers_and_kids_are_checked() {
        assert!(check::account_number("86011117947"));
        assert!(!check::account_number("86011117948"));
        assert!(check::kid("1234567897"), "MOD10");
        assert!(!check::kid("1234567898"));
        let body = "20261124";
        let c = check::mod11_digit(body).expect("a digit");
        assert!(check::kid(&format!("{body}{c}")), "MOD11");
    }

    #[test]
    fn a_reading_serialises_with_exactly_the_field_names() {
        let r = Reading { total_minor: Some(Field::new(31250, 0.9)), ..Reading::default() };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v, serde_json::json!({"total_minor": {"value": 31250, "confidence": 0.9}}));
        for f in FieldName::ALL {
            assert_eq!(FieldName::parse(f.name()), Some(f));
        }
        assert_eq!(r.sure_only(), r);
        let unsure = Reading { date: Some(Field::new(NaiveDate::MIN, 0.5)), ..Reading::default() };
        assert!(unsure.sure_only().is_empty());
    }
}
