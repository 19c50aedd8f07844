//! The review desk in a real browser: headless Chromium over WebDriver, against
//! Review-E and the Accounting API as separate processes on PostgreSQL, each as
//! its own database role. One browser session walks the whole desk as two
//! reviewers would; screenshots of each page are saved under the target
//! directory (`desk-screenshots/`) for a person to look at.

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bookkeeper_core::people::{Directory, Door, Person, Right};
use bookkeeper_core::testing::TestDb;
use bookkeeper_core::{NewEvent, Phase, Store};
use common::browser::{self, Browser};
use common::{bookkeeper, serve, until_phase};
use serde_json::{json, Value};

const KEY: &str = "the desk key of this browser test, 32+ characters";
const ACCOUNTING_TOKEN: &str = "accounting-token-of-the-desk-test";

/// A one-page PDF saying `text`, with a correct cross-reference table.
fn pdf(text: &str) -> Vec<u8> {
    let content = format!("BT /F1 28 Tf 40 300 Td ({text}) Tj ET");
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".to_string(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 420 595] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>"
            .to_string(),
        format!("<< /Length {} >>\nstream\n{content}\nendstream", content.len()),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>".to_string(),
    ];
    let mut out = b"%PDF-1.4\n".to_vec();
    let mut offsets = Vec::new();
    for (i, body) in objects.iter().enumerate() {
        offsets.push(out.len());
        out.extend(format!("{} 0 obj\n{body}\nendobj\n", i + 1).bytes());
    }
    let xref = out.len();
    out.extend(format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1).bytes());
    for o in offsets {
        out.extend(format!("{o:010} 00000 n \n").bytes());
    }
    out.extend(format!("trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n", objects.len() + 1).bytes());
    out
}

