//! Frame building and fan-out enqueue costs. On demand only (no test asserts a speed):
//!
//! ```sh
//! cargo bench -p wse-runtime --bench framing
//! ```

use std::hint::black_box;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::sync::mpsc;
use wse_runtime::wsframe::{self, Opcode};

fn frame_building(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_text_frame");
    for size in [64usize, 1024, 16 * 1024] {
        let payload = vec![b'x'; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_with_input(BenchmarkId::from_parameter(size), &payload, |b, p| {
            b.iter(|| wsframe::encode(Opcode::Text, black_box(p)));
        });
    }
    group.finish();
}

fn category_injection(c: &mut Criterion) {
    let compact = r#"{"t":"price_update","p":{"symbol":"ACME","price":101.25,"size":300}}"#;
    let spaced = r#"{"t": "price_update", "p": {"symbol": "ACME", "price": 101.25}}"#;
    c.bench_function("inject_category/compact", |b| {
        b.iter(|| wse_core::protocol::inject_category(black_box(compact)));
    });
    c.bench_function("inject_category/json_dumps_spacing", |b| {
        b.iter(|| wse_core::protocol::inject_category(black_box(spaced)));
    });
}

/// One pre-built frame shared (`Bytes::clone`, a reference-count bump) into N bounded queues
/// and taken out again: the per-recipient queue cost of a broadcast, without socket writes.
fn fanout_enqueue(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout_enqueue_dequeue");
    for recipients in [100usize, 1000, 10_000] {
        let mut queues: Vec<(mpsc::Sender<Bytes>, mpsc::Receiver<Bytes>)> =
            (0..recipients).map(|_| mpsc::channel(4)).collect();
        let frame = wsframe::encode(Opcode::Text, &[b'x'; 256]);
        group.throughput(Throughput::Elements(recipients as u64));
        group.bench_function(BenchmarkId::from_parameter(recipients), |b| {
            b.iter(|| {
                for (tx, _) in &queues {
                    let _ = tx.try_send(frame.clone());
                }
                for (_, rx) in &mut queues {
                    black_box(rx.try_recv().ok());
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, frame_building, category_injection, fanout_enqueue);
criterion_main!(benches);
