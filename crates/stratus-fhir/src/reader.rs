//! Streaming NDJSON reader: plain or gzip (multi-member), lines of any length up to a limit,
//! every line numbered so that problems can be reported as `file:line: reason`.
//!
//! Gzip is recognised by its magic bytes, not by the file name, because exports in the wild
//! carry `.ndjson` names on compressed bodies and the reverse.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::bufread::MultiGzDecoder;

use crate::error::FhirError;

/// Default line limit: 256 MiB, enough for a DocumentReference with an inlined scan while
/// still bounding memory against a file that is not NDJSON at all.
pub const DEFAULT_MAX_LINE_BYTES: usize = 256 * 1024 * 1024;

const BUFFER_BYTES: usize = 256 * 1024;

/// How a reader treats its input.
#[derive(Debug, Clone, Copy)]
pub struct ReaderOptions {
    /// Lines longer than this are reported as [`Line::TooLong`] and skipped without being
    /// held in memory.
    pub max_line_bytes: usize,
}

impl Default for ReaderOptions {
    fn default() -> Self {
        ReaderOptions {
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
        }
    }
}

/// One line handed out by [`NdjsonReader::next_line`]. Line numbers start at 1 and count
/// every line of the file, blank ones included, so they match what an editor shows.
#[derive(Debug)]
pub enum Line<'a> {
    /// A non-blank line, without its line terminator.
    Data { number: u64, bytes: &'a [u8] },
    /// A line over the limit; its content was skipped.
    TooLong { number: u64 },
}

impl Line<'_> {
    /// The 1-based line number.
    pub fn number(&self) -> u64 {
        match self {
            Line::Data { number, .. } | Line::TooLong { number } => *number,
        }
    }
}

/// A streaming reader over one NDJSON source.
pub struct NdjsonReader<R> {
    inner: R,
    path: PathBuf,
    options: ReaderOptions,
    buf: Vec<u8>,
    line_number: u64,
    /// Bytes of decompressed content consumed so far.
    bytes_read: u64,
}

/// The reader type [`NdjsonReader::open`] returns.
pub type FileReader = NdjsonReader<Box<dyn BufRead + Send>>;

impl FileReader {
    /// Opens a file, decompressing it if it starts with the gzip magic bytes.
    pub fn open(path: impl AsRef<Path>, options: ReaderOptions) -> Result<Self, FhirError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| FhirError::io(path, e))?;
        let inner = open_maybe_gzip(file).map_err(|e| FhirError::io(path, e))?;
        Ok(NdjsonReader::new(inner, path, options))
    }

    /// Like [`NdjsonReader::open`], adding every byte read from disk (compressed bytes for
    /// gzip files) to `disk_bytes`, which progress bars over many files watch.
    pub fn open_counted(
        path: impl AsRef<Path>,
        options: ReaderOptions,
        disk_bytes: Arc<AtomicU64>,
    ) -> Result<Self, FhirError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|e| FhirError::io(path, e))?;
        let counted = CountingRead {
            inner: file,
            count: disk_bytes,
        };
        let inner = open_maybe_gzip(counted).map_err(|e| FhirError::io(path, e))?;
        Ok(NdjsonReader::new(inner, path, options))
    }
}

struct CountingRead<R> {
    inner: R,
    count: Arc<AtomicU64>,
}

impl<R: Read> Read for CountingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Wraps a byte source in a buffered reader, adding a gzip decoder when the source starts
/// with the gzip magic bytes.
pub fn open_maybe_gzip<R: Read + Send + 'static>(
    source: R,
) -> std::io::Result<Box<dyn BufRead + Send>> {
    let mut raw = BufReader::with_capacity(BUFFER_BYTES, source);
    let head = raw.fill_buf()?;
    if head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b {
        Ok(Box::new(BufReader::with_capacity(
            BUFFER_BYTES,
            MultiGzDecoder::new(raw),
        )))
    } else {
        Ok(Box::new(raw))
    }
}

impl<R: BufRead> NdjsonReader<R> {
    /// Reads from any buffered source; `path` is only used in messages.
    pub fn new(inner: R, path: impl Into<PathBuf>, options: ReaderOptions) -> Self {
        NdjsonReader {
            inner,
            path: path.into(),
            options,
            buf: Vec::new(),
            line_number: 0,
            bytes_read: 0,
        }
    }

