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
//! replicas, and Fiken takes one request at a time per token anyway.

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
}

impl Default for ExecutionOptions {
    fn default() -> Self {
        ExecutionOptions {
            max_attempts: 5,
            backoff: Backoff::new(std::time::Duration::from_secs(1), std::time::Duration::from_secs(60)),
        }
    }
}

/// The handler of [`SUBSCRIPTION`].
pub struct Executor {
    store: Store,
    connectors: Connectors,
    options: ExecutionOptions,
}

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
        Executor { store, connectors, options }
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
        let cid = approval.correlation_id.as_str();
        let Some((kind, _)) = ActionKind::parse(&approval.event_type) else {
            tracing::warn!("not an action this version knows; left alone");
            return Ok(Append::nothing());
        };
        let began = std::time::Instant::now();
        let story = self.store.read_correlation(cid).await?;
        let story_us = began.elapsed().as_micros() as u64;
        let version = ExpectedVersion::Lifecycle(lifecycle::version(&story));
        let skip = |reason: String| {
            tracing::info!(%reason, "not executed");
            let skipped = event(kind, Stage::ExecutionSkipped, status::SKIPPED, approval, "accounting-api.skipped")
                .with_payload(serde_json::to_value(ExecutionSkip { reason }).unwrap_or_default());
            Ok(Append::one(skipped).expect(cid, version))
        };
        let state = ActionState::fold(&story);
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
                    Ok(Append::nothing())
                }
            };
        };
        match state.phase() {
            Phase::Approved | Phase::Executing => {}
            Phase::Executed => return skip("already executed".into()),
            phase => {
                tracing::info!(%phase, "nothing to do");
                return Ok(Append::nothing());
            }
        }
        // Every attempt so far, under any approval, counted by the fold or not
        // (an old story it reads differently): any of them may have landed, so
        // the next one looks at the remote state first.
        let claims = story
            .iter()
            .filter(|e| matches!(ActionKind::parse(&e.event_type), Some((_, Stage::ExecutionStarted))))
            .count() as u32;
        let prior = state.attempts.max(claims);
        let approved_at = story.iter().position(|e| e.event_id == approval.event_id).unwrap_or(0);
        let under_this_approval = story[approved_at..]
            .iter()
            .filter(|e| matches!(ActionKind::parse(&e.event_type), Some((_, Stage::ExecutionStarted))))
            .count() as u32;
        let attempt = prior + 1;
        let proposal = in_force.proposal;
        if state.has_rival_proposals() && !in_force.by_person {
            let failure = ExecutionFailure {
                error: format!(
                    "{} proposals share this id and no person chose one: a person must approve the one to carry out",
                    state.proposals.len()
                ),
                retryable: false,
                attempt,
                is_final: true,
                retry_in_ms: None,
            };
            tracing::warn!(error = %failure.error, "not executed without a person");
            return Ok(Append::one(failure_event(kind, approval, failure)).expect(cid, version));
        }
        let (action, bytes, doc_kind) = match self.prepare(proposal).await? {
            Ok(ready) => ready,
            Err(message) => {
                tracing::warn!(%message, "cannot be executed");
                let failure =
                    ExecutionFailure { error: message, retryable: false, attempt, is_final: true, retry_in_ms: None };
                return Ok(Append::one(failure_event(kind, approval, failure)).expect(cid, version));
            }
        };

        let prepare_us = began.elapsed().as_micros() as u64 - story_us;
        let key = Executor::idempotency_key(cid);
        let start = event(
            kind,
            Stage::ExecutionStarted,
            status::EXECUTING,
            approval,
            &format!("accounting-api.start.{attempt}"),
        )
        .with_payload(
            serde_json::to_value(ExecutionStart { attempt, idempotency_key: key.clone(), resumed: prior > 0 })
                .unwrap_or_default(),
        );
        // The claim commits on its own: from here on a rejection is refused.
        self.store.append_past_squatters(Append::one(start).expect(cid, version)).await.map_err(|e| match e {
            StoreError::VersionConflict { .. } => {
                HandlerError::transient("the proposal changed while claiming it; reading it again")
            }
            other => HandlerError::from(other),
        })?;
        let version = ExpectedVersion::Lifecycle(lifecycle::version(&story) + 1);
        let claim_us = began.elapsed().as_micros() as u64 - story_us - prepare_us;

        let remote_started: DateTime<Utc> = Utc::now();
        // A Folio event is older than the proposal that names it; a year before
        // bounds the search for it when an earlier attempt's answer was lost.
        let since = (proposal.created_at - chrono::Duration::days(FOLIO_LOOKBACK_DAYS)).date_naive();
        let outcome = self.perform(&action, bytes, doc_kind, &key, since, prior > 0).await;
        let remote_finished: DateTime<Utc> = Utc::now();
        let outcome_label = match &outcome {
            Ok(_) => "executed",
            Err(f) if !f.retryable || under_this_approval + 1 >= self.options.max_attempts => "failed_finally",
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
        match outcome {
            Ok(done) => {
                tracing::info!(attempt, found_existing = done.found_existing, remote_ids = ?done.remote_ids,
                    story_us, prepare_us, claim_us,
                    remote_us = (remote_finished - remote_started).num_microseconds().unwrap_or_default(), "executed");
                let payload = Execution { remote_ids: done.remote_ids, attempt, found_existing: done.found_existing };
                let executed = event(kind, Stage::Executed, status::EXECUTED, approval, "accounting-api.executed")
                    .with_payload(serde_json::to_value(payload).unwrap_or_default())
                    .with_metadata(timing);
                Ok(Append::one(executed).expect(cid, version))
            }
            Err(failure) => {
                let is_final = !failure.retryable || under_this_approval + 1 >= self.options.max_attempts;
                let retry_in_ms = (!is_final).then(|| self.options.backoff.ceiling(prior).as_millis() as u64);
                tracing::warn!(attempt, is_final, retryable = failure.retryable, error = %failure.message, "attempt failed");
                let record = ExecutionFailure {
                    error: failure.message.clone(),
                    retryable: failure.retryable,
                    attempt,
                    is_final,
                    retry_in_ms,
                };
                let failed = failure_event(kind, approval, record).with_metadata(timing);
                if is_final {
                    return Ok(Append::one(failed).expect(cid, version));
                }
                // Recorded now, so people see it; the subscription offers the
                // approval again after its backoff, and that attempt resumes.
                self.store.append_past_squatters(Append::one(failed).expect(cid, version)).await?;
                Err(HandlerError::transient(format!("attempt {attempt} failed, will retry: {}", failure.message)))
            }
        }
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
