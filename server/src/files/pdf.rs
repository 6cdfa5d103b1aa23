//! A published PDF's text, for the library's search. The text parser is run in a child process
//! of the server under memory and CPU limits and a deadline: a crafted PDF can make a parser
//! recurse without end or allocate gigabytes, which in the server's own process would abort
//! every request it serves. The child reads the PDF on its standard input and writes the text
//! on its standard output; a child that fails, is killed or runs out of time leaves the file
//! without search text.

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use thudo_core::attachments::MAX_FILE_BYTES;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::MAX_TEXT_BYTES;

/// Where a PDF's text is read.
#[derive(Debug, Clone, Default)]
pub enum PdfReader {
    /// In the server's own process, behind the checks of [`pdf_text`] alone: for tests and
    /// tools that embed the server. A PDF the checks miss can still take the process down.
    #[default]
    InProcess,
    /// In a child process: `program` (the server's own executable) run with [`CHILD_ARG`],
    /// its environment cleared, under [`CHILD_MEMORY_BYTES`] of address space and
    /// [`CHILD_CPU_SECS`] of processor time (Linux), at most [`CHILD_SLOTS`] at once, the wait
    /// for a slot and the reading within [`CHILD_DEADLINE`].
    Child(PathBuf),
    /// Not read: every PDF is kept without search text (a server that cannot start its
    /// reader).
    Off,
}

/// The argument that makes the server's executable a PDF reader ([`read_in_child`]).
pub const CHILD_ARG: &str = "--read-pdf-text";

/// The address space a reading child may use: a PDF whose streams inflate to
/// [`MAX_PDF_INFLATED_BYTES`] makes the parser hold some 640 MiB of operations.
pub const CHILD_MEMORY_BYTES: u64 = 2 << 30;

/// The processor time a reading child may use.
pub const CHILD_CPU_SECS: u64 = 20;

/// How long an upload waits for its PDF's text, a free slot included, before the file is kept
/// without it (a child still reading is killed).
pub const CHILD_DEADLINE: Duration = Duration::from_secs(30);

/// How many reading children may run at once (uploads beyond wait their turn), so a burst of
/// uploads cannot claim more than this many times [`CHILD_MEMORY_BYTES`].
pub const CHILD_SLOTS: usize = 2;

static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CHILD_SLOTS);

/// Why a reading child gave no text: its exit status names the step (the child's standard
/// error is not read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ChildFailure {
    /// It could not lower its own limits.
    Limits = 2,
    /// Its standard input failed or held more than [`MAX_FILE_BYTES`].
    Input = 3,
    /// Its standard output failed.
    Output = 4,
    /// It could not confine itself to the system calls reading needs.
    Confinement = 5,
}

impl ChildFailure {
    /// The failure an exit code names.
    pub fn from_code(code: i32) -> Option<ChildFailure> {
        [Self::Limits, Self::Input, Self::Output, Self::Confinement]
            .into_iter()
            .find(|f| *f as i32 == code)
    }
}

impl PdfReader {
    /// The text of the PDF `bytes`, or none (see [`pdf_text`]). A child that fails is logged
    /// by the reason alone: nothing of the file is written to the log.
    pub async fn text(&self, bytes: Arc<Vec<u8>>) -> String {
        match self {
            PdfReader::InProcess => tokio::task::spawn_blocking(move || pdf_text(&bytes))
                .await
                .unwrap_or_default(),
            PdfReader::Child(program) => match text_in_child(program, &bytes).await {
                Ok(text) => text,
                Err(reason) => {
                    eprintln!("a published PDF's text was not read: {reason}");
                    String::new()
                }
            },
            PdfReader::Off => String::new(),
        }
    }
}

/// The text of the PDF `bytes` as a reading child of `program` gives it, or why it gave none
/// (its exit status when it ended badly: a signal when the parser crashed).
pub async fn text_in_child(program: &std::path::Path, bytes: &[u8]) -> Result<String, String> {
    if !bytes.starts_with(b"%PDF-") {
        return Ok(String::new());
    }
    match tokio::time::timeout(CHILD_DEADLINE, run_child(program, bytes)).await {
        // The child, if started, is killed as its future is dropped.
        Err(_) => Err(format!("no text within {CHILD_DEADLINE:?}")),
        Ok(result) => result,
    }
}

