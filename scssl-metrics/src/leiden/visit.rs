//! Scratch structures of one node visit in local moving and refinement, built so that the
//! per-edge work has no data-dependent branch.

/// The communities that one node's (or one new node's) edges reach, in first-touch order,
/// collected without a branch per edge: every edge writes its community after the last one and
/// the length grows only when the community is new. (An `if new { push }` branch there is
/// data-dependent and was mispredicted on a large share of the edges.)
pub(super) struct Touched {
    items: Vec<usize>,
    len: usize,
}

impl Touched {
    /// Room for `n` notes (and the scratch write after them).
    pub(super) fn with_room(n: usize) -> Touched {
        Touched {
            items: vec![0; n + 1],
            len: 0,
        }
    }
    /// Notes community `c`, kept when `is_new`. Between two [`Touched::clear`]s there must
    /// be fewer notes than the room given (a community can be new more than once: a sum that
    /// returns to zero through negative or repeated entries notes it again, as a push would).
    #[inline(always)]
    pub(super) fn note(&mut self, c: usize, is_new: bool) {
        self.items[self.len] = c;
        self.len += usize::from(is_new);
    }
    #[inline(always)]
    pub(super) fn as_slice(&self) -> &[usize] {
        &self.items[..self.len]
    }
    #[inline(always)]
    pub(super) fn clear(&mut self) {
        self.len = 0;
    }
}

/// Local moving's queue of nodes to visit: a ring of `n` slots. A node is queued at most once
/// and the node being visited is not queued, so while a visit pushes at most `n − 1` are
/// queued and the slot after the last is free for [`NodeQueue::push_if`]'s scratch write.
pub(super) struct NodeQueue {
    ring: Vec<usize>,
    head: usize,
    len: usize,
}

impl NodeQueue {
    /// All of `order`'s nodes, to be visited in that order.
    pub(super) fn full(order: Vec<usize>) -> NodeQueue {
        let len = order.len();
        NodeQueue {
            ring: order,
            head: 0,
            len,
        }
    }
    #[inline(always)]
    fn slot(&self, i: usize) -> usize {
        let s = self.head + i;
        if s >= self.ring.len() {
            s - self.ring.len()
        } else {
            s
        }
    }
    #[inline(always)]
    pub(super) fn pop_front(&mut self) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let v = self.ring[self.head];
        self.head = self.slot(1);
        self.len -= 1;
        Some(v)
    }
    /// The node `i` places from the front.
    #[inline(always)]
    pub(super) fn get(&self, i: usize) -> Option<usize> {
        (i < self.len).then(|| self.ring[self.slot(i)])
    }
    /// Queues `v` when `keep` without a branch (the choice is data-dependent and mispredicted
    /// often): `v` is written after the last node either way. Only called during a visit (see
    /// the type's note).
    #[inline(always)]
    pub(super) fn push_if(&mut self, v: usize, keep: bool) {
        let s = self.slot(self.len);
        self.ring[s] = v;
        self.len += usize::from(keep);
    }
}
