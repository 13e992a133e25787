//! Reading a run's event stream (the fd from `Run`, `Attach` or `Logs`) and
//! printing it until its end line.
//!
//! The stream is read in large chunks. Each chunk's complete lines are
//! split only at control lines (`{"gadgetd":...}`, found with one substring
//! search per chunk): the events between two control lines are handed to
//! the printer as one run, which `-o json` without shaping writes with one
//! call. A line cut by the end of a read waits for the next read.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use gadgetd_dbus::ManagerProxy;
use gadgetd_dbus::stream::{self, CONTROL_PREFIX, Control, Line};
use tokio::io::AsyncReadExt;

use crate::escape;
use crate::output::Printer;

/// Bytes asked of the socket per read (the buffer grows past it only for a
/// line longer than this).
const READ_SIZE: usize = 1 << 20;

/// Output is gathered up to this many bytes per write; a longer run of
/// events (`-o json`) is written with one call of its own.
const WRITE_BUFFER: usize = 64 * 1024;

/// The kernel buffer asked for a pipe on stdout, in bytes (Linux's default
/// `pipe-max-size`, which any user may ask). With the default 64 KiB,
/// `gadgetctl run -o json | wc -l` waited for its reader ~16 times per MiB
/// written: context switches were about half of its CPU, and the agent
/// dropped events for the slow reader meanwhile.
const STDOUT_PIPE: usize = 1 << 20;

/// Prints a stream until its end line. With `stop_on_interrupt`, Ctrl-C
/// stops the run and waits for its end; otherwise Ctrl-C just detaches.
///
/// `direct`: the agent writes the events into stdout itself (`output-fd`,
/// direct.rs); the stream brings the header and control lines.
///
/// Errors: a malformed control line, output the printer refuses (its
/// message), a stream closed without an end line. A closed stdout (`| head`)
/// ends the command successfully, whether gadgetctl or the agent met it.
pub async fn print(
    fd: OwnedFd,
    mut printer: Printer,
    stop_on_interrupt: Option<(ManagerProxy<'static>, String)>,
    direct: bool,
) -> Result<ExitCode> {
    let std_stream = std::os::unix::net::UnixStream::from(fd);
    std_stream.set_nonblocking(true)?;
    let stream = tokio::net::UnixStream::from_std(std_stream)?;
    let stdout = std::io::stdout();
    widen_pipe(&stdout);
    let mut out = std::io::BufWriter::with_capacity(WRITE_BUFFER, stdout.lock());
    match pump(stream, &mut printer, &mut out, stop_on_interrupt).await {
        // The agent met the closed pipe and closed the stream.
        Err(_) if direct && crate::direct::reader_gone(std::io::stdout()) => Ok(ExitCode::SUCCESS),
        r => r,
    }
}

/// [`print`]'s loop: reads `stream` to its end line, printing to `out`.
async fn pump(
    mut stream: impl tokio::io::AsyncRead + Unpin,
    printer: &mut Printer,
    out: &mut impl Write,
    stop_on_interrupt: Option<(ManagerProxy<'static>, String)>,
) -> Result<ExitCode> {
    let lines = Lines::new();
    let mut buf: Vec<u8> = Vec::with_capacity(READ_SIZE);
    let mut interrupted = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        if buf.capacity() - buf.len() < READ_SIZE / 4 {
            buf.reserve(READ_SIZE);
        }
        let n = tokio::select! {
            n = stream.read_buf(&mut buf) => n?,
            _ = &mut ctrl_c, if !interrupted => {
                interrupted = true;
                match &stop_on_interrupt {
                    Some((mgr, id)) => {
                        if let Err(e) = mgr.stop(id).await {
                            eprintln!("gadgetctl: stopping run {id}: {e}");
                            return Ok(ExitCode::FAILURE);
                        }
                        continue;
                    }
                    None => { out.flush()?; return Ok(ExitCode::SUCCESS); }
                }
            }
        };
        // At the end of the stream, a last line without its newline is a line.
        let complete = if n == 0 {
            buf.len()
        } else {
            match memchr::memrchr(b'\n', &buf) {
                Some(i) => i + 1,
                None => continue,
            }
        };
        match lines.print(&buf[..complete], printer, out) {
            Ok(Some(code)) => return Ok(code),
            Ok(None) => {}
            Err(e) if closed_stdout(&e) => return Ok(ExitCode::SUCCESS),
            Err(e) => return Err(e),
        }
        if n == 0 {
            out.flush()?;
            bail!("the event stream closed without an end record (did gadgetd stop?)");
        }
        buf.drain(..complete);
        match out.flush() {
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                return Ok(ExitCode::SUCCESS);
            }
            r => r?,
        }
    }
}

