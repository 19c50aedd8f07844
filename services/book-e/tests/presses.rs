//! Review presses Book-E cannot forge: Discord signs every interaction with the
//! application's Ed25519 key (here a test key held by the fake Discord); Book-E
//! serves the interactions endpoint over HTTP and forwards presses verbatim; a
//! real Review-E verifies again and decides as the canonical reviewer from the
//! people directory. Forged, altered, stale, replayed and misplaced presses are
//! refused, and so is self-approval, also of a proposal recorded under a Discord
//! id before the directory existed.

// Amounts are written kroner_øre: 499_00 is 499,00 kr.
#![allow(clippy::inconsistent_digit_grouping)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use accounting_api::AccountingApi;
use book_e::accounting::AccountingReads;
use book_e::conversation::{Conversation, ConversationConfig};
use book_e::discord::fake::FakeDiscord;
use book_e::discord::{DiscordConfig, DiscordDoor};
use bookkeeper_core::people::{Directory, Door, Person, Right};
use bookkeeper_core::testing::TestDb;
use bookkeeper_core::{Append, NewEvent, RecordedEvent, Store};
use ed25519_dalek::{Signer, SigningKey};
use serde_json::{json, Value};

const GUILD: u64 = 500;
const FINANCE: u64 = 600;
const REVIEWERS: u64 = 601;
const REVIEWER_ROLE: u64 = 700;
const APP: u64 = 800;
const OLA: u64 = 1001; // proposes; also a reviewer
const KARI: u64 = 1002; // a reviewer
const PER: u64 = 1003; // has the Discord role, but not the review right
const OLA_REVIEW_TOKEN: &str = "ola-review-token-01234567890";
const PRESS_TOKEN: &str = "book-e-asserts-presses-0123456789";

struct World {
    db: TestDb,
    discord: FakeDiscord,
    key: SigningKey,
    book_e: String,
    review_e: String,
    door: DiscordDoor,
    http: reqwest::Client,
}

fn people() -> Directory {
    Directory::new(vec![
        Person::new("ola")
            .may_also(Right::Propose)
            .may_also(Right::Review)
            .with_discord(OLA.to_string())
            .with_token(Door::ReviewE, OLA_REVIEW_TOKEN),
        Person::new("kari").may_also(Right::Review).with_discord(KARI.to_string()),
        Person::new("per").may_also(Right::Propose).with_discord(PER.to_string()),
    ])
    .unwrap()
}

