//! Running the document tools (tesseract, pdftotext, pdftoppm): found on `PATH`,
//! given their arguments directly (no shell), with none of the service's
//! environment, bounded in time, memory, what they print and the files they
//! write, since what they parse is a stranger's file.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::ReadError;

/// Address space a tool may use: poppler and tesseract need a few hundred MiB for
/// a large page; a hostile file gets no more.
const MEMORY_LIMIT_BYTES: u64 = 2 << 30;

/// What a tool may print: a page's text or words are kilobytes, but a hostile PDF
/// can inflate to gigabytes of text, which would land in the service's memory.
pub const MAX_OUTPUT_BYTES: usize = 16 << 20;

/// The largest file a tool may write (a rendered page is at most 3500 px square,
/// 12 MiB as PGM; a converted HEIC photo is read only up to 64 MiB): a tool
/// writing more is stopped by the kernel.
const FILE_LIMIT_BYTES: u64 = 512 << 20;

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
            let limit = |bytes: u64| libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
            libc::setrlimit(libc::RLIMIT_AS, &limit(MEMORY_LIMIT_BYTES));
            libc::setrlimit(libc::RLIMIT_FSIZE, &limit(FILE_LIMIT_BYTES));
            // A crash leaves no core file holding the stranger's document.
            libc::setrlimit(libc::RLIMIT_CORE, &limit(0));
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
    let overflowed = std::sync::Arc::new(AtomicBool::new(false));
    let out_reader = std::thread::spawn({
        let overflowed = overflowed.clone();
        move || {
            // Read up to one byte past the bound: more than that is refused, and the
            // pipe is closed on the tool, which is then stopped.
            let mut buf = Vec::new();
            let _ = (&mut stdout).take(MAX_OUTPUT_BYTES as u64 + 1).read_to_end(&mut buf);
            if buf.len() > MAX_OUTPUT_BYTES {
                overflowed.store(true, Ordering::Relaxed);
            }
            buf
        }
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
    let too_much = || fail(format!("printed more than {} MiB and was stopped", MAX_OUTPUT_BYTES >> 20));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() > timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!("took longer than {:.1} s and was stopped", timeout.as_secs_f64())));
            }
            Ok(None) if overflowed.load(Ordering::Relaxed) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(too_much());
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
    if out.len() > MAX_OUTPUT_BYTES {
        return Err(too_much());
    }
    if !status.success() {
        let err = String::from_utf8_lossy(&err);
        let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no message");
        return Err(fail(format!("failed ({status}): {}", last.chars().take(200).collect::<String>())));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_that_prints_without_end_is_stopped_at_the_bound() {
        // `yes` prints forever: unbounded, it would fill the service's memory until the time-out.
        let Some(yes) = find("yes") else { panic!("coreutils' yes is on every machine") };
        let e = output(&yes, &[], None, Duration::from_secs(120)).unwrap_err();
        assert!(e.to_string().contains("printed more than 16 MiB"), "{e}");
    }

    #[test]
    fn a_tool_sees_none_of_the_services_environment() {
        let env = find("env").expect("coreutils' env");
        let out = String::from_utf8(output(&env, &[], None, Duration::from_secs(30)).unwrap()).unwrap();
        let mut given: Vec<&str> = out.lines().filter_map(|l| l.split_once('=').map(|(k, _)| k)).collect();
        given.sort_unstable();
        assert_eq!(given, ["LANG", "OMP_THREAD_LIMIT", "PATH"], "{out}");
    }

    #[test]
    fn a_tool_that_writes_a_huge_file_is_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("big");
        let dd = find("dd").expect("coreutils' dd");
        let of = format!("of={}", target.display());
        let e = output(&dd, &["if=/dev/zero", &of, "bs=1M", "count=600"], None, Duration::from_secs(120)).unwrap_err();
        assert!(e.to_string().contains("failed"), "{e}");
        assert!(std::fs::metadata(&target).map(|m| m.len()).unwrap_or(0) <= FILE_LIMIT_BYTES);
    }
}
