//! Agreement life cycle on a node: propose (sign and deliver to the peer), receive a proposal,
//! accept (countersign and deliver back), import a signed file when the peer is offline.
//! A node acts only under an agreement that both parties signed and that has not expired.

use std::path::PathBuf;

use ed25519_dalek::SigningKey;
use tandem_agreement::{Agreement, Terms};
use tandem_store::Store;

use crate::error::{Code, NodeError, OrCode, Result};
use crate::home::Home;

/// Returns a [`NodeError`] with `code` and a formatted reason.
macro_rules! fail {
    ($code:expr, $($fmt:tt)*) => {
        return Err(NodeError::new($code, format!($($fmt)*)))
    };
}

/// Fewest hex characters of an agreement id an operator may give instead of the whole id (the
/// short ids that `tandem runs`, `tandem results list` and reports print have 12).
pub const MIN_ID_PREFIX: usize = 8;

/// The full id of the stored agreement (any status) that `given` names: its whole id (64 hex
/// characters), or a prefix of at least [`MIN_ID_PREFIX`] hex characters that starts exactly
/// one stored id; case-insensitive. For ids an operator types (CLI, `/api/v1`), never for a
/// peer's signed request, which names the whole id. Errors: 404 `not_found` (no agreement, or a
/// prefix too short or not hex; the reason points to `tandem agreement list`), 400
/// `bad_request` for a prefix several ids start with (details: `candidates`, the full ids).
pub fn resolve_id(store: &Store, given: &str) -> Result<String> {
    if store.agreement(given)?.is_some() {
        return Ok(given.to_string());
    }
    let wanted = given.trim().to_ascii_lowercase();
    let unknown = |why: &str| {
        NodeError::not_found(format!(
            "unknown agreement {given}{why} (`tandem agreement list` shows the ids)"
        ))
    };
    if wanted.len() < MIN_ID_PREFIX || !wanted.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(unknown(&format!(
            ": give its id or a unique prefix of at least {MIN_ID_PREFIX} hex characters"
        )));
    }
    let candidates: Vec<String> = store
        .agreements()?
        .into_iter()
        .filter(|a| a.id.starts_with(&wanted))
        .map(|a| a.id)
        .collect();
    match candidates.as_slice() {
        [] => Err(unknown("")),
        [one] => Ok(one.clone()),
        many => Err(NodeError::bad_request(format!(
            "agreement prefix {given} is ambiguous: {} agreements start with it ({}); give more characters",
            many.len(),
            many.join(", ")
        ))
        .with_details(serde_json::json!({ "candidates": many }))),
    }
}

/// [`resolve_id`] for an optional filter (`--agreement`, `?agreement=`): `None` stays `None`,
/// so a list over every agreement is unchanged, while a mistyped id is an error rather than an
/// empty list.
pub fn resolve_filter(store: &Store, given: Option<&str>) -> Result<Option<String>> {
    given.map(|id| resolve_id(store, id)).transpose()
}

/// Placeholder for a key or fingerprint that `propose` fills in from the proposing node.
const PLACEHOLDER: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// How a signed document reached (or did not reach) the peer.
pub enum Delivery {
    /// The peer's node received it.
    Delivered,
    /// The peer was not reachable: the file to hand over instead, and why.
    Written(PathBuf, String),
}

/// Fills this node's own keys into its party entry where the terms hold placeholders, and
/// checks them where they do not.
fn fill_own_party(terms: &mut Terms, home: &Home) -> Result<()> {
    let me = &home.config.name;
    let party = terms
        .parties
        .iter_mut()
        .find(|p| &p.name == me)
        .or_code(Code::Invalid, || {
            format!("this node ({me}) is not one of the agreement's parties")
        })?;
    if party.region != home.config.region {
        fail!(
            Code::Invalid,
            "the agreement places {me}'s data in region {:?}, but this node is configured for {:?} (data residency)",
            party.region,
            home.config.region
        );
    }
    for (field, mine) in [
        (&mut party.signing_key, home.key_fingerprint()),
        (&mut party.tls_cert_sha256, home.tls_fingerprint()),
    ] {
        if field.is_empty() || field == PLACEHOLDER {
            *field = mine;
        } else if *field != mine {
            fail!(
                Code::Invalid,
                "the agreement names key {field} for {me}, but this node's is {mine}"
            );
        }
    }
    Ok(())
}

/// Checks that this node's party entry names this node's key and certificate.
fn check_own_party(agreement: &Agreement, home: &Home) -> Result<()> {
    let me = &home.config.name;
    let party = agreement
        .terms
        .party(me)
        .or_code(Code::Invalid, || format!("this node ({me}) is not a party"))?;
    if party.region != home.config.region {
        fail!(
            Code::Invalid,
            "the agreement places {me}'s data in region {:?}, but this node is configured for {:?} (data residency)",
            party.region,
            home.config.region
        );
    }
    if party.signing_key != home.key_fingerprint() {
        fail!(
            Code::Invalid,
            "the agreement names signing key {} for {me}, not this node's",
            party.signing_key
        );
    }
    if party.tls_cert_sha256 != home.tls_fingerprint() {
        fail!(
            Code::Invalid,
            "the agreement names TLS certificate {} for {me}, not this node's",
            party.tls_cert_sha256
        );
    }
    Ok(())
}

