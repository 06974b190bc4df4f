//! The `dial-a-service` binary: parse the command line and hand over.

fn main() -> std::process::ExitCode {
    dial_a_service::cli::main()
}
