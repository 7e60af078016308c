//! Random bytes for identifiers (request ids, trace and span ids): from a
//! per-thread buffer refilled by the system's generator.

/// Random bytes from a per-thread buffer, one system call per 4000 bytes
/// (`Uuid::now_v7` made two per request): request ids, trace and span ids.
/// Unguessable as the system's own.
pub fn fill(out: &mut [u8]) {
    const BYTES: usize = 4000;
    thread_local! {
        static RANDOM: std::cell::RefCell<([u8; BYTES], usize)> =
            const { std::cell::RefCell::new(([0; BYTES], BYTES)) };
    }
    RANDOM.with(|r| {
        let (buf, at) = &mut *r.borrow_mut();
        if *at + out.len() > buf.len() {
            if getrandom::fill(buf).is_err() {
                // No randomness to be had: the library's own way, which
                // panics only if the OS RNG is gone for it too.
                for chunk in out.chunks_mut(16) {
                    chunk.copy_from_slice(&uuid::Uuid::new_v4().as_bytes()[..chunk.len()]);
                }
                return;
            }
            *at = 0;
        }
        out.copy_from_slice(&buf[*at..*at + out.len()]);
        *at += out.len();
    });
}
