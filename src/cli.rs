//! Command-line interface (clap).

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Tandem: learn about the audience you share with a partner without either side handing over
/// a customer list. Private set intersection over Ristretto255, differential privacy end to end.
#[derive(Parser, Debug)]
#[command(name = "tandem", version, propagate_version = true)]
pub struct Cli {
    /// Log format: human on a terminal, or JSON lines.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "TANDEM_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// The node directory every command works on.
#[derive(Args, Debug, Clone)]
pub struct DirArg {
    /// The node's directory (created by `tandem init`).
    #[arg(long, env = "TANDEM_DIR")]
    pub dir: PathBuf,
}

/// Top-level commands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a node: identity key, TLS certificate, config.toml and the embedded store.
    Init(InitArgs),
    /// Print this node's `[[parties]]` block (keys and fingerprints) for an agreement.
    Card(DirArg),
    /// What this node holds: audiences (counts only), agreements, runs.
    Status(DirArg),
    /// Import an audience from CSV: identifiers are normalised and hashed, never stored raw.
    Import(ImportArgs),
    /// Propose, accept and inspect agreements.
    #[command(subcommand)]
    Agreement(AgreementCmd),
    /// Run the node's HTTPS server for its peer.
    Serve(DirArg),
    /// Ask questions of the shared audience: `tandem query <analysis>` (analyses: see the
    /// possible values below).
    Query(QueryArgs),
    /// Re-read stored query results at no cost (no budget, no peer contact).
    #[command(subcommand)]
    Results(ResultsCmd),
    /// Propensity models of the peer's label from this node's features, fitted from noised
    /// marginals (`protocols/model-v1.md`): fit (charged per marginal), then show, score and
    /// export for free.
    #[command(subcommand)]
    Model(ModelCmd),
    /// Privacy budget spent and left, per agreement.
    Budget(ListArgs),
    /// History of runs on this node.
    Runs(ListArgs),
    /// Verify or export the tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCmd),
    /// Create, list and revoke API tokens (roles: admin, analyst, auditor).
    #[command(subcommand)]
    Token(TokenCmd),
    /// Delete results and audiences past the agreements' retention (the audit log is kept).
    Purge(PurgeArgs),
    /// Compliance reports.
    #[command(subcommand)]
    Report(ReportCmd),
    /// Opt-out and deletion: suppress people (by identifier) from every audience and every run.
    Suppress(SuppressArgs),
    /// Two nodes on loopback with synthetic audiences: an overlap report next to the truth.
    Demo(DemoArgs),
    /// Benchmarks that print one JSON line.
    #[command(subcommand)]
    Bench(BenchCmd),
}

/// `tandem init`.
#[derive(Args, Debug)]
pub struct InitArgs {
    /// Directory to create the node in.
    #[arg(long)]
    pub dir: PathBuf,
    /// The node's party name (a-z, 0-9, '-', '_').
    #[arg(long)]
    pub name: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7401")]
    pub listen: String,
    /// URL the peer uses to reach this node (default: https://<listen>).
    #[arg(long)]
    pub url: Option<String>,
    /// Data-residency region of this node's data.
    #[arg(long, default_value = "CN")]
    pub region: String,
    /// Region (ISO 3166-1 alpha-2, e.g. CN, US, GB, IT) whose dialling rules read phone numbers
    /// written without `+`: `0086 138…` and `138…` are then Chinese numbers.
    #[arg(long)]
    pub default_region: Option<String>,
    /// Older form of --default-region: a country calling code (e.g. 86), read as its main
    /// region (86 → CN, 1 → US, 44 → GB).
    #[arg(long, conflicts_with = "default_region")]
    pub default_country_code: Option<u16>,
}

