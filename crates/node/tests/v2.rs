//! A `psi-ca-v2` agreement on two real nodes: until the v2 run is wired over HTTPS, a query
//! under it is refused before anything is charged or sent — never run as psi-ca-v1.

use tandem_node::Code;
use tandem_node::analysis::overlap::Overlap;
use tandem_node::querier::prepare_query;
use tandem_testkit::NodePair;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_agreement_never_runs_as_v1() {
    let f = NodePair::with_protocol("psi-ca-v2").await;
    let err = prepare_query(
        &f.acme.store_path(),
        &f.acme.key,
        "acme",
        &Overlap,
        &f.query(),
        "test",
    )
    .err()
    .expect("a v1 run under a v2 agreement is refused");
    assert_eq!(err.code(), Code::InvalidQuery);
    assert!(err.message().contains("psi-ca-v2"), "{}", err.message());
    for home in [&f.acme, &f.shopx] {
        let runs = home.store().expect("store").runs(None).expect("runs");
        assert!(runs.is_empty(), "nothing charged: {runs:?}");
    }
}
