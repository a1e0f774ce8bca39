//! What one replica of the served model can do on each GPU model, and what it draws.
//!
//! The served model is a Llama-3.1-8B-class dense model in BF16 on one GPU. Its shape is public
//! (Meta's `config.json` for Llama-3.1-8B: 8.03 B parameters, 32 layers, 8 key-value heads of
//! 128 dimensions), which gives 16.06 GB of weights and 128 KiB of KV cache per token
//! (2 × 32 × 8 × 128 × 2 bytes). The throughput of a replica follows from its GPU's datasheet
//! figures by the usual roofline reasoning, with efficiencies that are ASSUMPTIONS:
//!
//! - **Prefill** is compute-bound: 2 FLOPs per parameter per prompt token, at
//!   [`PREFILL_MFU`] of the GPU's dense BF16 tensor peak.
//! - **Decode** is memory-bound: one step reads the weights and every running sequence's KV
//!   cache once, at [`BANDWIDTH_EFFICIENCY`] of the memory bandwidth, so the time between
//!   tokens grows linearly with the batch (the linear model of decode latency that Vidur and
//!   DistServe fit). A running sequence is costed at [`KV_TOKENS_PER_SEQUENCE`] tokens of cache.
//! - **Batch**: as many sequences as the memory left after the weights holds at that size, at
//!   most [`MAX_BATCH`].
//!
//! Only GPUs with at least 48 GB and BF16 run the model: on a 24 GB A10 the weights leave
//! room for the KV cache of only three of the trace's longest conversations, and V100s and T4s
//! have no BF16.

use serde::Serialize;

/// A GPU's datasheet figures the throughput model reads.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct GpuDatasheet {
    /// The GPU model's name in the network file.
    pub gpu: &'static str,
    pub bf16_dense_tflops: f64,
    pub memory_bandwidth_gb_per_s: f64,
    pub memory_gb: f64,
    pub source: &'static str,
}

/// The GPUs that can serve the model.
pub const DATASHEETS: [GpuDatasheet; 5] = [
    GpuDatasheet {
        gpu: "L40S",
        bf16_dense_tflops: 362.05,
        memory_bandwidth_gb_per_s: 864.0,
        memory_gb: 48.0,
        source: "NVIDIA L40S datasheet: BF16 tensor 362.05 TFLOPS dense (733 with sparsity), 48 GB GDDR6, 864 GB/s",
    },
    GpuDatasheet {
        gpu: "A100",
        bf16_dense_tflops: 312.0,
        memory_bandwidth_gb_per_s: 2039.0,
        memory_gb: 80.0,
        source: "NVIDIA A100 datasheet, 80GB SXM: BF16 tensor 312 TFLOPS dense, 80 GB HBM2e, 2,039 GB/s",
    },
    GpuDatasheet {
        gpu: "H800",
        bf16_dense_tflops: 989.0,
        memory_bandwidth_gb_per_s: 3350.0,
        memory_gb: 80.0,
        source: "ASSUMPTION: the H800 SXM is the H100 SXM with less NVLink bandwidth, so the H100 SXM datasheet's figures (989 TFLOPS BF16 dense, 3.35 TB/s, 80 GB) are used",
    },
    GpuDatasheet {
        gpu: "H100",
        bf16_dense_tflops: 989.0,
        memory_bandwidth_gb_per_s: 3350.0,
        memory_gb: 80.0,
        source: "NVIDIA H100 datasheet, SXM: BF16 tensor 989 TFLOPS dense (1,979 with sparsity), 80 GB HBM3, 3.35 TB/s",
    },
    GpuDatasheet {
        gpu: "910B",
        bf16_dense_tflops: 312.0,
        memory_bandwidth_gb_per_s: 2039.0,
        memory_gb: 64.0,
        source: "ASSUMPTION: published figures for the Ascend 910B disagree (FP16 256-320 TFLOPS, bandwidth 0.4-1.6 TB/s) and Huawei positions it against the A100, so the A100's compute and bandwidth are used, with its 64 GB",
    },
];

/// The served model's size in bytes (BF16 weights of 8.03 B parameters).
pub const WEIGHT_BYTES: f64 = 16.06e9;
/// Parameters of the served model; prefill costs two FLOPs per parameter per token.
pub const PARAMETERS: f64 = 8.03e9;
/// KV cache per token: 2 (K and V) × 32 layers × 8 KV heads × 128 dimensions × 2 bytes.
pub const KV_BYTES_PER_TOKEN: f64 = 131_072.0;
/// ASSUMPTION: share of the dense tensor peak a prefill reaches (typical measured model FLOPs
/// utilisation of long-prompt prefill is 40-60%; the lower end, for attention and overheads).
pub const PREFILL_MFU: f64 = 0.4;
/// ASSUMPTION: share of the memory bandwidth a decode step reaches.
pub const BANDWIDTH_EFFICIENCY: f64 = 0.7;
/// ASSUMPTION: KV cache a running sequence is costed at, in tokens (the trace's prompts have a
/// median of 1,020-1,469 tokens and a 90th percentile of 2,735-5,194).
pub const KV_TOKENS_PER_SEQUENCE: f64 = 2048.0;
/// ASSUMPTION: most sequences a replica runs at once, which keeps the time between tokens of a
/// full batch within the services' 100 ms objective on every GPU above.
pub const MAX_BATCH: u32 = 64;
/// ASSUMPTION: share of a GPU's memory the serving engine may use (vLLM's default
/// `gpu_memory_utilization` is 0.9).
pub const MEMORY_UTILISATION: f64 = 0.9;

