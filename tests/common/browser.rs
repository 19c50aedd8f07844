//! A real browser for the desk's tests: Debian's headless Chromium driven over
//! W3C WebDriver by ChromeDriver. The protocol is a handful of JSON requests, so
//! this speaks it with the reqwest client the tests already have, rather than
//! building a WebDriver crate and its dependencies for a few calls.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{json, Value};

/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Debian puts them.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Whether the browser is installed; when it is not and the run requires it
/// (`BOOKKEEPER_REQUIRE_BROWSER=1`, which CI sets), the test fails.
pub fn available() -> bool {
    let here = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !here && std::env::var("BOOKKEEPER_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
        panic!("BOOKKEEPER_REQUIRE_BROWSER=1 but {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)");
    }
    here
}

/// One browser session, and the driver process behind it (killed when dropped).
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    shots: PathBuf,
}

/// An element on the current page.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts ChromeDriver and a headless Chromium session; screenshots go to `shots`.
    pub async fn start(shots: &Path) -> Browser {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
        let started = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = std::env::temp_dir().join(format!("bookkeeper-chromium-{}", uuid::Uuid::new_v4().simple()));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000", "--no-first-run", "--disable-extensions",
                         format!("--user-data-dir={}", profile.display())]
            }
        }}});
        let created: Value =
            http.post(format!("{base}/session")).json(&capabilities).send().await.unwrap().json().await.unwrap();
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {created}"))
            .to_string();
        std::fs::create_dir_all(shots).unwrap();
        Browser { driver, base, session, http, shots: shots.to_path_buf() }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        if let Some(error) = answer["value"].get("error") {
            panic!("WebDriver {path}: {error}: {}", answer["value"]["message"]);
        }
        answer["value"].clone()
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    async fn get(&self, path: &str) -> Value {
        self.call(reqwest::Method::GET, path, None).await
    }

    /// Opens an address.
    pub async fn goto(&self, url: &str) {
        self.post("/url", json!({"url": url})).await;
    }

    /// The address now shown.
    pub async fn url(&self) -> String {
        self.get("/url").await.as_str().unwrap_or_default().to_string()
    }

    /// The first element matching a CSS selector; fails the test when none does.
    pub async fn find(&self, css: &str) -> Element {
        match self.try_find(css).await {
            Some(e) => e,
            None => panic!("no `{css}` on {}: {}", self.url().await, self.page_text().await),
        }
    }

    /// The first element matching a CSS selector, if any.
    pub async fn try_find(&self, css: &str) -> Option<Element> {
        let found = self.post("/elements", json!({"using": "css selector", "value": css})).await;
        found.as_array()?.first()?.get(ELEMENT)?.as_str().map(|id| Element(id.to_string()))
    }

    /// Clicks an element.
    pub async fn click(&self, e: &Element) {
        self.post(&format!("/element/{}/click", e.0), json!({})).await;
    }

    /// Types into an element (a file input takes a path).
    pub async fn type_into(&self, e: &Element, text: &str) {
        self.post(&format!("/element/{}/value", e.0), json!({"text": text})).await;
    }

    /// An element's attribute or property (`value`, `disabled`, ...), as the page has it now.
    pub async fn property(&self, e: &Element, name: &str) -> Value {
        self.get(&format!("/element/{}/property/{name}", e.0)).await
    }

    /// The cookies of the current page, with HttpOnly ones (the driver sees them all).
    pub async fn cookies(&self) -> Vec<Value> {
        self.get("/cookie").await.as_array().cloned().unwrap_or_default()
    }

    /// An element's visible text.
    pub async fn text(&self, e: &Element) -> String {
        self.get(&format!("/element/{}/text", e.0)).await.as_str().unwrap_or_default().to_string()
    }

    /// The whole page's visible text.
    pub async fn page_text(&self) -> String {
        let text = self.script("return document.body ? document.body.innerText : ''").await;
        text.as_str().unwrap_or_default().to_string()
    }

    /// Runs a script in the page and returns its value.
    pub async fn script(&self, script: &str) -> Value {
        self.post("/execute/sync", json!({"script": script, "args": []})).await
    }

    /// Presses one key, as a person would, on whatever has focus.
    pub async fn press(&self, key: &str) {
        let actions = json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
            {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key}]}]});
        self.post("/actions", actions).await;
    }

    /// Waits (without reloading) until the address contains `part`: a click
    /// returns before the navigation it starts has always finished.
    pub async fn until_url(&self, part: &str) {
        let started = Instant::now();
        loop {
            let url = self.url().await;
            if url.contains(part) {
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(15), "never got to `{part}`: at {url}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (without reloading, which could post a form again) until the page
    /// says `text`, and returns the page's text.
    pub async fn until_says(&self, text: &str) -> String {
        let started = Instant::now();
        loop {
            let now = self.page_text().await;
            if now.contains(text) {
                return now;
            }
            assert!(started.elapsed() < Duration::from_secs(15), "the page never said `{text}`: {now}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the page's text contains `text`, reloading every half second.
    pub async fn until_text(&self, text: &str, within: Duration) {
        let started = Instant::now();
        loop {
            if self.page_text().await.contains(text) {
                return;
            }
            assert!(started.elapsed() < within, "the page never said `{text}`: {}", self.page_text().await);
            tokio::time::sleep(Duration::from_millis(500)).await;
            self.post("/refresh", json!({})).await;
        }
    }

    /// Saves a screenshot of the page as `<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.get("/screenshot").await;
        let bytes = base64::engine::general_purpose::STANDARD.decode(png.as_str().unwrap_or_default()).unwrap();
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// Basic accessibility of the current page: one `h1`, a `main`, a `lang`, a
    /// label for every form control a person fills in, alt text on every image,
    /// and keyboard focus that reaches the page's first control. Returns what is
    /// wrong, empty when nothing is.
    pub async fn accessibility_problems(&self) -> Vec<String> {
        let found = self
            .script(
                r#"
                const problems = [];
                if (document.querySelectorAll('h1').length !== 1) problems.push('not exactly one h1');
                if (!document.querySelector('main')) problems.push('no main landmark');
                if (!document.documentElement.lang) problems.push('no lang on html');
                for (const c of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
                  const labelled = (c.id && document.querySelector('label[for="' + c.id + '"]')) || c.closest('label')
                    || c.getAttribute('aria-label') || c.getAttribute('aria-labelledby');
                  if (!labelled) problems.push('unlabelled ' + c.tagName.toLowerCase() + ' ' + (c.name || ''));
                }
                for (const i of document.querySelectorAll('img')) if (!i.alt) problems.push('image without alt: ' + i.src);
                for (const b of document.querySelectorAll('button')) if (!b.textContent.trim()) problems.push('button without text');
                const first = document.querySelector('a[href], button:not([disabled]), input:not([type=hidden]), select, textarea');
                if (first) { first.focus(); if (document.activeElement !== first) problems.push('the first control takes no focus'); }
                return problems;
                "#,
            )
            .await;
        found.as_array().map(|a| a.iter().filter_map(|p| p.as_str().map(String::from)).collect()).unwrap_or_default()
    }

    /// Ends the session and the driver.
    pub async fn quit(mut self) {
        let _ = self.http.delete(format!("{}/session/{}", self.base, self.session)).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
    }
}
