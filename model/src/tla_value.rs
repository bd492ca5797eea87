//! TLA+ values as TLC prints them, a parser for TLC's plain-text state dump (`-dump FILE`),
//! and the projection of an oracle [`State`] onto the same values.
//!
//! The projection is the identity on the spec's variables: each state becomes the record
//! `[variable |-> value]` of all fifteen variables; a record prints with its fields sorted,
//! a set with its elements sorted, and an interval `a..b` is the set it denotes. Two states
//! are equal iff their canonical strings are equal.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::oracle::{Cmd, RecKind, Record, State, Status, Ticket, UnitKind};

/// A TLA+ value (the subset the spec uses).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    /// `TRUE` / `FALSE`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A string.
    Str(String),
    /// A sequence `<<...>>`.
    Seq(Vec<Value>),
    /// A set `{...}` (or an interval `a..b`).
    Set(BTreeSet<Value>),
    /// A record `[f |-> v, ...]`.
    Rec(BTreeMap<String, Value>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list<'a, T: fmt::Display + 'a>(
            f: &mut fmt::Formatter<'_>,
            items: impl Iterator<Item = T>,
        ) -> fmt::Result {
            for (i, v) in items.enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{v}")?;
            }
            Ok(())
        }
        match self {
            Value::Bool(b) => f.write_str(if *b { "TRUE" } else { "FALSE" }),
            Value::Int(n) => write!(f, "{n}"),
            Value::Str(s) => write!(f, "\"{s}\""),
            Value::Seq(v) => {
                f.write_str("<<")?;
                list(f, v.iter())?;
                f.write_str(">>")
            }
            Value::Set(v) => {
                f.write_str("{")?;
                list(f, v.iter())?;
                f.write_str("}")
            }
            Value::Rec(m) => {
                f.write_str("[")?;
                list(f, m.iter().map(|(k, v)| format!("{k} |-> {v}")))?;
                f.write_str("]")
            }
        }
    }
}

/// A parse error with the byte offset where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset in the parsed text.
    pub at: usize,
    /// What was expected.
    pub what: &'static str,
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn err<T>(&self, what: &'static str) -> Result<T, ParseError> {
        Err(ParseError { at: self.i, what })
    }
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }
    fn eat(&mut self, tok: &str) -> bool {
        self.ws();
        if self.s.get(self.i..self.i + tok.len()) == Some(tok.as_bytes()) {
            self.i += tok.len();
            true
        } else {
            false
        }
    }
    fn list(&mut self, close: &str) -> Result<Vec<Value>, ParseError> {
        let mut out = Vec::new();
        if self.eat(close) {
            return Ok(out);
        }
        loop {
            out.push(self.value()?);
            if self.eat(close) {
                return Ok(out);
            }
            if !self.eat(",") {
                return self.err("',' or closing bracket");
            }
        }
    }
    fn int(&mut self) -> Result<i64, ParseError> {
        self.ws();
        let start = self.i;
        if self.s.get(self.i) == Some(&b'-') {
            self.i += 1;
        }
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        std::str::from_utf8(self.s.get(start..self.i).unwrap_or_default())
            .ok()
            .and_then(|t| t.parse().ok())
            .map_or_else(|| self.err("integer"), Ok)
    }
    fn ident(&mut self) -> String {
        self.ws();
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            self.i += 1;
        }
        String::from_utf8_lossy(self.s.get(start..self.i).unwrap_or_default()).into_owned()
    }
    fn value(&mut self) -> Result<Value, ParseError> {
        if self.eat("<<") {
            return Ok(Value::Seq(self.list(">>")?));
        }
        if self.eat("{") {
            return Ok(Value::Set(self.list("}")?.into_iter().collect()));
        }
        if self.eat("[") {
            let mut m = BTreeMap::new();
            if self.eat("]") {
                return Ok(Value::Rec(m));
            }
            loop {
                let k = self.ident();
                if !self.eat("|->") {
                    return self.err("'|->'");
                }
                m.insert(k, self.value()?);
                if self.eat("]") {
                    return Ok(Value::Rec(m));
                }
                if !self.eat(",") {
                    return self.err("',' or ']'");
                }
            }
        }
        if self.eat("\"") {
            let start = self.i;
            while self.s.get(self.i).is_some_and(|c| *c != b'"') {
                self.i += 1;
            }
            let text =
                String::from_utf8_lossy(self.s.get(start..self.i).unwrap_or_default()).into_owned();
            self.i += 1;
            return Ok(Value::Str(text));
        }
        if self.eat("TRUE") {
            return Ok(Value::Bool(true));
        }
        if self.eat("FALSE") {
            return Ok(Value::Bool(false));
        }
        let a = self.int()?;
        if self.eat("..") {
            let b = self.int()?;
            return Ok(Value::Set((a..=b).map(Value::Int).collect()));
        }
        Ok(Value::Int(a))
    }
}

/// Parse one TLA+ value.
pub fn parse_value(text: &str) -> Result<Value, ParseError> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return p.err("end of value");
    }
    Ok(v)
}

/// Parse one state of a TLC dump (the lines `/\ var = value` after `State N:`) into the
/// record of its variables.
pub fn parse_state(text: &str) -> Result<Value, ParseError> {
    let mut vars = BTreeMap::new();
    for conj in text.split("/\\ ").map(str::trim).filter(|c| !c.is_empty()) {
        let Some((name, val)) = conj.split_once(" = ") else {
            return Err(ParseError {
                at: 0,
                what: "'var = value'",
            });
        };
        vars.insert(name.trim().to_string(), parse_value(val)?);
    }
    Ok(Value::Rec(vars))
}

