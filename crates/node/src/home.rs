//! A node's home directory: its configuration, its ed25519 identity key, its TLS material and
//! its store. `tandem init` creates it; every other command opens it.
//!
//! Layout:
//! ```text
//! <dir>/config.toml     name, listen address, public URL, region, identifier rules
//! <dir>/node.key        ed25519 secret key (hex, mode 0600)
//! <dir>/tls/cert.der    self-signed TLS certificate (its SHA-256 is pinned by the peer)
//! <dir>/tls/key.der     TLS private key (PKCS#8, mode 0600)
//! <dir>/tandem.sqlite   the embedded store (audiences, agreements, runs, ledger, audit log)
//! ```

use std::path::{Path, PathBuf};

use crate::error::{Code, NodeError, OrCode, Result};
use ed25519_dalek::SigningKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The node's configuration file (`config.toml`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Config {
    /// The node's party name in agreements (`[a-z0-9_-]`).
    pub name: String,
    /// Address `tandem serve` listens on.
    pub listen: String,
    /// URL under which the peer reaches this node.
    pub public_url: String,
    /// Data-residency region of this node's data (e.g. `CN`, `EU`).
    #[serde(default = "default_region")]
    pub region: String,
    /// Region (ISO 3166-1 alpha-2, e.g. `CN`) whose dialling rules read phone numbers written
    /// without `+`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_region: Option<String>,
    /// Country calling code for phone numbers written without one (older configs): read as its
    /// main region (86 → CN, 1 → US, 44 → GB) when `default_region` is not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_country_code: Option<u16>,
    /// Largest protocol message accepted, in bytes.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// Timeouts and concurrency bounds (`[limits]`; every field has a default).
    #[serde(default)]
    pub limits: Limits,
}

/// Timeouts and concurrency bounds of a node (the `[limits]` table of `config.toml`). Every
/// field may be left out; the defaults are given per field. A timeout ends the exchange with a
/// clear error (`peer_unreachable`, `peer_failed`, or a closed connection for a client of this
/// node that is too slow); it never hangs a task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Seconds to open a TCP + TLS connection to the peer and start HTTP (default 10); past it
    /// the call fails as `peer_unreachable` and nothing was sent.
    pub connect_timeout_s: u64,
    /// Seconds to wait for the peer's whole answer to a PSI request once it is sent (default
    /// 1800: a large run takes minutes); past it the run fails as `peer_failed`.
    pub peer_answer_timeout_s: u64,
    /// Seconds to wait for the peer's answer to an agreement delivery (default 30).
    pub peer_call_timeout_s: u64,
    /// Seconds a client of this node has to send a request's headers, from the end of the TLS
    /// handshake or of the previous request (default 10; also bounds the TLS handshake).
    /// A client that trickles its headers (slowloris) is disconnected.
    pub request_header_timeout_s: u64,
    /// Seconds a client of this node may let pass without sending any byte of a request body
    /// it announced (default 30); past it the request fails 400 and the connection closes.
    pub request_body_idle_s: u64,
    /// Queries this node runs as querier at once (default 2); one more is answered 429
    /// `too_many_requests` with `Retry-After`, never queued.
    pub max_concurrent_queries: usize,
    /// PSI requests this node answers at once as responder (default 2); further ones wait for
    /// a slot (each holds its messages in memory and keeps the cores busy).
    pub max_concurrent_runs: usize,
    /// A node-wide budget over all agreements and counterparties (default: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_budget: Option<NodeBudget>,
    /// Seconds this node, as psi-ca-v2 responder, keeps a run's state (its key `β`, `L1`, its
    /// list and the noise drawn for the cells) waiting for the querier's Msg3 (default 600);
    /// a Msg3 after it is refused and the run fails with its charge kept.
    pub v2_state_ttl_s: u64,
    /// psi-ca-v2 runs of one peer this node holds at once waiting for their Msg3 (default 4);
    /// one more Msg1 is refused 429 `too_many_requests` before anything is charged.
    pub v2_pending_per_peer: usize,
    /// Records per chunk (`C`, 1..=65536) of the psi-ca-v1 runs this node starts as querier,
    /// which then travel in chunks that a dropped connection resumes (psi-ca-v1 §10); 0 sends
    /// whole messages (default 16384). Value analyses send whole messages.
    pub stream_chunk_records: u32,
    /// Keep each member's hash to the curve per member set and agreement/join key in the store
    /// (default true): the first psi-ca-v1 count run after an import hashes from digests and
    /// fills the cache in the background, later runs decompress cached points instead
    /// (psi-ca-v1 §3.1, §7). `false` hashes every run and fills nothing.
    pub hash_cache: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout_s: 10,
            peer_answer_timeout_s: 1800,
            peer_call_timeout_s: 30,
            request_header_timeout_s: 10,
            request_body_idle_s: 30,
            max_concurrent_queries: 2,
            max_concurrent_runs: 2,
            node_budget: None,
            v2_state_ttl_s: 600,
            v2_pending_per_peer: 4,
            stream_chunk_records: 16384,
            hash_cache: true,
        }
    }
}