async fn world(asserted_presses: bool) -> Option<World> {
    let db = TestDb::postgres().await?;
    let key = SigningKey::from_bytes(&[7u8; 32]);
    let public_hex: String = key.verifying_key().to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let fake = FakeDiscord::start().await.unwrap();
    let discord_base = fake.base_url();

    let accounting = AccountingApi::build(
        accounting_api::Config { addr: "127.0.0.1:0".parse().unwrap(), ..Default::default() },
        Store::connect(&db.role_url("accounting_api")).await.unwrap(),
    )
    .await
    .unwrap();
    let accounting_url = format!("http://127.0.0.1:{}", accounting.port());
    tokio::spawn(accounting.run_until_stopped(std::future::pending()));

    // Review-E with no policies (everything goes to a person), checking presses.
    let review_config = review_e::Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        people: people(),
        presses: Some(review_e::press::PressConfig {
            public_key: review_e::press::public_key(&public_hex).unwrap(),
            guild_id: GUILD.to_string(),
            reviewer_role: REVIEWER_ROLE.to_string(),
            application_id: Some(APP.to_string()),
            window: Duration::from_secs(300),
        }),
        asserted_press_token: asserted_presses.then(|| PRESS_TOKEN.to_string().into()),
        poll_interval: Duration::from_millis(50),
        ..Default::default()
    };
    let review =
        review_e::ReviewE::build(review_config, Store::connect(&db.role_url("review_e")).await.unwrap()).await.unwrap();
    let review_e = format!("http://127.0.0.1:{}", review.port());
    tokio::spawn(review.run_until_stopped(std::future::pending()));

    // Book-E holds no reviewer's credential: only the public key, and (for the
    // gateway) the token that lets it assert a press.
    let reads = AccountingReads::new(accounting_url, None, std::time::Duration::from_secs(15)).unwrap();
    let store = Store::connect(&db.role_url("book_e")).await.unwrap();
    let conversation = Conversation::new(store.clone(), reads.clone(), ConversationConfig::default());
    let config = DiscordConfig {
        token: "Bot-token".to_string().into(),
        application_id: APP,
        guild_id: GUILD,
        finance_channel: FINANCE,
        reviewers_channel: REVIEWERS,
        reports_channel: FINANCE,
        reviewer_role: REVIEWER_ROLE,
        reviewer_tokens: Default::default(),
        review_e_url: review_e.clone(),
        api_base: Some(discord_base),
        watch_finance_channel: true,
        report_all_clear: false,
        public_key: Some(public_hex),
        asserted_press_token: Some(PRESS_TOKEN.to_string().into()),
    };
    let people = Arc::new(people());
    let door = DiscordDoor::new(config, conversation.clone(), reads.clone()).with_people(people.clone());
    let state = book_e::http::AppState { conversation, store, accounting: reads, people, discord: Some(door.clone()) };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let book_e = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, book_e::http::router(state)).await });
    Some(World { db, discord: fake, key, book_e, review_e, door, http: reqwest::Client::new() })
}

fn member(id: u64, roles: &[u64]) -> Value {
    json!({
        "user": {"id": id.to_string(), "username": format!("u{id}"), "discriminator": "0", "avatar": null},
        "roles": roles.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
        "joined_at": "2025-01-01T00:00:00.000000+00:00", "deaf": false, "mute": false, "flags": 0
    })
}

/// A review message as Book-E posts it: naming the proposal, with its buttons.
fn review_message(cid: &str, names: &str) -> Value {
    json!({
        "id": "4242", "channel_id": REVIEWERS.to_string(),
        "author": {"id": APP.to_string(), "username": "book-e", "discriminator": "0", "avatar": null, "bot": true},
        "content": format!("**Needs a reviewer:** a receipt (id `{names}`)"),
        "timestamp": "2026-11-25T10:00:00.000000+00:00", "edited_timestamp": null, "tts": false,
        "mention_everyone": false, "mentions": [], "mention_roles": [], "attachments": [], "embeds": [],
        "pinned": false, "type": 0,
        "components": [{"type": 1, "components": [
            {"type": 2, "style": 3, "label": "Approve", "custom_id": format!("bk:approve:{cid}")},
            {"type": 2, "style": 4, "label": "Reject", "custom_id": format!("bk:reject:{cid}")}
        ]}]
    })
}

fn press(id: u64, verb: &str, cid: &str, who: Value, message: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "id": id.to_string(), "application_id": APP.to_string(), "type": 3, "token": format!("tok-{id}"),
        "version": 1, "guild_id": GUILD.to_string(), "channel_id": REVIEWERS.to_string(), "member": who,
        "locale": "nb", "app_permissions": "0", "entitlements": [], "attachment_size_limit": 26214400,
        "message": message, "data": {"custom_id": format!("bk:{verb}:{cid}"), "component_type": 2}
    }))
    .unwrap()
}

impl World {
    fn sign(&self, timestamp: &str, body: &[u8]) -> String {
        let signature = self.key.sign(&[timestamp.as_bytes(), body].concat());
        signature.to_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    async fn post(&self, url: &str, signature: &str, timestamp: &str, body: Vec<u8>) -> (u16, Value) {
        let r = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("x-signature-ed25519", signature)
            .header("x-signature-timestamp", timestamp)
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or_default())
    }

