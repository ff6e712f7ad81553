//! PostgreSQL's side of recording: what a request and a result look like in the audit
//! trail, read off the wire.
//!
//! The session records a request (a simple Query's string, or a prepared statement's text
//! at each Execute) with its classification and decision before sending it on, and the
//! other half feeds [`ResultRecording`] every message it delivers to the client, after
//! masking and refusal rewriting, so the record holds what the agent saw. One result is
//! recorded per statement: a simple Query of three statements has one request and three
//! results, each capped on its own.
//!
//! Values are recorded as text: text-format values as sent, and so are binary-format
//! values of text types (their binary form is their text); other binary-format values as
//! `\x` and hex digits (PostgreSQL's bytea spelling); NULL as null. Formats come from the
//! RowDescription, or for an Execute from its Bind's result-format codes. A COPY TO's
//! data is recorded one line per row, in a single column named `copy`.

use std::collections::HashMap;
use std::time::Instant;

use sluice_audit::{ResultError, StatementResult};
use sluice_recorder::{ResultCaps, ResultCapture, SessionRecorder};
use sluice_sql::Classification;

use crate::masking::TEXT_TYPES;
use crate::protocol::backend::error_fields;
use crate::protocol::codec::{BodyReader, Frame};
use crate::responses::{Answering, Described, RecordRef};

/// A statement as recorded at each Execute: its text, classification and deciding rules.
#[derive(Debug)]
pub struct RecordedStatement {
    pub text: String,
    pub classification: std::sync::Arc<serde_json::Value>,
    pub rule: Option<String>,
}

/// The classification as the record keeps it: each statement's kind and accesses.
pub fn classification_json(class: &Classification) -> serde_json::Value {
    serde_json::Value::Array(
        class
            .statements
            .iter()
            .map(|s| {
                serde_json::json!({
                    "kind": s.kind,
                    "accesses": s.accesses,
                })
            })
            .collect(),
    )
}

/// What a Bind carries that the record keeps: the parameter values (as text, binary ones
/// in hex) and the result formats asked for.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BindValues {
    pub parameters: Vec<Option<String>>,
    pub result_formats: Vec<i16>,
}

/// Reads a Bind message body; `None` if it is malformed (the resource will say so).
pub fn bind_values(body: &[u8]) -> Option<BindValues> {
    let mut r = BodyReader::new(body);
    r.cstr("Bind").ok()?;
    r.cstr("Bind").ok()?;
    let format_count = r.i16("Bind").ok()?;
    let formats: Vec<i16> = (0..format_count.max(0))
        .map(|_| r.i16("Bind").ok())
        .collect::<Option<_>>()?;
    let count = r.i16("Bind").ok()?;
    let mut parameters = Vec::with_capacity(count.max(0) as usize);
    for i in 0..count.max(0) as usize {
        let len = r.i32("Bind").ok()?;
        if len < 0 {
            parameters.push(None);
            continue;
        }
        let value = r.bytes(len as usize, "Bind").ok()?;
        parameters.push(Some(as_text(value, is_binary(&formats, i))));
    }
    let result_count = r.i16("Bind").ok()?;
    let result_formats = (0..result_count.max(0))
        .map(|_| r.i16("Bind").ok())
        .collect::<Option<_>>()?;
    Some(BindValues {
        parameters,
        result_formats,
    })
}

