//! Validates generated lines and prints lines per second (wall clock).
//! `cargo run --release -p intake-model --example throughput -- CONTACT 500000`
//! Run under `perf stat -e task-clock` for CPU time on a busy machine.

use std::time::Instant;

use intake_model::{gen, FileValidator, ObjectType, Schema};

fn main() {
    let mut args = std::env::args().skip(1);
    let ty = ObjectType::parse(&args.next().unwrap_or_else(|| "CONTACT".into())).expect("type");
    let n: u64 = args.next().map_or(500_000, |s| s.parse().expect("count"));
    let mut data = Vec::new();
    gen::write_lines(&mut data, ty, n, 1, 0.0).expect("generate");
    let cpu0 = thread_cpu_ns();
    let start = Instant::now();
    let mut ok = 0u64;
    for o in FileValidator::new(&data[..], ty, Schema::empty()) {
        ok += u64::from(o.expect("read").result.is_ok());
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu0.and_then(|c0| thread_cpu_ns().map(|c1| (c1 - c0) as f64 / 1e9));
    println!(
        "{ty}: {ok}/{n} valid, {:.0} bytes/line, {secs:.3} s wall, {:.0} lines/s wall{}",
        data.len() as f64 / n as f64,
        n as f64 / secs,
        cpu.map_or(String::new(), |c| format!(
            ", {c:.3} s CPU, {:.0} lines/s CPU",
            n as f64 / c
        ))
    );
}

/// CPU time of this thread (Linux `/proc/thread-self/schedstat`), in nanoseconds.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}