/// Waits for a slot, runs one reading child over `bytes` and reads its answer.
async fn run_child(program: &std::path::Path, bytes: &[u8]) -> Result<String, String> {
    let _slot = SLOTS.acquire().await.map_err(|e| e.to_string())?;
    let mut child = tokio::process::Command::new(program)
        .arg(CHILD_ARG)
        // The server's environment may name its database and secrets.
        .env_clear()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("the reader could not start: {e}"))?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err("the reader's pipes were not open".into());
    };
    let answer = async {
        // The child reads the whole file before it writes anything.
        stdin.write_all(bytes).await?;
        drop(stdin);
        let mut out = Vec::new();
        stdout
            .take(MAX_TEXT_BYTES as u64 + 1)
            .read_to_end(&mut out)
            .await?;
        Ok::<_, std::io::Error>(out)
    }
    .await;
    let status = child.wait().await.map_err(|e| e.to_string())?;
    match (status.code().and_then(ChildFailure::from_code), answer) {
        (Some(failure), _) => Err(format!("the reader failed: {failure:?}")),
        (None, _) if !status.success() => Err(format!("the reader ended: {status}")),
        (None, Err(e)) => Err(format!("the reader's pipes failed: {e}")),
        (None, Ok(out)) if out.len() > MAX_TEXT_BYTES => Err("the reader wrote too much".into()),
        // What the child wrote is cleaned again: it is the part of the server not trusted.
        (None, Ok(out)) => Ok(searchable(&String::from_utf8_lossy(&out))),
    }
}

/// The reading child's whole life: lowers its limits, reads a PDF of at most
/// [`MAX_FILE_BYTES`] from standard input and writes its text to standard output. Returns the
/// process's exit status: 0 when the text, maybe empty, was written, else a
/// [`ChildFailure`]'s code.
pub fn read_in_child() -> i32 {
    if let Err(e) = limit_this_process() {
        eprintln!("cannot limit the PDF reader: {e}");
        return ChildFailure::Limits as i32;
    }
    let mut bytes = Vec::new();
    let read = std::io::stdin()
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes);
    if read.is_err() || bytes.len() as u64 > MAX_FILE_BYTES {
        return ChildFailure::Input as i32;
    }
    if let Err(e) = confine_this_process() {
        eprintln!("cannot confine the PDF reader: {e}");
        return ChildFailure::Confinement as i32;
    }
    let text = read_text(&bytes, cfg!(target_os = "linux"));
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => 0,
        Err(_) => ChildFailure::Output as i32,
    }
}

/// The system calls a reading child may make once its input is read, with any arguments:
/// memory, a stack overflow's handler, exiting. `write` and `tgkill` are allowed narrower in
/// [`confine_this_process`].
#[cfg(target_os = "linux")]
const READING_CALLS: &[i64] = &[
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_brk,
    libc::SYS_madvise,
    libc::SYS_mprotect,
    libc::SYS_futex,
    libc::SYS_getrandom,
    libc::SYS_clock_gettime,
    libc::SYS_sched_yield,
    libc::SYS_rt_sigreturn,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack,
    libc::SYS_gettid,
    libc::SYS_getpid,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// Confines this process to [`READING_CALLS`], writing to its standard output and error
/// only, and signalling itself only to abort (no other process: not the server), with no new
/// privileges: any other system call, such as opening a file or a socket or starting a
/// process, kills it (`SIGSYS`). Whatever a crafted PDF makes the parser do, it can read
/// nothing but the PDF and reach nothing.
#[cfg(target_os = "linux")]
fn confine_this_process() -> Result<(), String> {
    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };
    let equal = |arg: u8, value: u64| {
        SeccompCondition::new(arg, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, value)
            .map_err(|e| e.to_string())
    };
    let rule = |conditions| SeccompRule::new(conditions).map_err(|e| e.to_string());
    // One thread: its thread id is the process id.
    let me = u64::from(std::process::id());
    let mut rules: std::collections::BTreeMap<i64, Vec<SeccompRule>> = READING_CALLS
        .iter()
        .map(|call| (*call, Vec::new()))
        .collect();
    rules.insert(
        libc::SYS_write,
        vec![rule(vec![equal(0, 1)?])?, rule(vec![equal(0, 2)?])?],
    );
    rules.insert(
        libc::SYS_tgkill,
        vec![rule(vec![
            equal(0, me)?,
            equal(1, me)?,
            equal(2, libc::SIGABRT as u64)?,
        ])?],
    );
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(|e| e.to_string())?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        arch,
    )
    .map_err(|e| e.to_string())?;
    let program: BpfProgram = filter.try_into().map_err(|e| format!("{e}"))?;
    seccompiler::apply_filter(&program).map_err(|e| e.to_string())
}

