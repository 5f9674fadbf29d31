//! Every key of the config file and the shape of its value: the one definition the validator
//! (`schema.rs`: which keys each mapping may hold) and `ginit schema` (a JSON Schema, draft
//! 2020-12, for editors and CI linters) both read, so the two cannot drift. A key added to a
//! table is known to the validator and described in the schema at once; a unit test fails if
//! a shape names a table that does not exist or a mapping the validator reads is missing.
//!
//! Shapes are a few words rather than JSON text, which keeps them readable and the binary
//! small: `dur` (a duration, `10s`), `size` (`300MiB` or a number of bytes), `text` (any
//! scalar: YAML may type `1000` or `true` where ginit reads text), `bool`, `int:MIN:MAX`,
//! `num:MIN:MAX`, `enum:a|b`, `cmd` (a command: a string or a list), `texts` (one or a list),
//! `list` (a list), `codes` (exit statuses), `signal`, `env`, `output`, `limit`,
//! `obj:TABLE` (a mapping of that table's keys) and `map:TABLE` (names to such mappings).
//!
//! The schema is only as strict as a shape can say: a value it accepts may still be refused
//! by `ginit check` (an executable that does not exist, a dependency cycle, a check on an
//! address ginit serves), but a value it refuses is always refused by ginit too.

/// A key and the shape of its value.
pub type Key = (&'static str, &'static str);

pub const TOP: &[Key] = &[
    ("programs", "map:program"),
    ("shutdown", "obj:shutdown"),
    ("log", "obj:log"),
    ("control", "obj:control"),
    ("sockets", "map:socket"),
    ("include", "texts"),
    ("metrics", "obj:metrics"),
    ("config", "obj:config"),
];

pub const PROGRAM: &[Key] = &[
    ("command", "cmd"),
    ("env", "env"),
    ("cwd", "text"),
    ("user", "text"),
    ("group", "text"),
    ("instances", "int:1:1000"),
    ("oneshot", "bool"),
    ("depends_on", "list"),
    ("restart", "enum:always|on-failure|never"),
    ("backoff", "obj:backoff"),
    ("max_restarts", "int:0:1000000"),
    ("restart_window", "dur"),
    ("critical", "bool"),
    ("stop", "obj:stop"),
    ("stdout", "output"),
    ("stderr", "output"),
    ("reload", "obj:reload"),
    ("sockets", "list"),
    ("ready", "obj:ready"),
    ("health", "obj:health"),
    ("watchdog", "dur"),
    ("limits", "obj:limits"),
    ("memory_max", "size"),
    ("cpu_max", "text"),
    ("monitor_window", "dur"),
    ("cpu_action", "enum:warn|restart"),
    ("success_exit_codes", "codes"),
    ("env_file", "texts"),
    ("runtime_env", "bool"),
    ("on_exit", "cmd"),
    ("on_failed", "cmd"),
    ("hook_timeout", "dur"),
    ("schedule", "text"),
    ("every", "dur"),
    ("watch", "obj:watch"),
];

