//! `bookkeeper chat` against `bookkeeper serve book-e` and `bookkeeper serve
//! accounting-api` (in its sandbox), as separate OS processes on PostgreSQL.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::{bookkeeper, Service};

use bookkeeper_core::testing::TestDb;

const OLA: &str = "ola-token-0123456789";

fn serve(service: &str, url: String, env: &[(&str, String)]) -> (Service, String) {
    let service = common::serve(service, &url, env);
    let base = service.base.clone();
    (service, base)
}

fn chat(book_e: &str, args: &[&str]) -> (bool, String) {
    let out =
        bookkeeper().arg("chat").args(args).env("BOOK_E_URL", book_e).env("BOOKKEEPER_TOKEN", OLA).output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_with_book_e_from_the_command_line() {
    let Some(db) = TestDb::postgres().await else { return };
    let (_accounting, accounting_url) = serve(
        "accounting-api",
        db.role_url("accounting_api"),
        &[("ACCOUNTING_API_ADDR", "127.0.0.1:0".into()), ("ACCOUNTING_API_SANDBOX", "1".into())],
    );
    let (_book_e, book_e) = serve(
        "book-e",
        db.role_url("book_e"),
        &[
            ("BOOK_E_ADDR", "127.0.0.1:0".into()),
            ("BOOK_E_USER_TOKENS", format!("{OLA}:ola")),
            ("ACCOUNTING_API_URL", accounting_url),
        ],
    );

    let (ok, out) = chat(&book_e, &["/balance"]);
    assert!(ok && out.contains("Bank balance") && out.contains("SANDBOX"), "{out}");

    // One message with a file: the sandbox bank has a 499,00 purchase at Kiwi yesterday.
    let receipt = std::env::temp_dir().join(format!("kiwi-{}.pdf", uuid::Uuid::new_v4()));
    std::fs::write(&receipt, b"%PDF-1.7 Kiwi 499,00").unwrap();
    let (ok, out) =
        chat(&book_e, &["--document", receipt.to_str().unwrap(), "/receipt", "amount=499,00", "vendor=Kiwi"]);
    assert!(ok && out.contains("Proposed: attach the receipt to") && out.contains("KIWI"), "{out}");
    let filter = bookkeeper_core::TypeFilter::of(["ReceiptAttachmentProposed"]);
    let proposals = db
        .store
        .read_waiting(bookkeeper_core::Cursor::START, &filter, 10, std::time::Duration::from_secs(5))
        .await
        .unwrap()
        .events;
    assert_eq!(proposals.len(), 1);
    assert_eq!(proposals[0].payload["receipt"]["filename"], receipt.file_name().unwrap().to_str().unwrap());

    // The interactive prompt, with `@FILE` attachments.
    let mut child = bookkeeper()
        .arg("chat")
        .env("BOOK_E_URL", &book_e)
        .env("BOOKKEEPER_TOKEN", OLA)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "/help").unwrap();
    writeln!(stdin, "/receipt amount=89 @{}", receipt.display()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("/invoice") && text.contains("RUTER"), "{text}");

    let (ok, out) = chat("http://127.0.0.1:9", &["/help"]);
    assert!(!ok && out.contains("not reachable"), "{out}");
    let _ = std::fs::remove_file(&receipt);
    db.cleanup().await;
}
