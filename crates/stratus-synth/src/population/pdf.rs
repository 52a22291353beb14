//! Minimal valid PDF 1.4 documents holding a note's text.
//!
//! Real exports carry scanned and printed notes as PDFs, and the NLP stages downstream
//! extract their text. So these are real PDFs, not placeholders: a catalog, a page tree,
//! one Helvetica font with WinAnsi encoding, uncompressed text content streams (one per
//! page), an info dictionary, and a cross-reference table with exact byte offsets. Text
//! extractors (pdf-extract, lopdf, pypdf, pdftotext) read the lines back.

use std::fmt::Write as _;

/// Lines per page at 12 pt leading between 1-inch-ish margins.
const LINES_PER_PAGE: usize = 56;
/// Characters per line at 10 pt Helvetica on a US Letter page.
pub(super) const WRAP: usize = 92;

/// Renders `lines` (already wrapped) under a title.
pub(super) fn render(title: &str, lines: &[String]) -> Vec<u8> {
    let pages: Vec<&[String]> = if lines.is_empty() {
        vec![&[]]
    } else {
        lines.chunks(LINES_PER_PAGE).collect()
    };
    // Objects: 1 catalog, 2 pages, 3 font, 4 info, then (page, contents) pairs.
    let object_count = 4 + 2 * pages.len();
    let mut out: Vec<u8> =
        Vec::with_capacity(1024 + lines.iter().map(|l| l.len() + 8).sum::<usize>());
    let mut offsets = vec![0usize; object_count + 1];
    out.extend_from_slice(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n");

    let mut object = |out: &mut Vec<u8>, n: usize, body: &[u8]| {
        offsets[n] = out.len();
        out.extend_from_slice(format!("{n} 0 obj\n").as_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(b"\nendobj\n");
    };

    object(&mut out, 1, b"<< /Type /Catalog /Pages 2 0 R >>");
    let kids: String = (0..pages.len())
        .map(|k| format!("{} 0 R", 5 + 2 * k))
        .collect::<Vec<_>>()
        .join(" ");
    object(
        &mut out,
        2,
        format!("<< /Type /Pages /Kids [{kids}] /Count {} >>", pages.len()).as_bytes(),
    );
    object(
        &mut out,
        3,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    );
    let mut info = b"<< /Title (".to_vec();
    escape_text(&mut info, title);
    info.extend_from_slice(b") /Producer (Stratus synthetic population) >>");
    object(&mut out, 4, &info);

    for (k, page_lines) in pages.iter().enumerate() {
        let page = 5 + 2 * k;
        let contents = page + 1;
        object(
            &mut out,
            page,
            format!(
                "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] \
                 /Resources << /Font << /F1 3 0 R >> >> /Contents {contents} 0 R >>"
            )
            .as_bytes(),
        );
        let mut stream =
            Vec::with_capacity(page_lines.iter().map(|l| l.len() + 8).sum::<usize>() + 64);
        stream.extend_from_slice(b"BT\n/F1 10 Tf\n12 TL\n50 750 Td\n");
        for line in page_lines.iter() {
            stream.push(b'(');
            escape_text(&mut stream, line);
            stream.extend_from_slice(b") Tj\nT*\n");
        }
        stream.extend_from_slice(b"ET");
        let mut body = format!("<< /Length {} >>\nstream\n", stream.len()).into_bytes();
        body.extend_from_slice(&stream);
        body.extend_from_slice(b"\nendstream");
        object(&mut out, contents, &body);
    }

    let xref = out.len();
    let mut table = String::with_capacity(32 + 20 * (object_count + 1));
    let _ = write!(table, "xref\n0 {}\n0000000000 65535 f \n", object_count + 1);
    for off in &offsets[1..] {
        let _ = writeln!(table, "{off:010} 00000 n ");
    }
    let _ = write!(
        table,
        "trailer\n<< /Size {} /Root 1 0 R /Info 4 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        object_count + 1
    );
    out.extend_from_slice(table.as_bytes());
    out
}

/// Writes text as the inside of a PDF literal string in WinAnsi: ASCII as is (with `\`, `(`
/// and `)` escaped), Latin-1 letters as octal escapes, anything else as `?`.
fn escape_text(out: &mut Vec<u8>, s: &str) {
    for c in s.chars() {
        match c {
            '\\' | '(' | ')' => {
                out.push(b'\\');
                out.push(c as u8);
            }
            ' '..='~' => out.push(c as u8),
            '\u{a0}'..='\u{ff}' => {
                let b = c as u32;
                out.extend_from_slice(format!("\\{:03o}", b).as_bytes());
            }
            _ => out.push(b'?'),
        }
    }
}

/// Wraps text at [`WRAP`] characters on spaces, keeping blank lines.
pub(super) fn wrap(text: &str) -> Vec<String> {
    let mut lines = Vec::new();
    for para in text.split('\n') {
        if para.is_empty() {
            lines.push(String::new());
            continue;
        }
        let mut line = String::new();
        for word in para.split(' ') {
            if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > WRAP {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        lines.push(line);
    }
    lines
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Text of every `(...) Tj` in the content streams, unescaped (Latin-1 decoded): a
    /// small stand-in for a PDF text extractor.
    pub fn extract_text(pdf: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut i = 0;
        let b = pdf;
        while i < b.len() {
            if b[i] == b'(' && b[..i].ends_with(b"\n") {
                let mut s = String::new();
                let mut j = i + 1;
                while j < b.len() && b[j] != b')' {
                    if b[j] == b'\\' {
                        j += 1;
                        if b[j].is_ascii_digit() {
                            let oct = std::str::from_utf8(&b[j..j + 3]).unwrap();
                            s.push(char::from(u8::from_str_radix(oct, 8).unwrap()));
                            j += 3;
                            continue;
                        }
                    }
                    s.push(char::from(b[j]));
                    j += 1;
                }
                if b[j + 1..].starts_with(b" Tj") {
                    lines.push(s);
                }
                i = j;
            }
            i += 1;
        }
        lines
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).rposition(|w| w == needle)
    }

    /// Checks the structure: header, objects at the offsets the xref table gives, trailer,
    /// startxref pointing at the table, %%EOF, and stream lengths.
    pub fn check_structure(pdf: &[u8]) {
        assert!(pdf.starts_with(b"%PDF-1.4\n"));
        assert!(pdf.ends_with(b"%%EOF\n"));
        let sx = rfind(pdf, b"startxref\n").expect("startxref");
        let tail = std::str::from_utf8(&pdf[sx + 10..]).unwrap();
        let xref_at: usize = tail.lines().next().unwrap().parse().unwrap();
        assert!(
            pdf[xref_at..].starts_with(b"xref\n0 "),
            "startxref must point at xref"
        );
        let table = std::str::from_utf8(&pdf[xref_at..sx]).unwrap();
        let mut rows = table.lines();
        rows.next();
        let count: usize = rows
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let entries: Vec<&str> = table.split_inclusive('\n').skip(2).take(count).collect();
        assert_eq!(entries[0], "0000000000 65535 f \n");
        for (n, e) in entries.iter().enumerate().skip(1) {
            assert_eq!(e.len(), 20, "xref entries are 20 bytes");
            let off: usize = e[..10].parse().unwrap();
            let head = format!("{n} 0 obj\n");
            assert!(
                pdf[off..].starts_with(head.as_bytes()),
                "object {n} not at {off}"
            );
        }
        assert!(find(&pdf[xref_at..], b"trailer\n<< /Size").is_some());
        // Every stream's /Length is exact.
        let mut from = 0;
        while let Some(p) = find(&pdf[from..], b"/Length ") {
            let at = from + p + 8;
            let end = at + pdf[at..].iter().position(|&c| c == b' ').unwrap();
            let len: usize = std::str::from_utf8(&pdf[at..end]).unwrap().parse().unwrap();
            let data = at + find(&pdf[at..], b"stream\n").unwrap() + 7;
            assert!(pdf[data + len..].starts_with(b"\nendstream"));
            from = data + len;
        }
    }

    #[test]
    fn pdf_is_well_formed_and_text_reads_back() {
        let text = "PROGRESS NOTE\nPatient: Müller, Zoë (MRN 0001234567890)\n\nAssessment (1): hypertension \\ stable.\n"
            .repeat(30);
        let lines = wrap(&text);
        let pdf = render("Progress note", &lines);
        check_structure(&pdf);
        assert!(
            find(&pdf, b"/Count 3").is_some(),
            "120 lines make three pages"
        );
        assert_eq!(extract_text(&pdf), lines);
        assert!(pdf.iter().all(|b| b.is_ascii() || pdf[..16].contains(b)));
    }

    #[test]
    fn wraps_long_lines() {
        let long = "word ".repeat(60);
        let lines = wrap(long.trim());
        assert!(lines.len() >= 3);
        assert!(lines.iter().all(|l| l.chars().count() <= WRAP));
    }
}
