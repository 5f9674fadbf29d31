//! YAML text -> a tree of [`Node`]s that remember their line and column.
//!
//! serde's data model forgets where a value stood, and a derived `Deserialize` stops at the
//! first error; ginit reports every config error at once with `file:line:col` and the key path.
//! So the config is read as events from libyaml (the `unsafe-libyaml-norway` crate, the very
//! parser inside serde_norway) into this tree, and [`super::schema`] validates the tree.
//!
//! Supported: block and flow style, every scalar style, anchors and aliases, merge keys
//! (`<<: *defaults`). One document per file. Tags are ignored except `!!str`, which makes a
//! scalar a string (as quoting does). All `unsafe` is in [`events`].
#![allow(unsafe_code)]

use std::collections::HashMap;

/// A position in the file, 1-based as editors show it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    pub line: usize,
    pub col: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar. `plain` is false for quoted, block or `!!str` scalars: those are always
    /// strings, never numbers, booleans or null.
    Scalar {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub value: Value,
    pub mark: Mark,
}

impl Node {
    /// `~`, `null`, `Null`, `NULL` or nothing at all, unquoted.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, plain: true }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The text of a scalar.
    pub fn scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// What kind of YAML value this is, for messages: "a list", "a mapping", "a string".
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
            _ if self.is_null() => "empty",
            Value::Scalar { .. } => "a scalar",
        }
    }
}

/// A YAML syntax error: message and where.
#[derive(Debug, PartialEq)]
pub struct SyntaxError {
    pub message: String,
    pub mark: Mark,
}

/// Parses one YAML document. An empty file gives `Ok(None)`.
pub fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let events = events::read(text)?;
    Builder {
        events: events.into_iter().peekable(),
        anchors: HashMap::new(),
    }
    .document()
}

/// Owned copies of libyaml's events.
#[derive(Debug)]
enum Event {
    DocumentStart(Mark),
    Scalar {
        text: String,
        plain: bool,
        anchor: Option<String>,
        mark: Mark,
    },
    Alias {
        anchor: String,
        mark: Mark,
    },
    SequenceStart {
        anchor: Option<String>,
        mark: Mark,
    },
    MappingStart {
        anchor: Option<String>,
        mark: Mark,
    },
    /// End of a sequence or mapping.
    End,
    /// Stream start/end, document end: nothing to build.
    Other,
}

mod events {
    //! The only unsafe part: driving libyaml's C-style event parser.
    use super::{Event, Mark, SyntaxError};
    use std::mem::MaybeUninit;
    use unsafe_libyaml_norway as unsafe_yaml;

    fn mark(m: &unsafe_yaml::yaml_mark_t) -> Mark {
        Mark {
            line: m.line as usize + 1,
            col: m.column as usize + 1,
        }
    }

    /// A NUL-terminated string owned by libyaml, copied (None for a null pointer).
    ///
    /// # Safety
    /// `p` must be null or point to a NUL-terminated string.
    unsafe fn c_string(p: *const u8) -> Option<String> {
        if p.is_null() {
            return None;
        }
        // SAFETY: per the function's contract.
        let s = unsafe { std::ffi::CStr::from_ptr(p.cast()) };
        Some(s.to_string_lossy().into_owned())
    }

