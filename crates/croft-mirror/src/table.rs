//! FUSE node ids ↔ paths relative to the held directory (pure: no I/O).
//!
//! A node stands for one real inode (so hard links share a node, as the kernel expects) and
//! knows every path the kernel looked it up by. Node ids are never reused: when a real inode
//! dies (last link removed) its node is detached from the real inode number, so a new file that
//! gets the same number from the filesystem gets a new node id, and the kernel never sees a node
//! change type under it. A node lives while the kernel holds lookups on it (forget) or it is the
//! root.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub const ROOT: u64 = 1;

#[derive(Debug)]
struct Node {
    real_ino: u64,
    /// `st_mode & S_IFMT` when first seen.
    kind: u32,
    paths: Vec<PathBuf>,
    nlookup: u64,
    /// Still the node of `real_ino` (false once that inode died).
    attached: bool,
}

#[derive(Debug)]
pub struct Table {
    nodes: HashMap<u64, Node>,
    by_real: HashMap<u64, u64>,
    by_path: HashMap<PathBuf, u64>,
    next: u64,
}

impl Table {
    pub fn new(root_real_ino: u64) -> Table {
        let mut t = Table { nodes: HashMap::new(), by_real: HashMap::new(), by_path: HashMap::new(), next: ROOT + 1 };
        t.nodes.insert(
            ROOT,
            Node { real_ino: root_real_ino, kind: libc::S_IFDIR, paths: vec![PathBuf::new()], nlookup: 1, attached: true },
        );
        t.by_real.insert(root_real_ino, ROOT);
        t.by_path.insert(PathBuf::new(), ROOT);
        t
    }

    /// The first known path of `node` (`None` for an unknown node or one that lost all its names).
    pub fn path(&self, node: u64) -> Option<PathBuf> {
        self.nodes.get(&node).and_then(|n| n.paths.first().cloned())
    }

    pub fn node_at(&self, path: &Path) -> Option<u64> {
        self.by_path.get(path).copied()
    }

    /// The kernel looked `path` up and found real inode `real_ino` of type `kind`: returns its
    /// node id with one more lookup counted.
    pub fn lookup(&mut self, path: &Path, real_ino: u64, kind: u32) -> u64 {
        let existing = self.by_real.get(&real_ino).copied().filter(|id| {
            let n = &self.nodes[id];
            n.kind == kind
        });
        let id = match existing {
            Some(id) => id,
            None => {
                if let Some(old) = self.by_real.remove(&real_ino) {
                    // Same number, other type: the old inode died without us seeing it.
                    if let Some(n) = self.nodes.get_mut(&old) {
                        n.attached = false;
                    }
                }
                let id = self.next;
                self.next += 1;
                self.nodes.insert(id, Node { real_ino, kind, paths: Vec::new(), nlookup: 0, attached: true });
                self.by_real.insert(real_ino, id);
                id
            }
        };
        // A path names one node: if it named another before (replaced under us), drop that.
        if let Some(prev) = self.by_path.get(path).copied() {
            if prev != id {
                self.remove_path_of(prev, path);
            }
        }
        let n = self.nodes.get_mut(&id).unwrap();
        if !n.paths.iter().any(|p| p == path) {
            n.paths.push(path.to_path_buf());
        }
        n.nlookup += 1;
        self.by_path.insert(path.to_path_buf(), id);
        id
    }

    /// The kernel dropped `n` lookups of `node`.
    pub fn forget(&mut self, node: u64, n: u64) {
        if node == ROOT {
            return;
        }
        let Some(entry) = self.nodes.get_mut(&node) else { return };
        entry.nlookup = entry.nlookup.saturating_sub(n);
        if entry.nlookup == 0 {
            let entry = self.nodes.remove(&node).unwrap();
            for p in entry.paths {
                if self.by_path.get(&p) == Some(&node) {
                    self.by_path.remove(&p);
                }
            }
            if entry.attached && self.by_real.get(&entry.real_ino) == Some(&node) {
                self.by_real.remove(&entry.real_ino);
            }
        }
    }

    fn remove_path_of(&mut self, node: u64, path: &Path) {
        if let Some(n) = self.nodes.get_mut(&node) {
            n.paths.retain(|p| p != path);
        }
        if self.by_path.get(path) == Some(&node) {
            self.by_path.remove(path);
        }
    }

    fn detach(&mut self, node: u64) {
        if let Some(n) = self.nodes.get_mut(&node) {
            if n.attached && self.by_real.get(&n.real_ino) == Some(&node) {
                self.by_real.remove(&n.real_ino);
            }
            n.attached = false;
        }
    }

    /// `path` was unlinked or removed; `died`: that was the inode's last link.
    pub fn removed(&mut self, path: &Path, died: bool) {
        if let Some(id) = self.by_path.get(path).copied() {
            self.remove_path_of(id, path);
            if died {
                self.detach(id);
            }
        }
    }

