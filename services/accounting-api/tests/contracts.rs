//! Contract tests from the vendors' own documents: our real Fiken and Folio
//! clients against a server made of nothing but the published document, which
//! answers every operation with a body generated from it — once maximal (every
//! property, the document's example values) and once minimal (only what is
//! required). Every client method must decode both, and every request must be
//! one the document defines.

// Amounts are written kroner_øre: 100_00 is 100,00 kr.
#![allow(clippy::inconsistent_digit_grouping)]

use std::collections::BTreeSet;
use std::time::Duration;

use accounting_api::fiken::{FikenClient, FikenError, NewPurchase, PurchaseLine, Token};
use accounting_api::folio::{ApiKey, FolioClient};
use accounting_api::retry::RetryPolicy;
use bookkeeper_contracts::generated::{router, Seen};
use bookkeeper_contracts::{Fullness, Vendor};
use bookkeeper_core::retry::Backoff;
use chrono::NaiveDate;

fn retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(5)),
        max_retry_after: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
    }
}

async fn serve(vendor: Vendor, fullness: Fullness) -> (String, Seen) {
    let seen = Seen::default();
    let app = router(vendor, fullness, seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}{}", vendor.document().base_path()), seen)
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).unwrap()
}

/// The operations each client calls: the test fails if one is missed, so a new
/// client method must be added here (and is then checked like the rest).
const FIKEN_OPERATIONS: [&str; 11] = [
    "GET /companies",
    "GET /companies/{companySlug}",
    "GET /companies/{companySlug}/bankAccounts",
    "GET /companies/{companySlug}/contacts",
    "POST /companies/{companySlug}/contacts",
    "GET /companies/{companySlug}/inbox",
    "GET /companies/{companySlug}/purchases",
    "POST /companies/{companySlug}/purchases",
    "GET /companies/{companySlug}/purchases/{purchaseId}",
    "GET /companies/{companySlug}/purchases/{purchaseId}/attachments",
    "POST /companies/{companySlug}/purchases/{purchaseId}/attachments",
];

const FOLIO_OPERATIONS: [&str; 6] = [
    "GET /accounts",
    "GET /accounts/{accountNumber}/balance/{date}",
    "GET /accounts/{accountNumber}/transactions",
    "GET /events",
    "POST /events/{id}/attachments",
    "GET /attachments/{id}/{type}",
];

#[tokio::test]
async fn the_fiken_client_decodes_what_fikens_document_promises_and_sends_only_what_it_defines() {
    for fullness in [Fullness::Maximal, Fullness::Minimal] {
        let (base, seen) = serve(Vendor::Fiken, fullness).await;
        let fiken =
            FikenClient::new(&base, "acme", Token::new(format!("contract-{fullness:?}")), retries(), Duration::ZERO)
                .unwrap();
        let ctx = |what: &str| format!("{fullness:?} {what}");
        fiken.companies().await.unwrap_or_else(|e| panic!("{}: {e}", ctx("companies")));
        let company = fiken.company().await.unwrap_or_else(|e| panic!("{}: {e}", ctx("company")));
        assert!(!company.slug.is_empty());
        fiken.bank_accounts().await.unwrap_or_else(|e| panic!("{}: {e}", ctx("bank accounts")));
        fiken.inbox().await.unwrap_or_else(|e| panic!("{}: {e}", ctx("inbox")));
        fiken.purchases(day(1), day(31)).await.unwrap_or_else(|e| panic!("{}: {e}", ctx("purchases")));
        fiken
            .find_supplier("Kontor AS", Some("912345678"))
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", ctx("find supplier")));
        let supplier = fiken.create_supplier("Kontor AS", Some("912345678")).await.unwrap();
        assert_eq!(supplier, 4242, "the id at the end of the Location");
        let purchase = NewPurchase {
            identifier: "F-1".into(),
            date: day(2),
            due_date: Some(day(16)),
            supplier_id: supplier,
            currency: "NOK".into(),
            lines: vec![PurchaseLine {
                description: "Papir".into(),
                account: "6800".into(),
                net_minor: 100_00,
                vat_minor: 25_00,
                vat_type: "HIGH".into(),
            }],
        };
        let id = fiken.create_purchase(&purchase).await.unwrap_or_else(|e| panic!("{}: {e}", ctx("create purchase")));
        let read = fiken.purchase(id).await.unwrap_or_else(|e| panic!("{}: {e}", ctx("purchase")));
        // Minimal: no purchaseId in the answer, so the id it was read by.
        assert!(read.id == id || fullness == Fullness::Maximal, "{read:?}");
        fiken.find_purchase(supplier, "F-1").await.unwrap_or_else(|e| panic!("{}: {e}", ctx("find purchase")));
        // The document's attachment has no usable downloadUrl ("text" in the
        // maximal answer): the check cannot tell, and says so rather than "not there".
        match fiken.has_attachment(id, b"%PDF").await {
            Ok(found) => assert!(!found && fullness == Fullness::Minimal, "{fullness:?}"),
            Err(FikenError::Ambiguous(why)) => assert!(why.contains("cannot tell"), "{why}"),
            Err(e) => panic!("{}: {e}", ctx("attachments")),
        }
        fiken.attach_to_purchase(id, "f-1.pdf", b"%PDF-1.7".to_vec(), false).await.unwrap();

        assert_eq!(seen.violations(), Vec::<String>::new(), "{fullness:?}");
        let called: BTreeSet<String> = seen.calls().into_iter().collect();
        let expected: BTreeSet<String> = FIKEN_OPERATIONS.iter().map(|s| s.to_string()).collect();
        assert_eq!(called, expected, "{fullness:?}: every operation the client uses, and no other");
    }
}

