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
//!
//! The file is untrusted input read by PID 1, so this reader must never recurse on the
//! file's depth, and never copy (aliases) or build without counting: nesting is capped at
//! [`MAX_DEPTH`], the values built or copied at [`MAX_VALUES`] and their text at
//! [`MAX_TEXT`], each passed bound an error with its line and column.

use std::collections::HashMap;

/// A position in the file, 1-based as editors show it; `file` says which file: 0 the main
/// config, k the k-th file it includes (see [`set_file`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mark {
    pub line: usize,
    pub col: usize,
    pub file: u32,
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

/// A YAML syntax error, or a bound of the reader passed: message and where.
#[derive(Debug, PartialEq)]
pub struct SyntaxError {
    pub message: String,
    pub mark: Mark,
}

/// Deepest nesting of lists and mappings ginit reads. A real config needs about 6 levels
/// (`programs.web.stdout.rotate.size`); the tree is built without recursion, but dropping,
/// cloning and comparing it recurse, so its depth is bounded here, aliases included.
pub const MAX_DEPTH: usize = 64;

/// Most values (scalars, lists and mappings) a config may hold, each use of an alias counted
/// as a copy of what it names (and each anchor once more, for the copy kept of it). A
/// 10,000-program file holds about 100,000; "billion laughs" (9 levels of 9 aliases) would
/// hold 9^9 and is refused at the alias that passes the bound.
pub const MAX_VALUES: usize = 250_000;

/// Most bytes of scalar text, counted the same way: a long string used through an alias
/// many times costs its length each time.
pub const MAX_TEXT: usize = 4 << 20;

/// Parses one YAML document. An empty file gives `Ok(None)`.
///
/// Events are pulled from libyaml one at a time, so a bound passed stops the parse at once:
/// a file nested 100,000 levels deep costs the first 65 levels, not libyaml's scan of all of
/// it (which is quadratic in flow depth).
#[inline(never)]
pub fn parse(text: &str) -> Result<Option<Node>, SyntaxError> {
    let mut parser = events::Parser::new(text)?;
    let mut builder = Builder::default();
    let mut root = None;
    let mut documents = 0;
    loop {
        match parser.next()? {
            YamlEvent::StreamEnd => break,
            YamlEvent::DocumentStart(mark) => {
                documents += 1;
                if documents > 1 {
                    return Err(SyntaxError {
                        message: "invalid YAML: the file holds more than one YAML document; \
                                  ginit reads one"
                            .into(),
                        mark,
                    });
                }
            }
            YamlEvent::Other => {}
            event => {
                if let Some(node) = builder.event(event)? {
                    root = Some(node);
                }
            }
        }
    }
    Ok(root.filter(|n| !n.is_null()))
}

/// Marks every node of the tree as coming from included file `file` (a walk with a stack of
/// its own: no recursion on the depth of the input).
pub fn set_file(root: &mut Node, file: u32) {
    let mut stack = vec![root];
    while let Some(node) = stack.pop() {
        node.mark.file = file;
        match &mut node.value {
            Value::Scalar { .. } => {}
            Value::Seq(items) => stack.extend(items.iter_mut()),
            Value::Map(pairs) => {
                for (k, v) in pairs.iter_mut() {
                    stack.push(k);
                    stack.push(v);
                }
            }
        }
    }
}

/// Owned copies of libyaml's events.
#[derive(Debug)]
enum YamlEvent {
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
    End(Mark),
    StreamEnd,
    /// Stream start, document end: nothing to build.
    Other,
}

#[allow(unsafe_code)]
mod events {
    //! The only unsafe part: driving libyaml's C-style event parser. libyaml itself keeps
    //! its nesting on heap stacks (no recursion; checked in unsafe-libyaml-norway 0.2.15).
    use super::{Mark, SyntaxError, YamlEvent};
    use std::marker::PhantomData;
    use std::mem::MaybeUninit;
    use unsafe_libyaml_norway as unsafe_yaml;

