//! A small JSON reader for the control protocol's lines: requests on the server, responses
//! in the client. Why not serde_json's deserializer: it, and the code serde's derive writes
//! for it, was about 50 KB of a static binary with a 1.5 MiB budget, for lines of a handful
//! of fields. (Writing stays with serde_json, which costs little.)
//!
//! What it reads is JSON as RFC 8259 has it: one value with whitespace around it; objects,
//! arrays, strings with every escape (`\u` surrogate pairs joined, lone ones refused),
//! numbers, `true`, `false`, `null`. Numbers are kept as their text, so an integer is read
//! exactly whatever its size. Nesting is bounded by [`MAX_DEPTH`], and the parser keeps its
//! own stack: it never recurses, so no line can exhaust PID 1's stack.

/// Deepest nesting of arrays and objects (a response's is 4).
pub const MAX_DEPTH: usize = 16;

/// A JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// A number, as written (it matched JSON's number grammar).
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    /// Members in the order written (a name given twice is kept twice: the reader decides).
    Obj(Vec<(String, Json)>),
}

/// An array or object being read, with the name of the member whose value comes next.
enum Open {
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>, String),
}

/// Reads one JSON value from `text`.
pub fn parse(text: &[u8]) -> Result<Json, String> {
    let mut r = Reader { text, at: 0 };
    let mut stack: Vec<Open> = Vec::new();
    loop {
        // A value starts here.
        r.space();
        let mut value = match r.peek() {
            Some(b'{') | Some(b'[') if stack.len() >= MAX_DEPTH => {
                return Err(r.error(&format!("nested deeper than {MAX_DEPTH}")));
            }
            Some(b'{') => {
                r.at += 1;
                r.space();
                if r.eat(b'}') {
                    Json::Obj(Vec::new())
                } else {
                    let name = r.name()?;
                    stack.push(Open::Obj(Vec::new(), name));
                    continue;
                }
            }
            Some(b'[') => {
                r.at += 1;
                r.space();
                if r.eat(b']') {
                    Json::Arr(Vec::new())
                } else {
                    stack.push(Open::Arr(Vec::new()));
                    continue;
                }
            }
            _ => r.scalar()?,
        };
        // The value is whole: it goes into the container it is in, which may end too.
        loop {
            r.space();
            match stack.last_mut() {
                None => {
                    return if r.at == r.text.len() {
                        Ok(value)
                    } else {
                        Err(r.error("more after the value"))
                    };
                }
                Some(Open::Arr(items)) => {
                    items.push(value);
                    if r.eat(b',') {
                        break;
                    }
                    if !r.eat(b']') {
                        return Err(r.error("expected `,` or `]`"));
                    }
                }
                Some(Open::Obj(members, name)) => {
                    members.push((std::mem::take(name), value));
                    if r.eat(b',') {
                        r.space();
                        *name = r.name()?;
                        break;
                    }
                    if !r.eat(b'}') {
                        return Err(r.error("expected `,` or `}`"));
                    }
                }
            }
            value = match stack.pop() {
                Some(Open::Arr(items)) => Json::Arr(items),
                Some(Open::Obj(members, _)) => Json::Obj(members),
                None => return Err(r.error("unbalanced")),
            };
        }
    }
}

