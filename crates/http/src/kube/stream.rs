//! A stream of JSON documents read one document at a time: how the gateway masks a
//! watch, which the API server sends as one JSON event after another (`{"type":
//! "ADDED", "object": {...}}`) on a response that never ends, so it cannot be read whole
//! first. Bytes are kept only until the document they belong to is complete; a document
//! larger than the limit, or bytes that are not JSON, end the stream with an error
//! rather than pass unmasked.

use serde_json::Value;

/// Splits a byte stream into JSON documents.
pub struct DocumentStream {
    pending: Vec<u8>,
    limit: usize,
}

/// Why the stream cannot be read on.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("a document of the stream is larger than the {0} bytes the gateway reads to mask it")]
    TooLarge(usize),
    #[error("the stream is not JSON documents: {0}")]
    NotJson(String),
    #[error("the stream ended inside a document")]
    Truncated,
}

impl DocumentStream {
    /// A stream whose documents may each be up to `limit` bytes.
    pub fn new(limit: usize) -> Self {
        DocumentStream {
            pending: Vec::new(),
            limit,
        }
    }

    /// Takes the next bytes; gives back every document they complete.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Value>, StreamError> {
        self.pending.extend_from_slice(bytes);
        let mut documents = Vec::new();
        let mut consumed = 0;
        {
            let mut reader =
                serde_json::Deserializer::from_slice(&self.pending).into_iter::<Value>();
            loop {
                match reader.next() {
                    Some(Ok(doc)) => {
                        documents.push(doc);
                        consumed = reader.byte_offset();
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(e)) => return Err(StreamError::NotJson(e.to_string())),
                    None => {
                        consumed = reader.byte_offset();
                        break;
                    }
                }
            }
        }
        self.pending.drain(..consumed);
        if self.pending.len() > self.limit {
            return Err(StreamError::TooLarge(self.limit));
        }
        Ok(documents)
    }

    /// The stream ended: anything but white space left over is a cut document.
    pub fn finish(&self) -> Result<(), StreamError> {
        if self.pending.iter().all(u8::is_ascii_whitespace) {
            Ok(())
        } else {
            Err(StreamError::Truncated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn documents_cut_anywhere_come_out_whole() {
        let events: Vec<Value> = (0..5)
            .map(|i| json!({"type": "ADDED", "object": {"metadata": {"name": format!("p{i}")}, "data": {"k": "v\n}"}}}))
            .collect();
        let wire: Vec<u8> = events
            .iter()
            .flat_map(|e| {
                let mut line = serde_json::to_vec(e).unwrap();
                line.push(b'\n');
                line
            })
            .collect();
        for cut in 1..wire.len() {
            let mut stream = DocumentStream::new(1 << 20);
            let mut seen = stream.push(&wire[..cut]).unwrap();
            seen.extend(stream.push(&wire[cut..]).unwrap());
            stream.finish().unwrap();
            assert_eq!(seen, events, "cut at {cut}");
        }
    }

    #[test]
    fn garbage_large_and_cut_streams_are_errors() {
        let mut stream = DocumentStream::new(1 << 10);
        assert!(matches!(
            stream.push(b"{\"a\":1} <html>"),
            Err(StreamError::NotJson(_))
        ));
        let mut stream = DocumentStream::new(16);
        assert!(matches!(
            stream.push(b"{\"a\":\"0123456789abcdefghij"),
            Err(StreamError::TooLarge(16))
        ));
        let mut stream = DocumentStream::new(1 << 10);
        assert_eq!(stream.push(b"{\"a\":").unwrap(), Vec::<Value>::new());
        assert!(matches!(stream.finish(), Err(StreamError::Truncated)));
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_documents(cuts in proptest::collection::vec(0usize..200, 0..8)) {
            let events: Vec<Value> = (0..4).map(|i| json!({"n": i, "s": "x".repeat(i * 10)})).collect();
            let wire: Vec<u8> = events.iter().flat_map(|e| serde_json::to_vec(e).unwrap()).collect();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(wire.len())).collect();
            cuts.sort();
            let mut stream = DocumentStream::new(1 << 20);
            let mut seen = Vec::new();
            let mut at = 0;
            for cut in cuts.into_iter().chain([wire.len()]) {
                seen.extend(stream.push(&wire[at..cut]).unwrap());
                at = cut;
            }
            stream.finish().unwrap();
            prop_assert_eq!(seen, events);
        }
    }
}
