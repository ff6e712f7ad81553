//! Masking results on the way to the client: RowDescription tells which columns a mask
//! covers, and each DataRow is rewritten on its own (streaming: the rows of one read at
//! most in memory, masked into one reused buffer).
//!
//! What masks mean is decided elsewhere and once for every protocol: the policy crate
//! says which masks apply to a session (and refuses statements that would carry a masked
//! column out through an expression, so every masked value that reaches a result leaves
//! as a plain column whose origin PostgreSQL reports), and `sluice-mask` holds the
//! detectors and strategies. This module only translates the wire format:
//!
//! - a column is masked when any of its names ([`crate::catalog`]: its own
//!   `schema.table.column`, those of the tables it inherits from, the base columns a view
//!   column shows) matches a column mask; the most concealing matching strategy wins;
//! - detector masks scan every value that is text on the wire or of a text type;
//! - a masked value must still parse as its column's type. Masks produce text, so a value
//!   of a text type (`text`, `varchar`, `char`, `name`) gets the masked text, in the text
//!   and in the binary format alike (the binary form of those types is the text itself);
//!   a value of any other type (numbers, dates, `json`, `bytea`, ...) that a mask covers,
//!   or in which a detector finds something, becomes NULL, the one value every type
//!   accepts. A binary value of a non-text type cannot be scanned and is not.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use globset::{Glob, GlobMatcher};
use sluice_config::{MaskPredicates, MaskStrategy};
use sluice_mask::{DetectorSet, Masker};
use sluice_policy::{MaskSpec, SessionPolicy};

use std::borrow::Cow;

use sluice_sql::{CopyOut, CopyOutFormat};

use crate::catalog::{Catalog, CatalogError, RelationColumn};
use crate::copy_rows::{decode, encode, join_row, split_row, CopyFormat};
use crate::protocol::codec::BodyReader;

/// Type OIDs whose text and binary forms are the value's text (pg_type.h).
pub(crate) const TEXT_TYPES: &[u32] = &[
    25,   // text
    1043, // varchar
    1042, // bpchar
    19,   // name
    705,  // unknown
];

/// Type OIDs whose text form cannot hold anything a detector looks for (too few digits
/// for a card or an IBAN, no letters, dashes in the wrong places): not scanned.
const UNSCANNED_TYPES: &[u32] = &[
    16,   // bool
    21,   // int2
    23,   // int4
    26,   // oid
    700,  // float4
    1082, // date
    1083, // time
    1114, // timestamp
    1184, // timestamptz
    2950, // uuid
];

