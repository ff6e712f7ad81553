//! A statement's result as the record keeps it: the columns, the first rows up to the
//! caps, and counts of everything the agent received.
//!
//! Protocol crates feed it what they deliver to the agent, after masking, so the record
//! shows exactly what the agent saw; it turns that into the [`StatementResult`] event.
//! Beyond the caps it only counts, so a huge result costs the record nothing but two
//! counters, and [`ResultCapture::keeps_rows`] lets the caller skip decoding rows that
//! would not be kept.

use std::time::Duration;

use sluice_audit::{ResultError, StatementResult};

use crate::ResultCaps;

#[derive(Debug, Clone)]
pub struct ResultCapture {
    caps: ResultCaps,
    columns: Vec<String>,
    rows: Vec<Vec<Option<String>>>,
    kept_bytes: u64,
    truncated: bool,
    row_count: u64,
    bytes: u64,
    affected: Option<u64>,
}

impl ResultCapture {
    pub fn new(caps: ResultCaps) -> Self {
        Self {
            caps,
            columns: Vec::new(),
            rows: Vec::new(),
            kept_bytes: 0,
            truncated: false,
            row_count: 0,
            bytes: 0,
            affected: None,
        }
    }

    pub fn set_columns(&mut self, columns: Vec<String>) {
        self.columns = columns;
    }

    /// Whether a row added now could still be kept; when not, count it with
    /// [`count_rows`](Self::count_rows) instead of decoding it.
    pub fn keeps_rows(&self) -> bool {
        !self.truncated
    }

    /// A row the agent received, `wire_bytes` long on the wire. Kept if it fits the caps;
    /// otherwise counted and the record marked truncated.
    pub fn add_row(&mut self, values: Vec<Option<String>>, wire_bytes: u64) {
        self.row_count += 1;
        self.bytes += wire_bytes;
        if self.truncated {
            return;
        }
        let size: u64 = values
            .iter()
            .map(|v| v.as_ref().map_or(0, |v| v.len() as u64))
            .sum();
        if self.rows.len() as u64 >= self.caps.rows || self.kept_bytes + size > self.caps.bytes {
            self.truncated = true;
            self.rows.shrink_to_fit();
            return;
        }
        self.kept_bytes += size;
        self.rows.push(values);
    }

    /// Rows the agent received that are not kept.
    pub fn count_rows(&mut self, rows: u64, wire_bytes: u64) {
        if rows > 0 {
            self.truncated = true;
        }
        self.row_count += rows;
        self.bytes += wire_bytes;
    }

    /// Other bytes of the result the agent received (descriptions, completion).
    pub fn add_bytes(&mut self, wire_bytes: u64) {
        self.bytes += wire_bytes;
    }

    /// Rows the resource reports affected (an UPDATE's count), for a result without rows.
    pub fn set_affected(&mut self, rows: u64) {
        self.affected = Some(rows);
    }

    pub fn row_count(&self) -> u64 {
        self.row_count
    }

    /// The result event of the request recorded as `request_seq`.
    pub fn finish(
        self,
        request_seq: u64,
        duration: Duration,
        error: Option<ResultError>,
    ) -> StatementResult {
        let row_count = match (self.row_count, self.affected) {
            (0, Some(affected)) => affected,
            (received, _) => received,
        };
        StatementResult {
            request_seq,
            columns: self.columns,
            rows: self.rows,
            truncated: self.truncated,
            row_count,
            bytes: self.bytes,
            duration_us: u64::try_from(duration.as_micros()).unwrap_or(u64::MAX),
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(v: &str) -> Vec<Option<String>> {
        vec![Some(v.to_string()), None]
    }

    #[test]
    fn keeps_rows_up_to_the_row_cap_and_counts_the_rest() {
        let mut c = ResultCapture::new(ResultCaps {
            rows: 2,
            bytes: 100,
        });
        c.set_columns(vec!["a".into(), "b".into()]);
        for v in ["x", "y", "z"] {
            c.add_row(row(v), 10);
        }
        c.count_rows(5, 50);
        let r = c.finish(3, Duration::from_micros(7), None);
        assert_eq!(r.rows, vec![row("x"), row("y")]);
        assert!(r.truncated);
        assert_eq!(r.row_count, 8);
        assert_eq!(r.bytes, 80);
        assert_eq!(r.request_seq, 3);
        assert_eq!(r.duration_us, 7);
    }

    #[test]
    fn the_byte_cap_counts_value_text() {
        let mut c = ResultCapture::new(ResultCaps {
            rows: 100,
            bytes: 5,
        });
        c.add_row(row("abc"), 20);
        assert!(c.keeps_rows());
        c.add_row(row("abc"), 20);
        assert!(!c.keeps_rows());
        // Once truncated, a small row is not kept either: the kept rows stay a prefix.
        c.add_row(row(""), 20);
        let r = c.finish(0, Duration::ZERO, None);
        assert_eq!(r.rows, vec![row("abc")]);
        assert_eq!(r.row_count, 3);
    }

    #[test]
    fn affected_rows_count_only_without_received_rows() {
        let mut c = ResultCapture::new(ResultCaps::default());
        c.set_affected(4);
        assert_eq!(c.finish(0, Duration::ZERO, None).row_count, 4);
        let mut c = ResultCapture::new(ResultCaps::default());
        c.add_row(row("a"), 1);
        c.set_affected(4);
        let r = c.finish(0, Duration::ZERO, None);
        assert_eq!(r.row_count, 1);
        assert!(!r.truncated);
    }
}