/// A CSV file of people and where their identifier is.
#[derive(Args, Debug)]
pub struct IdFile {
    /// CSV file with a header row.
    #[arg(long)]
    pub file: PathBuf,
    /// Column holding the identifier.
    #[arg(long)]
    pub id_column: String,
    /// Identifier kind, the join key: email, phone or device_id.
    #[arg(long)]
    pub id_kind: String,
    /// How the column writes it: raw, or sha256 (SHA-256 of the normalised identifier, hex or
    /// Base64, as partners following UID2 send it). A hashed and a raw column of one kind join.
    #[arg(long, default_value = "raw")]
    pub id_encoding: String,
}

/// `tandem import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub source: IdFile,
    /// Attribute columns to keep for grouping (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub attributes: Vec<String>,
    /// Value columns to keep for sums (comma-separated), as `COLUMN` (its bound `U` from this
    /// node's agreements) or `COLUMN=U`: integers in the column's unit; negatives are stored as
    /// 0, values above `U` fail the import (psi-sum-v1 §4.1).
    #[arg(long = "value", value_delimiter = ',')]
    pub values: Vec<String>,
    /// Audience name (an import replaces that audience).
    #[arg(long, default_value = "default")]
    pub audience: String,
    /// Text encoding of the file (WHATWG label: utf-8, gb18030, utf-16le, big5, shift_jis,
    /// windows-1252, …). A byte-order mark at the start of the file takes precedence.
    #[arg(long, default_value = "utf-8")]
    pub encoding: String,
    /// Field delimiter: one character such as ';' or '|', or 'tab'.
    #[arg(long, default_value = ",")]
    pub delimiter: String,
    /// Derive a banded column while importing, computed locally from a numeric column:
    /// `NAME=SOURCE:EDGES`. `--band age_band=age:18,25,35,45,55,65` stores `age_band` with the
    /// values `<18`, `18-24`, `25-34`, `35-44`, `45-54`, `55-64`, `65+` (lower edge included;
    /// an empty cell stays empty, so `other`). The source column itself is not stored unless
    /// also given in --attributes. Repeatable.
    #[arg(long, value_name = "NAME=SOURCE:EDGES")]
    pub band: Vec<String>,
    /// Derive RFM groups while importing: `NAME=RECENCY,FREQUENCY,MONETARY` (days since the last
    /// purchase, number of purchases, total spend). Each is scored 1–5 by quintile within the
    /// file and the scores map to `champions`, `loyal`, `potential_loyalists`, `new_customers`,
    /// `need_attention`, `about_to_sleep`, `cannot_lose_them`, `at_risk`, `hibernating`,
    /// `lost`. A value that is not a number stops the import at its line and column; nothing is
    /// imported. The derived columns can then be public value sets of an agreement.
    #[arg(long, value_name = "NAME=RECENCY,FREQUENCY,MONETARY")]
    pub rfm: Vec<String>,
}

