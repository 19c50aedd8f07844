//! The Discord door without the internet: serenity's real HTTP client pointed at
//! a local fake of Discord's REST API, gateway events built from JSON fixtures
//! shaped like Discord's, a real log on PostgreSQL, a real Accounting API over the
//! fake Folio, and a real Review-E for the buttons. The assertions are on the
//! requests Book-E makes to Discord.

// Amounts are written kroner_øre: 499_00 is 499,00 kr.
#![allow(clippy::inconsistent_digit_grouping)]

use std::time::{Duration, Instant};

use accounting_api::folio::fake::SANDBOX_ACCOUNT;
use accounting_api::AccountingApi;
use book_e::accounting::AccountingReads;
use book_e::conversation::{Conversation, ConversationConfig};
use book_e::discord::fake::FakeDiscord;
use book_e::discord::{follows, DiscordConfig, DiscordDoor, SUBSCRIPTION};
use bookkeeper_contracts::generated::{router, Seen};
use bookkeeper_contracts::{Fullness, Vendor};
use bookkeeper_core::people::{Directory, Door, Person, Right};
use bookkeeper_core::testing::TestDb;
use bookkeeper_core::{Append, NewEvent, Store, Subscription, SubscriptionOptions, TypeFilter};
use serde_json::{json, Value};
use serenity::all::{Interaction, Message};

const GUILD: u64 = 500;
const OTHER_GUILD: u64 = 501;
const FINANCE: u64 = 600;
const REVIEWERS: u64 = 601;
const REVIEWER_ROLE: u64 = 700;
const APP: u64 = 800;
const OLA: u64 = 1001; // a team member
const KARI: u64 = 1002; // a reviewer
const PER: u64 = 1003; // a member without the reviewer role
const KARI_REVIEW_TOKEN: &str = "kari-review-token-0123456789";
const OLA_REVIEW_TOKEN: &str = "ola-review-token-01234567890";
const LEASE: Duration = Duration::from_millis(300);

fn message_json(id: u64, channel: &str, content: &str) -> Value {
    json!({
        "id": id.to_string(), "channel_id": channel,
        "author": {"id": "900", "username": "book-e", "discriminator": "0", "avatar": null, "bot": true},
        "content": content, "timestamp": "2026-11-25T10:00:00.000000+00:00", "edited_timestamp": null,
        "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [], "attachments": [],
        "embeds": [], "pinned": false, "type": 0
    })
}

struct World {
    db: TestDb,
    discord: FakeDiscord,
    door: DiscordDoor,
    folio_events: Vec<uuid::Uuid>,
    _accounting: tokio::task::JoinHandle<anyhow::Result<()>>,
    _review_e: tokio::task::JoinHandle<anyhow::Result<()>>,
}

async fn world() -> Option<World> {
    world_speaking_to(None).await
}

/// The world, with Book-E speaking to `api` instead of the fake Discord (which
/// still serves the attachment files).
async fn world_speaking_to(api: Option<String>) -> Option<World> {
    world_of(api, None).await
}

/// The world with Book-E reading documents (on `today`, the labelled set's day).
/// `paid` is one more bank transaction: (when, amount paid).
async fn world_reading(today: chrono::NaiveDate, paid: (chrono::DateTime<chrono::Utc>, i64)) -> Option<World> {
    let reader = bookkeeper_reader::Reader::detect().with_budget(None);
    if !(reader.has_pdf() && reader.has_ocr()) {
        assert!(std::env::var_os("BOOKKEEPER_REQUIRE_OCR").is_none(), "{}", reader.describe());
        return None;
    }
    world_of(None, Some((std::sync::Arc::new(reader), today, paid))).await
}

/// A reader, the day it reads on, and one more bank transaction (when, amount paid).
type Reading = (std::sync::Arc<bookkeeper_reader::Reader>, chrono::NaiveDate, (chrono::DateTime<chrono::Utc>, i64));

