//! Carrying out approved actions: the durable subscription to every
//! `...Approved` type.
//!
//! One event, one attempt:
//!
//! 1. Read the action's story and fold it ([`ActionState`]). Only the approval in
//!    force is carried out, and only the very proposal it judged. Rejected since
//!    (the emergency stop) or executed already: record `...ExecutionSkipped` with
//!    the reason and move on. Rival proposals in old history are never carried
//!    out on a policy's approval alone: a person must approve one.
//! 2. Check what needs no remote call (the payload, the document) — a problem
//!    here is final, and nothing was sent.
//! 3. Claim the attempt: append `...ExecutionStarted` at the story's version, in
//!    its own commit. A rejection racing it fails on the same version, so the
//!    action is either stopped or carried out, never both (Review-E refuses to
//!    reject once a claim is in the log).
//! 4. Call Fiken or Folio. When an earlier attempt was claimed, it may have
//!    reached the remote system with its answer lost: look at the remote state
//!    first (the purchase by supplier and invoice number; an attachment, at
//!    Fiken or Folio, by its bytes read back: neither keeps a key of ours) and
//!    only send what is missing.
//! 5. Record `...Executed` (with the remote ids) together with the checkpoint.
//!    A retryable failure records `...ExecutionFailed` (not final) and fails the
//!    handler, so the subscription offers the event again after its backoff; after
//!    the last attempt, or on a permanent error, the failure is final.
//!
//! Executions are serial: the subscription has one active consumer across all
//! replicas, and Fiken takes one request at a time per token anyway. A queue
//! goes through the same steps together (`Executor::execute_batch`): one
//! commit for its claims, the calls one after another, one for its outcomes.

use std::collections::BTreeMap;

use bookkeeper_core::domain::{
    ActionKind, AttachmentTarget, DocumentRef, Execution, ExecutionFailure, ExecutionSkip, ExecutionStart,
    InvoiceRegistrationProposed, Payload, ReceiptAttachmentProposed, Stage,
};
use bookkeeper_core::event::{actor, status};
use bookkeeper_core::lifecycle;
use bookkeeper_core::retry::Backoff;
use bookkeeper_core::{
    ActionState, Append, ExpectedVersion, Handler, HandlerError, NewEvent, Phase, RecordedEvent, Store, StoreError,
};
use chrono::{DateTime, Utc};
use tracing::Instrument;
use uuid::Uuid;

use crate::documents::{self, DocumentType};
use crate::fiken::{FikenClient, FikenError, NewPurchase, PurchaseLine};
use crate::folio::{FolioClient, FolioError};

/// How far before its proposal a Folio event is looked for, in days.
const FOLIO_LOOKBACK_DAYS: i64 = 400;

/// Name of the Accounting API's subscription.
pub const SUBSCRIPTION: &str = "accounting-api.approvals";

/// The connections to the outside world an executor uses.
#[derive(Debug, Clone)]
pub struct Connectors {
    /// The accounting system.
    pub fiken: FikenClient,
    /// The bank.
    pub folio: FolioClient,
}

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct ExecutionOptions {
    /// Attempts in all before a retryable failure becomes final.
    pub max_attempts: u32,
    /// The subscription's delay between attempts (reported in failure events).
    pub backoff: Backoff,
    /// How long a claim may stand before its call when a queue is claimed in
    /// chunks, about: while it stands, the emergency stop is refused ("being
    /// executed now"). Fast remotes get large chunks, slow ones (real Fiken,
    /// paced) one at a time.
    pub claim_window: std::time::Duration,
}

impl Default for ExecutionOptions {
    fn default() -> Self {
        ExecutionOptions {
            max_attempts: 5,
            backoff: Backoff::new(std::time::Duration::from_secs(1), std::time::Duration::from_secs(60)),
            claim_window: std::time::Duration::from_millis(100),
        }
    }
}

/// The handler of [`SUBSCRIPTION`].
pub struct Executor {
    store: Store,
    connectors: Connectors,
    options: ExecutionOptions,
    /// How long one attempt's remote calls take, smoothed (microseconds; 0:
    /// not measured yet). Sizes the claims of a batch.
    call_us: std::sync::atomic::AtomicU64,
}

/// A batch claims no new chunk after running this long, and hands back what it
/// did: a batch stays far inside the subscription's lease.
const BATCH_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// What an action is, read from its proposal.
#[derive(Debug, Clone)]
enum Action {
    AttachToFolioEvent { event_id: Uuid, document: DocumentRef },
    AttachToFikenPurchase { purchase_id: i64, document: DocumentRef },
    RegisterInvoice(Box<InvoiceRegistrationProposed>),
}

impl Action {
    fn document(&self) -> &DocumentRef {
        match self {
            Action::AttachToFolioEvent { document, .. } | Action::AttachToFikenPurchase { document, .. } => document,
            Action::RegisterInvoice(invoice) => &invoice.document,
        }
    }
}

