//! The server's CPU time and memory, read from `/proc/<pid>` (same machine).

use std::fs;

/// CPU time (user + system, all threads, also the exited ones) of `pid`, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name (which may contain spaces).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Field 14 (utime) and 15 (stime) of proc(5); `rest` starts at field 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// Resident set size of `pid` in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    status_kb(pid, "VmRSS:").map(|kb| kb * 1024)
}

/// Open file descriptors of `pid`.
pub fn open_fds(pid: u32) -> Option<usize> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()
        .map(|d| d.count())
}

fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line[key.len()..].split_whitespace().next()?.parse().ok()
}

/// `USER_HZ`: 100 on every Linux ABI this runs on (`getconf CLK_TCK`).
fn clock_ticks() -> f64 {
    100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_rss_and_open_files() {
        let pid = std::process::id();
        // Burn a little CPU so the counter is not all zero on a fresh process.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds(pid).is_some_and(|s| s >= 0.0));
        assert!(rss_bytes(pid).is_some_and(|b| b > 1024 * 1024));
        assert!(open_fds(pid).is_some_and(|n| n >= 3));
    }

    #[test]
    fn a_missing_process_reads_as_none() {
        assert_eq!(cpu_seconds(u32::MAX), None);
        assert_eq!(rss_bytes(u32::MAX), None);
    }
}
