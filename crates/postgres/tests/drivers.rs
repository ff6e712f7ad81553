//! Unmodified drivers through the gateway: psycopg 3 and the PostgreSQL JDBC driver each
//! connect with a token, run extended-protocol and prepared statements, COPY both ways, see
//! a refusal as SQLSTATE 42501 and carry on, and cancel a running statement (57014).
//!
//! The checks themselves are the driver's own language, in tests/drivers/; they print what
//! they checked and exit non-zero on the first failed expectation. A driver that is not
//! installed fails the test (scripts/ensure-deps.sh installs both).

mod support;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::Fixture;

/// The JDBC driver as Debian's libpostgresql-jdbc-java installs it.
const PGJDBC_JAR: &str = "/usr/share/java/postgresql.jar";

/// Longer than any check needs (each cancel is of a 30 s sleep, after 0.5 s).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

fn drivers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/drivers")
}

const INSTALL_HINT: &str = "run scripts/ensure-deps.sh (as root) to install the drivers";

/// Runs `cmd` to the end (killing it after `SCRIPT_TIMEOUT`); returns success and the
/// combined report to show.
fn run(mut cmd: Command, what: &str) -> (bool, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e} ({INSTALL_HINT})"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = pipe.read_to_end(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let (status, timed_out) = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break (status, false);
        }
        if started.elapsed() > SCRIPT_TIMEOUT {
            let _ = child.kill();
            break (child.wait().unwrap(), true);
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let (stdout, stderr) = (stdout.join().unwrap(), stderr.join().unwrap());
    let mut report = format!("{what}: {status}");
    if timed_out {
        report.push_str(&format!(" (killed after {SCRIPT_TIMEOUT:?})"));
    }
    report.push_str(&format!(
        "\n--- stdout ---\n{stdout}--- stderr ---\n{stderr}"
    ));
    (status.success() && !timed_out, report)
}

/// What the checks must not have changed, whatever they did to orders.
fn assert_untouched(f: &Fixture) {
    assert_eq!(
        f.cluster
            .query_scalar(
                &f.db,
                "SELECT (SELECT string_agg(id || ':' || secret, ',') FROM secrets) || '/' || \
                 (SELECT count(*) FROM customers)",
            )
            .unwrap(),
        "1:the launch code is 0000/3",
        "a refused statement changed secrets or customers"
    );
}

#[test]
fn psycopg3_works_through_the_gateway() {
    let (ok, report) = run(
        {
            let mut c = Command::new("python3");
            c.args(["-c", "import psycopg"]);
            c
        },
        "python3 -c 'import psycopg'",
    );
    assert!(
        ok,
        "psycopg 3 is not available to python3 ({INSTALL_HINT})\n{report}"
    );

    let f = Fixture::start();
    let token = f.token("writer-1", &["writer"]);
    let mut cmd = f.client_command("python3", &token);
    cmd.arg(drivers_dir().join("psycopg_check.py"));
    let (ok, report) = run(cmd, "psycopg_check.py");
    assert!(ok, "the psycopg checks failed\n{report}");
    println!("{report}");
    assert!(
        report.contains("psycopg: all checks passed"),
        "the psycopg checks did not finish\n{report}"
    );
    assert_untouched(&f);
}

#[test]
fn pgjdbc_works_through_the_gateway() {
    assert!(
        Path::new(PGJDBC_JAR).exists(),
        "the PostgreSQL JDBC driver is missing: no {PGJDBC_JAR} (Debian libpostgresql-jdbc-java; {INSTALL_HINT})"
    );
    let classes = tempfile::tempdir().unwrap();
    let mut javac = Command::new("javac");
    javac
        .arg("-d")
        .arg(classes.path())
        .args(["-cp", PGJDBC_JAR])
        .arg(drivers_dir().join("JdbcCheck.java"));
    let (ok, report) = run(javac, "javac JdbcCheck.java");
    assert!(
        ok,
        "compiling the JDBC check failed ({INSTALL_HINT})\n{report}"
    );

    let f = Fixture::start();
    let token = f.token("writer-1", &["writer"]);
    let mut cmd = f.client_command("java", &token);
    cmd.arg("-cp")
        .arg(format!("{}:{PGJDBC_JAR}", classes.path().display()))
        .arg("JdbcCheck");
    let (ok, report) = run(cmd, "java JdbcCheck");
    assert!(ok, "the JDBC checks failed\n{report}");
    println!("{report}");
    assert!(
        report.contains("jdbc: all checks passed"),
        "the JDBC checks did not finish\n{report}"
    );
    assert_untouched(&f);
}
