//! Reading the Alibaba GPU 2023 ("openb") trace: its node list and its pod lists.
//!
//! Schemas (from the trace's README, as summarised in shared/traces/MANIFEST.md):
//! nodes `sn,cpu_milli,memory_mib,gpu,model`; pods
//! `name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time`.
//! The `multigpu` pod lists have only the first five columns: no GPU models, QoS or times (the
//! openb simulator replays them as a sequence of arrivals). Such pods are read as untimed, and
//! [`crate::synthetic::time_untimed`] gives them a seeded arrival process before a replay.
//! Errors name the file, the line and the column.

use std::io::Read;

#[derive(Clone, Debug, PartialEq)]
pub struct TraceNode {
    pub cpu_milli: u32,
    pub memory_mib: u32,
    pub gpus: u32,
    /// Empty for CPU-only nodes.
    pub model: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TracePod {
    pub name: String,
    pub cpu_milli: u32,
    pub memory_mib: u32,
    pub num_gpu: u32,
    pub gpu_milli: u32,
    /// Allowed GPU models; empty means any.
    pub gpu_spec: Vec<String>,
    pub qos: String,
    pub creation_s: u64,
    /// How long the pod ran: deletion − scheduled, or deletion − creation for pods the original
    /// cluster never scheduled; at least one second.
    pub duration_s: u64,
    /// False when the file has no times: `creation_s` and `duration_s` are then 0 until a
    /// replay draws them.
    pub timed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{file}: {source}")]
    Io { file: String, source: std::io::Error },
    #[error("{file}:{line}: {field}: {reason}")]
    Invalid { file: String, line: u64, field: String, reason: String },
}

/// Most rows read from one trace file; the published files have about 9,000.
pub const MAX_ROWS: usize = 5_000_000;

struct Rows {
    file: String,
    headers: csv::StringRecord,
    reader: csv::Reader<Box<dyn Read>>,
}

impl Rows {
    fn open(file: &str, input: Box<dyn Read>, expected: &[&str]) -> Result<Self, TraceError> {
        let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(input);
        let headers = reader.headers().map_err(|e| csv_error(file, e))?.clone();
        for want in expected {
            if !headers.iter().any(|h| h == *want) {
                return Err(TraceError::Invalid {
                    file: file.into(),
                    line: 1,
                    field: (*want).into(),
                    reason: "missing column in the header".into(),
                });
            }
        }
        Ok(Self { file: file.into(), headers, reader })
    }
}

fn csv_error(file: &str, e: csv::Error) -> TraceError {
    let line = e.position().map_or(0, |p| p.line());
    TraceError::Invalid { file: file.into(), line, field: "csv".into(), reason: e.to_string() }
}

struct Row<'a> {
    rows: &'a Rows,
    record: &'a csv::StringRecord,
    line: u64,
}

impl Row<'_> {
    fn get(&self, field: &str) -> &str {
        self.rows.headers.iter().position(|h| h == field).and_then(|i| self.record.get(i)).unwrap_or("")
    }

    fn err(&self, field: &str, reason: String) -> TraceError {
        TraceError::Invalid { file: self.rows.file.clone(), line: self.line, field: field.into(), reason }
    }

    fn num<T: std::str::FromStr>(&self, field: &str) -> Result<T, TraceError> {
        let raw = self.get(field);
        raw.trim().parse().map_err(|_| self.err(field, format!("{raw:?} is not a non-negative whole number")))
    }

    fn opt_num(&self, field: &str) -> Result<Option<u64>, TraceError> {
        if self.get(field).trim().is_empty() { Ok(None) } else { self.num(field).map(Some) }
    }
}

fn each_row(rows: &mut Rows, mut f: impl FnMut(&Row<'_>) -> Result<(), TraceError>) -> Result<(), TraceError> {
    let mut record = csv::StringRecord::new();
    let mut count = 0;
    loop {
        match rows.reader.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e) => return Err(csv_error(&rows.file, e)),
        }
        count += 1;
        if count > MAX_ROWS {
            return Err(TraceError::Invalid {
                file: rows.file.clone(),
                line: 0,
                field: "rows".into(),
                reason: format!("more than {MAX_ROWS} rows"),
            });
        }
        let line = record.position().map_or(0, |p| p.line());
        let row = Row { rows: &*rows, record: &record, line };
        f(&row)?;
    }
}

fn open_file(path: &std::path::Path) -> Result<(String, Box<dyn Read>), TraceError> {
    let file = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|source| TraceError::Io { file: file.clone(), source })?;
    Ok((file, Box::new(std::io::BufReader::new(f))))
}

pub fn read_nodes_file(path: &std::path::Path) -> Result<Vec<TraceNode>, TraceError> {
    let (file, input) = open_file(path)?;
    read_nodes(&file, input)
}

pub fn read_pods_file(path: &std::path::Path) -> Result<Vec<TracePod>, TraceError> {
    let (file, input) = open_file(path)?;
    read_pods(&file, input)
}

