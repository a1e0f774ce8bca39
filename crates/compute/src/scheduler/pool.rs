//! GPU packing inside one node pool.
//!
//! Every node keeps its free CPU, memory and the free thousandths of each GPU. Two indexes make
//! a placement O(log n) instead of a scan of the pool:
//! - `buckets[k]` holds the nodes with exactly `k` wholly free GPUs, so a request for `k` whole
//!   GPUs takes a node from the smallest bucket that can hold it (best fit: it leaves the nodes
//!   with many free GPUs for the large jobs that need them);
//! - `partial` orders the partly used GPUs by their free share, so a fractional request goes to
//!   the fullest GPU it still fits on, and only breaks a whole GPU when no shared one fits.
//!
//! Together these limit fragmentation, the waste the openb trace's authors measure (Weng et al.,
//! "Beware of Fragmentation", USENIX ATC 2023), without their per-node scoring cost.

use std::collections::BTreeSet;

/// How many candidates a placement inspects for CPU and memory before it gives up on an index
/// entry; it bounds the work of one decision when CPU or memory, not GPUs, is what is short.
const SCAN_LIMIT: usize = 64;
const WHOLE: u16 = 1000;

#[derive(Clone, Debug)]
pub struct PoolState {
    pub gpus_per_node: u8,
    cpu_free: Vec<u32>,
    mem_free: Vec<u32>,
    /// `gpu_free[node * gpus_per_node + g]`, in thousandths.
    gpu_free: Vec<u16>,
    buckets: Vec<Vec<u32>>,
    /// Position of each node inside its bucket.
    pos: Vec<u32>,
    partial: BTreeSet<(u16, u32, u8)>,
    /// Nodes by free CPU, for CPU-only jobs (best fit).
    by_cpu: BTreeSet<(u32, u32)>,
    pub total_gpu_milli: u64,
    pub used_gpu_milli: u64,
    pub total_cpu_milli: u64,
    pub used_cpu_milli: u64,
    cap_cpu: u32,
    cap_mem: u32,
}

/// Where a job's resources were taken from, so they can be given back exactly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Slot {
    pub node: u32,
    /// Bit `g` set: GPU `g` of the node gives `gpu_milli` to the job.
    pub gpu_mask: u16,
    pub gpu_milli: u16,
    pub cpu_milli: u32,
    pub memory_mib: u32,
}

impl PoolState {
    pub fn new(nodes: u32, gpus_per_node: u32, cpu_milli: u32, memory_mib: u32) -> Self {
        let n = nodes as usize;
        let gpn = gpus_per_node as u8;
        let mut buckets = vec![Vec::new(); gpn as usize + 1];
        buckets[gpn as usize] = (0..nodes).collect();
        Self {
            gpus_per_node: gpn,
            cpu_free: vec![cpu_milli; n],
            mem_free: vec![memory_mib; n],
            gpu_free: vec![WHOLE; n * gpn as usize],
            buckets,
            pos: (0..nodes).collect(),
            partial: BTreeSet::new(),
            by_cpu: (0..nodes).map(|i| (cpu_milli, i)).collect(),
            total_gpu_milli: u64::from(nodes) * u64::from(gpus_per_node) * u64::from(WHOLE),
            used_gpu_milli: 0,
            total_cpu_milli: u64::from(nodes) * u64::from(cpu_milli),
            used_cpu_milli: 0,
            cap_cpu: cpu_milli,
            cap_mem: memory_mib,
        }
    }

    pub fn node_count(&self) -> usize {
        self.cpu_free.len()
    }

    /// Whether a job of this shape could fit on an empty node of this pool.
    pub fn shape_fits(&self, gpus: u8, cpu: u32, mem: u32) -> bool {
        self.node_count() > 0
            && gpus <= self.gpus_per_node
            && cpu <= super::node_cpu_milli_for(gpus, self.cap_cpu, u32::from(self.gpus_per_node))
            && mem <= self.cap_mem
    }

    /// A cheap check on the GPU indexes only (CPU and memory are checked when placing).
    pub fn may_fit(&self, gpus: u8, milli: u16, cpu: u32) -> bool {
        if gpus == 0 {
            return self.by_cpu.last().is_some_and(|&(free, _)| free >= cpu);
        }
        if milli < WHOLE && self.partial.range((milli, 0, 0)..).next().is_some() {
            return true;
        }
        self.buckets[gpus as usize..].iter().any(|b| !b.is_empty())
    }

    fn whole_free(&self, node: u32) -> usize {
        let g = self.gpus_per_node as usize;
        let base = node as usize * g;
        self.gpu_free[base..base + g].iter().filter(|&&f| f == WHOLE).count()
    }

    /// The CPU a CPU-only job must leave on a GPU node: half the node's share per GPU for each
    /// wholly free GPU. CPU-only work may use a GPU node's spare cores (half of an idle node's),
    /// but not so many that the GPUs left free are stranded for want of cores.
    fn cpu_kept_for_gpus(&self, node: u32) -> u32 {
        if self.gpus_per_node == 0 {
            return 0;
        }
        (u64::from(self.cap_cpu) * self.whole_free(node) as u64 / (2 * u64::from(self.gpus_per_node))) as u32
    }

    fn fits_host(&self, node: u32, cpu: u32, mem: u32) -> bool {
        self.cpu_free[node as usize] >= cpu && self.mem_free[node as usize] >= mem
    }

