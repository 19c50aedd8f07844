//! `bookkeeper bench ...`: the benchmarks live in their own binary,
//! `bookkeeper-bench`, so the shipped `bookkeeper` carries none of them. This
//! entry keeps the documented commands working: it runs that binary, from beside
//! this one, with the same arguments.

use std::process::{Command, ExitCode};

use anyhow::Context;
use clap::Args;

/// `bookkeeper bench <store|policy|accounting|decisions|system> [...]`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true)]
pub struct BenchArgs {
    /// The benchmark and its options, as `bookkeeper-bench` takes them (`bookkeeper bench --help`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let bench = std::env::current_exe().context("finding this binary")?.with_file_name("bookkeeper-bench");
    if !bench.is_file() {
        anyhow::bail!(
            "the benchmarks are a separate binary, `bookkeeper-bench`, and there is none beside this one ({}): \
             build it with `cargo build --release --bin bookkeeper-bench`",
            bench.display()
        );
    }
    let status =
        Command::new(&bench).args(&args.args).status().with_context(|| format!("running {}", bench.display()))?;
    Ok(match status.code() {
        Some(0) => ExitCode::SUCCESS,
        Some(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}
