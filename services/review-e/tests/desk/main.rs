//! The review desk's sessions over real HTTP, on PostgreSQL with Review-E as its
//! own database role: what an attacker tries against a sign-in, a cookie and a
//! form. (What a person sees and does is tested in a real browser: tests/desk.rs.)

use std::time::Duration;

use bookkeeper_core::people::{Directory, Door, Person, Right};
use bookkeeper_core::testing::TestDb;
use bookkeeper_core::{ActionState, NewEvent, Phase, Store};
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use review_e::desk::session::SessionKey;
use review_e::desk::DeskConfig;
use review_e::{Config, ReviewE};
use secrecy::SecretString;
use serde_json::json;

const KEY: &str = "a desk key for this test only, 32+ characters";

struct Desk {
    db: TestDb,
    base: String,
    http: reqwest::Client,
    kari: String,
    ola: String,
    proposer: String,
    /// What it runs with, for a second replica.
    config: Config,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

fn token(who: &str) -> String {
    format!("{who}-desk-{}", uuid::Uuid::new_v4().simple())
}

async fn start() -> Option<Desk> {
    let db = TestDb::postgres().await?;
    let (kari, ola, proposer) = (token("kari"), token("ola"), token("you"));
    let config = Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        people: Directory::new(vec![
            Person::new("kari").may_also(Right::Review).with_token(Door::Desk, &kari),
            Person::new("ola").may_also(Right::Review).with_token(Door::Desk, &ola),
            Person::new("you").may_also(Right::Propose).with_token(Door::Desk, &proposer),
        ])
        .unwrap(),
        poll_interval: Duration::from_millis(100),
        desk: DeskConfig {
            key: Some(SessionKey::new(SecretString::new(KEY.into())).unwrap()),
            ..DeskConfig::default()
        },
        ..Config::default()
    };
    let (base, stop) = run(&db, config.clone()).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Some(Desk { db, base, http, kari, ola, proposer, config, stop: Some(stop) })
}

