//! `command: "/app/server --port 8080"`: a string split into argv the way a POSIX shell splits
//! words, without running a shell. Quotes and backslashes work as in sh; anything that would
//! need a shell to mean what it says (pipes, redirections, `$VAR`, `;`, `&&`) is an error that
//! says so, instead of being passed to the program as a literal argument.

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
                            Some(c @ ('"' | '\\' | '$' | '`')) => word.push(c),
                            Some('\n') => {}
                            Some(c) => {
                                word.push('\\');
                                word.push(c);
                            }
                            None => return Err("a double quote (\") is not closed".into()),
                        },
                        Some(c @ ('$' | '`')) => return Err(needs_shell(c)),
                        Some(c) => word.push(c),
                        None => return Err("a double quote (\") is not closed".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') => {}
                    Some(c) => word.push(c),
                    None => return Err("a backslash ends the command".into()),
                }
            }
            '|' | '&' | ';' | '<' | '>' | '(' | ')' | '$' | '`' => return Err(needs_shell(c)),
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
            ["a\"b", "$HOME", "\\n"]
        );
        assert_eq!(split("'$HOME|x'").unwrap(), ["$HOME|x"]);
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