async fn world_of(api: Option<String>, reading: Option<Reading>) -> Option<World> {
    let db = TestDb::postgres().await?;
    let discord = FakeDiscord::start().await.unwrap();
    let discord_base = api.unwrap_or_else(|| discord.base_url());

    // The Accounting API in its sandbox (fakes inside), for documents and reads.
    let accounting_config = accounting_api::Config { addr: "127.0.0.1:0".parse().unwrap(), ..Default::default() };
    let accounting =
        AccountingApi::build(accounting_config, Store::connect(&db.role_url("accounting_api")).await.unwrap())
            .await
            .unwrap();
    let folio = accounting.sandbox().folio.as_ref().unwrap();
    let mut folio_events = vec![
        folio.add_event(SANDBOX_ACCOUNT, chrono::Utc::now(), -312_50, "KIWI 505"),
        folio.add_event(SANDBOX_ACCOUNT, chrono::Utc::now(), -64_00, "NARVESEN"),
    ];
    if let Some((_, _, (when, amount))) = &reading {
        folio_events.push(folio.add_event(SANDBOX_ACCOUNT, *when, -amount, "SHOP"));
    }
    let accounting_url = format!("http://127.0.0.1:{}", accounting.port());
    let accounting_task = tokio::spawn(accounting.run_until_stopped(std::future::pending()));

    // Review-E with no policies: every proposal goes to a person.
    let review_config = review_e::Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        people: people(),
        poll_interval: Duration::from_millis(50),
        ..Default::default()
    };
    let review =
        review_e::ReviewE::build(review_config, Store::connect(&db.role_url("review_e")).await.unwrap()).await.unwrap();
    let review_url = format!("http://127.0.0.1:{}", review.port());
    let review_task = tokio::spawn(review.run_until_stopped(std::future::pending()));

    let reads = AccountingReads::new(accounting_url, None, std::time::Duration::from_secs(15)).unwrap();
    let book_e_store = Store::connect(&db.role_url("book_e")).await.unwrap();
    let conversation = match reading {
        None => Conversation::new(book_e_store, reads.clone(), ConversationConfig::default()),
        Some((reader, today, _)) => {
            let config = ConversationConfig { clock: bookkeeper_core::Clock::on(today), ..Default::default() };
            Conversation::new(book_e_store, reads.clone(), config).with_reader(Some(reader))
        }
    };
    let config = DiscordConfig {
        token: "Bot-token-that-must-never-be-printed".to_string().into(),
        application_id: APP,
        guild_id: GUILD,
        finance_channel: FINANCE,
        reviewers_channel: REVIEWERS,
        reports_channel: FINANCE,
        reviewer_role: REVIEWER_ROLE,
        reviewer_tokens: [(KARI, KARI_REVIEW_TOKEN.to_string().into()), (OLA, OLA_REVIEW_TOKEN.to_string().into())]
            .into(),
        review_e_url: review_url,
        api_base: Some(discord_base.clone()),
        watch_finance_channel: true,
        report_all_clear: false,
        public_key: None,
        asserted_press_token: None,
    };
    assert!(!format!("{config:?}").contains("never-be-printed"));
    // One directory for every service: proposals record canonical ids.
    let door = DiscordDoor::new(config, conversation, reads).with_people(std::sync::Arc::new(people()));
    Some(World { db, discord, door, folio_events, _accounting: accounting_task, _review_e: review_task })
}

/// The people directory: each person once, with their Discord id and tokens.
fn people() -> Directory {
    Directory::new(vec![
        Person::new("ola")
            .may_also(Right::Propose)
            .may_also(Right::Review)
            .with_discord(OLA.to_string())
            .with_token(Door::ReviewE, OLA_REVIEW_TOKEN),
        Person::new("kari")
            .may_also(Right::Review)
            .with_discord(KARI.to_string())
            .with_token(Door::ReviewE, KARI_REVIEW_TOKEN),
    ])
    .unwrap()
}

fn user(id: u64, name: &str, bot: bool) -> Value {
    json!({"id": id.to_string(), "username": name, "discriminator": "0", "avatar": null, "bot": bot})
}

fn member(id: u64, name: &str, roles: &[u64]) -> Value {
    json!({
        "user": user(id, name, false), "roles": roles.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        "joined_at": "2025-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false, "flags": 0
    })
}

