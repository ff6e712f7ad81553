//! The journal: where a sealed event becomes durable before the store has it.
//!
//! A store commit per request would make every statement pay for a transaction (SQLite
//! writes whole pages, several per commit), so the writer appends each batch of sealed
//! events to this file, one JSON line per event, with a single `write` — that is the
//! moment a request counts as durable — and moves them into the store in large batches
//! shortly after. Once the store has everything the journal holds, the journal is emptied.
//! At start, whatever the journal still holds (the gateway stopped before the store took
//! it) is written to the store first, skipping what the store already has.
//!
//! Durability: after `write` returns, the bytes are the operating system's, and survive
//! the gateway being killed. With `sync` (`recording.durability: disk`) each batch is also
//! `fdatasync`ed, and survives the machine losing power.
//!
//! The file is the gateway instance's own (in its data dir); several instances sharing a
//! PostgreSQL store each keep theirs.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use sluice_audit::Event;

#[derive(Debug)]
pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    sync: bool,
    /// Its length after the last whole append: a failed write is cut back to it, so a
    /// torn line never sits before the next one.
    len: u64,
    buffer: Vec<u8>,
}

impl Journal {
    /// Opens (creating, mode 0600) the journal at `path`.
    pub(crate) fn open(path: &Path, sync: bool) -> std::io::Result<Journal> {
        let mut options = OpenOptions::new();
        options.create(true).append(true).read(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let file = options.open(path)?;
        let len = file.metadata()?.len();
        Ok(Journal {
            path: path.to_path_buf(),
            file,
            sync,
            len,
            buffer: Vec::new(),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// What the journal holds from before this start: every whole line that reads as an
    /// event. A last line cut short (the machine stopped mid-write) was never acknowledged
    /// and is dropped; any other line that does not read is an error.
    pub(crate) fn read_back(&self) -> std::io::Result<Vec<Event>> {
        let reader = BufReader::new(File::open(&self.path)?);
        let mut events = Vec::new();
        let mut lines = reader.split(b'\n').peekable();
        while let Some(line) = lines.next() {
            let line = line?;
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Event>(&line) {
                Ok(event) => events.push(event),
                Err(_) if lines.peek().is_none() => {
                    tracing::warn!(journal = %self.path.display(), "dropping a torn last line of the audit journal");
                }
                Err(e) => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("{}: an unreadable event: {e}", self.path.display()),
                    ))
                }
            }
        }
        Ok(events)
    }

    /// Appends `events` in one write (and one `fdatasync` if asked).
    pub(crate) fn append(&mut self, events: &[Event]) -> std::io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        self.buffer.clear();
        for event in events {
            serde_json::to_writer(&mut self.buffer, event)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            self.buffer.push(b'\n');
        }
        let written = self.file.write_all(&self.buffer).and_then(|()| {
            if self.sync {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        if let Err(e) = written {
            // Nothing of a failed batch stays (a full disk may have taken half of it).
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += self.buffer.len() as u64;
        Ok(())
    }

    /// Empties the journal: the store has everything it held.
    pub(crate) fn clear(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.len = 0;
        if self.sync {
            self.file.sync_data()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_audit::{ChainBuilder, EventBody, SessionClosed, Timestamp};

    fn events(n: u64) -> Vec<Event> {
        let mut chain = ChainBuilder::new("a".repeat(32));
        (0..n)
            .map(|i| {
                chain.append(
                    Timestamp::from_unix_micros(1_700_000_000_000_000 + i as i64).unwrap(),
                    EventBody::SessionClosed(SessionClosed {
                        reason: format!("r{i}"),
                    }),
                )
            })
            .collect()
    }

    #[test]
    fn reads_back_what_was_appended_and_nothing_after_clear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut journal = Journal::open(&path, false).unwrap();
        let written = events(5);
        journal.append(&written[..2]).unwrap();
        journal.append(&written[2..]).unwrap();
        assert_eq!(
            Journal::open(&path, false).unwrap().read_back().unwrap(),
            written
        );
        journal.clear().unwrap();
        journal.append(&written[..1]).unwrap();
        assert_eq!(journal.read_back().unwrap(), written[..1]);
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_a_bad_middle_line_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal");
        let mut journal = Journal::open(&path, true).unwrap();
        let written = events(2);
        journal.append(&written).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"session_id\":\"aa")
            .unwrap();
        assert_eq!(journal.read_back().unwrap(), written);
        std::fs::write(&path, b"not json\n{}\n").unwrap();
        assert!(journal.read_back().is_err());
    }
}
