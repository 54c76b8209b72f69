//! `tandem`: the command-line interface of a node (`tandem-node`). Nothing but argument
//! parsing and printing lives here: `cli` declares the commands, `cmd` runs them.

/// `println!` to stdout through [`print_out`]: a closed stdout ends the command quietly.
macro_rules! outln {
    ($($t:tt)*) => { $crate::print_out(format_args!("{}\n", format_args!($($t)*))) };
}

/// `print!` to stdout through [`print_out`].
macro_rules! out {
    ($($t:tt)*) => { $crate::print_out(format_args!($($t)*)) };
}

mod cli;
mod cmd;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
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

/// Writes to stdout. Rust ignores SIGPIPE, so a reader that closes the pipe early
/// (`tandem runs | head -1`) shows up here as `ErrorKind::BrokenPipe`: the command has nothing
/// left to say, so it exits quietly with status 0. The signal is left ignored so that a peer
/// closing a TCP connection is an error the node handles, never a kill.
pub(crate) fn print_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => {
            eprintln!("error: cannot write to stdout: {e}");
            std::process::exit(1);
        }
    }
}
