//! Linear layers: `y = x·Wᵀ + b` for a row-major `x` and a weight in PyTorch's `[out, in]` layout.
//!
//! The workspace forbids `unsafe`, and every fast GEMM crate (matrixmultiply, gemm) exposes only
//! `unsafe fn`s over raw pointers, so this is a small safe kernel that the compiler vectorises.
//! At load time the weight is repacked into panels of `NR` output columns, each stored `k`-major
//! (`panel[kk * NR + l] = W[j0 + l][kk]`), so the inner loop reads one contiguous `[f32; NR]` per
//! `kk` and updates an `MR × NR` block of accumulators held in registers. `MR = 4, NR = 8` fits the
//! sixteen SSE registers of baseline x86-64 (8 accumulators, 2 weight vectors, broadcasts) and was
//! the fastest of the shapes tried on MiniLM's sizes.

/// Output columns per packed panel.
const NR: usize = 8;
/// Input rows per register block.
const MR: usize = 4;
/// Bytes of input rows worked on together, about half of a typical 1–2 MiB L2 cache.
const GROUP_BYTES: usize = 512 * 1024;

/// A weight matrix and bias, packed for [`PackedLinear::forward`].
pub(crate) struct PackedLinear {
    /// Input width `k`.
    inputs: usize,
    /// Output width, before padding to a multiple of `NR`.
    outputs: usize,
    /// `outputs.div_ceil(NR)` panels of `inputs * NR` values; padding columns are zero.
    panels: Vec<f32>,
    /// The bias, zero-padded to `outputs.div_ceil(NR) * NR`.
    bias: Vec<f32>,
}

impl PackedLinear {
    /// Packs `weight` (`outputs` rows of `inputs` values) and `bias` (`outputs` values). The
    /// caller has checked both lengths against the shape.
    pub(crate) fn new(weight: &[f32], bias: &[f32], outputs: usize, inputs: usize) -> Self {
        let panel_count = outputs.div_ceil(NR);
        let mut panels = vec![0.0; panel_count * inputs * NR];
        for (j, row) in weight.chunks_exact(inputs).take(outputs).enumerate() {
            let panel = &mut panels[(j / NR) * inputs * NR..(j / NR + 1) * inputs * NR];
            let lane = j % NR;
            for (kk, &w) in row.iter().enumerate() {
                panel[kk * NR + lane] = w;
            }
        }
        let mut padded_bias = vec![0.0; panel_count * NR];
        padded_bias[..outputs].copy_from_slice(&bias[..outputs]);
        Self { inputs, outputs, panels, bias: padded_bias }
    }

    /// Output width.
    pub(crate) fn outputs(&self) -> usize {
        self.outputs
    }

    /// Writes `x·Wᵀ + b` for the `x.len() / inputs` rows of `x` into `y` (`outputs` per row).
    pub(crate) fn forward(&self, x: &[f32], y: &mut [f32]) {
        let k = self.inputs;
        let m = self.outputs;
        let rows = x.len() / k;
        debug_assert_eq!(y.len(), rows * m);
        // Rows go in groups small enough to stay in the L2 cache while every panel passes over
        // them, so neither the weights nor the activations stream from memory once per block.
        let group_rows = (GROUP_BYTES / (k * 4)).max(MR) / MR * MR;
        for (xg, yg) in x.chunks(group_rows * k).zip(y.chunks_mut(group_rows * m)) {
            self.row_group(xg, yg);
        }
    }

    /// Computes the rows of one group, panel by panel.
    fn row_group(&self, x: &[f32], y: &mut [f32]) {
        let k = self.inputs;
        let m = self.outputs;
        let rows = x.len() / k;
        let blocks = rows / MR;
        for (p, (panel, bias)) in self.panels.chunks_exact(k * NR).zip(self.bias.chunks_exact(NR)).enumerate() {
            for b in 0..blocks {
                kernel::<MR>(&x[b * MR * k..(b + 1) * MR * k], k, panel, bias, &mut y[b * MR * m..(b + 1) * MR * m], m, p * NR);
            }
            // The last `rows % MR` rows go one at a time; a register block of fewer rows would
            // need its own instantiation and gains little for at most three rows.
            for r in blocks * MR..rows {
                kernel::<1>(&x[r * k..(r + 1) * k], k, panel, bias, &mut y[r * m..(r + 1) * m], m, p * NR);
            }
        }
    }
}

/// One `R × NR` block of the product: rows `0..R` of `x` (width `k`) times one packed panel,
/// plus the bias, written to columns `j0..j0 + NR` (those below `m`) of `y` (width `m`).
///
/// The shape of this loop matters more than it looks. Accumulators that start at zero, with the
/// bias added at the store, and plain index loops over constant bounds are what LLVM keeps in
/// vector registers; starting them from a copy of the bias or writing the loops as iterator
/// chains made it spill them to memory and ran 2 to 4 times slower.
#[inline(always)]
#[allow(clippy::needless_range_loop, reason = "constant-bound index loops are the form that vectorises, see above")]
fn kernel<const R: usize>(x: &[f32], k: usize, panel: &[f32], bias: &[f32], y: &mut [f32], m: usize, j0: usize) {
    let mut acc = [[0.0f32; NR]; R];
    let (columns, _) = panel.as_chunks::<NR>();
    for (kk, w) in columns.iter().enumerate().take(k) {
        for r in 0..R {
            let a = x[r * k + kk];
            for l in 0..NR {
                acc[r][l] += a * w[l];
            }
        }
    }
    for r in 0..R {
        for l in 0..NR {
            let j = j0 + l;
            if j < m {
                y[r * m + j] = acc[r][l] + bias[l];
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::PackedLinear;

    /// The packed kernel agrees with the textbook triple loop, including ragged shapes that
    /// exercise the padding columns and the leftover rows.
    #[test]
    fn matches_naive_product() {
        for (rows, inputs, outputs) in [(1, 3, 5), (4, 8, 8), (7, 13, 17), (9, 32, 24)] {
            let x: Vec<f32> = (0..rows * inputs).map(|i| (i % 7) as f32 - 3.0).collect();
            let w: Vec<f32> = (0..outputs * inputs).map(|i| ((i * 5) % 11) as f32 * 0.25 - 1.0).collect();
            let b: Vec<f32> = (0..outputs).map(|i| i as f32 * 0.5).collect();
            let linear = PackedLinear::new(&w, &b, outputs, inputs);
            let mut y = vec![0.0; rows * outputs];
            linear.forward(&x, &mut y);
            for r in 0..rows {
                for j in 0..outputs {
                    let want: f32 = b[j] + (0..inputs).map(|kk| x[r * inputs + kk] * w[j * inputs + kk]).sum::<f32>();
                    let got = y[r * outputs + j];
                    assert!((got - want).abs() < 1e-4, "({r},{j}): {got} vs {want}");
                }
            }
        }
    }
}
