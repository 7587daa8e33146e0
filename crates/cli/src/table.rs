//! Plain aligned text tables for terminals.

/// Presets as a table: name, parameters as `name=value` words, last change (`resizer presets list`
/// and `resizer admin preset list`).
pub fn presets(presets: &[resizer_core::contract::PresetResource]) -> String {
    use time::format_description::well_known::Rfc3339;
    let rows: Vec<Vec<String>> = presets
        .iter()
        .map(|p| {
            let params: Vec<String> = p.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            vec![
                p.name.clone(),
                params.join(" "),
                p.updated_at.format(&Rfc3339).unwrap_or_default(),
            ]
        })
        .collect();
    render(&["name", "params", "updated_at"], &rows)
}

pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = widths[i].saturating_sub(c.chars().count());
                // Numbers align right, text left.
                if c.chars().next().is_some_and(|ch| ch.is_ascii_digit()) && i > 0 {
                    format!("{}{c}", " ".repeat(pad))
                } else {
                    format!("{c}{}", " ".repeat(pad))
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn aligns() {
        let t = super::render(
            &["period", "jobs"],
            &[
                vec!["2026-11-25".into(), "7".into()],
                vec!["total".into(), "1234".into()],
            ],
        );
        assert_eq!(t, "period      jobs\n2026-11-25     7\ntotal       1234\n");
    }
}
