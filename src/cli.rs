//! argv -> [`Command`]. Parsing only: nothing here touches processes or files.
//!
//! `ginit [OPTIONS] [--] PROGRAM [ARGS...]`. The first argument that is not an option ends
//! option parsing; everything from it on is the program and its arguments, passed untouched
//! (so `ginit sleep -x` runs `sleep -x`). After `--` everything is the program, always.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use crate::config::units::parse_duration;
use crate::control::protocol::{DEFAULT_LOG_LINES, Request};

pub const USAGE: &str = "\
usage: ginit [OPTIONS] [--] PROGRAM [ARGS...]   run PROGRAM under ginit as init
       ginit [OPTIONS] -c CONFIG [-- PROGRAM...]  supervise the programs of CONFIG
       ginit check [-c CONFIG]                    validate a config, print the plan
       ginit schema                               print the config's JSON Schema
       ginit COMMAND [--socket PATH]              talk to a running ginit:
         status [--json]                status of every program instance
         status --watch [INTERVAL]      redraw it every INTERVAL (default 2s) until Ctrl-C
         start|stop|restart|reload NAME...   (NAME may be `all`)
         signal SIGNAL NAME...          send a signal to programs
         ready                          exit 0 when every program is ready
         reload-config                  re-read the config (as SIGHUP)
         shutdown                       stop everything and exit (as SIGTERM)
         events [--json]                what happens, live: a snapshot, then each event
         logs [-n N] [-f] [--json] [NAME...]   the last N (100) lines of output kept in
                                        memory; -f: then new lines until Ctrl-C

Runs PROGRAM as the child of an init that reaps zombies, forwards signals and, when the
program exits, gives leftover processes SIGTERM and a grace period before SIGKILL.
ginit exits with the program's status (128+N when it was killed by signal N).
With a config (-c, $GINIT_CONFIG or /etc/ginit.yaml), ginit supervises its programs; a
PROGRAM given too runs beside them as `main`, and its exit ends the run.

options:
  -c, --config PATH     the YAML config
      --socket PATH     the control socket (default: $GINIT_SOCKET, else control.socket
                        of the config, else /run/ginit/control.sock)
      --daemon          detach from the terminal and keep supervising (outside containers)
      --pidfile PATH    with --daemon: write ginit's pid there
  -g, --pgroup          forward signals to the program's whole process group
      --grace DURATION  time leftovers get between SIGTERM and SIGKILL (default 2s)
  -v, --verbose         more log output (repeat for trace); or GINIT_LOG=debug
  -q, --quiet           only errors
  -V, --version         print the version
  -h, --help            print this help
";

/// What ginit was asked to do.
#[derive(Debug, PartialEq)]
pub enum Command {
    Run(RunOptions),
    /// A control command for a running ginit (SPEC section 6).
    Control {
        request: Request,
        /// `--socket PATH` (else $GINIT_SOCKET, else the default).
        socket: Option<PathBuf>,
        /// `status --json`: print the raw JSON status.
        json: bool,
        /// `status --watch [INTERVAL]`: redraw the table every INTERVAL until interrupted.
        watch: Option<Duration>,
    },
    /// `ginit check [-c PATH]`: validate the config and print the plan.
    Check {
        config: Option<PathBuf>,
    },
    /// `ginit schema`: print the JSON Schema of the config file.
    Schema,
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
    /// `--socket PATH`: the control socket (overrides the config's).
    pub socket: Option<PathBuf>,
    /// `--daemon`: detach (outside containers).
    pub daemon: bool,
    /// `--pidfile PATH` with --daemon.
    pub pidfile: Option<PathBuf>,
}

/// The names reserved for talking to a running ginit (SPEC section 6).
const CONTROL_COMMANDS: [&str; 11] = [
    "status",
    "start",
    "stop",
    "restart",
    "reload",
    "signal",
    "ready",
    "reload-config",
    "shutdown",
    "events",
    "logs",
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
        socket: None,
        daemon: false,
        pidfile: None,
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
            Long("socket") => opts.socket = Some(PathBuf::from(parser.value().map_err(err)?)),
            Long("daemon") => opts.daemon = true,
            Long("pidfile") => opts.pidfile = Some(PathBuf::from(parser.value().map_err(err)?)),
            Short('v') | Long("verbose") => opts.verbosity += 1,
            Short('q') | Long("quiet") => opts.verbosity -= 1,
            Short('V') | Long("version") => return Ok(Command::Version),
            Short('h') | Long("help") => return Ok(Command::Help),
            Value(first) if first == "check" => return parse_check(parser),
            Value(first) if first == "schema" => {
                return match parser.next().map_err(err)? {
                    None => Ok(Command::Schema),
                    Some(other) => Err(format!("schema: {}", other.unexpected())),
                };
            }
            Value(first) => {
                if let Some(name) = first.to_str().filter(|n| CONTROL_COMMANDS.contains(n)) {
                    return parse_control(name, parser, opts.socket);
                }
                opts.program.push(first);
                opts.program.extend(parser.raw_args().map_err(err)?);
                break;
            }
            other => return Err(err(other.unexpected())),
        }
    }
    if opts.pidfile.is_some() && !opts.daemon {
        return Err("--pidfile goes with --daemon".into());
    }
    Ok(Command::Run(opts))
}

