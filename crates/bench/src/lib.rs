//! Benchmarks only. The library part is [`wire`], the raw PostgreSQL protocol the probes
//! under `src/bin/` speak (so they can time single bytes and hold many sessions cheaply).
//!
//! The criterion benches under `benches/` measure the gateway's per-request hot path:
//!
//! - `classify`: classifying a three-table join, cold (`sluice_sql::classify`, and a
//!   `sluice_sql::Classifier` cache miss) and cached (a cache hit);
//! - `decide`: a policy decision for that statement, and the cached classification plus
//!   the decision together, the per-statement cost once a session is open;
//! - `token`: validating a local-issuer ES256 token, cold (signature verified) and cached.
//!
//! Run them with `bench/run.sh` (or `cargo bench -p sluice-bench`); `bench/README.md`
//! keeps the last measured figures. The crate is not published and nothing depends on it.

pub mod wire {
    //! Just enough of the PostgreSQL frontend protocol for the probes: a startup packet,
    //! messages, reading one message, error text.

    use std::time::Duration;

    use tokio::io::AsyncReadExt;

    pub type Error = Box<dyn std::error::Error + Send + Sync>;

    /// A v3 startup packet for user `bench` and `database`.
    pub fn startup(database: &str) -> Vec<u8> {
        let mut body = 196_608i32.to_be_bytes().to_vec();
        for (k, v) in [("user", "bench"), ("database", database)] {
            body.extend(cstring(k));
            body.extend(cstring(v));
        }
        body.push(0);
        let mut out = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        out.extend(body);
        out
    }

    pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend(((body.len() + 4) as i32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    pub fn cstring(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    }

    /// One message: its tag and body (waits at most two minutes for it).
    pub async fn read_message<R: AsyncReadExt + Unpin>(
        reader: &mut R,
    ) -> Result<(u8, Vec<u8>), Error> {
        let tag = tokio::time::timeout(Duration::from_secs(120), reader.read_u8()).await??;
        let length = reader.read_i32().await? as usize;
        let mut body = vec![0u8; length.saturating_sub(4)];
        reader.read_exact(&mut body).await?;
        Ok((tag, body))
    }

    /// Logs in as user `bench` to `database` with `token` as the password (cleartext
    /// exchange), up to ReadyForQuery.
    pub async fn login<R, W>(
        reader: &mut R,
        writer: &mut W,
        database: &str,
        token: &str,
    ) -> Result<(), Error>
    where
        R: AsyncReadExt + Unpin,
        W: tokio::io::AsyncWriteExt + Unpin,
    {
        writer.write_all(&startup(database)).await?;
        loop {
            let (tag, body) = read_message(reader).await?;
            match tag {
                b'R' if body.get(..4) == Some(&3i32.to_be_bytes()) => {
                    writer.write_all(&message(b'p', &cstring(token))).await?;
                }
                b'Z' => return Ok(()),
                b'E' => return Err(format!("login refused: {}", text(&body)).into()),
                _ => {}
            }
        }
    }

    /// The fields of an ErrorResponse or NoticeResponse, as text.
    pub fn text(body: &[u8]) -> String {
        String::from_utf8_lossy(body).replace('\0', " ")
    }

    /// The SQLSTATE of an ErrorResponse.
    pub fn sqlstate(body: &[u8]) -> String {
        body.split(|b| *b == 0)
            .find_map(|field| field.strip_prefix(b"C"))
            .map(|code| String::from_utf8_lossy(code).into_owned())
            .unwrap_or_default()
    }
}