/// Review-E as its own database role; its address, and what stops it.
async fn run(db: &TestDb, config: Config) -> (String, tokio::sync::oneshot::Sender<()>) {
    let store = Store::connect(&db.role_url("review_e")).await.unwrap();
    let service = ReviewE::build(config, store).await.unwrap();
    let base = format!("http://127.0.0.1:{}", service.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(service.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    (base, stop)
}

/// The value a `Set-Cookie` header sets for `name`, and the whole header.
fn set_cookie(headers: &HeaderMap, name: &str) -> Option<(String, String)> {
    headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|h| {
        let value = h.strip_prefix(&format!("{name}="))?.split(';').next()?.to_string();
        Some((value, h.to_string()))
    })
}

/// The `value` of the hidden `name` field of a page.
fn field(html: &str, name: &str) -> String {
    let at = html.find(&format!("name=\"{name}\" value=\"")).unwrap_or_else(|| panic!("no {name} in {html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').unwrap()].to_string()
}

impl Desk {
    /// A fresh sign-in form: its pre-session cookie and CSRF token.
    async fn sign_in_form(&self) -> (String, String) {
        let page = self.http.get(format!("{}/desk/sign-in", self.base)).send().await.unwrap();
        assert_eq!(page.status(), 200);
        let (pre, _) = set_cookie(page.headers(), "desk_pre").expect("a pre-session cookie");
        let csrf = field(&page.text().await.unwrap(), "csrf");
        (pre, csrf)
    }

    async fn sign_in(&self, token: &str, next: &str) -> reqwest::Response {
        let (pre, csrf) = self.sign_in_form().await;
        self.http
            .post(format!("{}/desk/sign-in", self.base))
            .header("cookie", format!("desk_pre={pre}"))
            .form(&[("csrf", csrf.as_str()), ("token", token), ("next", next)])
            .send()
            .await
            .unwrap()
    }

    async fn session(&self, token: &str) -> String {
        let r = self.sign_in(token, "/desk").await;
        assert_eq!(r.status(), 303);
        set_cookie(r.headers(), "desk_session").expect("a session cookie").0
    }

    async fn get(&self, path: &str, session: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.base))
            .header("cookie", format!("desk_session={session}"))
            .send()
            .await
            .unwrap()
    }

    async fn csrf_of(&self, session: &str) -> String {
        field(&self.get("/desk", session).await.text().await.unwrap(), "csrf")
    }

    async fn propose(&self, id: &str, requester: &str) {
        let store = Store::connect(&self.db.role_url("book_e")).await.unwrap();
        let e = NewEvent::new("ReceiptAttachmentProposed", "book-e", "PROPOSED", id).with_payload(json!({
            "requested_by": requester,
            "receipt": {"sha256": "a".repeat(64), "filename": "r.jpg", "content_type": "image/jpeg"},
            "target": {"kind": "folio_event", "event_id": "evt-1"},
            "amount": {"minor": 45_000, "currency": "NOK"}, "vendor": {"name": "Kiwi"}
        }));
        store.append_events(vec![e]).await.unwrap();
        let started = std::time::Instant::now();
        while self.phase(id).await != Phase::Escalated {
            assert!(started.elapsed() < Duration::from_secs(20), "{id} was never escalated");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Posts a desk form with the session's cookie.
    async fn post(&self, base: &str, path: &str, session: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{base}{path}"))
            .header("cookie", format!("desk_session={session}"))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    async fn phase(&self, id: &str) -> Phase {
        let story = self.db.store.read_correlation(id).await.unwrap();
        ActionState::fold(&story).phase()
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        self.db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_signed_begun_in_the_log_and_ended_everywhere_by_sign_out() {
    let Some(desk) = start().await else { return };

    // Not signed in: to the sign-in page, then back where one was going.
    let r = desk.get("/desk/policies", "").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/desk/sign-in?next=/desk/policies");

    // A wrong token, a token of someone who may not review, a stale form: refused.
    let r = desk.sign_in("not-a-token-of-anyone-here", "/desk").await;
    assert_eq!(r.status(), 403);
    assert!(set_cookie(r.headers(), "desk_session").is_none());
    assert!(r.text().await.unwrap().contains("This token does not open the desk"));
    assert_eq!(desk.sign_in(&desk.proposer, "/desk").await.status(), 403, "proposing is not reviewing");
    let (_, csrf) = desk.sign_in_form().await;
    let r = desk
        .http
        .post(format!("{}/desk/sign-in", desk.base))
        .form(&[("csrf", csrf.as_str()), ("token", desk.kari.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a sign-in form without its browser's pre-session cookie (login CSRF)");

    // Signed in: the cookie is HttpOnly, SameSite=Strict, for the desk only; the
    // next page is a desk page of this origin, whatever was asked for.
    let r = desk.sign_in(&desk.kari, "https://evil.example/desk").await;
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/desk");
    let (session, header) = set_cookie(r.headers(), "desk_session").unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/desk", "Max-Age=28800"] {
        assert!(header.contains(attribute), "{header}");
    }
    let queue = desk.get("/desk", &session).await;
    assert_eq!(queue.status(), 200);
    let csp = queue.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(queue.headers()["x-frame-options"], "DENY");
    assert_eq!(queue.headers()["referrer-policy"], "same-origin");
    assert!(queue.text().await.unwrap().contains("Signed in as"));

    // The log says who signed in (Review-E may append it as its role).
    let started = desk.db.store.read_correlation(&format!("desk-session:{}", session_id(&session))).await.unwrap();
    assert_eq!(started.len(), 1);
    assert_eq!((started[0].event_type.as_str(), started[0].actor.as_str()), ("DeskSessionStarted", "user:kari"));

    // A cookie changed by a byte, or signed with another key, is no session.
    let mut forged = session.clone().into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    assert_eq!(desk.get("/desk", &String::from_utf8(forged).unwrap()).await.status(), 303);
    let other = SessionKey::new(SecretString::new("another key of at least thirty-two chars".into())).unwrap();
    let foreign = other.session_cookie(&review_e::desk::session::Session {
        id: session_id(&session),
        person: "kari".into(),
        expires_at: chrono::Utc::now().timestamp() + 3600,
    });
    assert_eq!(desk.get("/desk", &foreign).await.status(), 303);
    // The right key but a session that never began in the log (a leaked key
    // alone does not make one): refused too.
    let key = SessionKey::new(SecretString::new(KEY.into())).unwrap();
    let never_began = key.session_cookie(&review_e::desk::session::Session {
        id: "never-began".into(),
        person: "kari".into(),
        expires_at: chrono::Utc::now().timestamp() + 3600,
    });
    assert_eq!(desk.get("/desk", &never_began).await.status(), 303);
    // Nor can the key move a real session's end (or revive one that expired).
    let prolonged = key.session_cookie(&review_e::desk::session::Session {
        id: session_id(&session),
        person: "kari".into(),
        expires_at: chrono::Utc::now().timestamp() + 365 * 24 * 3600,
    });
    assert_eq!(desk.get("/desk", &prolonged).await.status(), 303);
    assert_eq!(desk.get("/desk", &session).await.status(), 200, "the real one still works");

    // Signing out ends the session on the server: the old cookie, replayed, is refused.
    let csrf = desk.csrf_of(&session).await;
    let r = desk
        .http
        .post(format!("{}/desk/sign-out", desk.base))
        .header("cookie", format!("desk_session={session}"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(set_cookie(r.headers(), "desk_session").is_some_and(|(v, h)| v.is_empty() && h.contains("Max-Age=0")));
    assert_eq!(desk.get("/desk", &session).await.status(), 303, "a signed-out session is over");
    desk.stop().await;
}

fn session_id(cookie: &str) -> String {
    use base64::Engine;
    let body = cookie.split('.').nth(1).unwrap();
    let json: serde_json::Value =
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
    json["id"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_needs_the_sessions_csrf_token_and_this_origin_and_decides_as_the_person() {
    let Some(desk) = start().await else { return };
    desk.propose("desk-csrf-1", "user:kari").await;
    let ola = desk.session(&desk.ola).await;
    let csrf = desk.csrf_of(&ola).await;
    let approve = |session: String, form: Vec<(&'static str, String)>, origin: Option<&'static str>| {
        let mut request = desk
            .http
            .post(format!("{}/desk/actions/desk-csrf-1/approve", desk.base))
            .header("cookie", format!("desk_session={session}"))
            .form(&form);
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };

    // No token, another session's token, another site: refused, and nothing written.
    let r = approve(ola.clone(), vec![("reason", "ok".into())], None).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("CSRF token is missing or wrong"));
    let kari = desk.session(&desk.kari).await;
    let karis = desk.csrf_of(&kari).await;
    assert_eq!(approve(ola.clone(), vec![("csrf", karis)], None).await.unwrap().status(), 403);
    let r = approve(ola.clone(), vec![("csrf", csrf.clone())], Some("https://evil.example")).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("came from another site"));
    assert_eq!(desk.phase("desk-csrf-1").await, Phase::Escalated, "a refused form wrote nothing");

    // The requester may not approve their own, even with a good form.
    let r = approve(kari.clone(), vec![("csrf", desk.csrf_of(&kari).await)], None).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("you proposed this yourself"));
    assert_eq!(desk.phase("desk-csrf-1").await, Phase::Escalated);

    // Another reviewer, with the session's token, from this origin: decided, as them.
    let origin = Some(Box::leak(desk.base.clone().into_boxed_str()) as &'static str);
    let r = approve(ola.clone(), vec![("csrf", csrf), ("reason", "checked the receipt".into())], origin).await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()[LOCATION], "/desk/actions/desk-csrf-1?done=approved");
    let story = desk.db.store.read_correlation("desk-csrf-1").await.unwrap();
    let decision = story.iter().find(|e| e.event_type == "ReceiptAttachmentApproved").expect("approved");
    assert_eq!(decision.actor, "user:ola");
    assert_eq!(decision.payload["reason"], "checked the receipt");
    assert_eq!(decision.payload["via"]["door"], "desk");
    desk.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_link_works_once_only_if_issued_and_not_after_it_expires() {
    let Some(desk) = start().await else { return };
    let key = SessionKey::new(SecretString::new(KEY.into())).unwrap();
    let link =
        review_e::desk::issue_sign_in_link(&desk.db.store, &key, &format!("{}/desk", desk.base), "ola", "user:kari")
            .await
            .unwrap();
    let path = link.strip_prefix(&desk.base).unwrap().to_string();
    let d = &desk;
    let use_link = |path: String| async move {
        let page = d.http.get(format!("{}{path}", d.base)).send().await.unwrap();
        assert_eq!(page.status(), 200, "opening the link spends nothing");
        let (pre, _) = set_cookie(page.headers(), "desk_pre").unwrap();
        let html = page.text().await.unwrap();
        assert!(html.contains("Sign in as ola"), "{html}");
        d.http
            .post(format!("{}/desk/sign-in/link", d.base))
            .header("cookie", format!("desk_pre={pre}"))
            .form(&[("csrf", field(&html, "csrf")), ("link", field(&html, "link"))])
            .send()
            .await
            .unwrap()
    };
    // Another role writing beside the link's story (every role reads the log, so
    // it can see the id) neither blocks nor spends it.
    let nonce_of = |path: &str| {
        use base64::Engine;
        let token = path.split("t=").nth(1).unwrap();
        let body = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap();
        serde_json::from_slice::<serde_json::Value>(&body).unwrap()["nonce"].as_str().unwrap().to_string()
    };
    let nonce = nonce_of(&path);
    let book_e = Store::connect(&desk.db.role_url("book_e")).await.unwrap();
    let beside = NewEvent::new("SubscriptionEventParked", "book-e", "PARKED", format!("desk-session:{nonce}"))
        .with_payload(json!({"reason": "written beside a desk link"}));
    book_e.append_events(vec![beside]).await.unwrap();
    let first = use_link(path.clone()).await;
    assert_eq!(first.status(), 303);
    let (session, _) = set_cookie(first.headers(), "desk_session").unwrap();
    assert_eq!(desk.get("/desk", &session).await.status(), 200);
    let again = use_link(path.clone()).await;
    assert_eq!(again.status(), 409);
    assert!(again.text().await.unwrap().contains("used already"));
    // The log says who issued it, and that it was used.
    let story = desk.db.store.read_correlation(&format!("desk-session:{nonce}")).await.unwrap();
    let told: Vec<(&str, &str)> = story.iter().map(|e| (e.event_type.as_str(), e.actor.as_str())).collect();
    assert_eq!(
        told,
        [
            ("DeskSignInLinkIssued", "user:kari"),
            ("SubscriptionEventParked", "book-e"),
            ("DeskSessionStarted", "user:ola")
        ]
    );

    // Signed with the desk's key but never issued (whoever holds the key can sign
    // one): no session.
    let (forged, _) = key.sign_in_link("ola", chrono::Utc::now().timestamp());
    let forged = use_link(format!("/desk/sign-in/link?t={forged}")).await;
    assert_eq!(forged.status(), 403);
    assert!(forged.text().await.unwrap().contains("not valid"));

    // Expired, or for someone the directory does not know: refused at once.
    let (old, _) = key.sign_in_link("ola", chrono::Utc::now().timestamp() - 16 * 60);
    let r = desk.http.get(format!("{}/desk/sign-in/link?t={old}", desk.base)).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let (nobody, _) = key.sign_in_link("nobody", chrono::Utc::now().timestamp());
    let r = desk.http.get(format!("{}/desk/sign-in/link?t={nobody}", desk.base)).send().await.unwrap();
    assert_eq!(r.status(), 403);
    desk.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_key_the_desk_is_off_and_says_how_to_turn_it_on() {
    let Some(db) = TestDb::postgres().await else { return };
    let config = Config { addr: "127.0.0.1:0".parse().unwrap(), ..Config::default() };
    let (base, stop) = run(&db, config).await;
    for path in ["/desk", "/desk/sign-in", "/desk/sign-in/link?t=v1.a.b"] {
        let r = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(r.status(), 503, "{path}");
        assert!(r.text().await.unwrap().contains("set REVIEW_E_DESK_SESSION_KEY"), "{path}");
    }
    // The API is not affected.
    assert_eq!(reqwest::get(format!("{base}/healthz")).await.unwrap().status(), 200);
    let _ = stop.send(());
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_and_its_sign_out_hold_on_every_replica() {
    let Some(desk) = start().await else { return };
    let (other, stop_other) = run(&desk.db, desk.config.clone()).await;
    let session = desk.session(&desk.kari).await;
    // Signed in at one replica, the other takes the session (same key, same log).
    let page = |base: String, session: String| {
        let http = desk.http.clone();
        async move {
            http.get(format!("{base}/desk")).header("cookie", format!("desk_session={session}")).send().await.unwrap()
        }
    };
    let there = page(other.clone(), session.clone()).await;
    assert_eq!(there.status(), 200);
    let csrf = field(&there.text().await.unwrap(), "csrf");
    // Signed out at the other, the first refuses it at once.
    assert_eq!(desk.post(&other, "/desk/sign-out", &session, &[("csrf", &csrf)]).await.status(), 303);
    assert_eq!(page(desk.base.clone(), session.clone()).await.status(), 303);
    let _ = stop_other.send(());
    desk.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_not_yet_executed_can_be_stopped_at_the_desk() {
    let Some(desk) = start().await else { return };
    desk.propose("desk-stop-1", "user:you").await;
    let ola = desk.session(&desk.ola).await;
    let csrf = desk.csrf_of(&ola).await;
    let approved = desk.post(&desk.base, "/desk/actions/desk-stop-1/approve", &ola, &[("csrf", &csrf)]).await;
    assert_eq!(approved.status(), 303);
    assert_eq!(desk.phase("desk-stop-1").await, Phase::Approved);

    // Nobody executes here, so it waits approved: the page offers the emergency stop.
    let kari = desk.session(&desk.kari).await;
    let page = desk.get("/desk/actions/desk-stop-1", &kari).await.text().await.unwrap();
    assert!(page.contains("Emergency stop") && page.contains("approved, not yet executed"), "{page}");
    let csrf = field(&page, "csrf");
    let path = "/desk/actions/desk-stop-1/reject";
    let no_reason = desk.post(&desk.base, path, &kari, &[("csrf", &csrf), ("reason", "  ")]).await;
    assert_eq!(no_reason.status(), 422);
    assert!(no_reason.text().await.unwrap().contains("a reason is required"));
    assert_eq!(desk.phase("desk-stop-1").await, Phase::Approved);
    let stopped = desk.post(&desk.base, path, &kari, &[("csrf", &csrf), ("reason", "wrong vendor")]).await;
    assert_eq!(stopped.status(), 303);
    assert_eq!(desk.phase("desk-stop-1").await, Phase::Rejected);
    let story = desk.db.store.read_correlation("desk-stop-1").await.unwrap();
    let rejection = story.iter().find(|e| e.event_type == "ReceiptAttachmentRejected").unwrap();
    assert_eq!((rejection.actor.as_str(), rejection.payload["reason"].as_str()), ("user:kari", Some("wrong vendor")));
    let page = desk.get("/desk/actions/desk-stop-1", &kari).await.text().await.unwrap();
    assert!(page.contains("Rejected: it will not be carried out") || page.contains("rejected"), "{page}");
    assert!(!page.contains("Emergency stop"), "nothing left to stop");
    desk.stop().await;
}