impl World {
    /// A MESSAGE_CREATE with one attachment served by the fake CDN.
    fn dropped_receipt(&self, id: u64, author: Value, guild: u64, channel: u64, text: &str, bytes: &[u8]) -> Message {
        let name = format!("receipt-{id}.pdf");
        let url = self.discord.serve_file(&name, bytes);
        serde_json::from_value(json!({
            "id": id.to_string(), "channel_id": channel.to_string(), "guild_id": guild.to_string(),
            "author": author, "content": text, "timestamp": "2026-11-25T10:00:00.000000+00:00",
            "edited_timestamp": null, "tts": false, "mention_everyone": false, "mentions": [], "mention_roles": [],
            "attachments": [{"id": "77", "filename": name, "size": bytes.len(), "url": url, "proxy_url": url,
                             "content_type": "application/pdf"}],
            "embeds": [], "pinned": false, "type": 0
        }))
        .expect("a MESSAGE_CREATE fixture")
    }

    /// An INTERACTION_CREATE for a slash command.
    fn command(&self, id: u64, name: &str, options: Value, resolved: Value, guild: u64, who: Value) -> Interaction {
        serde_json::from_value(json!({
            "id": id.to_string(), "application_id": APP.to_string(), "type": 2, "token": format!("tok-{id}"),
            "version": 1, "guild_id": guild.to_string(), "channel_id": FINANCE.to_string(), "member": who,
            "locale": "nb", "app_permissions": "0", "entitlements": [], "attachment_size_limit": 26214400,
            "data": {"id": "42", "name": name, "type": 1, "options": options, "resolved": resolved}
        }))
        .expect("an application command fixture")
    }

    /// An INTERACTION_CREATE for a button press on a review message.
    fn press(&self, id: u64, custom_id: &str, guild: u64, who: Value, content: &str) -> Interaction {
        serde_json::from_value(json!({
            "id": id.to_string(), "application_id": APP.to_string(), "type": 3, "token": format!("tok-{id}"),
            "version": 1, "guild_id": guild.to_string(), "channel_id": REVIEWERS.to_string(), "member": who,
            "locale": "nb", "app_permissions": "0", "entitlements": [], "attachment_size_limit": 26214400,
            "message": message_json(4242, &REVIEWERS.to_string(), content),
            "data": {"custom_id": custom_id, "component_type": 2}
        }))
        .expect("a component interaction fixture")
    }

    /// A fresh notifier, as after a restart of Book-E: it takes over once the
    /// previous one's (short) lease has run out, and resumes from the checkpoint.
    async fn restarted_notifications(&self) -> Subscription<book_e::discord::Notifier> {
        tokio::time::sleep(LEASE * 2).await;
        let store = self.db.store.clone();
        let options = SubscriptionOptions { lease_ttl: LEASE, ..book_e::discord::notifier_options() };
        Subscription::new(store.clone(), SUBSCRIPTION, follows(), self.door.notifier(store)).with_options(options)
    }

    async fn proposals(&self) -> Vec<bookkeeper_core::RecordedEvent> {
        let filter = TypeFilter::of(["*Proposed"]);
        self.db
            .store
            .read_waiting(bookkeeper_core::Cursor::START, &filter, 100, std::time::Duration::from_secs(5))
            .await
            .unwrap()
            .events
    }

