//! The conversation core: one message in, one answer out, the same for every
//! door (Discord, HTTP, CLI). It reads (the log, the Accounting API) and may
//! append exactly two kinds of thing: a `...Read` event (what it read from a
//! document, waiting for the person to confirm: [`reading`]) and a `...Proposed`
//! event.

mod reading;
mod waiting;

use std::sync::Arc;

use bookkeeper_core::domain::{
    ActionKind, AttachmentTarget, DocumentRef, InvoiceRegistrationProposed, Money, Payload, ReceiptAttachmentProposed,
    Vendor,
};
use bookkeeper_core::event::actor;
use bookkeeper_core::{Append, Clock, Store};
use bookkeeper_http::wire::book_e::ChatAnswer;
use chrono::{Days, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::accounting::{AccountingReads, ReadError, Transaction};
use crate::command::{self, Command, InvoiceArgs, ReceiptArgs};
use crate::render;

/// Where answers and later notifications about a proposal go.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyTo {
    /// `discord`, `http` or `cli`.
    pub door: String,
    /// Discord channel (or thread) id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_id: Option<String>,
    /// The message to reply to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
}

/// A document a message carries: already stored, by hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachedDocument {
    /// SHA-256 from `POST /documents`.
    pub sha256: String,
    /// The name the person gave it.
    #[serde(default)]
    pub filename: Option<String>,
}

/// One message from a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who: a stable user id (Discord user id, or the identity an HTTP token maps to).
    pub user: String,
    /// What they wrote.
    pub text: String,
    /// An attached document.
    pub document: Option<AttachedDocument>,
    /// Where to answer later.
    pub reply_to: ReplyTo,
}

/// An option offered when asking (the wire type clients read).
pub use bookkeeper_http::wire::book_e::Choice;

/// Book-E's answer. On the wire: `text`, the `correlation_id` of the proposal made
/// (if any), and `choices` when asking; `proposal` repeats the correlation id for
/// clients of earlier releases (deprecated: read `correlation_id`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// What to say.
    pub text: String,
    /// The correlation id of the proposal made, if any.
    pub proposal: Option<String>,
    /// Options to pick from, when asking.
    pub choices: Vec<Choice>,
}

impl From<&Answer> for ChatAnswer {
    fn from(a: &Answer) -> ChatAnswer {
        ChatAnswer {
            text: a.text.clone(),
            correlation_id: a.proposal.clone(),
            // The name of earlier releases, kept for their clients.
            proposal: a.proposal.clone(),
            choices: a.choices.clone(),
        }
    }
}

impl Serialize for Answer {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        ChatAnswer::from(self).serialize(serializer)
    }
}

impl Answer {
    fn say(text: impl Into<String>) -> Answer {
        Answer { text: text.into(), proposal: None, choices: vec![] }
    }
}

/// Settings of the conversation.
#[derive(Debug, Clone)]
pub struct ConversationConfig {
    /// Days either side of the receipt's date to look for its bank transaction.
    pub match_days: u64,
    /// Expense account for invoices that do not name one.
    pub default_account: String,
    /// Days from invoice date to due date when not given.
    pub default_due_days: u64,
    /// Today, for which bank transactions a receipt may match and an invoice's
    /// default date.
    pub clock: Clock,
}

impl Default for ConversationConfig {
    fn default() -> Self {
        ConversationConfig {
            match_days: 5,
            default_account: "6800".into(),
            default_due_days: 14,
            clock: Clock::system(),
        }
    }
}

/// The conversation core.
#[derive(Clone)]
pub struct Conversation {
    store: Store,
    accounting: AccountingReads,
    config: ConversationConfig,
    /// Reads documents dropped without their fields typed; `None` asks instead.
    reader: Option<Arc<bookkeeper_reader::Reader>>,
    /// One document read at a time per Book-E: a burst of photos queues instead
    /// of taking every core from the conversation.
    reading: Arc<tokio::sync::Semaphore>,
    /// Readings still waiting for their senders: what a plain "yes" confirms.
    waiting: Arc<tokio::sync::Mutex<waiting::WaitingReadings>>,
}

