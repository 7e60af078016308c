//! Key-encryption keys (KEKs): the keyring file holds its data and index
//! keys wrapped by a KEK kept elsewhere, so that a copy of the gateway's
//! disk or of its backups does not open any PHI.
//!
//! A KEK is named by a URI (the keyring file records it, `PHI_KEK` may
//! require it):
//! - `transit://HOST:PORT/KEY` : HashiCorp Vault or OpenBao transit over
//!   TLS (`transit+http://` on loopback or in development only), mount
//!   `transit` unless `?mount=PATH`. Authenticated by a token
//!   (`PHI_KEK_TOKEN`, `PHI_KEK_TOKEN_FILE`, or `VAULT_TOKEN`) or AppRole
//!   (`PHI_KEK_ROLE_ID` with `PHI_KEK_SECRET_ID` or `PHI_KEK_SECRET_ID_FILE`);
//!   `PHI_KEK_CA_FILE` names the CA(s) the service's certificate must chain
//!   to, instead of the public roots (a private key service is not vouched
//!   for by whoever the public roots vouch for). Redirects are not
//!   followed: a token goes to the host the URI names and nowhere else.
//! - `file://PATH` : a local KEK file (`phi-gateway keys kek generate`),
//!   for development and small installs; `file:///abs` or `file://rel`.
//!
//! Each wrapped key is bound to its place in the keyring (purpose and
//! version) as associated data, so wrapped keys cannot be swapped between
//! slots. Unwrapped key bytes go straight into zeroizing boxes; tokens are
//! `SecretString`s; nothing here logs or formats a key or a token.

use std::fmt;
use std::path::Path;

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
use anyhow::{Context, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret, SecretBox, SecretString};

pub use crate::config::KekAuth;
use serde::Deserialize;
use zeroize::Zeroizing;

pub type KeyBytes = SecretBox<[u8; 32]>;

pub const KEK_FILE_FORMAT: &str = "phi-gateway-kek/v1";
const FILE_WRAP_PREFIX: &str = "phi-kek:v1:";

/// What a key is wrapped as, and under which KEK version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wrapped {
    pub ciphertext: String,
    pub version: String,
}

/// The associated data binding a wrapped key to its slot.
pub fn binding(purpose: &str, id: u32) -> String {
    format!("phi-gateway/keyring/v1/{purpose}/{id}")
}

/// A connected KEK.
pub enum Kek {
    File(Box<FileKek>),
    #[cfg(feature = "transit")]
    Transit(transit::Transit),
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kek({})", self.uri())
    }
}

impl Kek {
    /// Opens the KEK a URI names: reads the file, or logs in to the key
    /// service and checks the transit key exists. Errors name the URI and
    /// the cause, never a token.
    pub async fn connect(uri: &str, auth: &KekAuth, production: bool) -> anyhow::Result<Self> {
        if let Some(path) = uri.strip_prefix("file://") {
            ensure!(!path.is_empty(), "KEK {uri}: no file path");
            return Ok(Kek::File(Box::new(FileKek::load(
                uri,
                Path::new(path),
                production,
            )?)));
        }
        if uri.starts_with("transit://") || uri.starts_with("transit+http://") {
            #[cfg(feature = "transit")]
            return Ok(Kek::Transit(
                transit::Transit::connect(uri, auth, production).await?,
            ));
            #[cfg(not(feature = "transit"))]
            {
                let _ = auth;
                bail!("KEK {uri}: this build has no transit support (cargo feature `transit`)");
            }
        }
        bail!("KEK {uri:?}: unknown scheme (expected transit://HOST:PORT/KEY or file://PATH)")
    }

    pub fn uri(&self) -> &str {
        match self {
            Kek::File(k) => &k.uri,
            #[cfg(feature = "transit")]
            Kek::Transit(t) => t.uri(),
        }
    }

