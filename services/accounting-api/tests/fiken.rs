//! The Fiken client against the fake Fiken, over real HTTP.

// Amounts are written kroner_øre: 8_000_00 is 8 000,00 kr.
#![allow(clippy::inconsistent_digit_grouping)]

use std::time::{Duration, Instant};

use accounting_api::fiken::fake::{FakeFiken, Fault, Faults, SANDBOX_COMPANY};
use accounting_api::fiken::{FikenClient, FikenError, NewPurchase, PurchaseLine, Token};
use accounting_api::retry::RetryPolicy;
use bookkeeper_core::retry::Backoff;
use chrono::NaiveDate;

async fn fake() -> FakeFiken {
    FakeFiken::start("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        backoff: Backoff::new(Duration::from_millis(5), Duration::from_millis(20)),
        max_retry_after: Duration::from_secs(2),
        timeout: Duration::from_secs(2),
    }
}

/// Each test its own token: the pacing is shared per token across the process.
fn client(fake: &FakeFiken, token: &str, spacing: Duration) -> FikenClient {
    FikenClient::new(fake.base_url(), SANDBOX_COMPANY, Token::new(token), retries(), spacing).unwrap()
}

fn invoice(identifier: &str, supplier_id: i64) -> NewPurchase {
    NewPurchase {
        identifier: identifier.into(),
        date: NaiveDate::from_ymd_opt(2026, 11, 20).unwrap(),
        due_date: NaiveDate::from_ymd_opt(2026, 12, 4),
        supplier_id,
        currency: "NOK".into(),
        lines: vec![PurchaseLine {
            description: "Laptop".into(),
            account: "6540".into(),
            net_minor: 8_000_00,
            vat_minor: 2_000_00,
            vat_type: "HIGH".into(),
        }],
    }
}

#[tokio::test]
async fn a_supplier_invoice_is_registered_found_again_and_documented() {
    let fake = fake().await;
    let fiken = client(&fake, "token-register", Duration::from_millis(1));
    let banks = fiken.bank_accounts().await.unwrap();
    assert_eq!(
        (banks[0].account_code.as_deref(), banks[0].number.as_deref(), banks[0].reconciled_balance_minor),
        (Some("1920:10001"), Some("36060000000"), Some(250_000_00))
    );

    assert_eq!(fiken.find_supplier("Kontorleverandøren AS", Some("912345678")).await.unwrap(), None);
    let supplier = fiken.create_supplier("Kontorleverandøren AS", Some("912345678")).await.unwrap();
    assert_eq!(fiken.find_supplier("whatever", Some("912345678")).await.unwrap(), Some(supplier));

    let id = fiken.create_purchase(&invoice("F-1001", supplier)).await.unwrap();
    let purchase = fiken.purchase(id).await.unwrap();
    assert_eq!(
        (purchase.identifier.as_deref(), purchase.supplier_id, purchase.total_minor),
        (Some("F-1001"), Some(supplier), 10_000_00)
    );
    assert_eq!(fiken.find_purchase(supplier, "F-1001").await.unwrap().map(|p| p.id), Some(id));
    assert_eq!(fiken.find_purchase(supplier, "F-9999").await.unwrap(), None);

    fiken.attach_to_purchase(id, "F-1001.pdf", b"%PDF-1.7 invoice".to_vec(), false).await.unwrap();
    let stored = fake.attachments_of(id);
    assert_eq!(
        (stored[0].filename.as_str(), stored[0].bytes.as_slice(), stored[0].to_payment),
        ("F-1001.pdf", &b"%PDF-1.7 invoice"[..], false)
    );
    // Found again by its bytes, read back from the documented `downloadUrl`.
    assert_eq!(fiken.purchase(id).await.unwrap().attachments.len(), 1);
    assert!(fiken.has_attachment(id, b"%PDF-1.7 invoice").await.unwrap());
    assert!(!fiken.has_attachment(id, b"%PDF-1.7 another").await.unwrap());

    let err = fiken.attach_to_purchase(id, "scan.heic", vec![1], true).await.unwrap_err();
    assert!(matches!(&err, FikenError::Validation { message } if message.contains(".pdf")), "{err}");
}

