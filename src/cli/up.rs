//! `bookkeeper up`: every service in this process, on the embedded log (SQLite by
//! default), with the sandbox Fiken and Folio and the example policies. For
//! trying Bookkeeper in one command; production runs `serve <service>` per pod.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use bookkeeper_core::config::Settings;
use bookkeeper_core::people::{Directory, Door, Person, Right};
use bookkeeper_core::Store;
use clap::Args;
use secrecy::{ExposeSecret, SecretString};

/// Arguments of `up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Where the example policies are built to and watched from.
    #[arg(long, default_value = ".bookkeeper/policies")]
    policy_dir: PathBuf,
    /// Do not build and load the example policies (every proposal then goes to a person).
    #[arg(long)]
    no_policies: bool,
    /// Run the scripted demo through the live system once it is up.
    #[arg(long)]
    demo: bool,
    /// With --demo: stop after the demo instead of serving on.
    #[arg(skip)]
    pub exit_after_demo: bool,
}

impl UpArgs {
    /// `bookkeeper demo`: up, the demo, and stop.
    pub fn demo_only() -> UpArgs {
        UpArgs { policy_dir: ".bookkeeper/policies".into(), no_policies: false, demo: true, exit_after_demo: true }
    }
}

/// Writes the example policies shipped inside this binary into `dir` (the folder
/// Review-E watches), leaving a file that already holds the same bytes untouched.
fn install_policies(dir: &Path) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut installed = Vec::new();
    for example in bookkeeper_example_policies::EXAMPLES {
        let target = dir.join(format!("{}.wasm", example.name));
        if std::fs::read(&target).ok().as_deref() != Some(example.component) {
            std::fs::write(&target, example.component).with_context(|| format!("writing {}", target.display()))?;
        }
        installed.push(example.name.to_string());
    }
    Ok(installed)
}

fn token() -> String {
    format!("local-{}", uuid::Uuid::new_v4().simple())
}