    /// The path given at construction, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Decompressed bytes consumed so far, line terminators included.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The next non-blank line, `Ok(None)` at the end, or an I/O error (which includes a
    /// corrupt gzip stream) naming the file and the line it happened on.
    ///
    /// A line holding only `\r` or nothing is blank and skipped, like the Cumulus tools do;
    /// a line of spaces is handed out, and fails JSON parsing as it does there.
    pub fn next_line(&mut self) -> Result<Option<Line<'_>>, FhirError> {
        loop {
            self.buf.clear();
            let mut too_long = false;
            let mut saw_any = false;
            loop {
                let available = match self.inner.fill_buf() {
                    Ok(b) => b,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        return Err(FhirError::io(
                            &self.path,
                            std::io::Error::new(
                                e.kind(),
                                format!("at line {}: {e}", self.line_number + 1),
                            ),
                        ));
                    }
                };
                if available.is_empty() {
                    break;
                }
                saw_any = true;
                let (chunk, consumed, done) = match memchr::memchr(b'\n', available) {
                    Some(i) => (&available[..i], i + 1, true),
                    None => (available, available.len(), false),
                };
                if !too_long {
                    if self.buf.len() + chunk.len() > self.options.max_line_bytes {
                        too_long = true;
                        self.buf = Vec::new();
                    } else {
                        self.buf.extend_from_slice(chunk);
                    }
                }
                self.inner.consume(consumed);
                self.bytes_read += consumed as u64;
                if done {
                    break;
                }
            }
            if !saw_any {
                return Ok(None);
            }
            self.line_number += 1;
            if too_long {
                return Ok(Some(Line::TooLong {
                    number: self.line_number,
                }));
            }
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
            if self.buf.is_empty() {
                continue;
            }
            return Ok(Some(Line::Data {
                number: self.line_number,
                bytes: &self.buf,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn lines(input: &[u8], max: usize) -> Vec<(u64, Option<Vec<u8>>)> {
        let mut r = NdjsonReader::new(
            Cursor::new(input.to_vec()),
            "mem",
            ReaderOptions {
                max_line_bytes: max,
            },
        );
        let mut out = Vec::new();
        while let Some(line) = r.next_line().unwrap() {
            match line {
                Line::Data { number, bytes } => out.push((number, Some(bytes.to_vec()))),
                Line::TooLong { number } => out.push((number, None)),
            }
        }
        out
    }

    #[test]
    fn numbers_lines_and_skips_blank_ones() {
        let got = lines(b"a\n\nb\r\n\r\nc", 100);
        assert_eq!(
            got,
            vec![
                (1, Some(b"a".to_vec())),
                (3, Some(b"b".to_vec())),
                (5, Some(b"c".to_vec()))
            ]
        );
    }

    #[test]
    fn long_lines_are_reported_and_skipped() {
        let got = lines(b"short\nthis one is long\nok\n", 6);
        assert_eq!(
            got,
            vec![
                (1, Some(b"short".to_vec())),
                (2, None),
                (3, Some(b"ok".to_vec()))
            ]
        );
    }

    #[test]
    fn lines_longer_than_the_buffer_are_whole() {
        let long = vec![b'x'; BUFFER_BYTES * 3 + 17];
        let mut input = long.clone();
        input.push(b'\n');
        input.extend_from_slice(b"tail");
        let got = lines(&input, usize::MAX);
        assert_eq!(got[0].1.as_deref(), Some(&long[..]));
        assert_eq!(got[1], (2, Some(b"tail".to_vec())));
    }

    proptest::proptest! {
        /// Whatever the lines and however the bytes arrive, every non-blank line comes back
        /// whole, with the number an editor would show.
        #[test]
        fn lines_survive_any_chunking(
            lines in proptest::collection::vec("[a-z{}\" \r]{0,40}", 0..30),
            chunk in 1usize..17,
        ) {
            let text = lines.join("\n");
            let reader = ChunkedReader { data: text.as_bytes().to_vec(), pos: 0, chunk };
            let mut r = NdjsonReader::new(
                std::io::BufReader::with_capacity(chunk, reader),
                "mem",
                ReaderOptions::default(),
            );
            let mut got = Vec::new();
            while let Some(Line::Data { number, bytes }) = r.next_line().unwrap() {
                got.push((number, String::from_utf8(bytes.to_vec()).unwrap()));
            }
            let expected: Vec<(u64, String)> = lines
                .iter()
                .enumerate()
                .map(|(i, l)| (i as u64 + 1, l.strip_suffix('\r').unwrap_or(l).to_owned()))
                .filter(|(_, l)| !l.is_empty())
                .collect();
            proptest::prop_assert_eq!(got, expected);
        }
    }

    struct ChunkedReader {
        data: Vec<u8>,
        pos: usize,
        chunk: usize,
    }

    impl Read for ChunkedReader {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.chunk.min(buf.len()).min(self.data.len() - self.pos);
            buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }

    #[test]
    fn reads_multi_member_gzip() {
        use flate2::Compression;
        use flate2::write::GzEncoder;
        use std::io::Write;
        let mut all = Vec::new();
        for part in [b"one\n".as_slice(), b"two\n".as_slice()] {
            let mut e = GzEncoder::new(Vec::new(), Compression::fast());
            e.write_all(part).unwrap();
            all.extend(e.finish().unwrap());
        }
        let inner = open_maybe_gzip(Cursor::new(all)).unwrap();
        let mut r = NdjsonReader::new(inner, "mem", ReaderOptions::default());
        let mut got = Vec::new();
        while let Some(Line::Data { bytes, .. }) = r.next_line().unwrap() {
            got.push(bytes.to_vec());
        }
        assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()]);
    }
}
