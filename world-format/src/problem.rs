//! Problems found in a world file, each tied to the JSON path of the value at fault.

use std::fmt;

/// One thing wrong (or worth knowing) about a world file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// JSONPath of the offending value, e.g. `$.zones[2].area[0]`.
    pub path: String,
    /// What is wrong and, where it helps, what to do about it.
    pub message: String,
}

impl Problem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem { path: path.into(), message: message.into() }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every error found in a world file, all at once. A world with any error is refused whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct WorldErrors {
    pub errors: Vec<Problem>,
}

impl fmt::Display for WorldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.errors.len();
        write!(f, "the world file has {count} error{}", if count == 1 { "" } else { "s" })?;
        for problem in &self.errors {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

/// Collects problems while a world file is read, so one pass reports all of them.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    pub errors: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

impl Problems {
    pub fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Problem::new(path, message));
    }

    pub fn warning(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.warnings.push(Problem::new(path, message));
    }
}
