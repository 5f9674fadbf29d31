//! argv -> [`Command`]. Parsing only: nothing here touches processes or files.
//!
//! `ginit [OPTIONS] [--] PROGRAM [ARGS...]`. The first argument that is not an option ends
//! option parsing; everything from it on is the program and its arguments, passed untouched
//! (so `ginit sleep -x` runs `sleep -x`). After `--` everything is the program, always.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::units::parse_duration;

pub const USAGE: &str = "\
usage: ginit [OPTIONS] [--] PROGRAM [ARGS...]   run PROGRAM under ginit as init
       ginit [OPTIONS] -c CONFIG [-- PROGRAM...]  supervise the programs of CONFIG
       ginit check [-c CONFIG]                    validate a config, print the plan

Runs PROGRAM as the child of an init that reaps zombies, forwards signals and, when the
program exits, gives leftover processes SIGTERM and a grace period before SIGKILL.
ginit exits with the program's status (128+N when it was killed by signal N).
With a config (-c, $GINIT_CONFIG or /etc/ginit.yaml), ginit supervises its programs; a
PROGRAM given too runs beside them as `main`, and its exit ends the run.

options:
  -c, --config PATH     the YAML config
  -g, --pgroup          forward signals to the program's whole process group
      --grace DURATION  time leftovers get between SIGTERM and SIGKILL (default 2s)
  -v, --verbose         more log output (repeat for trace); or GINIT_LOG=debug
  -q, --quiet           only errors
  -V, --version         print the version
  -h, --help            print this help
";

/// What ginit was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(RunOptions),
    /// `ginit check [-c PATH]`: validate the config and print the plan.
    Check {
        config: Option<PathBuf>,
    },
    Version,
    Help,
}

#[derive(Debug, PartialEq, Eq)]
pub struct RunOptions {
    /// PROGRAM and its arguments (empty when only a config is given).
    pub program: Vec<OsString>,
    /// `-c PATH`.
    pub config: Option<PathBuf>,
    pub pgroup: bool,
    pub grace: Duration,
    /// -v count minus -q count.
    pub verbosity: i32,
}

/// The names reserved for talking to a running ginit (SPEC section 6). Until the control
/// socket exists they are refused with a clear message rather than run as programs.
const CONTROL_COMMANDS: [&str; 9] = [
    "status",
    "start",
    "stop",
    "restart",
    "reload",
    "signal",
    "ready",
    "reload-config",
    "shutdown",
];

/// Parses ginit's arguments (without argv[0]). Errors are one-line reasons for exit status 2.
pub fn parse<I>(args: I) -> Result<Command, String>
where
    I: IntoIterator,
    I::Item: Into<OsString>,
{
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_args(args);
    let mut opts = RunOptions {
        program: Vec::new(),
        config: None,
        pgroup: false,
        grace: Duration::from_secs(2),
        verbosity: 0,
    };
    let err = |e: lexopt::Error| e.to_string();
    loop {
        // `--` ends the options; everything after it is the program. (Between arguments
        // only: inside a cluster such as `-vv` there are no raw arguments to look at.)
        if let Some(mut raw) = parser.try_raw_args()
            && raw.peek() == Some("--".as_ref())
        {
            raw.next();
            opts.program.extend(raw);
            break;
        }
        let Some(arg) = parser.next().map_err(err)? else {
            break;
        };
        match arg {
            Short('g') | Long("pgroup") => opts.pgroup = true,
            Short('c') | Long("config") => {
                opts.config = Some(PathBuf::from(parser.value().map_err(err)?));
            }
            Long("grace") => {
                let value = parser.value().map_err(err)?;
                let text = value.to_string_lossy();
                opts.grace = parse_duration(&text).map_err(|e| format!("--grace: {e}"))?;
            }
            Short('v') | Long("verbose") => opts.verbosity += 1,
            Short('q') | Long("quiet") => opts.verbosity -= 1,
            Short('V') | Long("version") => return Ok(Command::Version),
            Short('h') | Long("help") => return Ok(Command::Help),
            Value(first) if first == "check" => return parse_check(parser),
            Value(first) => {
                if let Some(name) = first.to_str().filter(|n| CONTROL_COMMANDS.contains(n)) {
                    return Err(format!(
                        "`{name}` is a control command, which this version of ginit does not \
                         have yet; to run a program of that name, write `ginit -- {name}`"
                    ));
                }
                opts.program.push(first);
                opts.program.extend(parser.raw_args().map_err(err)?);
                break;
            }
            other => return Err(err(other.unexpected())),
        }
    }
    Ok(Command::Run(opts))
}

