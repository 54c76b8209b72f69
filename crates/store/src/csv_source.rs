//! Reading a marketing export as CSV: text encoding (BOM sniffing, `--encoding`, a guess when
//! the bytes are not what was expected), line endings (CR, LF, CRLF all count as one line) and
//! the delimiter. Everything here is streaming with constant memory.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::Path;

use encoding_rs::{Decoder, DecoderResult, Encoding, UTF_8, UTF_16BE, UTF_16LE};

/// How many bytes of the file the encoding guess looks at.
const GUESS_BYTES: usize = 4 << 20;

/// The text encoding of an import file, from an `--encoding` label or UTF-8 by default. A
/// byte-order mark at the start of the file (UTF-8, UTF-16LE, UTF-16BE) takes precedence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextEncoding(&'static Encoding);

impl TextEncoding {
    /// Looks up a WHATWG Encoding Standard label (`utf-8`, `gb18030`, `gbk`, `utf-16le`,
    /// `big5`, `shift_jis`, `windows-1252`, …; case-insensitive).
    ///
    /// # Errors
    /// The label is not one the Encoding Standard defines.
    pub fn for_label(label: &str) -> Result<TextEncoding, String> {
        Encoding::for_label_no_replacement(label.trim().as_bytes())
            .map(TextEncoding)
            .ok_or_else(|| {
                format!(
                    "unknown encoding {label:?}; use a WHATWG label such as utf-8, gb18030, utf-16le, big5, shift_jis or windows-1252"
                )
            })
    }

    /// The encoding's canonical name, e.g. `UTF-8`, `gb18030`.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl Default for TextEncoding {
    fn default() -> Self {
        TextEncoding(UTF_8)
    }
}

/// Bytes that are not valid in the file's encoding, found while reading.
#[derive(Debug)]
pub(crate) struct DecodeError {
    /// 1-based line of the bad bytes.
    pub line: u64,
    /// The encoding they were decoded as.
    pub encoding: &'static Encoding,
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not valid {}", self.encoding.name())
    }
}

impl std::error::Error for DecodeError {}

/// A reader that decodes its input to UTF-8 and writes every line ending (CR, LF, CRLF) as
/// LF, so that the CSV reader counts lines as a person does. Invalid input bytes end the
/// stream with an [`io::Error`] carrying a [`DecodeError`].
pub(crate) struct DecodingReader<R> {
    inner: R,
    decoder: Decoder,
    input: Vec<u8>,
    input_start: usize,
    input_end: usize,
    inner_done: bool,
    finished: bool,
    decoded: Vec<u8>,
    output: Vec<u8>,
    output_pos: usize,
    newlines: u64,
    previous_cr: bool,
}

impl<R: Read> DecodingReader<R> {
    /// Decodes `inner` as `encoding`, unless it starts with a byte-order mark.
    pub(crate) fn new(inner: R, encoding: TextEncoding) -> Self {
        DecodingReader {
            inner,
            decoder: encoding.0.new_decoder(),
            input: vec![0; 1 << 16],
            input_start: 0,
            input_end: 0,
            inner_done: false,
            finished: false,
            decoded: vec![0; 1 << 16],
            output: Vec::with_capacity(1 << 16),
            output_pos: 0,
            newlines: 0,
            previous_cr: false,
        }
    }

    /// The encoding in use (the BOM's, once one was seen).
    pub(crate) fn encoding(&self) -> &'static Encoding {
        self.decoder.encoding()
    }

    /// Decodes the next chunk into `output`. Leaves `output` empty only at the end.
    fn fill(&mut self) -> io::Result<()> {
        self.output.clear();
        self.output_pos = 0;
        while self.output.is_empty() && !self.finished {
            if self.input_start == self.input_end && !self.inner_done {
                let n = self.inner.read(&mut self.input)?;
                self.input_start = 0;
                self.input_end = n;
                self.inner_done = n == 0;
            }
            let last = self.inner_done;
            let (result, read, written) = self.decoder.decode_to_utf8_without_replacement(
                &self.input[self.input_start..self.input_end],
                &mut self.decoded,
                last,
            );
            self.input_start += read;
            for &b in &self.decoded[..written] {
                match b {
                    b'\r' => {
                        self.output.push(b'\n');
                        self.newlines += 1;
                        self.previous_cr = true;
                    }
                    b'\n' if self.previous_cr => self.previous_cr = false,
                    b'\n' => {
                        self.output.push(b'\n');
                        self.newlines += 1;
                    }
                    _ => {
                        self.output.push(b);
                        self.previous_cr = false;
                    }
                }
            }
            match result {
                DecoderResult::Malformed(..) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        DecodeError {
                            line: self.newlines + 1,
                            encoding: self.decoder.encoding(),
                        },
                    ));
                }
                DecoderResult::InputEmpty if last => self.finished = true,
                DecoderResult::InputEmpty | DecoderResult::OutputFull => {}
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for DecodingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.output_pos == self.output.len() {
            self.fill()?;
        }
        let n = buf.len().min(self.output.len() - self.output_pos);
        buf[..n].copy_from_slice(&self.output[self.output_pos..self.output_pos + n]);
        self.output_pos += n;
        Ok(n)
    }
}

