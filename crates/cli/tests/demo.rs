//! `sluice demo` as a newcomer meets it: run the one command, then paste what it prints.
//! The read-only agent's commands are run exactly as printed (through `sh`), and each
//! does what its comment says: rows, masked rows, or a refusal.

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