/// A failed attempt, classified.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    message: String,
    retryable: bool,
}

impl Failure {
    fn permanent(message: impl Into<String>) -> Failure {
        Failure { message: message.into(), retryable: false }
    }
}

impl From<FikenError> for Failure {
    fn from(e: FikenError) -> Self {
        let message = match &e {
            FikenError::Ambiguous(_) => format!("{e} (the next attempt looks at Fiken before sending again)"),
            _ => e.to_string(),
        };
        Failure { message, retryable: e.is_retryable() }
    }
}

impl From<FolioError> for Failure {
    fn from(e: FolioError) -> Self {
        let message = match &e {
            FolioError::Ambiguous(_) => format!("{e} (the next attempt looks at Folio before sending again)"),
            _ => e.to_string(),
        };
        Failure { message, retryable: e.is_retryable() }
    }
}

/// What a successful attempt did.
struct Done {
    remote_ids: BTreeMap<String, String>,
    found_existing: bool,
}

impl Executor {
    /// An executor carrying out actions through `connectors`.
    pub fn new(store: Store, connectors: Connectors, options: ExecutionOptions) -> Executor {
        Executor { store, connectors, options, call_us: Default::default() }
    }

    /// The key every attempt of one action shares.
    pub fn idempotency_key(correlation_id: &str) -> String {
        format!("bk-{}", Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("bookkeeper.execute:{correlation_id}").as_bytes()))
    }

    async fn perform(
        &self,
        action: &Action,
        bytes: Vec<u8>,
        kind: DocumentType,
        key: &str,
        since: chrono::NaiveDate,
        resume: bool,
    ) -> Result<Done, Failure> {
        let name = documents::upload_name(&action.document().filename, kind);
        match action {
            Action::AttachToFolioEvent { event_id, .. } => {
                if resume {
                    // Folio keeps no key of ours: the receipt landed if the event
                    // has an attachment with exactly these bytes.
                    // Folio's document has no read of one event: it is found in
                    // the list of events since the proposal's lookback.
                    let today = Utc::now().date_naive() + chrono::Days::new(1);
                    let event = self.connectors.folio.find_event(*event_id, since, today).await?;
                    let attachments = event.map(|e| e.attachments).unwrap_or_default();
                    for candidate in attachments.iter().filter(|a| a.size == bytes.len() as u64) {
                        let (_, stored) = self.connectors.folio.attachment(candidate.id).await?;
                        if stored == bytes {
                            return Ok(Done { remote_ids: folio_ids(*event_id, candidate.id), found_existing: true });
                        }
                    }
                }
                let id = self.connectors.folio.attach_receipt(*event_id, &name, kind.mime(), bytes).await?;
                Ok(Done { remote_ids: folio_ids(*event_id, id), found_existing: false })
            }
            Action::AttachToFikenPurchase { purchase_id, .. } => {
                let mut remote_ids = BTreeMap::new();
                remote_ids.insert("fiken_purchase_id".to_string(), purchase_id.to_string());
                // Fiken keeps no key of ours either: the receipt landed if the
                // purchase has an attachment with exactly these bytes.
                if resume && self.connectors.fiken.has_attachment(*purchase_id, &bytes).await? {
                    return Ok(Done { remote_ids, found_existing: true });
                }
                self.connectors.fiken.attach_to_purchase(*purchase_id, &name, bytes, true).await?;
                Ok(Done { remote_ids, found_existing: false })
            }
            Action::RegisterInvoice(invoice) => self.register_invoice(invoice, bytes, &name, key, resume).await,
        }
    }

    async fn register_invoice(
        &self,
        invoice: &InvoiceRegistrationProposed,
        bytes: Vec<u8>,
        name: &str,
        key: &str,
        resume: bool,
    ) -> Result<Done, Failure> {
        let fiken = &self.connectors.fiken;
        let org = invoice.vendor.organization_number.as_deref();
        // Looking the supplier up first also makes a lost `create` harmless: the
        // next attempt finds the one that was made.
        let supplier_id = match fiken.find_supplier(&invoice.vendor.name, org).await? {
            Some(id) => id,
            None => fiken.create_supplier(&invoice.vendor.name, org).await?,
        };
        // Two actions may register the same invoice (a person approved it twice on
        // purpose): the purchase this action made carries its key in its line.
        let existing = if resume {
            let candidates = fiken.find_purchases(supplier_id, &invoice.invoice_number).await?;
            own_purchase(&candidates, key).cloned()
        } else {
            None
        };
        let found_existing = existing.is_some();
        let (purchase_id, documented) = match existing {
            Some(p) => {
                let documented = fiken.has_attachment(p.id, &bytes).await?;
                (p.id, documented)
            }
            None => {
                let (net, vat) = vat_split(invoice.amount.minor, invoice.vat_type())?;
                let purchase = NewPurchase {
                    identifier: invoice.invoice_number.clone(),
                    date: invoice.invoice_date,
                    due_date: Some(invoice.due_date),
                    supplier_id,
                    currency: invoice.amount.currency.clone(),
                    lines: vec![PurchaseLine {
                        description: line_description(invoice, key),
                        account: invoice.account.clone(),
                        net_minor: net,
                        vat_minor: vat,
                        vat_type: invoice.vat_type().to_string(),
                    }],
                };
                (fiken.create_purchase(&purchase).await?, false)
            }
        };
        if !documented {
            fiken.attach_to_purchase(purchase_id, name, bytes, false).await?;
        }
        let mut remote_ids = BTreeMap::new();
        remote_ids.insert("fiken_purchase_id".to_string(), purchase_id.to_string());
        remote_ids.insert("fiken_supplier_id".to_string(), supplier_id.to_string());
        Ok(Done { remote_ids, found_existing })
    }

    /// Reads the action from the proposal and loads its document: everything that
    /// can be checked without calling Fiken or Folio. An error here is final.
    async fn prepare(
        &self,
        proposal: &RecordedEvent,
    ) -> Result<Result<(Action, Vec<u8>, DocumentType), String>, StoreError> {
        let action = match read_action(proposal) {
            Ok(a) => a,
            Err(why) => return Ok(Err(why)),
        };
        let document = action.document();
        let Some(blob) = self.store.get_blob(&document.sha256).await? else {
            return Ok(Err(format!(
                "document {} ({}) is not stored: upload it with POST /documents first",
                document.sha256, document.filename
            )));
        };
        let Some(kind) = documents::sniff(&blob.bytes) else {
            return Ok(Err(format!("document {} is not a PDF, JPEG, PNG or HEIC file", document.sha256)));
        };
        if kind == DocumentType::Heic {
            let to = match action {
                Action::AttachToFolioEvent { .. } => "Folio takes PDF, JPEG and PNG receipts",
                _ => "Fiken takes PDF, JPEG, PNG and GIF attachments",
            };
            return Ok(Err(format!("{to}; this document is HEIC: export it as JPEG or PDF and send it again")));
        }
        Ok(Ok((action, blob.bytes, kind)))
    }
}