/// ASSUMPTION: share of the board power a GPU draws while it holds the model but runs nothing.
pub const IDLE_POWER_SHARE: f64 = 0.25;
/// ASSUMPTION: share of the power above idle a GPU draws while it only decodes. Splitwise
/// (Patel et al., ISCA 2024) finds the token phase leaves the GPU's power budget mostly unused
/// while the prompt phase uses all of it; prefill is costed at the full board power.
pub const DECODE_POWER_SHARE: f64 = 0.6;
/// ASSUMPTION: host CPU cores and memory that go with one replica's GPU (a serving engine's
/// tokenizer, scheduler and HTTP front end).
pub const REPLICA_CPU_MILLI: u32 = 8000;
pub const REPLICA_MEMORY_MIB: u32 = 64 * 1024;

/// One replica's throughput on one GPU model, derived from its datasheet.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct ReplicaFigures {
    pub gpu: &'static str,
    pub prefill_tokens_per_s: f64,
    /// Time of one decode step with one sequence running, and what each more adds.
    pub decode_step_s: f64,
    pub decode_step_per_sequence_s: f64,
    pub max_batch: u32,
    /// Tokens per second a full batch generates.
    pub decode_tokens_per_s: f64,
}

impl ReplicaFigures {
    pub fn for_gpu(gpu: &str) -> Option<Self> {
        let d = DATASHEETS.iter().find(|d| d.gpu == gpu)?;
        let prefill_tokens_per_s = d.bf16_dense_tflops * 1e12 * PREFILL_MFU / (2.0 * PARAMETERS);
        let bytes_per_s = d.memory_bandwidth_gb_per_s * 1e9 * BANDWIDTH_EFFICIENCY;
        let kv_per_sequence = KV_TOKENS_PER_SEQUENCE * KV_BYTES_PER_TOKEN;
        let room = (d.memory_gb * 1e9 * MEMORY_UTILISATION - WEIGHT_BYTES).max(0.0);
        let max_batch = ((room / kv_per_sequence).floor() as u32).clamp(1, MAX_BATCH);
        let mut f = Self {
            gpu: d.gpu,
            prefill_tokens_per_s,
            decode_step_s: WEIGHT_BYTES / bytes_per_s,
            decode_step_per_sequence_s: kv_per_sequence / bytes_per_s,
            max_batch,
            decode_tokens_per_s: 0.0,
        };
        f.decode_tokens_per_s = f64::from(max_batch) / f.tbt_s(max_batch);
        Some(f)
    }

    pub fn prefill_s(&self, context_tokens: u32) -> f64 {
        f64::from(context_tokens) / self.prefill_tokens_per_s
    }

    /// Time between tokens with `batch` sequences decoding.
    pub fn tbt_s(&self, batch: u32) -> f64 {
        self.decode_step_s + self.decode_step_per_sequence_s * f64::from(batch.max(1))
    }
}

/// A service's latency objectives.
#[derive(Clone, Copy, Debug, Serialize, PartialEq)]
pub struct Slo {
    /// Time to first token, measured at the user: the network round trip, queueing and prefill.
    pub ttft_ms: f64,
    /// Time between output tokens.
    pub tbt_ms: f64,
}

impl Slo {
    /// The objectives of a service by its name. The pair of metrics is the one Splitwise
    /// (Patel et al., ISCA 2024), which analysed exactly this trace, holds serving to; Splitwise
    /// states them as slowdowns over an unloaded run, so the absolute figures are ASSUMPTIONS:
    /// a conversation's first token within 1 s (its prompts are short: p99 4,142 tokens); a
    /// code completion's within 2 s (its prompts are long: p99 7,436 tokens, about 1 s of
    /// prefill on an A100); 100 ms between tokens for both, about the pace of reading, and the
    /// time-per-output-token objective DistServe (Zhong et al., OSDI 2024) gives its chatbot.
    /// Other services get the conversation's.
    pub fn for_service(name: &str) -> Self {
        match name {
            "code" => Self { ttft_ms: 2000.0, tbt_ms: 100.0 },
            _ => Self { ttft_ms: 1000.0, tbt_ms: 100.0 },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_a100_prefills_and_decodes_at_roofline_rates() {
        let a100 = ReplicaFigures::for_gpu("A100").unwrap();
        // 312 TFLOPS × 0.4 / (2 × 8.03 G) ≈ 7,771 tokens/s.
        assert!((a100.prefill_tokens_per_s - 7771.0).abs() < 1.0, "{a100:?}");
        // 16.06 GB / (2,039 GB/s × 0.7) ≈ 11.3 ms a step.
        assert!((a100.decode_step_s - 0.01125).abs() < 1e-4, "{a100:?}");
        assert_eq!(a100.max_batch, MAX_BATCH);
        assert!(ReplicaFigures::for_gpu("T4").is_none());
    }
}