/// What the bytes of the file at `path` look like when they are not valid in the encoding
/// they were read as: `"looks like GB18030: use --encoding gb18030"`, or `None` when no
/// better guess exists. UTF-16 without a BOM is recognised by its NUL bytes; legacy encodings
/// are guessed by Mozilla's `chardetng` from the first 4 MiB.
pub(crate) fn guess_encoding(path: &Path, tried: &'static Encoding) -> Option<String> {
    let mut sample = Vec::new();
    File::open(path)
        .ok()?
        .take(GUESS_BYTES as u64)
        .read_to_end(&mut sample)
        .ok()?;
    let guess = utf16_without_bom(&sample)
        .or_else(|| chinese(&sample))
        .unwrap_or_else(|| {
            let mut detector =
                chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
            detector.feed(&sample, sample.len() < GUESS_BYTES);
            detector.guess(None, chardetng::Utf8Detection::Allow)
        });
    // GB18030 decodes everything GBK does, and more.
    let guess = if guess == encoding_rs::GBK {
        encoding_rs::GB18030
    } else {
        guess
    };
    (guess != tried).then(|| {
        let label = guess.name().to_ascii_lowercase();
        format!(
            "the file looks like {}: use --encoding {label}",
            guess.name()
        )
    })
}

/// GB18030 when the sample decodes in it without error, nearly all its non-ASCII bytes come in
/// GB2312-style pairs (both bytes 0xA1 or above; Latin-1 text puts ASCII letters after its
/// accented ones), and most of its non-ASCII characters are CJK ideographs. `chardetng` needs
/// more text than an export with a Chinese header over ASCII data (phones, emails) holds; such
/// a file is the common case this catches.
fn chinese(sample: &[u8]) -> Option<&'static Encoding> {
    let (mut pairs, mut unpaired, mut i) = (0usize, 0usize, 0usize);
    while i < sample.len() {
        if sample[i] < 0x80 {
            i += 1;
        } else if sample.get(i + 1).is_some_and(|b| *b >= 0xA1) && sample[i] >= 0xA1 {
            pairs += 1;
            i += 2;
        } else {
            unpaired += 1;
            i += 1;
        }
    }
    if pairs == 0 || unpaired * 10 > pairs {
        return None;
    }
    let text = encoding_rs::GB18030.decode_without_bom_handling_and_without_replacement(sample)?;
    let (mut cjk, mut other) = (0usize, 0usize);
    for c in text.chars().filter(|c| !c.is_ascii()) {
        match c {
            '\u{4E00}'..='\u{9FFF}' | '\u{3000}'..='\u{303F}' | '\u{FF00}'..='\u{FFEF}' => cjk += 1,
            _ => other += 1,
        }
    }
    (cjk > 0 && other * 10 <= cjk).then_some(encoding_rs::GB18030)
}

/// UTF-16LE or UTF-16BE when at least a third of the sample's bytes at even (BE) or odd (LE)
/// offsets are NUL, as in mostly-ASCII UTF-16 text.
fn utf16_without_bom(sample: &[u8]) -> Option<&'static Encoding> {
    let head = &sample[..sample.len().min(4096)];
    let pairs = head.len() / 2;
    if pairs < 4 {
        return None;
    }
    let even = head.iter().step_by(2).filter(|b| **b == 0).count();
    let odd = head.iter().skip(1).step_by(2).filter(|b| **b == 0).count();
    if odd * 3 >= pairs && even * 10 < pairs {
        Some(UTF_16LE)
    } else if even * 3 >= pairs && odd * 10 < pairs {
        Some(UTF_16BE)
    } else {
        None
    }
}

/// Opens `path` for CSV reading in `encoding` with `delimiter`.
pub(crate) fn open(
    path: &Path,
    encoding: TextEncoding,
    delimiter: u8,
) -> io::Result<csv::Reader<DecodingReader<BufReader<File>>>> {
    let file = File::open(path)?;
    let decoding = DecodingReader::new(BufReader::with_capacity(1 << 16, file), encoding);
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .delimiter(delimiter)
        .trim(csv::Trim::Headers)
        .from_reader(decoding))
}