    pub fn try_place(&mut self, gpus: u8, milli: u16, cpu: u32, mem: u32) -> Option<Slot> {
        if gpus == 0 {
            let node = self
                .by_cpu
                .range((cpu, 0)..)
                .take(SCAN_LIMIT)
                .find(|&&(free, n)| self.mem_free[n as usize] >= mem && free - cpu >= self.cpu_kept_for_gpus(n))
                .map(|&(_, n)| n)?;
            let slot = Slot { node, gpu_mask: 0, gpu_milli: 0, cpu_milli: cpu, memory_mib: mem };
            self.apply(slot, true);
            return Some(slot);
        }
        if milli < WHOLE {
            let shared = self
                .partial
                .range((milli, 0, 0)..)
                .take(SCAN_LIMIT)
                .find(|&&(_, n, _)| self.fits_host(n, cpu, mem))
                .map(|&(_, n, g)| (n, g));
            if let Some((node, g)) = shared {
                let slot = Slot { node, gpu_mask: 1 << g, gpu_milli: milli, cpu_milli: cpu, memory_mib: mem };
                self.apply(slot, true);
                return Some(slot);
            }
        }
        let need = gpus as usize;
        for k in need..self.buckets.len() {
            let found = self.buckets[k].iter().take(SCAN_LIMIT).copied().find(|&n| self.fits_host(n, cpu, mem));
            if let Some(node) = found {
                let g = self.gpus_per_node as usize;
                let base = node as usize * g;
                let mut mask = 0u16;
                let mut taken = 0;
                for i in 0..g {
                    if taken < need && self.gpu_free[base + i] == WHOLE {
                        mask |= 1 << i;
                        taken += 1;
                    }
                }
                let slot = Slot { node, gpu_mask: mask, gpu_milli: milli, cpu_milli: cpu, memory_mib: mem };
                self.apply(slot, true);
                return Some(slot);
            }
        }
        None
    }

    /// Takes exactly `slot` again (after a restart), if the node still exists and has room.
    pub fn occupy(&mut self, slot: Slot) -> bool {
        let n = slot.node as usize;
        let g = self.gpus_per_node as usize;
        if n >= self.node_count() || !self.fits_host(slot.node, slot.cpu_milli, slot.memory_mib) || u32::from(slot.gpu_mask) >> g != 0 {
            return false;
        }
        let gpus_fit = (0..g).all(|i| slot.gpu_mask & (1 << i) == 0 || self.gpu_free[n * g + i] >= slot.gpu_milli);
        if !gpus_fit || (slot.gpu_mask == 0) != (slot.gpu_milli == 0) {
            return false;
        }
        self.apply(slot, true);
        true
    }

    pub fn release(&mut self, slot: Slot) {
        self.apply(slot, false);
    }

    /// Takes (`take`) or gives back a slot, keeping both indexes in step with the node.
    fn apply(&mut self, slot: Slot, take: bool) {
        let node = slot.node;
        let n = node as usize;
        let old_cpu = self.cpu_free[n];
        let old_whole = self.whole_free(node);
        if take {
            self.cpu_free[n] -= slot.cpu_milli;
            self.mem_free[n] -= slot.memory_mib;
            self.used_cpu_milli += u64::from(slot.cpu_milli);
        } else {
            self.cpu_free[n] += slot.cpu_milli;
            self.mem_free[n] += slot.memory_mib;
            self.used_cpu_milli -= u64::from(slot.cpu_milli);
        }
        self.by_cpu.remove(&(old_cpu, node));
        self.by_cpu.insert((self.cpu_free[n], node));
        let g = self.gpus_per_node as usize;
        for i in 0..g {
            if slot.gpu_mask & (1 << i) == 0 {
                continue;
            }
            let ix = n * g + i;
            let before = self.gpu_free[ix];
            let after = if take { before - slot.gpu_milli } else { before + slot.gpu_milli };
            if before > 0 && before < WHOLE {
                self.partial.remove(&(before, node, i as u8));
            }
            if after > 0 && after < WHOLE {
                self.partial.insert((after, node, i as u8));
            }
            self.gpu_free[ix] = after;
            if take {
                self.used_gpu_milli += u64::from(slot.gpu_milli);
            } else {
                self.used_gpu_milli -= u64::from(slot.gpu_milli);
            }
        }
        let new_whole = self.whole_free(node);
        if new_whole != old_whole {
            self.move_bucket(node, old_whole, new_whole);
        }
    }

    fn move_bucket(&mut self, node: u32, from: usize, to: usize) {
        let p = self.pos[node as usize] as usize;
        let bucket = &mut self.buckets[from];
        bucket.swap_remove(p);
        if let Some(&moved) = bucket.get(p) {
            self.pos[moved as usize] = p as u32;
        }
        self.pos[node as usize] = self.buckets[to].len() as u32;
        self.buckets[to].push(node);
    }

    /// Free thousandths of every GPU, for invariant checks in tests.
    pub fn gpu_free(&self) -> &[u16] {
        &self.gpu_free
    }

    pub fn host_free(&self, node: usize) -> (u32, u32) {
        (self.cpu_free[node], self.mem_free[node])
    }

    /// Checks both indexes against the node state; used by property tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        for node in 0..self.node_count() as u32 {
            let w = self.whole_free(node);
            let p = self.pos[node as usize] as usize;
            if self.buckets[w].get(p) != Some(&node) {
                return Err(format!("node {node} with {w} whole GPUs is not at its bucket position"));
            }
            if !self.by_cpu.contains(&(self.cpu_free[node as usize], node)) {
                return Err(format!("node {node} missing from the CPU index"));
            }
        }
        let bucketed: usize = self.buckets.iter().map(Vec::len).sum();
        if bucketed != self.node_count() {
            return Err(format!("{bucketed} bucket entries for {} nodes", self.node_count()));
        }
        let partial = self.gpu_free.iter().filter(|&&f| f > 0 && f < WHOLE).count();
        if partial != self.partial.len() {
            return Err(format!("{partial} partly used GPUs but {} in the index", self.partial.len()));
        }
        Ok(())
    }
}