    pub async fn wrap(&self, binding: &str, key: &KeyBytes) -> anyhow::Result<Wrapped> {
        match self {
            Kek::File(k) => k.wrap(binding, key),
            #[cfg(feature = "transit")]
            Kek::Transit(t) => t.wrap(binding, key).await,
        }
    }

    pub async fn unwrap(&self, binding: &str, ciphertext: &str) -> anyhow::Result<KeyBytes> {
        match self {
            Kek::File(k) => k.unwrap(binding, ciphertext),
            #[cfg(feature = "transit")]
            Kek::Transit(t) => t.unwrap(binding, ciphertext).await,
        }
    }

    /// Whether the KEK is still there for the next load of the keyring: the
    /// file still exists, or the key service still answers for the transit
    /// key with the token in hand. Unwraps nothing.
    pub async fn probe(&self) -> anyhow::Result<()> {
        match self {
            Kek::File(k) => {
                let path = k.uri.trim_start_matches("file://");
                std::fs::metadata(path)
                    .map(|_| ())
                    .with_context(|| format!("KEK {}: the file is gone", k.uri))
            }
            #[cfg(feature = "transit")]
            Kek::Transit(t) => t.probe().await,
        }
    }
}

/// Installs ring as the process's rustls provider (once; later calls and a
/// provider installed by someone else are fine). reqwest's TLS is built
/// without one, to use the ring already in the tree for PostgreSQL.
pub fn install_tls_provider() {
    #[cfg(feature = "transit")]
    {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

fn key_from_slice(raw: &[u8], what: &str) -> anyhow::Result<KeyBytes> {
    ensure!(raw.len() == 32, "{what}: not a 32-byte key");
    let mut bytes = Box::new([0u8; 32]);
    bytes.copy_from_slice(raw);
    Ok(SecretBox::new(bytes))
}

/// A local KEK file: `{"format": "phi-gateway-kek/v1", "id": .., "key": ..}`.
pub struct FileKek {
    uri: String,
    id: String,
    cipher: Aes256Gcm,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KekFileRepr {
    format: String,
    id: String,
    /// Read so the file's shape is checked; nothing uses it.
    #[serde(default, rename = "created_at")]
    _created_at: String,
    key: SecretString,
}

impl FileKek {
    fn load(uri: &str, path: &Path, production: bool) -> anyhow::Result<Self> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(path)
                .with_context(|| format!("KEK {uri}: cannot read {}", path.display()))?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 && production {
                bail!(
                    "KEK {uri}: {} is readable by group or others (mode {mode:o}); chmod 600 it",
                    path.display()
                );
            }
        }
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .with_context(|| format!("KEK {uri}: cannot read {}", path.display()))?,
        );
        let repr: KekFileRepr = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "KEK {uri}: not a KEK file (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        ensure!(
            repr.format == KEK_FILE_FORMAT,
            "KEK {uri}: format {:?} is not {KEK_FILE_FORMAT:?}",
            repr.format
        );
        let raw = Zeroizing::new(
            B64.decode(repr.key.expose_secret().trim())
                .map_err(|_| anyhow::anyhow!("KEK {uri}: key is not base64"))?,
        );
        let key = key_from_slice(&raw, &format!("KEK {uri}"))?;
        Ok(Self {
            uri: uri.to_string(),
            id: repr.id,
            cipher: Aes256Gcm::new_from_slice(key.expose_secret()).expect("32-byte key"),
        })
    }

    /// A new KEK file's text, and its id.
    pub fn generate_text() -> anyhow::Result<(Zeroizing<String>, String)> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut()).map_err(|_| anyhow::anyhow!("no randomness"))?;
        let mut id = [0u8; 6];
        getrandom::fill(&mut id).map_err(|_| anyhow::anyhow!("no randomness"))?;
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let b64 = Zeroizing::new(B64.encode(key.as_ref()));
        let text = Zeroizing::new(format!(
            "{{\n  \"format\": \"{KEK_FILE_FORMAT}\",\n  \"id\": \"{id}\",\n  \"created_at\": \"{}\",\n  \"key\": \"{}\"\n}}\n",
            chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            b64.as_str()
        ));
        Ok((text, id))
    }

    fn wrap(&self, binding: &str, key: &KeyBytes) -> anyhow::Result<Wrapped> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|_| anyhow::anyhow!("no randomness"))?;
        let ct = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: key.expose_secret(),
                    aad: binding.as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("KEK {}: wrapping failed", self.uri))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(Wrapped {
            ciphertext: format!("{FILE_WRAP_PREFIX}{}", B64.encode(out)),
            version: self.id.clone(),
        })
    }

    fn unwrap(&self, binding: &str, ciphertext: &str) -> anyhow::Result<KeyBytes> {
        let body = ciphertext
            .strip_prefix(FILE_WRAP_PREFIX)
            .with_context(|| format!("KEK {}: not a file-KEK wrapped key", self.uri))?;
        let raw = B64
            .decode(body)
            .map_err(|_| anyhow::anyhow!("KEK {}: wrapped key is not base64", self.uri))?;
        ensure!(raw.len() > 12, "KEK {}: wrapped key too short", self.uri);
        let (nonce, ct) = raw.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().expect("split at 12");
        let plain = Zeroizing::new(
            self.cipher
                .decrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: ct,
                        aad: binding.as_bytes(),
                    },
                )
                .map_err(|_| {
                    anyhow::anyhow!(
                        "KEK {}: a wrapped key does not open (another KEK, or moved within the keyring)",
                        self.uri
                    )
                })?,
        );
        key_from_slice(&plain, "unwrapped key")
    }
}