    /// Discord delivering an interaction to Book-E's endpoint, signed now.
    async fn deliver(&self, body: Vec<u8>) -> (u16, Value) {
        let now = chrono::Utc::now().timestamp().to_string();
        let signature = self.sign(&now, &body);
        self.post(&format!("{}/discord/interactions", self.book_e), &signature, &now, body).await
    }

    async fn story(&self, cid: &str) -> Vec<RecordedEvent> {
        self.db.store.read_correlation(cid).await.unwrap()
    }

    async fn decisions(&self, cid: &str) -> Vec<RecordedEvent> {
        self.story(cid)
            .await
            .into_iter()
            .filter(|e| e.event_type.contains("Approved") || e.event_type.contains("Rejected"))
            .collect()
    }

    /// A receipt Ola asks for on Discord; Review-E (no policies) escalates it.
    async fn escalated_receipt(&self, id: u64) -> String {
        let cid = format!("receipt-{id}-{}", uuid::Uuid::new_v4());
        let proposal = NewEvent::new("ReceiptAttachmentProposed", "book-e", "PROPOSED", &cid).with_payload(json!({
            "requested_by": "user:ola",
            "receipt": {"sha256": "ab".repeat(32), "filename": "r.pdf", "content_type": "application/pdf"},
            "target": {"kind": "folio_event", "event_id": uuid::Uuid::new_v4()},
            "amount": {"minor": 64_00, "currency": "NOK"}
        }));
        Store::connect(&self.db.role_url("book_e")).await.unwrap().append(Append::one(proposal)).await.unwrap();
        self.wait_for(&cid, "ReceiptAttachmentEscalated").await;
        cid
    }

