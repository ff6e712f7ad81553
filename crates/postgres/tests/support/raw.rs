//! A bare-bones protocol client for what ordinary clients cannot send: FunctionCall,
//! replication startups, hand-made extended-protocol batches.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub struct RawClient {
    stream: TcpStream,
}

/// A message from the gateway: tag and body.
#[derive(Debug, Clone)]
pub struct Msg {
    pub tag: u8,
    pub body: Vec<u8>,
}

impl Msg {
    /// `C` field (SQLSTATE) of an ErrorResponse.
    pub fn code(&self) -> String {
        self.field(b'C')
    }

    pub fn message(&self) -> String {
        self.field(b'M')
    }

    pub fn field(&self, which: u8) -> String {
        let mut rest = &self.body[..];
        while let Some((&tag, tail)) = rest.split_first() {
            if tag == 0 {
                break;
            }
            let end = tail.iter().position(|b| *b == 0).unwrap_or(tail.len());
            if tag == which {
                return String::from_utf8_lossy(&tail[..end]).to_string();
            }
            rest = &tail[(end + 1).min(tail.len())..];
        }
        String::new()
    }
}

pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

pub fn cstr(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

impl RawClient {
    pub fn connect(port: u16) -> RawClient {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        RawClient { stream }
    }

    pub fn startup(&mut self, params: &[(&str, &str)]) {
        let mut body = 196608i32.to_be_bytes().to_vec();
        for (k, v) in params {
            body.extend(cstr(k));
            body.extend(cstr(v));
        }
        body.push(0);
        let mut packet = (body.len() as i32 + 4).to_be_bytes().to_vec();
        packet.extend(body);
        self.stream.write_all(&packet).unwrap();
    }

    /// Startup and password; returns the messages up to the first ReadyForQuery (or error).
    pub fn login(port: u16, token: &str) -> (RawClient, Vec<Msg>) {
        RawClient::login_with(port, &[], token)
    }

    /// [`RawClient::login`] with extra startup parameters.
    pub fn login_with(port: u16, extra: &[(&str, &str)], token: &str) -> (RawClient, Vec<Msg>) {
        let mut c = RawClient::connect(port);
        let mut params = vec![("user", "agent"), ("database", "app")];
        params.extend_from_slice(extra);
        c.startup(&params);
        let auth = c.read();
        assert_eq!(auth.tag, b'R', "{auth:?}");
        c.send(b'p', &cstr(token));
        let msgs = c.read_until(b'Z');
        (c, msgs)
    }

    /// The socket, for a test that reads in bulk.
    pub fn into_stream(self) -> TcpStream {
        self.stream
    }

    pub fn send(&mut self, tag: u8, body: &[u8]) {
        self.stream.write_all(&message(tag, body)).unwrap();
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub fn read(&mut self) -> Msg {
        let mut header = [0u8; 5];
        self.stream.read_exact(&mut header).unwrap();
        let len = i32::from_be_bytes([header[1], header[2], header[3], header[4]]) as usize;
        let mut body = vec![0u8; len - 4];
        self.stream.read_exact(&mut body).unwrap();
        Msg {
            tag: header[0],
            body,
        }
    }

    /// Messages up to and including the first with `tag`, or a FATAL error.
    pub fn read_until(&mut self, tag: u8) -> Vec<Msg> {
        let mut msgs = Vec::new();
        loop {
            let m = self.read();
            let done = m.tag == tag || (m.tag == b'E' && m.field(b'S') == "FATAL");
            msgs.push(m);
            if done {
                return msgs;
            }
        }
    }

    /// True when the gateway has closed the connection.
    pub fn is_closed(&mut self) -> bool {
        let mut byte = [0u8; 1];
        matches!(self.stream.read(&mut byte), Ok(0))
    }
}

pub fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut body = cstr(name);
    body.extend(cstr(sql));
    body.extend(0i16.to_be_bytes());
    message(b'P', &body)
}

pub fn bind(portal: &str, statement: &str) -> Vec<u8> {
    let mut body = cstr(portal);
    body.extend(cstr(statement));
    body.extend(0i16.to_be_bytes()); // parameter formats
    body.extend(0i16.to_be_bytes()); // parameters
    body.extend(0i16.to_be_bytes()); // result formats
    message(b'B', &body)
}

pub fn execute(portal: &str) -> Vec<u8> {
    let mut body = cstr(portal);
    body.extend(0i32.to_be_bytes());
    message(b'E', &body)
}

pub fn sync() -> Vec<u8> {
    message(b'S', &[])
}

pub fn tags(msgs: &[Msg]) -> String {
    msgs.iter().map(|m| m.tag as char).collect()
}
