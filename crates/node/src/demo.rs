//! `tandem demo`: two nodes with synthetic audiences in a temporary directory, paired under a
//! signed agreement, serving real HTTPS on loopback; the querier asks for the overlap by
//! segment and the report is printed beside the true counts (which the demo knows only because
//! it made the data).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use crate::error::{Code, NodeError, OrCode, Result};
use sha2::{Digest, Sha256};
use tandem_agreement::{Agreement, Terms};

use crate::analysis::{Analysis, Query, Report, overlap::Overlap};
use crate::home::{Config, Home};

/// The demo's scenario.
#[derive(Clone, Debug)]
pub struct DemoArgs {
    /// Customers of the querier (a cosmetics maker).
    pub querier_size: usize,
    /// Customers of the responder (an e-commerce platform).
    pub responder_size: usize,
    /// Customers the two share.
    pub overlap: usize,
    /// ε of the query.
    pub epsilon: f64,
    /// Keep the two node directories here instead of a temporary directory.
    pub keep: Option<std::path::PathBuf>,
}

/// What the demo found.
pub struct DemoOutcome {
    /// The overlap report, each cell with its true count.
    pub report: Report,
    /// Cells whose 95% interval covers the true count.
    pub covered: usize,
    /// Per node: rows imported and seconds taken.
    pub imports: Vec<serde_json::Value>,
    /// Wall time of the whole demo, seconds.
    pub total_s: f64,
}

const AGE_BANDS: [&str; 4] = ["18-24", "25-34", "35-44", "45+"];
const REGIONS: [&str; 4] = ["north", "south", "east", "west"];
const TIERS: [&str; 3] = ["bronze", "silver", "gold"];
// The columns of the other analyses (lift, funnel, frequency, cohorts, attribution).
const ARMS: [&str; 2] = ["test", "control"];
const STAGES: [&str; 3] = ["visit", "cart", "checkout"];
const EXPOSURES: [&str; 3] = ["1", "2", "3+"];
const COHORTS: [&str; 4] = ["2026-01", "2026-02", "2026-03", "2026-04"];
const CHANNELS: [&str; 3] = ["search", "social", "video"];
const CONVERTED: [&str; 2] = ["0", "1"];

/// Acme's campaign columns of person `i`: arm, deepest funnel stage, exposures, acquisition
/// cohort and the touch coalition over [`CHANNELS`] (a bitmask).
fn campaign(i: usize) -> (&'static str, &'static str, &'static str, &'static str, u8) {
    let stage = match pick(i, "stage", 10) {
        0..=5 => STAGES[0],
        6..=8 => STAGES[1],
        _ => STAGES[2],
    };
    (
        ARMS[pick(i, "arm", 2)],
        stage,
        EXPOSURES[pick(i, "exposures", 3)],
        COHORTS[pick(i, "cohort", 4)],
        pick(i, "touch", 8) as u8,
    )
}

fn channels() -> Vec<String> {
    CHANNELS.iter().map(|c| c.to_string()).collect()
}

/// Whether shopx's buyer `i` converted: 8% base; for people acme knows, +4 points in the test
/// arm, +3 / +1 / +5 for search / social / video touches, +5 from the cart, +15 at checkout, +1 / +3 at 2 / 3+ exposures.
fn converted(i: usize, shared: bool) -> &'static str {
    let mut p = 0.08;
    if shared {
        let (arm, stage, exposures, _, touch) = campaign(i);
        p += if arm == "test" { 0.04 } else { 0.0 };
        p += [0.03, 0.01, 0.05]
            .iter()
            .enumerate()
            .filter(|(k, _)| touch & (1 << k) != 0)
            .map(|(_, e)| e)
            .sum::<f64>();
        p += match stage {
            "cart" => 0.05,
            "checkout" => 0.15,
            _ => 0.0,
        };
        p += match exposures {
            "2" => 0.01,
            "3+" => 0.03,
            _ => 0.0,
        };
    }
    CONVERTED[usize::from((pick(i, "converted", 10_000) as f64) < p * 10_000.0)]
}

/// shopx's value column `revenue` (whole yuan) and its bound `U`. Squares are released (for
/// value lift), and their noise offset grows with `U²`, so the unit is coarse.
const REVENUE_BOUND: u32 = 500;

