//! The quiet path of the heartbeat pump: most heartbeats say what the previous one said.
//!
//! A healthy peer sends the same heartbeat every interval, only its sequence number growing. Handing
//! each one to JavaScript (authenticate, parse, step the membership core) costs a wake-up of the JS
//! thread per peer per interval, which is most of an idle daemon's CPU. So the receiving thread
//! keeps, per (LAN, source address), a template of the last heartbeat the membership core *accepted*
//! from there — its bytes with the sequence number cut out — and absorbs a datagram that is that
//! template with a larger sequence number and a valid HMAC-SHA256 under the cluster key: it is
//! counted and its arrival noted ([`Heard`]), not queued. JS collects the notes when it checks the
//! timeouts and feeds them to the core as what they are: the accepted heartbeat again, with that
//! sequence number, at that arrival time. Anything else — another content, a sequence number not
//! larger, a bad MAC, a source without template — goes to JS as before, which decides everything.
//!
//! Nothing here is a rule of membership: a template exists only because the core accepted its
//! heartbeat, and JS forgets a peer's templates when it declares it down.
//!
//! The filter also keeps, per template, when its source was last heard (the accepted heartbeat's
//! arrival, then each absorbed one's: authenticated arrivals only, so a forged datagram cannot
//! hold a deadline off). The pump uses it to wake JS when a source's silence reaches the timeout
//! ([`QuietFilter::next_silence`], [`QuietFilter::mark_silent`]), so JS need not wake to find
//! that a quiet peer is still there.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// The heartbeat's wire format (src/membership/codec.ts): "CRFT" | version | JSON | HMAC-SHA256.
const MAGIC: &[u8] = b"CRFT";
const VERSION: u8 = 1;
const HEADER: usize = 5;
const MAC_BYTES: usize = 32;
const SEQ_KEY: &[u8] = b"\"seq\":";
/// A JavaScript number is an exact integer up to 2^53 (16 digits).
const MAX_SEQ_DIGITS: usize = 16;
const MAX_SEQ: u64 = 1 << 53;
/// Templates come from accepted heartbeats of configured peers (a few per LAN); a bound anyway.
pub const MAX_TEMPLATES: usize = 1024;

struct Template {
    /// The body (JSON) up to and including `"seq":`.
    prefix: Vec<u8>,
    /// The body after the sequence number's digits.
    suffix: Vec<u8>,
    last_seq: u64,
    /// The last authenticated arrival from this (LAN, source): the accepted frame's, then each absorbed one's.
    last_arrival: Instant,
    /// Its silence reached the watch timeout since `last_arrival` and JS was told.
    silent: bool,
}

/// Heartbeats absorbed from one (LAN, source) since the last [`QuietFilter::take_heard`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heard {
    pub lan: usize,
    pub source: IpAddr,
    /// The largest sequence number absorbed.
    pub seq: u64,
    /// When the datagram carrying it arrived.
    pub arrived: Instant,
    pub count: u64,
}

pub struct QuietFilter {
    key: Vec<u8>,
    templates: HashMap<(usize, IpAddr), Template>,
    heard: HashMap<(usize, IpAddr), Heard>,
    /// A template reported silent was heard again since the last [`QuietFilter::take_revived`].
    revived: bool,
}

/// The JSON body of a frame of the right size and header, or None.
fn body(frame: &[u8]) -> Option<&[u8]> {
    if frame.len() < HEADER + MAC_BYTES + 2 || &frame[..MAGIC.len()] != MAGIC || frame[MAGIC.len()] != VERSION {
        return None;
    }
    Some(&frame[HEADER..frame.len() - MAC_BYTES])
}

/// The decimal digits of a sequence number as JSON writes it (no sign, no leading zero), or None.
fn parse_seq(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > MAX_SEQ_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return None;
    }
    let v = digits.iter().fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
    (v <= MAX_SEQ).then_some(v)
}