#[tokio::test]
async fn the_folio_client_decodes_what_folios_document_promises_and_sends_only_what_it_defines() {
    for fullness in [Fullness::Maximal, Fullness::Minimal] {
        let (base, seen) = serve(Vendor::Folio, fullness).await;
        let folio = FolioClient::new(&base, ApiKey::new("contract-key"), retries()).unwrap();
        let ctx = |what: &str| format!("{fullness:?} {what}");
        let accounts = folio.accounts().await.unwrap_or_else(|e| panic!("{}: {e}", ctx("accounts")));
        let number = accounts.first().map(|a| a.account_number.clone()).unwrap_or_else(|| "36060000000".into());
        folio.balance_on(&number, day(1)).await.unwrap_or_else(|e| panic!("{}: {e}", ctx("balance")));
        folio.transactions(&number, day(1), day(31)).await.unwrap_or_else(|e| panic!("{}: {e}", ctx("transactions")));
        let events = folio.events(day(1), day(31)).await.unwrap_or_else(|e| panic!("{}: {e}", ctx("events")));
        let event = events.first().map(|e| e.id).unwrap_or_else(uuid::Uuid::new_v4);
        folio.find_event(event, day(1), day(31)).await.unwrap_or_else(|e| panic!("{}: {e}", ctx("find event")));
        let id = folio
            .attach_receipt(event, "r.pdf", "application/pdf", b"%PDF-1.7".to_vec())
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", ctx("attach")));
        folio.attachment(id).await.unwrap_or_else(|e| panic!("{}: {e}", ctx("attachment")));

        assert_eq!(seen.violations(), Vec::<String>::new(), "{fullness:?}");
        let called: BTreeSet<String> = seen.calls().into_iter().collect();
        let expected: BTreeSet<String> = FOLIO_OPERATIONS.iter().map(|s| s.to_string()).collect();
        assert_eq!(called, expected, "{fullness:?}: every operation the client uses, and no other");
    }
}

#[tokio::test]
async fn an_endpoint_the_document_lacks_is_caught() {
    // What the Folio client used to call: `GET /events/{id}`.
    let (base, seen) = serve(Vendor::Folio, Fullness::Minimal).await;
    let answer = reqwest::Client::new()
        .get(format!("{base}/events/457f0b7c-e3d6-44bf-9364-638b3d39dc7a"))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let seen = seen.violations();
    assert!(seen.len() == 1 && seen[0].contains("no such endpoint"), "{seen:?}");
}