pub fn read_nodes(file: &str, input: Box<dyn Read>) -> Result<Vec<TraceNode>, TraceError> {
    let mut rows = Rows::open(file, input, &["cpu_milli", "memory_mib", "gpu", "model"])?;
    let mut out = Vec::new();
    each_row(&mut rows, |row| {
        let node = TraceNode {
            cpu_milli: row.num("cpu_milli")?,
            memory_mib: row.num("memory_mib")?,
            gpus: row.num("gpu")?,
            model: row.get("model").trim().to_string(),
        };
        if node.gpus > compute::network::MAX_GPUS_PER_NODE {
            return Err(row.err("gpu", format!("at most {} GPUs per node", compute::network::MAX_GPUS_PER_NODE)));
        }
        if (node.gpus > 0) == node.model.is_empty() {
            return Err(row.err("model", "a GPU model is needed exactly when gpu > 0".into()));
        }
        if node.cpu_milli == 0 || node.memory_mib == 0 {
            return Err(row.err("cpu_milli", "a node needs CPU and memory".into()));
        }
        out.push(node);
        Ok(())
    })?;
    Ok(out)
}

pub fn read_pods(file: &str, input: Box<dyn Read>) -> Result<Vec<TracePod>, TraceError> {
    let mut rows = Rows::open(file, input, &["name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli"])?;
    let timed = rows.headers.iter().any(|h| h == "creation_time");
    if timed && !rows.headers.iter().any(|h| h == "deletion_time") {
        return Err(TraceError::Invalid {
            file: file.into(),
            line: 1,
            field: "deletion_time".into(),
            reason: "missing column in the header (a file with creation times needs deletion times)".into(),
        });
    }
    let mut out = Vec::new();
    each_row(&mut rows, |row| {
        let (creation_s, duration_s) = if timed {
            let creation_s: u64 = row.num("creation_time")?;
            let deletion_s: u64 = row.num("deletion_time")?;
            let began = row.opt_num("scheduled_time")?.unwrap_or(creation_s);
            if deletion_s < began {
                return Err(row.err("deletion_time", format!("{deletion_s} is before the pod started ({began})")));
            }
            (creation_s, (deletion_s - began).max(1))
        } else {
            (0, 0)
        };
        let num_gpu: u32 = row.num("num_gpu")?;
        let gpu_milli: u32 = row.num("gpu_milli")?;
        if gpu_milli > 1000 {
            return Err(row.err("gpu_milli", format!("{gpu_milli} is above 1000 (one whole GPU)")));
        }
        if num_gpu > 1 && gpu_milli != 1000 {
            return Err(row.err("gpu_milli", "multi-GPU pods take whole GPUs (1000)".into()));
        }
        let mut gpu_spec: Vec<String> = row.get("gpu_spec").split('|').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        gpu_spec.sort();
        gpu_spec.dedup();
        out.push(TracePod {
            name: row.get("name").to_string(),
            cpu_milli: row.num("cpu_milli")?,
            memory_mib: row.num("memory_mib")?,
            num_gpu,
            gpu_milli: if num_gpu == 0 { 0 } else { gpu_milli.max(1) },
            gpu_spec,
            qos: row.get("qos").to_string(),
            creation_s,
            duration_s,
            timed,
        });
        Ok(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pods(text: &'static str) -> Result<Vec<TracePod>, TraceError> {
        read_pods("pods.csv", Box::new(text.as_bytes()))
    }

    const HEADER: &str = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n";

    #[test]
    fn reads_pods_and_durations() {
        let text = format!("{HEADER}p0,6000,12288,1,460,V100M16|V100M32|V100M32,LS,Running,10,100,20\np1,1000,10,0,0,,BE,Pending,5,9,\n");
        let got = read_pods("pods.csv", Box::new(std::io::Cursor::new(text))).unwrap();
        assert_eq!(got[0].duration_s, 80);
        assert_eq!(got[0].gpu_spec, vec!["V100M16", "V100M32"]);
        assert_eq!(got[1].duration_s, 4);
        assert_eq!(got[1].gpu_milli, 0);
    }

    #[test]
    fn a_list_without_times_reads_as_untimed_pods() {
        let got = pods("name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,12000,16384,8,1000\np1,4000,8192,1,500\n").unwrap();
        assert_eq!(got.len(), 2);
        assert!(got.iter().all(|p| !p.timed && p.duration_s == 0 && p.gpu_spec.is_empty() && p.qos.is_empty()));
        assert_eq!((got[0].num_gpu, got[1].gpu_milli), (8, 500));
    }

    #[test]
    fn bad_rows_name_file_line_and_field() {
        let text = format!("{HEADER}p0,6000,12288,1,460,,LS,Running,10,100,20\np1,abc,10,0,0,,BE,Pending,5,9,\n");
        let err = read_pods("pods.csv", Box::new(std::io::Cursor::new(text))).unwrap_err();
        assert_eq!(err.to_string(), "pods.csv:3: cpu_milli: \"abc\" is not a non-negative whole number");
        let err = pods("name,cpu_milli,memory_mib,num_gpu,gpu_milli,creation_time\np0,1,1,0,0,5\n").unwrap_err();
        assert!(err.to_string().starts_with("pods.csv:1: deletion_time: missing column"), "{err}");
        let err = pods("name,cpu_milli\np0,1\n").unwrap_err();
        assert!(err.to_string().starts_with("pods.csv:1: memory_mib: missing column"), "{err}");
        let text = format!("{HEADER}p0,6000,12288,2,460,,LS,Running,10,100,20\n");
        let err = read_pods("pods.csv", Box::new(std::io::Cursor::new(text))).unwrap_err();
        assert!(err.to_string().contains(":2: gpu_milli"), "{err}");
    }
}
