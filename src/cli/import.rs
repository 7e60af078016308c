//! `phi-gateway import`: existing records from a source database (README,
//! "Importing existing data").

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use secrecy::SecretString;

use crate::config::Settings;
use crate::crypto::{Keyring, KeyringHandle};
use crate::import::{self, Options, SOURCE_KEY_VAR};
use crate::service::Services;
use crate::store::{Db, Mode};

#[derive(Args)]
pub struct ImportArgs {
    /// The source database's URL (read-only: the import never changes it);
    /// better in PHI_IMPORT_SOURCE_URL than on a command line others can
    /// list. Encrypted columns are decrypted with the key in
    /// PHI_IMPORT_SOURCE_KEY.
    #[arg(
        long,
        env = "PHI_IMPORT_SOURCE_URL",
        hide_env_values = true,
        required_unless_present = "undo"
    )]
    source: Option<String>,
    /// The mapping file (TOML): source tables to collections, columns to
    /// fields (deploy/import/*.toml are examples).
    #[arg(long, required_unless_present = "undo")]
    map: Option<PathBuf>,
    /// Read and validate everything; write nothing but the report.
    #[arg(long)]
    dry_run: bool,
    /// Rows per transaction (submissions: one INSERT each), 1 to 5000.
    #[arg(long, default_value_t = 2000)]
    batch: usize,
    /// Stop once more rows than this are invalid.
    #[arg(long, default_value_t = 100)]
    max_errors: u64,
    /// Where invalid rows (source key, field paths, messages: no values) and
    /// the summary are appended.
    #[arg(long, default_value = "import-report.ndjson")]
    report: PathBuf,
    /// After importing, compare every imported row with its record, opened
    /// (a digest per row; no value is printed).
    #[arg(long)]
    verify: bool,
    /// Undo an import run as a whole (refused once any of its records has
    /// changed since).
    #[arg(long, value_name = "RUN", conflicts_with_all = ["map", "dry_run", "verify"])]
    undo: Option<uuid::Uuid>,
}

pub async fn run(args: ImportArgs, settings: &Settings) -> anyhow::Result<()> {
    let ring = Keyring::load(&settings.keys, settings.production()).await?;
    // The service's own role and pool: the import's writes meet the same
    // policies, triggers and grants as a request's.
    let pool = crate::db::background_pool(&settings.database)?;
    let db = Db::new(pool, Mode::of(&settings.database));
    crate::service::keycheck::compare(&db, &ring).await?;
    let svc = Services::new(db.clone(), db, Arc::new(KeyringHandle::new(ring)));
    if let Some(run) = args.undo {
        let n = import::undo(&svc, run).await?;
        println!("import {run} undone: {n} records deleted");
        return Ok(());
    }
    let (Some(source), Some(map)) = (args.source, args.map) else {
        anyhow::bail!("--source and --map are required");
    };
    let mapping_text =
        std::fs::read_to_string(&map).with_context(|| format!("reading {}", map.display()))?;
    let opts = Options {
        source_url: source,
        mapping_text,
        dry_run: args.dry_run,
        batch: args.batch,
        max_errors: args.max_errors,
        report: args.report.clone(),
        old_key: std::env::var(SOURCE_KEY_VAR).ok().map(SecretString::from),
    };
    let progress = super::progress::Shown::new();
    let started = std::time::Instant::now();
    let s = import::run(&svc, &opts, &progress).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}{}: read {}, imported {}, skipped as already present {}, invalid {} ({:.0} rows/s); report: {}",
        if s.dry_run { "dry run" } else { "import" },
        s.run
            .map(|r| format!(" {r}{}", if s.resumed { " (resumed)" } else { "" }))
            .unwrap_or_default(),
        s.read,
        s.imported,
        s.skipped,
        s.invalid,
        s.read as f64 / secs.max(1e-9),
        args.report.display()
    );
    if let (true, Some(run)) = (args.verify, s.run) {
        let v = import::verify(&svc, &opts, run).await?;
        println!(
            "verify: {} source rows, {} imported, {} match, {} differ{}",
            v.source_rows,
            v.imported,
            v.matching,
            v.differing.len(),
            if v.differing.is_empty() {
                String::new()
            } else {
                format!(" ({})", v.differing.join(", "))
            }
        );
        anyhow::ensure!(
            v.differing.is_empty(),
            "the import does not match its source"
        );
    }
    Ok(())
}