fn folio_ids(event_id: Uuid, attachment_id: Uuid) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("folio_event_id".to_string(), event_id.to_string()),
        ("folio_attachment_id".to_string(), attachment_id.to_string()),
    ])
}

/// The purchase among `candidates` (same supplier, same invoice number) that the
/// action with `key` registered: the one whose line carries its key; else one
/// registered by a release before the key was written (it names no action).
fn own_purchase<'a>(candidates: &'a [crate::fiken::Purchase], key: &str) -> Option<&'a crate::fiken::Purchase> {
    let marker = marker(key);
    candidates
        .iter()
        .find(|p| p.line_descriptions.iter().any(|d| d.contains(&marker)))
        .or_else(|| candidates.iter().find(|p| !p.line_descriptions.iter().any(|d| d.contains(MARKER_OPEN))))
}

/// How a purchase's line names the action that registered it.
const MARKER_OPEN: &str = "[bk-";

fn marker(key: &str) -> String {
    format!("[{key}]")
}

/// The purchase line's description (at most 200 characters, Fiken's limit),
/// ending with the action's key: the one documented field of ours Fiken keeps,
/// so a resumed attempt tells its own purchase from another action's with the
/// same invoice number.
fn line_description(invoice: &InvoiceRegistrationProposed, key: &str) -> String {
    let text = if invoice.description.trim().is_empty() {
        format!("{} invoice {}", invoice.vendor.name, invoice.invoice_number)
    } else {
        invoice.description.clone()
    };
    let marker = format!(" {}", marker(key));
    let room = 200usize.saturating_sub(marker.chars().count());
    text.chars().take(room).collect::<String>() + &marker
}

/// Splits a gross amount into net and VAT at Fiken's rate for `vat_type`.
/// The rates are Norway's (2025): kept here alone, so a change is one line.
fn vat_split(gross_minor: i64, vat_type: &str) -> Result<(i64, i64), Failure> {
    if gross_minor <= 0 {
        return Err(Failure::permanent(format!("the invoice amount must be positive, not {gross_minor} minor units")));
    }
    let percent: i64 = match vat_type {
        "HIGH" => 25,
        "MEDIUM" => 15,
        "LOW" => 12,
        "NONE" | "EXEMPT" | "OUTSIDE" => 0,
        other => {
            return Err(Failure::permanent(format!(
                "unknown VAT type `{other}` (known: HIGH, MEDIUM, LOW, NONE, EXEMPT, OUTSIDE)"
            )))
        }
    };
    // net = gross * 100 / (100 + p), rounded to the nearest øre; VAT takes the rest
    // so the lines add up to the invoice exactly.
    let net = (gross_minor * 100 * 2 + (100 + percent)) / ((100 + percent) * 2);
    Ok((net, gross_minor - net))
}

