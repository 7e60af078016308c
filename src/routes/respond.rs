//! JSON responses whose serialized bytes are wiped once sent: documents are
//! serialized straight from their domain types (no intermediate JSON value
//! holding copies), into a buffer that never reallocates without wiping the
//! old one, handed to the server as `Bytes` that wipe themselves when the
//! last reference drops. (What actix copies into its own write buffer is
//! beyond reach; README.md says so.)

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use serde::Serialize;
use zeroize::Zeroize;

/// A buffer that wipes what it held whenever it grows, and when dropped.
struct Wiping(Vec<u8>);

impl std::io::Write for Wiping {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + data.len() > self.0.capacity() {
            let mut bigger =
                Vec::with_capacity((self.0.len() + data.len()).max(self.0.capacity() * 2));
            bigger.extend_from_slice(&self.0);
            self.0.zeroize();
            self.0 = bigger;
        }
        self.0.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl AsRef<[u8]> for Wiping {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Wiping {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

pub fn json<T: Serialize>(status: StatusCode, body: &T) -> HttpResponse {
    let mut buf = Wiping(Vec::with_capacity(4096));
    match serde_json::to_writer(&mut buf, body) {
        Ok(()) => HttpResponse::build(status)
            .content_type("application/json")
            .body(Bytes::from_owner(buf)),
        // Our documents always serialize; if one did not, say nothing of it.
        Err(_) => actix_web::ResponseError::error_response(&crate::error::ApiError::bug(
            "serializing a response",
        )),
    }
}

pub fn ok<T: Serialize>(body: &T) -> HttpResponse {
    json(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn growing_keeps_every_byte() {
        let mut w = Wiping(Vec::with_capacity(2));
        for _ in 0..100 {
            w.write_all(b"abc").unwrap();
        }
        assert_eq!(w.0.len(), 300);
        assert!(w.0.chunks(3).all(|c| c == b"abc"));
    }
}

/// `{"doc":{..},"message":".."}`: the answer to a create, update or delete.
#[derive(Serialize, utoipa::ToSchema)]
pub struct DocResponse<T> {
    pub doc: T,
    pub message: String,
}
