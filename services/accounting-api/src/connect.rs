//! `bookkeeper connect fiken|folio`: read-only checks that real credentials
//! work, each failure with what to do. Nothing here writes.

use bookkeeper_core::connect::Report;
use chrono::NaiveDate;

use crate::fiken::{FikenClient, FikenError};
use crate::folio::{FolioClient, FolioError};

/// The checks of a Fiken connection, in order.
pub const FIKEN_CHECKS: [&str; 4] = ["token", "company", "API module", "bank accounts"];

/// The checks of a Folio connection, in order.
pub const FOLIO_CHECKS: [&str; 2] = ["API key and accounts", "recent transactions"];

fn fiken_trouble(e: &FikenError) -> (String, String) {
    match e {
        FikenError::Unauthorized => (
            "Fiken refused the token (401)".into(),
            "create an API token in Fiken (your user → Rediger konto → Sikkerhet → API) and set FIKEN_TOKEN to it"
                .into(),
        ),
        FikenError::RateLimited { .. } => {
            ("Fiken is rate limiting this token".into(), "wait a minute; make sure nothing else uses the token".into())
        }
        FikenError::Unavailable(why) => (
            format!("Fiken could not be reached: {why}"),
            "check the network and FIKEN_BASE_URL (default https://api.fiken.no/api/v2)".into(),
        ),
        other => (other.to_string(), "see the message; Fiken's answer is quoted".into()),
    }
}

fn module_missing() -> (String, String) {
    (
        "the company does not have Fiken's API module".into(),
        "activate it in Fiken (Innstillinger → Abonnement → API-tilgang; a paid add-on), then run this again".into(),
    )
}

/// Checks a Fiken connection: the token is valid, the company slug names a
/// company it may use, that company has the API module, and its bank accounts.
pub async fn fiken(client: &FikenClient) -> Report {
    let mut report = Report::new("Fiken");
    let companies = match client.companies().await {
        Ok(c) => c,
        Err(e) => {
            let (problem, fix) = fiken_trouble(&e);
            report.fail("token", problem, fix);
            report.skip(&FIKEN_CHECKS[1..]);
            return report;
        }
    };
    report.pass(
        "token",
        format!("valid; it may use {} compan{}", companies.len(), if companies.len() == 1 { "y" } else { "ies" }),
    );
    let slug = client.company_slug();
    let known: Vec<&str> = companies.iter().map(|c| c.slug.as_str()).collect();
    let company = match client.company().await {
        Ok(c) => c,
        Err(FikenError::NotFound(_) | FikenError::Forbidden { .. }) if !known.contains(&slug) => {
            let fix = if known.is_empty() {
                "this token may use no company: create it from a user who is in the company".to_string()
            } else {
                format!("set FIKEN_COMPANY to one of: {}", known.join(", "))
            };
            report.fail("company", format!("FIKEN_COMPANY `{slug}` is not a company this token may use"), fix);
            report.skip(&FIKEN_CHECKS[2..]);
            return report;
        }
        Err(e) => {
            let (problem, fix) = fiken_trouble(&e);
            report.fail("company", problem, fix);
            report.skip(&FIKEN_CHECKS[2..]);
            return report;
        }
    };
    let test = if company.test_company { ", a test company" } else { "" };
    let org = company.organization_number.as_deref().map(|o| format!(" (org. {o})")).unwrap_or_default();
    report.pass("company", format!("`{slug}`: {}{org}{test}", company.name));
    if company.has_api_access == Some(false) {
        let (problem, fix) = module_missing();
        report.fail("API module", problem, fix);
        report.skip(&FIKEN_CHECKS[3..]);
        return report;
    }
    let accounts = match client.bank_accounts().await {
        Ok(a) => a,
        // 402 is what one client reports for a missing module; 403 is Fiken's "not authorised".
        Err(FikenError::Forbidden { status: 402 | 403, .. }) => {
            let (problem, fix) = module_missing();
            report.fail("API module", problem, fix);
            report.skip(&FIKEN_CHECKS[3..]);
            return report;
        }
        Err(e) => {
            // The read that would tell failed for another reason: neither known.
            let (problem, fix) = fiken_trouble(&e);
            report.fail("API module", format!("reading the bank accounts (the test of it) failed: {problem}"), fix);
            report.skip(&FIKEN_CHECKS[3..]);
            return report;
        }
    };
    report.pass("API module", "active");
    let active: Vec<String> = accounts
        .iter()
        .filter(|a| !a.inactive)
        .map(|a| {
            let number = a.number.as_deref().unwrap_or("no number");
            let code = a.account_code.as_deref().map(|c| format!(", ledger {c}")).unwrap_or_default();
            format!("{} {number}{code}", if a.name.is_empty() { "(unnamed)" } else { &a.name })
        })
        .collect();
    if active.is_empty() {
        report.fail(
            "bank accounts",
            "the company has no active bank account in Fiken",
            "add the company's bank account in Fiken (Bank → Ny bankkonto), with the number Folio shows",
        );
    } else {
        report.pass("bank accounts", active.join("; "));
    }
    report
}

fn folio_trouble(e: &FolioError) -> (String, String) {
    match e {
        FolioError::Unauthorized => (
            "Folio refused the API key (401)".into(),
            "create an API key in Folio (Innstillinger → Integrasjoner → API) and set FOLIO_API_KEY to it".into(),
        ),
        FolioError::Unavailable(why) => (
            format!("Folio could not be reached: {why}"),
            "check the network and FOLIO_BASE_URL (default https://api.folio.no/v2)".into(),
        ),
        FolioError::RateLimited { .. } => {
            ("Folio is rate limiting this key".into(), "wait a minute and try again".into())
        }
        other => (other.to_string(), "see the message; Folio's answer is quoted".into()),
    }
}

/// Checks a Folio connection: the key reads the accounts, and the recent
/// transactions (the 30 days up to `today`) of each.
pub async fn folio(client: &FolioClient, today: NaiveDate) -> Report {
    let mut report = Report::new("Folio");
    let accounts = match client.accounts().await {
        Ok(a) if a.is_empty() => {
            report.fail(
                "API key and accounts",
                "the key works but sees no account",
                "make the key in the company that holds the accounts, with read access",
            );
            report.skip(&FOLIO_CHECKS[1..]);
            return report;
        }
        Ok(a) => a,
        Err(e) => {
            let (problem, fix) = folio_trouble(&e);
            report.fail("API key and accounts", problem, fix);
            report.skip(&FOLIO_CHECKS[1..]);
            return report;
        }
    };
    let listed: Vec<String> =
        accounts.iter().map(|a| format!("{} {} ({})", a.name, a.account_number, a.kind)).collect();
    report.pass("API key and accounts", listed.join("; "));
    let from = today - chrono::Days::new(30);
    let mut seen = Vec::new();
    for account in &accounts {
        match client.transactions(&account.account_number, from, today).await {
            Ok(t) => seen.push(format!("{} on {}", t.len(), account.account_number)),
            Err(e) => {
                let (problem, fix) = folio_trouble(&e);
                report.fail("recent transactions", format!("{}: {problem}", account.account_number), fix);
                return report;
            }
        }
    }
    report.pass("recent transactions", format!("since {from}: {}", seen.join(", ")));
    report
}