    fn mark(m: &unsafe_yaml::yaml_mark_t) -> Mark {
        Mark {
            line: m.line as usize + 1,
            col: m.column as usize + 1,
            file: 0,
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

    /// A libyaml parser reading `text`; deleted on drop.
    pub(super) struct Parser<'t> {
        /// Boxed: libyaml keeps pointers into its own struct, which must not move.
        raw: Box<MaybeUninit<unsafe_yaml::yaml_parser_t>>,
        text: PhantomData<&'t str>,
    }

    impl<'t> Parser<'t> {
        pub(super) fn new(text: &'t str) -> Result<Parser<'t>, SyntaxError> {
            let mut raw = Box::new(MaybeUninit::<unsafe_yaml::yaml_parser_t>::uninit());
            // SAFETY: initialize fills the parser (and frees what it took when it fails, so
            // a failed one is never deleted); the input outlives the parser ('t).
            unsafe {
                if unsafe_yaml::yaml_parser_initialize(raw.as_mut_ptr()).fail {
                    return Err(SyntaxError {
                        message: "the YAML parser could not start (out of memory)".into(),
                        mark: Mark::default(),
                    });
                }
                unsafe_yaml::yaml_parser_set_input_string(
                    raw.as_mut_ptr(),
                    text.as_ptr(),
                    text.len() as _,
                );
            }
            Ok(Parser {
                raw,
                text: PhantomData,
            })
        }

        /// The next event, copied out of libyaml.
        pub(super) fn next(&mut self) -> Result<YamlEvent, SyntaxError> {
            let parser = self.raw.as_mut_ptr();
            let mut event = MaybeUninit::<unsafe_yaml::yaml_event_t>::uninit();
            // SAFETY: the parser was initialized in `new`; a successful parse fills `event`,
            // whose strings are copied before it is deleted, exactly once.
            unsafe {
                if unsafe_yaml::yaml_parser_parse(parser, event.as_mut_ptr()).fail {
                    let p: &unsafe_yaml::yaml_parser_t = &*parser; // its error fields, through Deref
                    let problem =
                        c_string(p.problem.cast()).unwrap_or_else(|| "invalid YAML".into());
                    let message = match c_string(p.context.cast()) {
                        Some(context) => format!("invalid YAML: {problem} {context}"),
                        None => format!("invalid YAML: {problem}"),
                    };
                    return Err(SyntaxError {
                        message,
                        mark: mark(&p.problem_mark),
                    });
                }
                let mut event = event.assume_init();
                let at = mark(&event.start_mark);
                let converted = match event.type_ {
                    unsafe_yaml::YAML_DOCUMENT_START_EVENT => YamlEvent::DocumentStart(at),
                    unsafe_yaml::YAML_SCALAR_EVENT => {
                        let s = event.data.scalar;
                        let text = if s.value.is_null() || s.length == 0 {
                            String::new()
                        } else {
                            let bytes = std::slice::from_raw_parts(s.value, s.length as usize);
                            String::from_utf8_lossy(bytes).into_owned()
                        };
                        let tag = c_string(s.tag);
                        YamlEvent::Scalar {
                            text,
                            plain: s.style == unsafe_yaml::YAML_PLAIN_SCALAR_STYLE
                                && tag.as_deref() != Some("tag:yaml.org,2002:str"),
                            anchor: c_string(s.anchor),
                            mark: at,
                        }
                    }
                    unsafe_yaml::YAML_ALIAS_EVENT => YamlEvent::Alias {
                        anchor: c_string(event.data.alias.anchor).unwrap_or_default(),
                        mark: at,
                    },
                    unsafe_yaml::YAML_SEQUENCE_START_EVENT => YamlEvent::SequenceStart {
                        anchor: c_string(event.data.sequence_start.anchor),
                        mark: at,
                    },
                    unsafe_yaml::YAML_MAPPING_START_EVENT => YamlEvent::MappingStart {
                        anchor: c_string(event.data.mapping_start.anchor),
                        mark: at,
                    },
                    unsafe_yaml::YAML_SEQUENCE_END_EVENT | unsafe_yaml::YAML_MAPPING_END_EVENT => {
                        YamlEvent::End(at)
                    }
                    // After the end (or an error) libyaml hands out empty events: treat them
                    // as the end too, so no caller can loop on them.
                    unsafe_yaml::YAML_STREAM_END_EVENT | unsafe_yaml::YAML_NO_EVENT => {
                        YamlEvent::StreamEnd
                    }
                    _ => YamlEvent::Other,
                };
                unsafe_yaml::yaml_event_delete(&mut event);
                Ok(converted)
            }
        }
    }

    impl Drop for Parser<'_> {
        fn drop(&mut self) {
            // SAFETY: initialized in `new` (a Parser exists only then), deleted once here.
            unsafe { unsafe_yaml::yaml_parser_delete(self.raw.as_mut_ptr()) }
        }
    }
}

/// What a value costs: values and bytes of text in it (itself included), and its height
/// (lists and mappings on the longest path down; 0 for a scalar).
#[derive(Clone, Copy, Debug, Default)]
struct Weight {
    values: usize,
    text: usize,
    height: usize,
}

/// A list or mapping whose end has not been read yet.
struct Frame {
    items: Partial,
    anchor: Option<String>,
    mark: Mark,
    weight: Weight,
}

enum Partial {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(Node, Node)>,
        /// A key read, waiting for its value.
        key: Option<Node>,
        /// Entries brought in by merge keys (`<<`), in order; explicit keys win over them.
        merged: Vec<(Node, Node)>,
    },
}