/// Notes for the operator naming the stored agreements that share `agreement`'s budget: the
/// same partner key and join key, so runs under either count against the same caps and a new
/// agreement gives no fresh budget (`protocols/agreement-v1.md` §2.6).
pub fn shared_budget_notes(store: &Store, agreement: &Agreement) -> Result<Vec<String>> {
    let id = agreement.id().to_string();
    Ok(store
        .agreements_sharing_budget(&serde_json::to_string(agreement)?, &id)?
        .into_iter()
        .map(|shared| {
            format!(
                "shares its privacy budget on {} with agreement {} ({}): runs under either \
                 count against the same caps",
                shared.join_keys.join(", "),
                shared.agreement_id,
                shared.status
            )
        })
        .collect())
}

/// Signs `terms` as this node, stores the proposal and delivers it to the peer.
pub async fn propose(
    home: &Home,
    toml_text: &str,
    peer_url: Option<&str>,
) -> Result<(Agreement, Delivery)> {
    let mut terms: Terms = toml::from_str(toml_text)
        .or_code(Code::BadData, || "agreement file does not parse".into())?;
    fill_own_party(&mut terms, home)?;
    if let Some(url) = peer_url {
        let me = home.config.name.clone();
        if let Some(peer) = terms.parties.iter_mut().find(|p| p.name != me) {
            peer.url = url.to_string();
        }
    }
    terms.validate()?;
    let mut agreement = Agreement::new(terms);
    agreement.sign(&home.config.name, &home.key)?;
    let id = agreement.id().to_string();
    let json = serde_json::to_string(&agreement)?;
    let mut store = home.store()?;
    store.put_agreement(&id, &json, "proposed", "cli:admin")?;
    let delivery = deliver(home, &agreement, crate::wire::PROPOSE_PATH).await?;
    Ok((agreement, delivery))
}

