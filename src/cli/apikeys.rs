//! `phi-gateway apikeys create|list|revoke`.

use anyhow::bail;
use clap::Subcommand;

use crate::config::Settings;
use crate::crypto::Keyring;
use crate::identity::Role;
use crate::{apikeys, db};

#[derive(Subcommand)]
pub enum ApiKeysCommand {
    /// Make a key and print it once.
    Create {
        /// service (reads and writes as a service) or auditor (audit exports).
        #[arg(long, value_parser = ["service", "auditor"])]
        role: String,
        /// Who or what holds it (shown by list, recorded in the audit log).
        #[arg(long)]
        name: String,
        /// RFC 3339 time after which the key stops working.
        #[arg(long)]
        expires: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Every key: id, role, name, dates, revoked or not (never the secret).
    List,
    /// Revoke a key now; its next request is refused.
    Revoke {
        /// The key's id (`apikeys list`).
        id: uuid::Uuid,
    },
}

pub async fn run(cmd: ApiKeysCommand, settings: &Settings) -> anyhow::Result<()> {
    let db = crate::store::Db::new(
        db::operator_pool(&settings.database).await?,
        crate::store::Mode::of(&settings.database),
    );
    match cmd {
        ApiKeysCommand::Create {
            role,
            name,
            expires,
        } => {
            let ring = Keyring::load(&settings.keys, settings.production()).await?;
            let role = if role == "auditor" {
                Role::Auditor
            } else {
                Role::Service
            };
            let (id, secret) = apikeys::create(&db, &ring, &name, role, expires).await?;
            eprintln!("key {id} created; it is shown once and stored only as a hash:");
            println!("{}", secret.as_str());
        }
        ApiKeysCommand::List => {
            for k in apikeys::list(&db).await? {
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
            if !apikeys::revoke(&db, id).await? {
                bail!("no live key {id}");
            }
            println!("key {id} revoked");
        }
    }
    Ok(())
}
