//! Two nodes in one process: homes in a temporary directory, audiences imported, an agreement
//! signed by both and active on both, and both HTTPS servers serving on loopback until the
//! pair is dropped.

use std::path::Path;

use tandem_node::home::{Config, Home};

use crate::{AgreementBuilder, PartySpec, store_active};

/// `acme` (the querier, column `seg` = x/y) and `shopx` (the responder, column `tier` =
/// silver/gold), serving in process.
pub struct NodePair {
    _root: tempfile::TempDir,
    /// The querier.
    pub acme: Home,
    /// The responder.
    pub shopx: Home,
    /// The active agreement's id.
    pub agreement_id: String,
    /// Per server (acme, shopx): its stop signal and task; dropping the pair stops both.
    servers: Vec<(
        tokio::sync::watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl NodePair {
    /// Starts the pair on a Tokio runtime: acme holds `p0…p299@example.com` (even `x`, odd `y`),
    /// shopx `p150…p499@example.com` (multiples of 3 `gold`, else `silver`): 150 shared.
    pub async fn start() -> NodePair {
        NodePair::with_budgets(50.0, 50.0).await
    }

    /// [`NodePair::start`] with these total ε budgets (per query: at most 2).
    pub async fn with_budgets(acme_total: f64, shopx_total: f64) -> NodePair {
        let (acme, shopx) = default_sides();
        NodePair::launch(acme, shopx, acme_total, shopx_total).await
    }

    /// [`NodePair::start`] under an agreement whose `protocol` is `protocol`.
    pub async fn with_protocol(protocol: &str) -> NodePair {
        let (acme, shopx) = default_sides();
        NodePair::launch_with(acme, shopx, 50.0, 50.0, Some(protocol), Default::default()).await
    }

    /// [`NodePair::with_protocol`] with these `[limits]` on both nodes (a short
    /// `v2_state_ttl_s`, say).
    pub async fn with_protocol_limits(
        protocol: &str,
        limits: tandem_node::home::Limits,
    ) -> NodePair {
        let (acme, shopx) = default_sides();
        NodePair::launch_with(acme, shopx, 50.0, 50.0, Some(protocol), limits).await
    }

    /// A pair on the given audiences (CSV with an `email` column and the sides' columns), each
    /// party's budget 50 in all and 2 per query.
    pub async fn with_data(acme: Side, shopx: Side) -> NodePair {
        NodePair::launch(acme, shopx, 50.0, 50.0).await
    }

    /// A pair with the given audiences (`email,<columns…>` CSV text) and each side's columns
    /// with their public value sets, total ε budgets as given (per query: at most 2).
    pub async fn with_audiences(
        acme: (&str, &[(&str, &[&str])]),
        shopx: (&str, &[(&str, &[&str])]),
        acme_total: f64,
        shopx_total: f64,
    ) -> NodePair {
        let side = |(rows, columns): (&str, &[(&str, &[&str])])| {
            columns
                .iter()
                .fold(Side::new(rows), |s, (c, values)| s.column(c, values))
        };
        NodePair::launch(side(acme), side(shopx), acme_total, shopx_total).await
    }

    /// A pair with two grouping columns per side, for cross-product cells: acme holds
    /// `p0…p299@example.com` with `age_band` (`young` for even i, else `old`) and `region`
    /// (`north` for multiples of 3, `east` — outside the public set, so `other` — for other
    /// multiples of 7, else `south`); shopx holds `p150…p499@example.com` with `tier` (`gold`
    /// for multiples of 5, else `silver`) and `channel` (`web` when i mod 4 < 2, else `store`).
    /// [`NodePair::multi_column_truth`] gives each cell's true count.
    pub async fn multi_column() -> NodePair {
        let mut acme_rows = String::from("email,age_band,region\n");
        for i in 0..300 {
            let (age, region) = multi_column_acme(i);
            acme_rows += &format!("p{i}@example.com,{age},{region}\n");
        }
        let mut shopx_rows = String::from("email,tier,channel\n");
        for i in 150..500 {
            let (tier, channel) = multi_column_shopx(i);
            shopx_rows += &format!("p{i}@example.com,{tier},{channel}\n");
        }
        NodePair::launch(
            Side::new(&acme_rows)
                .column("age_band", &["young", "old"])
                .column("region", &["north", "south"]),
            Side::new(&shopx_rows)
                .column("tier", &["silver", "gold"])
                .column("channel", &["web", "store"]),
            50.0,
            50.0,
        )
        .await
    }

    /// The true count of a cell of [`NodePair::multi_column`]'s `age_band,region` ×
    /// `tier,channel` grid, by its labels (`young|other`, `gold|web`).
    pub fn multi_column_truth(querier_group: &str, responder_group: &str) -> u64 {
        let public = |v: &str| if v == "east" { "other" } else { v }.to_string();
        (150..300)
            .filter(|&i| {
                let (age, region) = multi_column_acme(i);
                let (tier, channel) = multi_column_shopx(i);
                format!("{age}|{}", public(region)) == querier_group
                    && format!("{tier}|{channel}") == responder_group
            })
            .count() as u64
    }

    async fn launch(
        acme_side: Side,
        shopx_side: Side,
        acme_total: f64,
        shopx_total: f64,
    ) -> NodePair {
        NodePair::launch_with(
            acme_side,
            shopx_side,
            acme_total,
            shopx_total,
            None,
            Default::default(),
        )
        .await
    }

    async fn launch_with(
        acme_side: Side,
        shopx_side: Side,
        acme_total: f64,
        shopx_total: f64,
        protocol: Option<&str>,
        limits: tandem_node::home::Limits,
    ) -> NodePair {
        let root = tempfile::tempdir().expect("tempdir");
        let (acme_l, acme_addr) = tandem_node::server::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let (shop_l, shop_addr) = tandem_node::server::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let acme = home(root.path(), "acme", acme_addr, &limits);
        let shopx = home(root.path(), "shopx", shop_addr, &limits);
        import(&acme, &acme_side);
        import(&shopx, &shopx_side);
        let spec = |name: &str, home: &Home, side: &Side, total: f64| {
            let p = side.columns.iter().fold(
                PartySpec::node(name, home).epsilon(total.min(2.0), total),
                |p, (c, values)| {
                    let values: Vec<&str> = values.iter().map(String::as_str).collect();
                    p.column(c, &values)
                },
            );
            side.values
                .iter()
                .fold(p, |p, (c, bound)| p.value(c, "cents", *bound, true))
        };
        let mut builder = AgreementBuilder::new().purpose("node tests");
        if let Some(protocol) = protocol {
            builder = builder.protocol(protocol);
        }
        let agreement = builder
            .party(spec("acme", &acme, &acme_side, acme_total))
            .party(spec("shopx", &shopx, &shopx_side, shopx_total))
            .signed(&[("acme", &acme.key), ("shopx", &shopx.key)]);
        for h in [&acme, &shopx] {
            store_active(&mut h.store().expect("store"), &agreement);
        }
        let mut servers = Vec::new();
        for (h, l) in [(acme.clone(), acme_l), (shopx.clone(), shop_l)] {
            let (stop, mut rx) = tokio::sync::watch::channel(false);
            let task = tokio::spawn(async move {
                let _ = tandem_node::server::serve(&h, l, async move {
                    let _ = rx.changed().await;
                })
                .await;
            });
            servers.push((stop, task));
        }
        NodePair {
            _root: root,
            acme,
            shopx,
            agreement_id: agreement.id().to_string(),
            servers,
        }
    }

    /// Stops shopx's server and waits until it no longer accepts connections.
    pub async fn stop_responder(&mut self) {
        if self.servers.len() == 2
            && let Some((stop, task)) = self.servers.pop()
        {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }

    /// acme's overlap query by `seg` × `tier` at ε 1, fresh.
    pub fn query(&self) -> tandem_node::analysis::Query {
        tandem_node::analysis::Query {
            agreement_id: self.agreement_id.clone(),
            join_key: None,
            group_by: vec!["seg".into()],
            peer_group_by: vec!["tier".into()],
            peer_value: None,
            epsilon: 1.0,
            fresh: true,
            options: Default::default(),
        }
    }
}

/// The audiences of [`NodePair::start`], as CSV: acme's and shopx's.
/// The default pair's sides: acme `p0…p299@example.com` with `seg` (even `x`, odd `y`), shopx
/// `p150…p499@example.com` with `tier` (multiples of 3 `gold`, else `silver`) and the value
/// column `revenue_cents` ([`revenue_cents`], bound [`REVENUE_BOUND`]).
fn default_sides() -> (Side, Side) {
    let mut acme_rows = String::from("email,seg\n");
    for i in 0..300 {
        acme_rows += &format!("p{i}@example.com,{}\n", if i % 2 == 0 { "x" } else { "y" });
    }
    let mut shopx_rows = String::from("email,tier,revenue_cents\n");
    for i in 150..500 {
        let tier = if i % 3 == 0 { "gold" } else { "silver" };
        shopx_rows += &format!("p{i}@example.com,{tier},{}\n", revenue_cents(i));
    }
    (
        Side::new(&acme_rows).column("seg", &["x", "y"]),
        Side::new(&shopx_rows)
            .column("tier", &["silver", "gold"])
            .value("revenue_cents", REVENUE_BOUND),
    )
}

fn home(
    root: &Path,
    name: &str,
    addr: std::net::SocketAddr,
    limits: &tandem_node::home::Limits,
) -> Home {
    let cfg = Config {
        name: name.into(),
        listen: addr.to_string(),
        public_url: format!("https://{addr}"),
        region: "CN".into(),
        default_region: None,
        default_country_code: None,
        max_message_bytes: 1 << 26,
        limits: limits.clone(),
    };
    Home::init(&root.join(name), cfg).expect("init");
    Home::open(&root.join(name)).expect("open")
}

/// One side's audience for [`NodePair::with_data`]: CSV rows and the agreement's columns.
#[derive(Clone, Debug)]
pub struct Side {
    rows: String,
    columns: Vec<(String, Vec<String>)>,
    values: Vec<(String, u32)>,
}

impl Side {
    /// CSV text with a header (`email,…`).
    pub fn new(rows: &str) -> Side {
        Side {
            rows: rows.to_string(),
            columns: Vec::new(),
            values: Vec::new(),
        }
    }

    /// A column of the CSV the agreement lists, with its public values.
    pub fn column(mut self, name: &str, values: &[&str]) -> Side {
        self.columns.push((
            name.to_string(),
            values.iter().map(|v| v.to_string()).collect(),
        ));
        self
    }

    /// A value column of the CSV (psi-sum-v1) the agreement lists in cents with bound `U` and
    /// sums of squares; imported clamped to `[0, U]`.
    pub fn value(mut self, name: &str, bound: u32) -> Side {
        self.values.push((name.to_string(), bound));
        self
    }
}

/// The bound `U` of shopx's value column `revenue_cents`.
pub const REVENUE_BOUND: u32 = 1000;

/// shopx's `revenue_cents` of `p{i}@example.com` (in `[0, 1000]`; some negatives in the raw
/// file, imported as 0).
pub fn revenue_cents(i: usize) -> i64 {
    (i as i64 * 37) % 1061 - 60
}

fn multi_column_acme(i: usize) -> (&'static str, &'static str) {
    let age = if i.is_multiple_of(2) { "young" } else { "old" };
    let region = match i {
        _ if i.is_multiple_of(3) => "north",
        _ if i.is_multiple_of(7) => "east",
        _ => "south",
    };
    (age, region)
}

fn multi_column_shopx(i: usize) -> (&'static str, &'static str) {
    let tier = if i.is_multiple_of(5) {
        "gold"
    } else {
        "silver"
    };
    let channel = if i % 4 < 2 { "web" } else { "store" };
    (tier, channel)
}

fn import(home: &Home, side: &Side) {
    let file = home.dir.join("people.csv");
    std::fs::write(&file, &side.rows).expect("write csv");
    let opts = tandem_store::ImportOptions {
        attributes: side.columns.iter().map(|(c, _)| c.clone()).collect(),
        values: side
            .values
            .iter()
            .map(|(column, bound)| tandem_store::ValueSpec {
                column: column.clone(),
                bound: *bound,
            })
            .collect(),
        ..tandem_store::ImportOptions::new("email", tandem_identity::IdKind::Email)
    };
    home.store()
        .expect("store")
        .import_csv(&file, &opts, None)
        .expect("import");
}
