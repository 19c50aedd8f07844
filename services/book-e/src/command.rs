//! What a person asked for, parsed deterministically from their words.
//!
//! Commands look the same in every door: `/receipt amount=499,00 vendor="Kiwi"`,
//! `/invoice vendor="Kontor AS" number=F-1 amount=12 500 due=2026-12-01`,
//! `/balance`, `/pending`, `/status <id>`, `/help`. A few plain-language forms
//! ("what's our balance?") map to the same commands. Nothing here decides
//! anything: the worst a misunderstanding can do is propose, and proposals are
//! reviewed.

use std::collections::BTreeMap;

use chrono::NaiveDate;

/// A request, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Attach a receipt to the bank transaction it belongs to.
    Receipt(ReceiptArgs),
    /// Register a supplier invoice.
    Invoice(InvoiceArgs),
    /// The bank balance.
    Balance,
    /// Proposals waiting for a person.
    Pending,
    /// The story of one proposal.
    Status(String),
    /// Yes to what Book-E read from a document (`/confirm [id] [field=value ...]`,
    /// or a plain "yes"): propose it, with the corrections given.
    Confirm(ConfirmArgs),
    /// What Book-E understands.
    Help,
    /// Not understood; the text says why.
    Unknown(String),
}

/// `/receipt` options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiptArgs {
    /// Amount in minor units (positive: what was paid).
    pub amount: Option<i64>,
    /// Vendor name.
    pub vendor: Option<String>,
    /// Purchase date.
    pub date: Option<NaiveDate>,
    /// The Folio event (or transaction) id, when the person picked one.
    pub transaction: Option<String>,
    /// Free text.
    pub note: Option<String>,
}

/// `/invoice` options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvoiceArgs {
    /// Supplier name.
    pub vendor: Option<String>,
    /// Supplier organisation number.
    pub organization_number: Option<String>,
    /// The supplier's invoice number.
    pub number: Option<String>,
    /// Total including VAT, minor units.
    pub amount: Option<i64>,
    /// Invoice date.
    pub date: Option<NaiveDate>,
    /// Due date.
    pub due: Option<NaiveDate>,
    /// Expense account.
    pub account: Option<String>,
    /// VAT type (`HIGH`, `MEDIUM`, `LOW`, `NONE`).
    pub vat: Option<String>,
    /// What was bought.
    pub description: Option<String>,
}

/// `/confirm` options: which reading (the person's latest when absent) and the
/// fields they correct, by the option names of `/receipt` and `/invoice`, as
/// written (checked here, applied when proposing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfirmArgs {
    /// The reading's id, as Book-E gave it.
    pub id: Option<String>,
    /// Corrections: option name (normalised, e.g. `amount`, `org`) to the text written.
    pub corrections: BTreeMap<String, String>,
}

/// The options `/confirm` takes, with their other spellings.
const CONFIRM_OPTIONS: &[(&str, &[&str])] = &[
    ("amount", &["amount", "total", "beløp"]),
    ("vendor", &["vendor", "shop", "supplier"]),
    ("org", &["org", "orgnr", "organization_number"]),
    ("date", &["date", "dato", "invoice_date"]),
    ("due", &["due", "due_date"]),
    ("number", &["number", "invoice", "invoice_number"]),
    ("transaction", &["transaction", "event"]),
    ("account", &["account"]),
    ("bank_account", &["bank_account", "account_number", "kontonr"]),
    ("kid", &["kid"]),
    ("vat", &["vat"]),
    ("description", &["description", "what"]),
    ("note", &["note"]),
];