impl Conversation {
    /// A conversation that proposes into `store` (as Book-E's role) and reads
    /// through `accounting`.
    pub fn new(store: Store, accounting: AccountingReads, config: ConversationConfig) -> Conversation {
        Conversation {
            store,
            accounting,
            config,
            reader: None,
            reading: Arc::new(tokio::sync::Semaphore::new(1)),
            waiting: Arc::default(),
        }
    }

    /// Reads documents sent without their fields (amount, vendor, ...) with
    /// `reader`, and asks the person to confirm what it read.
    pub fn with_reader(mut self, reader: Option<Arc<bookkeeper_reader::Reader>>) -> Conversation {
        self.reader = reader;
        self
    }

    /// Answers one message. Never fails: problems are said in the answer.
    pub async fn handle(&self, message: Message) -> Answer {
        let command = command::parse(&message.text, message.document.is_some());
        tracing::info!(user = %message.user, door = %message.reply_to.door, command = ?command_name(&command),
            "message");
        let answer = match command {
            Command::Help => Ok(Answer::say(command::HELP)),
            Command::Unknown(why) => Ok(Answer::say(why)),
            Command::Balance => self.balance().await,
            Command::Pending => self.pending().await,
            Command::Status(id) => self.status(&id).await,
            Command::Receipt(args) => self.receipt(&message, args).await,
            Command::Invoice(args) => self.invoice(&message, args).await,
            Command::Confirm(args) => self.confirm(&message, args).await,
        };
        answer.unwrap_or_else(Answer::say)
    }

    async fn balance(&self) -> Result<Answer, String> {
        let b = self.accounting.balance().await.map_err(|e| e.to_string())?;
        let mut text = format!("Bank balance: {}", Money { minor: b.total_minor, currency: b.currency.clone() });
        for a in &b.accounts {
            text.push_str(&format!(
                "\n• {} ({}): {}",
                a.name,
                a.account_number,
                Money { minor: a.balance_minor, currency: b.currency.clone() }
            ));
        }
        if b.sandbox {
            text.push_str("\n(SANDBOX: not your real bank)");
        }
        Ok(Answer::say(text))
    }

    async fn pending(&self) -> Result<Answer, String> {
        let pending = self.store.pending_reviews().await.map_err(|e| format!("I cannot read the log now: {e}"))?;
        if pending.is_empty() {
            return Ok(Answer::say("Nothing waits for a reviewer."));
        }
        let mut text = format!("{} proposal(s) wait for a decision:", pending.len());
        for p in &pending {
            let what = ActionKind::parse(&p.proposal_type).map(|(k, _)| k.name()).unwrap_or(&p.proposal_type);
            let state = if p.escalated { "escalated to a person" } else { "being judged" };
            text.push_str(&format!(
                "\n• `{}` {what}, proposed {} ({state})",
                p.correlation_id,
                p.proposed_at.format("%Y-%m-%d %H:%M")
            ));
        }
        Ok(Answer::say(text))
    }

    async fn status(&self, id: &str) -> Result<Answer, String> {
        let story = self.store.read_correlation(id).await.map_err(|e| format!("I cannot read the log now: {e}"))?;
        if story.is_empty() {
            return Ok(Answer::say(format!("I know no proposal `{id}`.")));
        }
        let mut text = format!("Proposal `{id}`:");
        for e in &story {
            text.push_str(&format!("\n• {} {}", e.created_at.format("%Y-%m-%d %H:%M"), render::describe(e)));
        }
        Ok(Answer { text, proposal: Some(id.to_string()), choices: vec![] })
    }

    /// Checks the attached document exists and returns its reference.
    async fn document(&self, message: &Message, what: &str) -> Result<DocumentRef, String> {
        let Some(doc) = &message.document else {
            return Err(format!("Attach the {what} (PDF, JPEG, PNG or HEIC) and send it again."));
        };
        let content_type = self.accounting.document_type(&doc.sha256).await.map_err(|e| match e {
            ReadError::NotFound(_) | ReadError::Refused(_) => {
                format!("I have no document {}; upload it first.", doc.sha256)
            }
            other => other.to_string(),
        })?;
        Ok(DocumentRef {
            sha256: doc.sha256.clone(),
            filename: doc.filename.clone().unwrap_or_else(|| format!("{what}.{}", extension(&content_type))),
            content_type,
        })
    }