/// `NAME [ARGS] [--socket PATH] [--json]` for the control commands.
fn parse_control(
    name: &str,
    mut parser: lexopt::Parser,
    mut socket: Option<PathBuf>,
) -> Result<Command, String> {
    use lexopt::prelude::*;
    let err = |e: lexopt::Error| format!("{name}: {e}");
    let mut json = false;
    let mut watch = None;
    let mut words: Vec<String> = Vec::new();
    // `logs` only.
    let (mut lines, mut follow) = (DEFAULT_LOG_LINES, false);
    while let Some(arg) = parser.next().map_err(err)? {
        match arg {
            Long("socket") => socket = Some(PathBuf::from(parser.value().map_err(err)?)),
            Long("json") if matches!(name, "status" | "events" | "logs") => json = true,
            Long("watch") if name == "status" => {
                watch = Some(match parser.optional_value() {
                    Some(v) => watch_interval(&v.to_string_lossy())?,
                    None => WATCH_DEFAULT,
                })
            }
            Short('f') | Long("follow") if name == "logs" => follow = true,
            Short('n') | Long("lines") if name == "logs" => {
                let value = parser.value().map_err(err)?;
                lines = value.to_str().and_then(|v| v.parse().ok()).ok_or_else(|| {
                    format!(
                        "logs: -n takes a number of lines, not `{}`",
                        value.to_string_lossy()
                    )
                })?;
            }
            Value(v) => words.push(
                v.into_string()
                    .map_err(|v| format!("{name}: `{}` is not UTF-8", v.to_string_lossy()))?,
            ),
            other => return Err(err(other.unexpected())),
        }
    }
    let none = |req: Request, words: &[String]| match words.first() {
        None => Ok(req),
        Some(w) => Err(format!("{name}: unexpected argument `{w}`")),
    };
    let programs = |words: Vec<String>| {
        if words.is_empty() {
            Err(format!("{name}: name at least one program (or `all`)"))
        } else {
            Ok(words)
        }
    };
    // `status --watch 5s`: the interval may also come as the next word.
    if watch.is_some() && name == "status" && words.len() == 1 {
        watch = Some(watch_interval(&words.remove(0))?);
    }
    if json && watch.is_some() {
        return Err("status: --watch draws the table; --json goes without it".into());
    }
    let request = match name {
        "status" => none(Request::Status {}, &words)?,
        "ready" => none(Request::Ready {}, &words)?,
        "reload-config" => none(Request::ReloadConfig {}, &words)?,
        "shutdown" => none(Request::Shutdown {}, &words)?,
        "events" => none(Request::Events { json }, &words)?,
        "logs" => Request::Logs {
            programs: words,
            lines,
            follow,
            json,
        },
        "start" => Request::Start {
            programs: programs(words)?,
        },
        "stop" => Request::Stop {
            programs: programs(words)?,
        },
        "restart" => Request::Restart {
            programs: programs(words)?,
        },
        "reload" => Request::Reload {
            programs: programs(words)?,
        },
        _ => {
            let mut words = words.into_iter();
            let Some(signal) = words.next() else {
                return Err("signal: usage: ginit signal SIGNAL NAME...".into());
            };
            Request::Signal {
                signal,
                programs: programs(words.collect())?,
            }
        }
    };
    Ok(Command::Control {
        request,
        socket,
        json,
        watch,
    })
}

/// `status --watch` without an interval.
const WATCH_DEFAULT: Duration = Duration::from_secs(2);
/// The shortest interval `--watch` takes: a status costs ginit a /proc scan of every
/// instance's tree, which a tighter loop would turn into a steady load.
const WATCH_MIN: Duration = Duration::from_millis(100);

