//! `bookkeeper chat`: talk to a running Book-E over its HTTP door, one message or
//! an interactive prompt. `@FILE` in a message attaches that file (it is stored
//! through Book-E first); between prompts, what happened to your proposals is
//! printed as it arrives.

use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{bail, Context};
use bookkeeper_http::wire::accounting::StoredDocument;
use bookkeeper_http::wire::book_e::{ChatAnswer, Notifications};
use bookkeeper_http::ErrorBody;
use clap::Args;
use serde_json::{json, Value};

/// Arguments of `chat`.
#[derive(Debug, Args)]
pub struct ChatArgs {
    /// Book-E's address.
    #[arg(long, env = "BOOK_E_URL", default_value = "http://127.0.0.1:8083")]
    url: String,
    /// Your bearer token (one of BOOK_E_USER_TOKENS).
    #[arg(long, env = "BOOKKEEPER_TOKEN", hide_env_values = true)]
    token: String,
    /// A file to attach (receipt or invoice).
    #[arg(long)]
    document: Option<std::path::PathBuf>,
    /// The message; without one, an interactive prompt.
    message: Vec<String>,
}

struct Client {
    http: reqwest::Client,
    url: String,
    token: String,
    seen: i64,
}

impl Client {
    async fn upload(&self, path: &Path) -> anyhow::Result<Value> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let r = self
            .http
            .post(format!("{}/documents", self.url))
            .bearer_auth(&self.token)
            .body(bytes)
            .send()
            .await
            .with_context(|| format!("Book-E is not reachable at {}", self.url))?;
        let status = r.status();
        let bytes = r.bytes().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{}: {}", path.display(), ErrorBody::text_of(status.as_u16(), &bytes));
        }
        let stored: StoredDocument = serde_json::from_slice(&bytes)
            .with_context(|| format!("{}: Book-E's answer could not be read", path.display()))?;
        let name = path.file_name().map(|n| n.to_string_lossy().to_string());
        Ok(json!({"sha256": stored.sha256, "filename": name}))
    }

    /// Sends one message; `@FILE` words attach files.
    async fn say(&self, text: &str, document: Option<&Path>) -> anyhow::Result<ChatAnswer> {
        let mut words = Vec::new();
        let mut attached = match document {
            Some(p) => Some(self.upload(p).await?),
            None => None,
        };
        for word in text.split_whitespace() {
            match word.strip_prefix('@') {
                Some(path) if Path::new(path).is_file() => attached = Some(self.upload(Path::new(path)).await?),
                _ => words.push(word),
            }
        }
        let mut body = json!({"text": words.join(" ")});
        if let Some(doc) = attached {
            body["document"] = doc;
        }
        let r = self
            .http
            .post(format!("{}/chat", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("Book-E is not reachable at {}", self.url))?;
        let status = r.status();
        let bytes = r.bytes().await.unwrap_or_default();
        if !status.is_success() {
            bail!("Book-E refused: {}", ErrorBody::text_of(status.as_u16(), &bytes));
        }
        serde_json::from_slice(&bytes).context("Book-E's answer could not be read")
    }

    async fn news(&mut self) -> anyhow::Result<Vec<String>> {
        let r = self
            .http
            .get(format!("{}/chat/notifications?after={}", self.url, self.seen))
            .bearer_auth(&self.token)
            .send()
            .await?;
        let Ok(news) = r.json::<Notifications>().await else { return Ok(Vec::new()) };
        self.seen = news.next.max(self.seen);
        Ok(news.notifications.into_iter().map(|n| n.text).collect())
    }
}

fn print_answer(answer: &ChatAnswer) {
    println!("{}", answer.text);
    for choice in &answer.choices {
        println!("  • {}  →  {}", choice.label, choice.command);
    }
}

pub async fn run(args: ChatArgs) -> anyhow::Result<ExitCode> {
    let mut client = Client {
        http: reqwest::Client::new(),
        url: args.url.trim_end_matches('/').to_string(),
        token: args.token,
        seen: 0,
    };
    if !args.message.is_empty() || args.document.is_some() {
        let answer = client.say(&args.message.join(" "), args.document.as_deref()).await?;
        print_answer(&answer);
        return Ok(ExitCode::SUCCESS);
    }
    // Interactive: only news from now on.
    let _ = client.news().await;
    while !client.news().await.map(|n| n.is_empty()).unwrap_or(true) {}
    println!("Talking to Book-E at {} (/help for what it understands, Ctrl-D to leave).", client.url);
    let stdin = std::io::stdin();
    loop {
        for line in client.news().await.unwrap_or_default() {
            println!("» {line}");
        }
        print!("> ");
        std::io::stdout().flush().ok();
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            return Ok(ExitCode::SUCCESS);
        }
        if line.trim().is_empty() {
            continue;
        }
        match client.say(line.trim(), None).await {
            Ok(answer) => print_answer(&answer),
            Err(e) => eprintln!("{e:#}"),
        }
    }
}