#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    #[error("malformed {0} from the resource")]
    Malformed(&'static str),
    #[error("a DataRow has {got} columns where its RowDescription has {expected}")]
    ColumnCount { expected: usize, got: usize },
    #[error("{0} cannot be masked")]
    Unmaskable(&'static str),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// The masks of one session, compiled.
pub struct SessionMasks {
    columns: Vec<(GlobMatcher, MaskStrategy)>,
    /// The column masks of policies with `mask_predicates: refuse`.
    predicate_refusing: Vec<GlobMatcher>,
    /// The table part of each column mask (`schema.table` of `schema.table.column`).
    column_tables: Vec<GlobMatcher>,
    /// Most concealing strategy first, so a value two detector masks cover gets it.
    detectors: Vec<(DetectorSet, MaskStrategy)>,
    masker: Masker,
}

impl SessionMasks {
    /// `None` when no column or detector mask applies to the session: results then go
    /// through untouched and uninspected.
    pub fn new(policy: &SessionPolicy, hash_key: &[u8]) -> Option<Arc<Self>> {
        let mut columns = Vec::new();
        let mut column_tables = Vec::new();
        let mut predicate_refusing = Vec::new();
        let mut detectors = Vec::new();
        let masks = policy.policies.iter().flat_map(|p| {
            let refuses = p.mask_predicates == MaskPredicates::Refuse;
            p.masks.iter().map(move |m| (m, refuses))
        });
        for (mask, refuses_predicates) in masks {
            match &mask.spec {
                MaskSpec::Column { column, with, .. } => {
                    let glob = glob_or_everything(column);
                    if refuses_predicates {
                        predicate_refusing.push(glob.clone());
                    }
                    columns.push((glob, *with));
                    let table = column.rsplit_once('.').map_or(column.as_str(), |(t, _)| t);
                    column_tables.push(glob_or_everything(table));
                }
                MaskSpec::Detect {
                    detectors: which,
                    with,
                    ..
                } => detectors.push((DetectorSet::new(which.iter().copied()), *with)),
                MaskSpec::Json { .. } => {}
            }
        }
        if columns.is_empty() && detectors.is_empty() {
            return None;
        }
        detectors.sort_by_key(|(_, with)| std::cmp::Reverse(with.concealment()));
        Some(Arc::new(SessionMasks {
            columns,
            predicate_refusing,
            column_tables,
            detectors,
            masker: Masker::new(hash_key),
        }))
    }

    /// Whether a column mask may cover a column of one of `tables` (`schema.table`), or a
    /// detector applies (it covers everything).
    pub fn covers_any_table(&self, tables: &[String]) -> bool {
        !self.detectors.is_empty()
            || self
                .column_tables
                .iter()
                .any(|glob| tables.iter().any(|t| glob.is_match(t)))
    }

    /// The replacement for one value (`Some(None)` = NULL), or `None` to keep it.
    fn mask_value(&self, plan: &ColumnPlan, value: &[u8]) -> Option<Option<Vec<u8>>> {
        let mut replacement = String::new();
        match self.mask_value_into(plan, value, &mut replacement) {
            ValueChange::Keep => None,
            ValueChange::Null => Some(None),
            ValueChange::Replaced => Some(Some(replacement.into_bytes())),
        }
    }

    /// What becomes of one value; a replacement is written to `replacement` (cleared
    /// first), which a caller reuses from value to value so that masking a row allocates
    /// nothing.
    fn mask_value_into(
        &self,
        plan: &ColumnPlan,
        value: &[u8],
        replacement: &mut String,
    ) -> ValueChange {
        if let Some(strategy) = plan.strategy {
            if !plan.text_type {
                return ValueChange::Null;
            }
            // A text value that is not UTF-8 cannot be masked by characters: NULL.
            let Ok(text) = std::str::from_utf8(value) else {
                return ValueChange::Null;
            };
            replacement.clear();
            return if self.masker.write_masked(strategy, text, replacement) {
                ValueChange::Replaced
            } else {
                ValueChange::Null
            };
        }
        if self.detectors.is_empty() || plan.unscanned || (plan.binary && !plan.text_type) {
            return ValueChange::Keep;
        }
        // Most values hold nothing any detector could find (too few digits, no `@`...),
        // which is seen in their bytes: they go on without being decoded.
        if !self
            .detectors
            .iter()
            .any(|(detectors, _)| detectors.may_find_in(value))
        {
            return ValueChange::Keep;
        }
        let Ok(text) = std::str::from_utf8(value) else {
            // Something may be in it, and it cannot be scanned: fail closed.
            return ValueChange::Null;
        };
        let mut current = Cow::Borrowed(text);
        for (detectors, strategy) in &self.detectors {
            match detectors.mask_text(&self.masker, *strategy, &current) {
                None => return ValueChange::Null,
                Some(Cow::Borrowed(_)) => {}
                Some(Cow::Owned(masked)) => current = Cow::Owned(masked),
            }
        }
        match current {
            Cow::Borrowed(_) => ValueChange::Keep,
            Cow::Owned(_) if !plan.text_type => ValueChange::Null,
            Cow::Owned(masked) => {
                *replacement = masked;
                ValueChange::Replaced
            }
        }
    }

    /// Whether any policy of the session refuses predicates on its masked columns.
    pub fn refuses_any_predicates(&self) -> bool {
        !self.predicate_refusing.is_empty()
    }

    /// Whether a column going by `names` is masked by a policy that refuses predicates on
    /// its masked columns (`mask_predicates: refuse`).
    pub fn refuses_predicates(&self, names: &[String]) -> bool {
        self.predicate_refusing
            .iter()
            .any(|glob| names.iter().any(|n| glob.is_match(n)))
    }

    /// The strategy for a column going by `names`: the most concealing matching mask's.
    pub fn column_strategy(&self, names: &[String]) -> Option<MaskStrategy> {
        self.columns
            .iter()
            .filter(|(glob, _)| names.iter().any(|n| glob.is_match(n)))
            .map(|(_, with)| *with)
            .max_by_key(|with| with.concealment())
    }
}

/// A mask pattern's matcher. Patterns are validated at load; one that still fails to
/// compile matches everything, so it masks too much rather than nothing.
fn glob_or_everything(pattern: &str) -> GlobMatcher {
    Glob::new(pattern)
        .unwrap_or_else(|_| Glob::new("*").expect("valid"))
        .compile_matcher()
}

/// How one result column is treated.
#[derive(Debug, Clone, Copy)]
struct ColumnPlan {
    strategy: Option<MaskStrategy>,
    text_type: bool,
    binary: bool,
    /// Of a type detectors cannot find anything in.
    unscanned: bool,
}

/// The masking of one result (one RowDescription's rows).
pub struct ResultMask {
    columns: Vec<ColumnPlan>,
    masks: Arc<SessionMasks>,
}

impl ResultMask {
    /// Reads a RowDescription body and resolves its columns. `None` when no value of the
    /// result can need masking.
    pub async fn build(
        row_description: &[u8],
        masks: &Arc<SessionMasks>,
        catalog: &Catalog,
    ) -> Result<Option<ResultMask>, MaskError> {
        let malformed = |_| MaskError::Malformed("RowDescription");
        let mut r = BodyReader::new(row_description);
        let count = r.i16("RowDescription").map_err(malformed)?;
        let mut columns = Vec::with_capacity(count.max(0) as usize);
        for _ in 0..count {
            r.cstr("RowDescription").map_err(malformed)?;
            let table = r.i32("RowDescription").map_err(malformed)? as u32;
            let attnum = r.i16("RowDescription").map_err(malformed)?;
            let type_oid = r.i32("RowDescription").map_err(malformed)? as u32;
            r.i16("RowDescription").map_err(malformed)?;
            r.i32("RowDescription").map_err(malformed)?;
            let format = r.i16("RowDescription").map_err(malformed)?;
            let strategy = if table != 0 && !masks.columns.is_empty() {
                let relation = catalog.relation(table).await?;
                relation
                    .column(attnum)
                    .and_then(|names| masks.column_strategy(names))
            } else {
                None
            };
            columns.push(ColumnPlan {
                strategy,
                text_type: TEXT_TYPES.contains(&type_oid),
                binary: format == 1,
                unscanned: UNSCANNED_TYPES.contains(&type_oid),
            });
        }
        let needed = !masks.detectors.is_empty() || columns.iter().any(|c| c.strategy.is_some());
        Ok(needed.then(|| ResultMask {
            columns,
            masks: masks.clone(),
        }))
    }

    /// The DataRow message (whole frame) rewritten, or `None` when no value changed.
    pub fn rewrite(&self, frame: &[u8]) -> Result<Option<Bytes>, MaskError> {
        let mut out = BytesMut::with_capacity(frame.len() + 16);
        let changed = self.rewrite_into(frame, &mut out, &mut String::new())?;
        Ok(changed.then(|| out.freeze()))
    }

    /// Appends the DataRow message `frame` (whole) to `out` with the masks applied, and
    /// says whether any value changed. `replacement` is scratch space, reused across
    /// values and rows: a run of rows is masked into one buffer without an allocation per
    /// row or per value.
    pub fn rewrite_into(
        &self,
        frame: &[u8],
        out: &mut BytesMut,
        replacement: &mut String,
    ) -> Result<bool, MaskError> {
        const MALFORMED: MaskError = MaskError::Malformed("DataRow");
        let count = match frame.get(5..7) {
            Some(count) => i16::from_be_bytes([count[0], count[1]]),
            None => return Err(MALFORMED),
        };
        if count as usize != self.columns.len() {
            return Err(MaskError::ColumnCount {
                expected: self.columns.len(),
                got: count.max(0) as usize,
            });
        }
        let start = out.len();
        out.reserve(frame.len() + 16);
        // What is kept is copied in spans, from `kept_from` up to the next value that
        // changes (its length included); the header's length is rewritten at the end.
        let mut kept_from = 0;
        let mut at = 7;
        let mut changed = false;
        for plan in &self.columns {
            let Some(header) = frame.get(at..at + 4) else {
                out.truncate(start);
                return Err(MALFORMED);
            };
            let len = i32::from_be_bytes([header[0], header[1], header[2], header[3]]);
            let value_start = at + 4;
            if len < 0 {
                at = value_start;
                continue;
            }
            let Some(value) = frame.get(value_start..value_start + len as usize) else {
                out.truncate(start);
                return Err(MALFORMED);
            };
            let value_end = value_start + value.len();
            let new_len = match self.masks.mask_value_into(plan, value, replacement) {
                ValueChange::Keep => {
                    at = value_end;
                    continue;
                }
                ValueChange::Null => -1,
                ValueChange::Replaced => match i32::try_from(replacement.len()) {
                    Ok(len) => len,
                    Err(_) => {
                        out.truncate(start);
                        return Err(MALFORMED);
                    }
                },
            };
            out.extend_from_slice(&frame[kept_from..at]);
            out.put_i32(new_len);
            if new_len >= 0 {
                out.extend_from_slice(replacement.as_bytes());
            }
            kept_from = value_end;
            at = value_end;
            changed = true;
        }
        // Bytes after the last value are not part of any column: a DataRow PostgreSQL
        // would never send, and not one to pass on unread.
        if at != frame.len() {
            out.truncate(start);
            return Err(MALFORMED);
        }
        out.extend_from_slice(&frame[kept_from..]);
        let len = (out.len() - start - 1) as i32;
        out[start + 1..start + 5].copy_from_slice(&len.to_be_bytes());
        Ok(changed)
    }
}

/// What masking does to one value.
enum ValueChange {
    Keep,
    Null,
    /// The value is replaced by the text masking wrote.
    Replaced,
}

/// The masking of one `COPY ... TO STDOUT` (text or CSV rows).
pub struct CopyMask {
    format: CopyFormat,
    columns: Vec<ColumnPlan>,
    /// The first row is the header (column names), not values.
    header_pending: bool,
    masks: Arc<SessionMasks>,
}

impl CopyMask {
    /// Plans the masking of a COPY of `copy.table` (its listed columns, or all of them).
    /// Errors when the COPY's rows cannot be masked soundly.
    pub async fn build(
        copy: &CopyOut,
        masks: &Arc<SessionMasks>,
        catalog: &Catalog,
    ) -> Result<CopyMask, MaskError> {
        let format = match (copy.format, copy.other_options.is_empty()) {
            (CopyOutFormat::Text, true) => CopyFormat::Text,
            (CopyOutFormat::Csv, true) => CopyFormat::Csv,
            _ => {
                return Err(MaskError::Unmaskable(
                    "COPY in binary or with custom options",
                ))
            }
        };
        let relation = catalog
            .relation_named(&copy.table)
            .await?
            .ok_or(MaskError::Unmaskable(
                "COPY of a table the catalog does not show",
            ))?;
        let plan = |column: &RelationColumn| ColumnPlan {
            strategy: masks.column_strategy(&column.names),
            text_type: TEXT_TYPES.contains(&column.type_oid),
            binary: false,
            unscanned: UNSCANNED_TYPES.contains(&column.type_oid),
        };
        let columns = if copy.columns.is_empty() {
            relation.columns().iter().map(plan).collect()
        } else {
            copy.columns
                .iter()
                .map(|name| {
                    relation
                        .column_named(name)
                        .map(plan)
                        .ok_or(MaskError::Unmaskable(
                            "COPY of a column the catalog does not show",
                        ))
                })
                .collect::<Result<_, _>>()?
        };
        Ok(CopyMask {
            format,
            columns,
            header_pending: copy.header,
            masks: masks.clone(),
        })
    }

    /// One CopyData payload (one row) rewritten, or `None` when nothing changed.
    pub fn rewrite(&mut self, row: &[u8]) -> Result<Option<Vec<u8>>, MaskError> {
        if std::mem::take(&mut self.header_pending) {
            return Ok(None);
        }
        let fields = split_row(self.format, row).map_err(|_| MaskError::Malformed("COPY row"))?;
        if fields.len() != self.columns.len() {
            return Err(MaskError::ColumnCount {
                expected: self.columns.len(),
                got: fields.len(),
            });
        }
        let mut out: Vec<Cow<'_, [u8]>> = Vec::with_capacity(fields.len());
        let mut changed = false;
        for (field, plan) in fields.into_iter().zip(&self.columns) {
            if plan.strategy.is_none() && self.masks.detectors.is_empty() {
                out.push(Cow::Borrowed(field.0));
                continue;
            }
            let value =
                decode(self.format, field).map_err(|_| MaskError::Malformed("COPY field"))?;
            let replacement = value.and_then(|v| self.masks.mask_value(plan, &v));
            match replacement {
                None => out.push(Cow::Borrowed(field.0)),
                Some(new) => {
                    let mut encoded = Vec::new();
                    encode(self.format, new.as_deref(), &mut encoded);
                    out.push(Cow::Owned(encoded));
                    changed = true;
                }
            }
        }
        Ok(changed.then(|| join_row(self.format, &out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_mask::Detector;

    fn card_detecting_masks() -> SessionMasks {
        SessionMasks {
            columns: Vec::new(),
            predicate_refusing: Vec::new(),
            column_tables: Vec::new(),
            detectors: vec![(
                DetectorSet::new([Detector::CreditCard]),
                MaskStrategy::Redact,
            )],
            masker: Masker::new(b"test key"),
        }
    }

    const SCANNED_TEXT: ColumnPlan = ColumnPlan {
        strategy: None,
        text_type: true,
        binary: false,
        unscanned: false,
    };

    fn change(masks: &SessionMasks, plan: &ColumnPlan, value: &[u8]) -> (ValueChange, String) {
        let mut replacement = String::new();
        let change = masks.mask_value_into(plan, value, &mut replacement);
        (change, replacement)
    }

    /// A DataRow frame of `values` (`None` for NULL).
    fn data_row(values: &[Option<&[u8]>]) -> Vec<u8> {
        let mut body = (values.len() as i16).to_be_bytes().to_vec();
        for value in values {
            match value {
                None => body.extend((-1i32).to_be_bytes()),
                Some(v) => {
                    body.extend((v.len() as i32).to_be_bytes());
                    body.extend(*v);
                }
            }
        }
        let mut frame = vec![b'D'];
        frame.extend(((body.len() + 4) as i32).to_be_bytes());
        frame.extend(body);
        frame
    }

    #[test]
    fn a_row_is_rewritten_value_by_value_around_what_is_kept() {
        let last4 = ColumnPlan {
            strategy: Some(MaskStrategy::Last4),
            ..SCANNED_TEXT
        };
        let not_text = ColumnPlan {
            strategy: Some(MaskStrategy::Last4),
            text_type: false,
            ..SCANNED_TEXT
        };
        let unscanned = ColumnPlan {
            unscanned: true,
            ..SCANNED_TEXT
        };
        let mask = ResultMask {
            columns: vec![
                unscanned,
                SCANNED_TEXT,
                last4,
                SCANNED_TEXT,
                not_text,
                last4,
            ],
            masks: Arc::new(card_detecting_masks()),
        };
        let row = data_row(&[
            Some(b"4111111111111111"),
            Some(b"note 4111 1111 1111 1111"),
            Some(b"4111111111111111"),
            None,
            Some(b"12"),
            Some(b"abcdef"),
        ]);
        let mut out = BytesMut::from(&b"before"[..]);
        let changed = mask
            .rewrite_into(&row, &mut out, &mut String::new())
            .unwrap();
        assert!(changed);
        assert_eq!(&out[..6], b"before", "appended after what the buffer held");
        let expected = data_row(&[
            Some(b"4111111111111111"),
            Some(b"note ****"),
            Some(b"************1111"),
            None,
            None,
            Some(b"**cdef"),
        ]);
        assert_eq!(&out[6..], &expected[..]);

        // A row with nothing to change is copied whole.
        let innocent = data_row(&[Some(b"1"), Some(b"x"), None, None, None, None]);
        let mut out = BytesMut::new();
        assert!(!mask
            .rewrite_into(&innocent, &mut out, &mut String::new())
            .unwrap());
        assert_eq!(&out[..], &innocent[..]);
    }

    #[test]
    fn malformed_rows_are_refused_and_leave_nothing_behind() {
        let mask = ResultMask {
            columns: vec![SCANNED_TEXT, SCANNED_TEXT],
            masks: Arc::new(card_detecting_masks()),
        };
        let good = data_row(&[Some(b"card 4111111111111111"), Some(b"ok")]);
        let mut trailing = good.clone();
        trailing.push(0);
        let mut cut_short = good.clone();
        cut_short.truncate(good.len() - 1);
        let three = data_row(&[None, None, None]);
        for (name, row) in [
            ("trailing", trailing),
            ("cut short", cut_short),
            ("three", three),
        ] {
            let mut out = BytesMut::from(&b"kept"[..]);
            assert!(
                mask.rewrite_into(&row, &mut out, &mut String::new())
                    .is_err(),
                "{name}"
            );
            assert_eq!(&out[..], b"kept", "{name}");
        }
    }

    #[test]
    fn detected_values_are_replaced_and_innocent_ones_kept() {
        let masks = card_detecting_masks();
        let (found, replacement) = change(&masks, &SCANNED_TEXT, b"card 4111 1111 1111 1111 ok");
        assert!(matches!(found, ValueChange::Replaced));
        assert!(!replacement.contains("4111"), "{replacement}");
        let (innocent, _) = change(&masks, &SCANNED_TEXT, b"order 12345 shipped");
        assert!(matches!(innocent, ValueChange::Keep));
    }

    #[test]
    fn undecodable_values_are_nulled_only_where_something_could_be_found() {
        let masks = card_detecting_masks();
        // Too few digits for a card, whatever the other bytes mean: nothing to find.
        let (few_digits, _) = change(&masks, &SCANNED_TEXT, b"caf\xe9 no 12");
        assert!(matches!(few_digits, ValueChange::Keep));
        // Enough digits, and the value cannot be read to look: fail closed.
        let (card_like, _) = change(&masks, &SCANNED_TEXT, b"\xff 4111111111111111");
        assert!(matches!(card_like, ValueChange::Null));
        // A masked column's value is always masked, and one that cannot be read is NULL.
        let masked_column = ColumnPlan {
            strategy: Some(MaskStrategy::Last4),
            ..SCANNED_TEXT
        };
        let (masked, _) = change(&masks, &masked_column, b"caf\xe9");
        assert!(matches!(masked, ValueChange::Null));
    }
}
