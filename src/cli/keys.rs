//! `phi-gateway keys ..` (the data keyring and the audit signing key) and
//! `phi-gateway reencrypt`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::audit::signing::SigningKeys;
use crate::config::KekAuth;
use crate::config::Settings;
use crate::crypto::kek::FileKek;
use crate::crypto::keyring::write_private;
use crate::crypto::{Kek, Keyring, Purpose};
use crate::{db, rekey};

/// `keys ..`: what runs from files alone, and what needs the settings
/// and the database, told apart by type (each half matched whole).
#[derive(Subcommand)]
pub enum KeysCommand {
    #[command(flatten)]
    Offline(OfflineKeys),
    #[command(flatten)]
    Online(OnlineKeys),
}

/// Commands that need no settings and no database.
#[derive(Subcommand)]
pub enum OfflineKeys {
    /// Write a new keyring (mode 0600) with a fresh data key and index key.
    Generate {
        /// The keyring file to write (refused if it exists).
        #[arg(long)]
        out: PathBuf,
        /// Mark it a development keyring (refused in production).
        #[arg(long)]
        development: bool,
        /// Wrap the keys by this key-encryption key (transit://HOST:PORT/KEY
        /// or file://PATH; credentials from PHI_KEK_TOKEN etc.).
        #[arg(long, env = "PHI_KEK")]
        kek: Option<String>,
    },
    /// A local key-encryption key file (development and small installs).
    #[command(subcommand)]
    Kek(KekCommand),
    /// Ask a running gateway to re-read its keyring (SIGHUP to its pid).
    Reload {
        /// The gateway's process id.
        #[arg(long)]
        pid: u32,
    },
    /// The audit signing key (Ed25519), kept apart from the keyring.
    #[command(subcommand)]
    Signing(SigningCommand),
}

/// Commands on the configured keyring (and, for some, the database).
#[derive(Subcommand)]
pub enum OnlineKeys {
    /// Wrap a keyring's keys (in the clear until now) by a KEK, in place.
    Wrap {
        /// The KEK: transit://HOST:PORT/KEY or file://PATH.
        #[arg(long)]
        kek: String,
    },
    /// Wrap every key anew: by another KEK, or by the newest version of the
    /// same transit key after rotating it there. No row changes.
    Rewrap {
        /// The KEK: transit://HOST:PORT/KEY or file://PATH.
        #[arg(long)]
        kek: String,
    },
    /// Add a data key version and make it active; older ones decrypt only.
    Rotate {
        /// Rotate the blind-index key instead.
        #[arg(long)]
        index: bool,
        /// With several gateways: add the new key decrypt-only, so that
        /// every gateway can open values under it before any writes them;
        /// roll the keyring, then `keys activate N`, then roll again.
        #[arg(long, conflicts_with = "index")]
        staged: bool,
    },
    /// Make a staged (decrypt-only) data key the active one.
    Activate { version: u32 },
    /// Each key version's state and how many values still use it.
    Status,
    /// Retire a decrypt-only version that no value uses any more (API-key
    /// hashes and analytics keys included).
    Retire {
        /// The key version to retire (`keys status`).
        version: u32,
        /// A blind-index key version, not a data key.
        #[arg(long)]
        index: bool,
    },
}

