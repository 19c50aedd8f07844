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
    let mut out = String::new();
    if args.markdown {
        out.push_str(&Settings::markdown_table());
    } else if args.json {
        for (name, value, origin) in settings.effective() {
            out.push_str(&format!("{}\n", serde_json::json!({"name": name, "value": value, "from": origin})));
        }
    } else {
        if let Some(file) = settings.file() {
            out.push_str(&format!("# configuration file: {file}\n"));
        }
        let effective = settings.effective();
        let width = effective.iter().map(|(n, _, _)| n.len()).max().unwrap_or(0);
        out.push_str(&format!("{:<width$}  {:<11}  VALUE\n", "SETTING", "FROM"));
        for (name, value, origin) in effective {
            out.push_str(&format!("{name:<width$}  {origin:<11}  {value}\n"));
        }
    }
    // Piped into `head`, the reader may close early: that is not an error.
    match std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}