/// The body around its sequence number: (up to and including `"seq":`, after the digits), when
/// `"seq":<seq>` occurs exactly once (twice: which one is the sequence number is not certain).
fn split_at_seq(body: &[u8], seq: u64) -> Option<(&[u8], &[u8])> {
    let needle = [SEQ_KEY, seq.to_string().as_bytes()].concat();
    let mut found = None;
    for i in 0..body.len().saturating_sub(needle.len() - 1) {
        if body[i..].starts_with(&needle) && !body.get(i + needle.len()).is_some_and(u8::is_ascii_digit) {
            if found.is_some() {
                return None;
            }
            found = Some(i);
        }
    }
    let at = found?;
    Some((&body[..at + SEQ_KEY.len()], &body[at + needle.len()..]))
}

/// The frame again with sequence number `new_seq` instead of `seq`, signed with `key`: what the
/// sender would have encoded for that sequence number (the JSON differs only in its digits). None
/// when the frame is not a heartbeat whose `"seq":<seq>` occurs exactly once, or `new_seq` is
/// beyond what a JavaScript number holds exactly.
pub fn reseq(frame: &[u8], seq: u64, new_seq: u64, key: &[u8]) -> Option<Vec<u8>> {
    if new_seq > MAX_SEQ {
        return None;
    }
    let (prefix, suffix) = split_at_seq(body(frame)?, seq)?;
    let digits = new_seq.to_string();
    let mut out = Vec::with_capacity(HEADER + prefix.len() + digits.len() + suffix.len() + MAC_BYTES);
    out.extend_from_slice(&frame[..HEADER]);
    out.extend_from_slice(prefix);
    out.extend_from_slice(digits.as_bytes());
    out.extend_from_slice(suffix);
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(&out);
    out.extend_from_slice(&mac.finalize().into_bytes());
    Some(out)
}

impl QuietFilter {
    pub fn new(key: Vec<u8>) -> QuietFilter {
        QuietFilter { key, templates: HashMap::new(), heard: HashMap::new(), revived: false }
    }

    /// The core accepted `frame` (sequence number `seq`, arrived at `arrived`) from `source` on
    /// `lan`: later frames equal to it but for a larger sequence number are quiet. Learns nothing
    /// (false) when the frame's `"seq":<seq>` is not found exactly once, or the table is full; the
    /// source's previous template on that LAN is then dropped too (its content is not the last
    /// accepted any more, and JS no longer counts on it).
    pub fn learn(&mut self, lan: usize, source: IpAddr, frame: &[u8], seq: u64, arrived: Instant) -> bool {
        let Some((prefix, suffix)) = body(frame).and_then(|b| split_at_seq(b, seq)) else {
            self.templates.remove(&(lan, source));
            self.heard.remove(&(lan, source));
            return false;
        };
        if self.templates.len() >= MAX_TEMPLATES && !self.templates.contains_key(&(lan, source)) {
            return false;
        }
        let template = Template { prefix: prefix.to_vec(), suffix: suffix.to_vec(), last_seq: seq, last_arrival: arrived, silent: false };
        self.templates.insert((lan, source), template);
        // What was absorbed under the previous template came before this accepted frame.
        self.heard.remove(&(lan, source));
        true
    }

    /// Forgets the templates (and notes) of a source on every LAN: its next heartbeats go to JS.
    pub fn forget(&mut self, source: IpAddr) {
        self.templates.retain(|(_, s), _| *s != source);
        self.heard.retain(|(_, s), _| *s != source);
    }

    /// True when the datagram is quiet: absorbed and noted; false: it goes to JS.
    pub fn absorb(&mut self, lan: usize, source: IpAddr, frame: &[u8], arrived: Instant) -> bool {
        let Some(t) = self.templates.get_mut(&(lan, source)) else { return false };
        let Some(body) = body(frame) else { return false };
        let fixed = t.prefix.len() + t.suffix.len();
        if body.len() <= fixed || !body.starts_with(&t.prefix) || !body.ends_with(&t.suffix) {
            return false;
        }
        let Some(seq) = parse_seq(&body[t.prefix.len()..body.len() - t.suffix.len()]) else { return false };
        if seq <= t.last_seq {
            return false; // a replay or a reordering: the core counts it
        }
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else { return false };
        let signed = frame.len() - MAC_BYTES;
        mac.update(&frame[..signed]);
        if mac.verify_slice(&frame[signed..]).is_err() {
            return false;
        }
        t.last_seq = seq;
        t.last_arrival = t.last_arrival.max(arrived);
        self.revived |= t.silent;
        t.silent = false;
        let h = self.heard.entry((lan, source)).or_insert(Heard { lan, source, seq, arrived, count: 0 });
        h.seq = seq;
        h.arrived = arrived;
        h.count += 1;
        true
    }

