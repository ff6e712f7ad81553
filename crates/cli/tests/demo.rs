//! `sluice demo` as a newcomer meets it: run the one command, then paste what it prints.
//! The read-only agent's commands are run exactly as printed (through `sh`), and each
//! does what its comment says: rows, masked rows, or a refusal; the operations agent's
//! delete is held until the printed approver commands approve it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn the_printed_commands_work_as_their_comments_say() {
    let mut demo = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("demo")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run sluice demo");
    let stdout = demo.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if lines_tx.send(line.expect("utf-8")).is_err() {
                break;
            }
        }
    });
    let mut printed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while !printed
        .last()
        .is_some_and(|l: &String| l.contains("Ctrl-C stops"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines_rx.recv_timeout(left) {
            Ok(line) => printed.push(line),
            Err(_) => {
                let _ = demo.kill();
                panic!(
                    "the demo printed no instructions in time:\n{}",
                    printed.join("\n")
                );
            }
        }
    }

    // The read-only agent's block: from its heading to the next agent's.
    let start = printed
        .iter()
        .position(|l| l.starts_with("A read-only reporting agent"))
        .expect("reader block");
    let end = printed
        .iter()
        .position(|l| l.starts_with("An operations agent"))
        .expect("operator block");
    let block = &printed[start..end];
    let export = block
        .iter()
        .find(|l| l.trim_start().starts_with("export PGPASSWORD="))
        .expect("export line")
        .trim()
        .to_string();
    let commands: Vec<&str> = block
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.starts_with("psql "))
        .collect();
    assert!(commands.len() >= 4, "{block:#?}");

    let mut seen = (false, false, false);
    for command in commands {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{export}; {command}"))
            .output()
            .expect("sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if command.contains("# refused") {
            assert!(!out.status.success(), "{command}: {stdout}");
            assert!(stderr.contains("ERROR:  sluice:"), "{command}: {stderr}");
            seen.2 = true;
        } else {
            assert!(out.status.success(), "{command}: {stderr}");
            if command.contains("# masked") {
                assert!(stdout.contains("a***@example.com"), "{command}: {stdout}");
                assert!(!stdout.contains("ada@example.com"), "{command}: {stdout}");
                seen.1 = true;
            } else {
                assert!(stdout.contains("rows)"), "{command}: {stdout}");
                seen.0 = true;
            }
        }
    }
    assert_eq!(seen, (true, true, true), "rows, masked rows and refusals");

    // The printed audit commands show those sessions, and the trail verifies.
    let audit: Vec<&str> = printed
        .iter()
        .map(|l| l.trim())
        .filter(|l| l.ends_with(" sessions list") || l.ends_with(" sessions verify"))
        .collect();
    assert_eq!(audit.len(), 2, "{printed:#?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = Command::new("sh")
            .arg("-c")
            .arg(audit[0])
            .output()
            .expect("sh");
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if listed.matches("closed").count() >= 4 {
            assert!(listed.contains("report-agent"), "{listed}");
            break;
        }
        assert!(Instant::now() < deadline, "sessions not recorded: {listed}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = Command::new("sh")
        .arg("-c")
        .arg(audit[1])
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // The operations agent's delete is held until the person on call approves it with
    // the printed commands.
    let block_of = |heading: &str| {
        let start = printed
            .iter()
            .position(|l| l.starts_with(heading))
            .unwrap_or_else(|| panic!("no block {heading}: {printed:#?}"));
        let end = printed[start + 1..]
            .iter()
            .position(|l| !l.is_empty() && !l.starts_with(' '))
            .map_or(printed.len(), |n| start + 1 + n);
        printed[start..end]
            .iter()
            .map(|l| l.trim().to_string())
            .collect::<Vec<_>>()
    };
    let operations = block_of("An operations agent");
    let export = operations
        .iter()
        .find(|l| l.starts_with("export PGPASSWORD="))
        .expect("operator's export");
    let held = operations
        .iter()
        .find(|l| l.contains("# held"))
        .expect("held command");
    let held = Command::new("sh")
        .arg("-c")
        .arg(format!("{export}; {held}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh");
    let approver = block_of("A person on call");
    let export = approver
        .iter()
        .find(|l| l.starts_with("export SLUICE_TOKEN="))
        .expect("approver's export");
    let list = approver
        .iter()
        .find(|l| l.contains(" approvals list "))
        .expect("list command");
    let approve = approver
        .iter()
        .find(|l| l.contains(" approvals approve "))
        .expect("approve command");
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{export}; {list}"))
            .output()
            .expect("sh");
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(at) = listed.find("apr_") {
            break listed[at..at + 24].to_string();
        }
        assert!(Instant::now() < deadline, "nothing held: {listed}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{export}; {}",
            approve.replace("<id from the list>", &id)
        ))
        .output()
        .expect("sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = held.wait_with_output().expect("held psql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("DELETE 1"));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("approval {id} requested")));

    // Ctrl-C stops it cleanly.
    let status = Command::new("kill")
        .args(["-INT", &demo.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = demo.try_wait().expect("wait") {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "the demo did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(100));
    }
}
