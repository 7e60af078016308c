//! The `phi-gateway` command: serve, migrate, and the operator tools. Each
//! subcommand calls the library; nothing here knows SQL or crypto.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use phi_gateway::config::{Environment, Settings};
use phi_gateway::crypto::Keyring;
use phi_gateway::startup::Application;
use phi_gateway::{db, rekey, seed, telemetry};

#[derive(Parser)]
#[command(name = "phi-gateway", version, about = "Encrypted PHI storage gateway")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API until SIGTERM/SIGINT.
    Serve,
    /// Apply pending migrations (as MIGRATION_DATABASE_URL, else DATABASE_URL).
    Migrate {
        /// Revert down to this version instead (0 reverts everything).
        #[arg(long, value_name = "VERSION")]
        revert_to: Option<i64>,
    },
    /// Print the effective settings, secrets masked.
    Config,
    /// Manage the keyring (keys/README.md).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Re-seal every value not under the active key, online and resumable.
    Reencrypt {
        /// Count what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Load demo data, or large synthetic sets for benchmarks.
    Seed {
        /// About 50 classical herbs, practitioners in several cities, and a
        /// few submissions for the demo users.
        #[arg(long)]
        demo: bool,
        #[arg(long, default_value_t = 0)]
        practitioners: u64,
        #[arg(long, default_value_t = 0)]
        herbs: u64,
        #[arg(long, default_value_t = 0)]
        submissions: u64,
    },
    /// Service API keys (stored only as keyed hashes).
    #[command(subcommand)]
    Apikeys(ApiKeysCommand),
    /// The audit log: verify the chain, export, verify an export.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print a token signed as Payload would sign it, for trying the API
    /// locally (refused in production).
    DevToken {
        #[arg(long)]
        user: String,
        /// Comma-separated: practitioner, editor, admin, auditor.
        #[arg(long, default_value = "")]
        roles: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Write a new keyring (mode 0600) with a fresh data key and index key.
    Generate {
        #[arg(long)]
        out: PathBuf,
        /// Mark it a development keyring (refused in production).
        #[arg(long)]
        development: bool,
    },
    /// Add a data key version and make it active; older ones decrypt only.
    Rotate {
        /// Rotate the blind-index key instead.
        #[arg(long)]
        index: bool,
    },
    /// Each key version's state and how many values still use it.
    Status,
    /// Retire a decrypt-only version that no row uses any more.
    Retire {
        version: u32,
        #[arg(long)]
        index: bool,
    },
}

#[derive(Subcommand)]
enum ApiKeysCommand {
    /// Make a key and print it once.
    Create {
        #[arg(long, value_parser = ["service", "auditor"])]
        role: String,
        #[arg(long)]
        name: String,
        /// RFC 3339 time after which the key stops working.
        #[arg(long)]
        expires: Option<chrono::DateTime<chrono::Utc>>,
    },
    List,
    Revoke {
        id: uuid::Uuid,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute the hash chain and checkpoints; report the first broken link.
    Verify {
        #[arg(long)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long)]
        to: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Export entries (with a manifest and a signed checkpoint) to a file.
    Export {
        #[arg(long)]
        from: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long)]
        to: Option<chrono::DateTime<chrono::Utc>>,
        #[arg(long, default_value = "ndjson", value_parser = ["ndjson", "csv", "fhir"])]
        format: String,
        #[arg(long)]
        out: PathBuf,
    },
    /// Check an export file against its manifest, offline (needs the keyring).
    VerifyExport { file: PathBuf },
    /// Seal pending entries now and sign a checkpoint.
    Seal,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = ?e, "phi-gateway failed");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Keys(KeysCommand::Generate { out, development }) = &cli.command {
        // Needs no database and no other settings.
        Keyring::generate(*development)?.write_file(out, false)?;
        println!(
            "wrote a new keyring to {} (mode 0600); back it up apart from the database",
            out.display()
        );
        return Ok(());
    }
    if let Command::DevToken { user, roles } = &cli.command {
        return dev_token(user, roles);
    }
    let settings = Settings::load()?;
    telemetry::init(settings.server.log_format);
    let production = settings.environment == Environment::Production;
    match cli.command {
        Command::Serve => {
            let app = Application::build(&settings).await?;
            tracing::info!(
                host = %settings.server.host,
                port = app.port(),
                environment = ?settings.environment,
                "serving"
            );
            app.run_until_stopped().await?;
            tracing::info!("stopped");
        }
        Command::Migrate { revert_to } => match revert_to {
            Some(v) => db::revert(&settings.database, v).await?,
            None => db::migrate(&settings.database).await?,
        },
        Command::Config => println!("{settings:#?}"),
        Command::Keys(KeysCommand::Generate { .. }) => unreachable!("handled above"),
        Command::Keys(KeysCommand::Rotate { index }) => {
            let path = &settings.keys.keyring_file;
            let mut ring = Keyring::load_file(path, production)?;
            let v = if index {
                ring.rotate_index()?
            } else {
                ring.rotate()?
            };
            ring.write_file(path, true)?;
            let what = if index { "index key" } else { "data key" };
            println!(
                "{what} {v} is now active in {}; restart the gateways, then run `phi-gateway reencrypt`",
                path.display()
            );
        }
        Command::Keys(KeysCommand::Status) => {
            let ring = Keyring::load(&settings.keys, production)?;
            let pool = db::operator_pool(&settings.database).await?;
            let usage = rekey::usage(&pool).await?;
            println!("data keys:");
            for (id, state) in ring.data_keys() {
                println!(
                    "  v{id:<4} {:<13} {} values",
                    format!("{state:?}"),
                    usage.rows_under_data_key(id)
                );
            }
            println!("index keys:");
            for (id, state) in ring.index_keys() {
                println!(
                    "  v{id:<4} {:<13} {} values",
                    format!("{state:?}"),
                    usage.rows_under_index_key(id)
                );
            }
            println!("by column:");
            for (col, m) in usage.data.iter().chain(usage.index.iter()) {
                let parts: Vec<String> = m.iter().map(|(k, n)| format!("v{k}: {n}")).collect();
                println!(
                    "  {col:<40} {}",
                    if parts.is_empty() {
                        "-".into()
                    } else {
                        parts.join(", ")
                    }
                );
            }
        }
        Command::Keys(KeysCommand::Retire { version, index }) => {
            let path = &settings.keys.keyring_file;
            let mut ring = Keyring::load_file(path, production)?;
            let pool = db::operator_pool(&settings.database).await?;
            let usage = rekey::usage(&pool).await?;
            let left = if index {
                usage.rows_under_index_key(version)
            } else {
                usage.rows_under_data_key(version)
            };
            if left > 0 {
                bail!(
                    "{left} values still use version {version}; run `phi-gateway reencrypt` first"
                );
            }
            if index {
                ring.retire_index(version)?
            } else {
                ring.retire(version)?
            };
            ring.write_file(path, true)?;
            println!("version {version} retired");
        }
        Command::Reencrypt { dry_run } => {
            let ring = Keyring::load(&settings.keys, production)?;
            let pool = db::operator_pool(&settings.database).await?;
            let r = rekey::reencrypt(&pool, &ring, dry_run)
                .await
                .context("re-encrypting")?;
            let verb = if dry_run {
                "would re-seal"
            } else {
                "re-sealed"
            };
            println!(
                "scanned {} rows, {verb} {}, {} changed concurrently (already current)",
                r.scanned, r.rewritten, r.raced
            );
        }
        Command::DevToken { .. } => unreachable!("handled above"),
        Command::Audit(cmd) => audit_command(cmd, &settings, production).await?,
        Command::Apikeys(cmd) => {
            let pool = db::operator_pool(&settings.database).await?;
            match cmd {
                ApiKeysCommand::Create {
                    role,
                    name,
                    expires,
                } => {
                    let ring = Keyring::load(&settings.keys, production)?;
                    let role = if role == "auditor" {
                        phi_gateway::auth::Role::Auditor
                    } else {
                        phi_gateway::auth::Role::Service
                    };
                    let (id, secret) =
                        phi_gateway::apikeys::create(&pool, &ring, &name, role, expires).await?;
                    eprintln!("key {id} created; it is shown once and stored only as a hash:");
                    println!("{}", secret.as_str());
                }
                ApiKeysCommand::List => {
                    for k in phi_gateway::apikeys::list(&pool).await? {
                        println!(
                            "{}  {:<8} {:<30} created {}  expires {}  {}",
                            k.id,
                            k.role,
                            k.name,
                            k.created_at.format("%Y-%m-%d"),
                            k.expires_at
                                .map(|t| t.to_rfc3339())
                                .unwrap_or_else(|| "never".into()),
                            if k.revoked_at.is_some() {
                                "REVOKED"
                            } else {
                                ""
                            }
                        );
                    }
                }
                ApiKeysCommand::Revoke { id } => {
                    if !phi_gateway::apikeys::revoke(&pool, id).await? {
                        bail!("no live key {id}");
                    }
                    println!("key {id} revoked");
                }
            }
        }
        Command::Seed {
            demo,
            practitioners,
            herbs,
            submissions,
        } => {
            let ring = std::sync::Arc::new(Keyring::load(&settings.keys, production)?);
            let pool = db::operator_pool(&settings.database).await?;
            if demo {
                let n = seed::demo(&pool, ring.clone()).await?;
                println!("demo data: {n}");
            }
            if practitioners + herbs + submissions > 0 {
                seed::bulk(&pool, &ring, practitioners, herbs, submissions).await?;
            }
        }
    }
    Ok(())
}

