//! A small spanned YAML tree over `saphyr-parser`'s event stream: scalars
//! (with their style, so quoted text is always a string), sequences and
//! mappings, each with the line and column it starts at. The scenario
//! decoder works on this tree so every error it reports has a position.
//!
//! Deliberately refused, each with a position: aliases (no billion laughs,
//! no hidden sharing), tags other than `!json`, more than one document,
//! duplicate mapping keys, non-scalar keys and nesting deeper than
//! [`MAX_DEPTH`].

use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Deepest nesting accepted (mappings and sequences).
pub const MAX_DEPTH: usize = 64;

/// Where a node starts (1-based line and column, in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pos {
    /// Line, 1-based.
    pub line: usize,
    /// Column, 1-based.
    pub column: usize,
}

impl Pos {
    fn of(span: &Span) -> Self {
        Self {
            line: span.start.line().max(1),
            column: span.start.col() + 1,
        }
    }
}

/// A node and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// What it is.
    pub kind: Kind,
    /// Where it starts.
    pub pos: Pos,
}

/// The three kinds of node.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// A scalar: its text, whether it was plain (unquoted, so subject to
    /// typing), and its tag (only `!json` is accepted).
    Scalar {
        /// The text.
        text: String,
        /// Plain (unquoted, not a block scalar).
        plain: bool,
        /// Tagged `!json`.
        json_tag: bool,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order (keys are scalars, unique).
    Map(Vec<(Node, Node)>),
}

/// A plain scalar's type under the YAML 1.2 core schema.
#[derive(Debug, Clone, PartialEq)]
pub enum Typed {
    /// `null`, `Null`, `NULL`, `~` or nothing.
    Null,
    /// `true`/`false` (also capitalised or upper case).
    Bool(bool),
    /// An integer (decimal, `0o` octal, `0x` hex) that fits an i64 or u64.
    Int(serde_json::Number),
    /// An integer too large for 64 bits.
    BigInt,
    /// A float (finite).
    Float(f64),
    /// `.inf`, `.nan` and friends: not representable in JSON.
    NonFinite,
    /// Anything else: a string.
    Str,
}

/// Types a plain scalar (YAML 1.2 core schema).
pub fn resolve(text: &str) -> Typed {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Typed::Null,
        "true" | "True" | "TRUE" => return Typed::Bool(true),
        "false" | "False" | "FALSE" => return Typed::Bool(false),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF" | ".nan"
        | ".NaN" | ".NAN" => return Typed::NonFinite,
        _ => {}
    }
    let (negative, digits) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return decimal(negative, digits);
    }
    if text.len() > 2 && (text.starts_with("0o") || text.starts_with("0x")) {
        let radix = if text.starts_with("0o") { 8 } else { 16 };
        let body = &text[2..];
        if body.chars().all(|c| c.is_digit(radix)) {
            return match u64::from_str_radix(body, radix) {
                Ok(n) => Typed::Int(n.into()),
                Err(_) => Typed::BigInt,
            };
        }
        return Typed::Str;
    }
    if is_float(digits) {
        return match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Typed::Float(f),
            _ => Typed::NonFinite,
        };
    }
    Typed::Str
}

fn decimal(negative: bool, digits: &str) -> Typed {
    if negative {
        match format!("-{digits}").parse::<i64>() {
            Ok(n) => Typed::Int(n.into()),
            Err(_) => Typed::BigInt,
        }
    } else {
        match digits.parse::<u64>() {
            Ok(n) => Typed::Int(n.into()),
            Err(_) => Typed::BigInt,
        }
    }
}

/// `( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )?`
fn is_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    let int = digits(&mut i);
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac = digits(&mut i);
        if int == 0 && frac == 0 {
            return false;
        }
    } else if int == 0 {
        return false;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// A YAML error and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// Where.
    pub pos: Pos,
    /// What.
    pub message: String,
}

fn err(pos: Pos, message: impl Into<String>) -> YamlError {
    YamlError {
        pos,
        message: message.into(),
    }
}

/// A container being built.
enum Open {
    Seq(Pos, Vec<Node>),
    /// Entries so far and a key waiting for its value.
    Map(Pos, Vec<(Node, Node)>, Option<Node>),
}

/// `pos`, or the end of the last line when `pos` lies past it: the scanner
/// reports errors found at the end of input one line past the end, and puts
/// the empty document of a lone `---` there too (both fuzz findings); an
/// error must name a place in the file. Line breaks are
/// YAML's: `\n`, `\r\n` and a lone `\r`; a final break opens no line.
pub fn inside(text: &str, pos: Pos) -> Pos {
    let mut lines = 1;
    let mut last_len = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let brk = match c {
            '\n' => true,
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                true
            }
            _ => false,
        };
        if brk {
            if chars.peek().is_some() {
                lines += 1;
                last_len = 0;
            }
        } else {
            last_len += 1;
        }
    }
    if pos.line > lines || (pos.line == lines && pos.column > last_len + 1) {
        Pos {
            line: lines,
            column: last_len + 1,
        }
    } else {
        pos
    }
}