/// `tandem agreement …`.
#[derive(Subcommand, Debug)]
pub enum AgreementCmd {
    /// Sign an agreement (TOML) and deliver it to the peer named in it.
    Propose {
        #[command(flatten)]
        dir: DirArg,
        /// The agreement terms (TOML; see examples/agreement.toml).
        #[arg(long)]
        file: PathBuf,
        /// Override the peer's URL from the file.
        #[arg(long)]
        peer_url: Option<String>,
    },
    /// Countersign a proposal received from the peer (by id) or from a file.
    Accept {
        #[command(flatten)]
        dir: DirArg,
        /// Agreement id, or a unique prefix of at least 8 hex characters (the short id).
        id: Option<String>,
        /// A proposal file handed over by the peer.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Import a signed agreement file (when the peer could not deliver it).
    Import {
        #[command(flatten)]
        dir: DirArg,
        /// The file.
        #[arg(long)]
        file: PathBuf,
    },
    /// List agreements and their status.
    List(ListArgs),
    /// Show one agreement.
    Show {
        #[command(flatten)]
        dir: DirArg,
        /// Agreement id, or a unique prefix of at least 8 hex characters (the short id).
        id: String,
    },
}

/// Listing options.
#[derive(Args, Debug)]
pub struct ListArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Only this agreement (id, or a unique prefix of at least 8 hex characters); an unknown
    /// one is an error.
    #[arg(long)]
    pub agreement: Option<String>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `tandem results …`: every report a query produced (fresh or cached), kept with its
/// parameters, ε spent and intervals; purged with the node's retention.
#[derive(Subcommand, Debug)]
pub enum ResultsCmd {
    /// Stored results, newest first.
    List(ListArgs),
    /// One stored result: its parameters, cost and report.
    Show {
        #[command(flatten)]
        dir: DirArg,
        /// Result id (from `tandem results list`).
        id: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a stored result as CSV (its cells) or JSON (the report whole). Both are
    /// querier-internal (marked so): the responder knows the noise it injected and could remove
    /// it. `--for-partner` writes a copy safe to share: fresh noise of this node's own on every
    /// cell, charged to this node's budget first.
    Export {
        #[command(flatten)]
        dir: DirArg,
        /// Result id (from `tandem results list`).
        id: String,
        /// Output format: `csv` (the cells, one row each) or `json` (the report whole).
        #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
        format: ExportFormat,
        /// File to write (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Export for the partner: add this node's own noise to every cell (charged to this
        /// node's budget under the result's agreement) so the copy is safe to share.
        #[arg(long)]
        for_partner: bool,
        /// ε of the added noise with `--for-partner` (default: the report's ε).
        #[arg(long, requires = "for_partner")]
        epsilon: Option<f64>,
    },
}

/// Formats of `tandem results export`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExportFormat {
    /// One row per cell, with a header.
    Csv,
    /// The report's JSON.
    Json,
}

/// The analyses of the registry, for `tandem query <analysis>`.
fn analyses() -> PossibleValuesParser {
    PossibleValuesParser::new(
        tandem_node::analysis::REGISTRY
            .iter()
            .map(|a| PossibleValue::new(a.name()).help(a.about())),
    )
}

/// `tandem query <analysis>`.
#[derive(Args, Debug)]
pub struct QueryArgs {
    /// The analysis.
    #[arg(value_parser = analyses())]
    pub analysis: String,
    #[command(flatten)]
    pub dir: DirArg,
    /// Agreement id, or a unique prefix of at least 8 hex characters (the short id).
    #[arg(long)]
    pub agreement: String,
    /// This node's columns to group by, comma-separated (`age_band,region`): the buckets are
    /// the cross product of their labels (`25-34|north`), within psi-ca-v1's cell limit.
    #[arg(long, value_delimiter = ',')]
    pub group_by: Vec<String>,
    /// The peer's columns to group by, comma-separated, as --group-by.
    #[arg(long, value_delimiter = ',')]
    pub peer_group_by: Vec<String>,
    /// The peer's value column to sum (value analyses such as `revenue`): a column the
    /// agreement lists under the peer's `[parties.values]`.
    #[arg(long)]
    pub peer_value: Option<String>,
    /// Privacy loss ε of the query (the peer spends ε, this node ε/4).
    #[arg(long, default_value_t = 1.0)]
    pub epsilon: f64,
    /// Join key kind (default: the agreement's first).
    #[arg(long)]
    pub join_key: Option<String>,
    /// Spend budget on a fresh answer even if this exact query was answered before.
    #[arg(long)]
    pub fresh: bool,
    /// Only show what the query would cost and how precise it would be (free).
    #[arg(long)]
    pub preview: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Print the cells as CSV.
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
    /// An analysis option `key=value` (repeatable), e.g. `peer_segment=gold` for affinity,
    /// `stages=visit,cart,checkout` for funnel, `inference=population`.
    #[arg(long = "option", value_name = "KEY=VALUE", value_parser = parse_option)]
    pub options: Vec<(String, String)>,
    /// Lift: this node's column holding the arm (put before any `--group-by` columns, which then
    /// give one lift per segment).
    #[arg(long)]
    pub arm_column: Option<String>,
    /// Lift: the test arm's value (option `test_arm`, default `test`).
    #[arg(long)]
    pub test_arm: Option<String>,
    /// Lift: the control arm's value (option `control_arm`, default `control`).
    #[arg(long)]
    pub control_arm: Option<String>,
    /// Lift: the peer's column holding conversion (the same as `--peer-group-by`).
    #[arg(long, conflicts_with = "peer_group_by")]
    pub peer_conversion_column: Option<String>,
    /// Lift: the peer's converting value (option `converted`; default the first of `1`, `yes`,
    /// `true`, `converted`, `purchased` in the agreement's list).
    #[arg(long)]
    pub peer_converted_value: Option<String>,
}

/// `KEY=VALUE` of `--option`.
fn parse_option(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.trim().to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

/// `tandem model …`.
#[derive(Subcommand, Debug)]
pub enum ModelCmd {
    /// Plan the marginals (each feature × the peer's label, chosen pairs × the label, the
    /// features' joint; one run each), run them as one budgeted batch and fit naive Bayes and
    /// logistic regression; `--preview` shows the ε split and cost for free.
    Fit(ModelFitArgs),
    /// Coefficients with intervals, per-segment propensity and lift (free).
    Show(ModelIdArgs),
    /// Every feature combination → score, highest first, to apply to your own customers (free).
    ScoreTable(ModelScoreArgs),
    /// The whole stored model as JSON (free).
    Export(ModelIdArgs),
    /// The released marginals: raw signed estimates beside the consistent view (free).
    Crosstab(ModelCrosstabArgs),
    /// Stored models.
    List(ListArgs),
}

/// `tandem model fit`.
#[derive(Args, Debug)]
pub struct ModelFitArgs {
    #[command(flatten)]
    pub dir: DirArg,
    /// Agreement id, or a unique prefix of at least 8 hex characters (the short id).
    #[arg(long)]
    pub agreement: String,
    /// This node's feature columns, comma-separated (e.g. `age_band,region`).
    #[arg(long, value_delimiter = ',', required = true)]
    pub features: Vec<String>,
    /// The peer's label as `column=value` (e.g. `tier=gold`).
    #[arg(long)]
    pub peer_label: String,
    /// Feature pairs to measure by the label too, comma-separated `a:b` (e.g.
    /// `age_band:region`), one run each.
    #[arg(long, value_delimiter = ',')]
    pub pairs: Vec<String>,
    /// Do not measure the features' joint over the overlap (measured by default with two or
    /// more features: it brings the logistic fit close to the fit on joined rows).
    #[arg(long)]
    pub no_feature_joint: bool,
    /// Total ε of the batch, split equally over the marginals (the peer spends ε, this node
    /// ε/4).
    #[arg(long, default_value_t = 1.0)]
    pub epsilon: f64,
    /// Join key kind (default: the agreement's first).
    #[arg(long)]
    pub join_key: Option<String>,
    /// Spend budget on fresh runs even where a marginal was answered before.
    #[arg(long)]
    pub fresh: bool,
    /// Only show the marginals, the ε split and what the batch would cost (free).
    #[arg(long)]
    pub preview: bool,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// A stored model.
#[derive(Args, Debug)]
pub struct ModelIdArgs {
    /// Model id (as printed by `tandem model fit` or `list`).
    pub id: String,
    #[command(flatten)]
    pub dir: DirArg,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `tandem model score-table`.
#[derive(Args, Debug)]
pub struct ModelScoreArgs {
    /// Model id.
    pub id: String,
    #[command(flatten)]
    pub dir: DirArg,
    /// Use naive Bayes instead of logistic regression.
    #[arg(long)]
    pub naive_bayes: bool,
    /// Print CSV.
    #[arg(long)]
    pub csv: bool,
}

/// `tandem model crosstab`.
#[derive(Args, Debug)]
pub struct ModelCrosstabArgs {
    /// Model id.
    pub id: String,
    #[command(flatten)]
    pub dir: DirArg,
    /// Print JSON instead of CSV.
    #[arg(long)]
    pub json: bool,
}

/// `tandem audit …`.
#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Check the whole hash chain and the signed checkpoints; names the first entry that fails.
    Verify {
        /// The node whose log to verify (its key checks the checkpoints).
        #[arg(long, env = "TANDEM_DIR")]
        dir: Option<PathBuf>,
        /// Verify an exported JSON-lines file offline instead.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Hex ed25519 key of the node that signed the checkpoints (with --file).
        #[arg(long)]
        node_key: Option<String>,
    },
    /// Write the audit log (JSON lines or CSV) for an auditor.
    Export {
        #[command(flatten)]
        dir: DirArg,
        /// From (Unix milliseconds or RFC 3339 date `YYYY-MM-DD`).
        #[arg(long)]
        from: Option<String>,
        /// To (Unix milliseconds or `YYYY-MM-DD`, exclusive).
        #[arg(long)]
        to: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = ExportFormatArg::Jsonl)]
        format: ExportFormatArg,
        /// Output file (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Audit export formats.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExportFormatArg {
    /// One JSON object per line, verifiable offline.
    Jsonl,
    /// Flattened, for spreadsheets.
    Csv,
}

/// `tandem token …`.
#[derive(Subcommand, Debug)]
pub enum TokenCmd {
    /// Create a token; its secret is printed once.
    Create {
        #[command(flatten)]
        dir: DirArg,
        /// Who holds it.
        #[arg(long)]
        name: String,
        /// admin, analyst or auditor.
        #[arg(long)]
        role: String,
    },
    /// Revoke a token.
    Revoke {
        #[command(flatten)]
        dir: DirArg,
        /// Its name.
        #[arg(long)]
        name: String,
    },
}

/// `tandem purge`.
#[derive(Args, Debug)]
pub struct PurgeArgs {
    #[command(flatten)]
    pub dir: DirArg,
}

/// `tandem report …`.
#[derive(Subcommand, Debug)]
pub enum ReportCmd {
    /// GDPR Art. 30 / PIPL record of processing, per agreement.
    Processing {
        #[command(flatten)]
        dir: DirArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `tandem suppress`: the file lists people who withdrew consent or asked for deletion.
#[derive(Args, Debug)]
pub struct SuppressArgs {
    #[command(flatten)]
    pub dir: DirArg,
    #[command(flatten)]
    pub source: IdFile,
}

/// `tandem demo`.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Customers of the querier (a cosmetics maker).
    #[arg(long, default_value_t = 200_000)]
    pub querier_size: usize,
    /// Customers of the responder (an e-commerce platform).
    #[arg(long, default_value_t = 500_000)]
    pub responder_size: usize,
    /// Customers the two share.
    #[arg(long, default_value_t = 60_000)]
    pub overlap: usize,
    /// ε of the query.
    #[arg(long, default_value_t = 1.0)]
    pub epsilon: f64,
    /// Keep the two node directories here instead of a temporary directory.
    #[arg(long)]
    pub keep: Option<PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `tandem bench …`.
#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// Both PSI roles in one process on N × N items; prints one JSON line.
    ///
    /// The two sides overlap by N/4 (`overlap_true`; `overlap_estimate` is the noised answer).
    /// `wall_s`: the run from digests; `items_per_s` = 2N / wall_s (both sides' items).
    /// `t_hash_us`, `t_mul_us`, `t_compress_us`, `t_decompress_us`: one operation, single
    /// thread, timed warm over `floor_sample` items apart from the run. `floor_s` =
    /// 2N(t_hash + 2·t_mul)/threads and `floor_ratio` = wall_s / floor_s (spec psi-ca-v1 §7);
    /// `floor_with_decompress_s` adds the decompression every received point needs. The
    /// `*_cached` fields are the same run from precomputed H(x) (a node's hash cache), `fill_s`
    /// the cost of precomputing them. `backend` is the curve25519-dalek backend that ran.
    Psi {
        /// Items per side.
        #[arg(long, default_value_t = 100_000)]
        n: usize,
    },
}