/// Iterate over the states of a TLC plain-text dump, yielding each state's text.
pub fn dump_states(dump: &str) -> impl Iterator<Item = &str> {
    dump.split("State ")
        .filter_map(|chunk| chunk.split_once(":\n").map(|(_, body)| body))
}

fn int(n: impl TryInto<i64>) -> Value {
    Value::Int(n.try_into().unwrap_or(i64::MAX))
}

fn s(text: &str) -> Value {
    Value::Str(text.to_string())
}

fn set<T: Copy + TryInto<i64>>(v: &BTreeSet<T>) -> Value {
    Value::Set(v.iter().map(|&x| int(x)).collect())
}

fn rec(fields: Vec<(&str, Value)>) -> Value {
    Value::Rec(
        fields
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn record(r: &Record) -> Value {
    let k = match r.k {
        RecKind::Event => "Event",
        RecKind::BatchCommit => "BatchCommit",
        RecKind::FenceBegin => "FenceBegin",
        RecKind::FenceCommit => "FenceCommit",
        RecKind::FenceCancel => "FenceCancel",
        RecKind::Torn => "Torn",
    };
    let u = match r.u {
        UnitKind::None => "None",
        UnitKind::Batch => "Batch",
        UnitKind::Fence => "Fence",
    };
    rec(vec![
        ("k", s(k)),
        ("e", int(r.e)),
        ("u", s(u)),
        ("id", int(r.id)),
        ("f", int(r.f)),
        ("seq", int(r.seq)),
    ])
}

fn log(l: &[Record]) -> Value {
    Value::Seq(l.iter().map(record).collect())
}

fn ticket(t: &Ticket) -> Value {
    let cmd = match t.cmd {
        Cmd::Append => "Append",
        Cmd::Batch => "Batch",
        Cmd::FenceBegin => "FenceBegin",
        Cmd::FenceAppend => "FenceAppend",
        Cmd::FenceBatch => "FenceBatch",
        Cmd::FenceCommit => "FenceCommit",
        Cmd::FenceCancel => "FenceCancel",
        Cmd::FenceDrop => "FenceDrop",
        Cmd::Sync => "Sync",
        Cmd::Wait => "Wait",
    };
    let st = match t.st {
        Status::Queued => "Queued",
        Status::Taken => "Taken",
        Status::Ok => "Ok",
        Status::VisibilityFenceActive => "VisibilityFenceActive",
        Status::VisibilityFenceCancelled => "VisibilityFenceCancelled",
        Status::FenceNotOpen => "FenceNotOpen",
        Status::WriterLatched => "WriterLatched",
        Status::WriterCrashed => "WriterCrashed",
        Status::OutcomeUnknown => "OutcomeUnknown",
    };
    rec(vec![
        ("cmd", s(cmd)),
        ("evs", set(&t.evs)),
        ("id", int(t.id)),
        ("st", s(st)),
        ("mark", int(t.mark)),
    ])
}

impl State {
    /// The state as the TLA+ record of its variables (see the module docs).
    pub fn to_tla(&self) -> Value {
        rec(vec![
            ("up", Value::Bool(self.up)),
            (
                "queue",
                Value::Seq(self.queue.iter().map(|&t| int(t)).collect()),
            ),
            ("written", log(&self.written)),
            ("durableLen", int(self.durable_len)),
            ("frontier", int(self.frontier)),
            ("pubLen", int(self.pub_len)),
            ("visible", set(&self.visible)),
            ("openFence", int(self.open_fence)),
            ("held", set(&self.held)),
            ("latched", Value::Bool(self.latched)),
            ("pagesClean", Value::Bool(self.pages_clean)),
            (
                "tickets",
                Value::Seq(self.tickets.iter().map(ticket).collect()),
            ),
            ("crashes", int(self.crashes)),
            ("fsyncFails", int(self.fsync_fails)),
            ("preCrash", log(&self.pre_crash)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_dumped_state_and_canonicalises_it() {
        let text = "/\\ held = {}\n/\\ tickets = <<[id |-> 1, evs |-> 1..2, cmd |-> \"Batch\",\n     st |-> \"Queued\", mark |-> 0]>>\n/\\ up = TRUE\n";
        let v = parse_state(text).unwrap();
        assert_eq!(
            v.to_string(),
            "[held |-> {}, tickets |-> <<[cmd |-> \"Batch\", evs |-> {1, 2}, id |-> 1, mark |-> 0, st |-> \"Queued\"]>>, up |-> TRUE]"
        );
    }

    #[test]
    fn initial_state_projects_like_tlc_prints_it() {
        let dumped = "/\\ preCrash = <<>>\n/\\ pubLen = 0\n/\\ openFence = 0\n/\\ visible = {}\n/\\ written = <<>>\n/\\ durableLen = 0\n/\\ frontier = 0\n/\\ tickets = <<>>\n/\\ queue = <<>>\n/\\ crashes = 0\n/\\ fsyncFails = 0\n/\\ up = TRUE\n/\\ latched = FALSE\n/\\ pagesClean = FALSE\n/\\ held = {}\n";
        assert_eq!(parse_state(dumped).unwrap(), State::init().to_tla());
    }
}
