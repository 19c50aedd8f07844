//! A document dropped with nothing typed: Book-E reads it, records the reading
//! (a `...Read` event, the stage before the proposal, so it survives a restart),
//! says what it read and which bank transaction it matches, and proposes only
//! once the person who sent it confirms or corrects it. The proposal records
//! what was read, what the person confirmed or changed, and the reader's version.

use std::collections::BTreeMap;

use bookkeeper_core::domain::{
    ActionKind, AttachmentTarget, ConfirmedReading, DocumentRead, InvoiceRegistrationProposed, Money, Payload,
    ReceiptAttachmentProposed, Stage, Vendor,
};
use bookkeeper_core::event::{actor, status};
use bookkeeper_core::reading::{FieldName, Reading};
use bookkeeper_core::{ActionState, Append, ExpectedVersion, NewEvent, Phase, StoreError};
use chrono::{Days, NaiveDate};

use super::waiting::Current;
use super::{Answer, Choice, Conversation, Message};
use crate::command::{self, ConfirmArgs};
use crate::render;

/// Largest document read (the Accounting API keeps documents up to 20 MiB too).
const MAX_READ_BYTES: usize = bookkeeper_reader::MAX_DOCUMENT_BYTES;

fn money(minor: i64) -> String {
    Money::nok(minor).to_string()
}

/// A reading's fields in lines a person checks: unsure ones marked.
fn describe(read: &Reading, invoice: bool) -> String {
    let mut lines = Vec::new();
    for field in FieldName::ALL {
        let invoice_only =
            matches!(field, FieldName::InvoiceNumber | FieldName::DueDate | FieldName::AccountNumber | FieldName::Kid);
        if invoice_only && !invoice {
            continue;
        }
        let Some((value, confidence)) = read.get(field) else { continue };
        let label = match field {
            FieldName::Vendor => "vendor",
            FieldName::OrganizationNumber => "organisation number",
            FieldName::Date => "date",
            FieldName::TotalMinor => "total",
            FieldName::Currency => "currency",
            FieldName::VatMinor => "VAT",
            FieldName::InvoiceNumber => "invoice number",
            FieldName::DueDate => "due",
            FieldName::AccountNumber => "pay to account",
            FieldName::Kid => "KID",
        };
        let shown = match field {
            FieldName::TotalMinor | FieldName::VatMinor => value.parse().map(money).unwrap_or(value),
            _ => value,
        };
        let unsure = if confidence < bookkeeper_core::reading::SURE { " (not sure: check it)" } else { "" };
        lines.push(format!("• {label}: {shown}{unsure}"));
    }
    lines.join("\n")
}

/// The fields a person gave with the document, as `/confirm` names them.
pub(super) fn given_receipt(args: &command::ReceiptArgs) -> BTreeMap<String, String> {
    let mut given = BTreeMap::new();
    if let Some(v) = &args.vendor {
        given.insert("vendor".into(), v.clone());
    }
    if let Some(d) = args.date {
        given.insert("date".into(), d.to_string());
    }
    if let Some(n) = &args.note {
        given.insert("note".into(), n.clone());
    }
    given
}

/// The fields a person gave with an invoice, as `/confirm` names them.
pub(super) fn given_invoice(args: &command::InvoiceArgs) -> BTreeMap<String, String> {
    let mut given = BTreeMap::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            given.insert(k.to_string(), v);
        }
    };
    put("vendor", args.vendor.clone());
    put("org", args.organization_number.clone());
    put("number", args.number.clone());
    put("amount", args.amount.map(|a| bookkeeper_core::money::format_minor(a).replace('.', ",")));
    put("date", args.date.map(|d| d.to_string()));
    put("due", args.due.map(|d| d.to_string()));
    put("account", args.account.clone());
    put("vat", args.vat.clone());
    put("description", args.description.clone());
    given
}

/// What the proposal will say, from the reading, what the person gave with the
/// document, and their corrections (latest wins).
struct Fields<'a> {
    read: &'a Reading,
    given: &'a BTreeMap<String, String>,
    corrections: &'a BTreeMap<String, String>,
}

impl Fields<'_> {
    fn text(&self, option: &str) -> Option<String> {
        self.corrections.get(option).or_else(|| self.given.get(option)).cloned()
    }

    fn amount(&self) -> Result<Option<i64>, String> {
        match self.text("amount") {
            Some(t) => command::parse_amount(&t).map(Some).map_err(|e| e.0),
            None => Ok(self.read.total_minor.as_ref().map(|f| f.value)),
        }
    }

    fn date(&self, option: &str, read: Option<NaiveDate>) -> Result<Option<NaiveDate>, String> {
        match self.text(option) {
            Some(t) => command::parse_date(option, &t).map(Some).map_err(|e| e.0),
            None => Ok(read),
        }
    }

    fn vendor(&self) -> Option<String> {
        self.text("vendor").or_else(|| self.read.vendor.as_ref().map(|f| f.value.clone()))
    }

    fn org(&self) -> Option<String> {
        self.text("org")
            .map(|o| o.replace(' ', ""))
            .or_else(|| self.read.organization_number.as_ref().map(|f| f.value.clone()))
    }
}