fn read_action(proposal: &RecordedEvent) -> Result<Action, String> {
    let bad = |e: serde_json::Error| format!("the proposal's payload is not a valid {}: {e}", proposal.event_type);
    match proposal.event_type.as_str() {
        ReceiptAttachmentProposed::TYPE => {
            let p: ReceiptAttachmentProposed = serde_json::from_value(proposal.payload.clone()).map_err(bad)?;
            match p.target {
                AttachmentTarget::FolioEvent { event_id } => {
                    let id = event_id
                        .parse()
                        .map_err(|_| format!("`{event_id}` is not a Folio event id (a UUID is expected)"))?;
                    Ok(Action::AttachToFolioEvent { event_id: id, document: p.receipt })
                }
                AttachmentTarget::FikenPurchase { purchase_id } => {
                    Ok(Action::AttachToFikenPurchase { purchase_id, document: p.receipt })
                }
            }
        }
        InvoiceRegistrationProposed::TYPE => {
            let p: InvoiceRegistrationProposed = serde_json::from_value(proposal.payload.clone()).map_err(bad)?;
            // What Fiken's document refuses is refused here, before anything is sent.
            let currency = &p.amount.currency;
            if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(format!("currency `{currency}` is not an ISO 4217 code (three capital letters, like NOK)"));
            }
            let vendor = p.vendor.name.trim();
            if vendor.is_empty() || vendor.chars().count() > 200 {
                return Err("the vendor's name must be 1 to 200 characters (Fiken's limit for a contact)".into());
            }
            Ok(Action::RegisterInvoice(Box::new(p)))
        }
        other => Err(format!("the Accounting API does not know how to execute `{other}`")),
    }
}

fn event(kind: ActionKind, stage: Stage, status: &str, approval: &RecordedEvent, purpose: &str) -> NewEvent {
    NewEvent::new(kind.event_type(stage), actor::SYSTEM, status, &approval.correlation_id)
        .derived_from(approval.event_id, purpose)
}

fn failure_event(kind: ActionKind, approval: &RecordedEvent, failure: ExecutionFailure) -> NewEvent {
    let purpose = format!("accounting-api.failed.{}", failure.attempt);
    event(kind, Stage::ExecutionFailed, status::FAILED, approval, &purpose)
        .with_payload(serde_json::to_value(&failure).unwrap_or_default())
}

/// What one approval calls for, decided from its story alone.
enum Plan {
    /// Settled without calling anyone: a skip, a final failure, or nothing.
    Settled(Append),
    /// To be carried out: claim, call Fiken or Folio, record the outcome.
    Carry(Box<Attempt>),
    /// A retry whose backoff (the `retry_in_ms` its failure recorded) has not
    /// passed: offered again later.
    NotYet(String),
}

/// One attempt at an approved action, ready to claim.
struct Attempt {
    kind: ActionKind,
    approval: RecordedEvent,
    /// The story's version before the claim.
    version: i64,
    /// Attempts before this one, under any approval.
    prior: u32,
    /// Attempts before this one under this approval.
    under_this_approval: u32,
    action: Action,
    bytes: Vec<u8>,
    document: DocumentType,
    proposed_at: DateTime<Utc>,
}

impl Attempt {
    fn number(&self) -> u32 {
        self.prior + 1
    }

    fn key(&self) -> String {
        Executor::idempotency_key(&self.approval.correlation_id)
    }

    /// The claim: `...ExecutionStarted` at the story's version, committed on its
    /// own before anything is sent; from then on a rejection is refused.
    fn claim(&self) -> Append {
        let attempt = self.number();
        let start = event(
            self.kind,
            Stage::ExecutionStarted,
            status::EXECUTING,
            &self.approval,
            &format!("accounting-api.start.{attempt}"),
        )
        .with_payload(
            serde_json::to_value(ExecutionStart { attempt, idempotency_key: self.key(), resumed: self.prior > 0 })
                .unwrap_or_default(),
        );
        Append::one(start).expecting(&self.approval.correlation_id, ExpectedVersion::Lifecycle(self.version))
    }
}

/// What an attempt's outcome asks of the log.
enum Recorded {
    /// Record this with the checkpoint: executed, or failed finally.
    Done(Append),
    /// Record this failure now and offer the approval again after the backoff.
    Retry { failure: Append, message: String },
}