    /// Bank transactions without a receipt that could be the payment of `amount`
    /// around `date`, narrowed to those naming `vendor` when that leaves any; and
    /// the days searched.
    async fn candidates(
        &self,
        amount: i64,
        date: NaiveDate,
        vendor: Option<&str>,
    ) -> Result<(Vec<Transaction>, NaiveDate, NaiveDate), String> {
        let today = self.config.clock.today();
        let from = date - Days::new(self.config.match_days);
        let to = (date + Days::new(self.config.match_days)).min(today).max(from);
        let mut candidates: Vec<Transaction> = self
            .accounting
            .transactions(from, to)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .filter(|t| t.receipts == 0 && t.could_be_paying(amount))
            .collect();
        if candidates.len() > 1 {
            if let Some(vendor) = vendor {
                let v = vendor.to_lowercase();
                let named: Vec<Transaction> = candidates.iter().filter(|t| mentions(t, &v)).cloned().collect();
                if !named.is_empty() {
                    candidates = named;
                }
            }
        }
        Ok((candidates, from, to))
    }

    async fn receipt(&self, message: &Message, args: ReceiptArgs) -> Result<Answer, String> {
        const ASK: &str = "Send it again with the amount, e.g. `/receipt amount=499,00`.";
        if args.transaction.is_none() && args.amount.is_none() && self.reader.is_some() {
            return self.read_and_ask(message, ActionKind::ReceiptAttachment, reading::given_receipt(&args), ASK).await;
        }
        let receipt = self.document(message, "receipt").await?;
        let today = self.config.clock.today();
        let transaction = match &args.transaction {
            Some(id) => self.named_transaction(id, today).await?,
            None => {
                let Some(amount) = args.amount else {
                    return Ok(Answer::say(format!("What was the amount? {ASK}")));
                };
                let (mut candidates, from, to) =
                    self.candidates(amount, args.date.unwrap_or(today), args.vendor.as_deref()).await?;
                match candidates.len() {
                    0 => {
                        return Ok(Answer::say(format!(
                            "I found no bank transaction of {} between {from} and {to} without a receipt. \
                             Check the amount and date, or name the transaction with `transaction=<id>`.",
                            Money::nok(amount)
                        )))
                    }
                    1 => candidates.remove(0),
                    n => {
                        let choices = candidates
                            .iter()
                            .map(|t| Choice {
                                label: render::transaction(t),
                                command: format!("/receipt transaction={}", t.event_id),
                            })
                            .collect();
                        return Ok(Answer {
                            text: format!(
                                "{n} bank transactions of {} match. Which one is it? \
                                 Send the receipt again with the command of the right one.",
                                Money::nok(amount)
                            ),
                            proposal: None,
                            choices,
                        });
                    }
                }
            }
        };
        let vendor_name =
            args.vendor.clone().or_else(|| transaction.creditor.clone()).unwrap_or(transaction.description.clone());
        let proposal = ReceiptAttachmentProposed {
            requested_by: actor::user(&message.user),
            receipt,
            target: AttachmentTarget::FolioEvent { event_id: transaction.event_id.clone() },
            amount: Some(Money { minor: -transaction.amount_minor, currency: transaction.currency.clone() }),
            vendor: Some(Vendor { name: vendor_name, organization_number: None }),
            date: Some(args.date.unwrap_or(transaction.booking_date)),
            note: args.note.clone(),
            reading: None,
        };
        let id = self.propose(proposal, &message.reply_to).await?;
        Ok(Answer {
            text: format!(
                "Proposed: attach the receipt to {}. Review-E decides next; I will tell you here. Id: `{id}`",
                render::transaction(&transaction)
            ),
            proposal: Some(id),
            choices: vec![],
        })
    }

