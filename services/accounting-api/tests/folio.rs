//! The Folio client against the fake Folio, over real HTTP.

// Amounts are written kroner_øre: 499_00 is 499,00 kr.
#![allow(clippy::inconsistent_digit_grouping)]

use std::time::{Duration, Instant};

use accounting_api::folio::fake::{FakeFolio, Fault, Faults, SANDBOX_ACCOUNT};
use accounting_api::folio::{ApiKey, Direction, FolioClient, FolioError};
use accounting_api::retry::RetryPolicy;
use bookkeeper_core::retry::Backoff;
use chrono::{Duration as Days, Utc};

async fn fake() -> FakeFolio {
    FakeFolio::sandbox("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        backoff: Backoff::new(Duration::from_millis(5), Duration::from_millis(20)),
        max_retry_after: Duration::from_secs(2),
        timeout: Duration::from_millis(800),
    }
}

fn client(fake: &FakeFolio) -> FolioClient {
    FolioClient::new(fake.base_url(), ApiKey::new("sandbox-key-0123456789"), fast_retries()).unwrap()
}

#[tokio::test]
async fn accounts_balances_and_transactions_are_read_exactly() {
    let fake = fake().await;
    let folio = client(&fake);
    let accounts = folio.accounts().await.unwrap();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].account_number, SANDBOX_ACCOUNT);
    // 250 000.00 minus the four sandbox purchases, to the øre.
    assert_eq!(accounts[0].balance_minor, 250_000_00 - 499_00 - 12_490_00 - 89_00 - 1_249_00);

    let today = Utc::now().date_naive();
    let txs = folio.transactions(SANDBOX_ACCOUNT, today - Days::days(4), today).await.unwrap();
    let amounts: Vec<i64> = txs.iter().map(|t| t.amount_minor).collect();
    assert_eq!(amounts.len(), 3, "the purchase five days ago is outside the range");
    // Folio writes amounts unsigned; the account is the debtor of money out.
    assert!(amounts.contains(&-499_00) && amounts.contains(&-12_490_00));
    assert!(txs.iter().all(|t| t.direction == Direction::Out));
    assert!(txs.iter().all(|t| t.currency == "NOK" && t.attachments.is_empty()));

    let yesterday = today - Days::days(1);
    let balance = folio.balance_on(SANDBOX_ACCOUNT, yesterday).await.unwrap();
    assert_eq!(balance, Some(accounts[0].balance_minor), "every purchase was before today");
    let err = folio.balance_on("99999999999", today).await.unwrap_err();
    assert!(matches!(err, FolioError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn a_receipt_attached_to_an_event_reads_back_byte_for_byte() {
    let fake = fake().await;
    let folio = client(&fake);
    let today = Utc::now().date_naive();
    let events = folio.events(today - Days::days(10), today).await.unwrap();
    let kiwi = events.iter().find(|e| e.amount_minor == 499_00).expect("the sandbox Kiwi purchase, unsigned");
    let receipt = b"%PDF-1.7 kvittering Kiwi 499,00".to_vec();
    let id = folio.attach_receipt(kiwi.id, "kiwi.pdf", "application/pdf", receipt.clone()).await.unwrap();

    let stored = fake.attachments_of(kiwi.id);
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].id, stored[0].filename.as_deref()), (id, Some("kiwi.pdf")));
    let (mime, bytes) = folio.attachment(id).await.unwrap();
    assert_eq!((mime.as_str(), bytes), ("application/pdf", receipt));
    let events = folio.events(today - Days::days(10), today).await.unwrap();
    let kiwi = events.iter().find(|e| e.id == kiwi.id).unwrap();
    assert!(kiwi.complete && kiwi.attachments[0].size > 0);

    // No read of one event in Folio's document: it is found among the events.
    let one = folio.find_event(kiwi.id, today - Days::days(10), today).await.unwrap().expect("found");
    assert_eq!((one.amount_minor, one.attachments[0].filename.as_deref()), (499_00, Some("kiwi.pdf")));
    assert_eq!(folio.find_event(uuid::Uuid::new_v4(), today - Days::days(10), today).await.unwrap(), None);
    assert_eq!(fake.contract_violations(), Vec::<String>::new());
}