/// shopx's revenue from buyer `i` in yuan: a converter spends 80 to 279, plus 30 in acme's test
/// arm and more the earlier acme acquired them (60 / 40 / 20 / 0 for the cohorts 2026-01 …
/// 2026-04); one non-converter in ten spends 5 to 24; the rest nothing.
fn revenue(i: usize, shared: bool, converted: &str) -> u32 {
    if converted != "1" {
        return if pick(i, "browse", 10) == 0 {
            5 + pick(i, "small", 20) as u32
        } else {
            0
        };
    }
    let mut v = 80 + pick(i, "basket", 200) as u32;
    if shared {
        let (arm, _, _, cohort, _) = campaign(i);
        v += if arm == "test" { 30 } else { 0 };
        v += match COHORTS.iter().position(|c| *c == cohort) {
            Some(k) => 60 - 20 * k as u32,
            None => 0,
        };
    }
    v.min(REVENUE_BOUND)
}

/// A deterministic pseudo-random pick for synthetic attributes (not a secret).
fn pick(i: usize, salt: &str, n: usize) -> usize {
    let h = Sha256::digest(format!("{salt}:{i}").as_bytes());
    (u32::from_le_bytes([h[0], h[1], h[2], h[3]]) as usize) % n
}

/// The querier's segment of person `i` (some ages are missing: counted in `other`).
fn age_band(i: usize) -> Option<&'static str> {
    let k = pick(i, "age", 9);
    (k < 8).then(|| AGE_BANDS[k % 4])
}

fn tier(i: usize) -> &'static str {
    // Loyalty skews the tiers: 50% bronze, 33% silver, 17% gold.
    match pick(i, "tier", 6) {
        0..=2 => TIERS[0],
        3 | 4 => TIERS[1],
        _ => TIERS[2],
    }
}

/// Person `i`'s email as the brand spells it, and as the platform spells it (other casing,
/// whitespace, gmail dots and +tags: both normalise to the same digest).
fn emails(i: usize) -> (String, String) {
    if i.is_multiple_of(5) {
        (
            format!("first.last{i}@gmail.com"),
            format!("  FirstLast{i}+shopx@GMAIL.com "),
        )
    } else {
        (
            format!("customer{i}@example.com"),
            format!("Customer{i}@Example.COM"),
        )
    }
}

fn write_csvs(dir: &Path, a: &DemoArgs) -> Result<()> {
    let mut acme = std::io::BufWriter::new(std::fs::File::create(dir.join("acme_customers.csv"))?);
    writeln!(
        acme,
        "email,age_band,region,arm,stage,exposures,cohort,touch"
    )?;
    let channels = channels();
    for i in 0..a.querier_size {
        let (e, _) = emails(i);
        let (arm, stage, exposures, cohort, touch) = campaign(i);
        writeln!(
            acme,
            "{e},{},{},{arm},{stage},{exposures},{cohort},{}",
            age_band(i).unwrap_or(""),
            REGIONS[pick(i, "region", 4)],
            tandem_analytics::touch_label(&channels, touch, None, None)
        )?;
    }
    acme.flush()?;
    let mut shop = std::io::BufWriter::new(std::fs::File::create(dir.join("shopx_buyers.csv"))?);
    writeln!(shop, "email,tier,converted,revenue")?;
    let only_b = a.responder_size - a.overlap;
    for i in (0..a.overlap).chain(a.querier_size..a.querier_size + only_b) {
        let (_, e) = emails(i);
        let shared = i < a.overlap;
        let converted = converted(i, shared);
        writeln!(
            shop,
            "\"{e}\",{},{converted},{}",
            tier(i),
            revenue(i, shared, converted)
        )?;
    }
    shop.flush()?;
    Ok(())
}

/// True overlap per (age band or other, tier).
fn truth(a: &DemoArgs) -> BTreeMap<(String, String), u64> {
    let mut t = BTreeMap::new();
    for i in 0..a.overlap {
        let age = age_band(i).unwrap_or("other").to_string();
        *t.entry((age, tier(i).to_string())).or_insert(0) += 1;
    }
    t
}