/// Builds the tree from events with an explicit stack: nothing here recurses on the depth
/// of the file.
#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<String, (Node, Weight)>,
    /// Spent so far: values and text built or copied.
    spent: Weight,
}

impl Builder {
    /// Takes one event; returns the root once it is complete.
    // Out of line, as is `parse`: inlined into validation they cost 1 KiB more binary.
    #[inline(never)]
    fn event(&mut self, event: YamlEvent) -> Result<Option<Node>, SyntaxError> {
        let (node, weight, anchor) = match event {
            YamlEvent::Scalar {
                text,
                plain,
                anchor,
                mark,
            } => {
                let weight = Weight {
                    values: 1,
                    text: text.len(),
                    height: 0,
                };
                spend(&mut self.spent, weight, mark, None)?;
                let node = Node {
                    value: Value::Scalar { text, plain },
                    mark,
                };
                (node, weight, anchor)
            }
            YamlEvent::Alias { anchor, mark } => {
                let Some((found, weight)) = self.anchors.get(&anchor) else {
                    return Err(SyntaxError {
                        message: format!("invalid YAML: unknown anchor `*{anchor}`"),
                        mark,
                    });
                };
                if self.stack.len() + weight.height > MAX_DEPTH {
                    return Err(too_deep(mark));
                }
                // Counted before it is copied: the copy is what the bound prevents.
                spend(&mut self.spent, *weight, mark, Some(&anchor))?;
                let node = Node {
                    value: found.value.clone(),
                    mark,
                };
                (node, *weight, None)
            }
            YamlEvent::SequenceStart { anchor, mark } => {
                self.open(Partial::Seq(Vec::new()), anchor, mark)?;
                return Ok(None);
            }
            YamlEvent::MappingStart { anchor, mark } => {
                let map = Partial::Map {
                    entries: Vec::new(),
                    key: None,
                    merged: Vec::new(),
                };
                self.open(map, anchor, mark)?;
                return Ok(None);
            }
            YamlEvent::End(mark) => {
                let Some(frame) = self.stack.pop() else {
                    return Err(SyntaxError {
                        message: "invalid YAML: unexpected end of a list or mapping".into(),
                        mark,
                    });
                };
                let value = match frame.items {
                    Partial::Seq(items) => Value::Seq(items),
                    Partial::Map {
                        mut entries,
                        merged,
                        ..
                    } => {
                        add_merged(&mut entries, merged);
                        Value::Map(entries)
                    }
                };
                let node = Node {
                    value,
                    mark: frame.mark,
                };
                (node, frame.weight, frame.anchor)
            }
            YamlEvent::DocumentStart(_) | YamlEvent::StreamEnd | YamlEvent::Other => {
                return Ok(None);
            }
        };
        if let Some(anchor) = anchor {
            // The copy kept for later aliases costs what the value does.
            spend(&mut self.spent, weight, node.mark, None)?;
            self.anchors.insert(anchor, (node.clone(), weight));
        }
        self.deliver(node, weight)
    }

    /// Starts a list or mapping, one level deeper.
    fn open(
        &mut self,
        items: Partial,
        anchor: Option<String>,
        mark: Mark,
    ) -> Result<(), SyntaxError> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(too_deep(mark));
        }
        let weight = Weight {
            values: 1,
            text: 0,
            height: 1,
        };
        spend(&mut self.spent, weight, mark, None)?;
        self.stack.push(Frame {
            items,
            anchor,
            mark,
            weight,
        });
        Ok(())
    }

    /// Hands a complete value to the list or mapping being read, or returns it as the root.
    fn deliver(&mut self, node: Node, weight: Weight) -> Result<Option<Node>, SyntaxError> {
        let Some(top) = self.stack.last_mut() else {
            return Ok(Some(node));
        };
        top.weight.values = top.weight.values.saturating_add(weight.values);
        top.weight.text = top.weight.text.saturating_add(weight.text);
        top.weight.height = top.weight.height.max(weight.height + 1);
        match &mut top.items {
            Partial::Seq(items) => items.push(node),
            Partial::Map {
                entries,
                key,
                merged,
            } => match key.take() {
                None => *key = Some(node),
                Some(k) if is_merge_key(&k) => merge_into(merged, node)?,
                Some(k) => entries.push((k, node)),
            },
        }
        Ok(None)
    }
}