    pub(super) fn read(text: &str) -> Result<Vec<Event>, SyntaxError> {
        let mut parser = MaybeUninit::<unsafe_yaml::yaml_parser_t>::uninit();
        // SAFETY: initialize fills the parser; it is deleted exactly once below; the input
        // string outlives every call that reads it; each event is deleted after being copied.
        unsafe {
            if unsafe_yaml::yaml_parser_initialize(parser.as_mut_ptr()).fail {
                return Err(SyntaxError {
                    message: "the YAML parser could not start (out of memory)".into(),
                    mark: Mark::default(),
                });
            }
            let parser = parser.as_mut_ptr();
            unsafe_yaml::yaml_parser_set_input_string(parser, text.as_ptr(), text.len() as _);
            let mut out = Vec::new();
            let result = loop {
                let mut event = MaybeUninit::<unsafe_yaml::yaml_event_t>::uninit();
                if unsafe_yaml::yaml_parser_parse(parser, event.as_mut_ptr()).fail {
                    let p: &unsafe_yaml::yaml_parser_t = &*parser; // its error fields, through Deref
                    let problem =
                        c_string(p.problem.cast()).unwrap_or_else(|| "invalid YAML".into());
                    let message = match c_string(p.context.cast()) {
                        Some(context) => format!("{problem} {context}"),
                        None => problem,
                    };
                    break Err(SyntaxError {
                        message,
                        mark: mark(&p.problem_mark),
                    });
                }
                let mut event = event.assume_init();
                let at = mark(&event.start_mark);
                let converted = match event.type_ {
                    unsafe_yaml::YAML_DOCUMENT_START_EVENT => Event::DocumentStart(at),
                    unsafe_yaml::YAML_SCALAR_EVENT => {
                        let s = event.data.scalar;
                        let bytes = std::slice::from_raw_parts(s.value, s.length as usize);
                        let tag = c_string(s.tag);
                        Event::Scalar {
                            text: String::from_utf8_lossy(bytes).into_owned(),
                            plain: s.style == unsafe_yaml::YAML_PLAIN_SCALAR_STYLE
                                && tag.as_deref() != Some("tag:yaml.org,2002:str"),
                            anchor: c_string(s.anchor),
                            mark: at,
                        }
                    }
                    unsafe_yaml::YAML_ALIAS_EVENT => Event::Alias {
                        anchor: c_string(event.data.alias.anchor).unwrap_or_default(),
                        mark: at,
                    },
                    unsafe_yaml::YAML_SEQUENCE_START_EVENT => Event::SequenceStart {
                        anchor: c_string(event.data.sequence_start.anchor),
                        mark: at,
                    },
                    unsafe_yaml::YAML_MAPPING_START_EVENT => Event::MappingStart {
                        anchor: c_string(event.data.mapping_start.anchor),
                        mark: at,
                    },
                    unsafe_yaml::YAML_SEQUENCE_END_EVENT | unsafe_yaml::YAML_MAPPING_END_EVENT => {
                        Event::End
                    }
                    _ => Event::Other,
                };
                let done = event.type_ == unsafe_yaml::YAML_STREAM_END_EVENT;
                unsafe_yaml::yaml_event_delete(&mut event);
                out.push(converted);
                if done {
                    break Ok(out);
                }
            };
            unsafe_yaml::yaml_parser_delete(parser);
            result
        }
    }
}

struct Builder {
    events: std::iter::Peekable<std::vec::IntoIter<Event>>,
    anchors: HashMap<String, Node>,
}

impl Builder {
    fn document(mut self) -> Result<Option<Node>, SyntaxError> {
        let mut root = None;
        while let Some(event) = self.events.next() {
            if let Event::DocumentStart(mark) = event {
                if root.is_some() {
                    return Err(SyntaxError {
                        message: "the file holds more than one YAML document; ginit reads one"
                            .into(),
                        mark,
                    });
                }
                root = Some(self.node()?);
            }
        }
        Ok(root.filter(|n| !n.is_null()))
    }

