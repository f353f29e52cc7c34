//! `trading-backend`: see the crate README.

#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    trading_backend::cli::main()
}
