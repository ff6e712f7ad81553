//! `approval-latency`: how long a held statement takes to run once it is approved.
//!
//! Run by `bench/approval_latency.sh` against a live gateway. One agent session (the raw
//! PostgreSQL protocol, so the first byte of the answer can be timed) sends a statement
//! that an `approve` rule holds, waits for the gateway's NoticeResponse with the approval
//! id, and the probe approves it through the admin API as a person would. Measured per
//! approval: from the approve call returning to the held statement's first result byte
//! reaching the agent (negative when the result came first), and the approve call itself.
//!
//! Usage: approval-latency PG_ADDR ADMIN_URL AGENT_TOKEN APPROVER_TOKEN [COUNT] [DATABASE]

use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;

use sluice_bench::wire::{cstring, login, message, read_message, text, Error};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: approval-latency PG_ADDR ADMIN_URL AGENT_TOKEN APPROVER_TOKEN [COUNT] [DATABASE]");
        std::process::exit(2);
    }
    let (pg, admin, agent, approver) = (&args[1], &args[2], &args[3], &args[4]);
    let count: usize = args.get(5).map(|c| c.parse()).transpose()?.unwrap_or(50);
    let database = args.get(6).map(String::as_str).unwrap_or("bench");

    let stream = TcpStream::connect(pg).await?;
    stream.set_nodelay(true)?;
    let (mut reader, mut writer) = stream.into_split();
    login(&mut reader, &mut writer, database, agent).await?;

    let http = reqwest::Client::new();
    let mut after_approve = Vec::with_capacity(count);
    let mut approve_calls = Vec::with_capacity(count);
    for _ in 0..count {
        writer
            .write_all(&message(
                b'Q',
                &cstring("UPDATE approval_bench SET n = n + 1 WHERE id = 1"),
            ))
            .await?;
        let id = loop {
            let (tag, body) = read_message(&mut reader).await?;
            match tag {
                b'N' => {
                    let notice = text(&body);
                    if let Some(at) = notice.find("apr_") {
                        break notice[at..at + 24].to_string();
                    }
                }
                b'E' => return Err(format!("statement refused: {}", text(&body)).into()),
                _ => {}
            }
        };
        // The first byte after the notice is the held statement's answer.
        let first_byte = tokio::spawn(async move {
            let mut byte = [0u8; 1];
            let result = reader.read_exact(&mut byte).await.map(|_| Instant::now());
            (reader, byte[0], result)
        });
        let called = Instant::now();
        let response = http
            .post(format!("{admin}/api/v1/approvals/{id}/approve"))
            .bearer_auth(approver)
            .json(&serde_json::json!({ "reason": "benchmark" }))
            .send()
            .await?;
        let returned = Instant::now();
        if !response.status().is_success() {
            return Err(
                format!("approve: {} {}", response.status(), response.text().await?).into(),
            );
        }
        let (back, tag, arrived) = first_byte.await?;
        let arrived = arrived?;
        reader = back;
        if tag != b'C' && tag != b'T' && tag != b'D' {
            return Err(format!("held statement answered with {:?}", tag as char).into());
        }
        after_approve.push(signed_ms(arrived, returned));
        approve_calls.push((returned - called).as_secs_f64() * 1000.0);
        // The rest of the answer, up to ReadyForQuery.
        let mut rest = read_rest(&mut reader, tag).await?;
        while rest != b'Z' {
            rest = read_message(&mut reader).await?.0;
        }
    }
    writer.write_all(&message(b'X', &[])).await?;

    report(
        "first result byte after the approve call returned",
        &mut after_approve,
    );
    report("approve call (request to response)", &mut approve_calls);
    Ok(())
}

fn report(what: &str, values: &mut [f64]) {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| values[((values.len() - 1) as f64 * q).round() as usize];
    println!(
        "{what}: n={} median={:.2} ms p90={:.2} ms min={:.2} ms max={:.2} ms",
        values.len(),
        at(0.5),
        at(0.9),
        values[0],
        values[values.len() - 1]
    );
}

fn signed_ms(later: Instant, earlier: Instant) -> f64 {
    match later.checked_duration_since(earlier) {
        Some(d) => d.as_secs_f64() * 1000.0,
        None => -((earlier - later).as_secs_f64() * 1000.0),
    }
}

/// The remainder of a message whose tag byte was already read; returns its tag.
async fn read_rest(reader: &mut OwnedReadHalf, tag: u8) -> Result<u8, Error> {
    let length = reader.read_i32().await? as usize;
    let mut body = vec![0u8; length.saturating_sub(4)];
    reader.read_exact(&mut body).await?;
    Ok(tag)
}