fn confirm_from(named: BTreeMap<String, String>, words: Vec<String>) -> Result<ConfirmArgs, ParseError> {
    let mut args = ConfirmArgs::default();
    match words.as_slice() {
        [] => {}
        [id] => args.id = Some(id.clone()),
        _ => {
            return Err(ParseError(format!(
                "/confirm takes the reading's id and corrections (amount=, date=, ...); I did not understand `{}`",
                words.join(" ")
            )))
        }
    }
    for (k, v) in named {
        let Some((name, _)) = CONFIRM_OPTIONS.iter().find(|(_, spellings)| spellings.contains(&k.as_str())) else {
            return Err(ParseError(format!("/confirm has no option `{k}`; see /help")));
        };
        match *name {
            "amount" => {
                parse_amount(&v)?;
            }
            "date" | "due" => {
                parse_date(name, &v)?;
            }
            "org" => {
                let digits = v.replace(' ', "");
                if !bookkeeper_core::reading::check::organization_number(&digits) {
                    return Err(ParseError(format!("org `{v}` is not an organisation number (nine digits, MOD11)")));
                }
            }
            "bank_account" => {
                let digits: String = v.chars().filter(|c| !matches!(c, ' ' | '.')).collect();
                if !bookkeeper_core::reading::check::account_number(&digits) {
                    return Err(ParseError(format!(
                        "bank_account `{v}` is not an account number (eleven digits, MOD11)"
                    )));
                }
            }
            "kid" if !bookkeeper_core::reading::check::kid(&v.replace(' ', "")) => {
                return Err(ParseError(format!("kid `{v}` is not a KID (its check digit does not match)")));
            }
            _ => {}
        }
        args.corrections.insert(name.to_string(), v);
    }
    Ok(args)
}

/// Why an option could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// Parses a person's amount (`499`, `499,50`, `1 249,00`, `12 500 kr`, `NOK 89`)
/// into minor units: [`bookkeeper_core::money::parse_written`].
pub fn parse_amount(text: &str) -> Result<i64, ParseError> {
    bookkeeper_core::money::parse_written(text).map_err(|e| ParseError(e.to_string()))
}

/// Parses a date as people write it (`2026-11-24`, `24.11.2026`); `name` is the
/// option's, for the error.
pub fn parse_date(name: &str, text: &str) -> Result<NaiveDate, ParseError> {
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(text.trim(), "%d.%m.%Y"))
        .map_err(|_| ParseError(format!("{name} `{text}` is not a date (write 2026-11-24 or 24.11.2026)")))
}

/// Splits on whitespace, keeping `"quoted words"` together.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' | '“' | '”' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `key=value` options and the remaining words.
fn options(rest: &[String]) -> (BTreeMap<String, String>, Vec<String>) {
    let mut named = BTreeMap::new();
    let mut words = Vec::new();
    for t in rest {
        match t.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                named.insert(k.to_ascii_lowercase(), v.to_string());
            }
            _ => words.push(t.clone()),
        }
    }
    (named, words)
}

/// Reads a receipt from free words: the first amount-looking word is the amount,
/// a date-looking word the date, the rest the vendor.
fn receipt_from(named: BTreeMap<String, String>, words: Vec<String>) -> Result<ReceiptArgs, ParseError> {
    let mut args = ReceiptArgs::default();
    let mut vendor_words = Vec::new();
    for w in words {
        if args.date.is_none() {
            if let Ok(d) = parse_date("date", &w) {
                args.date = Some(d);
                continue;
            }
        }
        if args.amount.is_none() && w.chars().next().is_some_and(|c| c.is_ascii_digit()) {
            if let Ok(a) = parse_amount(&w) {
                args.amount = Some(a);
                continue;
            }
        }
        if !matches!(w.to_ascii_lowercase().as_str(), "kr" | "nok" | ",-") {
            vendor_words.push(w);
        }
    }
    if !vendor_words.is_empty() {
        args.vendor = Some(vendor_words.join(" "));
    }
    for (k, v) in named {
        match k.as_str() {
            "amount" | "beløp" => args.amount = Some(parse_amount(&v)?),
            "vendor" | "shop" => args.vendor = Some(v),
            "date" | "dato" => args.date = Some(parse_date("date", &v)?),
            "transaction" | "event" => args.transaction = Some(v),
            "note" => args.note = Some(v),
            other => return Err(ParseError(format!("/receipt has no option `{other}`; see /help"))),
        }
    }
    Ok(args)
}