/// `check [-c PATH]`.
fn parse_check(mut parser: lexopt::Parser) -> Result<Command, String> {
    use lexopt::prelude::*;
    let mut config = None;
    while let Some(arg) = parser.next().map_err(|e| e.to_string())? {
        match arg {
            Short('c') | Long("config") => {
                config = Some(PathBuf::from(parser.value().map_err(|e| e.to_string())?));
            }
            other => return Err(format!("check: {}", other.unexpected())),
        }
    }
    Ok(Command::Check { config })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> RunOptions {
        match parse(args.iter().copied()) {
            Ok(Command::Run(o)) => o,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn prog(o: &RunOptions) -> Vec<&str> {
        o.program.iter().map(|a| a.to_str().unwrap()).collect()
    }

    #[test]
    fn program_after_dashes() {
        let o = run(&["--", "sleep", "10"]);
        assert_eq!(prog(&o), ["sleep", "10"]);
        assert!(!o.pgroup);
        assert_eq!(o.grace, Duration::from_secs(2));
    }

    #[test]
    fn options_then_program_with_its_own_options() {
        let o = run(&["-g", "-vv", "--grace", "500ms", "ls", "-l", "--", "-g"]);
        assert!(o.pgroup);
        assert_eq!(o.verbosity, 2);
        assert_eq!(o.grace, Duration::from_millis(500));
        assert_eq!(prog(&o), ["ls", "-l", "--", "-g"]);
        let o = run(&["--grace=1s", "-q", "--", "--help"]);
        assert_eq!(o.grace, Duration::from_secs(1));
        assert_eq!(o.verbosity, -1);
        assert_eq!(prog(&o), ["--help"]);
    }

    #[test]
    fn control_names_are_reserved_but_reachable_after_dashes() {
        assert!(parse(["status"]).unwrap_err().contains("control command"));
        assert_eq!(prog(&run(&["--", "status"])), ["status"]);
    }

    #[test]
    fn config_with_or_without_a_program() {
        let o = run(&["-c", "/etc/x.yaml"]);
        assert_eq!(o.config, Some(PathBuf::from("/etc/x.yaml")));
        assert!(o.program.is_empty());
        let o = run(&["--config", "x.yaml", "--", "app", "-c"]);
        assert_eq!(prog(&o), ["app", "-c"]);
        assert!(
            run(&[]).program.is_empty(),
            "main decides whether there is anything to run"
        );
        assert!(run(&["--"]).program.is_empty());
    }

    #[test]
    fn errors() {
        assert!(parse(["--bogus"]).is_err());
        assert!(parse(["-c"]).is_err());
        assert!(
            parse(["--grace", "soon", "true"])
                .unwrap_err()
                .contains("--grace")
        );
        assert!(parse(["--grace"]).is_err());
    }

    #[test]
    fn check() {
        assert_eq!(parse(["check"]), Ok(Command::Check { config: None }));
        assert_eq!(
            parse(["check", "-c", "/x.yaml"]),
            Ok(Command::Check {
                config: Some("/x.yaml".into())
            })
        );
        assert_eq!(
            parse(["check", "--config=/y"]),
            Ok(Command::Check {
                config: Some("/y".into())
            })
        );
        assert!(parse(["check", "extra"]).unwrap_err().starts_with("check:"));
    }

    #[test]
    fn version_and_help() {
        assert_eq!(parse(["-V"]), Ok(Command::Version));
        assert_eq!(parse(["--help", "x"]), Ok(Command::Help));
    }
}
