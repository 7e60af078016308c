//! `phi-gateway audit verify|export|verify-export|seal|disclosures|archive|hold|release|holds`.

use std::io::{BufReader, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::audit::anchor::Anchor;
use crate::audit::archive;
use crate::audit::chain::VerifyKeys;
use crate::audit::export::{self, Format, SignedManifest};
use crate::audit::sealer::{self, Sealer};
use crate::audit::signing::{SigningKeys, VerifyingKeys};
use crate::audit::verify;
use crate::config::Settings;
use crate::crypto::Keyring;
use crate::db;
use crate::domain::time::Instant;
use crate::identity::{Principal, Role};
use crate::service::export::Exporter;
use crate::service::report::AccountingFormat;

/// `audit ..`: verifying an export needs its files alone; the others the
/// settings and the database (told apart by type).
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check an export against its signed manifest, offline, with the
    /// public key alone.
    VerifyExport(VerifyExportArgs),
    #[command(flatten)]
    Online(OnlineAudit),
}

#[derive(clap::Args)]
pub struct VerifyExportArgs {
    /// The export or accounting file to check.
    file: PathBuf,
    /// The public signing key file.
    #[arg(long)]
    public_key: PathBuf,
    /// A CSV export's manifest (default: FILE.manifest.json).
    #[arg(long)]
    manifest: Option<PathBuf>,
}