#[tokio::test]
async fn permanent_errors_are_typed_and_never_retried() {
    let fake = fake().await;
    let folio = client(&fake);
    let before = fake.requests();
    let err = folio.attach_receipt(uuid::Uuid::new_v4(), "x.pdf", "application/pdf", vec![1]).await.unwrap_err();
    assert!(matches!(err, FolioError::NotFound(_)) && !err.is_retryable(), "{err}");
    let today = Utc::now().date_naive();
    let event = folio.events(today - Days::days(10), today).await.unwrap()[0].id;
    let err = folio.attach_receipt(event, "x.heic", "image/heic", vec![1]).await.unwrap_err();
    assert!(matches!(&err, FolioError::Rejected { status: 400, message } if message.contains("Content-Type")), "{err}");
    // HEIC is not a type Folio's document accepts: refused at the contract
    // check, once (a retry would show as a second violation).
    let refused = fake.take_contract_violations();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(refused[0].contains("image/heic"), "{refused:?}");
    assert_eq!(fake.requests() - before, 2, "one request each, no retries");

    // The fake, like Folio's own mock, accepts any non-empty key; an empty one is refused.
    let no_key = FolioClient::new(fake.base_url(), ApiKey::new(""), fast_retries()).unwrap();
    let err = no_key.accounts().await.unwrap_err();
    assert_eq!(err, FolioError::Unauthorized);
    let secret = FolioClient::new(fake.base_url(), ApiKey::new("top-secret-key"), fast_retries()).unwrap();
    assert!(
        !format!("{secret:?} {:?}", ApiKey::new("top-secret-key")).contains("top-secret"),
        "keys are never printed"
    );
}

#[tokio::test]
async fn reads_retry_through_5xx_and_429_honouring_retry_after() {
    let fake = fake().await;
    fake.set_faults(Faults { retry_after_secs: 1, ..Faults::default() });
    let folio = client(&fake);
    fake.fail_next([Fault::ServerError, Fault::RateLimited]);
    let started = Instant::now();
    let accounts = folio.accounts().await.unwrap();
    assert_eq!(accounts.len(), 1);
    assert!(started.elapsed() >= Duration::from_secs(1), "the Retry-After of 1 s was not honoured");

    fake.fail_next([Fault::ServerError; 4]);
    let err = folio.accounts().await.unwrap_err();
    assert!(matches!(err, FolioError::Unavailable(_)) && err.is_retryable(), "{err}");
    fake.fail_next([Fault::RateLimited; 4]);
    let err = folio.accounts().await.unwrap_err();
    assert_eq!(err, FolioError::RateLimited { retry_after: Some(Duration::from_secs(1)) });
}

#[tokio::test]
async fn a_write_whose_answer_is_lost_is_ambiguous_and_was_applied() {
    let fake = fake().await;
    let folio = client(&fake);
    let today = Utc::now().date_naive();
    let event = folio.events(today - Days::days(10), today).await.unwrap()[0].id;
    fake.fail_next([Fault::DropAfterCommit]);
    let err = folio.attach_receipt(event, "r.png", "image/png", vec![0x89, b'P', b'N', b'G']).await.unwrap_err();
    assert!(matches!(err, FolioError::Ambiguous(_)) && err.is_retryable(), "{err}");
    // The caller must look before retrying: the attachment is there.
    assert_eq!(fake.attachments_of(event).len(), 1);

    // A 429 on a write means it was not applied: retried, applied once.
    fake.set_faults(Faults { retry_after_secs: 0, ..Faults::default() });
    fake.fail_next([Fault::RateLimited]);
    folio.attach_receipt(event, "r2.png", "image/png", vec![1, 2, 3]).await.unwrap();
    assert_eq!(fake.attachments_of(event).len(), 2);
    // Still 429 after every attempt: rate limited (retry later), never "rejected".
    fake.fail_next([Fault::RateLimited; 4]);
    let err = folio.attach_receipt(event, "r3.png", "image/png", vec![4]).await.unwrap_err();
    assert!(matches!(err, FolioError::RateLimited { .. }) && err.is_retryable(), "{err}");
    assert_eq!(fake.attachments_of(event).len(), 2);
}