fn invoice_from(named: BTreeMap<String, String>, words: Vec<String>) -> Result<InvoiceArgs, ParseError> {
    let mut args = InvoiceArgs::default();
    if !words.is_empty() {
        return Err(ParseError(format!(
            "/invoice takes named options (vendor=, number=, amount=, due=); I did not understand `{}`",
            words.join(" ")
        )));
    }
    for (k, v) in named {
        match k.as_str() {
            "vendor" | "supplier" => args.vendor = Some(v),
            "org" | "orgnr" | "organization_number" => args.organization_number = Some(v.replace(' ', "")),
            "number" | "invoice" | "invoice_number" => args.number = Some(v),
            "amount" | "total" => args.amount = Some(parse_amount(&v)?),
            "date" | "invoice_date" => args.date = Some(parse_date("date", &v)?),
            "due" | "due_date" => args.due = Some(parse_date("due", &v)?),
            "account" => args.account = Some(v),
            "vat" => args.vat = Some(v.to_ascii_uppercase()),
            "description" | "what" => args.description = Some(v),
            other => return Err(ParseError(format!("/invoice has no option `{other}`; see /help"))),
        }
    }
    Ok(args)
}

/// Parses a message. `has_document` lets a bare attachment (with or without
/// words like "Kiwi 499,00") be read as a receipt.
pub fn parse(text: &str, has_document: bool) -> Command {
    let all = tokens(text);
    let Some(first) = all.first() else {
        return if has_document { Command::Receipt(ReceiptArgs::default()) } else { Command::Help };
    };
    let rest = &all[1..];
    let result = match first.to_ascii_lowercase().as_str() {
        "/receipt" | "/kvittering" => {
            let (named, words) = options(rest);
            receipt_from(named, words).map(Command::Receipt)
        }
        "/invoice" | "/faktura" => {
            let (named, words) = options(rest);
            invoice_from(named, words).map(Command::Invoice)
        }
        "/confirm" | "/bekreft" => {
            let (named, words) = options(rest);
            confirm_from(named, words).map(Command::Confirm)
        }
        "/balance" | "/saldo" => Ok(Command::Balance),
        "/pending" => Ok(Command::Pending),
        "/status" => match rest.first() {
            Some(id) => Ok(Command::Status(id.clone())),
            None => Err(ParseError("/status needs a proposal id: /status <id>".into())),
        },
        "/help" | "/hjelp" => Ok(Command::Help),
        command if command.starts_with('/') => Err(ParseError(format!("I do not know {command}; see /help"))),
        _ => Ok(plain_language(text, &all, has_document)),
    };
    result.unwrap_or_else(|e| Command::Unknown(e.0))
}

/// The few plain-language forms Book-E understands. Only ever maps to the same
/// commands as above; never to a decision.
fn plain_language(text: &str, all: &[String], has_document: bool) -> Command {
    let lower = text.to_lowercase();
    if has_document {
        let (named, words) = options(all);
        return receipt_from(named, words).map(Command::Receipt).unwrap_or_else(|e| Command::Unknown(e.0));
    }
    // Yes to what Book-E read, and only as a whole message: "yes, but not that" is not a yes.
    let bare = lower.trim().trim_end_matches(['.', '!']);
    if ["yes", "ja", "ok", "okay", "confirm", "bekreft", "stemmer", "correct"].contains(&bare) {
        return Command::Confirm(ConfirmArgs::default());
    }
    if lower.contains("balance") || lower.contains("saldo") {
        return Command::Balance;
    }
    if lower.contains("pending") || lower.contains("waiting") {
        return Command::Pending;
    }
    if let Some(id) = lower.strip_prefix("status ") {
        return Command::Status(id.trim().to_string());
    }
    if lower.trim() == "help" || lower.contains("what can you do") {
        return Command::Help;
    }
    Command::Unknown("I did not understand that; see /help".into())
}

