//! Issue 8, finding 3: at the descriptor limit every accept fails (EMFILE) and the connection
//! stays in the backlog, so an accept loop without back-off spins at 100 % CPU. Alone in its test
//! binary: it lowers the process's descriptor limit.
mod common;
use common::*;
use std::fs;
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::thread;
use std::time::Duration;

/// The stat file of the replica's accept thread, opened ahead (no descriptor is left later).
fn accept_thread_stat() -> fs::File {
    // The thread names itself once it runs: look for a while.
    for _ in 0..200 {
        for t in fs::read_dir("/proc/self/task").unwrap() {
            let p = t.unwrap().path();
            if fs::read_to_string(p.join("comm")).unwrap_or_default().trim() == "croft-replica-a" {
                return fs::File::open(p.join("stat")).unwrap();
            }
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("no accept thread");
}

/// CPU ticks (user + system) in a thread's stat file.
fn ticks(stat: &fs::File) -> u64 {
    let mut buf = [0u8; 1024];
    let n = stat.read_at(&mut buf, 0).unwrap();
    let stat = String::from_utf8_lossy(&buf[..n]);
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

struct Limit(libc::rlimit);

impl Drop for Limit {
    fn drop(&mut self) {
        // SAFETY: restores the limit read before.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &self.0) };
    }
}

#[test]
fn finding_3_accept_errors_back_off_instead_of_spinning() {
    let dir = TempDir::new("emfile");
    let r = replica(dir.path());
    let port = r.local_addr().port();
    // Clients from another process (this one will have no descriptor left to make them).
    let mut clients = Command::new("bash")
        .arg("-c")
        .arg(format!("sleep 1; for i in 1 2 3 4 5; do exec {{fd}}<>/dev/tcp/127.0.0.1/{port}; done; sleep 4"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stat = accept_thread_stat();
    let mut old = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain getrlimit/setrlimit on this process.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut old) };
    let guard = Limit(old);
    // Below every descriptor but 0-2: no new descriptor can be made (those open stay usable).
    let low = libc::rlimit { rlim_cur: 3, rlim_max: old.rlim_max };
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) }, 0);
    thread::sleep(Duration::from_millis(1000)); // the clients connect meanwhile
    let t0 = ticks(&stat);
    thread::sleep(Duration::from_secs(2));
    let spent = ticks(&stat) - t0;
    let errors = r.status().accept_errors;
    drop(guard);
    let _ = clients.kill();
    let _ = clients.wait();
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    assert!(errors > 0, "accept never failed: the limit did not bite");
    // A spinning loop burns ~2 s of CPU in 2 s; with the back-off (up to 500 ms) nearly none.
    assert!(spent * 10 < 2 * hz, "the accept thread used {spent} ticks of {hz}/s in 2 s ({errors} accept errors)");
    assert!(errors < 40, "{errors} accept errors in ~2.8 s: no back-off");
}