/// A node-wide privacy budget (`[limits.node_budget]`): caps on this node's charges over every
/// agreement, counterparty and role together, on top of each agreement's caps, admitted by the
/// ledger's one rule (`protocols/psi-ca-v1.md` §6.1). A run over it is refused before anything
/// is charged, naming the node-wide cap and what is left.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeBudget {
    /// ε cap over all charges (in the window, if any).
    pub epsilon_total: f64,
    /// δ cap; runs may use half of it, the other half is the zCDP route's conversion.
    /// Optional: absent, the node-wide cap bounds ε only, by basic composition (no zCDP route),
    /// and each agreement's own δ cap still bounds its runs' δ. `0` is a cap too: only runs
    /// with δ = 0 fit under it (the agreements' `delta_per_query` is usually above 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta_total: Option<f64>,
    /// A sliding window of this many days (any such window holds at most the caps); absent:
    /// the caps are for the node's lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_days: Option<u32>,
}

impl NodeBudget {
    /// The ledger's form: the caps, the zCDP ρ cap (as an agreement's,
    /// `tandem_dp::rho_for_epsilon(ε, δ/2)`; none at δ = 0 or without a δ cap) and the window
    /// in ms.
    pub fn ledger_cap(&self) -> Result<tandem_store::NodeCap> {
        let rho = match self.delta_total {
            Some(delta) if delta > 0.0 => Some(
                tandem_dp::rho_for_epsilon(self.epsilon_total, delta / 2.0).map_err(|e| {
                    NodeError::new(Code::BadData, format!("limits.node_budget: {e}"))
                })?,
            ),
            _ => None,
        };
        Ok(tandem_store::NodeCap {
            epsilon: self.epsilon_total,
            delta: self.delta_total,
            rho,
            window_ms: self
                .refresh_days
                .filter(|d| *d > 0)
                .map(|d| i64::from(d) * 86_400_000),
        })
    }
}

impl Limits {
    /// A duration from seconds.
    pub fn secs(s: u64) -> std::time::Duration {
        std::time::Duration::from_secs(s)
    }
}

/// The default phone region of a config: `default_region`, else the main region of
/// `default_country_code`; an error when either is unknown or they disagree.
fn phone_region(config: &Config) -> Result<Option<tandem_identity::Region>> {
    use tandem_identity::Region;
    let by_code = config
        .default_country_code
        .map(Region::for_calling_code)
        .transpose()
        .map_err(|e| NodeError::new(Code::BadData, e))?;
    let Some(name) = &config.default_region else {
        return Ok(by_code);
    };
    let region: Region = name.parse().map_err(|e| NodeError::new(Code::BadData, e))?;
    if let Some(code) = config.default_country_code
        && code != region.calling_code()
    {
        return Err(NodeError::new(
            Code::BadData,
            format!(
                "default_region {region} dials +{}, not default_country_code {code}; keep only default_region",
                region.calling_code()
            ),
        ));
    }
    Ok(Some(region))
}

fn default_region() -> String {
    "CN".to_string()
}

fn default_max_message() -> usize {
    1 << 30
}

/// An opened node home.
#[derive(Clone)]
pub struct Home {
    /// The directory.
    pub dir: PathBuf,
    /// Parsed `config.toml`.
    pub config: Config,
    /// The node's ed25519 identity key.
    pub key: SigningKey,
    /// DER of the TLS certificate the node serves.
    pub tls_cert: Vec<u8>,
    /// DER (PKCS#8) of the TLS private key.
    pub tls_key: Vec<u8>,
    /// The default phone region resolved from the config.
    phone_region: Option<tandem_identity::Region>,
}

/// What `init` created, for printing.
pub struct InitSummary {
    /// Hex of the ed25519 public key.
    pub key_fingerprint: String,
    /// Hex SHA-256 of the TLS certificate.
    pub tls_fingerprint: String,
}