/// Elsewhere the limits alone hold (servers run on Linux).
#[cfg(not(target_os = "linux"))]
fn confine_this_process() -> Result<(), String> {
    Ok(())
}

/// Lowers this process's limits, never raising one the service set lower: address space,
/// processor time, and no core file (a crafted PDF's memory is not kept on disk). On Linux it
/// also offers itself first to the kernel's out-of-memory killer: should two readers at their
/// limits leave the machine short, a reader ends, not the server.
fn limit_this_process() -> std::io::Result<()> {
    use rlimit::Resource;
    #[cfg(target_os = "linux")]
    let _ = std::fs::write("/proc/self/oom_score_adj", "1000");
    for (resource, limit) in [
        (Resource::AS, CHILD_MEMORY_BYTES),
        (Resource::CPU, CHILD_CPU_SECS),
        (Resource::CORE, 0),
    ] {
        if resource.is_supported() {
            let (_, hard) = rlimit::getrlimit(resource)?;
            let limit = limit.min(hard);
            rlimit::setrlimit(resource, limit, limit)?;
        }
    }
    Ok(())
}

/// The most a PDF's streams may inflate to, together, for its text to be read (the parser
/// holds a page's operations at about forty times their text's size).
pub const MAX_PDF_INFLATED_BYTES: u64 = 16 << 20;

/// The filters a stream may name, one each, for its PDF's text to be read: Flate (counted
/// below), the image codecs the text parser never decodes, and the ASCII encodings. A chain
/// of filters, a filter held elsewhere (`/Filter 7 0 R`), LZW and run-length are not read:
/// each can hide an expansion from the count.
const READ_FILTERS: &[&[u8]] = &[
    b"FlateDecode",
    b"DCTDecode",
    b"JPXDecode",
    b"CCITTFaxDecode",
    b"JBIG2Decode",
    b"ASCIIHexDecode",
    b"ASCII85Decode",
];

/// The most `stream` keywords a PDF's check tries (each inflation restarts from its keyword).
const MAX_STREAM_KEYWORDS: usize = 20_000;