    async fn wait_for(&self, cid: &str, event_type: &str) {
        let started = Instant::now();
        while !self.db.store.read_correlation(cid).await.unwrap().iter().any(|e| e.event_type == event_type) {
            assert!(started.elapsed() < Duration::from_secs(30), "no {event_type} for {cid}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_dropped_in_the_finance_channel_becomes_a_proposal_and_a_reply() {
    let Some(w) = world().await else { return };
    let msg = w.dropped_receipt(3001, user(OLA, "ola", false), GUILD, FINANCE, "Kiwi 312,50", b"%PDF-1.7 kiwi");
    let answer = w.door.on_message(&msg).await.expect("an answer");
    assert!(answer.contains("Proposed: attach the receipt to"), "{answer}");

    let replies = w.discord.posts_to(FINANCE);
    assert_eq!(replies.len(), 1);
    assert!(replies[0].body["content"].as_str().unwrap().contains("KIWI 505"), "{:?}", replies[0].body);
    assert_eq!(replies[0].body["message_reference"]["message_id"], json!("3001"), "a reply to the person's message");
    let proposals = w.proposals().await;
    assert_eq!(proposals.len(), 1);
    let p = &proposals[0];
    assert_eq!(p.payload["requested_by"], json!("user:ola"), "the canonical id, not the Discord id");
    assert_eq!(p.payload["target"]["event_id"], json!(w.folio_events[0].to_string()));
    assert_eq!(p.payload["receipt"]["filename"], json!("receipt-3001.pdf"));
    assert_eq!(
        p.metadata["reply_to"],
        json!({"door": "discord", "channel_id": FINANCE.to_string(), "message_id": "3001"})
    );

    // Bots, other servers and other channels are ignored: no request, no proposal.
    let before = w.discord.calls().len();
    let from_bot = w.dropped_receipt(3002, user(999, "other-bot", true), GUILD, FINANCE, "64", b"%PDF-1.7 x");
    let elsewhere = w.dropped_receipt(3003, user(OLA, "ola", false), OTHER_GUILD, FINANCE, "64", b"%PDF-1.7 y");
    let other_channel = w.dropped_receipt(3004, user(OLA, "ola", false), GUILD, 1234, "64", b"%PDF-1.7 z");
    for msg in [from_bot, elsewhere, other_channel] {
        assert_eq!(w.door.on_message(&msg).await, None);
    }
    assert_eq!(w.discord.calls().len(), before);
    assert_eq!(w.proposals().await.len(), 1);
    w.db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receipt_dropped_alone_is_read_and_its_senders_confirm_button_proposes_it() {
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../core/reader/testdata/set");
    let labels: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("labels.json")).unwrap()).unwrap();
    let doc = labels["documents"].as_array().unwrap().iter().find(|d| d["id"] == "receipt-08").unwrap().clone();
    let total = doc["expected"]["total_minor"].as_i64().unwrap();
    let date: chrono::NaiveDate = doc["expected"]["date"].as_str().unwrap().parse().unwrap();
    let paid = (date.and_hms_opt(12, 0, 0).unwrap().and_utc(), total);
    let Some(w) = world_reading(today, paid).await else { return };
    let bank = w.folio_events[2];
    // The photo of the receipt, dropped with no words.
    let photo = std::fs::read(dir.join(doc["photo"].as_str().unwrap())).unwrap();
    let msg = w.dropped_receipt(3101, user(OLA, "ola", false), GUILD, FINANCE, "", &photo);
    let answer = w.door.on_message(&msg).await.expect("an answer");
    assert!(answer.contains("I read this receipt") && answer.contains("It matches the bank transaction"), "{answer}");
    assert!(w.proposals().await.is_empty(), "nothing proposed before the sender confirms");
    let reply = w.discord.posts_to(FINANCE).pop().expect("a reply");
    let custom_id = reply.body["components"][0]["components"][0]["custom_id"].as_str().expect("a button").to_string();
    assert!(custom_id.starts_with("bk:confirm:"), "{custom_id}");
    let id = custom_id.trim_start_matches("bk:confirm:").to_string();

    // Kari may not confirm Ola's receipt (and may not propose at all).
    let press = w.press(3102, &custom_id, GUILD, member(KARI, "kari", &[REVIEWER_ROLE]), &answer);
    w.door.on_interaction(&press).await;
    assert!(w.proposals().await.is_empty());
    // Ola's press proposes it, with what was read.
    let press = w.press(3103, &custom_id, GUILD, member(OLA, "ola", &[]), &answer);
    w.door.on_interaction(&press).await;
    let proposals = w.proposals().await;
    assert_eq!(proposals.len(), 1);
    let p = &proposals[0];
    assert_eq!(p.correlation_id, id);
    assert_eq!(p.payload["target"]["event_id"], json!(bank.to_string()));
    assert_eq!(p.payload["reading"]["read"]["total_minor"]["value"], json!(total));
    assert_eq!(p.payload["reading"]["confirmed_by"], json!("user:ola"));
    // The reading's message loses its button and says what became of it.
    let edit = w.discord.calls().into_iter().rev().find(|c| c.method == "PATCH").expect("an edit");
    assert!(edit.body["content"].as_str().unwrap().contains("Proposed: attach the receipt"), "{:?}", edit.body);
    assert_eq!(edit.body["components"], json!([]));
    w.db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_commands_are_deferred_then_answered() {
    let Some(w) = world().await else { return };
    let balance = w.command(4001, "balance", json!([]), json!({}), GUILD, member(OLA, "ola", &[]));
    w.door.on_interaction(&balance).await;
    let calls = w.discord.calls();
    assert_eq!(calls[0].path, "/api/v10/interactions/4001/tok-4001/callback");
    assert_eq!(calls[0].body["type"], json!(5), "deferred first, within Discord's 3 seconds");
    assert_eq!(
        (calls[1].method.as_str(), calls[1].path.as_str()),
        ("PATCH", "/api/v10/webhooks/800/tok-4001/messages/@original")
    );
    assert!(calls[1].body["content"].as_str().unwrap().contains("Bank balance"), "{:?}", calls[1].body);

    // /receipt with the file as an option: downloaded, stored, proposed.
    let url = w.discord.serve_file("narvesen.pdf", b"%PDF-1.7 narvesen");
    let receipt = w.command(
        4002,
        "receipt",
        json!([{"name": "file", "type": 11, "value": "88"}, {"name": "amount", "type": 3, "value": "64"}]),
        json!({"attachments": {"88": {"id": "88", "filename": "narvesen.pdf", "size": 17, "url": url, "proxy_url": url}}}),
        GUILD,
        member(OLA, "ola", &[]),
    );
    w.door.on_interaction(&receipt).await;
    let last = w.discord.calls().last().cloned().unwrap();
    assert!(last.body["content"].as_str().unwrap().contains("Proposed: attach the receipt to"), "{:?}", last.body);
    let proposals = w.proposals().await;
    assert_eq!(proposals[0].payload["target"]["event_id"], json!(w.folio_events[1].to_string()));

    // Another server: refused at once, nothing proposed.
    let elsewhere = w.command(4003, "balance", json!([]), json!({}), OTHER_GUILD, member(OLA, "ola", &[]));
    w.door.on_interaction(&elsewhere).await;
    let last = w.discord.calls().last().cloned().unwrap();
    assert_eq!((last.body["type"].clone(), last.body["data"]["flags"].clone()), (json!(4), json!(64)));

    // The commands registered in the guild.
    w.door.register_commands().await.unwrap();
    let put = w.discord.calls().last().cloned().unwrap();
    assert_eq!((put.method.as_str(), put.path.as_str()), ("PUT", "/api/v10/applications/800/guilds/500/commands"));
    let names: Vec<&str> = put.body.as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["receipt", "invoice", "balance", "pending", "status", "help"]);
    w.db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn escalations_outcomes_and_buttons() {
    let Some(w) = world().await else { return };
    let msg = w.dropped_receipt(5001, user(OLA, "ola", false), GUILD, FINANCE, "Kiwi 312,50", b"%PDF-1.7 kiwi 2");
    w.door.on_message(&msg).await.unwrap();
    let cid = w.proposals().await[0].correlation_id.clone();
    w.wait_for(&cid, "ReceiptAttachmentEscalated").await;

    // The escalation goes to the reviewers with buttons, and the proposer hears of it;
    // one Discord failure on the way is retried, not lost.
    w.discord.fail_next_posts(1);
    let mut notifications = w.restarted_notifications().await;
    assert!(notifications.drain().await.is_err(), "the failed post fails the handler");
    notifications.drain().await.unwrap();
    drop(notifications);
    let review = w.discord.posts_to(REVIEWERS);
    assert_eq!(review.len(), 1);
    let content = review[0].body["content"].as_str().unwrap().to_string();
    assert!(content.contains("Needs a reviewer") && content.contains(&cid), "{content}");
    let buttons = &review[0].body["components"][0]["components"];
    assert_eq!(buttons[0]["custom_id"], json!(format!("bk:approve:{cid}")));
    assert_eq!(buttons[1]["custom_id"], json!(format!("bk:reject:{cid}")));
    assert_eq!(review[0].body["enforce_nonce"], json!(true));
    let to_ola = w.discord.posts_to(FINANCE);
    assert!(to_ola.last().unwrap().body["content"].as_str().unwrap().contains("Sent to a reviewer"));

    // Not a reviewer: refused, nothing decided.
    let per = w.press(6001, &format!("bk:approve:{cid}"), GUILD, member(PER, "per", &[]), &content);
    w.door.on_interaction(&per).await;
    let last = w.discord.calls().last().cloned().unwrap();
    assert_eq!((last.body["type"].clone(), last.body["data"]["flags"].clone()), (json!(4), json!(64)));
    // The reviewer role, but in another server: refused.
    let stranger =
        w.press(6002, &format!("bk:approve:{cid}"), OTHER_GUILD, member(KARI, "kari", &[REVIEWER_ROLE]), &content);
    w.door.on_interaction(&stranger).await;
    // The proposer pressing Approve on their own proposal: Review-E refuses.
    let own = w.press(6003, &format!("bk:approve:{cid}"), GUILD, member(OLA, "ola", &[REVIEWER_ROLE]), &content);
    w.door.on_interaction(&own).await;
    let last = w.discord.calls().last().cloned().unwrap();
    assert!(last.body["content"].as_str().unwrap().contains("proposed this yourself"), "{:?}", last.body);
    let story = w.db.store.read_correlation(&cid).await.unwrap();
    assert!(!story.iter().any(|e| bookkeeper_core::lifecycle::stage(&e.event_type) == Some(bookkeeper_core::domain::Stage::Approved)), "nothing decided yet");

    // Kari approves: acknowledged, decided as kari, the message updated without buttons.
    let kari = w.press(6004, &format!("bk:approve:{cid}"), GUILD, member(KARI, "kari", &[REVIEWER_ROLE]), &content);
    w.door.on_interaction(&kari).await;
    let calls = w.discord.calls();
    let n = calls.len();
    assert_eq!(
        (calls[n - 2].path.as_str(), calls[n - 2].body["type"].clone()),
        ("/api/v10/interactions/6004/tok-6004/callback", json!(6))
    );
    assert_eq!(calls[n - 1].path, "/api/v10/webhooks/800/tok-6004/messages/@original");
    assert!(calls[n - 1].body["content"].as_str().unwrap().contains(&format!("Approved by <@{KARI}>")));
    assert_eq!(calls[n - 1].body["components"], json!([]));
    let story = w.db.store.read_correlation(&cid).await.unwrap();
    let approved = story.iter().find(|e| e.event_type == "ReceiptAttachmentApproved").unwrap();
    assert_eq!(approved.actor, "user:kari");
    // A second Approve says who decided already. (Reject would still be allowed
    // until execution starts: that is the emergency stop.)
    let again = w.press(6005, &format!("bk:approve:{cid}"), GUILD, member(KARI, "kari", &[REVIEWER_ROLE]), &content);
    w.door.on_interaction(&again).await;
    let last = w.discord.calls().last().cloned().unwrap();
    // Said as "approved already", or, once the Accounting API has claimed or done
    // it (the sandbox executes at once), as too late to change.
    let said = last.body["content"].as_str().unwrap();
    let refused = ["already approved by user:kari", "being executed now", "already executed"];
    assert!(said.starts_with("Not done:") && refused.iter().any(|r| said.contains(r)), "{said}");

    // The Accounting API (sandbox) carries it out; the decision and the execution
    // each produce exactly one message, across a restart.
    w.wait_for(&cid, "ReceiptAttachmentExecuted").await;
    let story = w.db.store.read_correlation(&cid).await.unwrap();
    let executed = story.iter().find(|e| e.event_type == "ReceiptAttachmentExecuted").unwrap();
    let attachment = executed.payload["remote_ids"]["folio_attachment_id"].as_str().unwrap().to_string();
    let before = w.discord.posts_to(FINANCE).len();
    w.restarted_notifications().await.drain().await.unwrap();
    w.restarted_notifications().await.drain().await.unwrap();
    let to_ola = w.discord.posts_to(FINANCE);
    let new: Vec<&str> = to_ola[before..].iter().map(|c| c.body["content"].as_str().unwrap()).collect();
    assert_eq!(
        new,
        [
            "Your receipt: Approved by user:kari: approved on Discord".to_string(),
            format!("Your receipt: Done: Folio attachment {attachment}")
        ]
    );
    for post in &to_ola[before..] {
        assert_eq!(post.body["message_reference"]["message_id"], json!("5001"));
        assert!(post.body["nonce"].as_str().is_some_and(|n| n.len() <= 25));
    }

    // A compliance summary goes to the reports channel when something needs attention.
    let check = NewEvent::new("ComplianceCheckCompleted", "cron", "COMPLETED", "check-1").with_payload(json!({
        "findings": [{"check": "missing_receipts", "count": 2, "ids": ["a", "b"]}, {"check": "failed_executions", "count": 0}]
    }));
    w.db.store.append(Append::one(check)).await.unwrap();
    w.restarted_notifications().await.drain().await.unwrap();
    let summary = w.discord.posts_to(FINANCE).last().cloned().unwrap();
    assert!(summary.body["content"].as_str().unwrap().contains("missing_receipts: 2"), "{:?}", summary.body);
    w.db.cleanup().await;
}

/// A message Discord will never accept (its channel was deleted) is parked after
/// a few tries, and the notifications after it go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_discord_refuses_for_good_is_parked_and_the_rest_go_on() {
    let Some(w) = world().await else { return };
    w.discord.refuse_channel(Some(REVIEWERS));
    let msg = w.dropped_receipt(7001, user(OLA, "ola", false), GUILD, FINANCE, "Kiwi 312,50", b"%PDF-1.7 kiwi 7");
    w.door.on_message(&msg).await.unwrap();
    let cid = w.proposals().await[0].correlation_id.clone();
    w.wait_for(&cid, "ReceiptAttachmentEscalated").await;
    let mut notifications = w.restarted_notifications().await;
    let mut failures = 0;
    while notifications.drain().await.is_err() {
        failures += 1;
        assert!(failures < 10, "never parked");
    }
    assert_eq!(failures, 2, "parked on the third permanent failure");
    drop(notifications);
    let story = w.db.store.read_correlation(&cid).await.unwrap();
    let parked = story.iter().find(|e| e.event_type == "SubscriptionEventParked").expect("a park record");
    assert_eq!((parked.actor.as_str(), parked.payload["subscription"].clone()), ("book-e", json!(SUBSCRIPTION)));
    assert!(parked.payload["reason"].as_str().unwrap().contains("Discord refused"), "{parked:?}");

    // The next event is told as usual.
    w.discord.refuse_channel(None);
    let check = NewEvent::new("ComplianceCheckCompleted", "cron", "COMPLETED", "check-7").with_payload(json!({
        "findings": [{"check": "missing_receipts", "count": 1, "ids": ["a"]}]
    }));
    w.db.store.append(Append::one(check)).await.unwrap();
    w.restarted_notifications().await.drain().await.unwrap();
    let summary = w.discord.posts_to(FINANCE).last().cloned().unwrap();
    assert!(summary.body["content"].as_str().unwrap().contains("missing_receipts: 1"), "{:?}", summary.body);
    w.db.cleanup().await;
}

/// The person deleted their message before the outcome came: the reply still
/// arrives (as a plain message), where Discord's default would refuse it on
/// every retry and the notification would be set aside.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_to_a_message_deleted_meanwhile_still_arrives() {
    let Some(w) = world().await else { return };
    let msg = w.dropped_receipt(7101, user(OLA, "ola", false), GUILD, FINANCE, "Kiwi 312,50", b"%PDF-1.7 kiwi 71");
    w.door.on_message(&msg).await.unwrap();
    let first = w.discord.posts_to(FINANCE);
    assert_eq!(first[0].body["message_reference"]["fail_if_not_exists"], json!(false));
    let cid = w.proposals().await[0].correlation_id.clone();
    w.wait_for(&cid, "ReceiptAttachmentEscalated").await;
    w.discord.delete_message(7101);
    w.restarted_notifications().await.drain().await.expect("delivered, not refused");
    let told = w.discord.posts_to(FINANCE);
    let last = told.last().unwrap();
    assert!(last.body["content"].as_str().unwrap().contains("Sent to a reviewer"), "{:?}", last.body);
    assert_eq!(last.body["message_reference"]["message_id"], json!("7101"));
    let story = w.db.store.read_correlation(&cid).await.unwrap();
    assert!(!story.iter().any(|e| e.event_type == "SubscriptionEventParked"), "nothing set aside");
    w.db.cleanup().await;
}

/// Whatever a proposal carries, what Book-E posts fits Discord's limits: long
/// text is cut with a pointer to the whole story, and an id too long for a
/// button's `custom_id` gets no buttons (and says how to decide instead).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_texts_and_long_ids_stay_within_discords_limits() {
    let Some(w) = world().await else { return };
    let msg = w.dropped_receipt(7201, user(OLA, "ola", false), GUILD, FINANCE, "Kiwi 312,50", b"%PDF-1.7 kiwi 72");
    w.door.on_message(&msg).await.unwrap();
    let model = w.proposals().await[0].clone();
    let long_id = format!("import-{}", "x".repeat(150));
    let mut payload = model.payload.clone();
    payload["vendor"] = json!({"name": format!("Leverandør {}", "langt navn ".repeat(300))});
    let proposal = NewEvent::new("ReceiptAttachmentProposed", "book-e", "PROPOSED", &long_id)
        .with_payload(payload)
        .with_metadata(model.metadata.clone());
    w.db.store.append(Append::one(proposal)).await.unwrap();
    w.wait_for(&long_id, "ReceiptAttachmentEscalated").await;
    w.restarted_notifications().await.drain().await.unwrap();