fn screenshots() -> PathBuf {
    // tests run from the package root; the target directory is the build's.
    let target = std::env::var("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from("target"));
    target.join("desk-screenshots")
}

fn invoice(sha: &str, requester: &str) -> Value {
    json!({
        "requested_by": requester,
        "document": {"sha256": sha, "filename": "F-2001.pdf", "content_type": "application/pdf"},
        "vendor": {"name": "Kontor AS", "organization_number": "912345678"},
        "invoice_number": "F-2001",
        "amount": {"minor": 1_875_000, "currency": "NOK"},
        "invoice_date": "2026-11-20", "due_date": "2026-12-20",
        "account": "6540", "description": "Kontorstoler"
    })
}

/// Asserts the page has no basic accessibility problem, and saves it.
async fn looked_at(b: &Browser, name: &str) {
    b.screenshot(name).await;
    let problems = b.accessibility_problems().await;
    assert!(problems.is_empty(), "{name}: {problems:?}");
}

async fn sign_in_with_token(b: &Browser, base: &str, token: &str) {
    b.goto(&format!("{base}/desk")).await;
    b.until_url("/desk/sign-in?next=/desk").await;
    let field = b.find("#token").await;
    b.type_into(&field, token).await;
    b.click(&b.find("form[action='/desk/sign-in'] button").await).await;
    b.until_says("Signed in as").await;
}

async fn sign_out(b: &Browser) {
    b.click(&b.find("form.signout button").await).await;
    b.until_says("Sign in to the review desk").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_desk_in_a_real_browser() {
    if !browser::available() {
        eprintln!("!!! skipping the browser test: install chromium and chromium-driver (CI sets BOOKKEEPER_REQUIRE_BROWSER=1)");
        return;
    }
    let Some(db) = TestDb::postgres().await else { return };
    let dir = std::env::temp_dir().join(format!("bookkeeper-desk-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("policies/unusual-vendor.wasm"), example("unusual-vendor")).unwrap();
    let candidate = dir.join("duplicate-invoice.wasm");
    std::fs::write(&candidate, example("duplicate-invoice")).unwrap();
    let (kari, ola) = (format!("kari-{}", uuid::Uuid::new_v4()), format!("ola-{}", uuid::Uuid::new_v4()));
    let people = Directory::new(vec![
        Person::new("kari")
            .may_also(Right::Propose)
            .may_also(Right::Review)
            .may_also(Right::Publish)
            .with_token(Door::Desk, &kari),
        Person::new("ola").may_also(Right::Review).with_token(Door::Desk, &ola),
    ])
    .unwrap();
    let people_file = dir.join("people.json");
    people.save(&people_file).unwrap();

    let mut accounting = serve(
        "accounting-api",
        &db.role_url("accounting_api"),
        &[
            ("ACCOUNTING_API_ADDR", "127.0.0.1:0".into()),
            ("ACCOUNTING_API_SANDBOX", "1".into()),
            ("ACCOUNTING_API_TOKEN", ACCOUNTING_TOKEN.into()),
        ],
    );
    let mut review = serve(
        "review-e",
        &db.role_url("review_e"),
        &[
            ("REVIEW_E_ADDR", "127.0.0.1:0".into()),
            ("REVIEW_E_POLICY_DIR", dir.join("policies").display().to_string()),
            ("REVIEW_E_POLICY_DEADLINE_MS", "500".into()),
            ("BOOKKEEPER_PEOPLE", people_file.display().to_string()),
            ("REVIEW_E_DESK_SESSION_KEY", KEY.into()),
        ],
    );
    let base = review.base.clone();
    let http = reqwest::Client::new();

    // Kari asks for an invoice to be registered; the policy in force sends it to a person.
    let stored: Value = http
        .post(format!("{}/documents", accounting.base))
        .bearer_auth(ACCOUNTING_TOKEN)
        .body(pdf("Faktura F-2001 Kontor AS"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sha = stored["sha256"].as_str().unwrap().to_string();
    let book_e = Store::connect(&db.role_url("book_e")).await.unwrap();
    let started = Instant::now();
    // The folder's policy is published once Review-E has read it.
    while db.store.read_correlation("policy:unusual-vendor").await.unwrap().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "the policy was never published: {}", review.log_text());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = NewEvent::new("InvoiceRegistrationProposed", "book-e", "PROPOSED", "desk-invoice-1")
        .with_payload(invoice(&sha, "user:kari"));
    book_e.append_events(vec![first]).await.unwrap();
    until_phase(&db.store, "desk-invoice-1", Phase::Escalated, Duration::from_secs(30)).await;

    let b = Browser::start(&screenshots()).await;

    // Not signed in: the sign-in page.
    b.goto(&format!("{base}/desk")).await;
    assert!(b.url().await.contains("/desk/sign-in"), "{}", b.url().await);
    looked_at(&b, "01-sign-in").await;

    // Kari signs in with her desk token and sees the escalated invoice in the queue.
    sign_in_with_token(&b, &base, &kari).await;
    let text = b.page_text().await;
    for expected in
        ["Waiting for a decision", "Invoice F-2001", "18750.00 NOK", "Kontor AS", "kari", "unusual-vendor: escalate"]
    {
        assert!(text.contains(expected), "the queue lacks `{expected}`: {text}");
    }
    looked_at(&b, "02-queue").await;

    // The keyboard moves through the queue and opens the proposal.
    b.press("j").await;
    let focused = b.script("return document.activeElement.hasAttribute('data-queue-item')").await;
    assert_eq!(focused, json!(true), "j focuses the first proposal");
    b.press("\u{E007}").await; // Enter
    b.until_url("/desk/actions/desk-invoice-1").await;
    b.until_says("Verdicts").await;

    // The proposal: the PDF shown as a page image, the facts, each verdict with its digest.
    let text = b.page_text().await;
    for expected in
        ["Document", "first payment to Kontor AS", "Facts the policies were given", "912345678", "Correlation id"]
    {
        assert!(text.contains(expected), "the proposal page lacks `{expected}`: {text}");
    }
    let page_shown = b
        .script(
            "const i = document.querySelector('.document img'); \
             return i ? { complete: i.complete, width: i.naturalWidth, src: i.getAttribute('src') } : null",
        )
        .await;
    assert_eq!(page_shown["src"], json!("/desk/actions/desk-invoice-1/document/pages/1"), "{page_shown}");
    assert!(page_shown["width"].as_u64().unwrap_or(0) > 100, "the PDF's first page is drawn: {page_shown}");
    looked_at(&b, "03-proposal").await;

    // Kari asked for it: her Approve is disabled, and forcing the form is refused
    // by Review-E, which writes nothing.
    let approve = b.find("form[action$='/approve'] button").await;
    assert_eq!(b.property(&approve, "disabled").await, json!(true));
    b.script("const f = document.querySelector(\"form[action$='/approve']\"); f.querySelector('button').disabled = false; f.submit(); return true").await;
    b.until_says("you proposed this yourself").await;
    assert_eq!(phase(&db, "desk-invoice-1").await, Phase::Escalated);

    // Kari's session cookie, taken before she signs out, is worth nothing after.
    let cookie = b.cookies().await.into_iter().find(|c| c["name"] == "desk_session").expect("a session cookie");
    assert_eq!(cookie["httpOnly"], json!(true));
    assert_eq!(cookie["sameSite"], json!("Strict"));
    sign_out(&b).await;
    let replay = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = replay
        .get(format!("{base}/desk"))
        .header("cookie", format!("desk_session={}", cookie["value"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "a signed-out session is over on the server too");

    // Ola signs in with a one-time link from `bookkeeper desk link`.
    let out = bookkeeper()
        .args(["desk", "link", "ola", "--by", "kari", "--url", &format!("{base}/desk")])
        .env("DATABASE_URL", db.role_url("review_e"))
        .env("REVIEW_E_DESK_SESSION_KEY", KEY)
        .env("BOOKKEEPER_PEOPLE", &people_file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let link = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(!String::from_utf8_lossy(&out.stderr).contains(KEY));
    b.goto(&link).await;
    b.until_says("Sign in as ola").await;
    looked_at(&b, "04-sign-in-link").await;
    b.click(&b.find("form[action='/desk/sign-in/link'] button").await).await;
    b.until_says("Signed in as ola").await;
    // The same link again: spent.
    b.goto(&link).await;
    b.click(&b.find("form[action='/desk/sign-in/link'] button").await).await;
    b.until_says("used already").await;

    // A form without the CSRF token (as another page would post it) is refused.
    b.goto(&format!("{base}/desk/actions/desk-invoice-1")).await;
    b.until_says("Decide").await;
    b.script(
        "const f = document.createElement('form'); f.method = 'post'; \
         f.action = '/desk/actions/desk-invoice-1/approve'; document.body.appendChild(f); f.submit(); return true",
    )
    .await;
    b.until_says("CSRF token is missing or wrong").await;
    assert_eq!(phase(&db, "desk-invoice-1").await, Phase::Escalated, "a form without its token wrote nothing");

    // Ola approves with the keyboard (a focuses Approve, Enter presses it) and
    // watches it become executed, with Fiken's reference.
    b.goto(&format!("{base}/desk/actions/desk-invoice-1")).await;
    b.until_says("Decide").await;
    b.press("a").await;
    let focused = b.script("return document.activeElement.textContent").await;
    assert_eq!(focused, json!("Approve"));
    b.press("\u{E007}").await;
    b.until_says("Approved.").await;
    b.until_text("Now: executed", Duration::from_secs(60)).await;
    assert!(b.page_text().await.contains("fiken purchase id"), "{}", b.page_text().await);
    let timeline = b.script("return document.querySelectorAll('svg.timeline circle').length").await;
    assert!(timeline.as_u64().unwrap_or(0) >= 4, "proposed, escalated, approved, executed: {timeline}");
    looked_at(&b, "05-executed").await;
    sign_out(&b).await;

    // The same invoice again, after the first was registered: the policy in force
    // approves it (the vendor is known now), and it is carried out a second time.
    let again = NewEvent::new("InvoiceRegistrationProposed", "book-e", "PROPOSED", "desk-invoice-2")
        .with_payload(invoice(&sha, "user:kari"));
    book_e.append_events(vec![again]).await.unwrap();
    until_phase(&db.store, "desk-invoice-2", Phase::Executed, Duration::from_secs(60)).await;

    // Kari, a policy author, tries the duplicate-invoice policy as a candidate: its
    // backtest says it would have refused that second registration.
    sign_in_with_token(&b, &base, &kari).await;
    b.goto(&format!("{base}/desk/policies")).await;
    b.until_says("unusual-vendor").await;
    looked_at(&b, "06-policies").await;
    let file = b.find("#component").await;
    b.type_into(&file, candidate.to_str().unwrap()).await;
    b.click(&b.find("form[action='/desk/policies/candidates'] button").await).await;
    let text = b.until_says("Candidate duplicate-invoice").await;
    assert!(text.contains("Replayed 2 past decisions: it would change 1."), "{text}");
    let changed = b.find("table.changes a").await;
    assert_eq!(b.text(&changed).await, "desk-invoice-2");
    assert!(text.contains("reject"), "{text}");
    looked_at(&b, "07-candidate").await;

    // It runs under the defaults, and the page says so; Kari asks for a shorter
    // time limit all the same, and the publication records it.
    assert!(text.contains("It runs under the defaults (500 ms, 16 MiB memory"), "{text}");
    b.type_into(&b.find("#limit-deadline_ms").await, "400").await;
    // Published in shadow, it decides nothing yet; promoted, it decides.
    b.click(&b.find("form[action$='/publish'] button").await).await;
    let text = b.until_says("Published.").await;
    assert!(text.contains("in shadow for 0 proposals, would have decided 0 differently"), "{text}");
    assert!(text.contains("400 ms, 16 MiB memory, 8 MiB component, 8 core instances"), "{text}");
    b.click(&b.find("form[action='/desk/policies/duplicate-invoice/promote'] button").await).await;
    let text = b.until_says("Promoted").await;
    assert!(text.contains("400 ms, 16 MiB memory"), "promoted asking for what it asked in shadow: {text}");
    assert!(text.contains("user:kari published duplicate-invoice 1.0.0 in enforcing mode"), "{text}");
    assert!(text.contains("user:kari published duplicate-invoice 1.0.0 in shadow mode"), "{text}");
    // Retired, with a reason, and the history says so.
    let reason = b.find("#retire-duplicate-invoice").await;
    b.type_into(&reason, "trying it again next month").await;
    b.click(&b.find("form[action='/desk/policies/duplicate-invoice/retire'] button").await).await;
    let text = b.until_says("Retired.").await;
    assert!(text.contains("user:kari retired duplicate-invoice (trying it again next month)"), "{text}");

    // Audit: find both by the invoice number and read the first one's story.
    b.goto(&format!("{base}/desk/audit")).await;
    let q = b.find("#q").await;
    b.type_into(&q, "F-2001").await;
    b.click(&b.find("form[action='/desk/audit'] button").await).await;
    b.until_says("2 found").await;
    looked_at(&b, "08-audit").await;
    b.quit().await;

    // Both sessions' starts and ends are in the log, as the people who signed in.
    let starts = db
        .store
        .read_waiting(
            bookkeeper_core::Cursor::START,
            &bookkeeper_core::TypeFilter::of(
                ["DeskSignInLinkIssued", "DeskSessionStarted", "DeskSessionEnded"].map(String::from),
            ),
            100,
            Duration::ZERO,
        )
        .await
        .unwrap();
    let actors: Vec<(&str, &str)> = starts.events.iter().map(|e| (e.event_type.as_str(), e.actor.as_str())).collect();
    assert_eq!(
        actors,
        [
            ("DeskSessionStarted", "user:kari"),
            ("DeskSessionEnded", "user:kari"),
            ("DeskSignInLinkIssued", "user:kari"),
            ("DeskSessionStarted", "user:ola"),
            ("DeskSessionEnded", "user:ola"),
            ("DeskSessionStarted", "user:kari"),
        ]
    );
    review.stop();
    accounting.stop();
    db.cleanup().await;
}

fn example(name: &str) -> &'static [u8] {
    bookkeeper_example_policies::example(name).unwrap_or_else(|| panic!("no example policy {name}")).component
}

async fn phase(db: &TestDb, id: &str) -> Phase {
    let story = db.store.read_correlation(id).await.unwrap();
    bookkeeper_core::ActionState::fold(&story).phase()
}
