//! The desk's HTML, written with maud: every value is escaped by construction,
//! every form control has a label, every page one `h1`, and every change is a
//! form that works without JavaScript (the script only adds keys).

use bookkeeper_core::domain::{ActionKind, Stage};
use bookkeeper_core::money::format_minor;
use bookkeeper_core::{Phase, RecordedEvent};
use bookkeeper_http::wire::review::ListedPolicy;
use bookkeeper_policy_sdk::{Money, Outcome};
use chrono::{DateTime, Utc};
use maud::{html, Markup, DOCTYPE};

use super::view::{ActionView, ShadowResults};
use crate::backtest::Replay;
use crate::policy::RecordedLimits;

/// What every page's frame needs: who is signed in, and the token their forms carry.
pub struct Chrome<'a> {
    /// The signed-in person's name, if any.
    pub person: Option<&'a str>,
    /// The session's CSRF token.
    pub csrf: &'a str,
}

fn layout(title: &str, chrome: &Chrome<'_>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Bookkeeper desk" }
                link rel="stylesheet" href="/desk/assets/desk.css";
                script src="/desk/assets/desk.js" defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                @if let Some(person) = chrome.person {
                    header {
                        nav aria-label="Desk" {
                            a href="/desk" { "Queue" }
                            a href="/desk/policies" { "Policies" }
                            a href="/desk/audit" { "Audit" }
                        }
                        form.signout method="post" action="/desk/sign-out" {
                            input type="hidden" name="csrf" value=(chrome.csrf);
                            span { "Signed in as " strong { (person) } }
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main id="main" tabindex="-1" { (body) }
            }
        }
    }
}

/// A message in a box: a notice or an error.
fn notice(message: Option<&str>, error: bool) -> Markup {
    html! {
        @if let Some(m) = message {
            @if error { p.error role="alert" { (m) } } @else { p.notice role="status" { (m) } }
        }
    }
}

/// An amount as people write it: `18 750.00 NOK`.
pub fn money(m: Option<&Money>) -> String {
    match m {
        Some(m) => format!("{} {}", format_minor(m.minor), m.currency),
        None => "—".into(),
    }
}

fn kind_name(kind: Option<ActionKind>) -> &'static str {
    match kind {
        Some(ActionKind::ReceiptAttachment) => "Receipt",
        Some(ActionKind::InvoiceRegistration) => "Invoice",
        None => "Action",
    }
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Unproposed => "not proposed",
        Phase::AwaitingConfirmation => "read, waiting for its sender to confirm",
        Phase::AwaitingDecision => "awaiting a decision",
        Phase::Escalated => "escalated to a person",
        Phase::Approved => "approved, not yet executed",
        Phase::Executing => "being executed",
        Phase::Executed => "executed",
        Phase::Rejected => "rejected",
        Phase::FailedFinally => "execution failed",
        Phase::Skipped => "execution refused",
    }
}

fn outcome_name(o: Outcome) -> &'static str {
    match o {
        Outcome::Approve => "approve",
        Outcome::Reject => "reject",
        Outcome::Escalate => "escalate",
    }
}

