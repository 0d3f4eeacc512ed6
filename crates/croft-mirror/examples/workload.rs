//! The workload test's random operations on any directory, and its tree comparison, for the lab
//! test that runs them on a real PRIM (test/integration/mirror-workload.lab.test.ts):
//!   workload run <dir> <successful ops> <seed>   every replicated kind of change, fsyncs included,
//!                                                then explicit mtimes on every entry
//!   workload compare <dir a> <dir b>             contents, sizes, modes, owners, symlinks, hard-link
//!                                                groups, xattrs, mtimes; exit 1 with the differences
#[path = "../tests/common/mod.rs"]
mod common;
use common::random_ops::{run_random_ops, set_all_mtimes, Rng};
use std::path::Path;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("run") if args.len() == 5 => {
            let d = Path::new(&args[2]);
            let target: u64 = args[3].parse().expect("ops: a number");
            let seed: u64 = args[4].parse().expect("seed: a number");
            let t0 = std::time::Instant::now();
            let (ok, attempts) = run_random_ops(d, &mut Rng(seed), target);
            set_all_mtimes(d);
            let total: u64 = ok.values().sum();
            let kinds = ok.iter().map(|(k, n)| format!("\"{k}\":{n}")).collect::<Vec<_>>().join(",");
            println!("{{\"ops\":{total},\"attempts\":{attempts},\"ms\":{},\"kinds\":{{{kinds}}}}}", t0.elapsed().as_millis());
        }
        Some("compare") if args.len() == 4 => {
            let r = std::panic::catch_unwind(|| {
                common::assert_same_trees(Path::new(&args[2]), Path::new(&args[3]), &|p| !p.as_os_str().is_empty())
            });
            match r {
                Ok(entries) => println!("{{\"identical\":true,\"entries\":{entries}}}"),
                Err(_) => std::process::exit(1), // the panic message (the differences) is on stderr
            }
        }
        _ => {
            eprintln!("usage: workload run <dir> <ops> <seed> | workload compare <a> <b>");
            std::process::exit(2);
        }
    }
}
