//! What both roles of a run derive the same way from the agreement and the request: the active
//! agreement and the peer, the checks a request must pass, the protocol parameters (through the
//! request's [`Analysis`]), this node's buckets, and the cache fingerprint.

use tandem_agreement::{Agreement, OTHER_LABEL};
use tandem_psi::RunParams;
use tandem_store::Store;

use crate::analysis::{Analysis, CellGrid};
use crate::budget::run_delta;
use crate::error::{Code, NodeError, Result};
use crate::wire::{PROTOCOL, RunRequest, now_ms};

/// Loads an agreement this node may act under now, and the peer's name. Errors: 404
/// `not_found` (unknown), `inactive` coded by the caller's role (not both signed, expired, this
/// node not a party), 500 `corrupt_data` (stored document does not parse).
pub fn active_agreement(
    store: &Store,
    id: &str,
    me: &str,
    inactive: Code,
) -> Result<(Agreement, String)> {
    let stored = store
        .agreement(id)?
        .ok_or_else(|| NodeError::not_found(format!("unknown agreement {id}")))?;
    if stored.status != "active" {
        return Err(NodeError::new(
            inactive,
            format!(
                "agreement {id} is {} (both parties must sign it first)",
                stored.status
            ),
        ));
    }
    let agreement: Agreement = serde_json::from_str(&stored.doc_json).map_err(|e| {
        NodeError::new(
            Code::CorruptData,
            format!("stored agreement does not parse: {e}"),
        )
    })?;
    agreement
        .check_active(now_ms() / 1000)
        .map_err(|e| NodeError::new(inactive, e))?;
    let peer = agreement
        .terms
        .peer_of(me)
        .ok_or_else(|| {
            NodeError::new(
                inactive,
                format!("this node ({me}) is not a party to agreement {id}"),
            )
        })?
        .name
        .clone();
    Ok((agreement, peer))
}

/// A request's analysis, grid and protocol parameters, as both sides derive them — never taken
/// from numbers the peer chose.
pub struct Derived {
    /// The analysis.
    pub analysis: &'static dyn Analysis,
    /// Its cells.
    pub grid: CellGrid,
    /// The protocol parameters.
    pub params: RunParams,
    /// The value column a value analysis sums, its bound and ε (`psi-sum-v1`).
    pub sum: Option<crate::sums::SumPlan>,
    /// The psi-ca-v2 parameters when the agreement selects psi-ca-v2 (then `params` gives
    /// only the grid, hash domain and run id; [`crate::v2::params`]).
    pub v2: Option<tandem_psi_v2::RunParams>,
}