#[tokio::test]
async fn finding_a_purchase_reads_every_page() {
    let fake = fake().await;
    let fiken = client(&fake, "token-pages", Duration::ZERO);
    let supplier = fiken.create_supplier("Telenor", None).await.unwrap();
    for i in 0..105 {
        fiken.create_purchase(&invoice(&format!("T-{i}"), supplier)).await.unwrap();
    }
    let last = fiken.find_purchase(supplier, "T-104").await.unwrap().expect("on the second page of 100");
    assert_eq!(last.identifier.as_deref(), Some("T-104"));
}

#[tokio::test]
async fn validation_errors_are_permanent_and_carry_fikens_message() {
    let fake = fake().await;
    let fiken = client(&fake, "token-validation", Duration::ZERO);
    let err = fiken.create_purchase(&invoice("F-1", 424242)).await.unwrap_err();
    assert_eq!(err, FikenError::Validation { message: "supplierId does not name a supplier".into() });
    assert!(!err.is_retryable());
    let supplier = fiken.create_supplier("X", None).await.unwrap();
    let mut no_lines = invoice("F-2", supplier);
    no_lines.lines.clear();
    let err = fiken.create_purchase(&no_lines).await.unwrap_err();
    assert!(matches!(&err, FikenError::Validation { message } if message.contains("lines")), "{err}");
    assert!(fake.purchases().is_empty(), "nothing was registered");

    let nobody = client(&fake, "", Duration::ZERO);
    assert_eq!(nobody.bank_accounts().await.unwrap_err(), FikenError::Unauthorized);
    let secret = client(&fake, "top-secret-token", Duration::ZERO);
    assert!(!format!("{secret:?} {:?}", Token::new("top-secret-token")).contains("top-secret"));
    let other = FikenClient::new(fake.base_url(), "someone-else", Token::new("t"), retries(), Duration::ZERO).unwrap();
    assert!(matches!(other.bank_accounts().await.unwrap_err(), FikenError::NotFound(_)));
}

#[tokio::test]
async fn one_request_at_a_time_per_token_and_paced() {
    let fake = fake().await;
    fake.set_faults(Faults { latency: Duration::from_millis(30), ..Faults::default() });

    // Fiken answers a second concurrent request from one token with 429.
    let http = reqwest::Client::new();
    let url = format!("{}/companies/{SANDBOX_COMPANY}/bankAccounts", fake.base_url());
    let (a, b) = tokio::join!(http.get(&url).bearer_auth("raw").send(), http.get(&url).bearer_auth("raw").send());
    let mut statuses = [a.unwrap().status().as_u16(), b.unwrap().status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 429]);

    // Our clients never overlap, even two clients of one token in many tasks.
    let one = client(&fake, "token-shared", Duration::from_millis(50));
    let two = client(&fake, "token-shared", Duration::from_millis(50));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..6 {
        let c = if i % 2 == 0 { one.clone() } else { two.clone() };
        tasks.push(tokio::spawn(async move { c.bank_accounts().await }));
    }
    for t in tasks {
        t.await.unwrap().expect("no 429: the client serialises");
    }
    assert!(started.elapsed() >= Duration::from_millis(250), "6 requests 50 ms apart take at least 250 ms");
}

#[tokio::test]
async fn a_lost_answer_is_ambiguous_and_the_lookup_finds_the_purchase_once() {
    let fake = fake().await;
    let fiken = client(&fake, "token-ambiguous", Duration::ZERO);
    let supplier = fiken.create_supplier("Rema 1000", None).await.unwrap();
    fake.fail_next([Fault::DropAfterCommit]);
    let err = fiken.create_purchase(&invoice("R-77", supplier)).await.unwrap_err();
    assert!(matches!(err, FikenError::Ambiguous(_)) && err.is_retryable(), "{err}");
    // The recipe for exactly once: look before trying again.
    let found = fiken.find_purchase(supplier, "R-77").await.unwrap();
    assert!(found.is_some(), "it was registered");
    assert_eq!(fake.purchases().len(), 1);

    // A 429 on a write means it did not happen: retried, registered once.
    fake.set_faults(Faults { retry_after_secs: 0, ..Faults::default() });
    fake.fail_next([Fault::RateLimited, Fault::RateLimited]);
    fiken.create_purchase(&invoice("R-78", supplier)).await.unwrap();
    assert_eq!(fake.purchases().len(), 2);
    // A 5xx on a read is retried.
    fake.fail_next([Fault::ServerError, Fault::ServerError]);
    assert!(fiken.find_purchase(supplier, "R-78").await.unwrap().is_some());
}