/// Countersigns a proposal (from the store, or from a file) and delivers it to the proposer.
pub async fn accept(
    home: &Home,
    id: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<(Agreement, Delivery)> {
    let mut store = home.store()?;
    let agreement: Agreement = match (id, file) {
        (_, Some(path)) => serde_json::from_str(
            &std::fs::read_to_string(path)
                .or_code(Code::NotFound, || format!("reading {}", path.display()))?,
        )
        .or_code(Code::BadData, || "agreement file does not parse".into())?,
        (Some(id), None) => {
            let id = &resolve_id(&store, id)?;
            let stored = store
                .agreement(id)?
                .or_code(Code::NotFound, || format!("no proposal {id} on this node"))?;
            serde_json::from_str(&stored.doc_json)?
        }
        (None, None) => fail!(Code::BadRequest, "name the agreement id or --file"),
    };
    let mut agreement = agreement;
    agreement.terms.validate()?;
    agreement.verify_signatures()?;
    check_own_party(&agreement, home)?;
    agreement.sign(&home.config.name, &home.key)?;
    if !agreement.is_fully_signed() {
        fail!(
            Code::Invalid,
            "the proposer's signature is missing: ask them to run `tandem agreement propose`"
        );
    }
    agreement.check_active(crate::wire::now_ms() / 1000)?;
    let id = agreement.id().to_string();
    store.put_agreement(
        &id,
        &serde_json::to_string(&agreement)?,
        "active",
        "cli:admin",
    )?;
    let delivery = deliver(home, &agreement, crate::wire::COUNTERSIGN_PATH).await?;
    Ok((agreement, delivery))
}

/// Imports a signed agreement file (a proposal, or the countersigned agreement when the peer
/// could not deliver it).
pub fn import(home: &Home, path: &std::path::Path) -> Result<Agreement> {
    let agreement: Agreement = serde_json::from_str(
        &std::fs::read_to_string(path)
            .or_code(Code::NotFound, || format!("reading {}", path.display()))?,
    )
    .or_code(Code::BadData, || "agreement file does not parse".into())?;
    let mut store = home.store()?;
    if agreement.is_fully_signed() {
        check_own_party(&agreement, home)?;
        receive_countersigned(&mut store, &home.config.name, &agreement)?;
    } else {
        receive_proposal(&mut store, &home.config.name, &home.key, &agreement)?;
    }
    Ok(agreement)
}

/// Stores a proposal delivered by the peer, after checking its signature and that this node
/// is a party. Errors: 422 `bad_data` (terms invalid), 401 `bad_signature`, 403 `refused`.
pub fn receive_proposal(
    store: &mut Store,
    me: &str,
    key: &SigningKey,
    agreement: &Agreement,
) -> crate::error::Result<()> {
    agreement.terms.validate()?;
    agreement.verify_signatures()?;
    let mine = agreement
        .terms
        .party(me)
        .ok_or_else(|| NodeError::refused(format!("this node ({me}) is not a party")))?;
    if mine.signing_key != hex::encode(key.verifying_key().to_bytes()) {
        return Err(NodeError::refused(format!(
            "the proposal names another signing key for {me}"
        )));
    }
    let peer = agreement
        .terms
        .peer_of(me)
        .ok_or_else(|| NodeError::refused("no peer in the agreement"))?;
    if !agreement.signatures.contains_key(&peer.name) {
        return Err(NodeError::refused(format!(
            "the proposal is not signed by {}",
            peer.name
        )));
    }
    let id = agreement.id().to_string();
    if store
        .agreement(&id)?
        .is_some_and(|existing| existing.status == "active")
    {
        return Ok(());
    }
    store.put_agreement(
        &id,
        &serde_json::to_string(agreement)?,
        "proposed",
        &format!("peer:{}", peer.name),
    )?;
    Ok(())
}

/// Stores the fully signed agreement delivered back by the peer. Errors as
/// [`receive_proposal`].
pub fn receive_countersigned(
    store: &mut Store,
    me: &str,
    agreement: &Agreement,
) -> crate::error::Result<()> {
    agreement.terms.validate()?;
    agreement.verify_signatures()?;
    if !agreement.is_fully_signed() {
        return Err(NodeError::refused(
            "the agreement is not signed by both parties",
        ));
    }
    let peer = agreement
        .terms
        .peer_of(me)
        .ok_or_else(|| NodeError::refused(format!("this node ({me}) is not a party")))?;
    let id = agreement.id().to_string();
    store.put_agreement(
        &id,
        &serde_json::to_string(agreement)?,
        "active",
        &format!("peer:{}", peer.name),
    )?;
    Ok(())
}

/// Sends a signed document to the peer's node; on failure writes it to `<dir>/outbox/`.
async fn deliver(home: &Home, agreement: &Agreement, path: &str) -> Result<Delivery> {
    let peer = agreement
        .terms
        .peer_of(&home.config.name)
        .or_code(Code::Invalid, || "no peer in the agreement".into())?;
    let target = crate::client::Peer {
        url: peer.url.clone(),
        cert_sha256: crate::wire::parse_fingerprint(&peer.tls_cert_sha256)?,
    };
    let body = serde_json::to_vec(agreement)?;
    let outcome = target
        .post_with(
            path,
            &[],
            body.clone(),
            crate::home::Limits::secs(home.config.limits.connect_timeout_s),
            crate::home::Limits::secs(home.config.limits.peer_call_timeout_s),
            1 << 20,
        )
        .await;
    let reason = match outcome {
        Ok(resp) if resp.status.is_success() => return Ok(Delivery::Delivered),
        Ok(resp) => format!(
            "{} answered {}: {}",
            peer.name,
            resp.status,
            String::from_utf8_lossy(&resp.body)
        ),
        Err(e) => e.to_string(),
    };
    let dir = home.dir.join("outbox");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(format!("{}.agreement.json", agreement.id()));
    std::fs::write(&file, body)?;
    Ok(Delivery::Written(file, reason))
}

#[cfg(test)]
mod tests {
    use super::{resolve_filter, resolve_id};

    /// A store holding agreements under these ids.
    fn store_with(ids: &[&str]) -> (tempfile::TempDir, tandem_store::Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = tandem_store::Store::open(dir.path()).expect("store");
        for id in ids {
            store
                .put_agreement(id, "{}", "active", "test")
                .expect("stored");
        }
        (dir, store)
    }

    #[test]
    fn an_agreement_is_named_by_its_id_or_a_unique_prefix_of_eight_hex_or_more() {
        let a = "4f2a9c1b7d3e".to_string() + &"0".repeat(52);
        let b = "4f2a9c1b7d3f".to_string() + &"1".repeat(52);
        let c = "90ab12cd".to_string() + &"2".repeat(56);
        let (_dir, store) = store_with(&[&a, &b, &c]);
        assert_eq!(resolve_id(&store, &a).expect("whole id"), a);
        assert_eq!(resolve_id(&store, "4f2a9c1b7d3f").expect("short id"), b);
        assert_eq!(resolve_id(&store, "90AB12CD").expect("any case"), c);
        assert_eq!(
            resolve_filter(&store, Some("90ab12cd2")).expect("filter"),
            Some(c.clone())
        );
        assert_eq!(resolve_filter(&store, None).expect("no filter"), None);

        let e = resolve_id(&store, "4f2a9c1b7d3").expect_err("two start so");
        assert_eq!(e.code_str(), "bad_request");
        assert!(
            e.message().contains("ambiguous")
                && e.message().contains(&a)
                && e.message().contains(&b),
            "{}",
            e.message()
        );
        assert_eq!(
            e.details().expect("details")["candidates"],
            serde_json::json!([a, b])
        );
        for (given, why) in [
            (
                "deadbeef",
                "unknown agreement deadbeef (`tandem agreement list`",
            ),
            ("4f2a9c1", "at least 8 hex characters"),
            ("4f2a9c1x7d3e", "at least 8 hex characters"),
        ] {
            let e = resolve_id(&store, given).expect_err(given);
            assert_eq!(e.code_str(), "not_found", "{given}");
            assert!(e.message().contains(why), "{given}: {}", e.message());
            assert!(
                e.message().contains("tandem agreement list"),
                "{}",
                e.message()
            );
        }
    }
}
