//! The manifest: what an export covers (window, positions, hashes, the
//! signed checkpoint), signed with the audit signing key, and where it goes
//! in each format.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::audit::chain::{self, Checkpoint, hex};
use crate::audit::signing::{SigningKeys, VerifyingKeys};

const MANIFEST_DOMAIN: &[u8] = b"phi-gateway/audit-export-manifest/v1\n";
const ACCOUNTING_DOMAIN: &[u8] = b"phi-gateway/accounting-manifest/v1\n";
/// What an accounting's manifest says it is (and how `verify-export` tells
/// it from an export's).
pub const ACCOUNTING_KIND: &str = "accounting-of-disclosures";
pub const MANIFEST_KEY: &str = "phiGatewayManifest";

/// What an export covers, signed as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// The window asked for (by the entries' own time), if any.
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Every entry dated in the window before this time is in the export
    /// (the earlier of `to` and a minute before the export's checkpoint).
    #[serde(default)]
    pub complete_before: Option<DateTime<Utc>>,
    pub rows: u64,
    pub first_pos: Option<i64>,
    pub last_pos: Option<i64>,
    pub first_seq: Option<i64>,
    pub last_seq: Option<i64>,
    /// The hash of the entry before the first exported one (zeros at the
    /// genesis): where the range links into the chain.
    pub first_prev_hash: Option<String>,
    /// The hash of the last exported entry.
    pub head_hash: Option<String>,
    /// SHA-256 over every exported line (the CSV header included), as
    /// written.
    pub lines_sha256: String,
    /// The chain's head, signed when the export began.
    pub checkpoint: Option<Checkpoint>,
    pub exported_at: DateTime<Utc>,
}

/// What a signed accounting of disclosures covers: one patient, a window,
/// a format, the content's hash, and the chain's head signed when it was
/// made (a FHIR accounting holds entries up to it, each with its link).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountingManifest {
    pub kind: String,
    pub patient: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// json, csv or fhir.
    pub format: String,
    /// Recipients (json, csv) or disclosures (fhir).
    pub rows: u64,
    /// SHA-256 of the content: the whole file (json, csv), or every line
    /// before the Provenance (fhir).
    pub content_sha256: String,
    pub checkpoint: Option<Checkpoint>,
    pub made_at: DateTime<Utc>,
}

/// A manifest's exact text and its signature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedManifest {
    /// The manifest as JSON text: the signature covers these bytes.
    #[serde(rename = "phiGatewayManifest")]
    pub manifest: String,
    pub alg: String,
    pub key_id: u32,
    #[serde(with = "hex")]
    pub signature: Vec<u8>,
}

impl SignedManifest {
    fn sign_text(domain: &[u8], text: String, keys: &SigningKeys) -> Self {
        let mut msg = domain.to_vec();
        msg.extend_from_slice(text.as_bytes());
        let (key_id, sig) = keys.sign(&msg);
        Self {
            manifest: text,
            alg: chain::ALG_ED25519.into(),
            key_id,
            signature: sig.to_vec(),
        }
    }

    /// The signature holds over `domain` and the text, by a key that still
    /// signed at `made_at`, whose checkpoint (if any) is not dated after the
    /// key stopped signing.
    fn check(
        &self,
        domain: &[u8],
        keys: &VerifyingKeys,
        made_at: DateTime<Utc>,
        checkpoint: Option<&Checkpoint>,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.alg == chain::ALG_ED25519,
            "manifest signed with {:?}, expected ed25519",
            self.alg
        );
        let mut msg = domain.to_vec();
        msg.extend_from_slice(self.manifest.as_bytes());
        anyhow::ensure!(
            keys.verify(self.key_id, &msg, &self.signature, made_at),
            "the manifest's signature is not valid (altered, signed by another key, or by a key \
             that had stopped signing before the date it bears)"
        );
        if let Some(end) = keys.not_after(self.key_id) {
            anyhow::ensure!(
                checkpoint.is_none_or(|c| c.at <= end),
                "the manifest's checkpoint is dated after its signing key stopped signing"
            );
        }
        Ok(())
    }

    pub fn sign(m: &Manifest, keys: &SigningKeys) -> Self {
        let text = serde_json::to_string(m).expect("plain data");
        Self::sign_text(MANIFEST_DOMAIN, text, keys)
    }

    /// The manifest, if the signature holds (by a key that still signed
    /// when the manifest says it was made).
    pub fn open(&self, keys: &VerifyingKeys) -> anyhow::Result<Manifest> {
        let m: Manifest = serde_json::from_str(&self.manifest)
            .map_err(|_| anyhow::anyhow!("the manifest is not a manifest"))?;
        self.check(MANIFEST_DOMAIN, keys, m.exported_at, m.checkpoint.as_ref())?;
        Ok(m)
    }

    pub fn sign_accounting(m: &AccountingManifest, keys: &SigningKeys) -> Self {
        let text = serde_json::to_string(m).expect("plain data");
        Self::sign_text(ACCOUNTING_DOMAIN, text, keys)
    }

    /// Whether this manifest is an accounting's (it says so; its signature
    /// is checked by `open_accounting`).
    pub fn is_accounting(&self) -> bool {
        serde_json::from_str::<serde_json::Value>(&self.manifest)
            .is_ok_and(|v| v["kind"] == ACCOUNTING_KIND)
    }

    /// An accounting's manifest, if the signature holds.
    pub fn open_accounting(&self, keys: &VerifyingKeys) -> anyhow::Result<AccountingManifest> {
        let m: AccountingManifest = serde_json::from_str(&self.manifest)
            .map_err(|_| anyhow::anyhow!("the manifest is not an accounting's manifest"))?;
        anyhow::ensure!(
            m.kind == ACCOUNTING_KIND,
            "the manifest is not an accounting's"
        );
        self.check(ACCOUNTING_DOMAIN, keys, m.made_at, m.checkpoint.as_ref())?;
        Ok(m)
    }

    /// The final line of an NDJSON export.
    pub fn ndjson_line(&self) -> String {
        serde_json::to_string(self).expect("plain data") + "\n"
    }
}

/// Writes a file export (the CLI), with the CSV manifest beside it.
pub fn write_csv_manifest(path: &std::path::Path, signed: &SignedManifest) -> anyhow::Result<()> {
    let mut f = std::fs::File::create(path)?;
    f.write_all(signed.ndjson_line().as_bytes())?;
    f.sync_all()?;
    Ok(())
}
