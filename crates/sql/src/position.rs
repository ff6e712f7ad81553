//! Where in a statement PostgreSQL's parser gave up: the cursor position of a syntax
//! error, so a refusal can carry it as PostgreSQL's own error would (ErrorResponse field
//! `P`; psql then prints the `LINE n:` excerpt and caret).
//!
//! The `pg_query` crate reports a parse error's message but drops its position, so this
//! module asks libpg_query (linked in by that crate) directly, through the one C function
//! that parses without building a tree, `pg_query_normalize`, whose error carries
//! `cursorpos`. The declarations mirror `pg_query.h`; only the error path calls them.

use std::ffi::{c_char, c_int, CString};

#[repr(C)]
struct PgQueryError {
    message: *mut c_char,
    funcname: *mut c_char,
    filename: *mut c_char,
    lineno: c_int,
    cursorpos: c_int,
    context: *mut c_char,
}

#[repr(C)]
struct PgQueryNormalizeResult {
    normalized_query: *mut c_char,
    error: *mut PgQueryError,
}

extern "C" {
    fn pg_query_normalize(input: *const c_char) -> PgQueryNormalizeResult;
    fn pg_query_free_normalize_result(result: PgQueryNormalizeResult);
}

/// The 1-based character position of the syntax error in `sql`, as PostgreSQL reports it,
/// or `None` when `sql` parses or the parser gives no position.
pub fn syntax_error_position(sql: &str) -> Option<u32> {
    let input = CString::new(sql).ok()?;
    // SAFETY: `input` is a valid NUL-terminated string that outlives the call; the result
    // is read only before it is freed, with the function libpg_query provides for it.
    unsafe {
        let result = pg_query_normalize(input.as_ptr());
        let position = if result.error.is_null() {
            None
        } else {
            u32::try_from((*result.error).cursorpos)
                .ok()
                .filter(|p| *p > 0)
        };
        pg_query_free_normalize_result(result);
        position
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_postgresqls() {
        // `SELEC` is where PostgreSQL stops: "syntax error at or near "SELEC"", position 1.
        assert_eq!(syntax_error_position("SELEC 1"), Some(1));
        // Characters, not bytes: the two-byte é counts once.
        assert_eq!(syntax_error_position("SELECT 'é' FROM FROM t"), Some(17));
        assert_eq!(syntax_error_position("SELECT 1"), None);
    }
}
