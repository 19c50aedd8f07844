//! The scripted demo (`bookkeeper demo`, or `up --demo`): drives the live system
//! through Book-E, Review-E and the Cost API over HTTP, exactly as people and
//! front ends would, and prints each step with what the log recorded.

// Amounts are written kroner_øre: 312_50 is 312,50 kr.
#![allow(clippy::inconsistent_digit_grouping)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use accounting_api::fiken::fake::FakeFiken;
use accounting_api::folio::fake::{FakeFolio, SANDBOX_ACCOUNT};
use accounting_api::sandbox::Fault;
use anyhow::{bail, Context};
use bookkeeper_core::{RecordedEvent, Store};
use bookkeeper_http::wire::book_e::ChatAnswer;
use serde_json::{json, Value};

/// What the demo talks to.
pub struct Demo {
    pub store: Store,
    pub book_e: String,
    pub you: String,
    pub review_e: String,
    pub reviewer: String,
    pub cost: String,
    pub cost_token: String,
    pub fiken: Arc<FakeFiken>,
    pub folio: Arc<FakeFolio>,
}

fn step(n: u32, title: &str) {
    println!();
    println!("── {n}. {title}");
}

fn show(story: &[RecordedEvent]) {
    for e in story {
        let reason = e.reason().map(|r| format!("  {r}")).unwrap_or_default();
        println!("     {:<36} {:<12} {:<14}{reason}", e.event_type, e.actor, e.status);
    }
}

impl Demo {
    async fn upload(&self, http: &reqwest::Client, bytes: &[u8]) -> anyhow::Result<String> {
        let r =
            http.post(format!("{}/documents", self.book_e)).bearer_auth(&self.you).body(bytes.to_vec()).send().await?;
        let body: Value = r.json().await?;
        body["sha256"].as_str().map(String::from).context("Book-E stored no document")
    }

    async fn chat(&self, http: &reqwest::Client, text: &str, sha: &str, name: &str) -> anyhow::Result<String> {
        let body = json!({"text": text, "document": {"sha256": sha, "filename": name}});
        let answer: ChatAnswer =
            http.post(format!("{}/chat", self.book_e)).bearer_auth(&self.you).json(&body).send().await?.json().await?;
        println!("   you: {text}");
        println!("   Book-E: {}", answer.text);
        answer.correlation_id().map(String::from).context("Book-E made no proposal")
    }

