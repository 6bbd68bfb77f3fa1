//! What the benchmark and smoke binaries share: their `--flag value` arguments and what `/proc`
//! says about the provider process they drive.

use crate::worlds::BoxError;

/// The program's arguments as `(flag, value)` pairs: every flag of these binaries takes a
/// value. A flag without one is an error naming it.
pub fn flag_values() -> Result<Vec<(String, String)>, BoxError> {
    let mut pairs = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        pairs.push((flag, value));
    }
    Ok(pairs)
}

/// CPU time (user + system) a process has used so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Result<std::time::Duration, BoxError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces, in parentheses): utime and stime
    // are the 12th and 13th, in clock ticks (USER_HZ, 100 on Linux).
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).ok_or("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64, BoxError> { Ok(fields.get(i).ok_or("short stat")?.parse()?) };
    Ok(std::time::Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// A process's resident memory, its peak, open file descriptors and threads.
#[derive(Debug, Clone, Copy)]
pub struct ProcessFigures {
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
    pub fds: usize,
    pub threads: u64,
}

/// Reads [`ProcessFigures`] of `pid` from `/proc/<pid>/status` and `/proc/<pid>/fd`.
pub fn process_figures(pid: u32) -> Result<ProcessFigures, BoxError> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|value| value.parse::<u64>().ok())
            .ok_or_else(|| format!("no {name} in /proc/{pid}/status"))
    };
    Ok(ProcessFigures {
        rss_kib: field("VmRSS")?,
        peak_rss_kib: field("VmHWM")?,
        fds: std::fs::read_dir(format!("/proc/{pid}/fd"))?.count(),
        threads: field("Threads")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_figures() -> Result<(), BoxError> {
        let figures = process_figures(std::process::id())?;
        assert!(figures.rss_kib > 0 && figures.peak_rss_kib >= figures.rss_kib);
        assert!(figures.fds >= 3, "stdin, stdout, stderr at least: {}", figures.fds);
        assert!(figures.threads >= 1);
        Ok(())
    }
}