impl Conversation {
    /// Reads an attached document for `kind` and asks the person to confirm.
    /// Without a reader, or when reading fails, says so and asks for the fields.
    pub(super) async fn read_and_ask(
        &self,
        message: &Message,
        kind: ActionKind,
        given: BTreeMap<String, String>,
        fallback: &str,
    ) -> Result<Answer, String> {
        let what = match kind {
            ActionKind::ReceiptAttachment => "receipt",
            ActionKind::InvoiceRegistration => "invoice",
        };
        let document = self.document(message, what).await?;
        let Some(reader) = self.reader.clone() else {
            return Ok(Answer::say(format!("I cannot read documents here ({}). {fallback}", self.reader_missing())));
        };
        let (_, bytes) = self.accounting.document(&document.sha256, MAX_READ_BYTES).await.map_err(|e| e.to_string())?;
        let today = self.config.clock.today();
        let _turn =
            self.reading.acquire().await.map_err(|_| "Book-E is stopping; send it again shortly".to_string())?;
        let read = tokio::task::spawn_blocking(move || reader.read(&bytes, today).map(|r| (r, reader.version())))
            .await
            .map_err(|_| "reading the document stopped unexpectedly; nothing was proposed".to_string())?;
        let (read, version) = match read {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "a document could not be read");
                return Ok(Answer::say(format!("I could not read the {what}: {e}. {fallback}")));
            }
        };
        if read.reading.is_empty() {
            return Ok(Answer::say(format!("I found nothing I could read on the {what}. {fallback}")));
        }
        let id = uuid::Uuid::new_v4().to_string();
        let fields = Fields { read: &read.reading, given: &given, corrections: &BTreeMap::new() };
        let mut choices = Vec::new();
        let mut matched = None;
        let mut match_text = String::new();
        if kind == ActionKind::ReceiptAttachment {
            match (fields.amount()?, fields.date("date", read.reading.date.as_ref().map(|f| f.value))?) {
                (Some(amount), date) => {
                    let date = date.unwrap_or(today);
                    let (found, from, to) = self.candidates(amount, date, fields.vendor().as_deref()).await?;
                    match found.as_slice() {
                        [] => {
                            match_text = format!(
                                "I found no bank transaction of {} between {from} and {to} without a receipt: \
                                 correct the amount or date, or name it with `/confirm {id} transaction=<id>`.",
                                money(amount)
                            )
                        }
                        [one] => {
                            matched = Some(one.event_id.clone());
                            match_text = format!("It matches the bank transaction {}.", render::transaction(one));
                        }
                        several => {
                            match_text = format!("{} bank transactions match; pick one:", several.len());
                            choices.extend(several.iter().map(|t| Choice {
                                label: render::transaction(t),
                                command: format!("/confirm {id} transaction={}", t.event_id),
                            }));
                        }
                    }
                }
                (None, _) => match_text = format!("I could not read the total: give it with `/confirm {id} amount=…`."),
            }
        }
        let payload = DocumentRead {
            requested_by: actor::user(&message.user),
            document,
            read: read.reading.clone(),
            reader: version,
            transaction: matched.clone(),
            given,
        };
        let event = NewEvent::new(kind.event_type(Stage::Read), actor::BOOK_E, status::READ, &id)
            .with_payload(serde_json::to_value(&payload).map_err(|e| e.to_string())?)
            .with_metadata(serde_json::json!({ "reply_to": message.reply_to }));
        self.store.append(Append::one(event).expecting(&id, ExpectedVersion::NoEvents)).await.map_err(|e| {
            tracing::error!(error = %e, "could not record a reading");
            "I could not record what I read (the log is unavailable); nothing was proposed. Try again shortly."
                .to_string()
        })?;
        tracing::info!(correlation_id = %id, passes = read.passes, "document read, waiting for confirmation");
        let missing = match kind {
            ActionKind::InvoiceRegistration => self.invoice_missing(&payload, &BTreeMap::new()),
            ActionKind::ReceiptAttachment => Vec::new(),
        };
        let mut text =
            format!("I read this {what}:\n{}", describe(&read.reading, kind == ActionKind::InvoiceRegistration));
        if !match_text.is_empty() {
            text.push('\n');
            text.push_str(&match_text);
        }
        if !missing.is_empty() {
            text.push_str(&format!(
                "\nI could not read {}: give it with `/confirm {id} {}`.",
                missing.join(", "),
                missing.iter().map(|m| format!("{m}=…")).collect::<Vec<_>>().join(" ")
            ));
        } else if kind == ActionKind::InvoiceRegistration || matched.is_some() {
            choices.insert(0, Choice { label: "Yes, propose it".into(), command: format!("/confirm {id}") });
            text.push_str(&format!(
                "\nIs this right? Say `yes` to propose it, or correct a field: `/confirm {id} amount=…`."
            ));
        }
        text.push_str(&format!("\nReading `{id}`."));
        Ok(Answer { text, proposal: None, choices })
    }

    /// What an invoice still lacks for a proposal (as `/confirm` options).
    fn invoice_missing(&self, read: &DocumentRead, corrections: &BTreeMap<String, String>) -> Vec<&'static str> {
        let fields = Fields { read: &read.read, given: &read.given, corrections };
        let mut missing = Vec::new();
        if fields.vendor().is_none() {
            missing.push("vendor");
        }
        if fields.text("number").is_none() && read.read.invoice_number.is_none() {
            missing.push("number");
        }
        if !matches!(fields.amount(), Ok(Some(_))) {
            missing.push("amount");
        }
        missing
    }

    /// The person's yes (with corrections) to a reading: proposes it.
    pub(super) async fn confirm(&self, message: &Message, args: ConfirmArgs) -> Result<Answer, String> {
        let me = actor::user(&message.user);
        let id = match args.id {
            Some(id) => id,
            None => self.latest_reading(&me).await?.ok_or_else(|| {
                "I have nothing of yours waiting to be confirmed. Drop a receipt or an invoice first.".to_string()
            })?,
        };
        let story = self.store.read_correlation(&id).await.map_err(|e| format!("I cannot read the log now: {e}"))?;
        let state = ActionState::fold(&story);
        let (Some(reading), Some(kind)) = (state.reading, state.kind) else {
            return Err(format!("I have no reading `{id}`."));
        };
        let read: DocumentRead = serde_json::from_value(reading.payload.clone())
            .map_err(|_| format!("The reading `{id}` is not one I can use; send the document again."))?;
        if read.requested_by != me {
            return Err("Only the person who sent the document may confirm what I read.".into());
        }
        match state.phase() {
            Phase::AwaitingConfirmation => {}
            _ => return Err(format!("`{id}` is proposed already: `/status {id}`.")),
        }
        let confirmed = |corrected: BTreeMap<String, String>| ConfirmedReading {
            read_event_id: reading.event_id,
            reader: read.reader.clone(),
            read: read.read.clone(),
            confirmed_by: me.clone(),
            corrected,
        };
        let fields = Fields { read: &read.read, given: &read.given, corrections: &args.corrections };
        let today = self.config.clock.today();
        let reply_to = reading.metadata.get("reply_to").cloned().unwrap_or_else(|| serde_json::json!(message.reply_to));
        let (event, summary) = match kind {
            ActionKind::ReceiptAttachment => {
                let Some(amount) = fields.amount()? else {
                    return Err(format!("I still need the total: `/confirm {id} amount=…`."));
                };
                let date = fields.date("date", read.read.date.as_ref().map(|f| f.value))?;
                let changed = ["amount", "date", "vendor"].iter().any(|k| args.corrections.contains_key(*k));
                let transaction = match args.corrections.get("transaction") {
                    Some(t) => self.named_transaction(t, today).await?,
                    None => {
                        let stored = read.transaction.clone().filter(|_| !changed);
                        match stored {
                            Some(t) => self.named_transaction(&t, today).await?,
                            None => {
                                let (found, from, to) =
                                    self.candidates(amount, date.unwrap_or(today), fields.vendor().as_deref()).await?;
                                match found.as_slice() {
                                    [one] => one.clone(),
                                    [] => {
                                        return Err(format!(
                                            "I found no bank transaction of {} between {from} and {to} without a \
                                             receipt; nothing was proposed. Correct it, or name the transaction: \
                                             `/confirm {id} transaction=<id>`.",
                                            money(amount)
                                        ))
                                    }
                                    several => {
                                        return Ok(Answer {
                                            text: format!(
                                                "{} bank transactions match. Which one is it?",
                                                several.len()
                                            ),
                                            proposal: None,
                                            choices: several
                                                .iter()
                                                .map(|t| Choice {
                                                    label: render::transaction(t),
                                                    command: format!("/confirm {id} transaction={}", t.event_id),
                                                })
                                                .collect(),
                                        })
                                    }
                                }
                            }
                        }
                    }
                };
                let vendor =
                    fields.vendor().or_else(|| transaction.creditor.clone()).unwrap_or(transaction.description.clone());
                let proposal = ReceiptAttachmentProposed {
                    requested_by: me.clone(),
                    receipt: read.document.clone(),
                    target: AttachmentTarget::FolioEvent { event_id: transaction.event_id.clone() },
                    amount: Some(Money { minor: -transaction.amount_minor, currency: transaction.currency.clone() }),
                    vendor: Some(Vendor { name: vendor, organization_number: fields.org() }),
                    date: Some(date.unwrap_or(transaction.booking_date)),
                    note: fields.text("note"),
                    reading: Some(confirmed(args.corrections.clone())),
                };
                let summary = format!("attach the receipt to {}", render::transaction(&transaction));
                (proposal.into_event(actor::BOOK_E, &id), summary)
            }
            ActionKind::InvoiceRegistration => {
                let missing = self.invoice_missing(&read, &args.corrections);
                if !missing.is_empty() {
                    return Err(format!(
                        "I still need {}: `/confirm {id} {}`.",
                        missing.join(", "),
                        missing.iter().map(|m| format!("{m}=…")).collect::<Vec<_>>().join(" ")
                    ));
                }
                let invoice_date = fields.date("date", read.read.date.as_ref().map(|f| f.value))?.unwrap_or(today);
                let due_date = fields
                    .date("due", read.read.due_date.as_ref().map(|f| f.value))?
                    .unwrap_or(invoice_date + Days::new(self.config.default_due_days));
                if due_date < invoice_date {
                    return Err(format!("The due date {due_date} is before the invoice date {invoice_date}."));
                }
                let number = fields
                    .text("number")
                    .or_else(|| read.read.invoice_number.as_ref().map(|f| f.value.clone()))
                    .unwrap_or_default();
                let proposal = InvoiceRegistrationProposed {
                    requested_by: me.clone(),
                    document: read.document.clone(),
                    vendor: Vendor { name: fields.vendor().unwrap_or_default(), organization_number: fields.org() },
                    invoice_number: number,
                    amount: Money::nok(fields.amount()?.unwrap_or_default()),
                    invoice_date,
                    due_date,
                    account: fields.text("account").unwrap_or_else(|| self.config.default_account.clone()),
                    description: fields.text("description").unwrap_or_default(),
                    vat_type: fields.text("vat").map(|v| v.to_ascii_uppercase()),
                    reading: Some(confirmed(args.corrections.clone())),
                };
                let summary = format!(
                    "register invoice {} from {}, {}, due {}",
                    proposal.invoice_number, proposal.vendor.name, proposal.amount, proposal.due_date
                );
                (proposal.into_event(actor::BOOK_E, &id), summary)
            }
        };
        let event = event.caused_by(reading.event_id).with_metadata(serde_json::json!({ "reply_to": reply_to }));
        // Against the story as read: a second yes (another door, a double press) finds it proposed.
        let expected = ExpectedVersion::Lifecycle(bookkeeper_core::lifecycle::version(&story));
        match self.store.append(Append::one(event).expecting(&id, expected)).await {
            Ok(_) => {}
            Err(StoreError::VersionConflict { .. }) => {
                return Err(format!("`{id}` is proposed already: `/status {id}`."))
            }
            Err(e) => {
                tracing::error!(error = %e, "could not append a proposal");
                return Err("I could not record the proposal (the log is unavailable); nothing was proposed. \
                            Try again shortly."
                    .into());
            }
        }
        tracing::info!(correlation_id = %id, corrected = args.corrections.len(), "proposed from a confirmed reading");
        Ok(Answer {
            text: format!("Proposed: {summary}. Review-E decides next; I will tell you here. Id: `{id}`"),
            proposal: Some(id),
            choices: vec![],
        })
    }

    /// The person's latest reading that still waits for them.
    async fn latest_reading(&self, me: &str) -> Result<Option<String>, String> {
        let unavailable = |e: StoreError| format!("I cannot read the log now: {e}");
        let mut waiting = self.waiting.lock().await;
        let candidates = match waiting.current(&self.store).await.map_err(unavailable)? {
            Current::Complete(index) => index.of(me),
            // The newest reading may be among what is held back: never guess an older one.
            Current::Incomplete => {
                return Err("The log is busy and I cannot be sure which reading is your newest. Name it: \
                            `/confirm <id>` (the id is in my answer to the document), or say yes again shortly."
                    .into())
            }
        };
        for id in candidates {
            // The index names; the story decides.
            let story = self.store.read_correlation(&id).await.map_err(unavailable)?;
            let state = ActionState::fold(&story);
            let sender = state.reading.and_then(|r| r.payload.get("requested_by").and_then(|s| s.as_str()));
            if state.phase() == Phase::AwaitingConfirmation && sender == Some(me) {
                return Ok(Some(id));
            }
            waiting.forget(&id);
        }
        Ok(None)
    }

    fn reader_missing(&self) -> &'static str {
        "the document reader is switched off or not installed"
    }
}
