//! `bookkeeper config`: the effective configuration, as this process would run
//! with it: every setting, its value (secrets redacted), and where it came from.

use std::process::ExitCode;

use bookkeeper_core::config::Settings;
use clap::Args;

/// `bookkeeper config` options.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// One JSON object per setting instead of a table.
    #[arg(long)]
    json: bool,
    /// Print docs/configuration.md's table of every setting instead.
    #[arg(long, conflicts_with = "json")]
    markdown: bool,
}

pub fn run(args: ConfigArgs, settings: &Settings) -> anyhow::Result<ExitCode> {
    if args.markdown {
        print!("{}", Settings::markdown_table());
        return Ok(ExitCode::SUCCESS);
    }
    let effective = settings.effective();
    if args.json {
        for (name, value, origin) in effective {
            println!("{}", serde_json::json!({"name": name, "value": value, "from": origin}));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(file) = settings.file() {
        println!("# configuration file: {file}");
    }
    let width = effective.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
    println!("{:<width$}  {:<11}  VALUE", "SETTING", "FROM");
    for (name, value, origin) in effective {
        println!("{name:<width$}  {origin:<11}  {value}");
    }
    Ok(ExitCode::SUCCESS)
}
