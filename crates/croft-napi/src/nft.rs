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
//! A context is not thread-safe: every call takes the session's mutex. Calls run on the libuv pool
//! (a transaction takes a millisecond or so, a list of a big set more), never on the JS thread.

use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::{Arc, Mutex, OnceLock};

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

// SAFETY: the context is only ever used under the session's mutex, by one thread at a time;
// libnftables keeps no thread-local state for it.
unsafe impl Send for Ctx {}

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
    ctx: Arc<Mutex<Option<Ctx>>>,
    cmd: CString,
    json: bool,
}

impl Task for NftRunTask {
    type Output = NftRun;
    type JsValue = NftRun;

    fn compute(&mut self) -> Result<NftRun> {
        let run = || {
            let mut guard = self.ctx.lock().unwrap_or_else(|p| p.into_inner());
            match guard.as_mut() {
                Some(ctx) => Ok(ctx.run(&self.cmd, self.json)),
                None => Err(Error::new(Status::GenericFailure, "nft session is closed".to_string())),
            }
        };
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
            Ok(r) => r,
            Err(_) => Err(Error::new(Status::GenericFailure, "nft session panicked".to_string())),
        }
    }

    fn resolve(&mut self, _env: Env, output: NftRun) -> Result<NftRun> {
        Ok(output)
    }
}

/// A libnftables context held by this process: its netlink socket owns the tables created with
/// `flags owner` through it, until close() or the process's end.
#[napi]
pub struct NftSession {
    ctx: Arc<Mutex<Option<Ctx>>>,
}

#[napi]
impl NftSession {
    /// Opens the context in the calling thread's network namespace (the daemon's).
    #[napi(constructor, catch_unwind)]
    pub fn new() -> Result<Self> {
        let ctx = Ctx::open().map_err(|e| Error::new(Status::GenericFailure, e))?;
        Ok(NftSession { ctx: Arc::new(Mutex::new(Some(ctx))) })
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
        Ok(AsyncTask::new(NftRunTask { ctx: Arc::clone(&self.ctx), cmd, json: json.unwrap_or(false) }))
    }

    /// Frees the context and closes its socket: the kernel deletes the tables it owns. Idempotent;
    /// waits for a running command to finish.
    #[napi(catch_unwind)]
    pub fn close(&self) {
        let mut guard = self.ctx.lock().unwrap_or_else(|p| p.into_inner());
        guard.take();
    }
}