#[cfg(feature = "transit")]
pub(crate) mod transit {
    use super::*;

    /// Vault/OpenBao transit: `encrypt`/`decrypt` of the 32-byte keys with
    /// the binding as associated data.
    pub struct Transit {
        uri: String,
        base: String,
        mount: String,
        name: String,
        token: SecretString,
        client: reqwest::Client,
    }

    /// The chain of causes of an HTTP error (reqwest says only "error
    /// sending request" at the top).
    fn causes(e: &reqwest::Error) -> String {
        let mut out = String::new();
        let mut cur: Option<&dyn std::error::Error> = Some(e);
        while let Some(err) = cur {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&err.to_string());
            cur = err.source();
        }
        out
    }

    fn is_loopback(host: &str) -> bool {
        let h = host.trim_start_matches('[').trim_end_matches(']');
        h == "localhost"
            || h.parse::<std::net::IpAddr>()
                .map(|a| a.is_loopback())
                .unwrap_or(false)
    }

    #[derive(Deserialize)]
    struct Answer<T> {
        data: T,
    }

    #[derive(Deserialize)]
    struct EncryptData {
        ciphertext: String,
        key_version: Option<u64>,
    }

    #[derive(Deserialize)]
    struct DecryptData {
        plaintext: SecretString,
    }

    #[derive(Deserialize)]
    struct KeyInfo {
        #[serde(rename = "type")]
        kind: String,
    }

    #[derive(Deserialize)]
    struct Login {
        auth: LoginAuth,
    }

    #[derive(Deserialize)]
    struct LoginAuth {
        client_token: SecretString,
    }

    /// The certificates a key service's must chain to: the CA file's
    /// alone when one is named, else the public roots.
    pub(super) fn roots(ca_file: Option<&Path>) -> anyhow::Result<rustls::RootCertStore> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        if ca_file.is_none() {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        if let Some(ca) = ca_file {
            let mut n = 0;
            for cert in CertificateDer::pem_file_iter(ca)
                .with_context(|| format!("reading PHI_KEK_CA_FILE {}", ca.display()))?
            {
                let cert =
                    cert.with_context(|| format!("PHI_KEK_CA_FILE {}: bad PEM", ca.display()))?;
                roots.add(cert).with_context(|| {
                    format!("PHI_KEK_CA_FILE {}: bad certificate", ca.display())
                })?;
                n += 1;
            }
            ensure!(n > 0, "PHI_KEK_CA_FILE {}: no certificate", ca.display());
        }
        Ok(roots)
    }

    pub(crate) fn tls_config(ca_file: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
        let roots = roots(ca_file)?;
        Ok(
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .context("TLS setup")?
            .with_root_certificates(roots)
            .with_no_client_auth(),
        )
    }

    impl Transit {
        pub fn uri(&self) -> &str {
            &self.uri
        }

        pub async fn connect(uri: &str, auth: &KekAuth, production: bool) -> anyhow::Result<Self> {
            let (scheme, rest) = if let Some(r) = uri.strip_prefix("transit+http://") {
                ("http", r)
            } else if let Some(r) = uri.strip_prefix("transit://") {
                ("https", r)
            } else {
                bail!("KEK {uri}: not a transit URI");
            };
            let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
            let (authority, name) = rest
                .split_once('/')
                .with_context(|| format!("KEK {uri}: expected transit://HOST:PORT/KEY"))?;
            ensure!(
                !authority.is_empty()
                    && !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
                "KEK {uri}: expected transit://HOST:PORT/KEY (a key name of letters, digits, - _ .)"
            );
            let mut mount = "transit".to_string();
            for (k, v) in form_urlencoded::parse(query.as_bytes()) {
                match k.as_ref() {
                    "mount" if !v.is_empty() && !v.contains("..") => {
                        mount = v.trim_matches('/').to_string()
                    }
                    other => bail!("KEK {uri}: unknown or empty parameter {other:?}"),
                }
            }
            let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
            if scheme == "http" && production && !is_loopback(host) {
                bail!(
                    "KEK {uri}: transit+http:// sends keys in the clear; production allows it on loopback only (use transit:// with TLS)"
                );
            }
            install_tls_provider();
            let mut builder = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(std::time::Duration::from_secs(5))
                .timeout(std::time::Duration::from_secs(15));
            if scheme == "https" {
                builder = builder.use_preconfigured_tls(tls_config(auth.ca_file.as_deref())?);
            }
            let client = builder
                .build()
                .with_context(|| format!("KEK {uri}: HTTP client"))?;
            let base = format!("{scheme}://{authority}");
            let token = match (&auth.token, &auth.role_id, &auth.secret_id) {
                (_, Some(role), Some(secret)) => {
                    let body =
                        serde_json::json!({"role_id": role, "secret_id": secret.expose_secret()});
                    let resp = client
                        .post(format!("{base}/v1/auth/approle/login"))
                        .json(&body)
                        .send()
                        .await
                        .map_err(|e| {
                            anyhow::anyhow!(
                                "KEK {uri}: cannot reach the key service ({})",
                                causes(&e)
                            )
                        })?;
                    let status = resp.status();
                    if !status.is_success() {
                        bail!(
                            "KEK {uri}: AppRole login refused ({status}: {})",
                            errors(resp).await
                        );
                    }
                    let login: Login = resp.json().await.map_err(|e| {
                        anyhow::anyhow!("KEK {uri}: unexpected login answer ({})", causes(&e))
                    })?;
                    login.auth.client_token
                }
                (Some(token), _, _) => token.clone(),
                _ => bail!(
                    "KEK {uri}: no credentials for the key service (set PHI_KEK_TOKEN or PHI_KEK_TOKEN_FILE, \
                     or PHI_KEK_ROLE_ID with PHI_KEK_SECRET_ID)"
                ),
            };
            let t = Self {
                uri: uri.to_string(),
                base,
                mount,
                name: name.to_string(),
                token,
                client,
            };
            let info: KeyInfo = t
                .call(reqwest::Method::GET, &format!("keys/{}", t.name), None)
                .await?;
            ensure!(
                info.kind.starts_with("aes") || info.kind.starts_with("chacha"),
                "KEK {uri}: transit key {} is of type {}, which cannot encrypt",
                t.name,
                info.kind
            );
            Ok(t)
        }

        /// The transit key, asked for by name (as at connect).
        pub async fn probe(&self) -> anyhow::Result<()> {
            let _: KeyInfo = self
                .call(reqwest::Method::GET, &format!("keys/{}", self.name), None)
                .await?;
            Ok(())
        }

        async fn call<T: serde::de::DeserializeOwned>(
            &self,
            method: reqwest::Method,
            path: &str,
            body: Option<Zeroizing<String>>,
        ) -> anyhow::Result<T> {
            let mut req = self
                .client
                .request(method, format!("{}/v1/{}/{path}", self.base, self.mount))
                .header("X-Vault-Token", self.token.expose_secret());
            if let Some(body) = body {
                req = req
                    .header("Content-Type", "application/json")
                    .body(body.as_bytes().to_vec());
            }
            let resp = req.send().await.map_err(|e| {
                anyhow::anyhow!(
                    "KEK {}: cannot reach the key service ({})",
                    self.uri,
                    causes(&e)
                )
            })?;
            let status = resp.status();
            if !status.is_success() {
                let why = errors(resp).await;
                let hint = match status.as_u16() {
                    403 => " (the token may not use this key)",
                    404 => " (no such transit key or mount)",
                    _ => "",
                };
                bail!(
                    "KEK {}: the key service refused {path} ({status}: {why}){hint}",
                    self.uri
                );
            }
            let answer: Answer<T> = resp.json().await.map_err(|e| {
                anyhow::anyhow!("KEK {}: unexpected answer ({})", self.uri, causes(&e))
            })?;
            Ok(answer.data)
        }

        pub async fn wrap(&self, binding: &str, key: &KeyBytes) -> anyhow::Result<Wrapped> {
            let plain = Zeroizing::new(B64.encode(key.expose_secret()));
            let body = Zeroizing::new(format!(
                "{{\"plaintext\":\"{}\",\"associated_data\":\"{}\"}}",
                plain.as_str(),
                B64.encode(binding)
            ));
            let d: EncryptData = self
                .call(
                    reqwest::Method::POST,
                    &format!("encrypt/{}", self.name),
                    Some(body),
                )
                .await?;
            let version = match d.key_version {
                Some(v) => v.to_string(),
                None => d
                    .ciphertext
                    .split(':')
                    .nth(1)
                    .and_then(|v| v.strip_prefix('v'))
                    .unwrap_or("?")
                    .to_string(),
            };
            Ok(Wrapped {
                ciphertext: d.ciphertext,
                version,
            })
        }

        pub async fn unwrap(&self, binding: &str, ciphertext: &str) -> anyhow::Result<KeyBytes> {
            ensure!(
                ciphertext.starts_with("vault:v") && !ciphertext.contains('"'),
                "KEK {}: a wrapped key is not a transit ciphertext",
                self.uri
            );
            let body = Zeroizing::new(format!(
                "{{\"ciphertext\":\"{ciphertext}\",\"associated_data\":\"{}\"}}",
                B64.encode(binding)
            ));
            let d: DecryptData = self
                .call(
                    reqwest::Method::POST,
                    &format!("decrypt/{}", self.name),
                    Some(body),
                )
                .await?;
            let raw =
                Zeroizing::new(B64.decode(d.plaintext.expose_secret()).map_err(|_| {
                    anyhow::anyhow!("KEK {}: unwrapped key is not base64", self.uri)
                })?);
            key_from_slice(&raw, "unwrapped key")
        }
    }

    /// The `errors` of a key service's error answer (they name no secret).
    async fn errors(resp: reqwest::Response) -> String {
        #[derive(Deserialize)]
        struct Errors {
            errors: Vec<String>,
        }
        match resp.json::<Errors>().await {
            Ok(e) if !e.errors.is_empty() => e.errors.join("; "),
            _ => "no reason given".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_kek() -> (FileKek, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("phi-kek-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("kek.json");
        let (text, _) = FileKek::generate_text().unwrap();
        std::fs::write(&path, text.as_bytes()).unwrap();
        let uri = format!("file://{}", path.display());
        (FileKek::load(&uri, &path, false).unwrap(), dir)
    }

    #[test]
    fn file_kek_wraps_bound_to_the_slot() {
        let (kek, dir) = file_kek();
        let key: KeyBytes = SecretBox::new(Box::new([7u8; 32]));
        let w = kek.wrap(&binding("data", 1), &key).unwrap();
        assert!(w.ciphertext.starts_with(FILE_WRAP_PREFIX));
        assert!(!w.ciphertext.contains(&B64.encode([7u8; 32])));
        let back = kek.unwrap(&binding("data", 1), &w.ciphertext).unwrap();
        assert_eq!(back.expose_secret(), &[7u8; 32]);
        // Moved to another slot: refused.
        let err = kek.unwrap(&binding("index", 1), &w.ciphertext).unwrap_err();
        assert!(err.to_string().contains("does not open"), "{err}");
        // Another KEK: refused.
        let (other, dir2) = file_kek();
        assert!(other.unwrap(&binding("data", 1), &w.ciphertext).is_err());
        std::fs::remove_dir_all(dir).unwrap();
        std::fs::remove_dir_all(dir2).unwrap();
    }

    /// A CA certificate of no one's (self-signed, for this test only).
    #[cfg(feature = "transit")]
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBkjCCATmgAwIBAgIULUkNH6iiwd+4PUbTbguF+epunm4wCgYIKoZIzj0EAwIw\nHjEcMBoGA1UEAwwTcGhpLWdhdGV3YXkgdGVzdCBDQTAgFw0yNjEyMDMxOTE3Mzla\nGA8yMTI2MTEwOTE5MTczOVowHjEcMBoGA1UEAwwTcGhpLWdhdGV3YXkgdGVzdCBD\nQTBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABHuAu/fT3XuZtNiHAXXj1eRNnDro\nCMzHNji9fXZOkq3A4YnrbuIu1fgEsKESkESuKhBa4A7mddwo8dUwT+MYpQqjUzBR\nMB0GA1UdDgQWBBQ4rJXaGo38fVrNGQUs111KE1VLwTAfBgNVHSMEGDAWgBQ4rJXa\nGo38fVrNGQUs111KE1VLwTAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cA\nMEQCICJtjnFfJBhtU1tnPq+j5rfCeGRyiF6aet8WFLNbvumeAiACR3EEu/Bq+D8H\nu4K/y2TCawZoasL9S2W8TCHVEMmLig==\n-----END CERTIFICATE-----\n";

    #[cfg(feature = "transit")]
    #[test]
    fn a_named_ca_replaces_the_public_roots() {
        let public = transit::roots(None).unwrap();
        assert!(public.len() > 100, "the public roots: {}", public.len());
        let dir = std::env::temp_dir().join(format!("phi-ca-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, TEST_CA).unwrap();
        // Only the named CA: a certificate from a public CA is not enough
        // for a key service that has its own.
        assert_eq!(transit::roots(Some(&ca)).unwrap().len(), 1);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn uris_are_checked_with_clear_errors() {
        let auth = KekAuth::default();
        let err = Kek::connect("s3://bucket/key", &auth, false)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("unknown scheme"), "{err}");
        let err = Kek::connect("file:///nonexistent/kek.json", &auth, false)
            .await
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("file:///nonexistent/kek.json"),
            "{err:#}"
        );
        #[cfg(feature = "transit")]
        {
            let err = Kek::connect("transit+http://10.0.0.9:8200/k", &auth, true)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("loopback only"), "{err}");
            let err = Kek::connect("transit://127.0.0.1:1/k", &auth, false)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("no credentials"), "{err}");
            let err = Kek::connect("transit://h:1/", &auth, false)
                .await
                .unwrap_err();
            assert!(err.to_string().contains("expected transit://"), "{err}");
        }
    }
}