/// A value as the record spells it: text as it is, binary as `\x` and hex digits.
fn as_text(value: &[u8], binary: bool) -> String {
    if !binary {
        return String::from_utf8_lossy(value).into_owned();
    }
    let mut text = String::with_capacity(2 + value.len() * 2);
    text.push_str("\\x");
    for byte in value {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// A result's column names and their formats.
#[derive(Debug, Default, Clone)]
struct Columns {
    names: Vec<String>,
    /// Format codes as Bind gives them: none means all text, one applies to every column,
    /// more are per column (1 is binary).
    formats: Vec<i16>,
    /// Per column, whether its type's binary form is its text.
    text_types: Vec<bool>,
}

fn is_binary(formats: &[i16], column: usize) -> bool {
    match formats {
        [] => false,
        [one] => *one == 1,
        each => each.get(column) == Some(&1),
    }
}

impl Columns {
    fn from_row_description(body: &[u8]) -> Option<Columns> {
        let mut r = BodyReader::new(body);
        let count = r.i16("RowDescription").ok()?;
        let mut columns = Columns::default();
        for _ in 0..count.max(0) {
            columns
                .names
                .push(r.cstr("RowDescription").ok()?.to_string());
            r.bytes(4 + 2, "RowDescription").ok()?;
            let type_oid = r.i32("RowDescription").ok()? as u32;
            columns.text_types.push(TEXT_TYPES.contains(&type_oid));
            r.bytes(2 + 4, "RowDescription").ok()?;
            columns.formats.push(r.i16("RowDescription").ok()?);
        }
        Some(columns)
    }

    /// A COPY TO's lines, as one text column.
    fn copy() -> Columns {
        Columns {
            names: vec!["copy".into()],
            ..Columns::default()
        }
    }

    /// With the formats a Bind asked for.
    fn with_formats(&self, formats: &[i16]) -> Columns {
        Columns {
            names: self.names.clone(),
            formats: formats.to_vec(),
            text_types: self.text_types.clone(),
        }
    }
}

/// A DataRow's values as recorded.
fn row_values(frame: &[u8], formats: &[i16], text_types: &[bool]) -> Option<Vec<Option<String>>> {
    let mut r = BodyReader::new(frame.get(5..)?);
    let count = r.i16("DataRow").ok()?;
    let mut values = Vec::with_capacity(count.max(0) as usize);
    for i in 0..count.max(0) as usize {
        let len = r.i32("DataRow").ok()?;
        if len < 0 {
            values.push(None);
            continue;
        }
        let value = r.bytes(len as usize, "DataRow").ok()?;
        let as_hex = is_binary(formats, i) && !text_types.get(i).copied().unwrap_or(false);
        values.push(Some(as_text(value, as_hex)));
    }
    Some(values)
}

/// The number in a CommandComplete tag (`UPDATE 3`, `INSERT 0 3`, `SELECT 3`).
fn affected_rows(tag: &[u8]) -> Option<u64> {
    let tag = std::str::from_utf8(tag.strip_suffix(&[0]).unwrap_or(tag)).ok()?;
    tag.rsplit(' ').next()?.parse().ok()
}

/// The result being captured.
struct Open {
    request_seq: u64,
    capture: ResultCapture,
    formats: Vec<i16>,
    text_types: Vec<bool>,
    sent: Instant,
}

/// The resource-to-client half's recording state.
pub struct ResultRecording {
    session: SessionRecorder,
    caps: ResultCaps,
    open: Option<Open>,
    /// Descriptions the client asked for, by statement and by portal.
    statement_columns: HashMap<String, Columns>,
    portal_columns: HashMap<String, Columns>,
}

impl ResultRecording {
    pub fn new(session: SessionRecorder, caps: ResultCaps) -> Self {
        Self {
            session,
            caps,
            open: None,
            statement_columns: HashMap::new(),
            portal_columns: HashMap::new(),
        }
    }

    pub fn session(&mut self) -> &mut SessionRecorder {
        &mut self.session
    }

    /// Whether rows of the open result are only counted now (the record is full), so the
    /// relay may forward them in blocks.
    pub fn only_counting(&self) -> bool {
        self.open.as_ref().is_some_and(|o| !o.capture.keeps_rows())
    }

    /// Rows forwarded in a block, counted without being read.
    pub fn count_rows(&mut self, rows: u64, bytes: u64) {
        if let Some(open) = &mut self.open {
            open.capture.count_rows(rows, bytes);
        }
    }

    fn start(&mut self, record: RecordRef, columns: Option<Columns>) -> &mut Open {
        let caps = self.caps;
        self.open.get_or_insert_with(|| {
            let columns = columns.unwrap_or_default();
            let mut capture = ResultCapture::new(caps);
            capture.set_columns(columns.names);
            Open {
                request_seq: record.seq,
                capture,
                formats: columns.formats,
                text_types: columns.text_types,
                sent: record.sent,
            }
        })
    }

    async fn finish(&mut self, error: Option<ResultError>) {
        if let Some(open) = self.open.take() {
            let result: StatementResult =
                open.capture
                    .finish(open.request_seq, open.sent.elapsed(), error);
            self.session.result(result).await;
        }
    }

    /// One message as the client receives it, and what it answers.
    pub async fn on_delivered(&mut self, answering: &Answering, frame: &Frame) {
        let len = frame.raw.len() as u64;
        match answering {
            Answering::Describe { target } if frame.tag == b'T' => {
                if let Some(columns) = Columns::from_row_description(frame.body()) {
                    match target {
                        Described::Statement(name) => {
                            self.statement_columns.insert(name.clone(), columns)
                        }
                        Described::Portal(name) => {
                            self.portal_columns.insert(name.clone(), columns)
                        }
                    };
                }
            }
            Answering::GatewayDescribe { portal } if frame.tag == b'T' => {
                if let Some(columns) = Columns::from_row_description(frame.body()) {
                    self.portal_columns.insert(portal.clone(), columns);
                }
            }
            Answering::Bind {
                portal,
                statement,
                formats,
            } => {
                let columns = self
                    .statement_columns
                    .get(statement)
                    .cloned()
                    .unwrap_or_default()
                    .with_formats(formats);
                self.portal_columns.insert(portal.clone(), columns);
            }
            Answering::Query {
                record: Some(record),
            } => match frame.tag {
                b'T' => {
                    let columns = Columns::from_row_description(frame.body());
                    self.start(*record, columns).capture.add_bytes(len);
                }
                b'H' => {
                    self.start(*record, Some(Columns::copy()))
                        .capture
                        .add_bytes(len);
                }
                b'D' => self.row(*record, frame),
                b'd' => self.copy_row(*record, frame),
                b'C' => {
                    let open = self.start(*record, None);
                    open.capture.add_bytes(len);
                    if let Some(n) = affected_rows(frame.body()) {
                        open.capture.set_affected(n);
                    }
                    self.finish(None).await;
                }
                b'I' => {
                    self.start(*record, None);
                    self.finish(None).await;
                }
                b'E' => {
                    self.start(*record, None);
                    self.finish(Some(error_of(frame))).await;
                }
                b'Z' => self.finish(None).await,
                _ => {}
            },
            Answering::Execute {
                portal,
                record: Some(record),
            } => match frame.tag {
                b'D' => {
                    if self.open.is_none() {
                        let columns = self.portal_columns.get(portal).cloned();
                        self.start(*record, columns);
                    }
                    self.row(*record, frame)
                }
                b'H' => {
                    self.start(*record, Some(Columns::copy()))
                        .capture
                        .add_bytes(len);
                }
                b'd' => self.copy_row(*record, frame),
                b'C' | b's' | b'I' => {
                    let open = self.start(*record, None);
                    open.capture.add_bytes(len);
                    if frame.tag == b'C' {
                        if let Some(n) = affected_rows(frame.body()) {
                            open.capture.set_affected(n);
                        }
                    }
                    self.finish(None).await;
                }
                b'E' => {
                    self.start(*record, None);
                    self.finish(Some(error_of(frame))).await;
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// The row-limit error the client got in place of the rest of a result.
    pub async fn stopped(&mut self, error: &[u8]) {
        let (code, message) = error_fields(error.get(5..).unwrap_or_default());
        self.finish(Some(ResultError { code, message })).await;
    }

    fn row(&mut self, record: RecordRef, frame: &Frame) {
        let open = self.start(record, None);
        let len = frame.raw.len() as u64;
        if !open.capture.keeps_rows() {
            open.capture.count_rows(1, len);
            return;
        }
        match row_values(&frame.raw, &open.formats, &open.text_types) {
            Some(values) => open.capture.add_row(values, len),
            None => open.capture.count_rows(1, len),
        }
    }

    fn copy_row(&mut self, record: RecordRef, frame: &Frame) {
        let open = self.start(record, None);
        let len = frame.raw.len() as u64;
        if !open.capture.keeps_rows() {
            open.capture.count_rows(1, len);
            return;
        }
        let line = String::from_utf8_lossy(frame.body());
        let line = line.strip_suffix('\n').unwrap_or(&line).to_string();
        open.capture.add_row(vec![Some(line)], len);
    }
}

fn error_of(frame: &Frame) -> ResultError {
    let (code, message) = error_fields(frame.body());
    ResultError { code, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::backend;

    #[test]
    fn data_rows_are_recorded_as_text_with_binary_values_in_hex() {
        let mut body = Vec::new();
        body.extend_from_slice(&3i16.to_be_bytes());
        body.extend_from_slice(&2i32.to_be_bytes());
        body.extend_from_slice(b"hi");
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&4i32.to_be_bytes());
        body.extend_from_slice(&[0, 0, 1, 0]);
        let frame = backend::message(b'D', &body);
        assert_eq!(
            row_values(&frame, &[0, 0, 1], &[true, true, false]).unwrap(),
            vec![
                Some("hi".to_string()),
                None,
                Some("\\x00000100".to_string())
            ]
        );
    }

    #[test]
    fn bind_values_give_parameters_and_result_formats() {
        let mut body = Vec::new();
        body.extend_from_slice(b"p\0s\0");
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(&1i16.to_be_bytes());
        body.extend_from_slice(&2i16.to_be_bytes());
        body.extend_from_slice(&3i32.to_be_bytes());
        body.extend_from_slice(b"abc");
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&2i16.to_be_bytes());
        body.extend_from_slice(&0i16.to_be_bytes());
        body.extend_from_slice(&1i16.to_be_bytes());
        assert_eq!(
            bind_values(&body),
            Some(BindValues {
                parameters: vec![Some("\\x616263".into()), None],
                result_formats: vec![0, 1],
            })
        );
        assert_eq!(bind_values(b"p\0s\0\0"), None);
    }

    #[test]
    fn command_tags_give_affected_rows() {
        assert_eq!(affected_rows(b"INSERT 0 3\0"), Some(3));
        assert_eq!(affected_rows(b"UPDATE 12\0"), Some(12));
        assert_eq!(affected_rows(b"CREATE TABLE\0"), None);
    }
}
