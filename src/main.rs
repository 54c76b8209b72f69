//! `tandem`: the command-line interface of a node (`tandem-node`). Nothing but argument
//! parsing and printing lives here: `cli` declares the commands, `cmd` runs them.

mod cli;
mod cmd;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    if !matches!(cli.command, cli::Command::Serve(_) | cli::Command::Demo(_)) {
        exit_quietly_on_closed_stdout();
    }
    init_tracing(cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cmd::run(cli.command)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: cli::LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("TANDEM_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    match format {
        cli::LogFormat::Human => builder.init(),
        cli::LogFormat::Json => builder.json().init(),
    }
}

/// Rust starts with SIGPIPE ignored, so `tandem runs | head` would panic once `head` closes the
/// pipe. Commands that only print take the default action (exit quietly); `serve` and `demo`,
/// which run servers, keep ignoring it so a closed socket is an error, never a kill.
#[cfg(unix)]
fn exit_quietly_on_closed_stdout() {
    // SAFETY: called once at start-up, before any other thread exists; restores the default
    // disposition of one signal.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(not(unix))]
fn exit_quietly_on_closed_stdout() {}
