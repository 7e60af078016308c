//! Seal+open at 64 B, 1 KiB and 16 KiB, and one blind index, through the
//! keyring the service uses. `cargo bench --bench crypto`; figures in
//! BENCHMARKS.md.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use phi_gateway::crypto::{Keyring, Place};
use uuid::Uuid;

fn seal_open(c: &mut Criterion) {
    let ring = Keyring::generate(false).unwrap();
    let place = Place::new("symptom_submissions", "notes", Uuid::now_v7());
    let mut group = c.benchmark_group("seal+open");
    for size in [64usize, 1024, 16 * 1024] {
        let value = vec![0x5au8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("{size} B"), |b| {
            b.iter(|| {
                let sealed = ring.seal(black_box(&value), &place).unwrap();
                black_box(ring.open(&sealed, &place).unwrap());
            })
        });
    }
    group.finish();
    // The parts: sealing alone (one OS-random nonce each), and 16 KiB of
    // plaintext wiped with zeroize (what dropping an opened value costs).
    let value = vec![0x5au8; 16 * 1024];
    c.bench_function("seal only/16384 B", |b| {
        b.iter(|| black_box(ring.seal(black_box(&value), &place).unwrap()))
    });
    c.bench_function("seal only/64 B", |b| {
        b.iter(|| black_box(ring.seal(black_box(&value[..64]), &place).unwrap()))
    });
    c.bench_function("zeroize/16384 B", |b| {
        b.iter(|| {
            let mut v = zeroize::Zeroizing::new(vec![0x5au8; 16 * 1024]);
            black_box(&mut v);
        })
    });
    c.bench_function("blind index (email)", |b| {
        b.iter(|| {
            black_box(ring.blind_index(
                "practitioners",
                "email",
                black_box("ann.example@clinic.example"),
            ))
        })
    });
}

criterion_group!(benches, seal_open);
criterion_main!(benches);