    async fn until(&self, id: &str, done: impl Fn(&RecordedEvent) -> bool) -> anyhow::Result<Vec<RecordedEvent>> {
        let started = Instant::now();
        loop {
            let story = self.store.read_correlation(id).await?;
            if story.iter().any(&done) {
                return Ok(story);
            }
            if started.elapsed() > Duration::from_secs(60) {
                show(&story);
                bail!("{id} did not get there within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn approve(&self, http: &reqwest::Client, id: &str) -> anyhow::Result<()> {
        let r = http
            .post(format!("{}/reviews/{id}/approve", self.review_e))
            .bearer_auth(&self.reviewer)
            .json(&json!({"reason": "checked by the finance lead"}))
            .send()
            .await?;
        if !r.status().is_success() {
            bail!("Review-E refused the approval: {}", r.text().await.unwrap_or_default());
        }
        println!("   reviewer: POST {}/reviews/{id}/approve -> {}", self.review_e, r.status());
        Ok(())
    }

    /// Runs the scenario.
    pub async fn run(&self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let executed = |e: &RecordedEvent| {
            bookkeeper_core::lifecycle::stage(&e.event_type) == Some(bookkeeper_core::domain::Stage::Executed)
        };
        let today = chrono::Utc::now();
        println!();
        println!("The demo: every step goes through the running services over HTTP; the log shows what happened.");

        step(1, "A first receipt from a shop goes to a person, who approves it; it is attached at the bank");
        let sha = self.upload(&http, b"%PDF-1.7 Kiwi Majorstuen 499,00").await?;
        let first = self.chat(&http, "/receipt amount=499 vendor=Kiwi", &sha, "kiwi-1.pdf").await?;
        self.until(&first, |e| {
            bookkeeper_core::lifecycle::stage(&e.event_type) == Some(bookkeeper_core::domain::Stage::Escalated)
        })
        .await?;
        self.approve(&http, &first).await?;
        show(&self.until(&first, executed).await?);

        step(2, "A small receipt from a shop we know is approved automatically and carried out");
        self.folio.add_event(SANDBOX_ACCOUNT, today, -312_50, "KIWI MAJORSTUEN");
        let sha = self.upload(&http, b"%PDF-1.7 Kiwi Majorstuen 312,50").await?;
        let small = self.chat(&http, "/receipt amount=312,50 vendor=Kiwi", &sha, "kiwi-2.pdf").await?;
        show(&self.until(&small, executed).await?);

        step(3, "A large invoice from a new supplier is escalated, approved by a reviewer, registered in Fiken");
        let invoice = self.upload(&http, b"%PDF-1.7 Faktura F-1001 Kontorleverandoren").await?;
        let text = "/invoice vendor=\"Kontorleverandøren AS\" org=912345678 number=F-1001 amount=\"18 750,00\" account=6540 description=\"Kontorstoler\"";
        let large = self.chat(&http, text, &invoice, "F-1001.pdf").await?;
        self.until(&large, |e| {
            bookkeeper_core::lifecycle::stage(&e.event_type) == Some(bookkeeper_core::domain::Stage::Escalated)
        })
        .await?;
        self.approve(&http, &large).await?;
        show(&self.until(&large, executed).await?);

        step(4, "The same invoice again is rejected by the duplicate-invoice policy");
        let again = self.chat(&http, text, &invoice, "F-1001.pdf").await?;
        show(
            &self
                .until(&again, |e| {
                    bookkeeper_core::lifecycle::stage(&e.event_type) == Some(bookkeeper_core::domain::Stage::Rejected)
                })
                .await?,
        );

        step(5, "Fiken fails once; the failure is recorded and the call retried, and nothing is registered twice");
        // Fiken answers 500 to every attempt of the first call, so the whole attempt fails.
        self.fiken.fail_next([Fault::ServerError; 4]);
        let sha = self.upload(&http, b"%PDF-1.7 Faktura F-1002 Kontorleverandoren").await?;
        let text = "/invoice vendor=\"Kontorleverandøren AS\" org=912345678 number=F-1002 amount=\"2 500,00\" account=6800 description=\"Papir\"";
        let flaky = self.chat(&http, text, &sha, "F-1002.pdf").await?;
        show(&self.until(&flaky, executed).await?);
        let registered = self.fiken.purchases().iter().filter(|(_, n)| n.as_deref() == Some("F-1002")).count();
        println!("   purchases F-1002 in Fiken (sandbox): {registered}");

        step(6, "The Cost API reports the costs of the months these actions fall in");
        // A receipt counts in the month of its bank transaction, so in the first days
        // of a month the sandbox's purchases from days ago fall in the month before.
        let mut months = std::collections::BTreeSet::new();
        for id in [&first, &small, &large, &flaky] {
            for e in self.store.read_correlation(id).await? {
                let date = ["invoice_date", "date"].iter().find_map(|k| e.payload.get(*k).and_then(|d| d.as_str()));
                if let Some(month) = date.and_then(|d| d.get(..7)) {
                    months.insert(month.to_string());
                }
            }
        }
        let expected = 499_00 + 312_50 + 18_750_00 + 2_500_00;
        let started = Instant::now();
        let (costs, total) = loop {
            let mut costs = Vec::new();
            let mut total = 0;
            for month in &months {
                let c: Value =
                    http.get(format!("{}/costs/monthly?month={month}", self.cost)).send().await?.json().await?;
                total += c["costs"][0]["total_minor"].as_i64().unwrap_or_default();
                costs.push((month.clone(), c));
            }
            if total == expected || started.elapsed() > Duration::from_secs(20) {
                break (costs, total);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        for (month, c) in &costs {
            println!("   GET /costs/monthly?month={month}");
            println!("   {}", serde_json::to_string_pretty(&c["costs"])?.replace('\n', "\n   "));
        }
        println!("   in all: {} over {} month(s)", bookkeeper_core::domain::Money::nok(total), months.len());
        let month = today.format("%Y-%m").to_string();
        let r = http
            .post(format!("{}/costs/monthly/report?month={month}", self.cost))
            .bearer_auth(&self.cost_token)
            .send()
            .await?;
        println!("   POST /costs/monthly/report?month={month} -> {} (a MonthlyCostReport event)", r.status());

        step(7, &format!("bookkeeper audit {small}"));
        show(&self.store.read_correlation(&small).await?);
        println!();
        println!("The demo is done. Everything it did is in the log: `bookkeeper events tail`.");
        Ok(())
    }
}