impl Home {
    /// Creates a new node home. Refuses to overwrite an existing one.
    pub fn init(dir: &Path, config: Config) -> Result<InitSummary> {
        if dir.join("config.toml").exists() {
            return Err(NodeError::new(
                Code::Conflict,
                format!(
                    "{} already holds a node (config.toml exists); refusing to overwrite",
                    dir.display()
                ),
            ));
        }
        validate_name(&config.name)?;
        phone_region(&config)?;
        std::fs::create_dir_all(dir.join("tls"))
            .or_code(Code::Internal, || format!("creating {}", dir.display()))?;
        let key = SigningKey::generate(&mut rand::rng());
        let host = host_of(&config.public_url)?;
        let cert = rcgen::generate_simple_self_signed(vec![host, "localhost".to_string()])
            .or_code(Code::Internal, || "generating the TLS certificate".into())?;
        let cert_der = cert.cert.der().to_vec();
        write_secret(
            &dir.join("node.key"),
            hex::encode(key.to_bytes()).as_bytes(),
        )?;
        write_secret(&dir.join("tls/key.der"), &cert.signing_key.serialize_der())?;
        std::fs::write(dir.join("tls/cert.der"), &cert_der)?;
        let text = toml::to_string_pretty(&config)
            .or_code(Code::Internal, || "writing config.toml".into())?;
        std::fs::write(dir.join("config.toml"), text)?;
        Ok(InitSummary {
            key_fingerprint: hex::encode(key.verifying_key().to_bytes()),
            tls_fingerprint: sha256_hex(&cert_der),
        })
    }

    /// Opens an existing node home. Refuses (422 `bad_data`, printing the `chmod 600` fix) when
    /// `node.key` or `tls/key.der` is readable or writable by its group or others.
    pub fn open(dir: &Path) -> Result<Home> {
        let cfg_path = dir.join("config.toml");
        let text = std::fs::read_to_string(&cfg_path).or_code(Code::NotFound, || {
            format!(
                "no node at {} (missing config.toml; run `tandem init` first)",
                dir.display()
            )
        })?;
        let config: Config = toml::from_str(&text)
            .or_code(Code::BadData, || format!("parsing {}", cfg_path.display()))?;
        for secret in [dir.join("node.key"), dir.join("tls/key.der")] {
            check_private(&secret)?;
        }
        let key_hex = std::fs::read_to_string(dir.join("node.key"))
            .or_code(Code::Internal, || "reading node.key".into())?;
        let key_bytes = <[u8; 32] as hex::FromHex>::from_hex(key_hex.trim())
            .or_code(Code::BadData, || {
                "node.key does not hold a 32-byte hex key".into()
            })?;
        let phone_region = phone_region(&config).map_err(|e| {
            NodeError::new(Code::BadData, format!("in {}: {e}", cfg_path.display()))
        })?;
        let home = Home {
            dir: dir.to_path_buf(),
            phone_region,
            config,
            key: SigningKey::from_bytes(&key_bytes),
            tls_cert: std::fs::read(dir.join("tls/cert.der"))
                .or_code(Code::Internal, || "reading tls/cert.der".into())?,
            tls_key: std::fs::read(dir.join("tls/key.der"))
                .or_code(Code::Internal, || "reading tls/key.der".into())?,
        };
        if home.config.limits.node_budget.is_some() || home.store_path().exists() {
            home.sync_node_cap()?;
        }
        Ok(home)
    }

    /// Mirrors `limits.node_budget` into the store's ledger (written, and audited
    /// `budget.node_cap`, only when it changed), so that every charge is admitted against it.
    /// Errors: 422 `bad_data` for a cap the ledger cannot take.
    pub fn sync_node_cap(&self) -> Result<()> {
        let cap = match &self.config.limits.node_budget {
            Some(b) => Some(b.ledger_cap()?),
            None => None,
        };
        self.store()?
            .set_node_cap(cap.as_ref(), "config")
            .map_err(|e| NodeError::from(e).context("limits.node_budget"))?;
        Ok(())
    }

    /// Path of the node's SQLite store.
    pub fn store_path(&self) -> PathBuf {
        self.dir.join("tandem.sqlite")
    }

    /// Opens the node's store.
    pub fn store(&self) -> Result<tandem_store::Store> {
        tandem_store::Store::open(self.store_path())
            .map_err(|e| NodeError::from(e).context("opening the store"))
    }

