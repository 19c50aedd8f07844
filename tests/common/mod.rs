//! The one harness of the process tests: the `bookkeeper` binary as a command,
//! `bookkeeper serve <service>` as a process (spawn, wait until it listens,
//! signal, restart, stop, read its logs), a service run inside the test's own
//! runtime, and waiting for an action to reach a phase.

// Each test crate uses part of this.
#![allow(dead_code)]

pub mod browser;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bookkeeper_core::{ActionState, Phase, RecordedEvent, Store};

/// The `bookkeeper` binary under test, with no log filter of the caller's.
pub fn bookkeeper() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bookkeeper"));
    cmd.env_remove("BOOKKEEPER_LOG").env_remove("BOOKKEEPER_CONFIG");
    cmd
}

/// How long a service may take to say where it listens.
const START_WITHIN: Duration = Duration::from_secs(60);

/// A `bookkeeper serve <service>` process: killed when dropped. Its stderr goes to
/// a file kept across restarts, so a test can read what it logged.
pub struct Service {
    name: String,
    env: Vec<(String, String)>,
    child: Option<Child>,
    log: PathBuf,
    /// Its HTTP address once it listens, `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Service {
    /// Starts `bookkeeper serve <service>` with `env` (which names its database)
    /// and returns at once, without waiting for it to listen.
    pub fn spawn(service: &str, env: Vec<(String, String)>) -> Service {
        let log = std::env::temp_dir().join(format!("bookkeeper-{service}-{}.log", uuid::Uuid::new_v4()));
        let mut s = Service { name: service.to_string(), env, child: None, log, base: String::new() };
        s.start_process();
        s
    }

    /// Starts `bookkeeper serve <service>` and waits until it says where it listens.
    pub fn start(service: &str, env: Vec<(String, String)>) -> Service {
        let mut s = Service::spawn(service, env);
        s.wait_listening();
        s
    }

    fn start_process(&mut self) {
        let stderr = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).expect("open the log file");
        let mut cmd = bookkeeper();
        cmd.args(["serve", &self.name]).stdout(Stdio::null()).stderr(Stdio::from(stderr));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().unwrap_or_else(|e| panic!("start bookkeeper serve {}: {e}", self.name)));
    }

    /// Waits until the latest start said `listening on <address>`; fails with the
    /// log when the process exits first or takes too long.
    pub fn wait_listening(&mut self) {
        let started = Instant::now();
        let already = self.log_text().matches("listening on ").count();
        loop {
            let text = self.log_text();
            if let Some(line) = text.split("listening on ").nth(already + 1) {
                self.base = line.split_whitespace().next().unwrap_or_default().to_string();
                return;
            }
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!("bookkeeper serve {} exited ({status}) before listening:\n{text}", self.name);
            }
            assert!(started.elapsed() < START_WITHIN, "bookkeeper serve {} did not start:\n{text}", self.name);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or_default()
    }

    /// Sends a signal (`-STOP`, `-CONT`, ...).
    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            Command::new("kill").args([sig, &c.id().to_string()]).status().unwrap();
        }
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Kills it and starts it again with the same settings (without waiting).
    pub fn restart(&mut self) {
        self.kill();
        self.start_process();
    }

    /// Starts it again after a stop or a kill (without waiting).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "bookkeeper serve {} is still running", self.name);
        self.start_process();
    }

    /// Which service this is.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// SIGTERM, then the exit status: a graceful stop exits 0.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("the service is running");
        Command::new("kill").args(["-TERM", &c.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = c.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("bookkeeper serve {} did not stop within 30 s of SIGTERM:\n{}", self.name, self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM and wait: whether it stopped gracefully (exit 0).
    pub fn stop(&mut self) -> bool {
        self.child.is_none() || self.terminate().success()
    }

    /// Everything it wrote to stderr, across restarts.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The lines of its log that are JSON (`BOOKKEEPER_LOG_FORMAT=json`).
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.log_text().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.signal("-CONT");
        self.kill();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// Starts `bookkeeper serve <service>` on `database_url` with `env` and the log at
/// `info`, and waits until it listens.
pub fn serve(service: &str, database_url: &str, env: &[(&str, String)]) -> Service {
    let mut all =
        vec![("DATABASE_URL".to_string(), database_url.to_string()), ("BOOKKEEPER_LOG".into(), "info".into())];
    all.extend(env.iter().map(|(k, v)| (k.to_string(), v.clone())));
    Service::start(service, all)
}

/// A service run inside the test's own runtime (its `run_until_stopped`), stopped
/// by [`InProcess::stop`], which returns what it returned.
pub struct InProcess {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    /// Runs `run(shutdown)` on the test's runtime.
    pub fn spawn<F, Fut>(run: F) -> InProcess
    where
        F: FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run(Box::pin(async move {
            let _ = stopped.await;
        })));
        InProcess { stop: Some(stop), task }
    }

    /// Asks it to stop, waits, and fails the test if it failed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("the service panicked").expect("the service failed");
    }
}

/// Waits until the action `cid` reaches `phase`; returns its story and how long it
/// took. Fails with the story when it does not within `within`.
pub async fn until_phase(store: &Store, cid: &str, phase: Phase, within: Duration) -> (Vec<RecordedEvent>, Duration) {
    let started = Instant::now();
    loop {
        let story = store.read_correlation(cid).await.unwrap();
        if ActionState::fold(&story).phase() == phase {
            return (story, started.elapsed());
        }
        assert!(started.elapsed() < within, "{cid} did not reach {phase:?} within {within:?}: {story:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes the example policy `policies/<policy>`, as built and shipped inside the
/// binary (CI checks those bytes are what its source builds to), to `out`.
pub fn build_policy(policy: &str, out: &Path) {
    let example = bookkeeper_example_policies::example(policy).unwrap_or_else(|| panic!("no example policy {policy}"));
    std::fs::write(out, example.component).unwrap();
}

/// The Accounting API in the test's runtime on `store`, its connectors the sandbox
/// fakes (Fiken unpaced), polling every `poll`; and the fake Fiken, to count what
/// reached it.
pub async fn accounting_in_process(
    store: Store,
    poll: Duration,
) -> (InProcess, std::sync::Arc<accounting_api::fiken::fake::FakeFiken>) {
    let config = accounting_api::Config {
        addr: "127.0.0.1:0".parse().unwrap(),
        poll_interval: poll,
        fiken_spacing: Duration::ZERO,
        ..Default::default()
    };
    let accounting = accounting_api::AccountingApi::build(config, store).await.unwrap();
    let fiken = accounting.sandbox().fiken.clone().expect("the sandbox Fiken");
    (InProcess::spawn(|stop| accounting.run_until_stopped(stop)), fiken)
}

/// Review-E in the test's runtime on `store`, with `people`, polling every `poll`.
pub async fn review_e_in_process(
    store: Store,
    people: bookkeeper_core::people::Directory,
    poll: Duration,
) -> InProcess {
    let config =
        review_e::Config { addr: "127.0.0.1:0".parse().unwrap(), people, poll_interval: poll, ..Default::default() };
    let review = review_e::ReviewE::build(config, store).await.unwrap();
    InProcess::spawn(|stop| review.run_until_stopped(stop))
}