/// A PDF name's bytes with its `#xx` escapes decoded (the parser decodes them in keys too).
fn decoded_name(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (raw[i], raw.get(i + 1).copied(), raw.get(i + 2).copied()) {
            (b'#', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// The first number in `text` (after whitespace), if any.
fn leading_number(text: &[u8]) -> Option<u64> {
    let text = text.trim_ascii_start();
    let digits = text.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&text[..digits]).ok()?.parse().ok()
}

/// Where `needle` is next in `bytes` at or after `from`.
fn find_from(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// [`find_from`] for one needle asked about at positions that mostly increase: an answer
/// still ahead of the position asked is given again without a search, so a pass over a file
/// with many names and few streams stays linear instead of searching to the next stream from
/// every name.
struct Next<'a> {
    bytes: &'a [u8],
    needle: &'static [u8],
    /// The last search: where it started and what it found.
    last: Option<(usize, Option<usize>)>,
}

impl<'a> Next<'a> {
    fn new(bytes: &'a [u8], needle: &'static [u8]) -> Self {
        Next {
            bytes,
            needle,
            last: None,
        }
    }

    fn from(&mut self, from: usize) -> Option<usize> {
        match self.last {
            Some((started, found)) if started <= from && found.is_none_or(|at| at >= from) => found,
            _ => {
                let found = find_from(self.bytes, from, self.needle);
                self.last = Some((from, found));
                found
            }
        }
    }
}

/// Whether a PDF is one whose text the parser may read: not encrypted (the parser would
/// decrypt what no check here sees), every stream's filter one of [`READ_FILTERS`] alone,
/// predictor and cross-reference widths within reason (the parser allocates what they say),
/// and every stream inflating, together, to at most `limit` bytes. The parser inflates each
/// stream whole: a file of a few MB can ask for gigabytes, and a failed allocation aborts the
/// server (no panic the guard could catch). Names are read as the parser reads them, `#xx`
/// escapes decoded. Each `stream` keyword is tried as the start of a zlib stream, and of a
/// raw deflate stream after two bytes (as the parser falls back to), counted, never kept.
///
/// `confined`: the parser runs in a reading child whose memory, time and system calls are
/// bounded ([`read_in_child`]), so what the count cannot see is that child's to bear, not the
/// server's: an encrypted PDF (official documents are often locked against editing with an
/// empty password to open them), a chain of filters, LZW and run-length are read there.
fn inflates_within(bytes: &[u8], limit: u64, confined: bool) -> bool {
    let find = |from: usize, needle: &[u8]| find_from(bytes, from, needle);
    let (mut streams, mut stream_ends, mut object_ends, mut objects) = (
        Next::new(bytes, b"stream"),
        Next::new(bytes, b"endstream"),
        Next::new(bytes, b"endobj"),
        Next::new(bytes, b"obj"),
    );
    // The object the current name is in (its `obj` keyword), and whether a cross-reference
    // stream's, as last read.
    let (mut object_start, mut object_cursor) = (0usize, 0usize);
    let mut xref_object: Option<(usize, bool)> = None;
    // Every name outside streams' data, as the parser decodes it.
    let mut at = 0;
    while let Some(slash) = find(at, b"/") {
        // A stream's data is skipped: its bytes are no names.
        if let Some(stream) = streams.from(at).filter(|&st| st < slash) {
            let body = stream + 6;
            at = match stream_ends.from(body) {
                Some(end)
                    if bytes[body..].starts_with(b"\r")
                        || bytes[body..].starts_with(b"\n")
                        || bytes[body..].starts_with(b" ")
                        || bytes[body..].starts_with(b"\t") =>
                {
                    end + 9
                }
                _ => body,
            };
            continue;
        }
        let raw_start = slash + 1;
        let len = bytes[raw_start..]
            .iter()
            .position(|&b| b.is_ascii_whitespace() || b"/[]<>()%{}".contains(&b))
            .unwrap_or(bytes.len() - raw_start);
        at = raw_start + len.max(1).min(bytes.len() - raw_start);
        let name = decoded_name(&bytes[raw_start..raw_start + len]);
        let value = &bytes[raw_start + len..];
        let ok = match name.as_slice() {
            b"Encrypt" => confined,
            // Only a stream's filter is the parser's to apply: a signature's
            // (`/Filter /Adobe.PPKLite`) is the end of a dictionary that holds no stream.
            b"Filter" => {
                let next_stream = streams.from(raw_start).unwrap_or(usize::MAX);
                let next_end = object_ends.from(raw_start).unwrap_or(usize::MAX);
                next_end < next_stream || confined || filter_is_read(value)
            }
            b"Columns" => leading_number(value).is_some_and(|n| n <= 1 << 16),
            b"Colors" => leading_number(value).is_some_and(|n| n <= 32),
            b"BitsPerComponent" => leading_number(value).is_some_and(|n| n <= 16),
            // A cross-reference stream's field widths (a font's /W is glyph widths).
            b"W" if {
                // The last `obj` keyword before the name, found moving forward as the names
                // are, and each object's kind read once.
                while let Some(found) = objects
                    .from(object_cursor)
                    .filter(|&at| at + 3 <= raw_start)
                {
                    object_start = found;
                    object_cursor = found + 3;
                }
                match xref_object {
                    Some((start, is_xref)) if start == object_start => is_xref,
                    _ => {
                        let end = streams.from(raw_start).unwrap_or(bytes.len());
                        let is_xref = bytes[object_start..end.max(object_start)]
                            .windows(5)
                            .any(|w| w == b"/XRef");
                        xref_object = Some((object_start, is_xref));
                        is_xref
                    }
                }
            } =>
            {
                let inside = value.trim_ascii_start();
                let Some(inside) = inside.strip_prefix(b"[") else {
                    return false;
                };
                let end = inside
                    .iter()
                    .position(|&b| b == b']')
                    .unwrap_or(inside.len());
                inside[..end]
                    .split(|b| b.is_ascii_whitespace())
                    .filter(|w| !w.is_empty())
                    .all(|w| leading_number(w).is_some_and(|n| n <= 8))
            }
            _ => true,
        };
        if !ok {
            return false;
        }
    }
    let mut total = 0u64;
    let mut at = 0;
    let mut keywords = 0;
    while let Some(found) = find(at, b"stream") {
        keywords += 1;
        if keywords > MAX_STREAM_KEYWORDS {
            return false;
        }
        at = found + 6;
        let mut start = at;
        while matches!(bytes.get(start), Some(b' ' | b'\t')) {
            start += 1;
        }
        let data = match &bytes[start.min(bytes.len())..] {
            [b'\r', b'\n', rest @ ..] | [b'\n', rest @ ..] | [b'\r', rest @ ..] => rest,
            _ => continue,
        };
        let zlib = inflated(flate2::read::ZlibDecoder::new(data), limit - total);
        let raw = if zlib == 0 {
            inflated(
                flate2::read::DeflateDecoder::new(data.get(2..).unwrap_or_default()),
                limit - total,
            )
        } else {
            0
        };
        total += zlib.max(raw);
        if total > limit {
            return false;
        }
    }
    true
}

/// Whether the value after a stream's `/Filter` key (`text`) is one filter the parser may
/// read.
fn filter_is_read(text: &[u8]) -> bool {
    let text = text.trim_ascii_start();
    let (names, in_array) = match text.strip_prefix(b"[") {
        Some(inside) => match inside.iter().position(|&b| b == b']') {
            Some(end) => (&inside[..end], true),
            None => return false,
        },
        None => (text, false),
    };
    let names = names.trim_ascii_start();
    let Some(name) = names.strip_prefix(b"/") else {
        return false;
    };
    let len = name
        .iter()
        .position(|&b| b.is_ascii_whitespace() || b"/[]<>()%".contains(&b))
        .unwrap_or(name.len());
    let (name, after) = name.split_at(len);
    // An array holds this one name and nothing else.
    if in_array && !after.trim_ascii().is_empty() {
        return false;
    }
    READ_FILTERS.contains(&decoded_name(name).as_slice())
}

/// How many bytes `reader` inflates to, counting up to one past `limit`.
fn inflated(mut reader: impl std::io::Read, limit: u64) -> u64 {
    let mut buffer = [0u8; 16 * 1024];
    let mut total = 0u64;
    loop {
        match reader.read(&mut buffer) {
            Ok(0) | Err(_) => return total,
            Ok(n) => {
                total += n as u64;
                if total > limit {
                    return total;
                }
            }
        }
    }
}

/// The text of a PDF, or none (not a PDF, no text, malformed, or streams that would inflate
/// past [`MAX_PDF_INFLATED_BYTES`]). The parser runs behind a panic guard: a crafted file may
/// make it fail, never take the request down.
pub fn pdf_text(bytes: &[u8]) -> String {
    read_text(bytes, false)
}

/// [`pdf_text`], with the checks [`inflates_within`] makes of a `confined` reader.
fn read_text(bytes: &[u8], confined: bool) -> String {
    if !bytes.starts_with(b"%PDF-") || !inflates_within(bytes, MAX_PDF_INFLATED_BYTES, confined) {
        return String::new();
    }
    let text = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem(bytes))
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    searchable(&text)
}

/// `text` as the library searches it: no control character (pdf-extract gives U+0000 for
/// some encodings' unassigned codes, and PostgreSQL cannot store a NUL), its whitespace runs
/// one space, at most [`MAX_TEXT_BYTES`].
fn searchable(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let mut text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.len() > MAX_TEXT_BYTES {
        let mut end = MAX_TEXT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A confined process that opens a file is killed: run in a child process of this test
    /// binary (the probe), since confinement cannot be undone.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_confined_reader_that_opens_a_file_is_killed() {
        use std::io::Write as _;
        use std::os::unix::process::ExitStatusExt;
        const PROBE: &str = "THUDO_CONFINEMENT_PROBE";
        if std::env::var_os(PROBE).is_some() {
            confine_this_process().unwrap();
            let _ = std::io::stdout().write_all(b"confined\n");
            // Not reached: the open kills the process.
            let opened = std::fs::File::open("Cargo.toml").is_ok();
            std::process::exit(if opened { 10 } else { 11 });
        }
        let probe = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "files::pdf::tests::a_confined_reader_that_opens_a_file_is_killed",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(PROBE, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&probe.stdout);
        assert!(stdout.contains("confined"), "{stdout}");
        assert_eq!(
            probe.status.signal(),
            Some(libc::SIGSYS),
            "{:?}",
            probe.status
        );
    }

    /// The remembering search answers as the plain one for every position, asked in order,
    /// backwards and at random.
    #[test]
    fn the_next_keyword_is_found_as_a_plain_search_finds_it() {
        let bytes = b"/A 1 stream x endstream /B stream/C streamstream /D /E endobj /F".repeat(3);
        let mut next = Next::new(&bytes, b"stream");
        let mut orders: Vec<Vec<usize>> = vec![
            (0..=bytes.len() + 2).collect(),
            (0..=bytes.len() + 2).rev().collect(),
        ];
        let mut seed = 7u64;
        orders.push(
            (0..500)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (seed >> 33) as usize % (bytes.len() + 3)
                })
                .collect(),
        );
        for order in orders {
            for from in order {
                assert_eq!(
                    next.from(from),
                    find_from(&bytes, from, b"stream"),
                    "from {from}"
                );
            }
        }
    }
}
