//! Throughput of detection and masking, in bytes of input per second.
//!
//! Two shapes of input, each without and with sensitive values:
//! - `text/*`: one 64 KiB text (a log, a JSON document, a `text` column holding notes);
//! - `values/*`: the same content as the short values of a result set, one call per
//!   value, as the PostgreSQL relay will call it for every field of every row.
//!
//! Run with `cargo bench -p sluice-mask`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use sluice_mask::{DetectorSet, MaskStrategy, Masker};

/// Ordinary column values: names, amounts, dates, timestamps, UUIDs, ids, free text.
const INNOCENT: &[&str] = &[
    "Alice Martin",
    "42",
    "1999.95",
    "2024-01-15",
    "2024-01-15 10:23:45.123456+00",
    "550e8400-e29b-41d4-a716-446655440000",
    "1705312345678",
    "shipped",
    "Rue de la Paix 12, 75002 Paris",
    "Customer asked to change the delivery address before Friday; call back in the morning.",
    "order #88231, 3 items, total EUR 129.90",
    "{\"sku\": \"A-1234\", \"qty\": 2, \"price\": 19.99}",
    "true",
    "192.168.10.24",
    "v2.14.3",
];

/// Values a detector finds.
const SENSITIVE: &[&str] = &[
    "jane.doe@example.com",
    "4111 1111 1111 1111",
    "DE89 3704 0044 0532 0130 00",
    "123-45-6789",
    "+44 20 7946 0958",
    "AKIAIOSFODNN7EXAMPLE",
    "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
    "contact bob@example.org or (555) 123-4567",
];

const TEXT_BYTES: usize = 64 * 1024;

/// Short values cycling through `INNOCENT`, with one of `SENSITIVE` every
/// `sensitive_every` values when given.
fn values(sensitive_every: Option<usize>) -> Vec<&'static str> {
    let mut values = Vec::new();
    let mut bytes = 0;
    let mut index = 0;
    while bytes < TEXT_BYTES {
        let value = match sensitive_every {
            Some(every) if index % every == every - 1 => {
                SENSITIVE[(index / every) % SENSITIVE.len()]
            }
            _ => INNOCENT[index % INNOCENT.len()],
        };
        values.push(value);
        bytes += value.len();
        index += 1;
    }
    values
}

fn total_bytes(values: &[&str]) -> u64 {
    values.iter().map(|value| value.len() as u64).sum()
}

fn detection(c: &mut Criterion) {
    let all = DetectorSet::all();
    let masker = Masker::new(b"benchmark key");
    let mut group = c.benchmark_group("mask");
    group.measurement_time(Duration::from_secs(5));

    // One sensitive value in ten: a table with a few sensitive columns.
    for (name, sensitive_every) in [("no_hits", None), ("hits", Some(10))] {
        let values = values(sensitive_every);
        let text = values.join("\n");
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(BenchmarkId::new("text/find", name), |b| {
            b.iter(|| all.find(black_box(&text)))
        });
        group.bench_function(BenchmarkId::new("text/mask_redact", name), |b| {
            b.iter(|| {
                all.mask_text(&masker, MaskStrategy::Redact, black_box(&text))
                    .map(|masked| masked.len())
            })
        });

        group.throughput(Throughput::Bytes(total_bytes(&values)));
        group.bench_function(BenchmarkId::new("values/find", name), |b| {
            b.iter(|| {
                values
                    .iter()
                    .map(|value| all.find(black_box(value)).len())
                    .sum::<usize>()
            })
        });
        group.bench_function(BenchmarkId::new("values/mask_redact", name), |b| {
            b.iter(|| {
                values
                    .iter()
                    .filter_map(|value| {
                        all.mask_text(&masker, MaskStrategy::Redact, black_box(value))
                    })
                    .map(|masked| masked.len())
                    .sum::<usize>()
            })
        });
    }

    // Whole-value strategies, as column rules apply them.
    let value = "jane.doe@example.com";
    group.throughput(Throughput::Elements(1));
    for strategy in [MaskStrategy::Last4, MaskStrategy::Email, MaskStrategy::Hash] {
        group.bench_function(BenchmarkId::new("value", strategy.as_str()), |b| {
            b.iter(|| masker.mask_value(strategy, black_box(value)))
        });
    }

    group.finish();
}

criterion_group!(benches, detection);
criterion_main!(benches);
