//! The one CSV module of the host, on the `csv` crate: reading a CSV file whole ([`Csv`]), the
//! ground-truth table ([`TruthTable`]), lists of architectures ([`read_arch_list`]) and accuracy
//! estimates ([`read_estimates`]), and writing every CSV the host writes ([`to_string`],
//! [`write`]).
//!
//! Cells are read trimmed, blank lines are skipped, and a record whose field count differs from
//! the header's makes the file invalid. Written fields are quoted only where they need it (a
//! comma, quote or line break), so ordinary cells come out as given.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use anyhow::{anyhow, bail, Context, Result};
use fewshot_core::util::files::write_atomic;

/// One record of a CSV file, with the line it starts on (for messages).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Line number of the record, from 1.
    pub line: u64,
    /// Its cells, trimmed.
    pub cells: Vec<String>,
}

/// A CSV file read whole: the header and every record.
#[derive(Clone, Debug)]
pub struct Csv {
    /// The file it was read from (named in messages).
    pub path: PathBuf,
    /// The header's cells, trimmed.
    pub headers: Vec<String>,
    /// The records after the header, blank lines left out.
    pub rows: Vec<Row>,
}

/// The header and the records of CSV `text`, without checking the field counts; `comment`
/// starts lines to skip.
fn records(text: &str, path: &Path, comment: Option<u8>) -> Result<(Vec<String>, Vec<Row>)> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(true)
        .comment(comment)
        .from_reader(text.as_bytes());
    let bad = |e: csv::Error| anyhow!("{}: not a valid CSV file: {e}", path.display());
    let headers: Vec<String> = reader.headers().map_err(bad)?.iter().map(String::from).collect();
    // The reader neither counts the blank and comment lines it skips nor starts a record's
    // position after them: find the record's first line by offset.
    let skipped = |l: &str| l.trim().is_empty() || comment.is_some_and(|c| l.as_bytes().first() == Some(&c));
    let (mut counted, mut line) = (0, 1);
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(bad)?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        let mut start = record.position().map_or(counted, |p| p.byte() as usize).max(counted);
        while let Some(end) = text[start..].find('\n').filter(|&end| skipped(&text[start..start + end])) {
            start += end + 1;
        }
        line += text[counted..start].bytes().filter(|&b| b == b'\n').count() as u64;
        counted = start;
        rows.push(Row { line, cells: record.iter().map(String::from).collect() });
    }
    Ok((headers, rows))
}

impl Csv {
    /// Reads a CSV file; an error says the file cannot be read or is not valid CSV.
    pub fn read(path: &Path) -> Result<Csv> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        Csv::parse(&text, path)
    }

    /// Parses CSV text read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Csv> {
        Csv::parse_with(text, path, None)
    }

    fn parse_with(text: &str, path: &Path, comment: Option<u8>) -> Result<Csv> {
        let (headers, rows) = records(text, path, comment)?;
        if let Some(row) = rows.iter().find(|r| r.cells.len() != headers.len()) {
            bail!(
                "{}: not a valid CSV file: line {} has {} fields, the header {}",
                path.display(),
                row.line,
                row.cells.len(),
                headers.len()
            );
        }
        Ok(Csv { path: path.to_path_buf(), headers, rows })
    }

    /// The index of column `name`, if the header has it.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    /// The index of column `name`; an error names the file and its columns.
    pub fn require(&self, name: &str) -> Result<usize> {
        self.column(name).with_context(|| {
            format!("{}: no column '{name}' (columns: {})", self.path.display(), self.headers.join(", "))
        })
    }

    /// The number in column `column` of row `row`; an error names the line, the column and the
    /// cell unless it is a finite number.
    pub fn number(&self, row: usize, column: usize) -> Result<f64> {
        let Row { line, cells } = &self.rows[row];
        let text = &cells[column];
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => bail!(
                "{}: line {line}: column '{}' is not a finite number: '{text}'",
                self.path.display(),
                self.headers[column]
            ),
        }
    }
}

impl Csv {
    /// The score in column `column` of row `row`: a number, `inf` or `-inf` (a proxy's score of
    /// a degenerate network); an error names the line, the column and the cell otherwise.
    pub fn score(&self, row: usize, column: usize) -> Result<f64> {
        let Row { line, cells } = &self.rows[row];
        let text = &cells[column];
        match text.parse::<f64>() {
            Ok(v) if !v.is_nan() => Ok(v),
            _ => bail!("{}: line {line}: column '{}' is not a number: '{text}'", self.path.display(), self.headers[column]),
        }
    }
}

/// A ground-truth table: a CSV file with an `arch` column (architectures in the space's text
/// form) and numeric columns, e.g. NAS-Bench-201's `nb201.csv`.
#[derive(Debug)]
pub struct TruthTable {
    csv: Csv,
    /// Row of each architecture (the last one where an architecture repeats).
    index: HashMap<String, usize>,
}

