//! Integration tests for [`PgCluster`]: start, SQL through psql, SCRAM password checks,
//! the shared per-process cluster, and cleanup on drop. They need the PostgreSQL server
//! binaries installed locally (see `sluice_pgcluster::pg`).

use std::net::TcpStream;
use std::process::Output;
use std::thread;

use sluice_pgcluster::pg::PgCluster;

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn start_create_database_run_sql_and_query() {
    let cluster = PgCluster::start().expect("start cluster");
    assert_eq!(cluster.host(), "127.0.0.1");
    assert_eq!(cluster.superuser(), "postgres");
    assert_ne!(cluster.port(), 0);
    assert_eq!(
        cluster.url("app"),
        format!(
            "postgres://postgres:{}@127.0.0.1:{}/app",
            cluster.superuser_password(),
            cluster.port()
        )
    );

    cluster.create_database("app").unwrap();
    cluster
        .execute(
            "app",
            "CREATE TABLE t (id int PRIMARY KEY, name text);\n\
             INSERT INTO t VALUES (1, 'one'), (2, 'two');",
        )
        .unwrap();
    assert_eq!(
        cluster
            .query_scalar("app", "SELECT count(*) FROM t")
            .unwrap(),
        "2"
    );
    assert_eq!(
        cluster
            .query_scalar("app", "SELECT name FROM t WHERE id = 2")
            .unwrap(),
        "two"
    );
    assert_eq!(
        cluster
            .query_scalar("app", "SELECT current_database()")
            .unwrap(),
        "app"
    );

    // SQL errors are reported with psql's message.
    let err = cluster
        .execute("app", "SELECT * FROM missing_table")
        .unwrap_err();
    assert!(format!("{err:#}").contains("missing_table"), "{err:#}");
    // Creating an existing database fails.
    assert!(cluster.create_database("app").is_err());
}

#[test]
fn tcp_connections_require_the_right_password() {
    let cluster = PgCluster::start().expect("start cluster");

    // Every TCP rule in pg_hba.conf is SCRAM.
    let weak = cluster
        .query_scalar(
            "postgres",
            "SELECT count(*) FROM pg_hba_file_rules \
             WHERE type LIKE 'host%' AND auth_method <> 'scram-sha-256'",
        )
        .unwrap();
    assert_eq!(weak, "0");

    let wrong = cluster
        .psql_command("postgres", "not-the-password", "postgres")
        .args(["-c", "SELECT 1"])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("password authentication failed"),
        "{}",
        stderr(&wrong)
    );

    let right = cluster
        .psql_command("postgres", cluster.superuser_password(), "postgres")
        .args(["-At", "-c", "SELECT 1"])
        .output()
        .unwrap();
    assert!(right.status.success(), "{}", stderr(&right));
    assert_eq!(String::from_utf8_lossy(&right.stdout).trim(), "1");

    // A role created with create_role logs in with its password only.
    cluster.create_role("app_user", "s3cret'pw", false).unwrap();
    let as_role = cluster
        .psql_command("app_user", "s3cret'pw", "postgres")
        .args([
            "-At",
            "-c",
            "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user",
        ])
        .output()
        .unwrap();
    assert!(as_role.status.success(), "{}", stderr(&as_role));
    assert_eq!(
        String::from_utf8_lossy(&as_role.stdout).trim(),
        "app_user|f"
    );
    let role_wrong = cluster
        .psql_command("app_user", "nope", "postgres")
        .args(["-c", "SELECT 1"])
        .output()
        .unwrap();
    assert!(stderr(&role_wrong).contains("password authentication failed"));

    cluster.create_role("admin", "adminpw", true).unwrap();
    assert_eq!(
        cluster
            .query_scalar(
                "postgres",
                "SELECT rolsuper FROM pg_roles WHERE rolname = 'admin'"
            )
            .unwrap(),
        "t"
    );
}

#[test]
fn shared_cluster_works_from_two_threads() {
    let handles: Vec<_> = (0..2)
        .map(|i| {
            thread::spawn(move || {
                let cluster = PgCluster::shared();
                let db = cluster.fresh_database("Shared-Test");
                assert!(db.starts_with("sharedtest_"), "{db}");
                cluster
                    .execute(
                        &db,
                        &format!("CREATE TABLE t (x int); INSERT INTO t VALUES ({i});"),
                    )
                    .unwrap();
                let x = cluster.query_scalar(&db, "SELECT x FROM t").unwrap();
                assert_eq!(x, i.to_string());
                (cluster.port(), db)
            })
        })
        .collect();
    let results: Vec<(u16, String)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results[0].0, results[1].0, "one cluster per process");
    assert_ne!(results[0].1, results[1].1, "one database per test");
    assert!(std::ptr::eq(PgCluster::shared(), PgCluster::shared()));
}

#[test]
fn drop_stops_the_server_and_removes_its_files() {
    let cluster = PgCluster::start().expect("start cluster");
    let port = cluster.port();
    let data_dir = cluster.data_dir().to_path_buf();
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    drop(cluster);
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still open after drop"
    );
    assert!(!data_dir.exists(), "{} still exists", data_dir.display());
}
