//! Lexer and recursive-descent parser for Wireshark 4.0 display filters (the subset in
//! ARCHITECTURE.md), producing an AST with byte spans for error messages.
//!
//! Grammar (precedence low → high: `or`, `and`, `not`):
//! ```text
//! expr    := and ( ("or" | "||") and )*
//! and     := unary ( ("and" | "&&") unary )*
//! unary   := ("not" | "!") unary | "(" expr ")" | test
//! test    := term [ relop term | "in" set | "contains" term | "matches" term | "&" term ]
//! term    := NAME [ "#" N ] [ "[" slice "]" ] | NAME "(" term ")" | literal
//! set     := "{" item ( "," item )* "}"      item := literal [ ".." literal ]
//! ```
//! Unquoted words are resolved late, as Wireshark does: a known field or protocol name is a
//! field, anything else is a literal whose meaning depends on the field it is compared with.

use super::FilterError;

#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    LParen,
    RParen,
    LBrace,
    RBrace,
    LBracket,
    RBracket,
    Comma,
    Hash,
    DotDot,
    Op(&'static str),
    /// Quoted string (already unescaped), raw flag.
    Str(Vec<u8>),
    /// Unquoted word: field name, number, address, byte string…
    Word(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Token {
    pub tok: Tok,
    pub start: usize,
    pub end: usize,
}

fn err(at: usize, msg: impl Into<String>) -> FilterError {
    FilterError { offset: at, msg: msg.into() }
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b':' | b'/' | b'-' | b'$')
}

pub fn lex(src: &str) -> Result<Vec<Token>, FilterError> {
    let b = src.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    while i < b.len() {
        let c = b[i];
        let start = i;
        let two = if i + 1 < b.len() { &b[i..i + 2] } else { &b[i..i + 1] };
        let simple = match c {
            b'(' => Some(Tok::LParen),
            b')' => Some(Tok::RParen),
            b'{' => Some(Tok::LBrace),
            b'}' => Some(Tok::RBrace),
            b'[' => Some(Tok::LBracket),
            b']' => Some(Tok::RBracket),
            b',' => Some(Tok::Comma),
            b'#' => Some(Tok::Hash),
            _ => None,
        };
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if let Some(t) = simple {
            out.push(Token { tok: t, start, end: i + 1 });
            i += 1;
            continue;
        }
        let op = match two {
            b"==" => Some("=="),
            b"!=" => Some("!="),
            b"~=" => Some("~="),
            b"<=" => Some("<="),
            b">=" => Some(">="),
            b"&&" => Some("&&"),
            b"||" => Some("||"),
            _ => None,
        };
        if let Some(op) = op {
            out.push(Token { tok: Tok::Op(op), start, end: i + 2 });
            i += 2;
            continue;
        }
        let op1 = match c {
            b'<' => Some("<"),
            b'>' => Some(">"),
            b'!' => Some("!"),
            b'&' => Some("&"),
            b'=' => return Err(err(i, "\"=\" is not an operator (use \"==\")")),
            b'|' => return Err(err(i, "\"|\" is not an operator (use \"||\")")),
            _ => None,
        };
        if let Some(op) = op1 {
            out.push(Token { tok: Tok::Op(op), start, end: i + 1 });
            i += 1;
            continue;
        }
        if c == b'"' || (c == b'r' && b.get(i + 1) == Some(&b'"')) {
            let raw = c == b'r';
            i += if raw { 2 } else { 1 };
            let mut s = Vec::new();
            loop {
                let Some(&ch) = b.get(i) else {
                    return Err(err(start, "unterminated string (missing \")"));
                };
                match ch {
                    b'"' => {
                        i += 1;
                        break;
                    }
                    b'\\' if raw => {
                        // A raw string keeps backslashes; \" still does not end it.
                        s.push(b'\\');
                        if let Some(&n) = b.get(i + 1) {
                            s.push(n);
                            i += 2;
                        } else {
                            i += 1;
                        }
                    }
                    b'\\' => {
                        let (byte, len) = unescape(b, i)?;
                        s.push(byte);
                        i += len;
                    }
                    _ => {
                        s.push(ch);
                        i += 1;
                    }
                }
            }
            out.push(Token { tok: Tok::Str(s), start, end: i });
            continue;
        }
        if c == b'\'' {
            return Err(err(i, "single quotes make a one-character constant; use double quotes for strings"));
        }
        if b[i..].starts_with(b"..") && !b.get(i + 2).is_some_and(|n| n.is_ascii_alphanumeric()) {
            out.push(Token { tok: Tok::DotDot, start, end: i + 2 });
            i += 2;
            continue;
        }
        if is_word(c) {
            while i < b.len() && is_word(b[i]) {
                i += 1;
            }
            out.push(Token { tok: Tok::Word(src[start..i].to_string()), start, end: i });
            continue;
        }
        return Err(err(i, format!("unexpected character {:?}", src[i..].chars().next().unwrap_or('?'))));
    }
    Ok(out)
}

/// One escape sequence at `b[i]` (a backslash): returns the byte and how many input bytes it used.
fn unescape(b: &[u8], i: usize) -> Result<(u8, usize), FilterError> {
    let Some(&n) = b.get(i + 1) else {
        return Err(err(i, "string ends with a lone backslash"));
    };
    Ok(match n {
        b'\\' => (b'\\', 2),
        b'"' => (b'"', 2),
        b'\'' => (b'\'', 2),
        b'n' => (b'\n', 2),
        b't' => (b'\t', 2),
        b'r' => (b'\r', 2),
        b'a' => (7, 2),
        b'b' => (8, 2),
        b'f' => (12, 2),
        b'v' => (11, 2),
        b'0'..=b'7' => {
            let mut v: u32 = 0;
            let mut k = 1;
            while k <= 3 && matches!(b.get(i + k), Some(b'0'..=b'7')) {
                v = v * 8 + (b[i + k] - b'0') as u32;
                k += 1;
            }
            if v > 255 {
                return Err(err(i, "octal escape is larger than \\377"));
            }
            (v as u8, k)
        }
        b'x' => {
            let h = |k: usize| b.get(i + k).and_then(|c| (*c as char).to_digit(16));
            match (h(2), h(3)) {
                (Some(a), Some(c)) => ((a * 16 + c) as u8, 4),
                _ => return Err(err(i, "\\x must be followed by exactly two hex digits")),
            }
        }
        b'u' | b'U' => return Err(err(i, "\\u escapes for basic ASCII are not valid universal character names")),
        other => {
            return Err(err(
                i,
                format!("\\{} is not a valid escape (write \\\\ for a backslash, or use r\"...\")", other as char),
            ))
        }
    })
}

/// Relation operators, normalised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelOp {
    Eq,
    /// `!=`: all occurrences differ (Wireshark 4.0 `all_ne`).
    AllNe,
    /// `~=`: some occurrence differs (`any_ne`).
    AnyNe,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    Matches,
    BitAnd,
}

