//! Excluded paths of a replicated directory (config `dirs: [{ path, exclude }]`): subtrees that
//! stay local. A change under one is applied locally and neither sent, nor recorded as dirty;
//! reintegration, full sync and verify skip them on both sides (the target keeps its own). A
//! rename or hard link between an excluded and a replicated path fails with EXDEV, as across two
//! filesystems (`mv` then copies), so a replicated file never appears on the primary only.

use crate::op::Op;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// Excluded paths at most (the config allows 64 per dir).
pub const EXCLUDE_MAX: usize = 1024;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exclude(Vec<PathBuf>);

/// What an operation touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touches {
    Replicated,
    Excluded,
    /// From one side to the other (rename, link): refused with EXDEV.
    Both,
}

impl Exclude {
    /// Paths relative to the replicated directory: plain names only (no `..`, `.`, root), not empty.
    pub fn new(paths: Vec<PathBuf>) -> Result<Exclude, String> {
        if paths.len() > EXCLUDE_MAX {
            return Err(format!("{} excluded paths: at most {EXCLUDE_MAX}", paths.len()));
        }
        for p in &paths {
            // Byte segments, not components(): those hide an inner "." and a trailing "/".
            let plain = p.as_os_str().as_bytes().split(|b| *b == b'/').all(|s| !s.is_empty() && s != b"." && s != b"..");
            if !plain || !p.components().all(|c| matches!(c, Component::Normal(_))) {
                return Err(format!("excluded path {p:?} must be a relative path inside the directory (no '..', '.', or leading '/')"));
            }
        }
        Ok(Exclude(paths))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `p` (relative to the directory) is an excluded path or under one.
    pub fn covers(&self, p: &Path) -> bool {
        self.0.iter().any(|e| p.starts_with(e))
    }

    /// The names in `dir` that are excluded paths themselves: a directory's copy keeps them on
    /// the target (its `children` list), whatever they are there.
    pub fn names_in(&self, dir: &Path) -> Vec<Vec<u8>> {
        self.0
            .iter()
            .filter(|e| e.parent() == Some(dir))
            .filter_map(|e| e.file_name().map(|n| n.as_bytes().to_vec()))
            .collect()
    }

    pub fn touches(&self, op: &Op) -> Touches {
        if self.0.is_empty() {
            return Touches::Replicated;
        }
        let paths = op.paths();
        let (a, b) = (paths[0], paths.get(1).copied());
        match (self.covers(a), b.map(|b| self.covers(b))) {
            (true, None | Some(true)) => Touches::Excluded,
            // Renaming a directory that holds an excluded path would move that subtree out of
            // the exclusion (or a replicated one into it): across the boundary too.
            (false, Some(false)) if self.holds_excluded(a) || b.is_some_and(|b| self.holds_excluded(b)) => Touches::Both,
            (false, None | Some(false)) => Touches::Replicated,
            _ => Touches::Both,
        }
    }

    /// An excluded path lies strictly under `p`.
    fn holds_excluded(&self, p: &Path) -> bool {
        self.0.iter().any(|e| e.as_path() != p && e.starts_with(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(p: &[&str]) -> Exclude {
        Exclude::new(p.iter().map(PathBuf::from).collect()).unwrap()
    }

    #[test]
    fn a_path_escaping_the_directory_is_refused() {
        for bad in ["", "/etc", "../x", "a/../../b", "./a", "a/./b", "a/", "a//b"] {
            assert!(Exclude::new(vec![PathBuf::from(bad)]).is_err(), "{bad:?}");
        }
        assert!(Exclude::new((0..=EXCLUDE_MAX).map(|i| PathBuf::from(format!("p{i}"))).collect()).is_err());
    }

    #[test]
    fn covers_whole_components_only() {
        let e = ex(&["tmp", "cache/thumbs"]);
        assert!(e.covers(Path::new("tmp")));
        assert!(e.covers(Path::new("tmp/a/b")));
        assert!(!e.covers(Path::new("tmpx")));
        assert!(!e.covers(Path::new("")));
        assert!(e.covers(Path::new("cache/thumbs/1.png")));
        assert!(!e.covers(Path::new("cache")));
        assert!(!e.covers(Path::new("cache/thumbs2")));
        assert_eq!(e.names_in(Path::new("")), vec![b"tmp".to_vec()]);
        assert_eq!(e.names_in(Path::new("cache")), vec![b"thumbs".to_vec()]);
    }

    #[test]
    fn a_rename_across_the_boundary_touches_both() {
        let e = ex(&["tmp"]);
        let r = |f: &str, t: &str| Op::Rename { from: f.into(), to: t.into(), flags: 0 };
        assert_eq!(e.touches(&r("tmp/a", "tmp/b")), Touches::Excluded);
        assert_eq!(e.touches(&r("a", "b")), Touches::Replicated);
        assert_eq!(e.touches(&r("tmp/a", "a")), Touches::Both);
        assert_eq!(e.touches(&r("a", "tmp/a")), Touches::Both);
        assert_eq!(e.touches(&Op::Link { from: "a".into(), to: "tmp/a".into() }), Touches::Both);
        assert_eq!(e.touches(&Op::Unlink { path: "tmp/x".into() }), Touches::Excluded);
        assert_eq!(ex(&[]).touches(&r("tmp/a", "a")), Touches::Replicated);
        // A directory holding an excluded path cannot move (its excluded subtree would follow).
        let e2 = ex(&["app/tmp"]);
        assert_eq!(e2.touches(&r("app", "app2")), Touches::Both);
        assert_eq!(e2.touches(&r("other", "app")), Touches::Both);
        assert_eq!(e2.touches(&r("app/x", "app/y")), Touches::Replicated);
    }
}