    /// Hex of the node's ed25519 public key.
    pub fn key_fingerprint(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// Hex SHA-256 of the node's TLS certificate.
    pub fn tls_fingerprint(&self) -> String {
        sha256_hex(&self.tls_cert)
    }

    /// The identifier rules this node applies on import.
    pub fn normaliser(&self) -> tandem_identity::Normaliser {
        tandem_identity::Normaliser {
            default_region: self.phone_region,
        }
    }

    /// The `[[parties]]` block for this node, to paste into an agreement.
    pub fn party_card(&self) -> String {
        format!(
            "[[parties]]\nname = \"{}\"\nurl = \"{}\"\nsigning_key = \"{}\"\ntls_cert_sha256 = \"{}\"\nregion = \"{}\"\n",
            self.config.name,
            self.config.public_url,
            self.key_fingerprint(),
            self.tls_fingerprint(),
            self.config.region
        )
    }
}

/// Hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn validate_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        return Err(NodeError::new(
            Code::Invalid,
            format!("node name {name:?} must be 1-64 characters of a-z, 0-9, '-' or '_'"),
        ));
    }
    Ok(())
}

/// The host part of an `https://host:port` URL.
pub fn host_of(url: &str) -> Result<String> {
    let rest = url.strip_prefix("https://").or_code(Code::Invalid, || {
        format!("URL {url:?} must start with https://")
    })?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = if let Some(stripped) = authority.strip_prefix('[') {
        stripped.split(']').next().unwrap_or(stripped)
    } else {
        authority
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(authority)
    };
    if host.is_empty() {
        return Err(NodeError::new(
            Code::Invalid,
            format!("URL {url:?} has no host"),
        ));
    }
    Ok(host.to_string())
}

/// Refuses a secret key file that its group or others may read or write (mode not `0600` or
/// stricter): the error names the file, its mode and the `chmod 600` that fixes it. A missing
/// file is left to the read that follows.
#[cfg(unix)]
fn check_private(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(NodeError::new(
            Code::BadData,
            format!(
                "{} holds a secret key but is readable or writable by others (mode {mode:04o}); \
                 refusing to use it. Fix: chmod 600 {}",
                path.display(),
                path.display()
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_path: &Path) -> Result<()> {
    Ok(())
}

fn write_secret(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .or_code(Code::Internal, || format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_parsing() {
        assert_eq!(host_of("https://127.0.0.1:7401").unwrap(), "127.0.0.1");
        assert_eq!(
            host_of("https://node.example.com:443/x").unwrap(),
            "node.example.com"
        );
        assert_eq!(host_of("https://[::1]:7401").unwrap(), "::1");
        assert!(host_of("http://127.0.0.1:1").is_err());
    }

    #[test]
    fn init_then_open() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            name: "acme".into(),
            listen: "127.0.0.1:0".into(),
            public_url: "https://127.0.0.1:7401".into(),
            region: "CN".into(),
            default_region: None,
            default_country_code: Some(86),
            max_message_bytes: 1 << 20,
            limits: Limits::default(),
        };
        let summary = Home::init(dir.path(), cfg.clone()).unwrap();
        let home = Home::open(dir.path()).unwrap();
        assert_eq!(home.key_fingerprint(), summary.key_fingerprint);
        assert_eq!(home.tls_fingerprint(), summary.tls_fingerprint);
        assert!(Home::init(dir.path(), cfg).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn key_files_are_created_0600_and_a_readable_one_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config {
            name: "acme".into(),
            listen: "127.0.0.1:0".into(),
            public_url: "https://127.0.0.1:7401".into(),
            region: "CN".into(),
            default_region: Some("CN".into()),
            default_country_code: None,
            max_message_bytes: 1 << 20,
            limits: Limits::default(),
        };
        Home::init(dir.path(), cfg).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for name in ["node.key", "tls/key.der"] {
            let path = dir.path().join(name);
            assert_eq!(mode(&path), 0o600, "{name}");
            for loose in [0o640, 0o604, 0o660, 0o644] {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(loose)).unwrap();
                let e = Home::open(dir.path()).err().expect("refused");
                let msg = e.to_string();
                assert!(
                    msg.contains(&format!("chmod 600 {}", path.display())),
                    "{msg}"
                );
                assert!(msg.contains(&format!("{loose:04o}")), "{msg}");
            }
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            // 0400 is stricter still: accepted.
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
            Home::open(dir.path()).unwrap();
        }
    }
}
