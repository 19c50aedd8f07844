//! Running the document tools (tesseract, pdftotext, pdftoppm): found on `PATH`,
//! given their arguments directly (no shell), bounded in time and memory, since
//! what they parse is a stranger's file.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::ReadError;

/// Address space a tool may use: poppler and tesseract need a few hundred MiB for
/// a large page; a hostile file gets no more.
const MEMORY_LIMIT_BYTES: u64 = 2 << 30;

/// The program `name` on `PATH`, if there is one.
pub fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    // Only absolute directories: a relative one would depend on where Book-E was started.
    std::env::split_paths(&path).filter(|d| d.is_absolute()).map(|dir| dir.join(name)).find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `program` with `args`, `stdin` written to it, and returns its standard
/// output; a failure, a time-out or a non-zero exit is a [`ReadError::Tool`]
/// naming the program and the last line it printed on standard error.
pub fn output(program: &Path, args: &[&str], stdin: Option<&[u8]>, timeout: Duration) -> Result<Vec<u8>, ReadError> {
    output_unless(program, args, stdin, timeout, None)
}

/// Like [`output`], but stopped as soon as `stop` is set (its answer is no
/// longer needed): then a [`ReadError::Tool`] saying so.
pub fn output_unless(
    program: &Path,
    args: &[&str],
    stdin: Option<&[u8]>,
    timeout: Duration,
    stop: Option<&AtomicBool>,
) -> Result<Vec<u8>, ReadError> {
    let name = program.file_name().and_then(|n| n.to_str()).unwrap_or("a tool").to_string();
    let fail = |why: String| ReadError::Tool { program: name.clone(), why };
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // None of the service's environment (its secrets) reaches a tool parsing a stranger's file.
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        // One thread each: the machine's cores are shared with the services, and
        // OpenMP's spinning threads cost more than they give on small images.
        .env("OMP_THREAD_LIMIT", "1");
    // SAFETY: setrlimit is async-signal-safe and touches only the child.
    unsafe {
        use std::os::unix::process::CommandExt;
        command.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: MEMORY_LIMIT_BYTES, rlim_max: MEMORY_LIMIT_BYTES };
            libc::setrlimit(libc::RLIMIT_AS, &limit);
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|e| fail(format!("could not start: {e}")))?;
    let writer = match (stdin, child.stdin.take()) {
        (Some(bytes), Some(mut pipe)) => {
            let bytes = bytes.to_vec();
            Some(std::thread::spawn(move || {
                // A tool that stops reading early closes the pipe: not our error.
                let _ = pipe.write_all(&bytes);
            }))
        }
        _ => None,
    };
    let mut stdout = child.stdout.take().ok_or_else(|| fail("no output pipe".into()))?;
    let mut stderr = child.stderr.take().ok_or_else(|| fail("no error pipe".into()))?;
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        // Drained to the end (a tool that cannot write its complaints would die of
        // it), keeping the last 8 KiB: where the reason is.
        let mut tail = Vec::new();
        let mut chunk = [0u8; 8192];
        while let Ok(n) = stderr.read(&mut chunk) {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&chunk[..n]);
            if tail.len() > 16 * 1024 {
                tail.drain(..tail.len() - 8 * 1024);
            }
        }
        tail
    });
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("took longer than {:.1} s and was stopped", timeout.as_secs_f64())));
            }
            Ok(None) if stop.is_some_and(|s| s.load(Ordering::Relaxed)) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail("stopped: its answer was no longer needed".into()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("could not be waited for: {e}")));
            }
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    let out = out_reader.join().unwrap_or_default();
    let err = err_reader.join().unwrap_or_default();
    if !status.success() {
        let err = String::from_utf8_lossy(&err);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
        return Err(fail(format!("failed ({status}): {}", last.chars().take(200).collect::<String>())));
    }
    Ok(out)
}