/// Commands on the configured database.
#[derive(Subcommand)]
pub enum OnlineAudit {
    /// Recompute the hash chain and checkpoints; report the first broken link.
    Verify {
        /// From this instant (RFC 3339, `2026-01-31T00:00:00Z`, or a date).
        #[arg(long)]
        from: Option<Instant>,
        /// Up to this instant (RFC 3339, or a date).
        #[arg(long)]
        to: Option<Instant>,
        /// Also require the chain to reach every checkpoint anchored here: a
        /// file, or a directory of `*.jsonl` files, one per sealing gateway
        /// (default: PHI_AUDIT_ANCHOR).
        #[arg(long)]
        anchor: Option<PathBuf>,
        /// Verify without an anchor in production, where otherwise it is
        /// refused: without one, a chain cut at its tail, or rewritten with
        /// every checkpoint, verifies.
        #[arg(long, conflicts_with = "anchor")]
        no_anchor: bool,
        /// The public signing key (default: PHI_AUDIT_VERIFY_KEY).
        #[arg(long)]
        public_key: Option<PathBuf>,
        /// Verify incrementally: from the newest anchored checkpoint whose
        /// signature verifies (it must match the chain), recompute only the
        /// entries after it. What is before it was verified when it was the
        /// head; run a full verification (without this) now and then.
        #[arg(long)]
        since_anchor: bool,
    },
    /// Export entries, with a signed manifest, to a file (CSV: the
    /// manifest beside it, FILE.manifest.json).
    Export {
        /// From this instant (RFC 3339, `2026-01-31T00:00:00Z`, or a date).
        #[arg(long)]
        from: Option<Instant>,
        /// Up to this instant (RFC 3339, or a date).
        #[arg(long)]
        to: Option<Instant>,
        /// ndjson or csv (CSV with its signed manifest beside it).
        #[arg(long, default_value = "ndjson", value_parser = format_named)]
        format: Format,
        /// The file to write.
        #[arg(long)]
        out: PathBuf,
    },
    /// The accounting of disclosures of one patient's records (45 CFR
    /// 164.528): every access by anyone else, by recipient and purpose, to
    /// standard output. Itself an audit entry.
    Disclosures {
        /// The patient's namespaced user id (`users:5`).
        #[arg(long)]
        patient: String,
        /// Default: six years before --to.
        #[arg(long)]
        from: Option<Instant>,
        /// Default: now.
        #[arg(long)]
        to: Option<Instant>,
        /// json or csv (the summary), or fhir (every disclosure as a FHIR
        /// R4 AuditEvent, NDJSON; sealed entries only).
        #[arg(long, default_value = "json", value_parser = accounting_format)]
        format: AccountingFormat,
        /// Write it to this file (JSON and CSV: with the signed manifest
        /// beside it, FILE.manifest.json; FHIR ends with it), for
        /// `audit verify-export`. Default: standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Move the oldest monthly partitions past the retention
    /// (PHI_AUDIT_RETENTION_YEARS, six years at least) and not under a legal
    /// hold to a signed export file in DIR, verify it, then drop them. The
    /// live chain's verification starts where the archive ends; the file is
    /// checked with `audit verify-export`.
    Archive {
        /// Where the archive file is written (kept: on WORM storage).
        #[arg(long)]
        out: PathBuf,
        /// Say what would be archived, and what stops it, without doing it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Place a legal hold: while in force, no partition holding the
    /// patient's entries (in the range, if given) or dated in the range is
    /// archived.
    Hold {
        /// The patient's namespaced user id (`users:5`).
        #[arg(long)]
        patient: Option<String>,
        /// From this instant (RFC 3339, `2026-01-31T00:00:00Z`, or a date).
        #[arg(long)]
        from: Option<Instant>,
        /// Up to this instant (RFC 3339, or a date).
        #[arg(long)]
        to: Option<Instant>,
        /// Why (the matter, the request): required.
        #[arg(long)]
        reason: String,
        /// Who places it (recorded on the hold).
        #[arg(long)]
        by: String,
    },
    /// Release a legal hold (recorded on it; holds are never deleted).
    Release {
        /// The hold's id (`audit holds`).
        id: i64,
        /// Who releases it (recorded on the hold).
        #[arg(long)]
        by: String,
    },
    /// Every legal hold, in force or released, and the archives made.
    Holds,
    /// Seal pending entries now and sign a checkpoint; with --follow, keep
    /// sealing (for deployments where no gateway seals).
    Seal {
        /// Keep sealing every PHI_AUDIT_SEAL_INTERVAL_MS until interrupted.
        #[arg(long)]
        follow: bool,
    },
}

fn accounting_format(s: &str) -> Result<AccountingFormat, String> {
    AccountingFormat::parse(s).ok_or_else(|| format!("{s:?}: one of json, csv, fhir"))
}

fn format_named(s: &str) -> Result<Format, String> {
    Format::parse(s).ok_or_else(|| format!("{s:?}: one of ndjson, csv, fhir"))
}

fn csv_manifest_path(file: &std::path::Path) -> PathBuf {
    let mut p = file.as_os_str().to_owned();
    p.push(".manifest.json");
    PathBuf::from(p)
}

pub fn verify_export(args: &VerifyExportArgs) -> anyhow::Result<()> {
    let VerifyExportArgs {
        file,
        public_key,
        manifest,
    } = args;
    let keys = VerifyingKeys::load_file(public_key)?;
    let detached_path = manifest.clone().unwrap_or_else(|| csv_manifest_path(file));
    let detached: Option<SignedManifest> = match std::fs::read_to_string(&detached_path) {
        Ok(text) => Some(
            serde_json::from_str(&text).context("the manifest file is not a signed manifest")?,
        ),
        Err(_) if manifest.is_none() => None,
        Err(e) => {
            return Err(e)
                .with_context(|| format!("reading the manifest {}", detached_path.display()));
        }
    };
    // An accounting of disclosures: small, read whole.
    let last_line = last_line(file)?;
    if detached.as_ref().is_some_and(SignedManifest::is_accounting)
        || (detached.is_none() && export::ends_with_accounting(&last_line))
    {
        let content =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let m = export::verify_accounting(&content, detached.as_ref(), &keys)
            .context("the accounting does not verify")?;
        println!(
            "ok: the accounting of disclosures of {} from {} to {} ({}), {} rows, signed {}{}",
            m.patient,
            m.from,
            m.to,
            m.format,
            m.rows,
            m.made_at,
            m.checkpoint
                .as_ref()
                .map(|c| format!(", the chain's head at position {}", c.pos))
                .unwrap_or_default()
        );
        return Ok(());
    }
    let is_csv = file.extension().is_some_and(|e| e == "csv") || manifest.is_some();
    let csv_manifest = if is_csv {
        Some(detached.with_context(|| {
            format!(
                "reading the CSV export's manifest {}",
                detached_path.display()
            )
        })?)
    } else {
        None
    };
    let f = std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
    let m = export::verify_file(BufReader::new(f), csv_manifest.as_ref(), &keys)
        .context("the export does not verify")?;
    println!(
        "ok: {} rows, positions {}..{}, seq {}..{}, head {}, checkpoint at position {}",
        m.rows,
        shown(m.first_pos),
        shown(m.last_pos),
        shown(m.first_seq),
        shown(m.last_seq),
        m.head_hash.as_deref().unwrap_or("-"),
        shown(m.checkpoint.as_ref().map(|c| c.pos)),
    );
    Ok(())
}

/// A figure, or `-` when there is none (an empty export).
fn shown(v: Option<i64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// The last non-empty line of a file (read from its end: exports are
/// large).
fn last_line(file: &std::path::Path) -> anyhow::Result<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
    let len = f.metadata()?.len();
    let tail = len.min(1 << 20);
    f.seek(SeekFrom::Start(len - tail))?;
    let mut buf = Vec::with_capacity(tail as usize);
    f.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    Ok(text
        .trim_end_matches('\n')
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .to_string())
}

fn operator_sealer(settings: &Settings, pool: sqlx::PgPool) -> anyhow::Result<Sealer> {
    let key = required_path(
        None,
        &settings.audit.signing_key,
        "audit signing key (PHI_AUDIT_SIGNING_KEY)",
    )?;
    Ok(Sealer {
        pool,
        signing: Arc::new(SigningKeys::load_file(&key)?),
        anchor: settings.audit.anchor.as_ref().map(Anchor::new),
    })
}

pub async fn run(cmd: OnlineAudit, settings: &Settings) -> anyhow::Result<()> {
    let pool = db::operator_pool(&settings.database).await?;
    match cmd {
        OnlineAudit::Verify {
            from,
            to,
            anchor,
            public_key,
            since_anchor,
            no_anchor,
        } => {
            sealer::seal_all(&pool).await?;
            let public = public_key
                .or_else(|| settings.audit.verify_key.clone())
                .map(|p| VerifyingKeys::load_file(&p))
                .transpose()?;
            // The keyring only for checkpoints made before migration 0009.
            let ring = Keyring::load(&settings.keys, settings.production())
                .await
                .ok();
            let anchor = anchor.or_else(|| settings.audit.anchor.clone());
            if anchor.is_none() && settings.production() && !no_anchor {
                bail!(
                    "no anchor: without one, a chain cut at its tail or rewritten together with its \
                     checkpoints verifies. Name it (--anchor FILE_OR_DIR, or PHI_AUDIT_ANCHOR), or \
                     say --no-anchor to verify the database's own chain alone"
                );
            }
            let anchored = anchor.map(|p| Anchor::read(&p)).transpose()?;
            let keys = VerifyKeys {
                public: public.as_ref(),
                keyring: ring.as_ref(),
            };
            let since = if since_anchor {
                let anchored = anchored.as_deref().ok_or_else(|| {
                    anyhow::anyhow!(
                        "--since-anchor needs the anchor file (--anchor FILE, or PHI_AUDIT_ANCHOR)"
                    )
                })?;
                let c = verify::newest_trusted(keys, anchored).ok_or_else(|| {
                    anyhow::anyhow!(
                        "no anchored checkpoint verifies with the public key: nothing to start from \
                         (run a full verification)"
                    )
                })?;
                eprintln!(
                    "from the anchored checkpoint at position {} ({})",
                    c.pos, c.at
                );
                Some(c)
            } else {
                None
            };
            let progress = super::progress::Shown::new();
            let v = verify::verify_with(
                &pool,
                keys,
                verify::Options {
                    anchor: anchored.as_deref(),
                    from: from.map(|t| t.0),
                    to: to.map(|t| t.0),
                    since,
                    progress: &progress,
                },
            )
            .await?;
            if let Some(p) = v.first_problem {
                bail!("{} problem(s); first: {p}", v.problems);
            }
            // A chain that no signature covers proves only that it is a
            // chain: rewritten whole, it would verify just as well.
            if v.entries_checked > 0 && v.checkpoints_checked == 0 && v.anchored_checked == 0 {
                let why = "no signed checkpoint and no anchor cover these entries: a chain rewritten \
                           whole would verify as well (run `phi-gateway audit seal`, or a gateway with \
                           AUDIT_SEALER_DATABASE_URL and PHI_AUDIT_SIGNING_KEY, and keep PHI_AUDIT_ANCHOR)";
                if settings.production() {
                    bail!("{} entries are chained, but {why}", v.entries_checked);
                }
                eprintln!("WARNING: {why}");
            }
            println!(
                "ok: {} entries, {} checkpoints and {} anchored checkpoints verified",
                v.entries_checked, v.checkpoints_checked, v.anchored_checked
            );
            if let Some(p) = v.archived_through {
                println!(
                    "positions 1 to {p} are archived: the chain was verified from the archive's signed cut \
                     (check each archive file with `audit verify-export`)"
                );
            }
        }
        OnlineAudit::Disclosures {
            patient,
            from,
            to,
            format,
            out,
        } => {
            let db =
                crate::store::Db::new(pool.clone(), crate::store::Mode::of(&settings.database));
            let who = Principal::operator("disclosures", &[Role::Auditor]);
            let signer = match &settings.audit.signing_key {
                Some(_) => Some(operator_sealer(settings, pool.clone())?),
                None => {
                    eprintln!(
                        "WARNING: no audit signing key (PHI_AUDIT_SIGNING_KEY): the accounting is not signed"
                    );
                    None
                }
            };
            let a = crate::service::report::accounting(
                &db,
                &who,
                &patient,
                from.map(|t| t.0),
                to.map(|t| t.0),
                format,
                signer.as_ref(),
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            use crate::service::report::AccountingBody;
            let text = match a.body {
                AccountingBody::Json(a) => serde_json::to_string(&a)?,
                AccountingBody::Csv(t) | AccountingBody::Fhir(t) => t,
            };
            match out {
                Some(out) => {
                    std::fs::write(&out, &text)
                        .with_context(|| format!("writing {}", out.display()))?;
                    // JSON and CSV keep the manifest beside them; FHIR
                    // ends with it (the Provenance).
                    if let (Some(m), false) = (&a.manifest, format == AccountingFormat::Fhir) {
                        let path = csv_manifest_path(&out);
                        export::write_csv_manifest(&path, m)?;
                        println!("manifest written to {}", path.display());
                    }
                    println!("accounting written to {}", out.display());
                }
                None => print!("{text}"),
            }
        }
        OnlineAudit::Export {
            from,
            to,
            format,
            out,
        } => {
            let exporter = Exporter {
                reader: pool.clone(),
                audit_pool: crate::store::Db::new(
                    pool.clone(),
                    crate::store::Mode::of(&settings.database),
                ),
                sealer: operator_sealer(settings, pool.clone())?,
            };
            let operator = Principal::operator("audit-export", &[Role::Auditor]);
            let progress = Arc::new(super::progress::Shown::new());
            let mut running = exporter
                .start(
                    &operator,
                    format,
                    from.map(|t| t.0),
                    to.map(|t| t.0),
                    progress.clone(),
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let mut f = std::io::BufWriter::new(
                std::fs::File::create(&out)
                    .with_context(|| format!("creating {}", out.display()))?,
            );
            while let Some(chunk) = running.chunks.recv().await {
                f.write_all(&chunk?)?;
            }
            f.flush()?;
            f.get_ref().sync_all()?;
            let signed = running.done.await??;
            if format == Format::Csv {
                let path = csv_manifest_path(&out);
                export::write_csv_manifest(&path, &signed)?;
                println!("manifest written to {}", path.display());
            }
            let m = signed.open(
                &SigningKeys::load_file(&required_path(
                    None,
                    &settings.audit.signing_key,
                    "audit signing key",
                )?)?
                .public(),
            )?;
            println!("exported {} rows to {}", m.rows, out.display());
        }
        OnlineAudit::Archive { out, dry_run } => {
            let years = settings.audit.retention_years;
            let parts = archive::partitions(&pool).await?;
            let (take, stop) = archive::eligible(&parts, years, chrono::Utc::now());
            for p in &take {
                println!(
                    "{}: {} to {}",
                    p.name,
                    p.from.date_naive(),
                    p.to.date_naive()
                );
            }
            if let Some(why) = &stop {
                println!("stops there: {why}");
            }
            if take.is_empty() {
                println!("nothing to archive (retention {years} years)");
            } else if dry_run {
                println!("dry run: {} partition(s) would be archived", take.len());
            } else {
                let sealer = operator_sealer(settings, pool.clone())?;
                let a = archive::archive(&sealer, &take, years, &out, "operator:archive").await?;
                println!(
                    "archived {} entries (positions {}..{}) of {} to {}; the cut is signed at position {}. \
                     Check it with: phi-gateway audit verify-export {} --public-key <the audit public key>",
                    a.rows,
                    a.first_pos,
                    a.last_pos,
                    a.partitions.join(", "),
                    a.file.display(),
                    a.checkpoint.pos,
                    a.file.display()
                );
            }
        }
        OnlineAudit::Hold {
            patient,
            from,
            to,
            reason,
            by,
        } => {
            let id = archive::place_hold(
                &pool,
                patient.as_deref(),
                from.map(|t| t.0),
                to.map(|t| t.0),
                &reason,
                &by,
            )
            .await?;
            println!("legal hold {id} placed");
        }
        OnlineAudit::Release { id, by } => {
            archive::release_hold(&pool, id, &by).await?;
            println!("legal hold {id} released");
        }
        OnlineAudit::Holds => {
            let holds = archive::holds(&pool).await?;
            println!("{}", serde_json::to_string_pretty(&holds)?);
        }
        OnlineAudit::Seal { follow } => {
            let sealer = operator_sealer(settings, pool.clone())?;
            let n = sealer::seal_all(&pool).await?;
            let c = sealer.checkpoint().await?;
            println!(
                "sealed {n} entries; head position {}",
                shown(c.map(|c| c.pos))
            );
            if follow {
                sealer.spawn(
                    settings.audit.seal_interval,
                    settings.audit.checkpoint_every,
                );
                tokio::signal::ctrl_c().await?;
            }
        }
    }
    Ok(())
}

/// A path given on the command line or in the settings.
fn required_path(
    given: Option<PathBuf>,
    configured: &Option<PathBuf>,
    what: &str,
) -> anyhow::Result<PathBuf> {
    given
        .or_else(|| configured.clone())
        .with_context(|| format!("no {what}: pass it, or set it in the settings"))
}