struct Reader<'a> {
    text: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let yes = self.peek() == Some(b);
        if yes {
            self.at += 1;
        }
        yes
    }

    fn space(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn error(&self, what: &str) -> String {
        format!("{what} at column {}", self.at + 1)
    }

    /// A member's name and its `:`.
    fn name(&mut self) -> Result<String, String> {
        if self.peek() != Some(b'"') {
            return Err(self.error("expected a member name in quotes"));
        }
        let name = self.string()?;
        self.space();
        if !self.eat(b':') {
            return Err(self.error("expected `:`"));
        }
        Ok(name)
    }

    fn word(&mut self, word: &[u8], value: Json) -> Result<Json, String> {
        if self.text.get(self.at..self.at + word.len()) == Some(word) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.error("expected a value"))
        }
    }

    fn scalar(&mut self) -> Result<Json, String> {
        match self.peek() {
            Some(b'"') => self.string().map(Json::Str),
            Some(b't') => self.word(b"true", Json::Bool(true)),
            Some(b'f') => self.word(b"false", Json::Bool(false)),
            Some(b'n') => self.word(b"null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.error("expected a value")),
        }
    }

    fn digits(&mut self) -> usize {
        let from = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        self.at - from
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Result<Json, String> {
        let from = self.at;
        self.eat(b'-');
        let leading_zero = self.peek() == Some(b'0');
        let whole = self.digits();
        let mut ok = whole == 1 || (whole > 1 && !leading_zero);
        if self.eat(b'.') {
            ok &= self.digits() > 0;
        }
        if self.eat(b'e') || self.eat(b'E') {
            let _ = self.eat(b'+') || self.eat(b'-');
            ok &= self.digits() > 0;
        }
        let text = self.text.get(from..self.at).unwrap_or_default();
        match std::str::from_utf8(text) {
            Ok(t) if ok => Ok(Json::Num(t.to_string())),
            _ => Err(self.error("malformed number")),
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.text.get(self.at..self.at + 4).unwrap_or_default();
        let text = std::str::from_utf8(digits).unwrap_or_default();
        let n = u32::from_str_radix(text, 16)
            .ok()
            .filter(|_| text.len() == 4 && text.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.error("expected four hex digits after `\\u`"))?;
        self.at += 4;
        Ok(n)
    }

    fn string(&mut self) -> Result<String, String> {
        self.at += 1; // the opening quote
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(self.error("the string does not end"));
            };
            self.at += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.peek() else {
                        return Err(self.error("the string does not end"));
                    };
                    self.at += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let mut n = self.hex4()?;
                            if (0xd800..0xdc00).contains(&n) {
                                // A high surrogate: its low one must follow.
                                if !(self.eat(b'\\') && self.eat(b'u')) {
                                    return Err(self.error("a lone surrogate"));
                                }
                                let low = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&low) {
                                    return Err(self.error("a lone surrogate"));
                                }
                                n = 0x10000 + ((n - 0xd800) << 10) + (low - 0xdc00);
                            }
                            char::from_u32(n).ok_or_else(|| self.error("a lone surrogate"))?
                        }
                        _ => return Err(self.error("an unknown escape")),
                    };
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0..0x20 => return Err(self.error("a control character in a string")),
                _ => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| self.error("a string that is not UTF-8"))
    }
}

impl Json {
    /// What kind of value it is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Num(_) => "a number",
            Json::Str(_) => "a string",
            Json::Arr(_) => "an array",
            Json::Obj(_) => "an object",
        }
    }
}

/// The members of an object, read one by one by name.
#[derive(Debug)]
pub struct Fields(Vec<(String, Json)>);

impl Fields {
    /// The members of `value`, which must be an object; `what` names it in the error.
    pub fn of(value: Json, what: &str) -> Result<Fields, String> {
        match value {
            Json::Obj(members) => Ok(Fields(members)),
            other => Err(format!("{what} is {}, not an object", other.kind())),
        }
    }

    /// Member `name` (null counts as absent); taken out, so a second one is seen as
    /// a duplicate by [`Fields::done`].
    pub fn take(&mut self, name: &str) -> Option<Json> {
        let at = self.0.iter().position(|(n, _)| n == name)?;
        match self.0.remove(at).1 {
            Json::Null => None,
            v => Some(v),
        }
    }

    pub fn string(&mut self, name: &str) -> Result<Option<String>, String> {
        match self.take(name) {
            None => Ok(None),
            Some(Json::Str(s)) => Ok(Some(s)),
            Some(v) => Err(format!("`{name}` is {}, not a string", v.kind())),
        }
    }