pub async fn run(args: UpArgs, store: Store, settings: &Settings) -> anyhow::Result<ExitCode> {
    let mut settings = settings.clone();
    let stop = bookkeeper_core::shutdown::StopSignal::new();

    // Policies first, so the first proposal meets them.
    let mut expected: Vec<String> = Vec::new();
    let policies = if args.no_policies {
        eprintln!("policies: none loaded (--no-policies): every proposal goes to a person");
        None
    } else {
        match install_policies(&args.policy_dir) {
            Ok(names) => {
                eprintln!("policies: {} (in {})", names.join(", "), args.policy_dir.display());
                expected = names;
                Some(args.policy_dir.clone())
            }
            Err(e) => {
                eprintln!("policies: NOT loaded: {e:#}");
                eprintln!("          until then every proposal goes to a person");
                None
            }
        }
    };

    // Local tokens for you and a reviewer, unless configured.
    let you = token();
    let reviewer = token();
    // `up` is the sandbox: a connector without credentials is its local fake.
    let mut accounting = accounting_api::Config::from_settings(&settings, true)?;
    // The desk is on in `up`: one process, so a key made now serves.
    settings.or_set("REVIEW_E_DESK_SESSION_KEY", format!("{}{}", token(), token()));
    let mut review = review_e::Config::from_settings(&settings)?;
    review.policy_dir = policies.or(review.policy_dir);
    let mut book_e = book_e::Config::from_settings(&settings)?;
    // The people directory: the one configured, or you and a reviewer with local
    // tokens (kept as hashes in .bookkeeper/people.json, so its format is there to copy).
    let generated_people = review.people.is_empty() && book_e.people.is_empty();
    if generated_people {
        let people = Directory::new(vec![
            Person::new("you").may_also(Right::Propose).with_token(Door::BookE, &you),
            Person::new("reviewer")
                .may_also(Right::Review)
                .may_also(Right::Publish)
                .may_also(Right::Propose)
                .with_token(Door::ReviewE, &reviewer),
        ])
        .map_err(|e| anyhow::anyhow!(e))?;
        let _ = std::fs::create_dir_all(".bookkeeper");
        if let Err(e) = people.save(std::path::Path::new(".bookkeeper/people.json")) {
            tracing::warn!(error = %e, "could not write .bookkeeper/people.json");
        }
        review.people = people.clone();
        book_e.people = people;
    } else if book_e.people.is_empty() {
        book_e.people = Directory::new(vec![Person::new("you").may_also(Right::Propose).with_token(Door::BookE, &you)])
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    // Discord over the gateway (a laptop has no public endpoint): Book-E asserts who
    // pressed a review button, and the decision records that it was not proven.
    // Only while the books are the sandbox: with real Fiken or Folio credentials,
    // a press Book-E merely asserts must be allowed explicitly.
    let live_books = settings.secret("FIKEN_TOKEN").is_some() || settings.secret("FOLIO_API_KEY").is_some();
    if review.asserted_press_token.is_none() && review.presses.is_none() && !live_books {
        let press = SecretString::new(token());
        review.asserted_press_token = Some(press.clone());
        if let Some(discord) = book_e.discord.as_mut() {
            discord.asserted_press_token.get_or_insert(press);
        }
    }
    settings.or_set("COST_API_TOKEN", token());
    let cost = cost_api::Config::from_settings(&settings)?;
    let cost_token = cost.token.as_ref().map(|t| t.expose_secret().clone()).unwrap_or_default();
    let cron = bookkeeper_cron::Config::from_settings(&settings)?;

    accounting.poll_interval = std::time::Duration::from_millis(200);
    let accounting = accounting_api::AccountingApi::build(accounting, store.clone()).await?;
    let accounting_url = format!("http://127.0.0.1:{}", accounting.port());
    let sandbox = accounting.is_sandbox();
    let fakes = accounting.sandbox().clone();
    book_e.accounting_url = accounting_url.clone();
    let review = review_e::ReviewE::build(review, store.clone()).await?;
    let review_url = format!("http://127.0.0.1:{}", review.port());
    let registry = review.registry().clone();
    let desk_url = review.desk_url();
    // A link only for the reviewer `up` made: a configured directory's people
    // get theirs from `bookkeeper desk link`.
    let desk_link = match generated_people {
        true => Some(review.desk_sign_in_link("reviewer").await.context("issuing a desk sign-in link")?),
        false => None,
    };
    let book_e = book_e::BookE::build(book_e, store.clone()).await?;
    let book_e_url = format!("http://127.0.0.1:{}", book_e.port());
    let has_discord = book_e.has_discord();
    let cost = cost_api::CostApi::build(cost, store.clone()).await?;
    let cost_url = format!("http://127.0.0.1:{}", cost.port());
    let cron = bookkeeper_cron::Checks::new(
        store.clone(),
        bookkeeper_cron::Config { accounting_url: accounting_url.clone(), ..cron },
    )?;

    let mut tasks = vec![
        tokio::spawn(accounting.run_until_stopped(stop.stopped())),
        tokio::spawn(review.run_until_stopped(stop.stopped())),
        tokio::spawn(book_e.run_until_stopped(stop.stopped())),
        tokio::spawn(cost.run_until_stopped(stop.stopped())),
    ];
    let cron_stop = stop.stopped();
    tasks.push(tokio::spawn(async move { cron.run_on_schedule(cron_stop).await }));

    // Announce only once the whole example set is in force, so no proposal is
    // judged by half of it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let active = registry.current();
        let loaded: Vec<String> = active.set.iter().map(|(p, _)| p.metadata.name.clone()).collect();
        if expected.iter().all(|name| loaded.contains(name)) {
            break;
        }
        if std::time::Instant::now() > deadline {
            eprintln!("policies: only {} of {} in force after 60 s", loaded.len(), expected.len());
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    println!(
        "Bookkeeper is up ({} log{}).",
        store.backend_name(),
        if sandbox { ", SANDBOX Fiken and Folio" } else { "" }
    );
    println!();
    println!("  Book-E (chat)        {book_e_url}   POST /chat");
    println!("  Review-E (reviews)   {review_url}   GET /reviews/pending");
    println!("  Accounting API       {accounting_url}   GET /folio/balance");
    println!("  Cost API             {cost_url}   GET /costs/monthly");
    println!("  Review desk (web)    {desk_url}");
    println!();
    // Plainly, what Book-E can read here: without the tools it asks for the amounts.
    let reader = bookkeeper_reader::Reader::detect();
    println!("Documents: Book-E {}.", reader.describe());
    println!();
    if let Some(link) = &desk_link {
        println!("Open the review desk as `reviewer` (one-time link, valid 15 minutes):");
        println!("  {link}");
    } else {
        println!("Sign in to the review desk with a desk token, or a link from `bookkeeper desk link <person>`.");
    }
    println!("Chat with Book-E in another terminal:");
    println!("  export BOOK_E_URL={book_e_url} BOOKKEEPER_TOKEN={you}");
    println!("  bookkeeper chat");
    println!("Review, and publish policies, as `reviewer` (Review-E's API):");
    println!("  export REVIEW_E_URL={review_url} REVIEWER_TOKEN={reviewer}");
    println!("  bookkeeper policy list --token $REVIEWER_TOKEN");
    println!(
        "  bookkeeper policy push my-policy.wasm --token $REVIEWER_TOKEN   (or drop it into {})",
        args.policy_dir.display()
    );
    if !has_discord {
        println!("Discord: DISCORD_TOKEN is not set, so Book-E runs without Discord (HTTP and CLI only).");
    }
    println!("Stop with Ctrl-C.");

    if args.demo {
        let demo = match (fakes.fiken, fakes.folio) {
            (Some(fiken), Some(folio)) => Some(super::demo::Demo {
                store: store.clone(),
                book_e: book_e_url.clone(),
                you: you.clone(),
                review_e: review_url.clone(),
                reviewer: reviewer.clone(),
                cost: cost_url.clone(),
                cost_token: cost_token.clone(),
                fiken,
                folio,
            }),
            _ => {
                eprintln!("the demo runs against the sandbox only; unset FIKEN_TOKEN and FOLIO_API_KEY to see it");
                None
            }
        };
        if let Some(demo) = demo {
            let outcome = demo.run().await;
            if let Err(e) = &outcome {
                eprintln!("the demo stopped: {e:#}");
            }
            if args.exit_after_demo {
                stop.stop();
                for task in tasks {
                    let _ = task.await;
                }
                return Ok(if outcome.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
            }
        }
    }

    super::shutdown_signal().await;
    eprintln!("stopping ...");
    stop.stop();
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("a service stopped with an error: {e:#}"),
            Err(e) => eprintln!("a service panicked: {e}"),
        }
    }
    Ok(ExitCode::SUCCESS)
}