#[derive(Clone, Debug)]
pub enum Slice {
    /// offset (may be negative), length (None = to the end)
    Range(i64, Option<i64>),
}

#[derive(Clone, Debug)]
pub enum Term {
    Field { name: String, layer: Option<u8>, slice: Option<Slice>, start: usize, end: usize },
    Func { name: String, arg: Box<Term>, start: usize, end: usize },
    Word { text: String, start: usize, end: usize },
    Str { bytes: Vec<u8>, start: usize, end: usize },
}

impl Term {
    pub fn start(&self) -> usize {
        match self {
            Term::Field { start, .. }
            | Term::Func { start, .. }
            | Term::Word { start, .. }
            | Term::Str { start, .. } => *start,
        }
    }
}

#[derive(Clone, Debug)]
pub enum SetItem {
    One(Term),
    Range(Term, Term),
}

#[derive(Clone, Debug)]
pub enum Rhs {
    Term(Term),
    Set(Vec<SetItem>, usize),
}

#[derive(Clone, Debug)]
pub enum Ast {
    /// `a or b or …`, flattened: a long chain is a list, not a deep tree.
    Or(Vec<Ast>),
    /// `a and b and …`, flattened.
    And(Vec<Ast>),
    Not(Box<Ast>),
    Test {
        lhs: Term,
        rel: Option<(RelOp, usize, Rhs)>,
    },
}

/// Deepest nesting of parentheses, `not`/`!` and function calls. Compilation and evaluation
/// recurse over the tree, so an attacker-sized depth would overflow the stack.
pub const MAX_DEPTH: usize = 64;
/// Most tokens in one filter; with the depth limit this bounds the tree (and the recursion over
/// a long `a && b && …` chain) to a few thousand nodes.
pub const MAX_TOKENS: usize = 4096;

pub struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
    /// Names that are fields or protocols (decides Word → Field).
    is_field: fn(&str) -> bool,
}

