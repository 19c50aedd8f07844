//! `bookkeeper connect fiken|folio`: the going-live checks against the fakes,
//! passing, and failing in each way a new user meets, each saying what to do.

use std::time::Duration;

use accounting_api::connect;
use accounting_api::fiken::fake::{FakeFiken, SANDBOX_COMPANY};
use accounting_api::fiken::{FikenClient, Token};
use accounting_api::folio::fake::FakeFolio;
use accounting_api::folio::{ApiKey, FolioClient};
use accounting_api::retry::RetryPolicy;
use bookkeeper_core::connect::{Outcome, Report};
use bookkeeper_core::retry::Backoff;

fn retries() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 2,
        backoff: Backoff::new(Duration::from_millis(1), Duration::from_millis(5)),
        max_retry_after: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
    }
}

async fn fiken() -> FakeFiken {
    FakeFiken::start("127.0.0.1:0".parse().unwrap()).await.unwrap()
}

fn fiken_client(fake: &FakeFiken, company: &str, token: &str) -> FikenClient {
    FikenClient::new(fake.base_url(), company, Token::new(token), retries(), Duration::ZERO).unwrap()
}

/// The failed check's name, problem and fix; every later check skipped.
fn failure(report: &Report) -> (&'static str, String, String) {
    let i = report.checks.iter().position(|c| matches!(c.outcome, Outcome::Failed { .. })).expect("a failure");
    assert!(report.checks[i + 1..].iter().all(|c| c.outcome == Outcome::Skipped), "{report}");
    let Outcome::Failed { problem, fix } = &report.checks[i].outcome else { unreachable!() };
    (report.checks[i].name, problem.clone(), fix.clone())
}

#[tokio::test]
async fn fiken_ready() {
    let fake = fiken().await;
    let report = connect::fiken(&fiken_client(&fake, SANDBOX_COMPANY, "good-token")).await;
    assert!(report.passed(), "{report}");
    let text = report.to_string();
    assert!(text.contains("Sandbox AS") && text.contains("36060000000") && text.contains("1920:10001"), "{text}");
    assert!(text.ends_with("Fiken: ready."), "{text}");
}

#[tokio::test]
async fn fiken_refuses_the_token() {
    let fake = fiken().await;
    fake.accept_only("the-right-token");
    let report = connect::fiken(&fiken_client(&fake, SANDBOX_COMPANY, "a-wrong-token")).await;
    let (check, problem, fix) = failure(&report);
    assert_eq!(check, "token");
    assert!(problem.contains("401") && fix.contains("FIKEN_TOKEN"), "{report}");
    assert!(!report.to_string().contains("a-wrong-token"), "the token is never printed");
}

#[tokio::test]
async fn fiken_wrong_company_slug() {
    let fake = fiken().await;
    let report = connect::fiken(&fiken_client(&fake, "sandbox-typo", "good-token")).await;
    let (check, problem, fix) = failure(&report);
    assert_eq!(check, "company");
    assert!(problem.contains("sandbox-typo") && fix.contains(SANDBOX_COMPANY), "{report}");
}

#[tokio::test]
async fn fiken_company_without_the_api_module() {
    let fake = fiken().await;
    fake.set_api_module(false);
    let report = connect::fiken(&fiken_client(&fake, SANDBOX_COMPANY, "good-token")).await;
    let (check, problem, fix) = failure(&report);
    assert_eq!(check, "API module");
    assert!(problem.contains("API module") && fix.contains("activate"), "{report}");
}

#[tokio::test]
async fn folio_ready_and_refusing_the_key() {
    let fake = FakeFolio::sandbox("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let today = chrono::Utc::now().date_naive();
    let good = FolioClient::new(fake.base_url(), ApiKey::new("good-key-0123"), retries()).unwrap();
    let report = connect::folio(&good, today).await;
    assert!(report.passed(), "{report}");
    assert!(report.to_string().contains("36060000000") && report.to_string().contains("4 on"), "{report}");

    fake.accept_only("the-right-key");
    let wrong = FolioClient::new(fake.base_url(), ApiKey::new("a-wrong-key"), retries()).unwrap();
    let report = connect::folio(&wrong, today).await;
    let (check, problem, fix) = failure(&report);
    assert_eq!(check, "API key and accounts");
    assert!(problem.contains("401") && fix.contains("FOLIO_API_KEY"), "{report}");
    assert!(!report.to_string().contains("a-wrong-key"));
}

#[tokio::test]
async fn folio_unreachable() {
    // Nothing listens here.
    let dead = FolioClient::new("http://127.0.0.1:9/v2", ApiKey::new("k"), retries()).unwrap();
    let report = connect::folio(&dead, chrono::Utc::now().date_naive()).await;
    let (check, problem, fix) = failure(&report);
    assert_eq!(check, "API key and accounts");
    assert!(problem.contains("could not be reached") && fix.contains("FOLIO_BASE_URL"), "{report}");
}