/// Checks `req` against the agreement — protocol and analysis known, join key and columns
/// listed (minimum necessity: only listed columns, only their public value sets), a positive ε,
/// the agreement's δ, this node's identifier rules — and derives the run's parameters.
/// Every refusal carries `code` (the querier refuses its analyst's query with 422
/// `invalid_query`, the responder its peer's request with 403 `refused`).
pub fn derive(
    agreement: &Agreement,
    querier: &str,
    responder: &str,
    req: &RunRequest,
    run_id: [u8; 16],
    code: Code,
) -> Result<Derived> {
    let refuse = |msg: String| NodeError::new(code, msg);
    // The agreement names the protocol (default psi-ca-v1); a run never falls back to another.
    let agreed = agreement.terms.protocol.as_str();
    if req.protocol != agreed {
        return Err(refuse(format!(
            "the run uses protocol {:?} but the agreement selects {agreed}; no run falls back to another protocol",
            req.protocol
        )));
    }
    let analysis = crate::analysis::find(&req.analysis).map_err(|e| refuse(e.message().into()))?;
    let keys = &agreement.terms.join_keys;
    if !keys.iter().any(|k| k == &req.join_key) {
        return Err(refuse(format!(
            "join key {:?} is not in the agreement (allowed: {})",
            req.join_key,
            keys.join(", ")
        )));
    }
    if req.delta != run_delta(agreement) {
        return Err(refuse(format!(
            "the request's δ {} is not the agreement's per-query δ {}",
            req.delta,
            run_delta(agreement)
        )));
    }
    if req.identity_rules != tandem_identity::RULES_VERSION {
        return Err(refuse(format!(
            "the querier hashed identifiers with rules {:?}, this node with {:?}: identifiers hash differently under different rules, so both nodes must run the same tandem release and re-import their audiences after upgrading (`tandem import`)",
            req.identity_rules,
            tandem_identity::RULES_VERSION
        )));
    }
    if !(req.epsilon.is_finite() && req.epsilon > 0.0) {
        return Err(refuse(format!(
            "epsilon must be a positive number, got {}",
            req.epsilon
        )));
    }
    let inputs = analysis.inputs(req);
    let sum = crate::sums::plan(agreement, responder, analysis, &inputs, req)
        .map_err(|e| refuse(e.message().to_string()))?;
    let grid = analysis
        .cells(agreement, querier, responder, &inputs)
        .map_err(|e| refuse(e.message().to_string()))?;
    crate::analysis::check_cell_limit(grid.querier.len(), grid.responder.len())
        .map_err(|e| refuse(e.message().to_string()))?;
    if analysis.sensitivity() != 1 {
        return Err(NodeError::internal(format!(
            "{} declares sensitivity {}; {PROTOCOL} counts have sensitivity 1",
            analysis.name(),
            analysis.sensitivity()
        )));
    }
    // A value analysis gives `sums::SUM_SHARE` of ε to the sums (psi-sum-v1 §6.1).
    let count_share = if sum.is_some() {
        1.0 - crate::sums::SUM_SHARE
    } else {
        1.0
    };
    let split = analysis.epsilon_split();
    // The hash-to-curve domain names the join key *and* the identifier rules version, so
    // digests made under different normalisation rules can never match by accident.
    let params = RunParams::for_epsilon(
        agreement.id().0,
        format!("{}/{}", req.join_key, req.identity_rules),
        run_id,
        grid.querier.len() as u32,
        grid.responder.len() as u32,
        req.epsilon * count_share * split.querier,
        req.epsilon * count_share * split.responder,
        req.delta,
    )
    .map_err(|e| refuse(e.to_string()))?;
    let mut derived = Derived {
        analysis,
        grid,
        params,
        sum,
        v2: None,
    };
    if crate::v2::selected(agreement) {
        // psi-sum-v1 reads psi-ca-v1's reply (its matched points); v2 has no such reply.
        if derived.sum.is_some() {
            return Err(refuse(format!(
                "{} sums values with psi-sum-v1, which runs on psi-ca-v1's reply; the agreement \
                 selects psi-ca-v2, which runs count analyses only",
                analysis.name()
            )));
        }
        derived.v2 = Some(crate::v2::params(&derived, req, code)?);
    }
    Ok(derived)
}

/// Loads this node's audience for `join_key` and groups the digests into the side's buckets
/// (`columns`: the group-by columns, none for one bucket). A member's bucket is the cross
/// product index of its columns' buckets, first column slowest, the order of
/// [`crate::analysis::bucket_labels`].
pub fn load_buckets(
    store: &Store,
    agreement: &Agreement,
    party: &str,
    join_key: &str,
    columns: &[String],
) -> Result<Buckets> {
    load_run_buckets(store, agreement, party, join_key, columns, None)
}

/// [`load_buckets`] for a psi-ca-v1 run with parameters `cache` (`[limits] hash_cache`): when
/// the store's hash cache is complete for the live member set and the run's hash domain
/// (`tandem_psi::hash_domain_id`), the buckets hold the members' cached `enc(H(x))` instead of
/// their digests ([`Buckets::hashed`]) and the run decompresses instead of hashing; otherwise
/// the digests, with the fill to do once the run is done ([`Buckets::fill_cache_later`]). Only
/// for runs that need no digest afterwards (not psi-sum-v1's value lookup, not psi-ca-v2).
pub fn load_run_buckets(
    store: &Store,
    agreement: &Agreement,
    party: &str,
    join_key: &str,
    columns: &[String],
    cache: Option<&RunParams>,
) -> Result<Buckets> {
    let kind: tandem_identity::IdKind = join_key
        .parse()
        .map_err(|e| NodeError::invalid_query(format!("{e}")))?;
    let n = crate::analysis::bucket_labels(agreement, party, columns)?.len();
    // Each column's number of labels (its values and `other`), for the mixed-radix index.
    let radices = columns
        .iter()
        .map(|c| Ok(agreement.bucket_labels(party, c)?.len()))
        .collect::<Result<Vec<usize>>>()?;
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut buckets = vec![Vec::new(); n];
    let mut outside_value_set = 0u64;
    let mut put = |entry: &[u8; 32], values: &[Option<String>]| {
        let mut b = 0usize;
        let mut outside = false;
        for ((column, value), radix) in columns.iter().zip(values).zip(&radices) {
            let i = agreement.bucket_of(party, column, value.as_deref())? as usize;
            // The last label is `other`: a member lands there when its value is missing or not
            // in the agreement's public set (say `Gold` against `bronze, silver, gold`).
            outside |= i + 1 == *radix && value.as_deref() != Some(OTHER_LABEL);
            b = b * radix + i;
        }
        if outside {
            outside_value_set += 1;
        }
        buckets
            .get_mut(b)
            .ok_or_else(|| NodeError::internal("a member's bucket is outside the grid"))?
            .push(*entry);
        Ok::<_, NodeError>(())
    };
    let mut fill = None;
    if let Some(params) = cache {
        let domain = tandem_psi::hash_domain_id(params)?;
        // Nothing is put unless the cache is complete (the walk returns false first).
        if store.for_each_cached_member("default", kind, &names, &domain, |_, point, values| {
            put(point, values)
        })? {
            return Ok(Buckets {
                items: buckets,
                outside_value_set,
                hashed: true,
                fill: None,
            });
        }
        fill = Some(PendingFill {
            kind,
            domain,
            params: params.clone(),
        });
    }
    store.for_each_member("default", kind, &names, |digest, values| {
        put(digest, values)
    })?;
    Ok(Buckets {
        items: buckets,
        outside_value_set,
        hashed: false,
        fill,
    })
}

