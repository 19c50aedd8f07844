//! The conversation core through Book-E's HTTP door, against a real log on
//! PostgreSQL (Book-E as the `book_e` role) and a real Accounting API in front of
//! the fake Fiken and Folio.

// Amounts are written kroner_øre: 499_00 is 499,00 kr.
#![allow(clippy::inconsistent_digit_grouping)]

use std::time::Duration;

use accounting_api::fiken::fake::{FakeFiken, SANDBOX_COMPANY};
use accounting_api::fiken::Token;
use accounting_api::folio::fake::{FakeFolio, SANDBOX_ACCOUNT};
use accounting_api::folio::ApiKey;
use accounting_api::{AccountingApi, FikenConfig, FolioConfig};
use book_e::BookE;
use bookkeeper_core::people::{Directory, Door, Person, Right};
use bookkeeper_core::testing::TestDb;
use bookkeeper_core::{Append, NewEvent, Store};
use serde_json::{json, Value};

const OLA: &str = "ola-token-0123456789";
const KARI: &str = "kari-token-0123456789";

struct World {
    db: TestDb,
    folio: FakeFolio,
    _fiken: FakeFiken,
    book_e: String,
    accounting_url: String,
    read_documents: bool,
    clock: bookkeeper_core::Clock,
    accounting_stop: bookkeeper_core::shutdown::StopSignal,
    accounting: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    http: reqwest::Client,
}

async fn world() -> Option<World> {
    world_with(false, bookkeeper_core::Clock::system()).await
}

/// A world whose Book-E reads documents sent without their fields, on `clock`'s day.
async fn world_with(read_documents: bool, clock: bookkeeper_core::Clock) -> Option<World> {
    let db = TestDb::postgres().await?;
    let fiken = FakeFiken::start("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let folio = FakeFolio::sandbox("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let config = accounting_api::Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        fiken: FikenConfig::Live {
            base_url: fiken.base_url(),
            company: SANDBOX_COMPANY.into(),
            token: Token::new(format!("t-{}", uuid::Uuid::new_v4())),
        },
        folio: FolioConfig::Live { base_url: folio.base_url(), key: ApiKey::new("k") },
        ..accounting_api::Config::default()
    };
    let accounting_store = Store::connect(&db.role_url("accounting_api")).await.unwrap();
    let accounting = AccountingApi::build(config, accounting_store).await.unwrap();
    let accounting_url = format!("http://127.0.0.1:{}", accounting.port());
    let stop = bookkeeper_core::shutdown::StopSignal::new();
    let accounting = tokio::spawn(accounting.run_until_stopped(stop.stopped()));

    let book_e = start_book_e(&db, &accounting_url, read_documents, clock.clone()).await;
    Some(World {
        db,
        folio,
        _fiken: fiken,
        book_e,
        accounting_url,
        read_documents,
        clock,
        accounting_stop: stop,
        accounting: Some(accounting),
        http: reqwest::Client::new(),
    })
}

/// Starts a Book-E on `db` and returns its base URL: the team's people, reading
/// documents sent alone when `read_documents`, on `clock`'s day.
async fn start_book_e(
    db: &TestDb,
    accounting_url: &str,
    read_documents: bool,
    clock: bookkeeper_core::Clock,
) -> String {
    let config = book_e::Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        people: Directory::new(vec![
            Person::new("ola").may_also(Right::Propose).with_token(Door::BookE, OLA),
            Person::new("kari").may_also(Right::Propose).with_token(Door::BookE, KARI),
        ])
        .unwrap(),
        accounting_url: accounting_url.to_string(),
        read_documents,
        conversation: book_e::conversation::ConversationConfig { clock, ..Default::default() },
        ..book_e::Config::default()
    };
    // Book-E runs as its own role: it may append proposals and nothing else.
    let store = Store::connect(&db.role_url("book_e")).await.unwrap();
    let book_e = BookE::build(config, store).await.unwrap();
    let base = format!("http://127.0.0.1:{}", book_e.port());
    tokio::spawn(book_e.run_until_stopped(std::future::pending()));
    base
}

impl World {
    /// Another Book-E on the same log, as after a restart (it knows only what the
    /// log and its saved read models hold).
    async fn restarted_book_e(&self) -> String {
        start_book_e(&self.db, &self.accounting_url, self.read_documents, self.clock.clone()).await
    }

