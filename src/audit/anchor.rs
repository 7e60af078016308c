//! The checkpoint anchor: every signed checkpoint is also appended, as one
//! JSON line, to a file outside the database (opened append-only; meant to
//! live on WORM storage or another machine). `audit verify --anchor FILE`
//! then requires the chain to start at position 1 and to reach the newest
//! anchored checkpoint with the same hash, so cutting the head or the tail
//! of the chain, or rewriting it together with every checkpoint in the
//! database, no longer verifies.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::chain::Checkpoint;

#[derive(Debug, Clone)]
pub struct Anchor {
    path: PathBuf,
}

impl Anchor {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one checkpoint and syncs it to disk.
    pub fn append(&self, c: &Checkpoint) -> anyhow::Result<()> {
        let mut opts = std::fs::OpenOptions::new();
        opts.append(true).create(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o640);
        }
        let mut f = opts
            .open(&self.path)
            .with_context(|| format!("opening the anchor {}", self.path.display()))?;
        let line = serde_json::to_string(c)? + "\n";
        f.write_all(line.as_bytes())
            .and_then(|_| f.sync_data())
            .with_context(|| format!("appending to the anchor {}", self.path.display()))
    }

    /// Every anchored checkpoint: of one file, in file order; or of a
    /// directory, every `*.jsonl` file in it together, by position (where
    /// several gateways each append to a file of their own, as the
    /// Kubernetes kit's pods do).
    pub fn read(path: &Path) -> anyhow::Result<Vec<Checkpoint>> {
        if !path.is_dir() {
            return Self::read_file(path);
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading the anchor directory {}", path.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()?;
        files.retain(|p| p.extension().is_some_and(|e| e == "jsonl") && p.is_file());
        files.sort();
        anyhow::ensure!(
            !files.is_empty(),
            "the anchor directory {} holds no *.jsonl file",
            path.display()
        );
        let mut out = Vec::new();
        for f in &files {
            out.extend(Self::read_file(f)?);
        }
        out.sort_by_key(|c| c.pos);
        Ok(out)
    }

    fn read_file(path: &Path) -> anyhow::Result<Vec<Checkpoint>> {
        let f = std::fs::File::open(path)
            .with_context(|| format!("reading the anchor {}", path.display()))?;
        let mut out = Vec::new();
        for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            out.push(
                serde_json::from_str(&line)
                    .with_context(|| format!("anchor {} line {}", path.display(), n + 1))?,
            );
        }
        Ok(out)
    }
}