fn terms_toml(acme: &Home, shopx: &Home) -> Result<String> {
    let list = |v: &[&str]| {
        v.iter()
            .map(|s| format!("\"{s}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let touches: Vec<String> = tandem_analytics::touch_buckets(&channels(), false)
        .map_err(|e| NodeError::internal(e.to_string()))?
        .into_iter()
        .map(|b| b.label)
        .collect();
    let touches: Vec<&str> = touches.iter().map(String::as_str).collect();
    Ok(format!(
        r#"version = 1
purpose = "Demo: size of the audience Acme (cosmetics) shares with ShopX (e-commerce), by age band and loyalty tier, to plan a joint campaign"
legal_basis = "PIPL Art. 13(1)(1) consent for joint marketing analytics; GDPR Art. 6(1)(a)"
impact_assessment = "PIA-DEMO-001"
expires_at = "2099-01-01T00:00:00Z"
join_keys = ["email"]
min_reporting_threshold = 50
retention_days = 90

[[parties]]
name = "acme"
url = "{acme_url}"
signing_key = "{acme_key}"
tls_cert_sha256 = "{acme_tls}"
region = "CN"
[parties.columns]
age_band = [{ages}]
region = [{regions}]
arm = [{arms}]
stage = [{stages}]
exposures = [{exposures}]
cohort = [{cohorts}]
touch = [{touches}]
[parties.budget]
epsilon_per_query = 2.0
epsilon_total = 10.0
delta_per_query = 1e-9
delta_total = 1e-6

[[parties]]
name = "shopx"
url = "{shop_url}"
signing_key = "{shop_key}"
tls_cert_sha256 = "{shop_tls}"
region = "CN"
[parties.columns]
tier = [{tiers}]
converted = [{converted}]
[parties.values]
revenue = {{ unit = "yuan", bound = {revenue_bound}, squares = true }}
[parties.budget]
epsilon_per_query = 2.0
epsilon_total = 10.0
delta_per_query = 1e-9
delta_total = 1e-6
"#,
        acme_url = acme.config.public_url,
        acme_key = acme.key_fingerprint(),
        acme_tls = acme.tls_fingerprint(),
        shop_url = shopx.config.public_url,
        shop_key = shopx.key_fingerprint(),
        shop_tls = shopx.tls_fingerprint(),
        ages = list(&AGE_BANDS),
        regions = list(&REGIONS),
        tiers = list(&TIERS),
        arms = list(&ARMS),
        stages = list(&STAGES),
        exposures = list(&EXPOSURES),
        cohorts = list(&COHORTS),
        touches = list(&touches),
        converted = list(&CONVERTED),
        revenue_bound = REVENUE_BOUND,
    ))
}

/// Imports the demo's CSVs into both nodes; returns rows and seconds per node.
async fn import_audiences(
    root: &Path,
    acme: &Home,
    shopx: &Home,
    say: &(dyn Fn(String) + Sync),
) -> Result<Vec<serde_json::Value>> {
    let mut stats = Vec::new();
    for (home, file, attrs, values) in [
        (
            acme,
            "acme_customers.csv",
            [
                "age_band",
                "region",
                "arm",
                "stage",
                "exposures",
                "cohort",
                "touch",
            ]
            .map(String::from)
            .to_vec(),
            Vec::new(),
        ),
        (
            shopx,
            "shopx_buyers.csv",
            vec!["tier".to_string(), "converted".to_string()],
            vec![tandem_store::ValueSpec {
                column: "revenue".into(),
                bound: REVENUE_BOUND,
            }],
        ),
    ] {
        let opts = tandem_store::ImportOptions {
            attributes: attrs,
            values,
            normaliser: home.normaliser(),
            actor: "demo".into(),
            ..tandem_store::ImportOptions::new("email", tandem_identity::IdKind::Email)
        };
        let t = std::time::Instant::now();
        let path = root.join(file);
        let store_path = home.store_path();
        let report = tokio::task::spawn_blocking(move || {
            tandem_store::Store::open(&store_path)?.import_csv(&path, &opts, None)
        })
        .await
        .or_code(Code::Internal, || "import task".into())??;
        let secs = t.elapsed().as_secs_f64();
        say(format!(
            "{}: imported {} rows in {:.2} s ({:.0} rows/s), identifiers hashed",
            home.config.name,
            report.rows,
            secs,
            report.rows as f64 / secs
        ));
        stats.push(
            serde_json::json!({"node": home.config.name, "rows": report.rows, "seconds": secs}),
        );
    }
    Ok(stats)
}

/// Runs the demo; `say` receives progress lines for people.
pub async fn run(a: DemoArgs, say: &(dyn Fn(String) + Sync)) -> Result<DemoOutcome> {
    if a.overlap > a.querier_size || a.overlap > a.responder_size {
        return Err(NodeError::new(
            Code::Invalid,
            "the overlap cannot be larger than either audience",
        ));
    }
    let tmp =
        tempfile::tempdir().or_code(Code::Internal, || "creating a temporary directory".into())?;
    let root = match &a.keep {
        Some(p) => {
            std::fs::create_dir_all(p)?;
            p.clone()
        }
        None => tmp.path().to_path_buf(),
    };
    let started = std::time::Instant::now();
    // Bind first, so the URLs in the agreement name the real ports.
    let (acme_listener, acme_addr) = crate::server::bind("127.0.0.1:0").await?;
    let (shop_listener, shop_addr) = crate::server::bind("127.0.0.1:0").await?;
    let mut homes = Vec::new();
    for (name, addr) in [("acme", acme_addr), ("shopx", shop_addr)] {
        let dir = root.join(name);
        let cfg = Config {
            name: name.to_string(),
            listen: addr.to_string(),
            public_url: format!("https://{addr}"),
            region: "CN".into(),
            default_region: Some("CN".into()),
            default_country_code: None,
            max_message_bytes: 1 << 30,
            limits: Default::default(),
        };
        Home::init(&dir, cfg)?;
        homes.push(Home::open(&dir)?);
    }
    let (acme, shopx) = (&homes[0], &homes[1]);
    say(format!(
        "nodes acme ({acme_addr}) and shopx ({shop_addr}) in {}",
        root.display()
    ));

    write_csvs(&root, &a)?;
    let import_stats = import_audiences(&root, acme, shopx, say).await?;

    let terms = Terms::from_toml(&terms_toml(acme, shopx)?)?;
    let mut agreement = Agreement::new(terms);
    agreement.sign("acme", &acme.key)?;
    agreement.sign("shopx", &shopx.key)?;
    let id = agreement.id().to_string();
    for home in [acme, shopx] {
        home.store()?.put_agreement(
            &id,
            &serde_json::to_string(&agreement)?,
            "active",
            "cli:admin",
        )?;
    }
    say(format!("agreement {id} signed by acme and shopx"));

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut servers = Vec::new();
    for (home, listener) in [(acme, acme_listener), (shopx, shop_listener)] {
        let home = Home::open(&home.dir)?;
        let mut rx = stop_rx.clone();
        servers.push(tokio::spawn(async move {
            crate::server::serve(&home, listener, async move {
                let _ = rx.changed().await;
            })
            .await
        }));
    }

    let query = Query {
        agreement_id: id,
        join_key: None,
        group_by: vec!["age_band".into()],
        peer_group_by: vec!["tier".into()],
        peer_value: None,
        epsilon: a.epsilon,
        fresh: true,
        options: Default::default(),
    };
    say(format!(
        "acme asks shopx for the overlap by age_band × tier at ε = {} over HTTPS …",
        a.epsilon
    ));
    let result = crate::querier::run_query(acme, &Overlap, &query, "demo:analyst").await;
    let _ = stop_tx.send(true);
    for s in servers {
        let _ = s.await;
    }
    let mut report = result?;
    let truth = truth(&a);
    let mut covered = 0;
    for c in &mut report.cells {
        let t = truth
            .get(&(c.querier_group.clone(), c.responder_group.clone()))
            .copied()
            .unwrap_or(0);
        c.truth = Some(t);
        if c.ci_low <= t as i64 && t as i64 <= c.ci_high {
            covered += 1;
        }
    }
    Ok(DemoOutcome {
        report,
        covered,
        imports: import_stats,
        total_s: started.elapsed().as_secs_f64(),
    })
}

/// The demo's outcome as one JSON object.
pub fn outcome_json(o: &DemoOutcome) -> serde_json::Value {
    let r = &o.report;
    serde_json::json!({
        "agreement_id": r.agreement_id,
        "querier": r.querier,
        "responder": r.responder,
        "epsilon": r.epsilon,
        "cells": r.cells,
        "epsilon_spent": {
            r.querier.clone(): r.querier_budget.epsilon_spent,
            r.responder.clone(): r.responder_budget.epsilon_spent,
        },
        "budget": [r.querier_budget, r.responder_budget],
        "intervals_covering_truth": o.covered,
        "imports": o.imports,
        "query_wall_s": r.wall_s,
        "total_wall_s": o.total_s,
    })
}

/// The demo's outcome as a table for people.
pub fn outcome_text(o: &DemoOutcome) -> Result<String> {
    Ok(format!(
        "{}\n{} of {} intervals cover the true count; demo wall time {:.1} s",
        Overlap.render(&o.report, crate::analysis::Format::Table)?,
        o.covered,
        o.report.cells.len(),
        o.total_s
    ))
}