/// Counts `weight` into `spent` and checks the bounds; `alias` names the alias being expanded.
fn spend(
    spent: &mut Weight,
    weight: Weight,
    mark: Mark,
    alias: Option<&str>,
) -> Result<(), SyntaxError> {
    spent.values = spent.values.saturating_add(weight.values);
    spent.text = spent.text.saturating_add(weight.text);
    // Static texts: the numbers are those of MAX_VALUES and MAX_TEXT (a test checks).
    let message = if spent.values > MAX_VALUES {
        "the config holds more than 250000 values (lists, mappings and scalars; each use of \
         an alias counts as a copy of what it names)"
    } else if spent.text > MAX_TEXT {
        "the config holds more than 4 MiB of text (each use of an alias counts as a copy of \
         what it names)"
    } else {
        return Ok(());
    };
    let message = match alias {
        Some(name) => format!("at the alias `*{name}`: {message}"),
        None => String::from(message),
    };
    Err(SyntaxError { message, mark })
}

fn too_deep(mark: Mark) -> SyntaxError {
    SyntaxError {
        message: "the config is nested more than 64 levels deep (lists and mappings, aliases \
                  included); ginit reads at most 64"
            .into(),
        mark,
    }
}

fn is_merge_key(key: &Node) -> bool {
    matches!(&key.value, Value::Scalar { text, plain: true } if text == "<<")
}

/// Appends a merge key's value (a mapping or a list of mappings) to `merged`. The work of
/// merge keys is bounded with the values: what is merged was counted when it was read (or
/// copied by an alias), and it is moved here and resolved in one linear pass at the end of
/// its mapping.
fn merge_into(merged: &mut Vec<(Node, Node)>, value: Node) -> Result<(), SyntaxError> {
    let bad = SyntaxError {
        message: "a merge key (`<<`) takes a mapping or a list of mappings".into(),
        mark: value.mark,
    };
    match value.value {
        Value::Map(entries) => merged.extend(entries),
        Value::Seq(items) => {
            if !items.iter().all(|n| matches!(n.value, Value::Map(_))) {
                return Err(bad);
            }
            for item in items {
                if let Value::Map(entries) = item.value {
                    merged.extend(entries);
                }
            }
        }
        _ => return Err(bad),
    }
    Ok(())
}

