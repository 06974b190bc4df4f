//! What `check` prints: one line per thing checked, `ok`, `WARN` or `FAIL`,
//! each failure with what to do about it, and a last line saying what
//! callers hear.

/// The lines so far and how many of them are failures.
#[derive(Debug, Default)]
pub struct CheckReport {
    lines: Vec<String>,
    problems: usize,
}

impl CheckReport {
    pub fn ok(&mut self, line: String) {
        self.lines.push(format!("  ok    {line}"));
    }

    /// Not a reason callers miss the service, but worth fixing.
    pub fn warn(&mut self, line: String) {
        self.lines.push(format!("  WARN  {line}"));
    }

    /// Something callers (or the operator) suffer from now; exit non-zero.
    pub fn problem(&mut self, line: String) {
        self.problems += 1;
        self.lines.push(format!("  FAIL  {line}"));
    }

    /// True when nothing failed.
    pub fn is_ok(&self) -> bool {
        self.problems == 0
    }
}

impl std::fmt::Display for CheckReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        match self.problems {
            0 => writeln!(f, "all good: callers hear the latest service"),
            n => writeln!(f, "{n} problem(s) to fix: see FAIL above for what to do"),
        }
    }
}