/// A hash cache to fill once a run from digests is done.
struct PendingFill {
    kind: tandem_identity::IdKind,
    domain: [u8; 32],
    params: RunParams,
}

/// Hash domains being filled by this process, so that runs in a row start one fill each.
static FILLING: std::sync::Mutex<Vec<(std::path::PathBuf, [u8; 32])>> =
    std::sync::Mutex::new(Vec::new());

/// The fill threads started by this process.
static FILL_THREADS: std::sync::Mutex<Vec<std::thread::JoinHandle<()>>> =
    std::sync::Mutex::new(Vec::new());

/// Waits for the hash-cache fills this process started ([`Buckets::fill_cache_later`]): a
/// one-shot process (`tandem query`) calls it before it exits, so its first run's fill is not
/// cut short (a cut fill is ignored and redone, so the work would be lost).
pub fn wait_for_hash_fills() {
    let threads = std::mem::take(&mut *FILL_THREADS.lock().unwrap_or_else(|e| e.into_inner()));
    for t in threads {
        let _ = t.join();
    }
}

/// Version of this node's audience for `join_key` (see
/// [`tandem_store::Store::members_version`]). Errors: 422 `invalid_query` for an unknown kind.
pub fn audience_version(store: &Store, join_key: &str) -> Result<u64> {
    let kind: tandem_identity::IdKind = join_key
        .parse()
        .map_err(|e| NodeError::invalid_query(format!("{e}")))?;
    Ok(store.members_version("default", kind)?)
}

/// This node's members of a run, by bucket, and how many of them fell into an `other` label
/// because a value of a grouping column is missing or outside the agreement's public value set.
/// That count is exact and local: the operator sees it, the peer never does.
pub struct Buckets {
    /// Digests per bucket, in the order of the bucket labels — or their cached `enc(H(x))`
    /// when [`Buckets::hashed`].
    pub items: Vec<Vec<[u8; 32]>>,
    /// Members counted in `other` without having the value `other`.
    pub outside_value_set: u64,
    /// True if `items` are cached points, not digests.
    pub hashed: bool,
    fill: Option<PendingFill>,
}

impl Buckets {
    /// The run's input: digests or cached points ([`tandem_psi::Items`]).
    pub fn input(&self) -> tandem_psi::Items<'_> {
        if self.hashed {
            tandem_psi::Items::hashed(self.items.as_slice())
        } else {
            tandem_psi::Items::digests(self.items.as_slice())
        }
    }

    /// [`Buckets::input`], taking the buckets (a streamed run keeps them).
    pub fn into_input(self) -> tandem_psi::Items<'static> {
        if self.hashed {
            tandem_psi::Items::hashed(self.items)
        } else {
            tandem_psi::Items::digests(self.items)
        }
    }

    /// If the run read digests because the hash cache was not complete, fills it in a
    /// background thread on its own connection to the store at `store_path`: one hash to the
    /// curve, compression and row per member, paid once per member set and hash domain
    /// ([`tandem_store::Store::fill_hash_cache`]). One fill per domain at a time in this
    /// process; a failure is logged and the next run tries again.
    pub fn fill_cache_later(&mut self, store_path: &std::path::Path) {
        let Some(PendingFill {
            kind,
            domain,
            params,
        }) = self.fill.take()
        else {
            return;
        };
        let key = (store_path.to_path_buf(), domain);
        {
            let mut filling = FILLING.lock().unwrap_or_else(|e| e.into_inner());
            if filling.contains(&key) {
                return;
            }
            filling.push(key.clone());
        }
        let handle = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let filled = Store::open(&key.0)
                .map_err(NodeError::from)
                .and_then(|mut store| {
                    store.fill_hash_cache("default", kind, &key.1, |digests| {
                        tandem_psi::hash_to_points(&params, digests).map_err(NodeError::from)
                    })
                });
            match filled {
                Ok(f) => tracing::info!(
                    points = f.points,
                    complete = f.complete,
                    seconds = started.elapsed().as_secs_f64(),
                    "hash cache filled"
                ),
                Err(e) => tracing::warn!(error = %e.message(), "hash cache fill failed"),
            }
            let mut filling = FILLING.lock().unwrap_or_else(|e| e.into_inner());
            filling.retain(|k| k != &key);
        });
        let mut threads = FILL_THREADS.lock().unwrap_or_else(|e| e.into_inner());
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
    }
}