/// How long ago, in words.
pub fn waited(since: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let minutes = (now - since).num_minutes().max(0);
    match minutes {
        0 => "just now".into(),
        1..=59 => format!("{minutes} min"),
        60..=2879 => format!("{} h {} min", minutes / 60, minutes % 60),
        _ => format!("{} days", minutes / 1440),
    }
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// The sign-in page.
pub fn sign_in(pre_csrf: &str, next: &str, error: Option<&str>) -> Markup {
    let chrome = Chrome { person: None, csrf: "" };
    layout(
        "Sign in",
        &chrome,
        html! {
            h1 { "Sign in to the review desk" }
            (notice(error, true))
            form method="post" action="/desk/sign-in" {
                input type="hidden" name="csrf" value=(pre_csrf);
                input type="hidden" name="next" value=(next);
                label for="token" { "Your desk token" }
                input id="token" name="token" type="password" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
            p { "Or open the one-time sign-in link an operator gave you (" code { "bookkeeper desk link" } ")." }
        },
    )
}

/// The page a sign-in link opens: one press signs in (a link fetched by a mail
/// scanner or a preview does not spend it).
pub fn confirm_link(name: &str, token: &str, pre_csrf: &str) -> Markup {
    let chrome = Chrome { person: None, csrf: "" };
    layout(
        "Sign in",
        &chrome,
        html! {
            h1 { "Sign in as " (name) }
            form method="post" action="/desk/sign-in/link" {
                input type="hidden" name="csrf" value=(pre_csrf);
                input type="hidden" name="link" value=(token);
                button type="submit" autofocus { "Sign in as " (name) }
            }
            p { "The link works once, for 15 minutes." }
        },
    )
}

/// An error page.
pub fn error(chrome: &Chrome<'_>, title: &str, message: &str) -> Markup {
    layout(
        title,
        chrome,
        html! {
            h1 { (title) }
            p.error role="alert" { (message) }
            p { a href="/desk" { "Back to the queue" } }
        },
    )
}

/// The queue's filters, as the form sends them.
#[derive(Debug, Default, Clone, serde::Deserialize)]
pub struct QueueFilter {
    /// `receipt`, `invoice` or empty.
    #[serde(default)]
    pub kind: String,
    /// Least amount, in kroner (`1 000,50`).
    #[serde(default)]
    pub min: String,
    /// Greatest amount, in kroner.
    #[serde(default)]
    pub max: String,
    /// A requester's id.
    #[serde(default)]
    pub requester: String,
}

/// The queue: pending proposals, oldest first.
pub fn queue(
    chrome: &Chrome<'_>,
    items: &[ActionView],
    filter: &QueueFilter,
    now: DateTime<Utc>,
    error: Option<&str>,
) -> Markup {
    layout(
        "Queue",
        chrome,
        html! {
            h1 { "Waiting for a decision" }
            (notice(error, true))
            form.filters method="get" action="/desk" role="search" aria-label="Filter the queue" {
                label for="kind" { "Kind" }
                select id="kind" name="kind" {
                    option value="" selected[filter.kind.is_empty()] { "Any" }
                    option value="receipt" selected[filter.kind == "receipt"] { "Receipts" }
                    option value="invoice" selected[filter.kind == "invoice"] { "Invoices" }
                }
                label for="min" { "Amount from (NOK)" }
                input id="min" name="min" inputmode="decimal" value=(filter.min);
                label for="max" { "Amount to (NOK)" }
                input id="max" name="max" inputmode="decimal" value=(filter.max);
                label for="requester" { "Requester" }
                input id="requester" name="requester" value=(filter.requester);
                button type="submit" { "Filter" }
            }
            @if items.is_empty() {
                p { "Nothing is waiting for a decision." }
            } @else {
                p.keys { "Keys: " kbd { "j" } " next, " kbd { "k" } " previous, " kbd { "Enter" } " open." }
                table.queue {
                    caption { (items.len()) " waiting" }
                    thead { tr { th scope="col" { "Proposal" } th scope="col" { "Amount" } th scope="col" { "Vendor" }
                        th scope="col" { "Requester" } th scope="col" { "Waiting" } th scope="col" { "Policies" } } }
                    tbody {
                        @for item in items {
                            tr {
                                td { a data-queue-item href={ "/desk/actions/" (item.id) } {
                                    (kind_name(item.kind)) " " (item.proposal.invoice_number.as_deref().unwrap_or(&item.id)) } }
                                td.amount { (money(item.proposal.amount.as_ref())) }
                                td { (item.proposal.vendor.as_ref().map(|v| v.name.as_str()).unwrap_or("—")) }
                                td { (item.requester()) }
                                td { (waited(item.proposed_at, now)) }
                                td { (verdicts_in_short(item)) }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn verdicts_in_short(item: &ActionView) -> Markup {
    html! {
        @match &item.record {
            None => "not judged yet",
            Some(r) if r.verdicts.is_empty() => "no policy applies",
            Some(r) => {
                @for v in &r.verdicts {
                    span class={ "verdict " (outcome_name(v.outcome)) } title=(v.reason) {
                        (v.policy) ": " (outcome_name(v.outcome))
                        @if v.mode == crate::policy::Mode::Shadow { " (shadow)" }
                    }
                    " "
                }
            }
        }
    }
}

/// How the document is shown on an action's page.
pub enum Shown {
    /// No document.
    None,
    /// An image, served from the document route.
    Image,
    /// This many PDF pages, rendered to PNG.
    Pages(usize),
    /// Only as a download, and why.
    Download(String),
}

/// What an action's page needs beside the action.
pub struct ActionPage<'a> {
    /// The document, as it can be shown.
    pub shown: Shown,
    /// The queue's previous and next proposal.
    pub previous: Option<&'a str>,
    /// See `previous`.
    pub next: Option<&'a str>,
    /// Whether the signed-in person may decide.
    pub may_review: bool,
    /// Whether the signed-in person asked for it.
    pub own: bool,
    /// What just happened.
    pub notice: Option<&'a str>,
    /// What just failed.
    pub error: Option<&'a str>,
}

/// One action: document, facts, verdicts, story and the decision forms.
pub fn action(chrome: &Chrome<'_>, view: &ActionView, page: &ActionPage<'_>) -> Markup {
    let p = &view.proposal;
    let title = format!("{} {}", kind_name(view.kind), p.invoice_number.as_deref().unwrap_or(&view.id));
    let base = format!("/desk/actions/{}", view.id);
    layout(
        &title,
        chrome,
        html! {
            nav.pager aria-label="Queue" {
                @if let Some(prev) = page.previous { a data-key="k" rel="prev" href={ "/desk/actions/" (prev) } { "← Previous" } }
                @if let Some(next) = page.next { a data-key="j" rel="next" href={ "/desk/actions/" (next) } { "Next →" } }
            }
            h1 { (title) }
            p.phase { "Now: " strong data-phase=(view.phase.to_string()) { (phase_name(view.phase)) } }
            (notice(page.notice, false))
            (notice(page.error, true))
            div.columns {
                section.document aria-labelledby="document-heading" {
                    h2 id="document-heading" { "Document" }
                    @match (&page.shown, &view.document) {
                        (Shown::None, _) | (_, None) => p { "No document was attached." },
                        (Shown::Image, Some(d)) => img src={ (base) "/document" } alt={ "The document " (d.filename) };
                        (Shown::Pages(n), Some(d)) => {
                            @for i in 1..=*n {
                                img src={ (base) "/document/pages/" (i) } alt={ "Page " (i) " of " (d.filename) };
                            }
                        }
                        (Shown::Download(why), Some(_)) => p { (why) },
                    }
                    @if let Some(d) = &view.document {
                        p { a href={ (base) "/document?download=1" } { "Download " (d.filename) } }
                    }
                }
                section.facts aria-labelledby="facts-heading" {
                    h2 id="facts-heading" { "The proposal" }
                    dl {
                        dt { "Amount" } dd { (money(p.amount.as_ref())) }
                        dt { "Vendor" } dd { (p.vendor.as_ref().map(|v| v.name.as_str()).unwrap_or("—"))
                            @if let Some(org) = p.vendor.as_ref().and_then(|v| v.organization_number.as_deref()) { " (" (org) ")" } }
                        @if let Some(n) = &p.invoice_number { dt { "Invoice number" } dd { (n) } }
                        @if let Some(a) = &p.account { dt { "Account" } dd { (a) } }
                        @if let Some(d) = &p.description { dt { "Description" } dd { (d) } }
                        @if let Some(d) = &p.due_date { dt { "Due" } dd { (d) } }
                        dt { "Requested by" } dd { (view.requester()) }
                        dt { "Proposed" } dd { (view.proposed_at.format("%Y-%m-%d %H:%M UTC")) }
                        dt { "Correlation id" } dd { code { (view.id) } }
                    }
                    @if let Some(record) = &view.record {
                        h2 { "Facts the policies were given" }
                        dl.facts {
                            @if let serde_json::Value::Object(facts) = serde_json::to_value(&record.facts).unwrap_or_default() {
                                @for (k, v) in facts {
                                    dt { (k.replace('_', " ")) } dd { (fact(&v)) }
                                }
                            }
                        }
                        h2 { "Verdicts" }
                        @if record.verdicts.is_empty() { p { "No policy applies to it." } }
                        @else {
                            table.verdicts {
                                thead { tr { th scope="col" { "Policy" } th scope="col" { "Verdict" } th scope="col" { "Reason" } th scope="col" { "Digest" } } }
                                tbody { @for v in &record.verdicts {
                                    tr {
                                        td { (v.policy) " " (v.version) @if v.mode == crate::policy::Mode::Shadow { " (shadow)" } }
                                        td { span class={ "verdict " (outcome_name(v.outcome)) } { (outcome_name(v.outcome)) } }
                                        td { (v.reason) @if let Some(f) = &v.fault { " — fault: " (f) } }
                                        td { code title=(v.digest) { (short(&v.digest)) } }
                                    }
                                } }
                            }
                        }
                    } @else {
                        p { "No policy has judged it yet." }
                    }
                    (decide(view, page, &base, chrome.csrf))
                }
            }
            section.story aria-labelledby="story-heading" {
                h2 id="story-heading" { "Story" }
                (timeline(&view.events))
                ol.events {
                    @for e in &view.events {
                        li {
                            strong { (e.event_type) } " by " (e.actor) " at " (e.created_at.format("%Y-%m-%d %H:%M:%S UTC"))
                            @if let Some(r) = e.reason() { " — " (r) }
                        }
                    }
                }
                @let remote = view.remote_ids();
                @if !remote.is_empty() {
                    h3 { "At Fiken and Folio" }
                    dl { @for (k, v) in &remote { dt { (k.replace('_', " ")) } dd { code { (v) } } } }
                }
            }
        },
    )
}

/// A fact as a person reads it: nested facts (a vendor's history) as
/// `name value` pairs, nothing as a dash.
fn fact(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "—".into(),
        serde_json::Value::Object(o) => {
            o.iter().map(|(k, v)| format!("{} {}", k.replace('_', " "), fact(v))).collect::<Vec<_>>().join(", ")
        }
        other => other.to_string(),
    }
}

fn decide(view: &ActionView, page: &ActionPage<'_>, base: &str, csrf: &str) -> Markup {
    html! {
        @if !page.may_review {
        } @else if view.approvable() {
            h2 { "Decide" }
            @if page.own { p.notice { "You asked for this yourself: another reviewer must approve it. You may still reject it." } }
            form.decide method="post" action={ (base) "/approve" } {
                input type="hidden" name="csrf" value=(csrf);
                label for="approve-reason" { "Reason for approving (optional)" }
                input id="approve-reason" name="reason" maxlength="2000";
                button type="submit" data-key="a" disabled[page.own] { "Approve" }
            }
            form.decide method="post" action={ (base) "/reject" } {
                input type="hidden" name="csrf" value=(csrf);
                label for="reject-reason" { "Reason for rejecting (required)" }
                textarea id="reject-reason" name="reason" required maxlength="2000" data-key="r" {}
                button type="submit" { "Reject" }
            }
            p.keys { "Keys: " kbd { "a" } " approve, " kbd { "r" } " reject, " kbd { "j" } "/" kbd { "k" } " next/previous." }
        } @else if view.phase == Phase::Approved {
            h2 { "Emergency stop" }
            p { "Approved and not yet executed: stopping it now means it is never carried out." }
            form.decide method="post" action={ (base) "/reject" } {
                input type="hidden" name="csrf" value=(csrf);
                label for="stop-reason" { "Why stop it (required)" }
                textarea id="stop-reason" name="reason" required maxlength="2000" {}
                button type="submit" { "Stop it" }
            }
        }
    }
}

fn stage_class(e: &RecordedEvent) -> &'static str {
    match ActionKind::parse(&e.event_type).map(|(_, s)| s) {
        Some(Stage::Read | Stage::Proposed) => "proposed",
        Some(Stage::Approved | Stage::Executed) => "good",
        Some(Stage::Rejected | Stage::ExecutionFailed | Stage::ExecutionSkipped) => "bad",
        Some(Stage::Escalated | Stage::ExecutionStarted) => "waiting",
        None => "other",
    }
}

/// The story drawn as a line of events, in log order, as SVG.
pub fn timeline(events: &[RecordedEvent]) -> Markup {
    const STEP: usize = 170;
    let width = STEP * events.len().max(1) + 40;
    let description: Vec<String> = events.iter().map(|e| e.event_type.clone()).collect();
    html! {
        svg.timeline xmlns="http://www.w3.org/2000/svg" role="img" width=(width) height="96"
            viewBox={ "0 0 " (width) " 96" } aria-labelledby="timeline-title" {
            title id="timeline-title" { "Timeline: " (description.join(", then ")) }
            line x1="20" y1="30" x2=(width - 20) y2="30" class="axis" {}
            @for (i, e) in events.iter().enumerate() {
                @let x = 30 + i * STEP;
                circle cx=(x) cy="30" r="9" class=(stage_class(e)) {}
                text x=(x) y="60" text-anchor="start" class="label" {
                    (e.event_type.trim_start_matches("ReceiptAttachment").trim_start_matches("InvoiceRegistration"))
                }
                text x=(x) y="78" text-anchor="start" class="time" { (e.created_at.format("%d.%m %H:%M:%S")) }
            }
        }
    }
}

/// The policies page.
pub struct PoliciesPage<'a> {
    /// The active set.
    pub active: &'a [ListedPolicy],
    /// Shadow results of each shadow policy, by name.
    pub shadow: &'a [(String, ShadowResults)],
    /// Every change, newest first.
    pub history: &'a [RecordedEvent],
    /// Whether the person may publish.
    pub may_publish: bool,
    /// What just happened.
    pub notice: Option<&'a str>,
    /// What just failed.
    pub error: Option<&'a str>,
}

/// The active set, its history, and the forms that change it.
pub fn policies(chrome: &Chrome<'_>, page: &PoliciesPage<'_>) -> Markup {
    layout(
        "Policies",
        chrome,
        html! {
            h1 { "Policies" }
            (notice(page.notice, false))
            (notice(page.error, true))
            section aria-labelledby="active-heading" {
                h2 id="active-heading" { "In force" }
                @if page.active.is_empty() { p { "No policy is published: every proposal goes to a person." } }
                @else {
                    table.policies {
                        thead { tr { th scope="col" { "Name" } th scope="col" { "Version" } th scope="col" { "Mode" }
                            th scope="col" { "Digest" } th scope="col" { "Limits" } th scope="col" { "Published by" } th scope="col" { "When" } th scope="col" { "Change" } } }
                        tbody { @for p in page.active {
                            tr {
                                td { (p.name) @if !p.loaded { " — NOT LOADED: " (p.why.as_deref().unwrap_or("")) } }
                                td { (p.version) }
                                td { (p.mode)
                                    @if let Some((_, r)) = page.shadow.iter().find(|(n, _)| *n == p.name) {
                                        br; a href={ "/desk/policies/" (p.name) "/shadow" } {
                                            "in shadow for " (r.seen) " proposals, would have decided " (r.different.len()) " differently" }
                                    }
                                }
                                td { code title=(p.digest) { (short(&p.digest)) } }
                                td { @if let Some(l) = &p.limits {
                                    (l.deadline_ms) " ms, " (mib(l.memory_bytes)) " MiB memory, "
                                    (mib(l.component_bytes)) " MiB component, " (l.core_instances) " core instances"
                                } }
                                td { (p.published_by) }
                                td { (p.published_at.map(|t| t.format("%Y-%m-%d %H:%M").to_string()).unwrap_or_default()) }
                                td { @if page.may_publish {
                                    @if p.mode == "shadow" {
                                        form method="post" action={ "/desk/policies/" (p.name) "/promote" } {
                                            input type="hidden" name="csrf" value=(chrome.csrf);
                                            button type="submit" { "Promote " (p.name) " to enforcing" }
                                        }
                                    }
                                    form method="post" action={ "/desk/policies/" (p.name) "/retire" } {
                                        input type="hidden" name="csrf" value=(chrome.csrf);
                                        label for={ "retire-" (p.name) } { "Reason to retire " (p.name) }
                                        input id={ "retire-" (p.name) } name="reason" required maxlength="500";
                                        button type="submit" { "Retire" }
                                    }
                                } }
                            }
                        } }
                    }
                }
            }
            @if page.may_publish {
                section aria-labelledby="candidate-heading" {
                    h2 id="candidate-heading" { "Try a candidate" }
                    p { "Upload a policy component: you see which past decisions it would change before anything is in force." }
                    form method="post" action="/desk/policies/candidates" enctype="multipart/form-data" {
                        input type="hidden" name="csrf" value=(chrome.csrf);
                        label for="component" { "Policy component (.wasm)" }
                        input id="component" name="component" type="file" accept=".wasm,application/wasm" required;
                        button type="submit" { "Upload and backtest" }
                    }
                }
            }
            section aria-labelledby="history-heading" {
                h2 id="history-heading" { "History" }
                @if page.history.is_empty() { p { "No change yet." } }
                ol.history { @for e in page.history {
                    li {
                        (e.created_at.format("%Y-%m-%d %H:%M:%S UTC")) " — " (e.actor) " "
                        @if e.event_type == "PolicyRetired" {
                            "retired " strong { (e.payload.get("name").and_then(|n| n.as_str()).unwrap_or("?")) }
                            @if let Some(r) = e.payload.get("reason").and_then(|r| r.as_str()) { " (" (r) ")" }
                        } @else {
                            "published " strong { (e.payload.get("name").and_then(|n| n.as_str()).unwrap_or("?")) }
                            " " (e.payload.get("version").and_then(|n| n.as_str()).unwrap_or(""))
                            " in " (e.payload.get("mode").and_then(|n| n.as_str()).unwrap_or("enforcing")) " mode"
                            @if let Some(d) = e.payload.get("digest").and_then(|n| n.as_str()) { " " code title=(d) { (short(d)) } }
                            @if let Some(s) = e.payload.get("source").and_then(|n| n.as_str()) { " by " (s) }
                        }
                    }
                } }
            }
        },
    )
}

/// What the candidate page shows.
pub struct CandidatePage<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its version.
    pub version: &'a str,
    /// Its digest.
    pub digest: &'a str,
    /// What it would change.
    pub replay: &'a Replay,
    /// What a policy gets when its author asks for nothing.
    pub defaults: RecordedLimits,
    /// The most any policy may ask for here.
    pub maxima: RecordedLimits,
    /// Why it cannot start under the defaults, if it cannot.
    pub under_defaults: Option<&'a str>,
}

/// A candidate's backtest and the forms that publish it.
pub fn candidate(chrome: &Chrome<'_>, page: &CandidatePage<'_>) -> Markup {
    let r = page.replay;
    layout(
        "Candidate",
        chrome,
        html! {
            h1 { "Candidate " (page.name) " " (page.version) }
            p { "Digest " code { (page.digest) } }
            h2 { "Backtest" }
            p.summary { "Replayed " (r.replayed) " past decisions: it would change " strong { (r.changes.len()) } "." }
            @if !r.changes.is_empty() {
                table.changes {
                    thead { tr { th scope="col" { "Proposal" } th scope="col" { "Proposed" } th scope="col" { "Decided" } th scope="col" { "With the candidate" } th scope="col" { "Why" } } }
                    tbody { @for c in &r.changes {
                        tr {
                            td { a href={ "/desk/actions/" (c.correlation_id) } { (c.correlation_id) } }
                            td { (c.proposed_at.format("%Y-%m-%d")) }
                            td { (outcome_name(c.recorded)) }
                            td { (outcome_name(c.candidate)) }
                            td { (c.reason) }
                        }
                    } }
                }
            }
            @if !r.skipped.is_empty() {
                p { (r.skipped.len()) " decisions could not be replayed (a policy they were made with is not stored)." }
            }
            h2 { "Publish" }
            form method="post" action={ "/desk/policies/candidates/" (page.digest) "/publish" } {
                input type="hidden" name="csrf" value=(chrome.csrf);
                fieldset {
                    legend { "Mode" }
                    input id="mode-shadow" type="radio" name="mode" value="shadow" checked;
                    label for="mode-shadow" { "Shadow: judged beside the set, decides nothing" }
                    input id="mode-enforcing" type="radio" name="mode" value="enforcing";
                    label for="mode-enforcing" { "Enforcing: in force at once" }
                }
                fieldset {
                    legend { "Limits" }
                    @match page.under_defaults {
                        None => p { "It runs under the defaults (" (page.defaults.describe()) "); leave these empty unless it needs more." },
                        Some(why) => p.error { "Under the defaults (" (page.defaults.describe()) ") it cannot run: " (why)
                            ". Ask for what it needs (its project's limits.json says), at most " (page.maxima.describe()) "." },
                    }
                    @for (name, label, default, max) in [
                        ("deadline_ms", "Time limit, ms", page.defaults.deadline_ms, page.maxima.deadline_ms),
                        ("memory_mib", "Memory, MiB", mib(page.defaults.memory_bytes), mib(page.maxima.memory_bytes)),
                        ("component_mib", "Component size, MiB", mib(page.defaults.component_bytes), mib(page.maxima.component_bytes)),
                        ("core_instances", "Core instances", u64::from(page.defaults.core_instances), u64::from(page.maxima.core_instances)),
                    ] {
                        label for={ "limit-" (name) } { (label) }
                        input id={ "limit-" (name) } name=(name) type="number" min="1" max=(max) placeholder=(default) inputmode="numeric";
                    }
                }
                button type="submit" { "Publish " (page.name) }
            }
        },
    )
}

/// What a shadow policy would have decided differently.
pub fn shadow(chrome: &Chrome<'_>, name: &str, results: &ShadowResults) -> Markup {
    layout(
        "Shadow results",
        chrome,
        html! {
            h1 { "Shadow results of " (name) }
            p.summary { "In shadow for " (results.seen) " proposals, would have decided " (results.different.len()) " differently." }
            @if !results.different.is_empty() {
                table { thead { tr { th scope="col" { "Proposal" } th scope="col" { "Decided" } th scope="col" { "Would have" } } }
                    tbody { @for (id, was, would) in &results.different {
                        tr { td { a href={ "/desk/actions/" (id) } { (id) } } td { (outcome_name(*was)) } td { (outcome_name(*would)) } }
                    } } }
            }
            p { a href="/desk/policies" { "Back to the policies" } }
        },
    )
}

/// The audit search and what it found.
pub fn audit(chrome: &Chrome<'_>, query: &str, found: Option<&[ActionView]>) -> Markup {
    layout(
        "Audit",
        chrome,
        html! {
            h1 { "Audit" }
            form method="get" action="/desk/audit" role="search" aria-label="Find an action" {
                label for="q" { "Action id, vendor or invoice number" }
                input id="q" name="q" value=(query) required;
                button type="submit" { "Find" }
            }
            @if let Some(found) = found {
                @if found.is_empty() { p { "Nothing matches “" (query) "”." } }
                @else {
                    table { caption { (found.len()) " found" }
                        thead { tr { th scope="col" { "Action" } th scope="col" { "Vendor" } th scope="col" { "Amount" } th scope="col" { "Now" } th scope="col" { "Proposed" } } }
                        tbody { @for v in found {
                            tr {
                                td { a href={ "/desk/actions/" (v.id) } { (kind_name(v.kind)) " " (v.proposal.invoice_number.as_deref().unwrap_or(&v.id)) } }
                                td { (v.proposal.vendor.as_ref().map(|x| x.name.as_str()).unwrap_or("—")) }
                                td.amount { (money(v.proposal.amount.as_ref())) }
                                td { (phase_name(v.phase)) }
                                td { (v.proposed_at.format("%Y-%m-%d %H:%M")) }
                            }
                        } }
                    }
                }
            }
        },
    )
}

/// The desk's stylesheet.
pub const CSS: &str = include_str!("desk.css");
/// The desk's only script: keyboard shortcuts.
pub const JS: &str = include_str!("desk.js");

/// Bytes as whole MiB, rounded up.
fn mib(bytes: u64) -> u64 {
    bytes.div_ceil(1 << 20)
}