impl TruthTable {
    /// Reads a truth table; it must have a header with an `arch` column.
    pub fn read(path: &Path) -> Result<TruthTable> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read truth table {}", path.display()))?;
        let csv = Csv::parse(&text, path)?;
        if csv.headers.iter().all(String::is_empty) {
            bail!("truth table {} is empty", path.display());
        }
        let table = TruthTable { index: HashMap::new(), csv };
        let arch = table.find("arch")?;
        let index = table.csv.rows.iter().enumerate().map(|(i, r)| (r.cells[arch].clone(), i)).collect();
        Ok(TruthTable { index, ..table })
    }

    fn find(&self, name: &str) -> Result<usize> {
        self.csv.column(name).ok_or_else(|| {
            anyhow!(
                "truth table {} has no column `{name}` (columns: {})",
                self.csv.path.display(),
                self.csv.headers.join(", ")
            )
        })
    }

    /// Every row's (line number, architecture text, value of `column`); an error names the line
    /// of a value that is not a number.
    pub fn column(&self, column: &str) -> Result<Vec<(usize, String, f64)>> {
        let (arch, value) = (self.find("arch")?, self.find(column)?);
        self.csv
            .rows
            .iter()
            .map(|row| {
                let cell = &row.cells[value];
                let v: f64 = cell.parse().map_err(|_| {
                    anyhow!("truth table {} line {}: `{cell}` is not a number", self.csv.path.display(), row.line)
                })?;
                Ok((row.line as usize, row.cells[arch].clone(), v))
            })
            .collect()
    }

    /// The value of `column` for an architecture, if the table has both and it is a finite
    /// number.
    pub fn value(&self, arch: &str, column: &str) -> Option<f64> {
        let c = self.csv.column(column)?;
        let row = *self.index.get(arch)?;
        self.csv.rows[row].cells[c].parse::<f64>().ok().filter(|v| v.is_finite())
    }

    /// Every finite numeric value of an architecture, except its row index (`index`, `id`), as
    /// (column, value).
    pub fn values(&self, arch: &str) -> Vec<(String, f64)> {
        let Some(&row) = self.index.get(arch) else {
            return Vec::new();
        };
        self.csv
            .headers
            .iter()
            .zip(&self.csv.rows[row].cells)
            .filter(|(c, _)| !matches!(c.as_str(), "index" | "id"))
            .filter_map(|(c, v)| v.parse::<f64>().ok().filter(|v| v.is_finite()).map(|v| (c.clone(), v)))
            .collect()
    }
}

/// The architectures a file lists, as (line number, text): one per line (blank lines and `#`
/// comments skipped), or a CSV file whose header has an `arch` column.
pub fn read_arch_list(path: &Path) -> Result<Vec<(u64, String)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let listed = |l: &&str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
    let Some(first) = text.lines().find(listed) else {
        bail!("{} lists no architecture", path.display());
    };
    let (header, _) = records(first, path, None)?;
    let archs: Vec<(u64, String)> = if header.iter().any(|h| h == "arch") {
        let csv = Csv::parse_with(&text, path, Some(b'#'))?;
        let arch = csv.require("arch")?;
        csv.rows.into_iter().map(|mut r| (r.line, std::mem::take(&mut r.cells[arch]))).collect()
    } else {
        text.lines().enumerate().filter(|(_, l)| listed(l)).map(|(i, l)| (i as u64 + 1, l.trim().to_string())).collect()
    };
    if archs.is_empty() {
        bail!("{} lists no architecture", path.display());
    }
    Ok(archs)
}

/// The header of accuracy estimates (`fewshot eval`'s output, a run's `predictions.csv`).
pub const ESTIMATE_HEADERS: [&str; 3] = ["arch", "subspace", "accuracy"];

/// Accuracy estimates as CSV: one (architecture, subspace, accuracy) per row.
pub fn estimates_csv(rows: &[(String, u32, f64)]) -> Result<String> {
    let cells: Vec<Vec<String>> = rows.iter().map(|(a, s, v)| vec![a.clone(), s.to_string(), v.to_string()]).collect();
    to_string(&ESTIMATE_HEADERS, &cells)
}

/// Reads accuracy estimates written by [`estimates_csv`]. An architecture holding unquoted
/// commas (as written before estimates were quoted) is read whole.
pub fn read_estimates(path: &Path) -> Result<Vec<(String, u32, f64)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let not_ours = || anyhow!("{} is not a predictions file of fewshot (remove it to estimate again)", path.display());
    let (headers, rows) = records(&text, path, None).map_err(|_| not_ours())?;
    if headers != ESTIMATE_HEADERS {
        return Err(not_ours());
    }
    rows.into_iter()
        .map(|Row { line, mut cells }| {
            let bad = || anyhow!("{} line {line}: malformed (remove the file to estimate again)", path.display());
            let accuracy = cells.pop().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
            let subspace = cells.pop().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
            if cells.is_empty() {
                return Err(bad());
            }
            Ok((cells.join(","), subspace, accuracy))
        })
        .collect()
}