pub const CONFIG: &[Key] = &[("watch", "bool"), ("debounce", "dur")];
pub const WATCH: &[Key] = &[("paths", "texts"), ("ignore", "texts"), ("debounce", "dur")];
pub const SHUTDOWN: &[Key] = &[("delay", "dur"), ("timeout", "dur")];
pub const LOG: &[Key] = &[
    ("level", "text"),
    ("format", "enum:text|json"),
    ("file", "text"),
    ("buffer", "obj:buffer"),
    ("timestamps", "bool"),
];
pub const BUFFER: &[Key] = &[("lines", "int:0:1000000"), ("bytes", "size")];
pub const CONTROL: &[Key] = &[("socket", "text")];
pub const METRICS: &[Key] = &[("listen", "text")];
pub const SOCKET: &[Key] = &[
    ("listen", "text"),
    ("backlog", "int:1:65535"),
    ("mode", "text"),
    ("owner", "text"),
    ("inherit", "text"),
];
pub const BACKOFF: &[Key] = &[
    ("initial", "dur"),
    ("max", "dur"),
    ("factor", "num:1:100"),
    ("reset_after", "dur"),
];
pub const STOP: &[Key] = &[("signal", "signal"), ("timeout", "dur"), ("command", "cmd")];
pub const FILE_OUTPUT: &[Key] = &[("file", "text"), ("rotate", "obj:rotate")];
pub const ROTATE: &[Key] = &[("size", "size"), ("keep", "int:1:100")];
pub const RELOAD: &[Key] = &[
    ("strategy", "enum:replace|restart|signal"),
    ("signal", "signal"),
];
pub const READY: &[Key] = &[
    ("notify", "bool"),
    ("tcp", "text"),
    ("http", "text"),
    ("exec", "cmd"),
    ("delay", "dur"),
    ("log", "text"),
    ("timeout", "dur"),
];
pub const HEALTH: &[Key] = &[
    ("tcp", "text"),
    ("http", "text"),
    ("exec", "cmd"),
    ("interval", "dur"),
    ("timeout", "dur"),
    ("failures", "int:1:100"),
];
/// The setrlimit keys are `Rlimit::key`'s (a test checks they are the same set).
pub const LIMITS: &[Key] = &[
    ("address_space", "limit"),
    ("data", "limit"),
    ("stack", "limit"),
    ("cpu_seconds", "limit"),
    ("open_files", "limit"),
    ("processes", "limit"),
    ("core", "limit"),
    ("file_size", "limit"),
    ("nice", "int:-20:19"),
    ("oom_score_adj", "int:-1000:1000"),
];

/// The tables `obj:` and `map:` name.
const TABLES: &[(&str, &[Key])] = &[
    ("program", PROGRAM),
    ("shutdown", SHUTDOWN),
    ("log", LOG),
    ("buffer", BUFFER),
    ("control", CONTROL),
    ("metrics", METRICS),
    ("socket", SOCKET),
    ("backoff", BACKOFF),
    ("stop", STOP),
    ("file_output", FILE_OUTPUT),
    ("rotate", ROTATE),
    ("reload", RELOAD),
    ("ready", READY),
    ("health", HEALTH),
    ("limits", LIMITS),
    ("config", CONFIG),
    ("watch", WATCH),
];

/// The names of a table's keys (for "did you mean" hints).
pub fn names(keys: &[Key]) -> Vec<&'static str> {
    keys.iter().map(|k| k.0).collect()
}

/// Shapes used more than once, written once under `$defs`.
const DEFS: &str = concat!(
    r##""dur":{"anyOf":[{"const":0},{"type":"string","pattern":"^\\s*(0|([0-9.]+(ns|us|µs|ms|s|m|h|d))+)\\s*$"}]},"##,
    r##""size":{"anyOf":[{"type":"integer","minimum":0},{"type":"string","pattern":"^\\s*[0-9.]+\\s*([KMGT](i?B)?|k|B)?\\s*$"}]},"##,
    r##""text":{"type":["string","number","boolean"]},"##,
    r##""list":{"type":["array","null"],"items":{"$ref":"#/$defs/text"}},"##,
    r##""texts":{"anyOf":[{"$ref":"#/$defs/text"},{"$ref":"#/$defs/list"}]},"##,
    r##""cmd":{"anyOf":[{"type":"string","minLength":1},{"type":"array","minItems":1,"items":{"$ref":"#/$defs/text"}}]},"##,
    r##""signal":{"type":["string","integer"]},"##,
    r##""limit":{"anyOf":[{"type":"integer","minimum":0},{"type":"string"}]},"##,
    r##""codes":{"type":"array","items":{"type":"integer","minimum":0,"maximum":255}},"##,
    r##""env":{"type":["object","null"],"additionalProperties":{"type":["string","number","boolean","null"]}},"##,
    r##""output":{"anyOf":[{"enum":["inherit","prefix","json","null",null]},"##,
);

