//! `command: "/app/server --port 8080"`: a string split into argv the way a POSIX shell splits
//! words, without running a shell. Quotes and backslashes work as in sh; anything that would
//! need a shell to mean what it says (pipes, redirections, `$VAR`, `;`, `&&`) is an error that
//! says so, instead of being passed to the program as a literal argument.
//!
//! The words are in the form ginit expands at each start (`config/vars.rs`): `${NAME}`,
//! `${NAME:-default}` and `$$` outside single quotes are kept as they are for it, and a `$`
//! that quoting or a backslash makes literal is written `$$`, so it stays a `$`.

/// Splits `text` into words, or explains why it cannot.
pub fn split(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some('$') => word.push_str("$$"),
                        Some(c) => word.push(c),
                        None => return Err("a single quote (') is not closed".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some('$') => word.push_str("$$"),
                            Some(c @ ('"' | '\\' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("a double quote (\") is not closed".into()),
                        },
                        Some('$') => variable(&mut chars, &mut word)?,
                        Some('`') => return Err(needs_shell('`')),
                        Some(c) => word.push(c),
                        None => return Err("a double quote (\") is not closed".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some('$') => word.push_str("$$"),
                    Some(c) => word.push(c),
                    None => return Err("a backslash ends the command".into()),
                }
            }
            '$' => {
                in_word = true;
                variable(&mut chars, &mut word)?;
            }
            '|' | '&' | ';' | '<' | '>' | '(' | ')' | '`' => return Err(needs_shell(c)),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// After a `$` outside single quotes: `$$` or `${...}` (up to its `}`) is kept for ginit's
/// expansion; anything else (`$HOME`, `$1`) would need a shell.
fn variable(chars: &mut std::str::Chars, word: &mut String) -> Result<(), String> {
    match chars.clone().next() {
        Some('$') => {
            chars.next();
            word.push_str("$$");
            Ok(())
        }
        Some('{') => {
            let mut var = String::from("$");
            for c in chars.by_ref() {
                var.push(c);
                if c == '}' {
                    // Only `${NAME}` and `${NAME:-default}`: anything else is an error here,
                    // so a word never holds a malformed variable.
                    super::vars::check(&var)?;
                    word.push_str(&var);
                    return Ok(());
                }
            }
            Err("`${` is not closed by `}`".into())
        }
        _ => Err(needs_shell('$')),
    }
}

fn needs_shell(c: char) -> String {
    format!(
        "`{c}` needs a shell, and ginit runs commands without one; quote it to pass it \
         literally, or write the command as [\"/bin/sh\", \"-c\", \"...\"]"
    )
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn splits_like_sh() {
        assert_eq!(
            split("/app/server --port 8080").unwrap(),
            ["/app/server", "--port", "8080"]
        );
        assert_eq!(split("  a\t b\n").unwrap(), ["a", "b"]);
        assert_eq!(
            split(r#"echo 'a b' "c d" e\ f"#).unwrap(),
            ["echo", "a b", "c d", "e f"]
        );
        assert_eq!(split(r#"x "" ''"#).unwrap(), ["x", "", ""]);
        assert_eq!(
            split(r#""a\"b" "\$HOME" "\n""#).unwrap(),
            ["a\"b", "$$HOME", "\\n"]
        );
        // A literal `$` is kept as `$$` for the expansion at start, which makes it `$` again.
        assert_eq!(split("'$HOME|x'").unwrap(), ["$$HOME|x"]);
        assert_eq!(
            split(r#"app --url "http://${HOST:-localhost}/" ${PORT} $$ '${X}'"#).unwrap(),
            [
                "app",
                "--url",
                "http://${HOST:-localhost}/",
                "${PORT}",
                "$$",
                "$${X}"
            ]
        );
        assert_eq!(split("a'b'c").unwrap(), ["abc"]);
        assert!(split("").unwrap().is_empty());
    }

    #[test]
    fn refuses_what_needs_a_shell() {
        for bad in [
            "a | b",
            "a && b",
            "a; b",
            "a > f",
            "echo $HOME",
            "echo \"$HOME\"",
            "`x`",
        ] {
            assert!(split(bad).unwrap_err().contains("needs a shell"), "{bad}");
        }
        assert!(split("'open").unwrap_err().contains("not closed"));
        assert!(split("\"open").unwrap_err().contains("not closed"));
        assert!(split("end\\").is_err());
    }
}
