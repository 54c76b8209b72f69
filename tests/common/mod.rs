//! Helpers for end-to-end tests: real `tandem` processes on loopback ports.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tandem_testkit::{AgreementBuilder, PartySpec};

/// Runs `tandem` with `args`; returns its output.
pub fn tandem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(args)
        .env("TANDEM_LOG", "warn")
        .output()
        .expect("tandem runs")
}

/// Runs `tandem`, asserting success; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = tandem(args);
    assert!(
        out.status.success(),
        "tandem {args:?} failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `tandem`, asserting failure; returns stderr.
pub fn fails(args: &[&str]) -> String {
    let out = tandem(args);
    assert!(
        !out.status.success(),
        "tandem {args:?} should have failed:\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A running `tandem serve`, killed on drop.
pub struct Server {
    child: Child,
}

impl Server {
    /// Starts `tandem serve --dir dir` and waits until it accepts connections.
    pub fn start(dir: &Path, port: u16) -> Server {
        let child = Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(["serve", "--dir", dir.to_str().expect("utf-8 path")])
            .env("TANDEM_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("serve starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "server on port {port} did not come up"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Server { child }
    }

    /// Kills the server now (SIGKILL).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two initialised nodes with audiences: acme (brand) and shopx (platform).
pub struct Pair {
    pub root: tempfile::TempDir,
    pub acme: PathBuf,
    pub shopx: PathBuf,
    pub acme_port: u16,
    pub shopx_port: u16,
    /// True overlap per (age_band, tier).
    pub truth: std::collections::BTreeMap<(String, String), i64>,
}

const AGES: [&str; 4] = ["18-24", "25-34", "35-44", "45+"];
const TIERS: [&str; 3] = ["bronze", "silver", "gold"];

impl Pair {
    /// Inits both nodes and imports `n_a`/`n_b` customers sharing `overlap`.
    pub fn new(n_a: usize, n_b: usize, overlap: usize) -> Pair {
        let root = tempfile::tempdir().expect("tempdir");
        let acme = root.path().join("acme");
        let shopx = root.path().join("shopx");
        let (acme_port, shopx_port) = (free_port(), free_port());
        for (dir, name, port) in [(&acme, "acme", acme_port), (&shopx, "shopx", shopx_port)] {
            ok(&[
                "init",
                "--dir",
                s(dir),
                "--name",
                name,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ]);
        }
        let mut a = String::from("email,age_band,region\n");
        for i in 0..n_a {
            a += &format!("person{i}@example.com,{},north\n", AGES[i % 4]);
        }
        let mut b = String::from("email,tier\n");
        let mut truth = std::collections::BTreeMap::new();
        for i in (0..overlap).chain(n_a..n_a + n_b - overlap) {
            b += &format!(" Person{i}@EXAMPLE.com ,{}\n", TIERS[i % 3]);
            if i < overlap {
                *truth
                    .entry((AGES[i % 4].to_string(), TIERS[i % 3].to_string()))
                    .or_insert(0) += 1;
            }
        }
        let fa = root.path().join("acme.csv");
        let fb = root.path().join("shopx.csv");
        std::fs::write(&fa, a).expect("write");
        std::fs::write(&fb, b).expect("write");
        ok(&[
            "import",
            "--dir",
            s(&acme),
            "--file",
            s(&fa),
            "--id-column",
            "email",
            "--id-kind",
            "email",
            "--attributes",
            "age_band,region",
        ]);
        ok(&[
            "import",
            "--dir",
            s(&shopx),
            "--file",
            s(&fb),
            "--id-column",
            "email",
            "--id-kind",
            "email",
            "--attributes",
            "tier",
        ]);
        Pair {
            root,
            acme,
            shopx,
            acme_port,
            shopx_port,
            truth,
        }
    }

    /// Writes agreement terms with the peer's card and placeholders for acme's own keys.
    pub fn agreement_file(&self, expires_at: &str, acme_total: f64, shopx_total: f64) -> PathBuf {
        let card = ok(&["card", "--dir", s(&self.shopx)]);
        let field = |name: &str| -> String {
            card.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} = ")))
                .expect("card field")
                .trim_matches('"')
                .to_string()
        };
        let text = AgreementBuilder::new()
            .purpose("end-to-end test of overlap by segment")
            .expires_at(expires_at)
            .party(
                PartySpec::new("acme")
                    .url(&format!("https://127.0.0.1:{}", self.acme_port))
                    .column("age_band", &AGES)
                    .epsilon(acme_total.min(2.0), acme_total),
            )
            .party(
                PartySpec::new("shopx")
                    .url(&format!("https://127.0.0.1:{}", self.shopx_port))
                    .keys(&field("signing_key"), &field("tls_cert_sha256"))
                    .column("tier", &TIERS)
                    .epsilon(shopx_total.min(2.0), shopx_total),
            )
            .toml();
        let path = self
            .root
            .path()
            .join(format!("agreement-{}.toml", text.len() + expires_at.len()));
        std::fs::write(&path, text).expect("write agreement");
        path
    }

    /// Proposes (acme) and accepts (shopx) an agreement while both serve; returns its id.
    pub fn pair(&self, file: &Path) -> String {
        let out = ok(&[
            "agreement",
            "propose",
            "--dir",
            s(&self.acme),
            "--file",
            s(file),
        ]);
        let id = out
            .lines()
            .find_map(|l| l.strip_prefix("proposed agreement "))
            .expect("proposal id")
            .trim()
            .to_string();
        assert!(out.contains("delivered"), "proposal not delivered: {out}");
        let out = ok(&["agreement", "accept", "--dir", s(&self.shopx), &id]);
        assert!(out.contains("delivered"), "acceptance not delivered: {out}");
        id
    }
}

/// A path as &str.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Runs an overlap query from acme as JSON.
pub fn overlap(
    pair: &Pair,
    id: &str,
    epsilon: &str,
    fresh: bool,
) -> Result<serde_json::Value, String> {
    let mut args = vec![
        "query",
        "overlap",
        "--dir",
        s(&pair.acme),
        "--agreement",
        id,
        "--group-by",
        "age_band",
        "--peer-group-by",
        "tier",
        "--epsilon",
        epsilon,
        "--json",
    ];
    if fresh {
        args.push("--fresh");
    }
    let out = tandem(&args);
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("JSON report"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The node's run history (`tandem runs --json`).
pub fn runs(dir: &Path) -> Vec<serde_json::Value> {
    let out = ok(&["runs", "--dir", s(dir), "--json"]);
    serde_json::from_str::<serde_json::Value>(&out)
        .expect("json")
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// ε this node has spent under agreement `id` (`tandem budget --json`).
pub fn spent(dir: &Path, id: &str) -> f64 {
    let v: serde_json::Value = serde_json::from_str(&ok(&[
        "budget",
        "--dir",
        s(dir),
        "--agreement",
        id,
        "--json",
    ]))
    .expect("json");
    v[0]["epsilon_spent"].as_f64().expect("spent")
}
