//! `load`: many concurrent agent sessions against a live gateway, for a while.
//!
//! Run by `bench/load.sh`. Each of SESSIONS sessions logs in over the raw PostgreSQL
//! protocol (its token as the password) and, until SECONDS have passed, runs one statement
//! after another with THINK_MS between them, drawn from a fixed mix: 60% an allowed read,
//! 20% a read of a masked column, 20% a DELETE the policy refuses. Every answer is checked:
//! an allowed read must return a row, a masked read a masked value (never the clear one),
//! a refused statement SQLSTATE 42501; anything else counts as an error. Meanwhile the
//! gateway's resident memory and open file descriptors are read from /proc every 10 s.
//!
//! Usage: load PG_ADDR TOKEN GATEWAY_PID SESSIONS SECONDS [THINK_MS] [DATABASE]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_bench::wire::{cstring, login, message, read_message, sqlstate, text, Error};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    refused: AtomicU64,
    masked: AtomicU64,
    errors: AtomicU64,
    logins_failed: AtomicU64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 6 {
        eprintln!("usage: load PG_ADDR TOKEN GATEWAY_PID SESSIONS SECONDS [THINK_MS] [DATABASE]");
        std::process::exit(2);
    }
    let addr = args[1].clone();
    let token = args[2].clone();
    let pid: u32 = args[3].parse()?;
    let sessions: usize = args[4].parse()?;
    let seconds: u64 = args[5].parse()?;
    let think = Duration::from_millis(args.get(6).map(|t| t.parse()).transpose()?.unwrap_or(200));
    let database = args.get(7).cloned().unwrap_or_else(|| "bench".into());

    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    let deadline = start + Duration::from_secs(seconds);
    let monitor = tokio::spawn(monitor(pid, deadline, start));
    let mut tasks = Vec::with_capacity(sessions);
    for n in 0..sessions {
        let (addr, token, database, tally) =
            (addr.clone(), token.clone(), database.clone(), tally.clone());
        tasks.push(tokio::spawn(async move {
            // Spread the logins over the first seconds, as agents arrive.
            tokio::time::sleep(Duration::from_millis((n as u64 * 5) % 5_000)).await;
            match session(&addr, &token, &database, n, deadline, think, &tally).await {
                Ok(latencies) => latencies,
                Err(e) => {
                    if tally.logins_failed.fetch_add(1, Ordering::Relaxed) < 5 {
                        eprintln!("session {n}: {e}");
                    }
                    Vec::new()
                }
            }
        }));
    }
    let mut latencies: Vec<u32> = Vec::new();
    for task in tasks {
        latencies.extend(task.await?);
    }
    let samples = monitor.await?;
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map(|us| *us as f64 / 1000.0)
            .unwrap_or(f64::NAN)
    };
    let elapsed = start.elapsed().as_secs_f64();
    println!("sessions            {sessions}");
    println!("duration            {elapsed:.0} s");
    println!("statements          {}", latencies.len());
    println!("  allowed ok        {}", tally.ok.load(Ordering::Relaxed));
    println!(
        "  masked ok         {}",
        tally.masked.load(Ordering::Relaxed)
    );
    println!(
        "  refused (42501)   {}",
        tally.refused.load(Ordering::Relaxed)
    );
    println!(
        "errors              {}",
        tally.errors.load(Ordering::Relaxed)
    );
    println!(
        "sessions failed     {}",
        tally.logins_failed.load(Ordering::Relaxed)
    );
    println!(
        "statements/s        {:.0}",
        latencies.len() as f64 / elapsed
    );
    println!("latency p50         {:.2} ms", pct(0.50));
    println!("latency p99         {:.2} ms", pct(0.99));
    println!("gateway over time   (s, VmRSS MiB, open fds)");
    for (at, rss, fds) in samples {
        println!("  {at:>5} {:>8.1} {fds:>6}", rss as f64 / 1024.0);
    }
    Ok(())
}

async fn session(
    addr: &str,
    token: &str,
    database: &str,
    n: usize,
    deadline: Instant,
    think: Duration,
    tally: &Tally,
) -> Result<Vec<u32>, Error> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (mut reader, mut writer) = stream.into_split();
    login(&mut reader, &mut writer, database, token).await?;
    let mut latencies = Vec::new();
    let mut i = n;
    while Instant::now() < deadline {
        i = i.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let id = i % 1000 + 1;
        let kind = i % 10;
        let sql = match kind {
            0..=5 => format!("SELECT id, note FROM load_items WHERE id = {id}"),
            6 | 7 => format!("SELECT id, email FROM load_customers WHERE id = {id}"),
            _ => format!("DELETE FROM load_items WHERE id = {id}"),
        };
        // The clear email of customer `id` (setup in bench/load.sh); the `email` mask keeps
        // the domain and hides the rest.
        let clear_email = format!("user{id}@customers.example");
        let sent = Instant::now();
        writer.write_all(&message(b'Q', &cstring(&sql))).await?;
        let (mut rows, mut error, mut clear) = (0, None, false);
        loop {
            let (tag, body) = read_message(&mut reader).await?;
            match tag {
                b'D' => {
                    rows += 1;
                    clear |= text(&body).contains(&clear_email);
                }
                b'E' => error = Some(sqlstate(&body)),
                b'Z' => break,
                _ => {}
            }
        }
        latencies.push(sent.elapsed().as_micros() as u32);
        let counter = match (kind, error.as_deref()) {
            (0..=5, None) if rows == 1 => &tally.ok,
            (6 | 7, None) if rows == 1 && !clear => &tally.masked,
            (8 | 9, Some("42501")) => &tally.refused,
            _ => &tally.errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(think).await;
    }
    writer.write_all(&message(b'X', &[])).await?;
    Ok(latencies)
}

/// Every 10 s until `deadline`: seconds since `start`, the gateway's VmRSS (KiB) and its
/// open file descriptors.
async fn monitor(pid: u32, deadline: Instant, start: Instant) -> Vec<(u64, u64, usize)> {
    let mut samples = Vec::new();
    loop {
        let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0);
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0);
        samples.push((start.elapsed().as_secs(), rss, fds));
        if Instant::now() >= deadline {
            return samples;
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}
