//! What a program's environment is made of besides `env`: `env_file` texts (`KEY=VALUE`
//! lines) and `${NAME}` / `${NAME:-default}` / `$$` in `command`, `env` values and exec
//! checks, replaced at each start. Pure text work: reading the files and knowing the
//! environment are the edge's (`os/start.rs`); validation uses [`check`] to refuse a
//! malformed `${...}` before anything starts.

/// Most variables one env file may set (each start reads the files again, so this bounds
/// the work of every start).
pub const MAX_FILE_VARS: usize = 1_000;

/// One piece of a text with variables.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(&'a str),
    Var {
        name: &'a str,
        default: Option<&'a str>,
    },
}

fn is_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Splits `text` into literal text and variables. `$$` is one `$`; a `$` before anything but
/// `{` or `$` is itself. A `${` that is not `${NAME}` or `${NAME:-default}` is an error (a
/// shell's `${#x}` or `${x%y}` is written `$${...}`, which reaches the shell as `${...}`).
fn pieces(text: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        let (before, from) = rest.split_at(at);
        if !before.is_empty() {
            out.push(Piece::Text(before));
        }
        if let Some(after) = from.strip_prefix("$$") {
            out.push(Piece::Text("$"));
            rest = after;
        } else if let Some(inner) = from.strip_prefix("${") {
            let Some(end) = inner.find('}') else {
                return Err(format!(
                    "`{}` has no closing `}}` (write $$ for a literal $)",
                    from.chars().take(24).collect::<String>()
                ));
            };
            let body = &inner[..end];
            let (name, default) = match body.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (body, None),
            };
            if !is_name(name) {
                return Err(format!(
                    "`${{{body}}}` is not ${{NAME}} or ${{NAME:-default}} (write $${{...}} to \
                     pass it to a shell as it is)"
                ));
            }
            out.push(Piece::Var { name, default });
            rest = &inner[end + 1..];
        } else {
            out.push(Piece::Text("$"));
            rest = &from[1..];
        }
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest));
    }
    Ok(out)
}

/// Checks the `${...}` of `text` (for validation).
pub fn check(text: &str) -> Result<(), String> {
    pieces(text).map(drop)
}

/// `text` with its variables replaced by what `lookup` says (an unset or empty variable takes
/// its default; an unset one without a default is an error naming it) and `$$` by `$`.
pub fn expand<'e>(text: &str, lookup: impl Fn(&str) -> Option<&'e str>) -> Result<String, String> {
    if !text.contains('$') {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    for piece in pieces(text)? {
        match piece {
            Piece::Text(t) => out.push_str(t),
            // As in the shell, `:-` also takes the default for a variable set but empty.
            Piece::Var { name, default } => match (lookup(name), default) {
                (Some(""), Some(d)) | (None, Some(d)) => out.push_str(d),
                (Some(v), _) => out.push_str(v),
                (None, None) => return Err(format!("${{{name}}} is not set")),
            },
        }
    }
    Ok(out)
}

/// The variables of an env file: `KEY=VALUE` lines, blank lines and `#` comments ignored,
/// `export ` allowed before a key. A value in single quotes is taken as it is; in double
/// quotes, `\n`, `\t`, `\"`, `\\` and `\$` are escapes; unquoted, it runs to the end of the
/// line (trailing blanks dropped). An error names the line (1-based).
pub fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut vars: Vec<(String, String)> = Vec::new();
    // Position of each key in `vars`: a later line for the same key replaces the value.
    let mut seen = super::Names::new(0);
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((key, value)) = line.split_once('=') else {
            return Err((line_no, "expected KEY=VALUE".into()));
        };
        let key = key.trim_end();
        if !is_name(key) {
            return Err((line_no, format!("`{key}` is not a variable name")));
        }
        let value = unquote(value.trim_end()).map_err(|e| (line_no, e))?;
        if value.contains('\0') {
            return Err((line_no, "the value contains a NUL byte".into()));
        }
        if let Some(slot) = seen.get(key).and_then(|i| vars.get_mut(i)) {
            slot.1 = value;
            continue;
        }
        if vars.len() >= MAX_FILE_VARS {
            return Err((line_no, format!("more than {MAX_FILE_VARS} variables")));
        }
        seen.insert(key, vars.len());
        vars.push((key.to_string(), value));
    }
    Ok(vars)
}

fn unquote(value: &str) -> Result<String, String> {
    if let Some(inner) = value.strip_prefix('\'') {
        return match inner.strip_suffix('\'') {
            Some(v) if !inner.is_empty() => Ok(v.to_string()),
            _ => Err("the single quote is not closed".into()),
        };
    }
    let Some(inner) = value.strip_prefix('"') else {
        return Ok(value.to_string());
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                return match chars.as_str() {
                    "" => Ok(out),
                    rest => Err(format!("unexpected `{rest}` after the closing quote")),
                };
            }
            '\\' => match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(e @ ('"' | '\\' | '$')) => out.push(e),
                Some(e) => {
                    out.push('\\');
                    out.push(e);
                }
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("the double quote is not closed".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<&'static str> {
        match name {
            "HOME" => Some("/root"),
            "EMPTY" => Some(""),
            _ => None,
        }
    }

    #[test]
    fn variables_defaults_and_dollars() {
        assert_eq!(expand("${HOME}/bin", env), Ok("/root/bin".into()));
        assert_eq!(expand("a${MISSING:-b}c", env), Ok("abc".into()));
        assert_eq!(
            expand("${EMPTY:-x}", env),
            Ok("x".into()),
            "set but empty: the default"
        );
        assert_eq!(expand("${EMPTY}", env), Ok("".into()));
        assert_eq!(
            expand("$$HOME costs $5 $", env),
            Ok("$HOME costs $5 $".into())
        );
        assert_eq!(expand("$${#x}", env), Ok("${#x}".into()));
        assert_eq!(expand("plain", env), Ok("plain".into()));
        assert_eq!(expand("é${HOME}é", env), Ok("é/rooté".into()));
        assert_eq!(expand("${NOPE}", env), Err("${NOPE} is not set".into()));
        for bad in ["${", "${HOME", "${#x}", "${x%y}", "${}", "${1A}", "${A:=b}"] {
            assert!(check(bad).is_err(), "{bad}");
            assert!(expand(bad, env).is_err(), "{bad}");
        }
        assert!(check("sh -c 'wait $!; echo $?'").is_ok());
    }

    #[test]
    fn env_files_as_kubernetes_and_docker_write_them() {
        let text = "# database\n\nexport DB_HOST=db.local\nDB_PASS='s3cr#t $x'\nGREETING=\"hello\\nworld \\\"q\\\" \\$HOME\"\n  SPACED = value with spaces  \nDB_HOST=override\nEMPTY=\n";
        let vars = parse_env_file(text).unwrap();
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("DB_HOST"), Some("override"), "a later line wins");
        assert_eq!(get("DB_PASS"), Some("s3cr#t $x"));
        assert_eq!(get("GREETING"), Some("hello\nworld \"q\" $HOME"));
        assert_eq!(get("SPACED"), Some(" value with spaces"));
        assert_eq!(get("EMPTY"), Some(""));
        assert_eq!(vars.len(), 5);
        for (bad, line) in [
            ("A=1\nnot a pair\n", 2),
            ("1A=x", 1),
            ("A='open", 1),
            ("A=\"open", 1),
            ("A=\"x\" y", 1),
            ("A B=1", 1),
        ] {
            assert_eq!(parse_env_file(bad).map_err(|e| e.0), Err(line), "{bad:?}");
        }
    }
}
