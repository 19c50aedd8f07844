//! The `bookkeeper` command line, run as a real process against both backends.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bookkeeper_core::testing::{run_slow_test, Backend, TestDb};
use serde_json::Value;

mod common;

fn bookkeeper(db: &TestDb) -> Command {
    let mut cmd = common::bookkeeper();
    cmd.env("DATABASE_URL", &db.url);
    cmd
}

fn run_with_stdin(db: &TestDb, args: &[&str], stdin: &str) -> Output {
    let mut child = bookkeeper(db)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start bookkeeper");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

fn run(db: &TestDb, args: &[&str]) -> Output {
    bookkeeper(db).args(args).output().expect("run bookkeeper")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const STORY: &str = r#"{"type":"ReceiptAttachmentProposed","actor":"book-e","status":"PROPOSED","correlation_id":"abc-123","event_id":"5b0c3f5e-9a4e-4a43-9a36-2b6c6f1f0a01","payload":{"amount":{"minor":49900,"currency":"NOK"}}}
{"type":"ReceiptAttachmentApproved","actor":"system:auto","status":"AUTO_APPROVED","correlation_id":"abc-123","causation_id":"5b0c3f5e-9a4e-4a43-9a36-2b6c6f1f0a01","payload":{"reason":"small receipt, known vendor"}}

{"type":"InvoiceRegistrationProposed","actor":"book-e","status":"PROPOSED","correlation_id":"inv-7"}
"#;

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod postgres { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(db) = super::TestDb::new(super::Backend::Postgres).await else { return };
                super::$name(&db).await;
                db.cleanup().await;
            }
        )* }
        mod sqlite { $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(db) = super::TestDb::new(super::Backend::Sqlite).await else { return };
                super::$name(&db).await;
                db.cleanup().await;
            }
        )* }
    };
}

on_both_backends!(
    append_prints_positions_and_tail_json_reads_them_back,
    a_bad_line_is_named_and_its_batch_is_not_written,
    tail_follow_streams_events_appended_by_another_process,
    audit_tells_the_story_of_one_action,
    stats_show_counts_and_the_approval_rate,
);