    let review = w.discord.posts_to(REVIEWERS);
    let posted = review.iter().find(|c| c.body["content"].as_str().unwrap_or_default().contains("import-x")).unwrap();
    let content = posted.body["content"].as_str().unwrap();
    assert!(content.chars().count() <= 2000, "{} characters", content.chars().count());
    assert!(content.contains("too long for Discord's buttons"), "{content}");
    assert!(posted.body["components"].as_array().is_none_or(|c| c.is_empty()), "no buttons: {:?}", posted.body);
    for post in w.discord.posts_to(FINANCE) {
        let text = post.body["content"].as_str().unwrap();
        assert!(text.chars().count() <= 2000, "{} characters", text.chars().count());
    }
    w.db.cleanup().await;
}

/// Book-E against a server made of nothing but Discord's published document,
/// answering every call with a body generated from it (maximal, then minimal):
/// every flow still completes, and every request is one the document defines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn book_e_works_against_whatever_discords_document_allows() {
    for fullness in [Fullness::Maximal, Fullness::Minimal] {
        let seen = Seen::default();
        let app = router(Vendor::Discord, fullness, seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let Some(w) = world_speaking_to(Some(base)).await else { return };

        w.door.register_commands().await.unwrap_or_else(|e| panic!("{fullness:?} commands: {e}"));
        let msg = w.dropped_receipt(8001, user(OLA, "ola", false), GUILD, FINANCE, "Kiwi 312,50", b"%PDF-1.7 kiwi 8");
        w.door.on_message(&msg).await.expect("an answer");
        let balance = w.command(8002, "balance", json!([]), json!({}), GUILD, member(OLA, "ola", &[]));
        w.door.on_interaction(&balance).await;
        let cid = w.proposals().await[0].correlation_id.clone();
        w.wait_for(&cid, "ReceiptAttachmentEscalated").await;
        w.restarted_notifications().await.drain().await.unwrap_or_else(|e| panic!("{fullness:?} notifications: {e}"));
        // Per is not a reviewer: an ephemeral refusal. Kari decides: acknowledged, then the message edited.
        let per = w.press(8003, &format!("bk:approve:{cid}"), GUILD, member(PER, "per", &[]), "Needs a reviewer");
        w.door.on_interaction(&per).await;
        let own = w.press(8004, &format!("bk:approve:{cid}"), GUILD, member(OLA, "ola", &[REVIEWER_ROLE]), "x");
        w.door.on_interaction(&own).await;
        let kari = w.press(8005, &format!("bk:approve:{cid}"), GUILD, member(KARI, "kari", &[REVIEWER_ROLE]), "x");
        w.door.on_interaction(&kari).await;
        w.wait_for(&cid, "ReceiptAttachmentApproved").await;

        assert_eq!(seen.violations(), Vec::<String>::new(), "{fullness:?}");
        let called: std::collections::BTreeSet<String> = seen.calls().into_iter().collect();
        let expected: std::collections::BTreeSet<String> = [
            "PUT /applications/{application_id}/guilds/{guild_id}/commands",
            "POST /channels/{channel_id}/messages",
            "POST /interactions/{interaction_id}/{interaction_token}/callback",
            "PATCH /webhooks/{webhook_id}/{webhook_token}/messages/@original",
            "POST /webhooks/{webhook_id}/{webhook_token}",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(called, expected, "{fullness:?}");
        w.db.cleanup().await;
    }
}