    async fn chat_at(&self, book_e: &str, token: &str, text: &str, document: Option<&str>) -> Value {
        let mut body = json!({"text": text});
        if let Some(sha) = document {
            body["document"] = json!({"sha256": sha, "filename": "kvittering.pdf"});
        }
        let r = self.http.post(format!("{book_e}/chat")).bearer_auth(token).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 200);
        r.json().await.unwrap()
    }

    async fn upload(&self, bytes: &[u8]) -> String {
        let r = self
            .http
            .post(format!("{}/documents", self.book_e))
            .bearer_auth(OLA)
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json::<Value>().await.unwrap()["sha256"].as_str().unwrap().to_string()
    }

    async fn chat(&self, token: &str, text: &str, document: Option<&str>) -> Value {
        self.chat_at(&self.book_e, token, text, document).await
    }

    async fn proposals(&self) -> Vec<bookkeeper_core::RecordedEvent> {
        let filter = bookkeeper_core::TypeFilter::of(["*Proposed"]);
        self.db
            .store
            .read_waiting(bookkeeper_core::Cursor::START, &filter, 1000, std::time::Duration::from_secs(5))
            .await
            .unwrap()
            .events
    }
}

fn text(answer: &Value) -> &str {
    answer["text"].as_str().unwrap()
}

#[tokio::test]
async fn a_receipt_becomes_a_proposal_for_the_one_matching_transaction() {
    let Some(w) = world().await else { return };
    let kiwi = w.folio.add_event(
        SANDBOX_ACCOUNT,
        chrono::Utc::now() - chrono::Duration::days(1),
        -312_50,
        "KIWI 505 MAJORSTUEN",
    );
    let sha = w.upload(b"%PDF-1.7 Kiwi 312,50").await;

    let answer = w.chat(OLA, "/receipt amount=312,50 vendor=Kiwi", Some(&sha)).await;
    let id = answer["correlation_id"].as_str().unwrap_or_else(|| panic!("no proposal: {answer}")).to_string();
    assert_eq!(answer["proposal"], answer["correlation_id"], "the deprecated name stays for older clients");
    assert!(text(&answer).contains("KIWI 505 MAJORSTUEN 312.50 NOK"), "{answer}");

    let story = w.db.store.read_correlation(&id).await.unwrap();
    assert_eq!(story.len(), 1);
    let p = &story[0];
    assert_eq!(
        (p.event_type.as_str(), p.actor.as_str(), p.status.as_str()),
        ("ReceiptAttachmentProposed", "book-e", "PROPOSED")
    );
    assert_eq!(p.payload["requested_by"], json!("user:ola"));
    assert_eq!(
        p.payload["receipt"],
        json!({"sha256": sha, "filename": "kvittering.pdf", "content_type": "application/pdf"})
    );
    assert_eq!(p.payload["target"], json!({"kind": "folio_event", "event_id": kiwi.to_string()}));
    assert_eq!(p.payload["amount"], json!({"minor": 312_50, "currency": "NOK"}));
    assert_eq!(p.payload["vendor"]["name"], json!("Kiwi"));
    assert_eq!(p.metadata["reply_to"]["door"], json!("http"));

    // The same, dropped as a bare attachment with a few words.
    let sha2 = w.upload(b"%PDF-1.7 Ruter 89").await;
    let answer = w.chat(OLA, "Ruter 89", Some(&sha2)).await;
    assert!(answer["proposal"].is_string(), "{answer}");
}

