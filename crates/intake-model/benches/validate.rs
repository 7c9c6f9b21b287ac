//! Validation throughput on realistic CONTACT and DEAL lines: `FileValidator` over an
//! in-memory buffer of lines from `gen::write_lines`, reported in lines (elements) per second.
//!
//! Two groups: `validate` measures wall-clock time (criterion's default); `validate_cpu`
//! measures the CPU time of the benchmark thread (Linux `/proc/thread-self/schedstat`), which
//! stays meaningful on a machine busy with other work. Elsewhere `validate_cpu` falls back
//! to wall-clock time.

use std::time::Instant;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use intake_model::{gen, FileValidator, ObjectType, Schema};

const LINES: u64 = 20_000;

fn run<M: Measurement>(c: &mut Criterion<M>, group_name: &str) {
    let mut group = c.benchmark_group(group_name);
    for ty in [ObjectType::Contact, ObjectType::Deal] {
        let mut data = Vec::new();
        gen::write_lines(&mut data, ty, LINES, 42, 0.0).expect("generate");
        group.throughput(Throughput::Elements(LINES));
        group.bench_function(ty.as_str(), |b| {
            b.iter(|| {
                let mut ok = 0u64;
                for outcome in FileValidator::new(&data[..], ty, Schema::empty()) {
                    ok += u64::from(outcome.expect("in-memory read").result.is_ok());
                }
                assert_eq!(ok, LINES);
                black_box(ok)
            })
        });
    }
    group.finish();
}

fn wall(c: &mut Criterion) {
    run(c, "validate");
}

/// CPU time of the current thread in nanoseconds.
struct ThreadCpu {
    epoch: Instant,
}

fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}

static WALL: WallTime = WallTime;

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;
    fn start(&self) -> u64 {
        thread_cpu_ns().unwrap_or_else(|| self.epoch.elapsed().as_nanos() as u64)
    }
    fn end(&self, start: u64) -> u64 {
        self.start().saturating_sub(start)
    }
    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }
    fn zero(&self) -> u64 {
        0
    }
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        // Values are nanoseconds, like wall-clock time.
        WALL.formatter()
    }
}

fn cpu(c: &mut Criterion<ThreadCpu>) {
    run(c, "validate_cpu");
}

criterion_group!(wall_benches, wall);
criterion_group! {
    name = cpu_benches;
    config = Criterion::default().with_measurement(ThreadCpu { epoch: Instant::now() });
    targets = cpu
}
criterion_main!(wall_benches, cpu_benches);
