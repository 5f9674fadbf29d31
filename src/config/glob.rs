//! File-name patterns of `include` (`/etc/ginit.d/*.yaml`): `*` (any run of characters), `?`
//! (one character) and `[...]` (one of a set: `[abc]`, `[a-z]`, `[!a]`), as the shell
//! matches one path component. Pure: listing the directory is the resolver's job.
//!
//! The matcher is iterative (it remembers the last `*` and retries from there), so it never
//! recurses on the pattern and its work is bounded by pattern length times name length.

/// Whether the text has a wildcard (`*`, `?` or `[`).
pub fn has_wildcard(text: &str) -> bool {
    text.bytes().any(|b| matches!(b, b'*' | b'?' | b'['))
}

/// Whether file name `name` matches `pattern`. As in the shell, a name starting with `.` is
/// matched only by a pattern starting with `.` (so `*.yaml` never takes Kubernetes'
/// `..data` or an editor's hidden swap file).
pub fn matches(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    // Where to go back to after a mismatch: just after the last `*`, and the name position
    // that `*` now covers up to.
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi + 1, ni));
                pi += 1;
                continue;
            }
            Some('?') => Some(1),
            Some('[') => class(&p[pi..], n[ni]),
            Some(&c) if c == n[ni] => Some(1),
            _ => None,
        };
        match (step, star) {
            (Some(len), _) => {
                pi += len;
                ni += 1;
            }
            (None, Some((sp, sn))) => {
                // The last `*` takes one more character; retry the rest from there.
                star = Some((sp, sn + 1));
                pi = sp;
                ni = sn + 1;
            }
            (None, None) => return false,
        }
    }
    p[pi.min(p.len())..].iter().all(|&c| c == '*')
}

/// `[...]` at the start of `p` against `c`: the length of the class in the pattern if `c` is
/// in it, `None` if not. A `[` without its `]` is a literal `[`.
fn class(p: &[char], c: char) -> Option<usize> {
    let mut i = 1;
    let negated = matches!(p.get(1), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut found = false;
    let mut first = true;
    while let Some(&x) = p.get(i) {
        if x == ']' && !first {
            return (found != negated).then_some(i + 1);
        }
        first = false;
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&y| y != ']') {
            let y = p[i + 2];
            found |= x <= c && c <= y;
            i += 3;
        } else {
            found |= x == c;
            i += 1;
        }
    }
    // No closing `]`: the `[` stands for itself.
    (c == '[').then_some(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_questions_and_classes() {
        for (pattern, name, want) in [
            ("*.yaml", "web.yaml", true),
            ("*.yaml", "web.yml", false),
            ("*.yaml", ".hidden.yaml", false),
            (".*.yaml", ".hidden.yaml", true),
            ("*.yaml", "..data", false),
            ("*", "anything", true),
            ("*", "", true),
            ("a*b*c", "aXbYc", true),
            ("a*b*c", "aXbYcZ", false),
            ("a*b*c", "abcbc", true),
            ("??-*.yaml", "10-web.yaml", true),
            ("??-*.yaml", "1-web.yaml", false),
            ("[0-9]*.yaml", "5x.yaml", true),
            ("[0-9]*.yaml", "x5.yaml", false),
            ("[!0-9]*", "x5", true),
            ("[!0-9]*", "5x", false),
            ("[]]x", "]x", true),
            ("[abc", "[abc", true),
            ("web.yaml", "web.yaml", true),
            ("web.yaml", "web.yamlx", false),
            ("é*", "éa", true),
        ] {
            assert_eq!(matches(pattern, name), want, "{pattern} {name}");
        }
        assert!(has_wildcard("/etc/ginit.d/*.yaml") && !has_wildcard("/etc/x.yaml"));
    }

    #[test]
    fn long_inputs_stay_cheap() {
        // The classic exponential case for a recursive matcher.
        let pattern = "a*".repeat(50) + "b";
        let name = "a".repeat(4096);
        assert!(!matches(&pattern, &name));
    }
}
