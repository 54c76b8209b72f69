//! Runs `tandem_bench::run(N)` and prints the report: `cargo run --release -p tandem-bench
//! --example psi_bench -- 100000`.

fn main() -> Result<(), tandem_psi::PsiError> {
    let n = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(100_000);
    println!("{:#?}", tandem_bench::run(n)?);
    Ok(())
}