/// Adds merged entries whose key is not given explicitly; among merged ones the first wins,
/// as the YAML merge-key spec says. Linear: which to keep is decided with a set of keys
/// borrowed from both lists, then they are moved.
fn add_merged(entries: &mut Vec<(Node, Node)>, merged: Vec<(Node, Node)>) {
    if merged.is_empty() {
        return;
    }
    let keep: Vec<bool> = {
        let mut seen = super::Names::new(entries.len() + merged.len());
        // Keys that are not scalars compare equal to each other (as `scalar()` returns None).
        let mut other_seen = false;
        for (i, (k, _)) in entries.iter().enumerate() {
            match k.scalar() {
                Some(s) => {
                    seen.insert(s, i);
                }
                None => other_seen = true,
            }
        }
        merged
            .iter()
            .enumerate()
            .map(|(i, (k, _))| match k.scalar() {
                Some(s) => seen.insert(s, i).is_none(),
                None => !std::mem::replace(&mut other_seen, true),
            })
            .collect()
    };
    entries.extend(
        merged
            .into_iter()
            .zip(keep)
            .filter_map(|(entry, keep)| keep.then_some(entry)),
    );
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
        assert_eq!((root.mark.line, root.mark.col), (1, 1));
        let c = get(get(&root, "b"), "c");
        assert_eq!((c.mark.line, c.mark.col), (3, 6));
        let Value::Seq(items) = &c.value else {
            panic!()
        };
        assert_eq!((items[1].mark.line, items[1].mark.col), (3, 10));
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

    fn flow(depth: usize) -> String {
        format!("a: {}{}\n", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn messages_name_the_bounds() {
        let at = Mark::default();
        assert!(
            too_deep(at)
                .message
                .contains(&format!("{MAX_DEPTH} levels"))
        );
        let mut spent = Weight::default();
        let big = Weight {
            values: MAX_VALUES + 1,
            ..Weight::default()
        };
        let e = spend(&mut spent, big, at, None).unwrap_err();
        assert!(
            e.message
                .contains(&format!("more than {MAX_VALUES} values"))
        );
        let mut spent = Weight::default();
        let long = Weight {
            text: MAX_TEXT + 1,
            ..Weight::default()
        };
        let e = spend(&mut spent, long, at, Some("a")).unwrap_err();
        assert!(
            e.message
                .contains(&format!("more than {} MiB", MAX_TEXT >> 20))
        );
        assert!(e.message.starts_with("at the alias `*a`"));
    }

    #[test]
    fn nesting_is_capped_at_max_depth() {
        // The root mapping is one level: 63 lists inside it make 64.
        let root = parse(&flow(MAX_DEPTH - 1)).unwrap().unwrap();
        let mut node = get(&root, "a");
        let mut depth = 1;
        while let Value::Seq(items) = &node.value {
            depth += 1;
            match items.first() {
                Some(n) => node = n,
                None => break,
            }
        }
        assert_eq!(depth, MAX_DEPTH);
        let err = parse(&flow(MAX_DEPTH)).unwrap_err();
        assert!(
            err.message.contains("nested more than 64 levels"),
            "{err:?}"
        );
        // At the first list too deep: column 4 is the first `[`.
        assert_eq!(
            err.mark,
            Mark {
                line: 1,
                col: 4 + MAX_DEPTH - 1,
                file: 0,
            }
        );
        for deep in [flow(100_000), format!("a:\n  {}x\n", "- ".repeat(100_000))] {
            let err = parse(&deep).unwrap_err();
            assert!(
                err.message.contains("nested more than 64 levels"),
                "{err:?}"
            );
        }
    }

    #[test]
    fn aliases_cannot_nest_deeper_than_the_cap() {
        let inner = format!("{}x{}", "[".repeat(40), "]".repeat(40));
        let ok = format!("a: &a {inner}\nb: {}*a{}\n", "[".repeat(23), "]".repeat(23));
        assert!(parse(&ok).is_ok());
        let deep = format!("a: &a {inner}\nb: {}*a{}\n", "[".repeat(24), "]".repeat(24));
        let err = parse(&deep).unwrap_err();
        assert!(
            err.message.contains("nested more than 64 levels"),
            "{err:?}"
        );
        assert_eq!(err.mark.line, 2);
    }

    #[test]
    fn alias_expansion_is_bounded() {
        let mut laughs = String::from("a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for (prev, name) in "abcdefgh".chars().zip("bcdefghi".chars()) {
            let uses = vec![format!("*{prev}"); 9].join(", ");
            laughs.push_str(&format!("{name}: &{name} [{uses}]\n"));
        }
        let err = parse(&laughs).unwrap_err();
        assert!(
            err.message.contains("at the alias `*") && err.message.contains("250000 values"),
            "{err:?}"
        );
        assert!(err.mark.line > 1, "{err:?}");
        // A long string used through an alias many times: the text bound.
        let long = "x".repeat(600_000);
        let text = format!("a: &a \"{long}\"\nb: [*a, *a, *a, *a, *a, *a, *a]\n");
        let err = parse(&text).unwrap_err();
        assert!(err.message.contains("more than 4 MiB of text"), "{err:?}");
        // Ordinary use is untouched.
        let ok = "base: &b {x: 1}\nl: [*b, *b, *b]\n";
        assert_eq!(parse(ok).unwrap().unwrap().kind(), "a mapping");
    }

    #[test]
    fn values_are_bounded_without_aliases_too() {
        let many = format!("a: [{}]\n", vec!["1"; MAX_VALUES].join(","));
        let err = parse(&many).unwrap_err();
        assert!(
            err.message.contains("holds more than 250000 values"),
            "{err:?}"
        );
        // Root mapping, key, list: three values besides the items.
        let fits = format!("a: [{}]\n", vec!["1"; MAX_VALUES - 3].join(","));
        assert!(parse(&fits).is_ok());
    }

    #[test]
    fn merge_keys_keep_their_meaning_at_scale() {
        // Explicit keys win; among merged mappings the first wins; linear for many keys.
        let base: Vec<String> = (0..10_000).map(|i| format!("k{i}: {i}")).collect();
        let text = format!(
            "a: &a {{{}}}\nb: &b {{k0: b, extra: b}}\nc:\n  <<: [*b, *a]\n  k1: own\n",
            base.join(", ")
        );
        let root = parse(&text).unwrap().unwrap();
        let c = get(&root, "c");
        assert_eq!(map(c).len(), 10_001);
        assert_eq!(get(c, "k0").scalar(), Some("b"));
        assert_eq!(get(c, "k1").scalar(), Some("own"));
        assert_eq!(get(c, "k2").scalar(), Some("2"));
        assert_eq!(get(c, "extra").scalar(), Some("b"));
        let err = parse("a:\n  <<: [x]\n").unwrap_err();
        assert!(err.message.contains("merge key"), "{err:?}");
    }
}