impl<'s> Parser<'s> {
    pub fn new(src: &'s str, is_field: fn(&str) -> bool) -> Result<Self, FilterError> {
        let toks = lex(src)?;
        if let Some(t) = toks.get(MAX_TOKENS) {
            return Err(err(t.start, format!("filter too long (more than {MAX_TOKENS} tokens)")));
        }
        Ok(Parser { src, toks, pos: 0, depth: 0, is_field })
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.tok)
    }
    fn here(&self) -> usize {
        self.toks.get(self.pos).map(|t| t.start).unwrap_or(self.src.len())
    }
    fn next(&mut self) -> Option<Token> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }
    fn word_is(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x == w)
    }

    pub fn parse(mut self) -> Result<Ast, FilterError> {
        if self.toks.is_empty() {
            return Err(err(0, "empty filter"));
        }
        let e = self.or()?;
        if let Some(t) = self.toks.get(self.pos) {
            let what = &self.src[t.start..t.end];
            return Err(err(t.start, format!("\"{what}\" was unexpected here (expected \"and\", \"or\" or the end)")));
        }
        Ok(e)
    }

    fn or(&mut self) -> Result<Ast, FilterError> {
        let mut items = vec![self.and()?];
        while matches!(self.peek(), Some(Tok::Op("||"))) || self.word_is("or") {
            self.pos += 1;
            items.push(self.and()?);
        }
        Ok(if items.len() == 1 { items.pop().expect("one") } else { Ast::Or(items) })
    }

    fn and(&mut self) -> Result<Ast, FilterError> {
        let mut items = vec![self.unary()?];
        while matches!(self.peek(), Some(Tok::Op("&&"))) || self.word_is("and") {
            self.pos += 1;
            items.push(self.unary()?);
        }
        Ok(if items.len() == 1 { items.pop().expect("one") } else { Ast::And(items) })
    }

    /// Enters one nesting level (parenthesis, negation, function call), refusing past the limit.
    fn deeper(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(err(self.here(), format!("filter nested too deeply (more than {MAX_DEPTH} levels)")));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Ast, FilterError> {
        self.deeper()?;
        let r = self.unary_inner();
        self.depth -= 1;
        r
    }

    fn unary_inner(&mut self) -> Result<Ast, FilterError> {
        if matches!(self.peek(), Some(Tok::Op("!"))) || self.word_is("not") {
            self.pos += 1;
            return Ok(Ast::Not(Box::new(self.unary()?)));
        }
        if matches!(self.peek(), Some(Tok::LParen)) {
            self.pos += 1;
            let e = self.or()?;
            match self.next() {
                Some(Token { tok: Tok::RParen, .. }) => return Ok(e),
                Some(t) => return Err(err(t.start, "expected \")\"")),
                None => return Err(err(self.src.len(), "missing \")\" at the end")),
            }
        }
        self.test()
    }

    fn relop(&mut self) -> Option<(RelOp, usize)> {
        let at = self.here();
        let op = match self.peek()? {
            Tok::Op("==") => RelOp::Eq,
            Tok::Op("!=") => RelOp::AllNe,
            Tok::Op("~=") => RelOp::AnyNe,
            Tok::Op("<") => RelOp::Lt,
            Tok::Op("<=") => RelOp::Le,
            Tok::Op(">") => RelOp::Gt,
            Tok::Op(">=") => RelOp::Ge,
            Tok::Op("&") => RelOp::BitAnd,
            Tok::Word(w) => match w.as_str() {
                "eq" | "any_eq" => RelOp::Eq,
                "ne" | "all_ne" => RelOp::AllNe,
                "any_ne" => RelOp::AnyNe,
                "lt" => RelOp::Lt,
                "le" => RelOp::Le,
                "gt" => RelOp::Gt,
                "ge" => RelOp::Ge,
                "contains" => RelOp::Contains,
                "matches" | "~" => RelOp::Matches,
                _ => return None,
            },
            _ => return None,
        };
        self.pos += 1;
        Some((op, at))
    }

    fn test(&mut self) -> Result<Ast, FilterError> {
        let lhs = self.term()?;
        if self.word_is("in") {
            let at = self.here();
            self.pos += 1;
            let set = self.set()?;
            return Ok(Ast::Test { lhs, rel: Some((RelOp::Eq, at, Rhs::Set(set, at))) });
        }
        if let Some((op, at)) = self.relop() {
            let rhs = self.term()?;
            return Ok(Ast::Test { lhs, rel: Some((op, at, Rhs::Term(rhs))) });
        }
        Ok(Ast::Test { lhs, rel: None })
    }

    fn set(&mut self) -> Result<Vec<SetItem>, FilterError> {
        match self.next() {
            Some(Token { tok: Tok::LBrace, .. }) => {}
            Some(t) => return Err(err(t.start, "expected \"{\" after \"in\"")),
            None => return Err(err(self.src.len(), "expected \"{\" after \"in\"")),
        }
        let mut items = Vec::new();
        loop {
            if matches!(self.peek(), Some(Tok::RBrace)) && !items.is_empty() {
                self.pos += 1;
                return Ok(items);
            }
            let first = self.term()?;
            // "79..81" lexes as one word; split it.
            let item = match &first {
                Term::Word { text, start, end } if text.contains("..") => {
                    let (a, b) = text.split_once("..").unwrap_or((text, ""));
                    let mid = start + a.len();
                    SetItem::Range(
                        Term::Word { text: a.to_string(), start: *start, end: mid },
                        Term::Word { text: b.to_string(), start: mid + 2, end: *end },
                    )
                }
                _ if matches!(self.peek(), Some(Tok::DotDot)) => {
                    self.pos += 1;
                    SetItem::Range(first, self.term()?)
                }
                _ => SetItem::One(first),
            };
            items.push(item);
            match self.next() {
                Some(Token { tok: Tok::Comma, .. }) => {}
                Some(Token { tok: Tok::RBrace, .. }) => return Ok(items),
                Some(t) => {
                    let what = &self.src[t.start..t.end];
                    return Err(err(
                        t.start,
                        format!("\"{what}\" was unexpected (set elements are separated by commas)"),
                    ));
                }
                None => return Err(err(self.src.len(), "missing \"}\" at the end of the set")),
            }
        }
    }

    fn term(&mut self) -> Result<Term, FilterError> {
        let Some(t) = self.next() else {
            return Err(err(self.src.len(), "expected a field or a value at the end"));
        };
        match t.tok {
            Tok::Str(bytes) => Ok(Term::Str { bytes, start: t.start, end: t.end }),
            Tok::Word(w) => {
                if matches!(self.peek(), Some(Tok::LParen)) {
                    self.pos += 1;
                    self.deeper()?;
                    let arg = self.term();
                    self.depth -= 1;
                    let arg = arg?;
                    match self.next() {
                        Some(Token { tok: Tok::RParen, end, .. }) => {
                            return Ok(Term::Func { name: w, arg: Box::new(arg), start: t.start, end })
                        }
                        _ => return Err(err(t.start, format!("missing \")\" after the argument of {w}()"))),
                    }
                }
                if !(self.is_field)(&w) {
                    return Ok(Term::Word { text: w, start: t.start, end: t.end });
                }
                let mut layer = None;
                let mut end = t.end;
                if matches!(self.peek(), Some(Tok::Hash)) {
                    self.pos += 1;
                    match self.next() {
                        Some(Token { tok: Tok::Word(n), start, end: e }) => {
                            layer = Some(n.parse::<u8>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                                err(start, format!("layer number \"{n}\" must be a number from 1 to 255"))
                            })?);
                            end = e;
                        }
                        _ => return Err(err(end, "expected a layer number after \"#\"")),
                    }
                }
                let mut slice = None;
                if matches!(self.peek(), Some(Tok::LBracket)) {
                    let open = self.here();
                    self.pos += 1;
                    let spec = match self.next() {
                        Some(Token { tok: Tok::Word(s), .. }) => s,
                        _ => return Err(err(open, "expected a range such as [0:3], [2-4], [1] or [-1]")),
                    };
                    match self.next() {
                        Some(Token { tok: Tok::RBracket, end: e, .. }) => end = e,
                        _ => return Err(err(open, "missing \"]\" after the range")),
                    }
                    slice = Some(
                        parse_slice(&spec).ok_or_else(|| err(open + 1, format!("\"{spec}\" is not a valid range")))?,
                    );
                }
                Ok(Term::Field { name: w, layer, slice, start: t.start, end })
            }
            Tok::Op(op) => Err(err(t.start, format!("\"{op}\" was unexpected (expected a field or a value)"))),
            _ => {
                let what = &self.src[t.start..t.end];
                Err(err(t.start, format!("\"{what}\" was unexpected (expected a field or a value)")))
            }
        }
    }
}

/// `i:j` (offset, length), `i-j` (first and last byte), `i` (one byte), `i:` / `:j`, negative i.
fn parse_slice(s: &str) -> Option<Slice> {
    let num = |t: &str| t.parse::<i64>().ok();
    if let Some((a, b)) = s.split_once(':') {
        let off = if a.is_empty() { 0 } else { num(a)? };
        let len = if b.is_empty() { None } else { Some(num(b)?).filter(|l| *l >= 0) };
        if !b.is_empty() && len.is_none() {
            return None;
        }
        return Some(Slice::Range(off, len));
    }
    // "i-j", but "-1" alone is a negative offset.
    if let Some(pos) = s[1..].find('-').map(|p| p + 1) {
        let (a, b) = (num(&s[..pos])?, num(&s[pos + 1..])?);
        if b < a {
            return None;
        }
        return Some(Slice::Range(a, Some(b - a + 1)));
    }
    Some(Slice::Range(num(s)?, Some(1)))
}