#[tokio::test]
async fn several_matches_ask_which_and_none_is_said_plainly() {
    let Some(w) = world().await else { return };
    let now = chrono::Utc::now();
    let a = w.folio.add_event(SANDBOX_ACCOUNT, now - chrono::Duration::days(1), -250_00, "NARVESEN");
    let b = w.folio.add_event(SANDBOX_ACCOUNT, now - chrono::Duration::days(2), -250_00, "DEICHMAN KAFE");
    let sha = w.upload(b"%PDF-1.7 250").await;

    let answer = w.chat(OLA, "/receipt amount=250", Some(&sha)).await;
    assert!(answer["proposal"].is_null());
    assert!(text(&answer).contains("2 bank transactions"), "{answer}");
    let commands: Vec<&str> =
        answer["choices"].as_array().unwrap().iter().map(|c| c["command"].as_str().unwrap()).collect();
    assert!(commands.contains(&format!("/receipt transaction={a}").as_str()), "{commands:?}");
    assert!(commands.contains(&format!("/receipt transaction={b}").as_str()), "{commands:?}");
    assert!(w.proposals().await.is_empty(), "asking proposes nothing");

    // Naming the vendor narrows it down; picking one proposes that one.
    let answer = w.chat(OLA, "/receipt amount=250 vendor=narvesen", Some(&sha)).await;
    assert!(answer["proposal"].is_string(), "{answer}");
    let answer = w.chat(OLA, &format!("/receipt transaction={b}"), Some(&sha)).await;
    let id = answer["proposal"].as_str().unwrap();
    let story = w.db.store.read_correlation(id).await.unwrap();
    assert_eq!(story[0].payload["target"]["event_id"], json!(b.to_string()));

    // Nothing matches: said plainly, nothing proposed.
    let before = w.proposals().await.len();
    let answer = w.chat(OLA, "/receipt amount=777,77", Some(&sha)).await;
    assert!(text(&answer).contains("I found no bank transaction of 777.77 NOK"), "{answer}");
    assert_eq!(w.proposals().await.len(), before);
    // No document, no amount, an unknown document: each a clear answer.
    assert!(text(&w.chat(OLA, "/receipt amount=250", None).await).contains("Attach the receipt"));
    assert!(text(&w.chat(OLA, "/receipt", Some(&sha)).await).contains("What was the amount?"));
    let unknown = w.chat(OLA, "/receipt amount=250", Some(&"0".repeat(64))).await;
    assert!(text(&unknown).contains("I have no document"), "{unknown}");
    assert_eq!(w.proposals().await.len(), before);
}