impl Executor {
    /// Decides from the story what `approval` calls for and, when it is to be
    /// carried out, checks everything that needs no remote call.
    async fn plan(&self, approval: &RecordedEvent, story: &[RecordedEvent]) -> Result<Plan, StoreError> {
        let cid = approval.correlation_id.as_str();
        let Some((kind, _)) = ActionKind::parse(&approval.event_type) else {
            tracing::warn!("not an action this version knows; left alone");
            return Ok(Plan::Settled(Append::nothing()));
        };
        let version = lifecycle::version(story);
        let expected = ExpectedVersion::Lifecycle(version);
        let skip = |reason: String| {
            tracing::info!(%reason, "not executed");
            let skipped = event(kind, Stage::ExecutionSkipped, status::SKIPPED, approval, "accounting-api.skipped")
                .with_payload(serde_json::to_value(ExecutionSkip { reason }).unwrap_or_default());
            Ok(Plan::Settled(Append::one(skipped).expecting(cid, expected)))
        };
        let state = ActionState::fold(story);
        // Its outcome is in already, as the fold counts it (recorded by a batch
        // beside a failure that stopped its checkpoint short): nothing to add.
        let outcome = state.executed.or(state.failed_finally);
        if outcome.is_some_and(|e| e.causation_id == Some(approval.event_id)) {
            tracing::info!("carried out under this approval already; nothing to add");
            return Ok(Plan::Settled(Append::nothing()));
        }
        let in_force = state.approval().filter(|a| a.event.event_id == approval.event_id).cloned();
        let Some(in_force) = in_force else {
            return match state.phase() {
                Phase::Executed => skip("already executed".into()),
                Phase::Rejected => {
                    let rejected = state.decision.as_ref().map(|d| d.event);
                    let by = rejected.map(|e| e.actor.as_str()).unwrap_or("someone");
                    let reason = rejected.and_then(|e| e.reason()).unwrap_or("no reason given");
                    skip(format!("rejected by {by} before it was executed: {reason}"))
                }
                phase => {
                    tracing::info!(%phase, "not the approval in force; nothing to do");
                    Ok(Plan::Settled(Append::nothing()))
                }
            };
        };
        match state.phase() {
            Phase::Approved | Phase::Executing => {}
            Phase::Executed => return skip("already executed".into()),
            phase => {
                tracing::info!(%phase, "nothing to do");
                return Ok(Plan::Settled(Append::nothing()));
            }
        }
        // Every attempt so far, under any approval, counted by the fold or not
        // (an old story it reads differently): any of them may have landed, so
        // the next one looks at the remote state first.
        let is_claim =
            |e: &&RecordedEvent| matches!(ActionKind::parse(&e.event_type), Some((_, Stage::ExecutionStarted)));
        let claims = story.iter().filter(is_claim).count() as u32;
        let prior = state.attempts.max(claims);
        let approved_at = story.iter().position(|e| e.event_id == approval.event_id).unwrap_or(0);
        let under_this_approval = story[approved_at..].iter().filter(is_claim).count() as u32;
        // The last attempt failed and said when the next one may be made: not
        // before, whoever offers the approval again (a batch, a restart).
        let last_failure = story[approved_at..]
            .iter()
            .rev()
            .find(|e| matches!(ActionKind::parse(&e.event_type), Some((_, Stage::ExecutionFailed))));
        if let Some(failed) = last_failure {
            // Never longer than this executor's own longest backoff (a forged or
            // old value cannot hold an action back for good), and a due time
            // further off than the wait itself is the database's clock ahead of
            // ours: then the subscription's backoff alone applies.
            let wait = failed.payload.get("retry_in_ms").and_then(|v| v.as_u64()).unwrap_or(0);
            let cap = u64::try_from(self.options.backoff.cap.as_millis()).unwrap_or(u64::MAX);
            let wait = chrono::Duration::milliseconds(i64::try_from(wait.min(cap)).unwrap_or(i64::MAX));
            let due = failed.created_at + wait;
            let left = due - Utc::now();
            let claimed_since = story[approved_at..].iter().filter(is_claim).any(|e| e.position > failed.position);
            if !claimed_since && left > chrono::Duration::zero() && left <= wait {
                return Ok(Plan::NotYet(format!("the next attempt is due at {due} (the last one failed)")));
            }
        }
        let final_failure = |error: String| {
            let failure =
                ExecutionFailure { error, retryable: false, attempt: prior + 1, is_final: true, retry_in_ms: None };
            Plan::Settled(Append::one(failure_event(kind, approval, failure)).expecting(cid, expected))
        };
        let proposal = in_force.proposal;
        if state.has_rival_proposals() && !in_force.by_person {
            let error = format!(
                "{} proposals share this id and no person chose one: a person must approve the one to carry out",
                state.proposals.len()
            );
            tracing::warn!(%error, "not executed without a person");
            return Ok(final_failure(error));
        }
        let (action, bytes, document) = match self.prepare(proposal).await? {
            Ok(ready) => ready,
            Err(message) => {
                tracing::warn!(%message, "cannot be executed");
                return Ok(final_failure(message));
            }
        };
        Ok(Plan::Carry(Box::new(Attempt {
            kind,
            approval: approval.clone(),
            version,
            prior,
            under_this_approval,
            action,
            bytes,
            document,
            proposed_at: proposal.created_at,
        })))
    }

