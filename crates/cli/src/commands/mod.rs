//! One module per command, as `sluice <command>` names them. Each returns the process exit
//! code; errors are printed once, here, with their context chain.

mod approvals;
mod demo;
mod keys;
mod kubeconfig;
mod policy_check;
mod policy_explain;
mod serve;
mod sessions_export;
mod sessions_list;
mod sessions_public_key;
mod sessions_replay;
mod sessions_show;
mod sessions_verify;
mod token;

use std::process::ExitCode;

use crate::cli::{
    ApprovalsCommand, Cli, Command, KeysCommand, PolicyCommand, SessionsCommand, TokenCommand,
};

/// Exit code for errors that are not decisions: bad config, unreachable store, bad usage.
pub const EXIT_ERROR: u8 = 2;

pub fn run(cli: Cli) -> ExitCode {
    let result = match &cli.command {
        Command::Serve => serve::run(&cli.config),
        Command::Demo => demo::run(),
        Command::Token(TokenCommand::Issue(args)) => token::issue(&cli.config, args),
        Command::Keys(KeysCommand::Create(args)) => keys::create(&cli.config, args),
        Command::Keys(KeysCommand::List(args)) => keys::list(&cli.config, args),
        Command::Keys(KeysCommand::Revoke { id }) => keys::revoke(&cli.config, id),
        Command::Policy(PolicyCommand::Check) => policy_check::run(&cli.config),
        Command::Policy(PolicyCommand::Explain(args)) => policy_explain::run(&cli.config, args),
        Command::Sessions(SessionsCommand::List(args)) => sessions_list::run(&cli.config, args),
        Command::Sessions(SessionsCommand::Verify(args)) => sessions_verify::run(&cli.config, args),
        Command::Sessions(SessionsCommand::Export(args)) => sessions_export::run(&cli.config, args),
        Command::Sessions(SessionsCommand::Show(args)) => sessions_show::run(&cli.config, args),
        Command::Sessions(SessionsCommand::Replay(args)) => sessions_replay::run(&cli.config, args),
        Command::Sessions(SessionsCommand::PublicKey) => sessions_public_key::run(&cli.config),
        Command::Approvals(ApprovalsCommand::List(args)) => approvals::list(args),
        Command::Approvals(ApprovalsCommand::Show(args)) => approvals::show(args),
        Command::Approvals(ApprovalsCommand::Approve(args)) => {
            approvals::decide(args, sluice_core::Verdict::Approve)
        }
        Command::Approvals(ApprovalsCommand::Deny(args)) => {
            approvals::decide(args, sluice_core::Verdict::Deny)
        }
        Command::Kubeconfig(args) => kubeconfig::run(&cli.config, args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("sluice: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