    async fn wait_for(&self, cid: &str, event_type: &str) {
        let started = Instant::now();
        while !self.story(cid).await.iter().any(|e| e.event_type == event_type) {
            assert!(started.elapsed() < Duration::from_secs(30), "no {event_type} for {cid}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn ephemeral_text(body: &Value) -> String {
    assert_eq!((body["type"].clone(), body["data"]["flags"].clone()), (json!(4), json!(64)), "{body}");
    body["data"]["content"].as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_genuine_fresh_unused_press_by_a_reviewer_decides() {
    let Some(w) = world(false).await else { return };
    let endpoint = format!("{}/discord/interactions", w.book_e);

    // Discord's checks of the endpoint: a PING, and requests with bad signatures.
    let ping = serde_json::to_vec(
        &json!({"id": "1", "application_id": APP.to_string(), "type": 1, "token": "t", "version": 1}),
    )
    .unwrap();
    assert_eq!(w.deliver(ping.clone()).await, (200, json!({"type": 1})));
    let now = chrono::Utc::now().timestamp().to_string();
    assert_eq!(w.post(&endpoint, &"0".repeat(128), &now, ping.clone()).await.0, 401);
    assert_eq!(w.post(&endpoint, "not hex", &now, ping).await.0, 401);

    let cid = w.escalated_receipt(1).await;
    let genuine = press(9001, "approve", &cid, member(KARI, &[REVIEWER_ROLE]), review_message(&cid, &cid));

    // Altered after signing (another proposal swapped in): refused by Book-E.
    let signature = w.sign(&now, &genuine);
    let other = w.escalated_receipt(2).await;
    let altered = String::from_utf8(genuine.clone()).unwrap().replace(&cid, &other).into_bytes();
    assert_eq!(w.post(&endpoint, &signature, &now, altered.clone()).await.0, 401);
    // Book-E forging a press straight to Review-E, unsigned or re-signed with its own key.
    let forger = SigningKey::from_bytes(&[9u8; 32]);
    let forged_sig: String =
        forger.sign(&[now.as_bytes(), &altered[..]].concat()).to_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(w.post(&format!("{}/discord/press", w.review_e), &forged_sig, &now, altered).await.0, 401);
    let asserted = w
        .http
        .post(format!("{}/discord/asserted-press", w.review_e))
        .bearer_auth(PRESS_TOKEN)
        .json(
            &json!({"custom_id": format!("bk:approve:{cid}"), "interaction_id": "1", "discord_user": KARI.to_string()}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(asserted.status(), 403, "asserted presses are refused where not allowed");

    // Stale: signed by Discord, but ten minutes old (a captured press played back).
    let old = (chrono::Utc::now().timestamp() - 600).to_string();
    let (status, body) = w.post(&endpoint, &w.sign(&old, &genuine), &old, genuine.clone()).await;
    assert_eq!(status, 200);
    assert!(ephemeral_text(&body).contains("too old"), "{body}");

    // The requester approving their own proposal; a member with the role but not
    // the right; a button on a message that does not name the proposal.
    let own = press(9002, "approve", &cid, member(OLA, &[REVIEWER_ROLE]), review_message(&cid, &cid));
    assert!(ephemeral_text(&w.deliver(own).await.1).contains("proposed this yourself"));
    let per = press(9003, "approve", &cid, member(PER, &[REVIEWER_ROLE]), review_message(&cid, &cid));
    assert!(ephemeral_text(&w.deliver(per).await.1).contains("review right"));
    let no_role = press(9004, "approve", &cid, member(KARI, &[]), review_message(&cid, &cid));
    assert!(ephemeral_text(&w.deliver(no_role).await.1).contains("only reviewers"));
    let misplaced = press(9005, "approve", &cid, member(KARI, &[REVIEWER_ROLE]), review_message(&cid, &other));
    assert!(ephemeral_text(&w.deliver(misplaced).await.1).contains("does not name"));
    assert!(w.decisions(&cid).await.is_empty(), "nothing decided yet");

    // Kari's genuine press decides, as the canonical reviewer, proven.
    let (status, body) = w.deliver(genuine.clone()).await;
    assert_eq!((status, body["type"].clone()), (200, json!(7)), "{body}");
    assert!(body["data"]["content"].as_str().unwrap().contains(&format!("Approved by <@{KARI}>")));
    assert_eq!(body["data"]["components"], json!([]));
    let decided = w.decisions(&cid).await;
    assert_eq!(decided.len(), 1);
    assert_eq!((decided[0].actor.as_str(), decided[0].status.as_str()), ("user:kari", "APPROVED"));
    assert_eq!(decided[0].payload["via"]["proven"], json!(true));
    assert_eq!(decided[0].payload["via"]["interaction_id"], json!("9001"));

    // A press made before the action changed (kept by Book-E, played back later,
    // within the window): refused, the reviewer pressed on what they saw then.
    let earlier = (chrono::Utc::now().timestamp() - 60).to_string();
    let kept = press(9006, "reject", &cid, member(KARI, &[REVIEWER_ROLE]), review_message(&cid, &cid));
    let (_, body) = w.post(&endpoint, &w.sign(&earlier, &kept), &earlier, kept).await;
    assert!(ephemeral_text(&body).contains("changed after this button was pressed"), "{body}");

    // The same press again (within the window): used once.
    let reject_replay = w.deliver(genuine).await.1;
    assert!(ephemeral_text(&reject_replay).contains("already used"), "{reject_replay}");
    assert_eq!(w.decisions(&cid).await.len(), 1);
    w.db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presses_over_the_gateway_are_recorded_as_asserted_and_old_discord_ids_are_one_person() {
    let Some(w) = world(true).await else { return };
    let cid = w.escalated_receipt(3).await;
    let interaction: serenity::all::Interaction = serde_json::from_slice(&press(
        9101,
        "approve",
        &cid,
        member(KARI, &[REVIEWER_ROLE]),
        review_message(&cid, &cid),
    ))
    .unwrap();
    w.door.on_interaction(&interaction).await;
    let decided = w.decisions(&cid).await;
    assert_eq!(decided.len(), 1, "{decided:?}");
    assert_eq!(decided[0].actor, "user:kari");
    assert_eq!(decided[0].payload["via"]["proven"], json!(false));
    assert_eq!(decided[0].payload["via"]["asserted_by"], json!("book-e"));

    // A proposal from before the directory, recorded under Ola's Discord id: Ola
    // may not approve it through Review-E's API either.
    let old = NewEvent::new("ReceiptAttachmentProposed", "book-e", "PROPOSED", "old-1").with_payload(json!({
        "requested_by": format!("user:{OLA}"),
        "receipt": {"sha256": "cd".repeat(32), "filename": "r.pdf", "content_type": "application/pdf"},
        "target": {"kind": "folio_event", "event_id": uuid::Uuid::new_v4()},
        "amount": {"minor": 64_00, "currency": "NOK"}
    }));
    Store::connect(&w.db.role_url("book_e")).await.unwrap().append(Append::one(old)).await.unwrap();
    w.wait_for("old-1", "ReceiptAttachmentEscalated").await;
    let r = w
        .http
        .post(format!("{}/reviews/old-1/approve", w.review_e))
        .bearer_auth(OLA_REVIEW_TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("proposed this yourself"));
    w.db.cleanup().await;
}

/// Over the interactions endpoint, a slash command is acknowledged in the HTTP
/// answer (deferred) and answered by editing that response, like over the gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slash_commands_arrive_signed_at_the_endpoint_and_are_answered() {
    let Some(w) = world(false).await else { return };
    let command = serde_json::to_vec(&json!({
        "id": "9201", "application_id": APP.to_string(), "type": 2, "token": "tok-9201",
        "version": 1, "guild_id": GUILD.to_string(), "channel_id": FINANCE.to_string(), "member": member(OLA, &[]),
        "locale": "nb", "app_permissions": "0", "entitlements": [], "attachment_size_limit": 26214400,
        "data": {"id": "42", "name": "balance", "type": 1, "options": [], "resolved": {}}
    }))
    .unwrap();
    assert_eq!(w.deliver(command.clone()).await, (200, json!({"type": 5})));
    let edit = format!("/api/v10/webhooks/{APP}/tok-9201/messages/@original");
    let started = Instant::now();
    let answer = loop {
        let posts = w.discord.calls();
        if let Some(body) = posts.iter().find(|c| c.path == edit).map(|c| &c.body) {
            break body["content"].as_str().unwrap_or_default().to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the command was never answered: {posts:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(answer.contains("SANDBOX"), "{answer}");
    // Kari may review, not propose: her /receipt is refused, nothing proposed.
    let receipt = serde_json::to_vec(&json!({
        "id": "9202", "application_id": APP.to_string(), "type": 2, "token": "tok-9202",
        "version": 1, "guild_id": GUILD.to_string(), "channel_id": FINANCE.to_string(), "member": member(KARI, &[]),
        "locale": "nb", "app_permissions": "0", "entitlements": [], "attachment_size_limit": 26214400,
        "data": {"id": "43", "name": "receipt", "type": 1,
                 "options": [{"name": "amount", "type": 3, "value": "64"}], "resolved": {}}
    }))
    .unwrap();
    assert_eq!(w.deliver(receipt).await, (200, json!({"type": 5})));
    let edit = format!("/api/v10/webhooks/{APP}/tok-9202/messages/@original");
    let started = Instant::now();
    let refusal = loop {
        let posts = w.discord.calls();
        if let Some(body) = posts.iter().find(|c| c.path == edit).map(|c| &c.body) {
            break body["content"].as_str().unwrap_or_default().to_string();
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the command was never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(refusal.contains("right to propose"), "{refusal}");
    // Unsigned, the same command is refused before anything runs.
    let now = chrono::Utc::now().timestamp().to_string();
    let (status, _) = w.post(&format!("{}/discord/interactions", w.book_e), &"0".repeat(128), &now, command).await;
    assert_eq!(status, 401);
    w.db.cleanup().await;
}