    /// A new link `path` to the inode of `node`.
    pub fn linked(&mut self, node: u64, path: &Path) {
        if let Some(prev) = self.by_path.get(path).copied() {
            self.remove_path_of(prev, path);
        }
        if let Some(n) = self.nodes.get_mut(&node) {
            if !n.paths.iter().any(|p| p == path) {
                n.paths.push(path.to_path_buf());
            }
            self.by_path.insert(path.to_path_buf(), node);
        }
    }

    /// `from` was renamed to `to`. Without `exchange`, whatever `to` named is gone
    /// (`to_died`: and it was the last link of its inode). Paths under a renamed directory
    /// follow it.
    pub fn renamed(&mut self, from: &Path, to: &Path, exchange: bool, to_died: bool) {
        if !exchange {
            if let Some(id) = self.by_path.get(to).copied() {
                self.remove_path_of(id, to);
                if to_died {
                    self.detach(id);
                }
            }
        }
        // One pass over every path: map the `from` subtree to `to` and, for an exchange, the
        // `to` subtree to `from`. Nodes are few (what the kernel caches), renames rare enough.
        let map = |p: &Path| -> Option<PathBuf> {
            if let Ok(rest) = p.strip_prefix(from) {
                return Some(join(to, rest));
            }
            if exchange {
                if let Ok(rest) = p.strip_prefix(to) {
                    return Some(join(from, rest));
                }
            }
            None
        };
        let mut changed = false;
        for n in self.nodes.values_mut() {
            for p in n.paths.iter_mut() {
                if let Some(np) = map(p) {
                    *p = np;
                    changed = true;
                }
            }
        }
        if changed {
            self.by_path.clear();
            for (id, n) in &self.nodes {
                for p in &n.paths {
                    self.by_path.insert(p.clone(), *id);
                }
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.nodes.len()
    }
}

fn join(base: &Path, rest: &Path) -> PathBuf {
    if rest.as_os_str().is_empty() {
        base.to_path_buf()
    } else {
        base.join(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    const F: u32 = libc::S_IFREG;
    const D: u32 = libc::S_IFDIR;

    #[test]
    fn hard_links_share_a_node_and_forget_frees_it() {
        let mut t = Table::new(100);
        let a = t.lookup(Path::new("a"), 7, F);
        let b = t.lookup(Path::new("b"), 7, F);
        assert_eq!(a, b);
        t.removed(Path::new("a"), false);
        assert_eq!(t.path(a).unwrap(), PathBuf::from("b"));
        t.forget(a, 2);
        assert_eq!(t.len(), 1);
        assert_eq!(t.node_at(Path::new("b")), None);
    }

    #[test]
    fn a_dead_inode_number_reused_gets_a_new_node() {
        let mut t = Table::new(100);
        let a = t.lookup(Path::new("a"), 7, F);
        t.removed(Path::new("a"), true);
        let c = t.lookup(Path::new("c"), 7, F);
        assert_ne!(a, c);
        assert_eq!(t.path(a), None);
    }

    #[test]
    fn renaming_a_directory_moves_its_subtree_and_exchange_swaps() {
        let mut t = Table::new(100);
        let d = t.lookup(Path::new("d"), 2, D);
        let f = t.lookup(Path::new("d/e/f"), 3, F);
        let g = t.lookup(Path::new("g"), 4, D);
        let h = t.lookup(Path::new("g/h"), 5, F);
        t.renamed(Path::new("d"), Path::new("x/d2"), false, false);
        assert_eq!(t.path(d).unwrap(), PathBuf::from("x/d2"));
        assert_eq!(t.path(f).unwrap(), PathBuf::from("x/d2/e/f"));
        // "dd" is not under "d".
        let dd = t.lookup(Path::new("dd"), 6, F);
        t.renamed(Path::new("x/d2"), Path::new("g"), true, false);
        assert_eq!(t.path(d).unwrap(), PathBuf::from("g"));
        assert_eq!(t.path(f).unwrap(), PathBuf::from("g/e/f"));
        assert_eq!(t.path(g).unwrap(), PathBuf::from("x/d2"));
        assert_eq!(t.path(h).unwrap(), PathBuf::from("x/d2/h"));
        assert_eq!(t.path(dd).unwrap(), PathBuf::from("dd"));
        assert_eq!(t.node_at(Path::new("x/d2/h")), Some(h));
    }

    #[test]
    fn rename_over_a_file_drops_the_target_name() {
        let mut t = Table::new(100);
        let a = t.lookup(Path::new("a"), 7, F);
        let b = t.lookup(Path::new("b"), 8, F);
        t.renamed(Path::new("a"), Path::new("b"), false, true);
        assert_eq!(t.node_at(Path::new("b")), Some(a));
        assert_eq!(t.path(b), None);
        let c = t.lookup(Path::new("c"), 8, F);
        assert_ne!(b, c, "the dead target's inode number must not map to its old node");
    }
}