    /// Calls Fiken or Folio for a claimed attempt and says what to record.
    async fn carry_out(&self, attempt: &Attempt) -> Recorded {
        let (kind, approval) = (attempt.kind, &attempt.approval);
        let cid = approval.correlation_id.as_str();
        let number = attempt.number();
        let resume = attempt.prior > 0;
        let remote_started: DateTime<Utc> = Utc::now();
        // A Folio event is older than the proposal that names it; a year before
        // bounds the search for it when an earlier attempt's answer was lost.
        let since = (attempt.proposed_at - chrono::Duration::days(FOLIO_LOOKBACK_DAYS)).date_naive();
        let outcome =
            self.perform(&attempt.action, attempt.bytes.clone(), attempt.document, &attempt.key(), since, resume).await;
        let remote_finished: DateTime<Utc> = Utc::now();
        self.measured_call((remote_finished - remote_started).to_std().unwrap_or_default());
        let last_allowed = attempt.under_this_approval + 1 >= self.options.max_attempts;
        let outcome_label = match &outcome {
            Ok(_) => "executed",
            Err(f) if !f.retryable || last_allowed => "failed_finally",
            Err(_) => "failed_will_retry",
        };
        bookkeeper_core::metrics::count(
            "bookkeeper_executions_total",
            "Execution attempts, by action and outcome.",
            &[("action", kind.name()), ("outcome", outcome_label)],
        );
        bookkeeper_core::metrics::observe(
            "bookkeeper_remote_call_seconds",
            "Time spent calling Fiken or Folio for one execution attempt.",
            &[("action", kind.name())],
            (remote_finished - remote_started).to_std().unwrap_or_default(),
        );
        let timing = serde_json::json!({
            "remote_started_at": remote_started,
            "remote_finished_at": remote_finished,
            "approved_at": approval.created_at,
        });
        // The claim moved the story on by one.
        let version = ExpectedVersion::Lifecycle(attempt.version + 1);
        match outcome {
            Ok(done) => {
                tracing::info!(attempt = number, found_existing = done.found_existing, remote_ids = ?done.remote_ids,
                    remote_us = (remote_finished - remote_started).num_microseconds().unwrap_or_default(), "executed");
                let payload =
                    Execution { remote_ids: done.remote_ids, attempt: number, found_existing: done.found_existing };
                let executed = event(kind, Stage::Executed, status::EXECUTED, approval, "accounting-api.executed")
                    .with_payload(serde_json::to_value(payload).unwrap_or_default())
                    .with_metadata(timing);
                Recorded::Done(Append::one(executed).expecting(cid, version))
            }
            Err(failure) => {
                let is_final = !failure.retryable || last_allowed;
                let retry_in_ms = (!is_final).then(|| self.options.backoff.ceiling(attempt.prior).as_millis() as u64);
                tracing::warn!(attempt = number, is_final, retryable = failure.retryable, error = %failure.message,
                    "attempt failed");
                let record = ExecutionFailure {
                    error: failure.message.clone(),
                    retryable: failure.retryable,
                    attempt: number,
                    is_final,
                    retry_in_ms,
                };
                let failed =
                    Append::one(failure_event(kind, approval, record).with_metadata(timing)).expecting(cid, version);
                if is_final {
                    return Recorded::Done(failed);
                }
                Recorded::Retry {
                    failure: failed,
                    message: format!("attempt {number} failed, will retry: {}", failure.message),
                }
            }
        }
    }

