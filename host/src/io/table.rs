//! The one plain-text table renderer of the command line: every table a command prints (the
//! split, costs, benchmarks, rank correlations, training and search summaries, plugin lists).

/// Renders rows under headers, columns padded to their widest cell and separated by two spaces;
/// a column whose cells all start with a digit or `-` is right-aligned (numbers), any other is
/// left-aligned. Lines carry no trailing spaces.
pub fn render<H: AsRef<str>>(headers: &[H], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.as_ref().chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..widths.len())
        .map(|col| {
            !rows.is_empty()
                && rows.iter().all(|r| {
                    r.get(col).is_some_and(|c| c.chars().next().is_some_and(|ch| ch.is_ascii_digit() || ch == '-'))
                })
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths.iter().zip(&numeric))
            .map(|(c, (&w, &right))| if right { format!("{c:>w$}") } else { format!("{c:<w$}") })
            .collect();
        padded.join("  ").trim_end().to_string() + "\n"
    };
    let mut out = line(headers.iter().map(AsRef::as_ref).collect());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_align_right_and_text_left() {
        let t = render(&["id", "label"], &[vec!["0".into(), "count 0-1".into()], vec!["10".into(), "x".into()]]);
        assert_eq!(t, "id  label\n 0  count 0-1\n10  x\n");
        let table = render(&["a", "bb"], &[vec!["long".into(), "1".into()], vec!["x".into(), "22".into()]]);
        assert_eq!(table, "a     bb\nlong   1\nx     22\n");
    }

    #[test]
    fn a_column_with_text_is_left_aligned_and_no_line_ends_in_spaces() {
        let t = render(&["tau", "note"], &[vec!["0.5".into(), String::new()], vec!["n/a".into(), "-".into()]]);
        assert_eq!(t, "tau  note\n0.5\nn/a  -\n");
    }
}