async fn append_prints_positions_and_tail_json_reads_them_back(db: &TestDb) {
    let out = run_with_stdin(db, &["events", "append"], STORY);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let positions: Vec<i64> = text(&out.stdout).lines().map(|l| l.parse().unwrap()).collect();
    assert_eq!(positions.len(), 3);
    assert!(positions.windows(2).all(|w| w[0] < w[1]));

    let out = run(db, &["events", "tail", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let events: Vec<Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 3);
    assert_eq!(events.iter().map(|e| e["position"].as_i64().unwrap()).collect::<Vec<_>>(), positions);
    assert_eq!(events[1]["type"], "ReceiptAttachmentApproved");
    assert_eq!(events[1]["payload"]["reason"], "small receipt, known vendor");

    // --type with a suffix pattern, and --from resumes after a position.
    let out = run(db, &["events", "tail", "--json", "--type", "*Proposed", "--from", &positions[0].to_string()]);
    let events: Vec<Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["correlation_id"], "inv-7");

    let out = run(db, &["events", "tail", "--from", "424242"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no event at position 424242"), "{}", text(&out.stderr));
}

async fn a_bad_line_is_named_and_its_batch_is_not_written(db: &TestDb) {
    let input = r#"{"type":"A","actor":"book-e","status":"PROPOSED","correlation_id":"1"}
{"type":"A","actor":"book-e","status":"PROPOSED","correlation_id":"2"}
{"type":"A","actor":"book-e","status":"PROPOSED","correlation_id":"3"}
{"type":"A","actor":"book-e","status":"PROPOSED","correlation_id":"4"
"#;
    let out = run_with_stdin(db, &["events", "append", "--batch-size", "2"], input);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("line 4: not a valid event"), "{stderr}");
    assert!(stderr.contains("nothing from lines 3-4 was written; 2 event(s) before line 3 were appended"), "{stderr}");
    assert_eq!(text(&out.stdout).lines().count(), 2);
    let tail = run(db, &["events", "tail", "--json"]);
    assert_eq!(text(&tail.stdout).lines().count(), 2, "the bad line's batch must not be written");

    let out = run_with_stdin(
        db,
        &["events", "append"],
        "{\"type\":\"A\",\"actor\":\"x\",\"status\":\"S\",\"correlation_id\":\"c\",\"payload\":[1]}\n",
    );
    assert!(text(&out.stderr).contains("line 1: `payload` must be a JSON object"), "{}", text(&out.stderr));
}

async fn tail_follow_streams_events_appended_by_another_process(db: &TestDb) {
    // On PostgreSQL the follower polls only once a minute here: what it prints
    // within the 10 s below came by the NOTIFY of an `events append` process that
    // may have exited by then (its commit carries the NOTIFY). SQLite wakes
    // other processes by polling.
    let poll = if db.url.starts_with("postgres") { "60s" } else { "1s" };
    let mut follower: Child = bookkeeper(db)
        .args(["events", "tail", "--follow", "--json", "--poll-interval", poll])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    for i in 0..3 {
        let line = format!(
            "{{\"type\":\"A\",\"actor\":\"book-e\",\"status\":\"PROPOSED\",\"correlation_id\":\"live-{i}\"}}\n"
        );
        let out = run_with_stdin(db, &["events", "append"], &line);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let got = rx.recv_timeout(Duration::from_secs(10)).expect("the follower printed nothing within 10 s");
        let event: Value = serde_json::from_str(&got).unwrap();
        assert_eq!(event["correlation_id"], format!("live-{i}"));
        assert!(event["position"].as_i64().unwrap() > 0);
    }
    follower.kill().unwrap();
    follower.wait().unwrap();
}

async fn audit_tells_the_story_of_one_action(db: &TestDb) {
    run_with_stdin(db, &["events", "append"], STORY);
    let out = run(db, &["audit", "abc-123"]);
    assert!(out.status.success());
    let table = text(&out.stdout);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("POSITION"));
    assert!(lines[1].contains("ReceiptAttachmentProposed") && lines[1].contains("book-e"));
    assert!(lines[2].contains("AUTO_APPROVED") && lines[2].ends_with("small receipt, known vendor"));
    // Where the lifecycle stands, on stderr.
    let notes = text(&out.stderr);
    assert!(notes.contains("phase: approved"), "{notes}");

    // An approval that names no proposal (written by hand), and a look-alike type:
    // shown in the table, and said not to count.
    let forged = r#"{"type":"ReceiptAttachmentProposed","actor":"book-e","status":"PROPOSED","correlation_id":"forged-1"}
{"type":"ReceiptAttachmentApproved","actor":"system:auto","status":"AUTO_APPROVED","correlation_id":"forged-1","payload":{"reason":"trust me"}}
{"type":"ComplianceCheckApproved","actor":"cron","status":"COMPLETED","correlation_id":"forged-1"}
"#;
    run_with_stdin(db, &["events", "append"], forged);
    let out = run(db, &["audit", "forged-1"]);
    assert_eq!(text(&out.stdout).lines().count(), 4);
    let notes = text(&out.stderr);
    assert!(notes.contains("phase: awaiting_decision"), "{notes}");
    assert!(notes.contains("(ReceiptAttachmentApproved) does not count: names no proposal of this action"), "{notes}");
    assert!(notes.contains("(ComplianceCheckApproved) does not count: a type this release does not know"), "{notes}");

    let out = run(db, &["audit", "unknown-id"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no events with correlation id `unknown-id`"));
}

async fn stats_show_counts_and_the_approval_rate(db: &TestDb) {
    run_with_stdin(db, &["events", "append"], STORY);
    let out = run(db, &["stats", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stats: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(stats["events"], 3);
    assert_eq!(stats["pending_reviews"], 1);
    assert_eq!(stats["approval_rate"], 1.0);
    let human = text(&run(db, &["stats"]).stdout);
    assert!(human.contains("pending reviews: 1 (0 escalated to a person)"), "{human}");
    assert!(human.contains("approval rate:   100.0%"), "{human}");
}

#[test]
fn an_unreachable_database_is_reported_after_retrying() {
    let out = Command::new(env!("CARGO_BIN_EXE_bookkeeper"))
        .args(["--connect-timeout", "1s", "stats"])
        .env("DATABASE_URL", "postgres://nobody:s3cret@127.0.0.1:1/none")
        .env("BOOKKEEPER_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot open the event log at postgres://nobody:***@127.0.0.1:1/none"), "{stderr}");
    assert!(stderr.contains("database unavailable; retrying"), "the retries should be logged: {stderr}");
    assert!(!stderr.contains("s3cret"), "the password leaked: {stderr}");
}

#[test]
fn the_embedded_default_needs_no_configuration() {
    let dir = std::env::temp_dir().join(format!("bookkeeper-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bookkeeper"))
        .args(["events", "tail"])
        .current_dir(&dir)
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.join("bookkeeper.db").exists(), "the embedded log should be created in the working directory");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_store_benchmark_runs_and_reports_every_figure() {
    if !run_slow_test("the_store_benchmark_runs_and_reports_every_figure") {
        return;
    }
    // A smoke run with tiny sizes: the figures are meaningless, the report is not.
    let Some(db) = TestDb::postgres().await else { return };
    db.cleanup().await;
    let out = Command::new(env!("CARGO_BIN_EXE_bookkeeper"))
        .args(["bench", "store", "--events", "16", "--batches", "2", "--samples", "5", "--max-log", "10000"])
        .env("DATABASE_URL", bookkeeper_core::testing::postgres_admin_url())
        .output()
        .unwrap();
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}\n{}", text(&out.stderr));
    for label in [
        "single-event append, 1 writer",
        "100-event batches, 1 writer",
        "single-event append, 8 writers",
        "bare LISTEN/NOTIFY round trip (floor)",
        "append committed -> subscriber handler",
        "catch-up 10k",
    ] {
        assert!(report.contains(label), "missing `{label}` in:\n{report}");
    }
}

#[tokio::test]
async fn the_accounting_benchmark_runs_and_reports_every_figure() {
    if !run_slow_test("the_accounting_benchmark_runs_and_reports_every_figure") {
        return;
    }
    let Some(db) = TestDb::postgres().await else { return };
    db.cleanup().await;
    let out = Command::new(env!("CARGO_BIN_EXE_bookkeeper"))
        .args(["bench", "accounting", "--actions", "10", "--samples", "5"])
        .env("DATABASE_URL", bookkeeper_core::testing::postgres_admin_url())
        .output()
        .unwrap();
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}\n{}", text(&out.stderr));
    for label in [
        "receipt -> Folio (floor: the bare call)",
        "receipt -> Folio (floor: call between 2 commits)",
        "invoice -> Fiken, 3 calls",
        "approval event -> remote call starts",
        "remote answer -> outcome event recorded",
    ] {
        assert!(report.contains(label), "missing `{label}` in:\n{report}");
    }
}

#[tokio::test]
async fn the_system_benchmark_runs_every_service_as_a_process_and_reports() {
    if !run_slow_test("the_system_benchmark_runs_every_service_as_a_process_and_reports") {
        return;
    }
    let Some(db) = TestDb::postgres().await else { return };
    db.cleanup().await;
    let out = Command::new(env!("CARGO_BIN_EXE_bookkeeper"))
        .args(["bench", "system", "--seconds", "2", "--rate", "5"])
        .env("DATABASE_URL", bookkeeper_core::testing::postgres_admin_url())
        .output()
        .unwrap();
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}\n{}", text(&out.stderr));
    assert!(report.contains("proposals offered                                      10"), "{report}");
    assert!(report.contains("executed                                               10"), "{report}");
    assert!(report.contains("proposal -> executed p99 (ms)"), "{report}");
}

#[test]
fn the_receipts_benchmark_reads_a_set_and_reports_against_its_floor() {
    if !run_slow_test("the_receipts_benchmark_reads_a_set_and_reports_against_its_floor") {
        return;
    }
    let reader = bookkeeper_reader::Reader::detect();
    if !(reader.has_ocr() && reader.has_pdf()) {
        assert!(std::env::var_os("BOOKKEEPER_REQUIRE_OCR").is_none(), "BOOKKEEPER_REQUIRE_OCR: {}", reader.describe());
        return;
    }
    // Three documents of the labelled set (one with a scan): the figures are
    // meaningless, the report is not.
    let set = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("core/reader/testdata/set");
    let mut labels: Value = serde_json::from_str(&std::fs::read_to_string(set.join("labels.json")).unwrap()).unwrap();
    let keep = ["receipt-02", "invoice-03", "receipt-05"];
    labels["documents"].as_array_mut().unwrap().retain(|d| keep.contains(&d["id"].as_str().unwrap()));
    let dir = std::env::temp_dir().join(format!("bk-bench-receipts-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    for doc in labels["documents"].as_array().unwrap() {
        for medium in ["pdf", "photo", "scan"] {
            if let Some(file) = doc[medium].as_str() {
                std::fs::copy(set.join(file), dir.join(file)).unwrap();
            }
        }
    }
    std::fs::write(dir.join("labels.json"), labels.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_bookkeeper"))
        .args(["bench", "receipts", "--set", &dir.to_string_lossy()])
        .output()
        .unwrap();
    let report = text(&out.stdout);
    assert!(out.status.success(), "{report}\n{}", text(&out.stderr));
    assert!(report.contains("on 3 documents"), "{report}");
    for label in ["PDF (text layer):", "photo:", "scan (image-only PDF):", "reader/floor time: p50", "Targets:"] {
        assert!(report.contains(label), "missing `{label}` in:\n{report}");
    }
    // The PDFs' text layers are read exactly, whatever the machine's speed.
    assert!(report.contains("PDFs: key fields right on every document: MET"), "{report}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn serve_cron_keeps_its_schedule_with_health_and_metrics_and_stops_on_sigterm() {
    let db = TestDb::sqlite().await;
    let mut cron = common::serve("cron", &db.url, &[("CRON_ADDR", "127.0.0.1:0".into())]);
    assert!(cron.log_text().contains("CronJob scheduled (0 0 6 * * * in Europe/Oslo)"), "the schedule is announced");
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = reqwest::get(format!("{}{path}", cron.base)).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    assert!(cron.terminate().success());
    db.cleanup().await;
}

/// `bookkeeper config`: every setting with where it came from, secrets redacted;
/// a configuration file is read, the environment wins over it, and a name the file
/// does not know stops the start, naming the line.
#[test]
fn config_shows_the_effective_settings_with_secrets_redacted() {
    let dir = std::env::temp_dir().join(format!("bookkeeper-config-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bookkeeper.env");
    std::fs::write(
        &file,
        "# production\nCRON_RECEIPT_DAYS=9\nCOST_API_TOKEN=cost-token-from-the-file-0123\nCRON_TIMEZONE=UTC\n",
    )
    .unwrap();
    let out = common::bookkeeper()
        .args(["config", "--json", "--config"])
        .arg(&file)
        .env("DATABASE_URL", "postgres://book_e:hunter2@db.internal/bookkeeper")
        .env("CRON_TIMEZONE", "Europe/Oslo")
        .env_remove("FIKEN_TOKEN")
        .output()
        .unwrap();
    let text = text(&out.stdout);
    assert!(out.status.success(), "{text}{}", self::text(&out.stderr));
    let rows: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let row = |name: &str| rows.iter().find(|r| r["name"] == name).unwrap_or_else(|| panic!("no {name}")).clone();
    assert_eq!(
        (row("CRON_RECEIPT_DAYS")["value"].clone(), row("CRON_RECEIPT_DAYS")["from"].clone()),
        ("9".into(), "file".into())
    );
    assert_eq!(row("CRON_TIMEZONE")["value"], "Europe/Oslo", "the environment wins over the file");
    assert_eq!(row("COST_API_TOKEN")["value"], "(set, redacted)");
    assert_eq!(row("DATABASE_URL")["value"], "postgres://book_e:***@db.internal/bookkeeper");
    assert_eq!(row("FIKEN_TOKEN")["from"], "default");
    assert!(!text.contains("hunter2") && !text.contains("cost-token-from-the-file"), "{text}");

    std::fs::write(&file, "CRON_RECIEPT_DAYS=9\n").unwrap();
    let typo = common::bookkeeper().args(["config", "--config"]).arg(&file).output().unwrap();
    assert_eq!(typo.status.code(), Some(2));
    let said = self::text(&typo.stderr);
    assert!(said.contains("line 1") && said.contains("CRON_RECIEPT_DAYS"), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `policy test --junit`: a report CI tools read, with a failing case as a failure
/// whose text (quotes, angle brackets, a control character) is valid XML.
#[test]
fn policy_test_writes_junit_that_names_the_failing_case() {
    let dir = std::env::temp_dir().join(format!("bookkeeper-junit-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let component = dir.join("small-receipts.wasm");
    std::fs::write(&component, bookkeeper_example_policies::example("small-receipts").unwrap().component).unwrap();
    let cases = dir.join("cases.json");
    std::fs::write(
        &cases,
        r#"{"cases": [
            {"name": "small receipt from Kiwi", "proposal": {"proposal_type": "ReceiptAttachmentProposed",
              "amount": {"minor": 49900, "currency": "NOK"}, "vendor": {"name": "Kiwi"}, "has_document": true},
             "facts": {"today": "2026-11-25", "vendor_history": {"payments": 3, "total_minor": 90000, "largest_minor": 50000}},
             "expect": "approve"},
            {"name": "wrongly expected <\"&\u0001>", "proposal": {"proposal_type": "ReceiptAttachmentProposed",
              "amount": {"minor": 49900, "currency": "NOK"}, "vendor": {"name": "Kiwi"}, "has_document": true},
             "facts": {"today": "2026-11-25", "vendor_history": {"payments": 3, "total_minor": 90000, "largest_minor": 50000}},
             "expect": "reject"}
        ]}"#,
    )
    .unwrap();
    let junit = dir.join("junit.xml");
    let out = common::bookkeeper()
        .args(["policy", "test"])
        .arg(&component)
        .arg("--cases")
        .arg(&cases)
        .arg("--junit")
        .arg(&junit)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "a mismatch fails the run: {}", text(&out.stdout));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains(r#"tests="2""#) && xml.contains(r#"failures="1""#), "{xml}");
    assert!(xml.contains("expected reject, got approve"), "{xml}");
    assert!(xml.contains("wrongly expected &lt;&quot;&amp;"), "{xml}");
    assert!(!xml.contains('\u{1}'), "a control character is not valid XML 1.0: {xml}");
    let _ = std::fs::remove_dir_all(&dir);
}