    pub fn boolean(&mut self, name: &str) -> Result<Option<bool>, String> {
        match self.take(name) {
            None => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(b)),
            Some(v) => Err(format!("`{name}` is {}, not true or false", v.kind())),
        }
    }

    /// A number of type `T` (an integer type, or f64), exactly as written.
    pub fn number<T: std::str::FromStr>(&mut self, name: &str) -> Result<Option<T>, String> {
        match self.take(name) {
            None => Ok(None),
            Some(Json::Num(n)) => n
                .parse()
                .map(Some)
                .map_err(|_| format!("`{name}` is {n}, out of range")),
            Some(v) => Err(format!("`{name}` is {}, not a number", v.kind())),
        }
    }

    /// A finite number (JSON has no infinity: a number too large for f64 is out of range).
    pub fn float(&mut self, name: &str) -> Result<Option<f64>, String> {
        match self.number::<f64>(name)? {
            Some(x) if !x.is_finite() => Err(format!("`{name}` is out of range")),
            x => Ok(x),
        }
    }

    pub fn strings(&mut self, name: &str) -> Result<Option<Vec<String>>, String> {
        let items = match self.take(name) {
            None => return Ok(None),
            Some(Json::Arr(items)) => items,
            Some(v) => return Err(format!("`{name}` is {}, not a list", v.kind())),
        };
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Json::Str(s) => out.push(s),
                v => return Err(format!("`{name}` holds {}, not a string", v.kind())),
            }
        }
        Ok(Some(out))
    }

    /// Fails on any member not taken: a name not in `known`, or one given twice.
    pub fn done(self, known: &[&str]) -> Result<(), String> {
        match self.0.first() {
            None => Ok(()),
            Some((name, _)) if known.contains(&name.as_str()) => {
                Err(format!("field `{name}` is given twice"))
            }
            Some((name, _)) => Err(format!(
                "unknown field `{name}` (known: {})",
                known.join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Json {
        parse(text.as_bytes()).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    #[test]
    fn values_nest_and_strings_unescape() {
        assert_eq!(
            ok(r#" {"a": [1, -2.5e3, true, null, {}], "b": "x\"\\\/\n\u00e9\ud83d\ude00"} "#),
            Json::Obj(vec![
                (
                    "a".into(),
                    Json::Arr(vec![
                        Json::Num("1".into()),
                        Json::Num("-2.5e3".into()),
                        Json::Bool(true),
                        Json::Null,
                        Json::Obj(vec![]),
                    ])
                ),
                ("b".into(), Json::Str("x\"\\/\né😀".into())),
            ])
        );
        assert_eq!(ok("[]"), Json::Arr(vec![]));
        assert_eq!(ok("0"), Json::Num("0".into()));
    }

    #[test]
    fn what_json_refuses_is_refused() {
        for bad in [
            "",
            " ",
            "{",
            "[",
            "[1,]",
            "{\"a\":1,}",
            "{a:1}",
            "{\"a\" 1}",
            "01",
            "1.",
            ".5",
            "-",
            "1e",
            "+1",
            "tru",
            "nul",
            "\"abc",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"a\nb\"",
            "[1] 2",
            "{\"a\":1}}",
            "]",
            "\u{1}",
            "[\"\\ud800\\u0041\"]",
        ] {
            assert!(parse(bad.as_bytes()).is_err(), "{bad:?}");
        }
        assert!(parse(b"\"\xff\"").is_err());
    }

    #[test]
    fn depth_is_bounded_without_recursion() {
        let deep = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(deep.as_bytes()).is_ok());
        let deeper = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert!(parse(deeper.as_bytes()).unwrap_err().contains("deeper"));
        // 64 KiB of brackets (the largest request) is refused at once.
        assert!(parse("[".repeat(65536).as_bytes()).is_err());
    }

    #[test]
    fn fields_are_taken_by_name_with_their_types() {
        let mut f = Fields::of(
            ok(r#"{"s":"x","n":42,"b":false,"l":["a"],"z":null,"s2":1}"#),
            "it",
        )
        .unwrap();
        assert_eq!(f.string("s"), Ok(Some("x".into())));
        assert_eq!(f.number::<u32>("n"), Ok(Some(42)));
        assert_eq!(f.boolean("b"), Ok(Some(false)));
        assert_eq!(f.strings("l"), Ok(Some(vec!["a".into()])));
        assert_eq!(f.string("z"), Ok(None), "null is absent");
        assert_eq!(f.string("missing"), Ok(None));
        assert!(f.string("s2").unwrap_err().contains("not a string"));
        assert_eq!(f.done(&[]), Ok(()));
        let mut f = Fields::of(ok(r#"{"n":-1,"m":1,"m":2}"#), "it").unwrap();
        assert!(f.number::<u32>("n").unwrap_err().contains("out of range"));
        assert_eq!(f.number::<u32>("m"), Ok(Some(1)));
        assert_eq!(f.done(&["n", "m"]).unwrap_err(), "field `m` is given twice");
        let f = Fields::of(ok(r#"{"x":1}"#), "it").unwrap();
        assert_eq!(
            f.done(&["n", "m"]).unwrap_err(),
            "unknown field `x` (known: n, m)"
        );
        assert!(
            Fields::of(ok("[]"), "the line")
                .unwrap_err()
                .contains("not an object")
        );
    }
}
