//! A Merkle tree over the record hashes (RFC 9162 section 2.1, as Certificate Transparency
//! uses): a checkpoint signs the tree's root beside the chain head, so one record can later be
//! proven to be in the signed log with about log2(n) hashes, without showing the records
//! around it (what an evidence pack for one task needs).
//!
//! Leaves are the 32 bytes of each record's `hash`, in seq order; a leaf is hashed as
//! `SHA-256(0x00 || hash)`, an inner node as `SHA-256(0x01 || left || right)`.

use sha2::{Digest, Sha256};

use super::chain;

pub type Digest32 = [u8; 32];

/// The leaf of a record whose hash is `record_hash` (lowercase hex); `None` when it is not 32
/// bytes of hex.
#[must_use]
pub fn leaf(record_hash: &str) -> Option<Digest32> {
    let bytes: Digest32 = chain::unhex(record_hash)?.try_into().ok()?;
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(bytes);
    Some(h.finalize().into())
}

fn node(left: &Digest32, right: &Digest32) -> Digest32 {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Lowercase hex of a digest.
#[must_use]
pub fn to_hex(d: &Digest32) -> String {
    chain::hex(d)
}

/// A digest from lowercase hex.
#[must_use]
pub fn from_hex(text: &str) -> Option<Digest32> {
    chain::unhex(text)?.try_into().ok()
}

/// The tree grown one leaf at a time, keeping only the roots of its perfect subtrees (at most
/// 64): what the writer keeps to sign each checkpoint's root, and what verification rebuilds.
#[derive(Clone, Debug, Default)]
pub struct Frontier {
    size: u64,
    /// Roots of the perfect subtrees, largest (leftmost) first.
    peaks: Vec<Digest32>,
}

impl Frontier {
    #[must_use]
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn push(&mut self, leaf: Digest32) {
        let mut hash = leaf;
        let mut size = self.size;
        while size & 1 == 1 {
            if let Some(left) = self.peaks.pop() {
                hash = node(&left, &hash);
            }
            size >>= 1;
        }
        self.peaks.push(hash);
        self.size += 1;
    }

    /// The root of the tree of every leaf pushed (RFC 9162 `MTH`).
    #[must_use]
    pub fn root(&self) -> Digest32 {
        let mut peaks = self.peaks.iter().rev();
        let Some(last) = peaks.next() else {
            return Sha256::digest(b"").into();
        };
        peaks.fold(*last, |acc, left| node(left, &acc))
    }
}

/// The whole tree of `n` leaves, level by level, for proving many leaves at once (an export):
/// memory is about twice the leaves.
#[derive(Clone, Debug)]
pub struct Tree {
    levels: Vec<Vec<Digest32>>,
}

impl Tree {
    #[must_use]
    pub fn new(leaves: Vec<Digest32>) -> Self {
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let below = levels.last().map(Vec::as_slice).unwrap_or_default();
            let above = below
                .chunks(2)
                .map(|pair| match pair {
                    [left, right] => node(left, right),
                    [alone] => *alone,
                    _ => Sha256::digest(b"").into(),
                })
                .collect();
            levels.push(above);
        }
        Self { levels }
    }

    #[must_use]
    pub fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    #[must_use]
    pub fn root(&self) -> Digest32 {
        match self.levels.last().and_then(|l| l.first()) {
            Some(root) if self.size() > 0 => *root,
            _ => Sha256::digest(b"").into(),
        }
    }

    /// Leaf `index` (0-based).
    #[must_use]
    pub fn leaf(&self, index: u64) -> Option<Digest32> {
        let index = usize::try_from(index).ok()?;
        self.levels.first()?.get(index).copied()
    }

    /// The audit path of leaf `index` (0-based), bottom up; `None` past the last leaf.
    #[must_use]
    pub fn proof(&self, index: u64) -> Option<Vec<Digest32>> {
        if index >= self.size() {
            return None;
        }
        let mut at = usize::try_from(index).ok()?;
        let mut path = Vec::new();
        for level in &self.levels {
            if level.len() <= 1 {
                break;
            }
            if let Some(sibling) = level.get(at ^ 1) {
                path.push(*sibling);
            }
            at >>= 1;
        }
        Some(path)
    }
}

/// Whether `path` proves `leaf` is leaf `index` of the tree of `size` leaves whose root is
/// `root` (RFC 9162 section 2.1.3.2).
#[must_use]
pub fn verify_inclusion(
    leaf: &Digest32,
    index: u64,
    size: u64,
    path: &[Digest32],
    root: &Digest32,
) -> bool {
    if index >= size {
        return false;
    }
    let (mut fnode, mut snode) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node(p, &r);
            while fnode & 1 == 0 && fnode != 0 {
                fnode >>= 1;
                snode >>= 1;
            }
        } else {
            r = node(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: u64) -> Vec<Digest32> {
        (0..n)
            .map(|i| leaf(&chain::sha256_hex(&i.to_be_bytes())).unwrap())
            .collect()
    }

    /// RFC 9162 `MTH`, straight from its recursive definition.
    fn mth(d: &[Digest32]) -> Digest32 {
        match d.len() {
            0 => Sha256::digest(b"").into(),
            1 => d[0],
            n => {
                let mut k = 1;
                while k * 2 < n {
                    k *= 2;
                }
                node(&mth(&d[..k]), &mth(&d[k..]))
            }
        }
    }

    /// The frontier, the level tree and the recursive definition agree on every size, and every
    /// proof verifies for its leaf only.
    #[test]
    fn roots_agree_and_every_proof_verifies() {
        for n in 1..=33u64 {
            let ls = leaves(n);
            let tree = Tree::new(ls.clone());
            let mut frontier = Frontier::default();
            for l in &ls {
                frontier.push(*l);
            }
            let root = mth(&ls);
            assert_eq!(tree.root(), root, "tree, n={n}");
            assert_eq!(frontier.root(), root, "frontier, n={n}");
            for i in 0..n {
                let path = tree.proof(i).unwrap();
                assert!(
                    verify_inclusion(&ls[i as usize], i, n, &path, &root),
                    "n={n} i={i}"
                );
                let other = ls[((i + 1) % n) as usize];
                if n > 1 {
                    assert!(!verify_inclusion(&other, i, n, &path, &root));
                }
                if let Some(first) = path.first() {
                    let mut bent = path.clone();
                    bent[0] = node(first, first);
                    assert!(!verify_inclusion(&ls[i as usize], i, n, &bent, &root));
                }
            }
            assert!(tree.proof(n).is_none());
        }
    }

    #[test]
    fn leaves_need_32_bytes_of_hex() {
        assert!(leaf(&"ab".repeat(32)).is_some());
        assert!(leaf("abcd").is_none());
        assert!(leaf(&"zz".repeat(32)).is_none());
        assert_eq!(Frontier::default().root(), Tree::new(Vec::new()).root());
    }
}
