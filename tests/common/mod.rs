//! What the process tests share: starting `bookkeeper serve <service>` and
//! waiting for its address, stopping it, building an example policy.

// Each test crate uses part of this.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `bookkeeper serve` process; killed when dropped.
pub struct Process {
    child: Child,
    /// Its HTTP address, `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Process {
    /// The OS process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, then the exit status: a graceful stop exits 0.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the process did not stop within 30 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill(self) {}
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `bookkeeper serve <service>` on `database_url` with `env`, and waits
/// for the address it says it listens on.
pub fn serve(service: &str, database_url: &str, env: &[(&str, String)]) -> Process {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bookkeeper"));
    cmd.args(["serve", service])
        .env("DATABASE_URL", database_url)
        .env("BOOKKEEPER_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start bookkeeper serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or_default().to_string());
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| panic!("{service} did not start"));
    Process { child, base }
}

/// Builds the example policy `policies/<policy>` into a component at `out`.
pub fn build_policy(policy: &str, out: &Path) {
    let status = Command::new(env!("CARGO_BIN_EXE_bookkeeper"))
        .args(["policy", "build"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("policies").join(policy))
        .arg("--out")
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success(), "bookkeeper policy build {policy} failed");
}