/// The help text, the same in every door.
pub const HELP: &str = "\
I turn receipts and invoices into proposals; Review-E decides, the Accounting API carries them out, and I tell you what happened.
• Drop a receipt (PDF, JPEG, PNG or HEIC) in the finance channel, or `/receipt amount=499,00 vendor=\"Kiwi\" date=2026-11-24` with the file attached. I find the bank transaction it belongs to; if several match, I ask which. With only the file, I read it and show what I read: say `yes` (or press Confirm), or correct it with `/confirm <id> amount=312,50`.
• `/invoice vendor=\"Kontor AS\" org=912345678 number=F-1001 amount=12 500,00 due=2026-12-08 [date=…] [account=6540] [vat=HIGH] [description=…]` with the invoice attached; with only the file, I read what I can and ask for the rest.
• `/balance` — the bank balance. `/pending` — what waits for a reviewer. `/status <id>` — the story of one proposal.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_read_as_people_write_them() {
        assert_eq!(parse_amount("1 249,00").unwrap(), 124_900);
        assert!(parse_amount("0,0011").unwrap_err().0.contains("write it like 499,00"));
    }

    #[test]
    fn commands_with_options() {
        let c = parse(r#"/receipt amount=499,00 vendor="Kiwi Majorstuen" date=2026-11-24"#, true);
        assert_eq!(
            c,
            Command::Receipt(ReceiptArgs {
                amount: Some(49_900),
                vendor: Some("Kiwi Majorstuen".into()),
                date: NaiveDate::from_ymd_opt(2026, 11, 24),
                ..Default::default()
            })
        );
        let c = parse(r#"/invoice vendor="Kontor AS" org="912 345 678" number=F-1 amount=12500 due=08.12.2026"#, true);
        let Command::Invoice(i) = c else { panic!("{c:?}") };
        assert_eq!(
            (i.vendor.as_deref(), i.organization_number.as_deref(), i.amount, i.due),
            (Some("Kontor AS"), Some("912345678"), Some(1_250_000), NaiveDate::from_ymd_opt(2026, 12, 8))
        );
        assert_eq!(parse("/status abc-123", false), Command::Status("abc-123".into()));
        assert_eq!(parse("/BALANCE", false), Command::Balance);
    }

    #[test]
    fn a_bare_attachment_with_words_is_a_receipt() {
        let c = parse("Kiwi 499,00 24.11.2026", true);
        assert_eq!(
            c,
            Command::Receipt(ReceiptArgs {
                amount: Some(49_900),
                vendor: Some("Kiwi".into()),
                date: NaiveDate::from_ymd_opt(2026, 11, 24),
                ..Default::default()
            })
        );
        assert_eq!(parse("", true), Command::Receipt(ReceiptArgs::default()));
    }

    #[test]
    fn plain_language_maps_to_commands_only() {
        assert_eq!(parse("what's our balance?", false), Command::Balance);
        assert_eq!(parse("anything pending?", false), Command::Pending);
        assert_eq!(parse("status r-1", false), Command::Status("r-1".into()));
        assert!(matches!(parse("approve everything please", false), Command::Unknown(_)));
        assert!(matches!(parse("/approve r-1", false), Command::Unknown(m) if m.contains("/approve")));
    }

    #[test]
    fn a_confirmation_names_its_reading_and_checks_its_corrections() {
        assert_eq!(parse("yes", false), Command::Confirm(ConfirmArgs::default()));
        assert_eq!(parse("Ja!", false), Command::Confirm(ConfirmArgs::default()));
        assert!(matches!(parse("yes, but the amount is wrong", false), Command::Unknown(_)));
        let Command::Confirm(c) = parse("/confirm r-1 amount=312,50 org=\"974 760 673\"", false) else { panic!() };
        assert_eq!(c.id.as_deref(), Some("r-1"));
        assert_eq!(c.corrections.get("amount").map(String::as_str), Some("312,50"));
        assert_eq!(c.corrections.get("org").map(String::as_str), Some("974 760 673"));
        let Command::Unknown(m) = parse("/confirm r-1 org=974760674", false) else { panic!() };
        assert!(m.contains("not an organisation number"), "{m}");
        let Command::Unknown(m) = parse("/confirm r-1 colour=red", false) else { panic!() };
        assert!(m.contains("no option `colour`"), "{m}");
    }

    #[test]
    fn bad_options_say_what_is_wrong() {
        let Command::Unknown(m) = parse("/receipt amount=lots", true) else { panic!() };
        assert!(m.contains("`lots` is not an amount"), "{m}");
        let Command::Unknown(m) = parse("/invoice due=tomorrow", true) else { panic!() };
        assert!(m.contains("due `tomorrow` is not a date"), "{m}");
        let Command::Unknown(m) = parse("/receipt colour=red", true) else { panic!() };
        assert!(m.contains("no option `colour`"), "{m}");
    }
}