/// Needs only PAYLOAD_SECRET (and PHI_USER_COLLECTIONS): no database.
fn dev_token(user: &str, roles: &str) -> anyhow::Result<()> {
    if std::env::var("PHI_ENVIRONMENT").is_ok_and(|e| e.starts_with("prod")) {
        bail!("dev-token is for development only");
    }
    let secret = std::env::var("PAYLOAD_SECRET").context("PAYLOAD_SECRET is not set")?;
    let collection = std::env::var("PHI_USER_COLLECTIONS")
        .ok()
        .and_then(|c| c.split(',').next().map(str::to_string))
        .unwrap_or_else(|| "users".into());
    let v = phi_gateway::auth::JwtVerifier::new(&secret.into(), vec![collection.clone()], 0);
    let now = chrono::Utc::now().timestamp();
    let roles: Vec<&str> = roles
        .split(',')
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .collect();
    println!(
        "{}",
        v.sign(&serde_json::json!({"id": user, "collection": collection, "iat": now, "exp": now + 8 * 3600, "roles": roles}))
    );
    Ok(())
}

async fn audit_command(
    cmd: AuditCommand,
    settings: &Settings,
    production: bool,
) -> anyhow::Result<()> {
    use phi_gateway::audit::{self, chain, export};
    let ring = Keyring::load(&settings.keys, production)?;
    if let AuditCommand::VerifyExport { file } = &cmd {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let m = export::verify_file(&text, &ring).context("the export does not verify")?;
        println!(
            "ok: {} rows, seq {:?}..{:?}, head {}, checkpoint at position {:?} signed by index key {:?}",
            m.rows,
            m.first_seq,
            m.last_seq,
            m.head_hash.as_deref().unwrap_or("-"),
            m.checkpoint.as_ref().map(|c| c.pos),
            m.checkpoint.as_ref().map(|c| c.key_id)
        );
        return Ok(());
    }
    let pool = db::operator_pool(&settings.database).await?;
    match cmd {
        AuditCommand::Verify { from, to } => {
            chain::seal_all(&pool).await?;
            let v = chain::verify(&pool, &ring, from, to).await?;
            match v.first_problem {
                None => println!(
                    "ok: {} entries and {} checkpoints verified",
                    v.entries_checked, v.checkpoints_checked
                ),
                Some(p) => bail!("{} problem(s); first: {p}", v.problems),
            }
        }
        AuditCommand::Export {
            from,
            to,
            format,
            out,
        } => {
            let format = export::Format::parse(&format).expect("clap checked");
            let mut operator =
                phi_gateway::auth::Principal::user("cli", &[phi_gateway::auth::Role::Auditor]);
            operator.collection = Some("operator".into());
            let mut conn = pool.acquire().await?;
            audit::record(
                &mut conn,
                &operator,
                &[
                    audit::Entry::new(audit::Action::Export, "audit_log", "export")
                        .reason(Some(format!("cli to {}", out.display()))),
                ],
            )
            .await?;
            drop(conn);
            let total: i64 = sqlx::query_scalar("SELECT count(*) FROM audit.chain")
                .fetch_one(&pool)
                .await?;
            let progress = rekey::Progress::new(total as u64);
            let (tx, mut rx) =
                tokio::sync::mpsc::channel::<Result<actix_web::web::Bytes, std::io::Error>>(8);
            let writer = {
                let out = out.clone();
                tokio::spawn(async move {
                    use std::io::Write;
                    let mut f = std::io::BufWriter::new(std::fs::File::create(&out)?);
                    while let Some(chunk) = rx.recv().await {
                        let chunk: actix_web::web::Bytes = chunk?;
                        f.write_all(&chunk)?;
                    }
                    f.flush()?;
                    Ok::<_, std::io::Error>(())
                })
            };
            let m = export::stream(&pool, &ring, format, from, to, tx, Some(&progress)).await?;
            writer.await??;
            progress.finish();
            println!("exported {} rows to {}", m.rows, out.display());
        }
        AuditCommand::Seal => {
            let n = chain::seal_all(&pool).await?;
            let c = chain::checkpoint(&pool, &ring).await?;
            println!("sealed {n} entries; head position {:?}", c.map(|c| c.pos));
        }
        AuditCommand::VerifyExport { .. } => unreachable!("handled above"),
    }
    Ok(())
}