#[tokio::test]
async fn companies_inbox_and_purchases_by_date() {
    let fake = fake().await;
    let fiken = client(&fake, "token-reads", Duration::ZERO);
    let companies = fiken.companies().await.unwrap();
    assert_eq!(companies.iter().map(|c| c.slug.as_str()).collect::<Vec<_>>(), [SANDBOX_COMPANY]);
    let inbox = fiken.inbox().await.unwrap();
    assert!(inbox.iter().all(|d| d.filename.as_deref().is_some_and(|f| !f.is_empty())) && !inbox.is_empty());

    let supplier = fiken.create_supplier("Datoleverandøren", None).await.unwrap();
    for (number, day) in [("D-1", 1), ("D-2", 15), ("D-3", 28)] {
        let mut p = invoice(number, supplier);
        p.date = NaiveDate::from_ymd_opt(2026, 2, day).unwrap();
        fiken.create_purchase(&p).await.unwrap();
    }
    let mid = fiken
        .purchases(NaiveDate::from_ymd_opt(2026, 2, 2).unwrap(), NaiveDate::from_ymd_opt(2026, 2, 28).unwrap())
        .await
        .unwrap();
    let numbers: Vec<_> = mid.iter().filter_map(|p| p.identifier.as_deref()).collect();
    assert_eq!(numbers, ["D-2", "D-3"]);
    assert_eq!(mid[0].supplier_name.as_deref(), Some("Datoleverandøren"));
}

#[tokio::test]
async fn an_upload_whose_answer_is_lost_is_found_by_its_bytes() {
    let fake = fake().await;
    let fiken = client(&fake, "token-lost-upload", Duration::ZERO);
    let supplier = fiken.create_supplier("Clas Ohlson", None).await.unwrap();
    let id = fiken.create_purchase(&invoice("C-1", supplier)).await.unwrap();
    fake.fail_next([Fault::DropAfterCommit]);
    let err = fiken.attach_to_purchase(id, "c-1.pdf", b"%PDF-1.7 receipt".to_vec(), true).await.unwrap_err();
    assert!(matches!(err, FikenError::Ambiguous(_)), "{err}");
    assert!(fiken.has_attachment(id, b"%PDF-1.7 receipt").await.unwrap(), "it landed, and the check sees it");
    assert_eq!(fake.attachments_of(id).len(), 1);
}

#[tokio::test]
async fn a_form_field_fikens_document_lacks_is_refused_and_recorded() {
    let fake = fake().await;
    let fiken = client(&fake, "token-form", Duration::ZERO);
    let supplier = fiken.create_supplier("Form AS", None).await.unwrap();
    let id = fiken.create_purchase(&invoice("FORM-1", supplier)).await.unwrap();
    // What the client used to send: a `comment` field the document does not define.
    let form = reqwest::multipart::Form::new()
        .text("filename", "r.pdf")
        .text("attachToPayment", "true")
        .text("comment", "bk-key")
        .part("file", reqwest::multipart::Part::bytes(b"%PDF-1.7".to_vec()).file_name("r.pdf"));
    let url = format!("{}/companies/{SANDBOX_COMPANY}/purchases/{id}/attachments", fake.base_url());
    let answer = reqwest::Client::new().post(url).bearer_auth("token-form").multipart(form).send().await.unwrap();
    assert_eq!(answer.status(), 400);
    let seen = fake.take_contract_violations();
    assert!(seen.len() == 1 && seen[0].contains("comment"), "{seen:?}");
    assert!(fake.attachments_of(id).is_empty(), "nothing was attached");
}