/// `ginit schema`: the JSON Schema of the config file, one line of JSON.
pub fn json_schema() -> String {
    let mut out = String::from(
        r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","title":"ginit config file","$defs":{"#,
    );
    out.push_str(DEFS);
    out.push('{');
    object(&mut out, FILE_OUTPUT);
    out.push_str("}]}},");
    object(&mut out, TOP);
    out.push_str("}\n");
    out
}

/// The members of an object schema for `keys` (no braces: the caller's object goes on).
fn object(out: &mut String, keys: &[Key]) {
    out.push_str(r#""type":"object","additionalProperties":false,"properties":{"#);
    for (i, (name, shape)) in keys.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(name);
        out.push_str("\":");
        value(out, shape);
    }
    out.push('}');
}

/// The schema of one shape.
fn value(out: &mut String, shape: &str) {
    let (word, arg) = shape.split_once(':').unwrap_or((shape, ""));
    match word {
        "bool" => out.push_str(r#"{"type":"boolean"}"#),
        "int" | "num" => {
            let (min, max) = arg.split_once(':').unwrap_or((arg, arg));
            let kind = if word == "int" { "integer" } else { "number" };
            out.push_str(&format!(
                r#"{{"type":"{kind}","minimum":{min},"maximum":{max}}}"#
            ));
        }
        "enum" => {
            out.push_str(r#"{"enum":["#);
            for (i, choice) in arg.split('|').enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&format!("\"{choice}\""));
            }
            out.push_str("]}");
        }
        "obj" | "map" => {
            let keys = TABLES.iter().find(|t| t.0 == arg).map_or(&[][..], |t| t.1);
            if word == "map" {
                out.push_str(
                    r#"{"type":"object","propertyNames":{"pattern":"^[A-Za-z0-9_.-]+$"},"additionalProperties":{"#,
                );
                object(out, keys);
                out.push_str("}}");
            } else {
                out.push('{');
                object(out, keys);
                out.push('}');
            }
        }
        _ => out.push_str(&format!(r##"{{"$ref":"#/$defs/{word}"}}"##)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rlimit;

    #[test]
    fn every_shape_is_known_and_the_schema_is_json() {
        let words = ["bool", "int", "num", "enum", "obj", "map"];
        for (_, keys) in TABLES.iter().chain([("top", TOP)].iter()) {
            for (name, shape) in *keys {
                let (word, arg) = shape.split_once(':').unwrap_or((shape, ""));
                let known = words.contains(&word) || DEFS.contains(&format!("\"{word}\":"));
                assert!(known, "{name}: unknown shape `{shape}`");
                if word == "obj" || word == "map" {
                    assert!(
                        TABLES.iter().any(|t| t.0 == arg),
                        "{name}: no table `{arg}`"
                    );
                }
            }
        }
        let schema: serde_json::Value = serde_json::from_str(&json_schema()).unwrap();
        let program = &schema["properties"]["programs"]["additionalProperties"]["properties"];
        assert_eq!(program["instances"]["maximum"], 1000);
        assert_eq!(
            program["ready"]["properties"]["timeout"]["$ref"],
            "#/$defs/dur"
        );
        let output = &schema["$defs"]["output"]["anyOf"][1]["properties"]["rotate"];
        assert_eq!(output["properties"]["keep"]["minimum"], 1);
        assert_eq!(
            program.as_object().unwrap().len(),
            PROGRAM.len(),
            "one property per key"
        );
    }

    #[test]
    fn the_limits_are_the_rlimits_and_two_more() {
        let mut want: Vec<&str> = Rlimit::ALL.iter().map(|r| r.key()).collect();
        want.extend(["nice", "oom_score_adj"]);
        assert_eq!(names(LIMITS), want);
    }
}
