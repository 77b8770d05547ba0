//! Plain-text tables and output formats shared by the commands.

use clap::ValueEnum;

/// Renders rows under headers with columns padded to their widest cell (numbers right-aligned).
pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let numeric = |col: usize| {
        !rows.is_empty()
            && rows.iter().all(|r| {
                r.get(col).is_some_and(|c| c.chars().next().is_some_and(|ch| ch.is_ascii_digit() || ch == '-'))
            })
    };
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if numeric(i) {
                    format!("{c:>w$}", w = widths[i])
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// Table or JSON output.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// An aligned text table.
    Table,
    /// JSON.
    Json,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let t = render(&["id", "label"], &[vec!["0".into(), "count 0-1".into()], vec!["10".into(), "x".into()]]);
        assert_eq!(t, "id  label\n 0  count 0-1\n10  x\n");
    }
}
