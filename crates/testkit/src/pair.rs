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
        let (acme_rows, shopx_rows) = audiences();
        NodePair::launch(&acme_rows, &shopx_rows, acme_total, shopx_total, None).await
    }

    /// [`NodePair::start`] under an agreement whose `protocol` is `protocol`.
    pub async fn with_protocol(protocol: &str) -> NodePair {
        let (acme_rows, shopx_rows) = audiences();
        NodePair::launch(&acme_rows, &shopx_rows, 50.0, 50.0, Some(protocol)).await
    }

    async fn launch(
        acme_rows: &str,
        shopx_rows: &str,
        acme_total: f64,
        shopx_total: f64,
        protocol: Option<&str>,
    ) -> NodePair {
        let root = tempfile::tempdir().expect("tempdir");
        let (acme_l, acme_addr) = tandem_node::server::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let (shop_l, shop_addr) = tandem_node::server::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let acme = home(root.path(), "acme", acme_addr);
        let shopx = home(root.path(), "shopx", shop_addr);
        import(&acme, acme_rows, "seg");
        import(&shopx, shopx_rows, "tier");
        let mut builder = AgreementBuilder::new().purpose("node tests");
        if let Some(protocol) = protocol {
            builder = builder.protocol(protocol);
        }
        let agreement = builder
            .party(
                PartySpec::node("acme", &acme)
                    .column("seg", &["x", "y"])
                    .epsilon(acme_total.min(2.0), acme_total),
            )
            .party(
                PartySpec::node("shopx", &shopx)
                    .column("tier", &["silver", "gold"])
                    .epsilon(shopx_total.min(2.0), shopx_total),
            )
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
            group_by: Some("seg".into()),
            peer_group_by: Some("tier".into()),
            epsilon: 1.0,
            fresh: true,
        }
    }
}

/// The audiences of [`NodePair::start`], as CSV: acme's and shopx's.
fn audiences() -> (String, String) {
    let mut acme_rows = String::from("email,seg\n");
    for i in 0..300 {
        acme_rows += &format!("p{i}@example.com,{}\n", if i % 2 == 0 { "x" } else { "y" });
    }
    let mut shopx_rows = String::from("email,tier\n");
    for i in 150..500 {
        let tier = if i % 3 == 0 { "gold" } else { "silver" };
        shopx_rows += &format!("p{i}@example.com,{tier}\n");
    }
    (acme_rows, shopx_rows)
}

fn home(root: &Path, name: &str, addr: std::net::SocketAddr) -> Home {
    let cfg = Config {
        name: name.into(),
        listen: addr.to_string(),
        public_url: format!("https://{addr}"),
        region: "CN".into(),
        default_region: None,
        default_country_code: None,
        max_message_bytes: 1 << 26,
    };
    Home::init(&root.join(name), cfg).expect("init");
    Home::open(&root.join(name)).expect("open")
}

fn import(home: &Home, rows: &str, attribute: &str) {
    let file = home.dir.join("people.csv");
    std::fs::write(&file, rows).expect("write csv");
    let opts = tandem_store::ImportOptions {
        attributes: vec![attribute.to_string()],
        ..tandem_store::ImportOptions::new("email", tandem_identity::IdKind::Email)
    };
    home.store()
        .expect("store")
        .import_csv(&file, &opts, None)
        .expect("import");
}