/// A hint for a header that came out as one column although it holds another likely
/// delimiter: `"the header is one column containing ';': use --delimiter ';'"`.
pub(crate) fn delimiter_hint(header: &csv::StringRecord, delimiter: u8) -> Option<String> {
    if header.len() != 1 {
        return None;
    }
    let only = header.get(0)?;
    [(b';', "';'"), (b'\t', "tab"), (b'|', "'|'"), (b',', "','")]
        .iter()
        .find(|(d, _)| *d != delimiter && only.as_bytes().contains(d))
        .map(|(d, name)| {
            let flag = if *d == b'\t' {
                "--delimiter tab".to_owned()
            } else {
                format!("--delimiter '{}'", char::from(*d))
            };
            format!("the header is one column containing {name}: is the file separated by {name}? use {flag}")
        })
}

/// Parses a `--delimiter` value: one ASCII character, or `tab` / `\t`.
///
/// # Errors
/// Anything else, e.g. a multi-character string or a non-ASCII character.
pub fn parse_delimiter(text: &str) -> Result<u8, String> {
    match text {
        "tab" | "\\t" | "\t" => Ok(b'\t'),
        t if t.len() == 1 && t.is_ascii() && t != "\"" && t != "\n" && t != "\r" => {
            Ok(t.as_bytes()[0])
        }
        _ => Err(format!(
            "delimiter must be one ASCII character (e.g. ';', '|') or 'tab', not {text:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8], encoding: TextEncoding) -> io::Result<String> {
        let mut out = String::new();
        DecodingReader::new(bytes, encoding).read_to_string(&mut out)?;
        Ok(out)
    }

    #[test]
    fn line_endings_become_lf() {
        let text = decode_all(b"a\rb\r\nc\nd\r", TextEncoding::default()).unwrap();
        assert_eq!(text, "a\nb\nc\nd\n");
    }

    #[test]
    fn boms_are_sniffed_and_removed() {
        let utf8 = decode_all(b"\xEF\xBB\xBFemail\n", TextEncoding::default()).unwrap();
        assert_eq!(utf8, "email\n");
        let mut utf16le = vec![0xFF, 0xFE];
        for u in "email\nj\u{fc}rgen\n".encode_utf16() {
            utf16le.extend_from_slice(&u.to_le_bytes());
        }
        assert_eq!(
            decode_all(&utf16le, TextEncoding::default()).unwrap(),
            "email\nj\u{fc}rgen\n"
        );
    }

    #[test]
    fn invalid_bytes_report_their_line() {
        let (gbk, _, _) = encoding_rs::GB18030.encode("email\r张三@example.com\r");
        let err = decode_all(&gbk, TextEncoding::default()).unwrap_err();
        let inner = err.get_ref().and_then(|e| e.downcast_ref::<DecodeError>());
        assert_eq!(inner.map(|e| e.line), Some(2));
        let text = decode_all(&gbk, TextEncoding::for_label("gb18030").unwrap()).unwrap();
        assert_eq!(text, "email\n张三@example.com\n");
    }

    #[test]
    fn a_chinese_header_over_ascii_data_is_recognised_as_gb18030() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gbk.csv");
        let (bytes, _, _) = encoding_rs::GB18030.encode("手机,等级\n8613800138000,gold\n");
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            guess_encoding(&path, UTF_8).as_deref(),
            Some("the file looks like gb18030: use --encoding gb18030")
        );
        // Latin-1 text is not mistaken for Chinese.
        std::fs::write(&path, b"email,ville\nx@example.com,Montr\xe9al\n").unwrap();
        let guess = guess_encoding(&path, UTF_8).unwrap();
        assert!(!guess.contains("gb18030"), "{guess}");
    }

    #[test]
    fn delimiters_and_hints() {
        assert_eq!(parse_delimiter(";"), Ok(b';'));
        assert_eq!(parse_delimiter("tab"), Ok(b'\t'));
        assert!(parse_delimiter(";;").is_err());
        let header = csv::StringRecord::from(vec!["email;region"]);
        assert_eq!(
            delimiter_hint(&header, b','),
            Some("the header is one column containing ';': is the file separated by ';'? use --delimiter ';'".into())
        );
        let header = csv::StringRecord::from(vec!["email\tregion"]);
        assert!(
            delimiter_hint(&header, b',')
                .unwrap()
                .contains("--delimiter tab")
        );
        let header = csv::StringRecord::from(vec!["email", "region"]);
        assert_eq!(delimiter_hint(&header, b','), None);
    }

    #[test]
    fn unknown_labels_are_rejected() {
        assert!(TextEncoding::for_label("klingon").is_err());
        assert_eq!(TextEncoding::for_label("GBK").unwrap().name(), "GBK");
        assert_eq!(
            TextEncoding::for_label("utf-16").unwrap().name(),
            "UTF-16LE"
        );
    }
}