/// The interval of `status --watch INTERVAL` (`5s`, `500ms`, `1m`; a bare number is seconds,
/// as `watch -n` takes it).
fn watch_interval(text: &str) -> Result<Duration, String> {
    let parsed = match text.parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => parse_duration(text),
    };
    match parsed {
        Ok(d) if d >= WATCH_MIN && d <= Duration::from_secs(86_400) => Ok(d),
        Ok(_) => Err(format!(
            "status: --watch {text}: the interval is 100ms to 24h"
        )),
        Err(e) => Err(format!("status: --watch {text}: {e}")),
    }
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
    fn control_commands_and_programs_of_the_same_name() {
        assert_eq!(
            parse(["status", "--json"]),
            Ok(Command::Control {
                request: Request::Status {},
                socket: None,
                json: true,
                watch: None
            })
        );
        assert_eq!(
            parse(["--socket", "/s", "restart", "web", "db"]),
            Ok(Command::Control {
                request: Request::Restart {
                    programs: vec!["web".into(), "db".into()]
                },
                socket: Some("/s".into()),
                json: false,
                watch: None
            })
        );
        assert_eq!(
            parse(["signal", "HUP", "web", "--socket=/t"]),
            Ok(Command::Control {
                request: Request::Signal {
                    signal: "HUP".into(),
                    programs: vec!["web".into()]
                },
                socket: Some("/t".into()),
                json: false,
                watch: None
            })
        );
        assert!(
            parse(["stop"])
                .unwrap_err()
                .contains("at least one program")
        );
        assert!(
            parse(["signal", "HUP"])
                .unwrap_err()
                .contains("at least one")
        );
        assert!(
            parse(["ready", "x"])
                .unwrap_err()
                .contains("unexpected argument")
        );
        assert!(parse(["restart", "--json", "x"]).is_err());
        assert_eq!(prog(&run(&["--", "status"])), ["status"]);
        assert!(parse(["--pidfile", "/p", "-c", "x"]).is_err());
    }

    #[test]
    fn status_watch_takes_an_optional_interval() {
        let watch = |args: &[&str]| match parse(args.iter().copied()) {
            Ok(Command::Control { watch, .. }) => Ok(watch),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        let secs = |n| Ok(Some(Duration::from_secs(n)));
        assert_eq!(watch(&["status"]), Ok(None));
        assert_eq!(watch(&["status", "--watch"]), secs(2));
        assert_eq!(watch(&["status", "--watch", "5"]), secs(5));
        assert_eq!(watch(&["status", "--watch=1m"]), secs(60));
        assert_eq!(watch(&["status", "--watch", "--socket", "/s"]), secs(2));
        assert_eq!(
            watch(&["status", "--watch", "250ms"]),
            Ok(Some(Duration::from_millis(250)))
        );
        for bad in ["10ms", "0", "soon", "2d"] {
            assert!(watch(&["status", "--watch", bad]).is_err(), "{bad}");
        }
        assert!(watch(&["status", "--watch", "--json"]).is_err());
        assert!(watch(&["restart", "--watch", "web"]).is_err());
    }

    #[test]
    fn events_and_logs() {
        let control = |request| Command::Control {
            request,
            socket: None,
            json: false,
            watch: None,
        };
        assert_eq!(
            parse(["events"]),
            Ok(control(Request::Events { json: false }))
        );
        assert!(parse(["events", "web"]).is_err());
        assert_eq!(
            parse(["logs"]),
            Ok(control(Request::Logs {
                programs: vec![],
                lines: 100,
                follow: false,
                json: false
            }))
        );
        let Ok(Command::Control { request, .. }) =
            parse(["logs", "-n", "5", "-f", "--json", "web", "db"])
        else {
            panic!("not a control command");
        };
        assert_eq!(
            request,
            Request::Logs {
                programs: vec!["web".into(), "db".into()],
                lines: 5,
                follow: true,
                json: true
            }
        );
        assert!(
            parse(["logs", "-n", "many"])
                .unwrap_err()
                .contains("-n takes a number")
        );
        assert!(parse(["status", "-f"]).is_err());
        assert!(parse(["events", "-n", "3"]).is_err());
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
        assert_eq!(parse(["schema"]), Ok(Command::Schema));
        assert!(parse(["schema", "x"]).unwrap_err().starts_with("schema:"));
        assert_eq!(prog(&run(&["--", "schema"])), ["schema"]);
    }

    #[test]
    fn version_and_help() {
        assert_eq!(parse(["-V"]), Ok(Command::Version));
        assert_eq!(parse(["--help", "x"]), Ok(Command::Help));
    }
}
