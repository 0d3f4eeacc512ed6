//! nftables in the daemon's own process: libnftables (the library the `nft` command is built on),
//! loaded with dlopen, one context per session. A context holds one netlink socket for its whole
//! life, so a table created through it with `flags owner` belongs to that socket: the kernel
//! deletes the table when the socket closes, which happens when the daemon dies, however it dies
//! (SIGKILL, OOM kill, a panic). Commands are nft's own text language, so the rule set is exactly
//! what `nft -f` would load; no process is spawned.
//!
//! Why libnftables rather than netlink messages built in Rust (rustables, nftnl, neli): the farm's
//! rules (jhash, ct state, reject with tcp reset, meta pkttype set) would have to be encoded again
//! expression by expression and kept equal to the text renderer and the tests that read `nft list`;
//! libnftables parses the same text, reports errors in nft's own words, and ships with the `nft`
//! command croft already needs. Why not a long-lived `nft -i` child fed on stdin: tried (nft 1.0.6,
//! stdin a pipe), the owner table does belong to that child's socket and goes when stdin closes, but
//! success prints nothing and an error is a free-text message on stderr, so a program can tell
//! neither when a command finished nor which one failed without sentinel commands; each line is its
//! own transaction; and it is one more process, which can die alone and take the table while the
//! daemon lives.
//!
//! A context is not thread-safe, and libnftables is not written for a context that moves between
//! threads: each session owns one thread of its own, which creates the context, runs every command
//! of the session in order and frees it. A command waits on the libuv pool for its answer, never on
//! the JS thread. (Daemons that aborted on a corrupted heap inside nft_run_cmd_from_buffer were
//! first blamed on the pool's threads; the cause was libnftables 1.0.6 printing a table's flags in
//! JSON after freeing them, which farm/nft-apply.ts no longer asks for.)

use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Mutex, OnceLock};
use std::thread::JoinHandle;

/// NFT_CTX_DEFAULT.
const CTX_DEFAULT: u32 = 0;
/// NFT_CTX_OUTPUT_JSON (enum nft_ctx_output_flags, libnftables.h).
const OUTPUT_JSON: u32 = 1 << 4;
/// The soname, as the nftables package installs it (libnftables1 on Debian).
const LIBRARY: &str = "libnftables.so.1";
/// A command text longer than this is refused (the farm's largest rule set is a few hundred KiB:
/// 65536 buckets written out in a set).
const MAX_COMMAND_BYTES: usize = 16 << 20;

type CtxNew = unsafe extern "C" fn(u32) -> *mut c_void;
type CtxFree = unsafe extern "C" fn(*mut c_void);
type CtxInt = unsafe extern "C" fn(*mut c_void) -> c_int;
type CtxBuf = unsafe extern "C" fn(*mut c_void) -> *const c_char;
type CtxGetFlags = unsafe extern "C" fn(*mut c_void) -> u32;
type CtxSetFlags = unsafe extern "C" fn(*mut c_void, u32);
type RunCmd = unsafe extern "C" fn(*mut c_void, *const c_char) -> c_int;

struct Lib {
    ctx_new: CtxNew,
    ctx_free: CtxFree,
    buffer_output: CtxInt,
    buffer_error: CtxInt,
    get_output: CtxBuf,
    get_error: CtxBuf,
    get_flags: CtxGetFlags,
    set_flags: CtxSetFlags,
    run_cmd: RunCmd,
}

fn dlerror() -> String {
    // SAFETY: dlerror returns null or a NUL-terminated string owned by libc.
    let e = unsafe { libc::dlerror() };
    if e.is_null() {
        "unknown error".into()
    } else {
        unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
    }
}