    /// A queue of approvals: one read for every story, claims in chunks (one
    /// commit each, sized so a claim stands about
    /// [`ExecutionOptions::claim_window`] before its call), the remote calls one after another (Fiken takes one request at a
    /// time per token), and every outcome with the checkpoint. It stops before a
    /// second approval of an action in the batch (that one needs the first's
    /// outcome in its story), before a retry (one at a time, after its
    /// backoff), and after [`BATCH_BUDGET`], handing back what it did. At a
    /// failure to retry it claims no more, records that failure and the
    /// outcomes of the rest of its chunk at once, and hands back only the
    /// outcomes before it, so the checkpoint stops there.
    async fn execute_batch(&self, approvals: &[RecordedEvent]) -> Result<Vec<Append>, HandlerError> {
        let mut seen = std::collections::HashSet::new();
        let distinct = approvals.iter().take_while(|a| seen.insert(a.correlation_id.as_str())).count();
        let approvals = &approvals[..distinct];
        let ids: Vec<String> = approvals.iter().map(|a| a.correlation_id.clone()).collect();
        let mut stories: std::collections::HashMap<String, Vec<RecordedEvent>> = Default::default();
        for chunk in ids.chunks(500) {
            for e in self.store.read_correlations(chunk).await? {
                stories.entry(e.correlation_id.clone()).or_default().push(e);
            }
        }
        let mut plans = Vec::with_capacity(approvals.len());
        for approval in approvals {
            let story = stories.get(&approval.correlation_id).map(Vec::as_slice).unwrap_or_default();
            let plan = self.plan(approval, story).instrument(span_of(approval)).await?;
            match &plan {
                Plan::Carry(a) if a.under_this_approval > 0 => break,
                Plan::NotYet(_) => break,
                _ => plans.push(plan),
            }
        }
        if plans.is_empty() {
            return Err(HandlerError::transient("a retry goes one at a time"));
        }
        let started = std::time::Instant::now();
        let mut plans = plans.into_iter().peekable();
        let mut outputs = Vec::with_capacity(approvals.len());
        // After a failure to retry, the rest of its chunk is still carried out
        // (it is claimed); those outcomes are recorded with the failure, outside
        // the checkpoint, and each is answered "done" when it comes again.
        let mut retry: Option<(Vec<Append>, String)> = None;
        while plans.peek().is_some() && retry.is_none() && started.elapsed() < BATCH_BUDGET {
            let size = self.claim_chunk();
            let mut chunk = Vec::new();
            let mut carries = 0;
            while let Some(plan) = plans.peek() {
                if matches!(plan, Plan::Carry(_)) {
                    if carries == size {
                        break;
                    }
                    carries += 1;
                }
                chunk.extend(plans.next());
            }
            let claims: Vec<Append> =
                chunk.iter().filter_map(|p| if let Plan::Carry(a) = p { Some(a.claim()) } else { None }).collect();
            if let Some(claims) = Append::merged(claims).filter(|c| !c.events.is_empty()) {
                // Refused as a whole when any story moved on (a rejection raced
                // it): nothing of this chunk is claimed; what is done so far
                // commits, and the rest is read again.
                if let Err(e) = self.store.append_past_squatters(claims).await {
                    if outputs.is_empty() {
                        return Err(e.into());
                    }
                    tracing::info!(error = %e, "claiming the next chunk failed; committing what is done");
                    return Ok(outputs);
                }
            }
            for plan in chunk {
                let attempt = match plan {
                    Plan::Settled(append) if retry.is_none() => {
                        outputs.push(append);
                        continue;
                    }
                    // After the failure: read again, and settled again then.
                    Plan::Settled(_) | Plan::NotYet(_) => continue,
                    Plan::Carry(attempt) => attempt,
                };
                let recorded = self.carry_out(&attempt).instrument(span_of(&attempt.approval)).await;
                match (recorded, &mut retry) {
                    (Recorded::Done(append), None) => outputs.push(append),
                    (Recorded::Done(append), Some((late, _))) => late.push(append),
                    (Recorded::Retry { failure, message }, None) => retry = Some((vec![failure], message)),
                    (Recorded::Retry { failure, .. }, Some((late, _))) => late.push(failure),
                }
            }
        }
        if let Some((late, message)) = retry {
            let late = Append::merged(late).ok_or_else(|| HandlerError::transient("outcomes overlap"))?;
            self.store.append_past_squatters(late).await?;
            if outputs.is_empty() {
                return Err(HandlerError::transient(message));
            }
        }
        Ok(outputs)
    }

    /// How many attempts to claim at once: as many as fit in the claim window
    /// at the measured call time; one until a call was measured.
    fn claim_chunk(&self) -> usize {
        match self.call_us.load(std::sync::atomic::Ordering::Relaxed) {
            0 => 1,
            us => (self.options.claim_window.as_micros() as u64 / us).clamp(1, 1_000) as usize,
        }
    }

    /// Folds one attempt's call time into the smoothed figure.
    fn measured_call(&self, took: std::time::Duration) {
        let us = (took.as_micros() as u64).max(1);
        let before = self.call_us.load(std::sync::atomic::Ordering::Relaxed);
        let next = if before == 0 { us } else { (before * 7 + us) / 8 };
        self.call_us.store(next.max(1), std::sync::atomic::Ordering::Relaxed);
    }
}

/// The span of one approval's work inside a batch.
fn span_of(approval: &RecordedEvent) -> tracing::Span {
    tracing::info_span!("handle_event", subscription = SUBSCRIPTION, correlation_id = %approval.correlation_id,
        event_type = %approval.event_type, position = approval.position)
}

impl Handler for Executor {
    /// An approval that can never be handled (its story cannot be read, its outcome
    /// cannot be stored) fails finally, with the reason; a person may approve a
    /// retry, which is a new decision in the log.
    fn on_parked(&self, approval: &RecordedEvent, reason: &str) -> Vec<NewEvent> {
        let Some((kind, _)) = ActionKind::parse(&approval.event_type) else { return Vec::new() };
        let failure = ExecutionFailure {
            error: format!("the Accounting API could not handle this approval: {reason}"),
            retryable: false,
            attempt: 0,
            is_final: true,
            retry_in_ms: None,
        };
        vec![failure_event(kind, approval, failure)]
    }