    fn node(&mut self) -> Result<Node, SyntaxError> {
        let bad = || SyntaxError {
            message: "unexpected end of the YAML document".into(),
            mark: Mark::default(),
        };
        let (node, anchor) = match self.events.next().ok_or_else(bad)? {
            Event::Scalar {
                text,
                plain,
                anchor,
                mark,
            } => (
                Node {
                    value: Value::Scalar { text, plain },
                    mark,
                },
                anchor,
            ),
            Event::Alias { anchor, mark } => {
                let found = self.anchors.get(&anchor).cloned().ok_or(SyntaxError {
                    message: format!("unknown anchor `*{anchor}`"),
                    mark,
                })?;
                return Ok(Node { mark, ..found });
            }
            Event::SequenceStart { anchor, mark } => {
                let mut items = Vec::new();
                while !matches!(self.events.peek(), Some(Event::End) | None) {
                    items.push(self.node()?);
                }
                self.events.next();
                (
                    Node {
                        value: Value::Seq(items),
                        mark,
                    },
                    anchor,
                )
            }
            Event::MappingStart { anchor, mark } => {
                let mut entries: Vec<(Node, Node)> = Vec::new();
                let mut merged: Vec<(Node, Node)> = Vec::new();
                while !matches!(self.events.peek(), Some(Event::End) | None) {
                    let key = self.node()?;
                    let value = self.node()?;
                    if key.value
                        == (Value::Scalar {
                            text: "<<".into(),
                            plain: true,
                        })
                    {
                        merge_into(&mut merged, value)?;
                    } else {
                        entries.push((key, value));
                    }
                }
                self.events.next();
                // Explicit keys win over merged ones.
                for (k, v) in merged {
                    if !entries.iter().any(|(e, _)| e.scalar() == k.scalar()) {
                        entries.push((k, v));
                    }
                }
                (
                    Node {
                        value: Value::Map(entries),
                        mark,
                    },
                    anchor,
                )
            }
            _ => return Err(bad()),
        };
        if let Some(anchor) = anchor {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }
}

/// Applies a merge key's value (a mapping or a list of mappings) to `merged`; earlier
/// mappings in a list win, as the YAML merge-key spec says.
fn merge_into(merged: &mut Vec<(Node, Node)>, value: Node) -> Result<(), SyntaxError> {
    let mark = value.mark;
    let maps = match value.value {
        Value::Map(entries) => vec![entries],
        Value::Seq(items) => items
            .into_iter()
            .map(|n| match n.value {
                Value::Map(entries) => Ok(entries),
                _ => Err(()),
            })
            .collect::<Result<_, _>>()
            .map_err(|()| SyntaxError {
                message: "a merge key (`<<`) takes a mapping or a list of mappings".into(),
                mark,
            })?,
        _ => {
            return Err(SyntaxError {
                message: "a merge key (`<<`) takes a mapping or a list of mappings".into(),
                mark,
            });
        }
    };
    for entries in maps {
        for (k, v) in entries {
            if !merged.iter().any(|(m, _)| m.scalar() == k.scalar()) {
                merged.push((k, v));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(n: &Node) -> &Vec<(Node, Node)> {
        match &n.value {
            Value::Map(m) => m,
            other => panic!("not a map: {other:?}"),
        }
    }

    fn get<'a>(n: &'a Node, key: &str) -> &'a Node {
        &map(n)
            .iter()
            .find(|(k, _)| k.scalar() == Some(key))
            .unwrap()
            .1
    }

    #[test]
    fn positions_are_one_based() {
        let root = parse("a: 1\nb:\n  c: [x, 'y']\n").unwrap().unwrap();
        assert_eq!(root.mark, Mark { line: 1, col: 1 });
        let c = get(get(&root, "b"), "c");
        assert_eq!(c.mark, Mark { line: 3, col: 6 });
        let Value::Seq(items) = &c.value else {
            panic!()
        };
        assert_eq!(items[1].mark, Mark { line: 3, col: 10 });
        assert_eq!(
            items[1].value,
            Value::Scalar {
                text: "y".into(),
                plain: false
            }
        );
        assert_eq!(
            items[0].value,
            Value::Scalar {
                text: "x".into(),
                plain: true
            }
        );
    }

    #[test]
    fn empty_documents() {
        assert_eq!(parse(""), Ok(None));
        assert_eq!(parse("# only a comment\n"), Ok(None));
        assert_eq!(parse("~\n"), Ok(None));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.mark.line >= 1, "{err:?}");
        assert!(!err.message.is_empty());
        let err = parse("a: 1\n  b: 2\n").unwrap_err();
        assert_eq!(err.mark.line, 2, "{err:?}");
        let err = parse("a: 1\n---\nb: 2\n").unwrap_err();
        assert!(err.message.contains("more than one"), "{err:?}");
        let err = parse("a: *nope\n").unwrap_err();
        assert!(err.message.contains("nope"), "{err:?}");
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let text = "base: &b {restart: always, stop: {timeout: 5s}}\n\
                    web:\n  <<: *b\n  restart: never\n";
        let root = parse(text).unwrap().unwrap();
        let web = get(&root, "web");
        assert_eq!(get(web, "restart").scalar(), Some("never"));
        assert_eq!(get(get(web, "stop"), "timeout").scalar(), Some("5s"));
        let root = parse("a: &x 1\nb: *x\n").unwrap().unwrap();
        assert_eq!(get(&root, "b").scalar(), Some("1"));
        assert_eq!(get(&root, "b").mark.line, 2);
    }

    #[test]
    fn quoting_and_str_tags_make_strings() {
        let root = parse("a: \"1\"\nb: !!str 2\nc: |\n  text\n")
            .unwrap()
            .unwrap();
        for key in ["a", "b", "c"] {
            assert!(
                matches!(get(&root, key).value, Value::Scalar { plain: false, .. }),
                "{key}"
            );
        }
    }
}