/// CSV text of a header and rows.
pub fn to_string<H: AsRef<str>>(headers: &[H], rows: &[Vec<String>]) -> Result<String> {
    let mut writer = csv::WriterBuilder::new().flexible(true).from_writer(Vec::new());
    writer.write_record(headers.iter().map(AsRef::as_ref))?;
    for row in rows {
        writer.write_record(row)?;
    }
    let bytes = writer.into_inner().map_err(|e| anyhow!("cannot write CSV: {e}"))?;
    Ok(String::from_utf8(bytes).expect("CSV of strings is UTF-8"))
}

/// Writes a header and rows as a CSV file, atomically.
pub fn write<H: AsRef<str>>(path: &Path, headers: &[H], rows: &[Vec<String>]) -> Result<()> {
    let text = to_string(headers, rows)?;
    write_atomic(path, text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fewshot-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn reads_quoted_trimmed_cells_with_their_lines() {
        let csv = Csv::parse("a, b\n\n x ,\"y, \"\"z\"\"\"\n1,2\n", Path::new("t.csv")).unwrap();
        assert_eq!(csv.headers, ["a", "b"]);
        assert_eq!(csv.rows[0], Row { line: 3, cells: vec!["x".into(), "y, \"z\"".into()] });
        assert_eq!(csv.rows[1].line, 4);
        assert_eq!(csv.number(1, 1).unwrap(), 2.0);
        assert!(csv.number(0, 0).unwrap_err().to_string().contains("line 3: column 'a' is not a finite number: 'x'"));
        let err = Csv::parse("a,b\n1,2,3\n", Path::new("t.csv")).unwrap_err().to_string();
        assert_eq!(err, "t.csv: not a valid CSV file: line 2 has 3 fields, the header 2");
        assert!(csv.require("c").unwrap_err().to_string().contains("no column 'c' (columns: a, b)"));
    }

    #[test]
    fn writes_round_trip_and_quote_only_where_needed() {
        let rows = vec![vec!["a,b".to_string(), "1.5".to_string()], vec!["plain".into(), "2".into()]];
        let text = to_string(&["arch", "v"], &rows).unwrap();
        assert_eq!(text, "arch,v\n\"a,b\",1.5\nplain,2\n");
        let back = Csv::parse(&text, Path::new("t.csv")).unwrap();
        assert_eq!(back.rows.iter().map(|r| r.cells.clone()).collect::<Vec<_>>(), rows);
    }

    #[test]
    fn truth_tables_give_strict_columns_and_tolerant_lookups() {
        let path = temp("truth.csv", "index,arch,acc,note\n0,a1,90.5,x\n1,a2,n/a,y\n");
        let t = TruthTable::read(&path).unwrap();
        assert_eq!(t.value("a1", "acc"), Some(90.5));
        assert_eq!(t.value("a2", "acc"), None);
        assert_eq!(t.values("a1"), vec![("acc".to_string(), 90.5)]);
        let err = t.column("acc").unwrap_err().to_string();
        assert!(err.ends_with("line 3: `n/a` is not a number"), "{err}");
        let err = t.column("nope").unwrap_err().to_string();
        assert!(err.contains("has no column `nope` (columns: index, arch, acc, note)"), "{err}");
        let empty = temp("empty.csv", "");
        assert!(TruthTable::read(&empty).unwrap_err().to_string().ends_with("is empty"));
    }

    #[test]
    fn arch_lists_are_lines_or_an_arch_column() {
        let plain = temp("plain.txt", "# comment\n\n a-b \nc-d\n");
        assert_eq!(read_arch_list(&plain).unwrap(), vec![(3, "a-b".to_string()), (4, "c-d".to_string())]);
        let table = temp("table.csv", "# estimates\nsubspace,arch\n0,a-b\n# more\n1,\"c,d\"\n");
        assert_eq!(read_arch_list(&table).unwrap(), vec![(3, "a-b".to_string()), (5, "c,d".to_string())]);
        let none = temp("none.txt", "# nothing\n");
        assert!(read_arch_list(&none).unwrap_err().to_string().ends_with("lists no architecture"));
    }

    #[test]
    fn estimates_round_trip_and_old_unquoted_commas_are_read_whole() {
        let rows = vec![("a,b".to_string(), 1, 50.25), ("c".to_string(), 0, 12.5)];
        let path = temp("estimates.csv", &estimates_csv(&rows).unwrap());
        assert_eq!(read_estimates(&path).unwrap(), rows);
        let old = temp("old.csv", "arch,subspace,accuracy\nx,y,2,7.5\n");
        assert_eq!(read_estimates(&old).unwrap(), vec![("x,y".to_string(), 2, 7.5)]);
        let bad = temp("bad.csv", "arch,subspace,accuracy\nx,high,7.5\n");
        let err = read_estimates(&bad).unwrap_err().to_string();
        assert!(err.ends_with("line 2: malformed (remove the file to estimate again)"), "{err}");
        let other = temp("other.csv", "arch,acc\nx,1\n");
        assert!(read_estimates(&other).unwrap_err().to_string().contains("is not a predictions file of fewshot"));
    }
}