    /// The notes since the last call (one per (LAN, source) that had quiet heartbeats).
    pub fn take_heard(&mut self) -> Vec<Heard> {
        self.heard.drain().map(|(_, h)| h).collect()
    }

    /// When the first template not yet reported silent will have been silent for `timeout`.
    pub fn next_silence(&self, timeout: Duration) -> Option<Instant> {
        self.templates.values().filter(|t| !t.silent).map(|t| t.last_arrival + timeout).min()
    }

    /// True once after a template reported silent was heard again (its deadline is back).
    pub fn take_revived(&mut self) -> bool {
        std::mem::take(&mut self.revived)
    }

    /// Marks silent the templates not heard for `timeout` at `now`; how many were newly marked.
    pub fn mark_silent(&mut self, now: Instant, timeout: Duration) -> usize {
        let mut n = 0;
        for t in self.templates.values_mut() {
            if !t.silent && t.last_arrival + timeout <= now {
                t.silent = true;
                n += 1;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"quiet-test-key-0123456789abcdef";

    fn frame(json: &str, key: &[u8]) -> Vec<u8> {
        let mut f = b"CRFT\x01".to_vec();
        f.extend_from_slice(json.as_bytes());
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(&f);
        f.extend_from_slice(&mac.finalize().into_bytes());
        f
    }

    fn hb(seq: u64, epoch: u32) -> Vec<u8> {
        frame(&format!(r#"{{"cluster":"c","from":"n2","lan":0,"incarnation":5,"seq":{seq},"view":{{"epoch":{epoch},"members":["n1","n2"]}},"modules":{{}}}}"#), KEY)
    }

    fn src() -> IpAddr {
        "10.0.0.2".parse().unwrap()
    }

    #[test]
    fn reseq_gives_what_the_sender_would_have_encoded() {
        assert_eq!(reseq(&hb(10, 1), 10, 11, KEY), Some(hb(11, 1)));
        assert_eq!(reseq(&hb(10, 1), 10, 123_456_789, KEY), Some(hb(123_456_789, 1)));
        assert_eq!(reseq(&hb(7, 1), 7, 7, KEY), Some(hb(7, 1)));
        // Not the seq the frame carries, a seq written twice, beyond 2^53, not a heartbeat: None.
        assert_eq!(reseq(&hb(10, 1), 11, 12, KEY), None);
        let twice = frame(r#"{"seq":5,"modules":{"seq":5}}"#, KEY);
        assert_eq!(reseq(&twice, 5, 6, KEY), None);
        assert_eq!(reseq(&hb(10, 1), 10, (1 << 53) + 1, KEY), None);
        assert_eq!(reseq(b"CRFT", 1, 2, KEY), None);
        assert_eq!(reseq(&[], 1, 2, KEY), None);
        // What it makes is absorbed as a repeat of the frame it came from.
        let mut q = QuietFilter::new(KEY.to_vec());
        assert!(q.learn(0, src(), &hb(10, 1), 10, Instant::now()));
        assert!(q.absorb(0, src(), &reseq(&hb(10, 1), 10, 11, KEY).unwrap(), Instant::now()));
    }

    #[test]
    fn absorbs_the_accepted_heartbeat_with_larger_seqs_and_notes_the_last() {
        let mut q = QuietFilter::new(KEY.to_vec());
        let t0 = Instant::now();
        assert!(!q.absorb(0, src(), &hb(10, 1), t0), "no template yet");
        assert!(q.learn(0, src(), &hb(10, 1), 10, Instant::now()));
        assert!(q.absorb(0, src(), &hb(11, 1), t0));
        assert!(q.absorb(0, src(), &hb(100, 1), t0));
        assert!(q.absorb(0, src(), &hb(1000, 1), t0));
        let heard = q.take_heard();
        assert_eq!(heard.len(), 1);
        assert_eq!((heard[0].seq, heard[0].count, heard[0].lan, heard[0].source), (1000, 3, 0, src()));
        assert!(q.take_heard().is_empty(), "taken");
    }

    #[test]
    fn hands_to_js_anything_else() {
        let mut q = QuietFilter::new(KEY.to_vec());
        assert!(q.learn(0, src(), &hb(10, 1), 10, Instant::now()));
        let t = Instant::now();
        assert!(!q.absorb(0, src(), &hb(12, 2), t), "another content");
        assert!(!q.absorb(0, src(), &hb(10, 1), t), "the same seq (a replay)");
        assert!(!q.absorb(0, src(), &hb(9, 1), t), "an older seq");
        assert!(!q.absorb(1, src(), &hb(12, 1), t), "another LAN");
        assert!(!q.absorb(0, "10.0.0.3".parse().unwrap(), &hb(12, 1), t), "another source");
        let forged = frame(r#"{"cluster":"c","from":"n2","lan":0,"incarnation":5,"seq":12,"view":{"epoch":1,"members":["n1","n2"]},"modules":{}}"#, b"another key");
        assert!(!q.absorb(0, src(), &forged, t), "a bad MAC");
        let mut flipped = hb(13, 1);
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(!q.absorb(0, src(), &flipped, t), "a damaged MAC");
        for digits in ["012", "-12", "1.5", "", "99999999999999999", "1e3"] {
            let f = frame(&format!(r#"{{"cluster":"c","from":"n2","lan":0,"incarnation":5,"seq":{digits},"view":{{"epoch":1,"members":["n1","n2"]}},"modules":{{}}}}"#), KEY);
            assert!(!q.absorb(0, src(), &f, t), "seq {digits:?}");
        }
        assert!(q.take_heard().is_empty());
        // A seq refused does not move the floor: the next larger one is still quiet.
        assert!(q.absorb(0, src(), &hb(11, 1), t));
    }

    #[test]
    fn learns_only_when_the_seq_is_found_exactly_once_and_forgets_a_source() {
        let mut q = QuietFilter::new(KEY.to_vec());
        // "seq":7 inside a module status too: ambiguous.
        let twice = frame(r#"{"seq":7,"modules":{"m":{"seq":7}}}"#, KEY);
        assert!(!q.learn(0, src(), &twice, 7, Instant::now()));
        assert!(!q.learn(0, src(), &hb(10, 1), 11, Instant::now()), "not the frame's seq");
        assert!(!q.learn(0, src(), b"CRFT\x01{}", 1, Instant::now()), "too short");
        // "seq":1 is not a prefix match of "seq":10.
        assert!(!q.learn(0, src(), &hb(10, 1), 1, Instant::now()));
        assert!(q.learn(0, src(), &hb(10, 1), 10, Instant::now()));
        assert!(q.learn(1, src(), &hb(10, 1), 10, Instant::now()));
        assert!(q.absorb(0, src(), &hb(11, 1), Instant::now()));
        q.forget(src());
        assert!(q.take_heard().is_empty(), "the notes go with the templates");
        assert!(!q.absorb(0, src(), &hb(12, 1), Instant::now()));
        assert!(!q.absorb(1, src(), &hb(12, 1), Instant::now()));
    }

    #[test]
    fn a_new_template_drops_the_notes_of_the_old_one() {
        let mut q = QuietFilter::new(KEY.to_vec());
        assert!(q.learn(0, src(), &hb(10, 1), 10, Instant::now()));
        assert!(q.absorb(0, src(), &hb(11, 1), Instant::now()));
        assert!(q.learn(0, src(), &hb(12, 2), 12, Instant::now()));
        assert!(q.take_heard().is_empty());
        assert!(q.absorb(0, src(), &hb(13, 2), Instant::now()));
        assert!(!q.absorb(0, src(), &hb(14, 1), Instant::now()), "the old content is not quiet any more");
    }

    #[test]
    fn silence_counts_from_authenticated_arrivals_only_and_is_reported_once() {
        let mut q = QuietFilter::new(KEY.to_vec());
        let timeout = Duration::from_millis(250);
        let t0 = Instant::now();
        assert_eq!(q.next_silence(timeout), None, "nothing to watch");
        assert!(q.learn(0, src(), &hb(10, 1), 10, t0));
        assert_eq!(q.next_silence(timeout), Some(t0 + timeout));
        // An absorbed repeat moves the deadline; a forged or replayed one does not.
        let t1 = t0 + Duration::from_millis(100);
        assert!(q.absorb(0, src(), &hb(11, 1), t1));
        let forged = frame(r#"{"cluster":"c","from":"n2","lan":0,"incarnation":5,"seq":12,"view":{"epoch":1,"members":["n1","n2"]},"modules":{}}"#, b"another key");
        assert!(!q.absorb(0, src(), &forged, t1 + Duration::from_millis(100)));
        assert!(!q.absorb(0, src(), &hb(11, 1), t1 + Duration::from_millis(100)), "a replay");
        assert_eq!(q.next_silence(timeout), Some(t1 + timeout));
        // Not yet silent just before; silent at the deadline, reported once.
        assert_eq!(q.mark_silent(t1 + timeout - Duration::from_millis(1), timeout), 0);
        assert_eq!(q.mark_silent(t1 + timeout, timeout), 1);
        assert_eq!(q.next_silence(timeout), None, "reported: no deadline until it is heard again");
        assert_eq!(q.mark_silent(t1 + timeout * 4, timeout), 0);
        // Heard again: watched again.
        let t2 = t1 + timeout * 5;
        assert!(!q.take_revived());
        assert!(q.absorb(0, src(), &hb(12, 1), t2));
        assert!(q.take_revived(), "a silent one heard again");
        assert!(!q.take_revived());
        assert_eq!(q.next_silence(timeout), Some(t2 + timeout));
        // Another source's earlier deadline comes first; a forgotten source is not watched.
        let other: IpAddr = "10.0.0.3".parse().unwrap();
        assert!(q.learn(1, other, &hb(10, 1), 10, t1));
        assert_eq!(q.next_silence(timeout), Some(t1 + timeout));
        q.forget(other);
        assert_eq!(q.next_silence(timeout), Some(t2 + timeout));
    }

    #[test]
    fn a_failed_learn_drops_the_previous_template() {
        let mut q = QuietFilter::new(KEY.to_vec());
        assert!(q.learn(0, src(), &hb(10, 1), 10, Instant::now()));
        let twice = frame(r#"{"seq":7,"modules":{"m":{"seq":7}}}"#, KEY);
        assert!(!q.learn(0, src(), &twice, 7, Instant::now()));
        assert!(!q.absorb(0, src(), &hb(11, 1), Instant::now()), "the old content goes to JS again");
        assert_eq!(q.next_silence(Duration::from_millis(250)), None);
    }

    #[test]
    fn garbage_never_panics_and_the_table_is_bounded() {
        let mut q = QuietFilter::new(KEY.to_vec());
        let mut x: u32 = 12345;
        for i in 0..5000usize {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            let len = (x as usize) % 200;
            let mut f: Vec<u8> = (0..len).map(|j| (x.wrapping_add(j as u32) >> 3) as u8).collect();
            if i % 3 == 0 && f.len() > 5 {
                f[..5].copy_from_slice(b"CRFT\x01");
            }
            let _ = q.learn(i % 4, src(), &f, u64::from(x), Instant::now());
            let _ = q.absorb(i % 4, src(), &f, Instant::now());
        }
        for i in 0..(MAX_TEMPLATES + 10) {
            let ip = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            let _ = q.learn(0, ip, &hb(10, 1), 10, Instant::now());
        }
        assert!(q.templates.len() <= MAX_TEMPLATES);
    }
}