/// Grows the kernel buffer of `out` to [`STDOUT_PIPE`] bytes when it is a
/// smaller pipe; anything else (a file, a terminal, a refusal) is left as it is.
pub fn widen_pipe(out: &impl std::os::fd::AsFd) {
    use nix::fcntl::{FcntlArg, fcntl};
    let is_pipe = nix::sys::stat::fstat(out.as_fd())
        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFIFO);
    if is_pipe
        && fcntl(out.as_fd(), FcntlArg::F_GETPIPE_SZ).is_ok_and(|n| (n as usize) < STDOUT_PIPE)
    {
        let _ = fcntl(out.as_fd(), FcntlArg::F_SETPIPE_SZ(STDOUT_PIPE as _));
    }
}

/// Whether `e` is stdout's reader having gone away (`gadgetctl run | head`).
fn closed_stdout(e: &anyhow::Error) -> bool {
    e.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Splits complete lines into runs of events and control lines.
struct Lines {
    /// A control line that is not the chunk's first line.
    control: memchr::memmem::Finder<'static>,
}

impl Lines {
    fn new() -> Lines {
        Lines {
            control: memchr::memmem::Finder::new(&[b"\n", CONTROL_PREFIX].concat()).into_owned(),
        }
    }

    /// Where the first control line of `text` (which starts at a line
    /// start) begins; `text.len()` when there is none.
    fn control_at(&self, text: &[u8]) -> usize {
        if text.starts_with(CONTROL_PREFIX) {
            return 0;
        }
        self.control.find(text).map_or(text.len(), |i| i + 1)
    }

    /// Prints `text`, whole lines (the last one's newline may be missing at
    /// the end of the stream). `Some` once the end line was handled: the
    /// command's exit code.
    fn print(
        &self,
        mut text: &[u8],
        printer: &mut Printer,
        out: &mut impl Write,
    ) -> Result<Option<ExitCode>> {
        while !text.is_empty() {
            let at = self.control_at(text);
            if at > 0 {
                printer.events(&text[..at], out)?;
                text = &text[at..];
                continue;
            }
            let end = memchr::memchr(b'\n', text).map_or(text.len(), |i| i + 1);
            let line = text[..end].strip_suffix(b"\n").unwrap_or(&text[..end]);
            text = &text[end..];
            if let Some(code) = control(line, printer, out)? {
                return Ok(Some(code));
            }
        }
        Ok(None)
    }
}

/// Handles one control line: the header (skipped programs and notes on
/// stderr, the printer's columns), a loss report, the end line. `Some` for
/// the end line: the command's exit code.
fn control(line: &[u8], printer: &mut Printer, out: &mut impl Write) -> Result<Option<ExitCode>> {
    let Line::Control(control) =
        stream::classify(line).context("malformed control line in the event stream")?
    else {
        // Not reached: the line starts with the control prefix.
        printer.events(line, out)?;
        return Ok(None);
    };
    match control {
        Control::Header(h) => {
            warn_skipped(&h.programs);
            for note in &h.notes {
                eprintln!("gadgetctl: note: {}", escape::terminal(note));
            }
            printer.header(&h, out)?;
        }
        Control::Lost {
            count,
            total,
            cause,
            ..
        } => {
            out.flush()?;
            eprintln!(
                "gadgetctl: {count} events lost ({total} in all): {}",
                cause.explain()
            );
        }
        Control::End(end) => {
            printer.finish(out)?;
            out.flush()?;
            if end.events_lost > 0 {
                eprintln!(
                    "gadgetctl: run ended ({}): {} events, {} lost",
                    escape::terminal(&end.reason),
                    end.events_seen,
                    end.events_lost
                );
            }
            if let Some(err) = end.error {
                eprintln!("gadgetctl: run failed: {}", escape::message(&err));
                return Ok(Some(ExitCode::FAILURE));
            }
            return Ok(Some(ExitCode::SUCCESS));
        }
    }
    Ok(None)
}

/// Says on stderr which of the gadget's programs did not attach and why
/// (the agent runs without them, as Inspektor Gadget does).
fn warn_skipped(programs: &[gadgetd_dbus::stream::ProgramState]) {
    for p in programs.iter().filter(|p| p.status == "skipped") {
        eprintln!(
            "gadgetctl: program `{}` (section `{}`) skipped: {}",
            escape::terminal(&p.name),
            escape::terminal(&p.section),
            escape::terminal(p.reason.as_deref().unwrap_or("no reason given"))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Format;

    /// A line cut by a read waits for the rest; the end line ends the pump.
    #[tokio::test]
    async fn lines_split_across_reads_come_out_whole() {
        let (mut writer, reader) = tokio::net::UnixStream::pair().unwrap();
        let feeder = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let end = stream::encode(&Control::End(stream::End {
                reason: stream::reason::TIMEOUT.into(),
                error: None,
                events_seen: 2,
                events_lost: 0,
                datasources: Vec::new(),
                log: None,
            }));
            let (head, tail) = end.split_at(7);
            let parts: [&[u8]; 5] = [
                b"{\"fname\":\"/a",
                b"\x7fb\"}\n{\"n\"",
                b":2}\n",
                head,
                tail,
            ];
            for part in parts {
                writer.write_all(part).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            }
        });
        let mut printer = Printer::new(Format::Json);
        let mut out = Vec::new();
        let code = pump(reader, &mut printer, &mut out, None).await.unwrap();
        feeder.await.unwrap();
        assert_eq!(code, ExitCode::SUCCESS);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"fname\":\"/a\\u007fb\"}\n{\"n\":2}\n"
        );
        // A stream that closes without an end line says so.
        let (writer, reader) = tokio::net::UnixStream::pair().unwrap();
        drop(writer);
        let err = pump(reader, &mut printer, &mut Vec::new(), None)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the event stream closed without an end record (did gadgetd stop?)"
        );
    }

    #[test]
    fn events_pass_between_control_lines_and_the_end_line_ends() {
        let lines = Lines::new();
        let mut printer = Printer::new(Format::Json);
        let mut out = Vec::new();
        let lost = stream::encode(&Control::Lost {
            count: 2,
            total: 2,
            cause: stream::LostCause::SlowReader,
            datasource: None,
        });
        let end = stream::encode(&Control::End(stream::End {
            reason: stream::reason::TIMEOUT.into(),
            error: None,
            events_seen: 4,
            events_lost: 2,
            datasources: Vec::new(),
            log: None,
        }));
        // An object keyed "gadgetd" inside an event is not a control line.
        let text = [
            b"{\"a\":1}\n{\"x\":{\"gadgetd\":1}}\n".as_slice(),
            &lost,
            b"{\"a\":2}\n",
            &end,
            b"{\"after\":1}\n",
        ]
        .concat();
        let code = lines.print(&text, &mut printer, &mut out).unwrap();
        assert_eq!(code, Some(ExitCode::SUCCESS));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"a\":1}\n{\"x\":{\"gadgetd\":1}}\n{\"a\":2}\n"
        );
        // A stream opening with a control line, and one without its last newline.
        let mut out = Vec::new();
        let text = [&lost[..], b"{\"a\":3}\n", &end[..end.len() - 1]].concat();
        let code = lines.print(&text, &mut printer, &mut out).unwrap();
        assert_eq!(code, Some(ExitCode::SUCCESS));
        assert_eq!(out, b"{\"a\":3}\n");
        let err = lines
            .print(b"{\"gadgetd\":{\"nope\":1}}\n", &mut printer, &mut out)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed control line in the event stream"
        );
    }
}