#[derive(Subcommand)]
pub enum KekCommand {
    /// Write a new KEK file (mode 0600); name it as file://PATH.
    Generate {
        /// The KEK file to write.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum SigningCommand {
    /// Write a new signing key (mode 0600) and its public key.
    Generate {
        /// The signing key file to write.
        #[arg(long)]
        out: PathBuf,
        /// Where to write the public key (for auditors).
        #[arg(long)]
        public_out: PathBuf,
    },
    /// A new active signing key; old ones stay in the public file.
    Rotate {
        /// The signing key file, rewritten in place.
        #[arg(long)]
        file: PathBuf,
        /// Where to write the public keys, old ones included.
        #[arg(long)]
        public_out: PathBuf,
    },
    /// Write the public key of a signing key file.
    Public {
        /// The signing key file.
        #[arg(long)]
        file: PathBuf,
        /// Where to write the public key.
        #[arg(long)]
        out: PathBuf,
    },
    /// Each signing key version and its state.
    Status {
        /// The signing key file.
        #[arg(long)]
        file: PathBuf,
    },
}

fn write_public(signing: &SigningKeys, out: &std::path::Path) -> anyhow::Result<()> {
    std::fs::write(out, signing.public().to_file_text())
        .with_context(|| format!("writing {}", out.display()))
}

pub async fn offline(cmd: &OfflineKeys) -> anyhow::Result<()> {
    match cmd {
        OfflineKeys::Generate {
            out,
            development,
            kek,
        } => {
            let mut ring = Keyring::generate(*development)?;
            if let Some(uri) = kek {
                let auth = KekAuth::from_env(&crate::config::ProcessEnv)?;
                let kek = Kek::connect(uri, &auth, !*development).await?;
                ring.wrap_with(&kek, false).await?;
            }
            ring.write_file(out, false)?;
            match ring.kek() {
                Some(uri) => println!(
                    "wrote a new keyring to {} (mode 0600), its keys wrapped by {uri}",
                    out.display()
                ),
                None => println!(
                    "wrote a new keyring to {} (mode 0600), its keys in the clear (development; production needs --kek); \
                     back it up apart from the database",
                    out.display()
                ),
            }
        }
        OfflineKeys::Kek(KekCommand::Generate { out }) => {
            let (text, id) = FileKek::generate_text()?;
            write_private(out, text.as_bytes(), false)?;
            println!(
                "wrote a new KEK {id} to {} (mode 0600); name it as file://{} and keep it apart from the keyring and its backups",
                out.display(),
                out.display()
            );
        }
        OfflineKeys::Reload { pid } => {
            let ok = std::process::Command::new("kill")
                .args(["-HUP", &pid.to_string()])
                .status()
                .context("running kill")?
                .success();
            if !ok {
                bail!("could not signal process {pid}");
            }
            println!("asked process {pid} to reload its keyring (see its log for the outcome)");
        }
        OfflineKeys::Signing(s) => match s {
            SigningCommand::Generate { out, public_out } => {
                let k = SigningKeys::generate()?;
                k.write_file(out, false)?;
                write_public(&k, public_out)?;
                println!(
                    "wrote a new audit signing key to {} (mode 0600) and its public key to {}; \
                     give auditors the public key only",
                    out.display(),
                    public_out.display()
                );
            }
            SigningCommand::Rotate { file, public_out } => {
                let mut k = SigningKeys::load_file(file)?;
                let v = k.rotate()?;
                k.write_file(file, true)?;
                write_public(&k, public_out)?;
                println!(
                    "signing key {v} is now active in {}; restart the sealing gateway; \
                     the new public key file {} also verifies older checkpoints. The retired key's \
                     private half is no longer in the file, and what it signs dated from now on does \
                     not verify: destroy old copies of the file all the same",
                    file.display(),
                    public_out.display()
                );
            }
            SigningCommand::Public { file, out } => {
                let keys = SigningKeys::load_file(file)?;
                write_public(&keys, out)?;
                if keys.holds_retired_private_keys() {
                    // Rewritten without the retired private halves.
                    keys.write_file(file, true)?;
                    println!(
                        "removed retired keys' private halves from {}",
                        file.display()
                    );
                }
                println!("wrote the public key to {}", out.display());
            }
            SigningCommand::Status { file } => {
                let keys = SigningKeys::load_file(file)?;
                let public = keys.public();
                for (id, state, at) in keys.states() {
                    match public.not_after(id) {
                        Some(end) => println!(
                            "  v{id:<4} {:<8} created {at}, signed until {}",
                            format!("{state:?}"),
                            end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                        ),
                        None => println!("  v{id:<4} {:<8} created {at}", format!("{state:?}")),
                    }
                }
                if keys.holds_retired_private_keys() {
                    println!(
                        "warning: {} still holds retired keys' private halves (written before rotation dropped them); \
                         `keys signing public` or the next rotation rewrites it without them",
                        file.display()
                    );
                }
            }
        },
    }
    Ok(())
}

pub async fn run(cmd: OnlineKeys, settings: &Settings) -> anyhow::Result<()> {
    let production = settings.production();
    match &cmd {
        OnlineKeys::Rotate { index, staged } => {
            let (index, staged) = (*index, *staged);
            let path = &settings.keys.keyring_file;
            let (mut ring, kek) = Keyring::open_file(path, &settings.keys, production).await?;
            let v = if index {
                ring.rotate(Purpose::Index)?
            } else if staged {
                ring.stage()?
            } else {
                ring.rotate(Purpose::Data)?
            };
            if let Some(kek) = &kek {
                ring.wrap_with(kek, false).await?;
            }
            ring.write_file(path, true)?;
            let what = if index { "index key" } else { "data key" };
            if staged {
                println!(
                    "data key {v} is staged (decrypt-only) in {}; roll the keyring to every gateway (SIGHUP or restart), \
                     then `phi-gateway keys activate {v}` and roll it again",
                    path.display()
                );
            } else {
                println!(
                    "{what} {v} is now active in {}; roll the keyring to every gateway (SIGHUP or restart), then run `phi-gateway reencrypt`",
                    path.display()
                );
            }
        }
        OnlineKeys::Activate { version } => {
            let path = &settings.keys.keyring_file;
            let (mut ring, kek) = Keyring::open_file(path, &settings.keys, production).await?;
            ring.activate(*version)?;
            if let Some(kek) = &kek {
                ring.wrap_with(kek, false).await?;
            }
            ring.write_file(path, true)?;
            println!(
                "data key {version} is now active in {}; roll the keyring to every gateway (SIGHUP or restart), then run `phi-gateway reencrypt`",
                path.display()
            );
        }
        OnlineKeys::Wrap { kek } | OnlineKeys::Rewrap { kek } => {
            let rewrap = matches!(cmd, OnlineKeys::Rewrap { .. });
            let path = &settings.keys.keyring_file;
            // Opened with the KEK the file names (not PHI_KEK, which may
            // already name the new one).
            let mut opening = settings.keys.clone();
            opening.kek = None;
            let (mut ring, _) = Keyring::open_file(path, &opening, false).await?;
            if !rewrap && ring.kek().is_some() {
                bail!(
                    "{} is already wrapped by {}; use `keys rewrap --kek {kek}`",
                    path.display(),
                    ring.kek().unwrap_or_default()
                );
            }
            if rewrap && ring.kek().is_none() {
                bail!(
                    "{} holds its keys in the clear; use `keys wrap --kek {kek}`",
                    path.display()
                );
            }
            let new = Kek::connect(kek, &settings.keys.kek_auth, production).await?;
            ring.wrap_with(&new, true).await?;
            // Proved before it replaces the file: the new file opens with
            // the new KEK alone.
            let text = ring.to_file_text()?;
            Keyring::from_file_text_with(&text, &new)
                .await
                .context("the rewrapped keyring does not open; the file is unchanged")?;
            ring.write_file(path, true)?;
            println!(
                "every key in {} is now wrapped by {kek}; set PHI_KEK={kek} if it is set, \
                 then roll the file to every gateway (SIGHUP or restart)",
                path.display()
            );
        }
        OnlineKeys::Status => {
            let ring = Keyring::load(&settings.keys, production).await?;
            let pool = db::operator_pool(&settings.database).await?;
            let usage = rekey::usage(&pool).await?;
            match ring.kek() {
                Some(uri) => println!("keys wrapped by {uri}"),
                None => println!("keys in the clear (no KEK; refused in production)"),
            }
            for purpose in [Purpose::Data, Purpose::Index] {
                println!("{} keys:", purpose.as_str());
                for (id, state) in ring.versions(purpose) {
                    println!(
                        "  v{id:<4} {:<13} {} values  {}",
                        format!("{state:?}"),
                        usage.rows_under(purpose, id),
                        match ring.kek_version(purpose, id) {
                            Some(v) => format!("KEK version {v}"),
                            None => "not wrapped".to_string(),
                        }
                    );
                }
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
        OnlineKeys::Retire { version, index } => {
            let purpose = if *index {
                Purpose::Index
            } else {
                Purpose::Data
            };
            let path = &settings.keys.keyring_file;
            let (mut ring, _) = Keyring::open_file(path, &settings.keys, production).await?;
            let pool = db::operator_pool(&settings.database).await?;
            rekey::retire(&pool, &mut ring, purpose, *version).await?;
            ring.write_file(path, true)?;
            println!("version {version} retired");
        }
    }
    Ok(())
}

pub async fn reencrypt(settings: &Settings, dry_run: bool) -> anyhow::Result<()> {
    let ring = Keyring::load(&settings.keys, settings.production()).await?;
    let pool = db::operator_pool(&settings.database).await?;
    crate::service::keycheck::compare(
        &crate::store::Db::new(pool.clone(), crate::store::Mode::of(&settings.database)),
        &ring,
    )
    .await?;
    let r = rekey::reencrypt(&pool, &ring, dry_run, &super::progress::Shown::new())
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
    if r.facts_written > 0 {
        println!(
            "wrote de-identified facts for {} submissions from before migration 0008",
            r.facts_written
        );
    }
    if r.legacy_regions_kept > 0 {
        println!(
            "{} submissions keep a free-text region that is not an ISO 3166 code (in region_legacy); \
             setting a code through the API (PATCH region) clears it",
            r.legacy_regions_kept
        );
    }
    Ok(())
}