    /// The transaction a person picked, looked up over the last 90 days.
    async fn named_transaction(&self, id: &str, today: NaiveDate) -> Result<Transaction, String> {
        let recent = self.accounting.transactions(today - Days::new(90), today).await.map_err(|e| e.to_string())?;
        let found = recent.into_iter().find(|t| t.event_id == id || t.id == id);
        match found {
            Some(t) if t.receipts > 0 => Err(format!("{} has a receipt already.", render::transaction(&t))),
            Some(t) => Ok(t),
            None => Err(format!("I found no bank transaction `{id}` in the last 90 days.")),
        }
    }

    async fn invoice(&self, message: &Message, args: InvoiceArgs) -> Result<Answer, String> {
        let lacks = args.vendor.is_none() || args.number.is_none() || args.amount.is_none();
        if lacks && self.reader.is_some() {
            let ask = "Send it again with vendor=, number= and amount=.";
            return self
                .read_and_ask(message, ActionKind::InvoiceRegistration, reading::given_invoice(&args), ask)
                .await;
        }
        let document = self.document(message, "invoice").await?;
        let mut missing = Vec::new();
        if args.vendor.is_none() {
            missing.push("vendor=");
        }
        if args.number.is_none() {
            missing.push("number=");
        }
        if args.amount.is_none() {
            missing.push("amount=");
        }
        if !missing.is_empty() {
            return Ok(Answer::say(format!("To register the invoice I also need {}.", missing.join(", "))));
        }
        let invoice_date = args.date.unwrap_or_else(|| self.config.clock.today());
        let due_date = args.due.unwrap_or(invoice_date + Days::new(self.config.default_due_days));
        if due_date < invoice_date {
            return Ok(Answer::say(format!("The due date {due_date} is before the invoice date {invoice_date}.")));
        }
        let proposal = InvoiceRegistrationProposed {
            requested_by: actor::user(&message.user),
            document,
            vendor: Vendor { name: args.vendor.unwrap_or_default(), organization_number: args.organization_number },
            invoice_number: args.number.unwrap_or_default(),
            amount: Money::nok(args.amount.unwrap_or_default()),
            invoice_date,
            due_date,
            account: args.account.unwrap_or_else(|| self.config.default_account.clone()),
            description: args.description.unwrap_or_default(),
            vat_type: args.vat,
            reading: None,
        };
        let summary = format!(
            "invoice {} from {}, {}, due {}",
            proposal.invoice_number, proposal.vendor.name, proposal.amount, proposal.due_date
        );
        let id = self.propose(proposal, &message.reply_to).await?;
        Ok(Answer {
            text: format!("Proposed: register {summary}. Review-E decides next; I will tell you here. Id: `{id}`"),
            proposal: Some(id),
            choices: vec![],
        })
    }

    async fn propose<P: Payload>(&self, payload: P, reply_to: &ReplyTo) -> Result<String, String> {
        let id = uuid::Uuid::new_v4().to_string();
        let event = payload.into_event(actor::BOOK_E, &id).with_metadata(serde_json::json!({ "reply_to": reply_to }));
        self.store.append(Append::one(event)).await.map_err(|e| {
            tracing::error!(error = %e, "could not append a proposal");
            "I could not record the proposal (the log is unavailable); nothing was proposed. Try again shortly."
                .to_string()
        })?;
        tracing::info!(correlation_id = %id, "proposed");
        Ok(id)
    }
}

fn mentions(t: &Transaction, vendor_lower: &str) -> bool {
    t.description.to_lowercase().contains(vendor_lower)
        || t.creditor.as_deref().is_some_and(|c| c.to_lowercase().contains(vendor_lower))
}

fn extension(content_type: &str) -> &'static str {
    match content_type {
        "application/pdf" => "pdf",
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/heic" => "heic",
        _ => "bin",
    }
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Receipt(_) => "receipt",
        Command::Invoice(_) => "invoice",
        Command::Confirm(_) => "confirm",
        Command::Balance => "balance",
        Command::Pending => "pending",
        Command::Status(_) => "status",
        Command::Help => "help",
        Command::Unknown(_) => "unknown",
    }
}