/// Parses `text` into one document's root node (`None`: an empty stream).
pub fn load(text: &str) -> Result<Option<Node>, YamlError> {
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0usize;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| {
            err(
                inside(
                    text,
                    Pos {
                        line: e.marker().line().max(1),
                        column: e.marker().col() + 1,
                    },
                ),
                format!("invalid YAML: {}", e.info()),
            )
        })?;
        let pos = Pos::of(&span);
        let node = match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(err(
                        pos,
                        "a scenario file holds one YAML document; found a second",
                    ));
                }
                continue;
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => continue,
            Event::Alias(_) => {
                return Err(err(
                    pos,
                    "aliases (`*name`) are not supported; write the value out",
                ));
            }
            Event::Scalar(text, style, _anchor, tag) => {
                let json_tag = match tag {
                    None => false,
                    Some(tag) if tag.handle == "!" && tag.suffix == "json" => true,
                    Some(tag) => {
                        let shown = if tag.handle == "tag:yaml.org,2002:" {
                            format!("!!{}", tag.suffix)
                        } else {
                            format!("{}{}", tag.handle, tag.suffix)
                        };
                        return Err(err(
                            pos,
                            format!(
                                "tag `{shown}` is not supported (only `!json` on a query value); \
                                 quote the value to make it a string"
                            ),
                        ));
                    }
                };
                Node {
                    kind: Kind::Scalar {
                        text: text.into_owned(),
                        plain: style == ScalarStyle::Plain,
                        json_tag,
                    },
                    pos,
                }
            }
            Event::SequenceStart(_, ref tag) | Event::MappingStart(_, ref tag) => {
                if tag.is_some() {
                    return Err(err(pos, "tags are not supported on mappings or sequences"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(err(pos, format!("nested more than {MAX_DEPTH} levels deep")));
                }
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Open::Seq(pos, Vec::new())
                } else {
                    Open::Map(pos, Vec::new(), None)
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Open::Seq(pos, items)) => Node {
                    kind: Kind::Seq(items),
                    pos,
                },
                Some(Open::Map(pos, entries, _)) => Node {
                    kind: Kind::Map(entries),
                    pos,
                },
                None => return Err(err(pos, "invalid YAML: unbalanced end of a collection")),
            },
        };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Open::Seq(_, items)) => items.push(node),
            Some(Open::Map(_, entries, pending)) => match pending.take() {
                Some(key) => entries.push((key, node)),
                None => {
                    let key_text = match &node.kind {
                        Kind::Scalar { text, .. } => text,
                        _ => {
                            return Err(err(node.pos, "mapping keys must be plain or quoted text"));
                        }
                    };
                    if let Some((first, _)) = entries.iter().find(|(k, _)| scalar_text(k) == Some(key_text)) {
                        return Err(err(
                            node.pos,
                            format!(
                                "duplicate key `{key_text}` (first at line {}, column {})",
                                first.pos.line, first.pos.column
                            ),
                        ));
                    }
                    *pending = Some(node);
                }
            },
        }
    }
    Ok(root)
}

/// A scalar node's text.
pub fn scalar_text(node: &Node) -> Option<&str> {
    match &node.kind {
        Kind::Scalar { text, .. } => Some(text),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_schema_typing() {
        assert_eq!(resolve("201"), Typed::Int(201u64.into()));
        assert_eq!(resolve("-3"), Typed::Int((-3i64).into()));
        assert_eq!(resolve("0x1F"), Typed::Int(31u64.into()));
        assert_eq!(resolve("0o17"), Typed::Int(15u64.into()));
        assert_eq!(resolve("1.5"), Typed::Float(1.5));
        assert_eq!(resolve("1e3"), Typed::Float(1000.0));
        assert_eq!(resolve(".5"), Typed::Float(0.5));
        assert_eq!(resolve("1."), Typed::Float(1.0));
        assert_eq!(resolve("."), Typed::Str);
        assert_eq!(resolve("1e"), Typed::Str);
        assert_eq!(resolve("+"), Typed::Str);
        assert_eq!(resolve("0x"), Typed::Str);
        assert_eq!(resolve("0xg"), Typed::Str);
        assert_eq!(resolve("99999999999999999999"), Typed::BigInt);
        assert_eq!(resolve("1e400"), Typed::NonFinite);
        assert_eq!(resolve("~"), Typed::Null);
        assert_eq!(resolve("TRUE"), Typed::Bool(true));
        assert_eq!(resolve("yes"), Typed::Str);
        assert_eq!(resolve("org:admin"), Typed::Str);
    }

    #[test]
    fn positions_and_refusals() {
        let root = load("a:\n  b: [1, 'x']\n").unwrap().unwrap();
        let Kind::Map(entries) = &root.kind else {
            panic!("a map")
        };
        assert_eq!(entries[0].1.pos, Pos { line: 2, column: 3 });
        let e = load("a: 1\na: 2\n").unwrap_err();
        assert_eq!(e.pos, Pos { line: 2, column: 1 });
        assert_eq!(e.message, "duplicate key `a` (first at line 1, column 1)");
        assert!(load("a: &x 1\nb: *x\n")
            .unwrap_err()
            .message
            .starts_with("aliases"));
        assert!(load("a: !!str 1\n").unwrap_err().message.contains("`!!str`"));
        assert!(load("a: 1\n---\nb: 2\n").is_err());
        assert_eq!(load("").unwrap(), None);
        let deep = "[".repeat(100);
        assert!(load(&deep).unwrap_err().message.contains("nested"));
    }
}