/// Fingerprint of a query on this node's data: identical queries on unchanged data return the
/// stored answer instead of fresh noise (repeats must not average the noise away).
pub fn query_fingerprint(store: &Store, req: &RunRequest, agreement_id: &str) -> Result<String> {
    let v = serde_json::json!({
        "agreement": agreement_id,
        "request": req,
        "audience_version": store.audience_version()?,
    });
    Ok(crate::home::sha256_hex(v.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use tandem_testkit::{AgreementBuilder, PartySpec};

    /// Issue 10: 100 rows with tier `Gold` against the public set `bronze, silver, gold` land in
    /// `other`; the run says how many (locally) instead of silently moving them.
    #[test]
    fn members_outside_the_public_value_set_are_counted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = tandem_store::Store::open(dir.path()).expect("store");
        let agreement = AgreementBuilder::new()
            .party(PartySpec::seeded("acme", 1))
            .party(PartySpec::seeded("shopx", 2).column("tier", &["bronze", "silver", "gold"]))
            .agreement();
        let mut csv = String::from("email,tier\n");
        for i in 0..100 {
            csv.push_str(&format!("g{i}@example.com,Gold\n"));
        }
        for i in 0..7 {
            csv.push_str(&format!("s{i}@example.com,silver\n"));
        }
        csv.push_str("none@example.com,\n");
        let file = dir.path().join("shopx.csv");
        std::fs::write(&file, csv).expect("write");
        let mut opts = tandem_store::ImportOptions::new("email", tandem_identity::IdKind::Email);
        opts.attributes = vec!["tier".into()];
        store.import_csv(&file, &opts, None).expect("import");

        let b = super::load_buckets(&store, &agreement, "shopx", "email", &["tier".into()])
            .expect("buckets");
        let sizes: Vec<usize> = b.items.iter().map(Vec::len).collect();
        assert_eq!(sizes, [0, 7, 0, 101]);
        assert_eq!(b.outside_value_set, 101);
        let all = super::load_buckets(&store, &agreement, "shopx", "email", &[]).expect("one");
        assert_eq!((all.items.len(), all.outside_value_set), (1, 0));
    }

    /// The first run reads digests and fills the hash cache in the background; once it is
    /// complete, a run reads the same members' `enc(H(x))` in the same buckets.
    #[test]
    fn a_run_after_the_fill_reads_cached_points() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = tandem_store::Store::open(dir.path()).expect("store");
        let agreement = AgreementBuilder::new()
            .party(PartySpec::seeded("acme", 1))
            .party(PartySpec::seeded("shopx", 2).column("tier", &["bronze", "silver"]))
            .agreement();
        let mut csv = String::from("email,tier\n");
        for i in 0..300 {
            csv.push_str(&format!(
                "u{i}@example.com,{}\n",
                ["bronze", "silver", ""][i % 3]
            ));
        }
        let file = dir.path().join("shopx.csv");
        std::fs::write(&file, csv).expect("write");
        let mut opts = tandem_store::ImportOptions::new("email", tandem_identity::IdKind::Email);
        opts.attributes = vec!["tier".into()];
        store.import_csv(&file, &opts, None).expect("import");
        let params = tandem_psi::RunParams::for_epsilon(
            agreement.id().0,
            "email/test",
            [3; 16],
            1,
            3,
            1.0,
            1.0,
            1e-9,
        )
        .expect("params");
        let columns = ["tier".to_string()];
        let load = || {
            super::load_run_buckets(
                &store,
                &agreement,
                "shopx",
                "email",
                &columns,
                Some(&params),
            )
            .expect("buckets")
        };
        let mut first = load();
        assert!(!first.hashed);
        first.fill_cache_later(store.path());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let cached = loop {
            let b = load();
            if b.hashed {
                break b;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the fill never completed"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert_eq!(cached.outside_value_set, first.outside_value_set);
        for (digests, points) in first.items.iter().zip(&cached.items) {
            assert_eq!(
                &tandem_psi::hash_to_points(&params, digests).expect("hash"),
                points
            );
        }
    }
}