fn load() -> std::result::Result<Lib, String> {
    let name = CString::new(LIBRARY).expect("no NUL in the soname");
    // SAFETY: dlopen with a valid C string; the handle is never closed (the library stays loaded
    // for the process's life, as contexts may live that long).
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    if handle.is_null() {
        return Err(format!("cannot load {LIBRARY} (install the nftables package): {}", dlerror()));
    }
    let sym = |s: &str| -> std::result::Result<*mut c_void, String> {
        let c = CString::new(s).expect("no NUL in a symbol name");
        // SAFETY: valid handle and C string.
        let p = unsafe { libc::dlsym(handle, c.as_ptr()) };
        if p.is_null() {
            Err(format!("{LIBRARY} has no {s}: {}", dlerror()))
        } else {
            Ok(p)
        }
    };
    // SAFETY: each symbol has the C signature of libnftables.h that its type alias states.
    unsafe {
        Ok(Lib {
            ctx_new: std::mem::transmute::<*mut c_void, CtxNew>(sym("nft_ctx_new")?),
            ctx_free: std::mem::transmute::<*mut c_void, CtxFree>(sym("nft_ctx_free")?),
            buffer_output: std::mem::transmute::<*mut c_void, CtxInt>(sym("nft_ctx_buffer_output")?),
            buffer_error: std::mem::transmute::<*mut c_void, CtxInt>(sym("nft_ctx_buffer_error")?),
            get_output: std::mem::transmute::<*mut c_void, CtxBuf>(sym("nft_ctx_get_output_buffer")?),
            get_error: std::mem::transmute::<*mut c_void, CtxBuf>(sym("nft_ctx_get_error_buffer")?),
            get_flags: std::mem::transmute::<*mut c_void, CtxGetFlags>(sym("nft_ctx_output_get_flags")?),
            set_flags: std::mem::transmute::<*mut c_void, CtxSetFlags>(sym("nft_ctx_output_set_flags")?),
            run_cmd: std::mem::transmute::<*mut c_void, RunCmd>(sym("nft_run_cmd_from_buffer")?),
        })
    }
}

fn lib() -> std::result::Result<&'static Lib, String> {
    static LIB: OnceLock<std::result::Result<Lib, String>> = OnceLock::new();
    LIB.get_or_init(load).as_ref().map_err(|e| e.clone())
}

/// One libnftables context (and its netlink socket).
struct Ctx {
    lib: &'static Lib,
    ptr: *mut c_void,
}

// SAFETY: a context is created, used and freed on its session's own thread only (session_loop);
// it crosses no thread boundary after it was made there.
unsafe impl Send for Ctx {}

/// Bison's parser and nft's evaluation recurse over the rule set: more stack than a default thread.
const THREAD_STACK_BYTES: usize = 16 << 20;

struct Job {
    cmd: CString,
    json: bool,
    reply: SyncSender<NftRun>,
}

/// The session's thread: opens the context, says so, then runs the jobs in order until the session
/// drops its sender; the context is freed here, on the thread that made it.
fn session_loop(opened: SyncSender<std::result::Result<(), String>>, jobs: Receiver<Job>) {
    let mut ctx = match Ctx::open() {
        Ok(ctx) => {
            let _ = opened.send(Ok(()));
            ctx
        }
        Err(e) => {
            let _ = opened.send(Err(e));
            return;
        }
    };
    for job in jobs {
        let _ = job.reply.send(ctx.run(&job.cmd, job.json));
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: ptr came from nft_ctx_new and is freed once; this closes the socket, and with it
        // the kernel deletes the tables the socket owns.
        unsafe { (self.lib.ctx_free)(self.ptr) };
    }
}

