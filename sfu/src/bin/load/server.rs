//! The server process under test, seen through /proc: CPU time and resident memory.

use std::process::Command;

/// CPU time (user + system, all threads) and resident memory of a process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub cpu_seconds: f64,
    pub rss_kib: u64,
}

/// Clock ticks per second, as `/proc/PID/stat` counts them.
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse::<f64>().ok())
        .filter(|ticks| *ticks > 0.0)
        .unwrap_or(100.0)
}

/// Reads utime + stime and VmRSS of `pid` (`self` for this process).
pub fn sample(pid: &str, ticks: f64) -> Result<Sample, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).map_err(|e| format!("/proc/{pid}/stat: {e}"))?;
    // The command name (field 2) may hold spaces; fields are counted after its ')'.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).ok_or("unreadable /proc stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after ')'.
    let tick = |index: usize| fields.get(index).and_then(|f| f.parse::<u64>().ok()).ok_or("unreadable CPU times");
    let cpu_seconds = (tick(11)? + tick(12)?) as f64 / ticks;
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or("no VmRSS")?;
    Ok(Sample { cpu_seconds, rss_kib })
}