#[tokio::test]
async fn a_slow_folio_times_out_as_unavailable() {
    let fake = fake().await;
    fake.set_faults(Faults { latency: Duration::from_secs(2), ..Faults::default() });
    let folio = FolioClient::new(
        fake.base_url(),
        ApiKey::new("k"),
        RetryPolicy { max_attempts: 2, timeout: Duration::from_millis(200), ..fast_retries() },
    )
    .unwrap();
    let started = Instant::now();
    let err = folio.accounts().await.unwrap_err();
    assert!(matches!(&err, FolioError::Unavailable(m) if m.contains("timed out")), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// The fake speaks the shapes of Folio's document, checked on raw HTTP rather
/// than through our own client.
#[tokio::test]
async fn the_fake_speaks_folios_documented_shapes() {
    let fake = fake().await;
    let http = reqwest::Client::new();
    let get = |path: &str| http.get(format!("{}{path}", fake.base_url())).bearer_auth("any-key");

    let r = http.get(format!("{}/accounts", fake.base_url())).send().await.unwrap();
    assert_eq!(r.status(), 401, "no key");
    assert_eq!(r.text().await.unwrap(), "Unauthorized");

    let accounts: serde_json::Value = get("/accounts").send().await.unwrap().json().await.unwrap();
    let account = &accounts["accounts"][0];
    assert!(account["balance"].as_str().unwrap().ends_with(".00"), "balances are decimal strings: {account}");
    for field in
        ["accountNumber", "name", "type", "balanceUpdatedAt", "matchingTransactionsAt", "completeTransactionsAt"]
    {
        assert!(account.get(field).is_some(), "Account.{field} is required by the spec");
    }

    let r = get(&format!("/accounts/{SANDBOX_ACCOUNT}/transactions")).send().await.unwrap();
    assert_eq!(r.status(), 400, "startDate is required");
    let refused = fake.take_contract_violations();
    assert!(refused.len() == 1 && refused[0].contains("`startDate` is missing"), "{refused:?}");
    let today = Utc::now().date_naive();
    let body: serde_json::Value =
        get(&format!("/accounts/{SANDBOX_ACCOUNT}/transactions?startDate={}", today - Days::days(30)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let tx = &body["transactions"]["booked"][0];
    assert_eq!(tx["transactionAmount"]["currency"], "NOK");
    // Unsigned, as the document's pattern; the account pays, so it is the debtor.
    assert!(
        tx["transactionAmount"]["amount"].as_str().unwrap().bytes().all(|b| b.is_ascii_digit() || b == b'.'),
        "{tx}"
    );
    assert_eq!(tx["debtor"]["accountNumber"], SANDBOX_ACCOUNT);
    assert!(tx["eventId"].is_string() && tx["attachments"].is_array() && tx["complete"].is_boolean());

    // There is no GET of one event in Folio's document: the fake has none either.
    let r = get(&format!("/events/{}", tx["eventId"].as_str().unwrap())).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let refused = fake.take_contract_violations();
    assert!(refused.len() == 1 && refused[0].contains("no such endpoint"), "{refused:?}");

    let events: serde_json::Value =
        get(&format!("/events?startDate={}", today - Days::days(30))).send().await.unwrap().json().await.unwrap();
    let event_id = events["events"][0]["id"].as_str().unwrap().to_string();
    let r = http
        .post(format!("{}/events/{event_id}/attachments", fake.base_url()))
        .bearer_auth("any-key")
        .header("content-type", "image/jpeg")
        .body(vec![0xff, 0xd8, 0xff])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "POST attachments answers 200, not 201");
    assert!(r.headers().get("location").is_none(), "Folio sends no Location");
    let created: serde_json::Value = r.json().await.unwrap();
    assert!(created["id"].as_str().is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()));
}
