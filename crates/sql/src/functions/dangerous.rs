//! Built-in functions that need a rule naming them literally.
//!
//! Each reaches beyond reading the rows a statement names: the server's files, large
//! objects, other databases, other sessions, the server's configuration, sequences, or
//! SQL given as text (which the gateway cannot see into). A statement calling one is
//! refused unless a rule lists the function by its exact name, whatever else it allows.

/// Exact names and why each is dangerous.
const EXACT: &[(&str, &str)] = &[
    ("pg_read_file", "reads files on the database server"),
    ("pg_read_binary_file", "reads files on the database server"),
    ("pg_stat_file", "inspects files on the database server"),
    ("pg_ls_dir", "lists directories on the database server"),
    ("pg_current_logfile", "reveals server log file paths"),
    ("pg_logdir_ls", "lists server log files"),
    ("pg_file_write", "writes files on the database server"),
    ("pg_file_rename", "renames files on the database server"),
    ("pg_file_unlink", "deletes files on the database server"),
    ("pg_file_sync", "touches files on the database server"),
    ("loread", "reads a large object"),
    ("lowrite", "writes a large object"),
    ("pg_terminate_backend", "terminates other sessions"),
    ("pg_cancel_backend", "cancels other sessions' queries"),
    ("pg_signal_backend", "signals other sessions"),
    ("pg_reload_conf", "reloads the server configuration"),
    ("pg_rotate_logfile", "rotates the server log"),
    ("pg_promote", "promotes a standby server"),
    (
        "pg_log_backend_memory_contexts",
        "makes another backend write to the server log",
    ),
    ("pg_switch_wal", "forces a WAL switch"),
    ("pg_create_restore_point", "writes a WAL restore point"),
    ("pg_backup_start", "controls backups"),
    ("pg_backup_stop", "controls backups"),
    ("pg_start_backup", "controls backups"),
    ("pg_stop_backup", "controls backups"),
    ("pg_wal_replay_pause", "controls WAL replay"),
    ("pg_wal_replay_resume", "controls WAL replay"),
    (
        "pg_create_physical_replication_slot",
        "creates a replication slot",
    ),
    (
        "pg_create_logical_replication_slot",
        "creates a replication slot",
    ),
    ("pg_drop_replication_slot", "drops a replication slot"),
    (
        "pg_copy_physical_replication_slot",
        "creates a replication slot",
    ),
    (
        "pg_copy_logical_replication_slot",
        "creates a replication slot",
    ),
    ("pg_replication_slot_advance", "moves a replication slot"),
    ("pg_logical_emit_message", "writes to the WAL"),
    ("pg_logical_slot_get_changes", "consumes a replication slot"),
    (
        "pg_logical_slot_peek_changes",
        "reads every change in the database",
    ),
    (
        "pg_logical_slot_get_binary_changes",
        "consumes a replication slot",
    ),
    (
        "pg_logical_slot_peek_binary_changes",
        "reads every change in the database",
    ),
    (
        "set_config",
        "changes run-time settings, including the role",
    ),
    ("nextval", "writes a sequence"),
    ("setval", "writes a sequence"),
    ("query_to_xml", "runs SQL given as text"),
    ("query_to_xml_and_xmlschema", "runs SQL given as text"),
    ("query_to_xmlschema", "runs SQL given as text"),
    ("cursor_to_xml", "reads a cursor opened elsewhere"),
    ("cursor_to_xmlschema", "reads a cursor opened elsewhere"),
    ("ts_stat", "runs SQL given as text"),
    ("ts_rewrite", "runs SQL given as text"),
    ("pg_sleep", "holds a backend"),
    ("pg_sleep_for", "holds a backend"),
    ("pg_sleep_until", "holds a backend"),
    ("pg_notify", "sends notifications to other sessions"),
    ("pg_import_system_collations", "creates collations"),
    ("brin_summarize_new_values", "writes index data"),
    ("brin_summarize_range", "writes index data"),
    ("brin_desummarize_range", "writes index data"),
    ("gin_clean_pending_list", "writes index data"),
];

/// Name prefixes of dangerous families.
const PREFIXES: &[(&str, &str)] = &[
    (
        "lo_",
        "reads or writes large objects, or server files through them",
    ),
    ("dblink", "connects to another database"),
    ("pg_ls_", "lists directories on the database server"),
    ("pg_replication_origin_", "controls replication origins"),
    ("pg_stat_reset", "resets statistics"),
    ("pg_advisory", "takes advisory locks"),
    ("pg_try_advisory", "takes advisory locks"),
    ("table_to_xml", "reads a table named as text"),
    (
        "schema_to_xml",
        "reads every table of a schema named as text",
    ),
    ("database_to_xml", "reads every table of the database"),
    ("binary_upgrade_", "rewrites catalog state"),
];

/// Why `name` (a `pg_catalog` function, or any unqualified name) is dangerous, if it is.
pub fn reason(name: &str) -> Option<&'static str> {
    EXACT
        .iter()
        .find(|(n, _)| *n == name)
        .or_else(|| PREFIXES.iter().find(|(p, _)| name.starts_with(p)))
        .map(|(_, why)| *why)
}
