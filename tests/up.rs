//! `bookkeeper up`: every service in one process on an embedded SQLite log, with
//! the sandbox Fiken and Folio and the example policies; driven with `bookkeeper
//! chat` and Review-E's API as a newcomer would.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn after<'a>(text: &'a str, marker: &str) -> &'a str {
    text.split(marker)
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no `{marker}` in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_runs_everything_and_a_receipt_goes_all_the_way() {
    let dir = std::env::temp_dir().join(format!("bookkeeper-up-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_bookkeeper"))
        .arg("up")
        .current_dir(&dir)
        .env("DATABASE_URL", format!("sqlite://{}", dir.join("bookkeeper.db").display()))
        .env("REVIEW_E_ADDR", "127.0.0.1:0")
        .env("ACCOUNTING_API_ADDR", "127.0.0.1:0")
        .env("BOOK_E_ADDR", "127.0.0.1:0")
        .env("COST_API_ADDR", "127.0.0.1:0")
        .env("REVIEW_E_POLICY_DEADLINE_MS", "500")
        .env_remove("DISCORD_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
            if line.starts_with("Stop with") {
                let _ = tx.send(text.clone());
            }
        }
    });
    let banner = rx.recv_timeout(Duration::from_secs(300)).expect("`up` did not come up");
    assert!(banner.contains("sqlite log, SANDBOX Fiken and Folio"), "{banner}");
    assert!(banner.contains("runs without Discord"), "{banner}");
    let book_e = after(&banner, "Book-E (chat)").to_string();
    let review_e = after(&banner, "Review-E (reviews)").to_string();
    let accounting = after(&banner, "Accounting API").to_string();
    let cost = after(&banner, "Cost API").to_string();
    let you = after(&banner, "BOOKKEEPER_TOKEN=").to_string();
    let reviewer = after(&banner, "REVIEWER_TOKEN=").to_string();
    // The review desk, and a one-time sign-in link for the local reviewer.
    let desk = after(&banner, "Review desk (web)").to_string();
    assert_eq!(desk, format!("{review_e}/desk"));
    let link = after(&banner, "valid 15 minutes):").to_string();
    assert!(link.starts_with(&format!("{desk}/sign-in/link?t=")), "{banner}");
    let confirm = reqwest::get(&link).await.unwrap();
    assert_eq!(confirm.status(), 200);
    assert!(confirm.text().await.unwrap().contains("Sign in as reviewer"));

    let chat = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_bookkeeper"))
            .arg("chat")
            .args(args)
            .env("BOOK_E_URL", &book_e)
            .env("BOOKKEEPER_TOKEN", &you)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    assert!(chat(&["/balance"]).contains("SANDBOX"));

    // A first receipt from Kiwi: the example policies send it to a person.
    let receipt = dir.join("kiwi.pdf");
    std::fs::write(&receipt, b"%PDF-1.7 Kiwi 499,00").unwrap();
    let answer = chat(&["--document", receipt.to_str().unwrap(), "/receipt", "amount=499", "vendor=Kiwi"]);
    let id = after(&answer, "Id: `").trim_end_matches('`').to_string();
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        let pending: Value = http
            .get(format!("{review_e}/reviews/pending"))
            .bearer_auth(&reviewer)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        // Waiting for a person: escalated by the policies, not merely not judged yet.
        let escalated = pending["pending"]
            .as_array()
            .is_some_and(|list| list.iter().any(|p| p["correlation_id"] == json!(id) && p["escalated"] == json!(true)));
        if escalated {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{id} never waited for a reviewer: {pending}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let approved = http
        .post(format!("{review_e}/reviews/{id}/approve"))
        .bearer_auth(&reviewer)
        .json(&json!({"reason": "known shop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 200);

    // Carried out at the sandbox Folio; the requester hears of it; the cost counts.
    let started = Instant::now();
    loop {
        let news: Value = http
            .get(format!("{book_e}/chat/notifications?after=0"))
            .bearer_auth(&you)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if news.to_string().contains("Done: Folio attachment") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{news}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tx: Value = http.get(format!("{accounting}/folio/transactions")).send().await.unwrap().json().await.unwrap();
    let kiwi = tx["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["amount_minor"] == json!(-49900) && t["receipts"] == json!(1))
        .unwrap_or_else(|| panic!("no Kiwi transaction with its receipt: {tx}"));
    // The receipt's cost counts in the month of its bank transaction (the sandbox's
    // purchases are dated days ago, so last month in the first days of a month).
    let month = kiwi["booking_date"].as_str().and_then(|d| d.get(..7)).unwrap_or_else(|| panic!("{kiwi}")).to_string();
    let started = Instant::now();
    loop {
        let costs: Value = http
            .get(format!("{cost}/costs/monthly?month={month}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or_default();
        if costs["costs"][0]["total_minor"] == json!(49900) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{costs}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "`up` did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

/// The binary on its own, as the container image runs it: copied into an empty
/// directory, with nothing of the build's environment (no source tree to find,
/// no cargo, no Rust toolchain on the `PATH`).
fn lone_binary(dir: &std::path::Path) -> Command {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_bookkeeper"), bin.join("bookkeeper")).unwrap();
    // A process another test thread forks while the copy is being written holds
    // its descriptor until it execs: the kernel refuses to run the file until then.
    for _ in 0..100 {
        match Command::new(bin.join("bookkeeper")).arg("--version").output() {
            Err(e) if e.kind() == std::io::ErrorKind::ExecutableFileBusy => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            _ => break,
        }
    }
    let mut cmd = Command::new(bin.join("bookkeeper"));
    cmd.env_clear().env("PATH", "/usr/bin:/bin").env("HOME", dir).current_dir(dir);
    cmd
}

#[test]
fn the_demo_runs_its_scenario_through_the_live_system_from_an_empty_directory() {
    let dir = std::env::temp_dir().join(format!("bookkeeper-demo-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = lone_binary(&dir)
        .arg("demo")
        .env("DATABASE_URL", format!("sqlite://{}", dir.join("bookkeeper.db").display()))
        .env("REVIEW_E_ADDR", "127.0.0.1:0")
        .env("ACCOUNTING_API_ADDR", "127.0.0.1:0")
        .env("BOOK_E_ADDR", "127.0.0.1:0")
        .env("COST_API_ADDR", "127.0.0.1:0")
        .env("REVIEW_E_POLICY_DEADLINE_MS", "500")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    let expect = [
        "InvoiceRegistrationEscalated         system:auto  ESCALATED       unusual-vendor: first payment",
        "InvoiceRegistrationApproved          user:reviewer",
        "InvoiceRegistrationRejected          system:auto  REJECTED        duplicate-invoice",
        "InvoiceRegistrationExecutionFailed   system       FAILED          Fiken is unavailable",
        "purchases F-1002 in Fiken (sandbox): 1",
        "small-receipts: 312.50 NOK from known vendor Kiwi",
        "-> 201 Created (a MonthlyCostReport event)",
        // Whichever month(s) the actions fall in (a receipt from days ago may be
        // last month's): every one of them is counted once.
        "in all: 22061.50 NOK over",
        "The demo is done.",
        // The example policies shipped inside the binary, installed where Review-E watches.
        "policies: duplicate-invoice, monthly-budget, small-receipts, unusual-vendor (in .bookkeeper/policies)",
    ];
    for line in expect {
        assert!(text.contains(line), "missing `{line}` in:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `policy new` from an empty directory: by default the new policy names the SDK's
/// release on crates.io; with `--sdk` a checkout, and then it builds and passes its
/// recorded cases (with the cargo of the machine, as a policy author has it).
#[test]
fn policy_new_scaffolds_against_the_released_sdk_or_the_one_given() {
    let dir = std::env::temp_dir().join(format!("bookkeeper-policy-new-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = lone_binary(&dir).args(["policy", "new", "travel-limit"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let manifest = std::fs::read_to_string(dir.join("travel-limit/Cargo.toml")).unwrap();
    let release = bookkeeper_policy_sdk::VERSION.rsplit_once('.').unwrap().0;
    assert!(manifest.contains(&format!("bookkeeper-policy-sdk = \"{release}\"")), "{manifest}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("from crates.io"));

    let wrong = lone_binary(&dir).args(["policy", "new", "nowhere", "--sdk", "/no/such/sdk"]).output().unwrap();
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("the policy SDK is not at /no/such/sdk"));
    assert!(!dir.join("nowhere").exists(), "nothing is left behind by a refused scaffold");

    if !bookkeeper_core::testing::run_slow_test("policy_new_scaffolds_against_the_released_sdk_or_the_one_given") {
        return;
    }
    let sdk = concat!(env!("CARGO_MANIFEST_DIR"), "/policy-sdk");
    // With the machine's cargo, as a policy author has it.
    for args in [
        &["policy", "new", "with-path", "--sdk", sdk][..],
        &["policy", "build", "with-path"],
        &["policy", "test", "with-path"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_bookkeeper")).args(args).current_dir(&dir).output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "bookkeeper {}: {said}", args.join(" "));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `policy new --lang python|js` from an empty directory: the project passes its
/// own tests (pytest, node's test runner) and its recorded cases as a component,
/// and `policy build` writes the limits it asks for beside the component. Without
/// python3 the build says what to install and changes nothing.
#[test]
fn policy_new_in_python_and_javascript_builds_and_passes_its_cases() {
    let dir = std::env::temp_dir().join(format!("bookkeeper-policy-lang-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str], envs: &[(&str, &str)]| {
        let out = Command::new(env!("CARGO_BIN_EXE_bookkeeper"))
            .args(args)
            .envs(envs.iter().copied())
            .current_dir(&dir)
            .output()
            .unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), said)
    };
    let (ok, said) = run(&["policy", "new", "travel-py", "--lang", "python"], &[]);
    assert!(ok, "{said}");
    for file in ["policy.py", "bookkeeper_policy.py", "test_policy.py", "cases.json", "limits.json", "wit/policy.wit"] {
        assert!(dir.join("travel-py").join(file).is_file(), "{file} missing");
    }
    let wit = std::fs::read_to_string(dir.join("travel-py/wit/policy.wit")).unwrap();
    assert!(wit.contains("package bookkeeper:policy@0.2.0;"), "the project carries the contract it was made for");
    let (ok, said) = run(&["policy", "new", "travel-js", "--lang", "js"], &[]);
    assert!(ok, "{said}");
    let (ok, said) = run(&["policy", "new", "travel-go", "--lang", "go"], &[]);
    assert!(!ok && said.contains("not a policy language"), "{said}");

    let (ok, said) = run(&["policy", "build", "travel-py"], &[("BOOKKEEPER_PYTHON", "/no/such/python3")]);
    assert!(!ok, "{said}");
    assert!(said.contains("python3 is not installed") && said.contains("apt-get install python3"), "{said}");
    assert!(!dir.join("travel-py/policy.wasm").exists());

    if !bookkeeper_core::testing::run_slow_test("policy_new_in_python_and_javascript_builds_and_passes_its_cases") {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    // Each language built once (a build takes 10-15 s): Python through the
    // project (native tests, build, cases), JavaScript through `build` and the
    // component file with its limits beside it.
    let cache = dir.join("compiled");
    let cache_env = [("BOOKKEEPER_POLICY_COMPILE_CACHE", cache.to_str().unwrap())];
    let (ok, said) = run(&["policy", "test", "travel-py"], &cache_env);
    assert!(ok, "policy test travel-py: {said}");
    assert!(said.contains("native tests passed") && said.contains("2 passed, 0 failed"), "{said}");
    assert!(said.contains("kept for the next run"), "{said}");
    // Nothing changed: the second run neither builds nor compiles again.
    let (ok, said) = run(&["policy", "test", "travel-py"], &cache_env);
    assert!(ok && said.contains("compiled code from") && said.contains("2 passed, 0 failed"), "{said}");
    // A changed rule is built and compiled afresh, and its cases still run.
    let rule = dir.join("travel-py/policy.py");
    std::fs::write(&rule, std::fs::read_to_string(&rule).unwrap() + "\n# changed\n").unwrap();
    let (ok, said) = run(&["policy", "test", "travel-py"], &cache_env);
    assert!(ok && said.contains("kept for the next run"), "{said}");
    let (ok, said) = run(&["policy", "build", "travel-js", "--out", "travel-js.wasm"], &[]);
    assert!(ok, "policy build travel-js: {said}");
    assert!(said.contains("(js, contract 0.2.0)"), "{said}");
    let limits = std::fs::read_to_string(dir.join("travel-js.limits.json")).unwrap();
    assert!(limits.contains("memory_mib"), "{limits}");
    let (ok, said) = run(&["policy", "test", "travel-js.wasm", "--cases", "travel-js/cases.json"], &[]);
    assert!(ok && said.contains("2 passed, 0 failed"), "policy test travel-js.wasm: {said}");
    std::fs::remove_file(dir.join("travel-js.limits.json")).unwrap();
    let (ok, said) = run(&["policy", "test", "travel-js.wasm", "--cases", "travel-js/cases.json"], &[]);
    assert!(!ok && said.contains("the limit is 8388608 bytes"), "without its limits it gets the defaults: {said}");
    let _ = std::fs::remove_dir_all(&dir);
}
