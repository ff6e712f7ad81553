//! A statement's normalized text: its parse tree printed back by PostgreSQL's own
//! deparser. Spacing, keyword case, comments and redundant parentheses go; every name and
//! every constant stays. What approval tickets are matched on (see `sluice-approvals`'
//! fingerprint), so "exactly that statement" holds however the agent spells it again.

use crate::error::ClassifyError;

/// The normalized text of `sql` (all of its statements). Fails as classification does on
/// what PostgreSQL's grammar does not accept.
pub fn normalized_text(sql: &str) -> Result<String, ClassifyError> {
    let parsed = pg_query::parse(sql, 0).map_err(|e| ClassifyError::Parse(e.to_string()))?;
    parsed
        .deparse(Default::default())
        .map_err(|e| ClassifyError::Parse(format!("cannot print the statement back: {e}")))
}

#[cfg(test)]
mod tests {
    use super::normalized_text;

    #[test]
    fn spelling_goes_and_values_stay() {
        let a = normalized_text("DELETE FROM orders WHERE id = 1").unwrap();
        assert_eq!(
            a,
            normalized_text("delete   from ORDERS\n where (id=1) -- tidy up").unwrap()
        );
        assert_eq!(
            a,
            normalized_text("/* x */ DELETE FROM orders WHERE id = 1;").unwrap()
        );
        assert_ne!(
            a,
            normalized_text("DELETE FROM orders WHERE id = 2").unwrap()
        );
        assert_ne!(
            a,
            normalized_text("DELETE FROM orders WHERE id = '1'").unwrap()
        );
        assert_ne!(
            a,
            normalized_text("DELETE FROM \"Orders\" WHERE id = 1").unwrap()
        );
        assert_ne!(
            a,
            normalized_text("DELETE FROM other.orders WHERE id = 1").unwrap()
        );
        assert_ne!(
            normalized_text("UPDATE t SET a = 'x'").unwrap(),
            normalized_text("UPDATE t SET a = 'X'").unwrap()
        );
        assert!(normalized_text("DELETE FROM").is_err());
    }
}
