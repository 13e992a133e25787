//! Progress bars on a terminal (indicatif draws nothing when stderr is not
//! one): one bar per blob of a pull or push, a spinner per build step.

use std::collections::HashMap;
use std::os::fd::OwnedFd;

use gadgetd_dbus::images::{Progress, progress_state};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::AsyncBufReadExt;

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{prefix:>8} {msg:<14} [{bar:30}] {bytes}/{total_bytes}")
        .expect("valid template")
        .progress_chars("=> ")
}

/// A spinner for one step (quiet when stderr is not a terminal).
pub fn spinner(msg: String) -> ProgressBar {
    let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    pb.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    pb.set_message(msg);
    pb.enable_steady_tick(std::time::Duration::from_millis(100));
    pb
}

/// Reads the agent's progress lines from `fd` until it closes, drawing bars.
pub async fn follow(fd: OwnedFd) {
    let std = std::os::unix::net::UnixStream::from(fd);
    let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let reader = match std
        .set_nonblocking(true)
        .and_then(|_| tokio::net::UnixStream::from_std(std))
    {
        Ok(s) => tokio::io::BufReader::new(s),
        Err(_) => return,
    };
    let mut lines = reader.lines();
    let mut bars: HashMap<String, ProgressBar> = HashMap::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let Ok(p) = serde_json::from_str::<Progress>(&line) else {
            continue;
        };
        let bar = bars.entry(p.digest.clone()).or_insert_with(|| {
            let b = multi.add(ProgressBar::new(p.total).with_style(bar_style()));
            b.set_prefix(p.kind.clone());
            b.set_message(
                p.digest
                    .trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect::<String>(),
            );
            b
        });
        bar.set_length(p.total);
        bar.set_position(p.done);
        if p.state == progress_state::DONE || p.state == progress_state::EXISTS {
            if p.state == progress_state::EXISTS && !bar.is_finished() {
                bar.set_prefix(format!("{} (exists)", p.kind));
            }
            bar.finish();
        }
    }
}

/// A socket pair for progress: the agent writes to the second fd.
pub fn channel() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let (a, b) = std::os::unix::net::UnixStream::pair()?;
    Ok((a.into(), b.into()))
}
