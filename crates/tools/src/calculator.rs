//! `calculator`: a pure arithmetic evaluator (`+ - * / % ^`, parentheses, unary minus,
//! decimals). A recursive-descent parser over numbers only: nothing is ever executed.

use async_trait::async_trait;
use serde::Deserialize;

use crate::error::ToolError;
use crate::params::parse_params;
use crate::spec::{Tool, ToolContext, ToolOutput, ToolSpec};

const MAX_LEN: usize = 1000;
const MAX_DEPTH: usize = 64;

pub struct Calculator {
    spec: ToolSpec,
}

impl Calculator {
    #[must_use]
    pub fn new(spec: ToolSpec) -> Self {
        Self { spec }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Params {
    expression: String,
}

struct Parser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

fn bad(msg: impl Into<String>) -> ToolError {
    ToolError::invalid("/expression", msg)
}

impl Parser<'_> {
    fn skip_ws(&mut self) {
        while self.s.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    // expr := term (('+' | '-') term)*
    fn expr(&mut self) -> Result<f64, ToolError> {
        let mut v = self.term()?;
        while let Some(op @ (b'+' | b'-')) = self.peek() {
            self.pos += 1;
            let r = self.term()?;
            v = if op == b'+' { v + r } else { v - r };
        }
        Ok(v)
    }

    // term := unary (('*' | '/' | '%') unary)*
    fn term(&mut self) -> Result<f64, ToolError> {
        let mut v = self.unary()?;
        while let Some(op @ (b'*' | b'/' | b'%')) = self.peek() {
            self.pos += 1;
            let r = self.unary()?;
            if op != b'*' && r == 0.0 {
                return Err(ToolError::Failed("division by zero".into()));
            }
            v = match op {
                b'*' => v * r,
                b'/' => v / r,
                _ => v % r,
            };
        }
        Ok(v)
    }

    // unary := '-' unary | '+' unary | power   (so -2^2 = -(2^2), as in mathematics)
    fn unary(&mut self) -> Result<f64, ToolError> {
        match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                self.nested(|p| p.unary()).map(|v| -v)
            }
            Some(b'+') => {
                self.pos += 1;
                self.nested(Self::unary)
            }
            _ => self.power(),
        }
    }

    // power := atom ('^' unary)?   (right-associative)
    fn power(&mut self) -> Result<f64, ToolError> {
        let base = self.atom()?;
        if self.peek() == Some(b'^') {
            self.pos += 1;
            let exp = self.nested(Self::unary)?;
            return Ok(base.powf(exp));
        }
        Ok(base)
    }

    fn nested(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<f64, ToolError>,
    ) -> Result<f64, ToolError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(bad("expression nested too deeply"));
        }
        let v = f(self);
        self.depth -= 1;
        v
    }

    fn atom(&mut self) -> Result<f64, ToolError> {
        match self.peek() {
            Some(b'(') => {
                self.pos += 1;
                let v = self.nested(Self::expr)?;
                if self.peek() != Some(b')') {
                    return Err(bad(format!("expected `)` at position {}", self.pos)));
                }
                self.pos += 1;
                Ok(v)
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => {
                let start = self.pos;
                while self
                    .s
                    .get(self.pos)
                    .is_some_and(|c| c.is_ascii_digit() || *c == b'.')
                {
                    self.pos += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or_default();
                text.parse::<f64>()
                    .map_err(|_| bad(format!("`{text}` is not a number")))
            }
            Some(c) => Err(bad(format!(
                "unexpected `{}` at position {}",
                c as char, self.pos
            ))),
            None => Err(bad("unexpected end of expression")),
        }
    }
}

/// Evaluates `expression`.
///
/// # Errors
/// `InvalidParams` for a malformed expression, `Failed` for division by zero or a result
/// that is not a finite number.
pub fn evaluate(expression: &str) -> Result<f64, ToolError> {
    if expression.len() > MAX_LEN {
        return Err(bad(format!("longer than {MAX_LEN} characters")));
    }
    let mut p = Parser {
        s: expression.as_bytes(),
        pos: 0,
        depth: 0,
    };
    let v = p.expr()?;
    if let Some(c) = p.peek() {
        return Err(bad(format!(
            "unexpected `{}` at position {}",
            c as char, p.pos
        )));
    }
    if !v.is_finite() {
        return Err(ToolError::Failed(
            "the result is not a finite number".into(),
        ));
    }
    Ok(v)
}

#[async_trait]
impl Tool for Calculator {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn call(
        &self,
        _ctx: &ToolContext,
        params: serde_json::Value,
    ) -> Result<ToolOutput, ToolError> {
        let p: Params = parse_params(params)?;
        let v = evaluate(&p.expression)?;
        Ok(ToolOutput::pure(
            serde_json::json!({ "expression": p.expression, "result": v }),
        ))
    }
}