fn buffer(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        // SAFETY: libnftables returns a NUL-terminated buffer it owns until the next call.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

impl Ctx {
    fn open() -> std::result::Result<Ctx, String> {
        let lib = lib()?;
        // SAFETY: plain constructor; null on failure.
        let ptr = unsafe { (lib.ctx_new)(CTX_DEFAULT) };
        if ptr.is_null() {
            return Err("nft_ctx_new failed (no netlink socket?)".into());
        }
        let ctx = Ctx { lib, ptr };
        // SAFETY: valid context. Output and errors go to memory buffers, never to our stdout.
        let ok = unsafe { (lib.buffer_output)(ptr) == 0 && (lib.buffer_error)(ptr) == 0 };
        if !ok {
            return Err("cannot buffer nft's output".into());
        }
        Ok(ctx)
    }

    fn run(&mut self, cmd: &CStr, json: bool) -> NftRun {
        let lib = self.lib;
        // SAFETY: valid context and NUL-terminated command; buffers read before the next call.
        unsafe {
            let flags = (lib.get_flags)(self.ptr);
            (lib.set_flags)(self.ptr, if json { flags | OUTPUT_JSON } else { flags & !OUTPUT_JSON });
            let code = (lib.run_cmd)(self.ptr, cmd.as_ptr());
            let output = buffer((lib.get_output)(self.ptr));
            let error = buffer((lib.get_error)(self.ptr));
            NftRun { code, output, error }
        }
    }
}

/// What one command text did: nft_run_cmd_from_buffer's return (0 = applied, else nothing of the
/// transaction was), what it printed, and its error messages (nft's own words, with the command
/// line they point at).
#[napi(object)]
pub struct NftRun {
    pub code: i32,
    pub output: String,
    pub error: String,
}

pub struct NftRunTask {
    jobs: Option<Sender<Job>>,
    cmd: CString,
    json: bool,
}

impl Task for NftRunTask {
    type Output = NftRun;
    type JsValue = NftRun;

    fn compute(&mut self) -> Result<NftRun> {
        let closed = || Error::new(Status::GenericFailure, "nft session is closed".to_string());
        let jobs = self.jobs.take().ok_or_else(closed)?;
        let (reply, answer) = mpsc::sync_channel(1);
        jobs.send(Job { cmd: std::mem::take(&mut self.cmd), json: self.json, reply }).map_err(|_| closed())?;
        drop(jobs);
        // The session's thread answers every job it took; none when it ended (closed) first.
        answer.recv().map_err(|_| closed())
    }

    fn resolve(&mut self, _env: Env, output: NftRun) -> Result<NftRun> {
        Ok(output)
    }
}

/// A libnftables context held by this process: its netlink socket owns the tables created with
/// `flags owner` through it, until close() or the process's end.
#[napi]
pub struct NftSession {
    /// To the session's thread; None once closed.
    jobs: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

#[napi]
impl NftSession {
    /// Opens the context in the calling thread's network namespace (the daemon's).
    #[napi(constructor, catch_unwind)]
    pub fn new() -> Result<Self> {
        let (opened_tx, opened) = mpsc::sync_channel(1);
        let (jobs, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("croft-nft".into())
            .stack_size(THREAD_STACK_BYTES)
            .spawn(move || session_loop(opened_tx, rx))
            .map_err(|e| Error::new(Status::GenericFailure, format!("cannot start the nft thread: {e}")))?;
        match opened.recv() {
            Ok(Ok(())) => Ok(NftSession { jobs: Mutex::new(Some(jobs)), thread: Mutex::new(Some(thread)) }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(Error::new(Status::GenericFailure, e))
            }
            Err(_) => {
                let _ = thread.join();
                Err(Error::new(Status::GenericFailure, "the nft thread ended before opening a context".to_string()))
            }
        }
    }

    /// Runs `commands` (nft's language, as `nft -f` reads it: one transaction); `json` asks for
    /// JSON output (`nft -j`). Resolves with the code and both buffers; rejects only when the
    /// session is closed or the command cannot be passed (NUL byte, too long).
    #[napi(catch_unwind, ts_return_type = "Promise<NftRun>")]
    pub fn run(&self, commands: String, json: Option<bool>) -> Result<AsyncTask<NftRunTask>> {
        if commands.len() > MAX_COMMAND_BYTES {
            return Err(Error::new(Status::InvalidArg, format!("nft commands of {} bytes (at most {MAX_COMMAND_BYTES})", commands.len())));
        }
        let cmd = CString::new(commands).map_err(|_| Error::new(Status::InvalidArg, "nft commands contain a NUL byte".to_string()))?;
        let jobs = self.jobs.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ok(AsyncTask::new(NftRunTask { jobs, cmd, json: json.unwrap_or(false) }))
    }

    /// Frees the context and closes its socket: the kernel deletes the tables it owns. Idempotent;
    /// waits for a running command to finish.
    #[napi(catch_unwind)]
    pub fn close(&self) {
        // The thread ends once every sender is gone: this one, and those of commands queued
        // before (they run first, in order).
        drop(self.jobs.lock().unwrap_or_else(|p| p.into_inner()).take());
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}