#[tokio::test]
async fn an_invoice_becomes_a_proposal_and_missing_fields_are_asked_for() {
    let Some(w) = world().await else { return };
    let sha = w.upload(b"%PDF-1.7 faktura F-1001").await;
    let asked = w.chat(KARI, "/invoice vendor=\"Kontor AS\"", Some(&sha)).await;
    assert!(text(&asked).contains("number=, amount="), "{asked}");

    let answer = w
        .chat(KARI, r#"/invoice vendor="Kontor AS" org=912345678 number=F-1001 amount="12 500,00" date=2026-11-20 due=2026-12-04 account=6540"#, Some(&sha))
        .await;
    let id = answer["proposal"].as_str().unwrap_or_else(|| panic!("{answer}"));
    let p = &w.db.store.read_correlation(id).await.unwrap()[0];
    assert_eq!(p.event_type, "InvoiceRegistrationProposed");
    assert_eq!(p.payload["requested_by"], json!("user:kari"));
    assert_eq!(p.payload["vendor"], json!({"name": "Kontor AS", "organization_number": "912345678"}));
    assert_eq!(
        (&p.payload["invoice_number"], &p.payload["amount"], &p.payload["due_date"], &p.payload["account"]),
        (&json!("F-1001"), &json!({"minor": 12_500_00, "currency": "NOK"}), &json!("2026-12-04"), &json!("6540"))
    );
    assert_eq!(p.payload["document"]["sha256"], json!(sha));
}

#[tokio::test]
async fn balance_pending_status_and_what_happened() {
    let Some(mut w) = world().await else { return };
    let balance = w.chat(OLA, "what's our balance?", None).await;
    assert!(text(&balance).contains("Bank balance: 235673.00 NOK"), "{balance}");

    w.folio.add_event(SANDBOX_ACCOUNT, chrono::Utc::now(), -99_00, "REMA 1000");
    let sha = w.upload(b"%PDF-1.7 rema").await;
    let id = w.chat(OLA, "/receipt amount=99", Some(&sha)).await["proposal"].as_str().unwrap().to_string();

    let pending = w.chat(KARI, "/pending", None).await;
    assert!(text(&pending).contains(&id), "{pending}");
    let status = w.chat(KARI, &format!("/status {id}"), None).await;
    assert!(text(&status).contains("Receipt proposed by book-e for user:ola"), "{status}");

    // Review-E approves (here: the test, as Review-E would); the Accounting API
    // carries it out at the fake Folio; the requester reads what happened.
    let proposal = w.db.store.read_correlation(&id).await.unwrap()[0].event_id;
    let approval = NewEvent::new("ReceiptAttachmentApproved", "system:auto", "AUTO_APPROVED", &id)
        .with_payload(json!({"reason": "small-receipts: 99.00 NOK from known vendor"}))
        .caused_by(proposal);
    w.db.store.append(Append::one(approval)).await.unwrap();
    let started = std::time::Instant::now();
    let news: Value = loop {
        let news: Value = w
            .http
            .get(format!("{}/chat/notifications?after=0", w.book_e))
            .bearer_auth(OLA)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if news.to_string().contains("Done:") {
            break news;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{news}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let story = w.db.store.read_correlation(&id).await.unwrap();
    let executed = story.iter().find(|e| e.event_type == "ReceiptAttachmentExecuted").unwrap();
    let attachment = executed.payload["remote_ids"]["folio_attachment_id"].as_str().unwrap().to_string();
    let texts: Vec<&str> =
        news["notifications"].as_array().unwrap().iter().map(|n| n["text"].as_str().unwrap()).collect();
    assert_eq!(
        texts,
        [
            "Your receipt: Approved automatically: small-receipts: 99.00 NOK from known vendor",
            format!("Your receipt: Done: Folio attachment {attachment}").as_str()
        ]
    );
    let next = news["next"].as_i64().unwrap();
    let again: Value = w
        .http
        .get(format!("{}/chat/notifications?after={next}", w.book_e))
        .bearer_auth(OLA)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(again["notifications"].as_array().unwrap().is_empty(), "nothing twice");
    let other: Value = w
        .http
        .get(format!("{}/chat/notifications?after=0", w.book_e))
        .bearer_auth(KARI)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(other["notifications"].as_array().unwrap().is_empty(), "only your own proposals");

    // The Accounting API gone: said plainly, no hang, no crash.
    w.accounting_stop.stop();
    w.accounting.take().unwrap().await.unwrap().unwrap();
    let down = w.chat(OLA, "/balance", None).await;
    assert!(text(&down).contains("Accounting API is unavailable"), "{down}");
}

#[tokio::test]
async fn only_known_users_and_only_proposals() {
    let Some(w) = world().await else { return };
    let r = w.http.post(format!("{}/chat", w.book_e)).json(&json!({"text": "/help"})).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = w
        .http
        .post(format!("{}/chat", w.book_e))
        .bearer_auth("stranger-token-000000")
        .json(&json!({"text": "/help"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r =
        w.http.post(format!("{}/chat", w.book_e)).bearer_auth(OLA).json(&json!({"txt": "typo"})).send().await.unwrap();
    assert_eq!(r.status(), 400);
    let help = w.chat(OLA, "/help", None).await;
    assert!(text(&help).contains("/receipt") && text(&help).contains("/invoice"));
    let nonsense = w.chat(OLA, "approve all invoices now", None).await;
    assert!(text(&nonsense).contains("did not understand"), "{nonsense}");
    assert!(w.proposals().await.is_empty());
    let r = w
        .http
        .post(format!("{}/documents", w.book_e))
        .bearer_auth(OLA)
        .body("just text".to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.json::<Value>().await.unwrap()["error"].as_str().unwrap().contains("not PDF, JPEG, PNG or HEIC"));

    // The database agrees: Book-E's role cannot approve, whatever Book-E does.
    let book_e = Store::connect(&w.db.role_url("book_e")).await.unwrap();
    let approve = NewEvent::new("ReceiptAttachmentApproved", "book-e", "APPROVED", "x");
    assert!(book_e.append(Append::one(approve)).await.is_err());
    book_e.close().await;
}

/// The labelled set's documents and what each says (core/reader/testdata/set).
fn labelled(id: &str) -> (Vec<u8>, Value) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../core/reader/testdata/set");
    let labels: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("labels.json")).unwrap()).unwrap();
    let doc = labels["documents"].as_array().unwrap().iter().find(|d| d["id"] == id).unwrap().clone();
    (std::fs::read(dir.join(doc["pdf"].as_str().unwrap())).unwrap(), doc["expected"].clone())
}

fn reader_installed() -> bool {
    let reader = bookkeeper_reader::Reader::detect().with_budget(None);
    let ok = reader.has_pdf() && reader.has_ocr();
    assert!(
        ok || std::env::var_os("BOOKKEEPER_REQUIRE_OCR").is_none(),
        "BOOKKEEPER_REQUIRE_OCR: {}",
        reader.describe()
    );
    ok
}

#[tokio::test]
async fn a_receipt_sent_alone_is_read_and_proposed_once_its_sender_confirms() {
    if !reader_installed() {
        return;
    }
    // The set's documents are dated up to the day it is read on: that is "today" here.
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    let Some(w) = world_with(true, bookkeeper_core::Clock::on(today)).await else { return };
    let (pdf, expected) = labelled("receipt-03");
    let total = expected["total_minor"].as_i64().unwrap();
    let date: chrono::NaiveDate = expected["date"].as_str().unwrap().parse().unwrap();
    let paid = date.and_hms_opt(12, 0, 0).unwrap().and_utc();
    let bank = w.folio.add_event(SANDBOX_ACCOUNT, paid, -total, "COOP EXTRA SAGENE");
    let sha = w.upload(&pdf).await;

    let answer = w.chat(OLA, "", Some(&sha)).await;
    let said = text(&answer);
    assert!(said.contains("I read this receipt"), "{answer}");
    assert!(said.contains("It matches the bank transaction"), "{answer}");
    let confirm = answer["choices"][0]["command"].as_str().unwrap().to_string();
    let id = confirm.strip_prefix("/confirm ").unwrap().to_string();
    assert!(w.proposals().await.is_empty(), "nothing is proposed before the sender confirms");
    let story = w.db.store.read_correlation(&id).await.unwrap();
    assert_eq!(story.len(), 1);
    assert_eq!(story[0].event_type, "ReceiptAttachmentRead");
    assert_eq!(story[0].payload["read"]["total_minor"]["value"], json!(total));

    // Someone else may not confirm it, and has nothing of their own waiting.
    assert!(text(&w.chat(KARI, &confirm, None).await).contains("Only the person who sent"));
    assert!(text(&w.chat(KARI, "yes", None).await).contains("nothing of yours waiting"));
    assert!(w.proposals().await.is_empty());

    // The sender's plain yes proposes it.
    let again = w.chat(OLA, "yes", None).await;
    assert_eq!(again["correlation_id"], json!(id), "{again}");
    let proposals = w.proposals().await;
    assert_eq!(proposals.len(), 1);
    let p = &proposals[0].payload;
    assert_eq!(p["target"]["event_id"], json!(bank.to_string()));
    assert_eq!(p["amount"]["minor"], json!(total));
    assert_eq!(p["vendor"]["organization_number"], expected["organization_number"]);
    assert_eq!(p["reading"]["confirmed_by"], json!("user:ola"));
    assert_eq!(p["reading"]["read_event_id"], json!(story[0].event_id.to_string()));
    assert!(p["reading"]["reader"].as_str().unwrap().starts_with("bookkeeper-reader "));
    assert!(p["reading"].get("corrected").is_none());

    // A second yes proposes nothing more.
    assert!(text(&w.chat(OLA, &confirm, None).await).contains("proposed already"));
    assert!(text(&w.chat(OLA, "yes", None).await).contains("nothing of yours waiting"));
    assert_eq!(w.proposals().await.len(), 1);
}

#[tokio::test]
async fn an_invoice_sent_alone_is_read_and_its_corrections_recorded() {
    if !reader_installed() {
        return;
    }
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    let Some(w) = world_with(true, bookkeeper_core::Clock::on(today)).await else { return };
    let (pdf, expected) = labelled("invoice-01");
    let sha = w.upload(&pdf).await;
    let answer = w.chat(KARI, "/invoice", Some(&sha)).await;
    assert!(text(&answer).contains("I read this invoice"), "{answer}");
    let id = answer["choices"][0]["command"].as_str().unwrap().strip_prefix("/confirm ").unwrap().to_string();
    // A correction that fails its check is refused before anything is proposed.
    assert!(
        text(&w.chat(KARI, &format!("/confirm {id} org=974760674"), None).await).contains("not an organisation number")
    );
    assert!(w.proposals().await.is_empty());
    let done = w.chat(KARI, &format!("/confirm {id} account=6540 description=\"Office supplies\""), None).await;
    assert_eq!(done["correlation_id"], json!(id), "{done}");
    let proposals = w.proposals().await;
    let p = &proposals[0].payload;
    assert_eq!(p["invoice_number"], expected["invoice_number"]);
    assert_eq!(p["amount"]["minor"], expected["total_minor"]);
    assert_eq!(p["due_date"], expected["due_date"]);
    assert_eq!(p["invoice_date"], expected["date"]);
    assert_eq!(p["vendor"]["name"], expected["vendor"]);
    assert_eq!(p["account"], json!("6540"));
    assert_eq!(p["reading"]["corrected"], json!({"account": "6540", "description": "Office supplies"}));
    assert_eq!(p["reading"]["read"]["kid"]["value"], expected["kid"]);
}

#[tokio::test]
async fn a_plain_yes_confirms_the_senders_newest_reading_across_a_restart() {
    if !reader_installed() {
        return;
    }
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    let Some(w) = world_with(true, bookkeeper_core::Clock::on(today)).await else { return };
    let mut read = Vec::new();
    for (who, id) in [(OLA, "invoice-01"), (OLA, "invoice-02"), (KARI, "invoice-03")] {
        let sha = w.upload(&labelled(id).0).await;
        let answer = w.chat(who, "/invoice", Some(&sha)).await;
        assert!(text(&answer).contains("I read this invoice"), "{id}: {answer}");
        read.push(answer["choices"][0]["command"].as_str().unwrap().strip_prefix("/confirm ").unwrap().to_string());
    }
    let [ola_older, ola_newer, kari] = [read[0].clone(), read[1].clone(), read[2].clone()];

    // Kari's yes is Kari's reading, not Ola's newer ones.
    assert_eq!(w.chat(KARI, "yes", None).await["correlation_id"], json!(kari));
    // What Book-E keeps of who waits is saved beside the log, in Book-E's own row.
    let as_book_e = Store::connect(&w.db.role_url("book_e")).await.unwrap();
    let (_, saved) = as_book_e.load_read_model("book-e.waiting-readings").await.unwrap().expect("saved");
    let mut ola: Vec<&str> = saved["by_sender"]["user:ola"]
        .as_object()
        .expect("Ola waits")
        .values()
        .filter_map(|r| r["correlation_id"].as_str())
        .collect();
    ola.sort_unstable();
    let mut expected = [ola_older.as_str(), ola_newer.as_str()];
    expected.sort_unstable();
    assert_eq!(ola, expected, "{saved}");
    as_book_e.close().await;

    // After a restart, Ola's yes proposes the newest of Ola's readings, then the older.
    let restarted = w.restarted_book_e().await;
    assert_eq!(w.chat_at(&restarted, OLA, "yes", None).await["correlation_id"], json!(ola_newer));
    // The first Book-E sees the proposal the restarted one made.
    assert_eq!(w.chat(OLA, "yes", None).await["correlation_id"], json!(ola_older));
    for book_e in [&w.book_e, &restarted] {
        for who in [OLA, KARI] {
            assert!(text(&w.chat_at(book_e, who, "yes", None).await).contains("nothing of yours waiting"));
        }
    }
    assert_eq!(w.proposals().await.len(), 3);
}

#[tokio::test]
async fn a_plain_yes_never_confirms_an_older_reading_while_the_newest_is_held_back() {
    use sqlx::Connection;
    if !reader_installed() {
        return;
    }
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    let Some(w) = world_with(true, bookkeeper_core::Clock::on(today)).await else { return };
    let read = |id: &'static str| {
        let w = &w;
        async move {
            let sha = w.upload(&labelled(id).0).await;
            let answer = w.chat(OLA, "/invoice", Some(&sha)).await;
            answer["choices"][0]["command"].as_str().unwrap().strip_prefix("/confirm ").unwrap().to_string()
        }
    };
    let _older = read("invoice-01").await;
    // Another appender's transaction stays open: what commits after it is held
    // back from readers until it ends, Ola's newer reading among it.
    let mut slow = sqlx::PgConnection::connect(&w.db.url).await.unwrap();
    sqlx::raw_sql(
        "BEGIN; INSERT INTO events (event_id, type, actor, status, correlation_id)
         VALUES (gen_random_uuid(), 'ComplianceCheckCompleted', 'cron', 'COMPLETED', 'a-slow-appender')",
    )
    .execute(&mut slow)
    .await
    .unwrap();
    let newer = read("invoice-02").await;
    let busy = w.chat(OLA, "yes", None).await;
    assert!(text(&busy).contains("cannot be sure which reading is your newest"), "{busy}");
    assert!(w.proposals().await.is_empty(), "nothing proposed, least of all the older reading");
    sqlx::raw_sql("COMMIT").execute(&mut slow).await.unwrap();
    assert_eq!(w.chat(OLA, "yes", None).await["correlation_id"], json!(newer));
}