    async fn handle(&self, approval: &RecordedEvent) -> Result<Append, HandlerError> {
        let began = std::time::Instant::now();
        let story = self.store.read_correlation(&approval.correlation_id).await?;
        let story_us = began.elapsed().as_micros() as u64;
        let attempt = match self.plan(approval, &story).await? {
            Plan::Settled(append) => return Ok(append),
            // The subscription offers it again after its own backoff.
            Plan::NotYet(why) => return Err(HandlerError::transient(why)),
            Plan::Carry(attempt) => attempt,
        };
        let prepare_us = began.elapsed().as_micros() as u64 - story_us;
        self.store.append_past_squatters(attempt.claim()).await.map_err(|e| match e {
            StoreError::VersionConflict { .. } => {
                HandlerError::transient("the proposal changed while claiming it; reading it again")
            }
            other => HandlerError::from(other),
        })?;
        let claim_us = began.elapsed().as_micros() as u64 - story_us - prepare_us;
        tracing::debug!(story_us, prepare_us, claim_us, "claimed");
        match self.carry_out(&attempt).await {
            Recorded::Done(append) => Ok(append),
            Recorded::Retry { failure, message } => {
                // Recorded now, so people see it; the subscription offers the
                // approval again after its backoff, and that attempt resumes.
                self.store.append_past_squatters(failure).await?;
                Err(HandlerError::transient(message))
            }
        }
    }

    async fn handle_batch(&self, approvals: &[RecordedEvent]) -> Option<Result<Vec<Append>, HandlerError>> {
        Some(self.execute_batch(approvals).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vat_splits_add_up_to_the_invoice() {
        assert_eq!(vat_split(10_000_00, "HIGH").unwrap(), (8_000_00, 2_000_00));
        assert_eq!(vat_split(115_00, "MEDIUM").unwrap(), (100_00, 15_00));
        assert_eq!(vat_split(1, "HIGH").unwrap(), (1, 0));
        assert_eq!(vat_split(999, "NONE").unwrap(), (999, 0));
        for gross in [1, 3, 99, 12_345, 1_000_001] {
            for t in ["HIGH", "MEDIUM", "LOW"] {
                let (net, vat) = vat_split(gross, t).unwrap();
                assert_eq!(net + vat, gross);
                assert!(vat >= 0 && net > 0);
            }
        }
        assert!(!vat_split(100, "BOGUS").unwrap_err().retryable);
        assert!(!vat_split(0, "HIGH").unwrap_err().retryable);
    }

    #[test]
    fn a_resumed_registration_finds_its_own_purchase_not_anothers() {
        let purchase = |id: i64, description: &str| crate::fiken::Purchase {
            id,
            identifier: Some("F-51".into()),
            supplier_id: Some(7),
            total_minor: 0,
            total_known: true,
            date: None,
            due_date: None,
            supplier_name: None,
            paid: false,
            attachments: vec![],
            line_descriptions: vec![description.to_string()],
        };
        let (mine, theirs) = (Executor::idempotency_key("a-1"), Executor::idempotency_key("a-2"));
        let other = purchase(1, &format!("Strøm AS invoice F-51 [{theirs}]"));
        assert_eq!(own_purchase(std::slice::from_ref(&other), &mine), None, "another action's purchase");
        let own = purchase(2, &format!("Strøm AS invoice F-51 [{mine}]"));
        assert_eq!(own_purchase(&[other.clone(), own.clone()], &mine).map(|p| p.id), Some(2));
        let before = purchase(3, "Strøm AS invoice F-51");
        assert_eq!(own_purchase(&[other, before], &mine).map(|p| p.id), Some(3), "from a release before the key");
    }

    #[test]
    fn line_descriptions_keep_the_key_within_fikens_limit() {
        let key = Executor::idempotency_key("c-9");
        let invoice: InvoiceRegistrationProposed = serde_json::from_value(serde_json::json!({
            "requested_by": "user:kari",
            "document": {"sha256": "a".repeat(64), "filename": "f.pdf", "content_type": "application/pdf"},
            "vendor": {"name": "Kontor AS"}, "invoice_number": "F-1", "amount": {"minor": 100, "currency": "NOK"},
            "invoice_date": "2026-11-02", "due_date": "2026-11-16", "account": "6540",
            "description": "x".repeat(500)
        }))
        .unwrap();
        let d = line_description(&invoice, &key);
        assert!(d.chars().count() <= 200 && d.ends_with(&format!("[{key}]")), "{d}");
    }

    #[test]
    fn the_idempotency_key_is_stable_per_action() {
        assert_eq!(Executor::idempotency_key("c-1"), Executor::idempotency_key("c-1"));
        assert_ne!(Executor::idempotency_key("c-1"), Executor::idempotency_key("c-2"));
    }
}
