//! What /proc says about the soak's streamer process: memory, fds, threads, CPU time, load.

use std::collections::BTreeMap;

/// What /proc says about the streamer process at one moment.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sample {
    /// Minutes since the writer started.
    pub(super) minute: f64,
    pub(super) rss_kb: u64,
    pub(super) fds: usize,
    pub(super) threads: u64,
    /// CPU seconds (user + system) so far.
    pub(super) cpu_s: f64,
    pub(super) load1: f64,
}

pub(super) fn sample(pid: u32, minute: f64) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name, in ticks.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(Sample {
        minute,
        rss_kb: field("VmRSS:")?,
        fds,
        threads: field("Threads:")?,
        cpu_s: ticks / 100.0,
        load1: load().0,
    })
}

/// What the process's fds point at, counted: files by path, TCP sockets by remote port.
pub(super) fn fd_kinds(pid: u32) -> BTreeMap<String, usize> {
    let mut remote = BTreeMap::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let (Some(rem), Some(inode)) = (f.get(2), f.get(9)) {
                let port = rem
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok());
                remote.insert((*inode).to_owned(), port.unwrap_or(0));
            }
        }
    }
    let mut kinds = BTreeMap::new();
    for fd in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
    {
        let target = std::fs::read_link(fd.path()).map_or("?".into(), |t| t.display().to_string());
        let kind = match target
            .strip_prefix("socket:[")
            .and_then(|t| t.strip_suffix(']'))
        {
            Some(inode) => remote
                .get(inode)
                .map_or("socket (not TCP)".to_owned(), |p| {
                    format!("TCP to port {p}")
                }),
            None => target,
        };
        *kinds.entry(kind).or_insert(0) += 1;
    }
    kinds
}

/// The load averages over 1, 5 and 15 minutes.
pub(super) fn load() -> (f64, f64, f64) {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut f = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    (
        f.next().unwrap_or(0.0),
        f.next().unwrap_or(0.0),
        f.next().unwrap_or(0.0),
    )
}

/// The fewest fds open in the first window after the warm-up and in the last window of the
/// run, each `window` minutes long (half of what follows the warm-up when the run is shorter).
/// The fewest, because a checkpoint save holds a temp file and the directory open for a moment;
/// over windows of minutes, because the store's pool closes a connection only after it idled
/// 60 s (checked every 10 s), so its count moves by a few within one minute. A leak raises the
/// floor of every later window.
pub(super) fn fd_floors(samples: &[Sample], warm_up: f64, window: f64) -> Option<(usize, usize)> {
    let end = samples.last()?.minute;
    let window = window.min((end - warm_up) / 2.0);
    let fewest = |from: f64, to: f64| {
        samples
            .iter()
            .filter(|s| s.minute >= from && s.minute <= to)
            .map(|s| s.fds)
            .min()
    };
    Some((
        fewest(warm_up, warm_up + window)?,
        fewest(end - window, end)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(fds: impl Fn(f64) -> usize) -> Vec<Sample> {
        (0..=360)
            .map(|i| {
                let minute = f64::from(i) / 12.0;
                Sample {
                    minute,
                    rss_kb: 0,
                    fds: fds(minute),
                    threads: 0,
                    cpu_s: 0.0,
                    load1: 0.0,
                }
            })
            .collect()
    }

    #[test]
    fn a_pool_that_breathes_keeps_its_floor_and_a_step_that_stays_raises_it() {
        // Up by 3 for two minutes in every five, from the start to the end: no growth, though
        // the first minute after the warm-up (0.5-1.5) and the last (29-30) say 17 and 20.
        let breathing = series(|m| if (m % 5.0) >= 3.0 { 20 } else { 17 });
        assert_eq!(fd_floors(&breathing, 0.5, 5.0), Some((17, 17)));
        // The previous run: 19, then 4 more from minute 3 on that never closed.
        let step = series(|m| if m < 3.0 { 19 } else { 23 });
        assert_eq!(fd_floors(&step, 0.5, 5.0), Some((19, 23)));
        // A 4-minute run: windows of half what follows the warm-up, 0.5-2.25 and 2.25-4.
        let short: Vec<Sample> = series(|m| if m < 2.0 { 19 } else { 23 })
            .into_iter()
            .filter(|s| s.minute <= 4.0)
            .collect();
        assert_eq!(fd_floors(&short, 0.5, 5.0), Some((19, 23)));
    }
}
