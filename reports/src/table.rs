//! Every table dynamo-bench shows — `run`'s latency, `check`'s verdict,
//! `compare`'s rows, and the same tables in `report.html` — is one
//! [`Table`], laid out by `tabled`: columns aligned (numbers right, words
//! left), too-wide tables wrapped at word boundaries to the terminal's
//! width, and the same rows exported as HTML.

use std::fmt::Write as _;

use tabled::builder::Builder;
use tabled::settings::object::{Columns, Object, Rows};
use tabled::settings::peaker::PriorityMax;
use tabled::settings::{Alignment, Style, Width};

/// Width a terminal table is wrapped to when `COLUMNS` does not say.
const DEFAULT_WIDTH: usize = 120;
/// Narrowest width a table is wrapped to, whatever `COLUMNS` says.
const MIN_WIDTH: usize = 60;

/// A header and rows of cells, rendered for a terminal or a page.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// A cell that reads as a figure: digits with signs, points, percent,
/// an interval's brackets, or a dash for none.
fn numeric(cell: &str) -> bool {
    let cell = cell.trim();
    cell == "—"
        || (cell.chars().any(|c| c.is_ascii_digit())
            && cell
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | ',' | '%' | '[' | ']' | ' ' | 'e' | '×')))
}

pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl Table {
    /// A table with these column names.
    pub fn new<S: Into<String>>(header: impl IntoIterator<Item = S>) -> Table {
        Table {
            header: header.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are empty, extra ones dropped).
    pub fn row<S: Into<String>>(&mut self, cells: impl IntoIterator<Item = S>) -> &mut Table {
        let mut cells: Vec<String> = cells.into_iter().map(Into::into).collect();
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
        self
    }

    /// Rows so far.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// No rows yet.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Whether column `index` holds figures: every non-empty cell numeric.
    fn right_aligned(&self, index: usize) -> bool {
        let mut cells = self
            .rows
            .iter()
            .map(|row| row[index].as_str())
            .filter(|cell| !cell.is_empty());
        cells.clone().next().is_some() && cells.all(numeric)
    }

    /// The table for a terminal `width` columns wide (wrapped at word
    /// boundaries, widest columns first, when it would not fit).
    pub fn text_width(&self, width: usize) -> String {
        let mut builder = Builder::default();
        builder.push_record(self.header.clone());
        for row in &self.rows {
            builder.push_record(row.clone());
        }
        let mut table = builder.build();
        table.with(Style::psql());
        for index in 0..self.header.len() {
            if self.right_aligned(index) {
                table.modify(Columns::one(index).not(Rows::first()), Alignment::right());
            }
        }
        if table.total_width() > width {
            table.with(
                Width::wrap(width.max(MIN_WIDTH))
                    .keep_words(true)
                    .priority(PriorityMax::new(true)),
            );
        }
        let mut out = table.to_string();
        out.push('\n');
        out
    }

    /// The table for this terminal: as wide as `COLUMNS` says, else
    /// [`DEFAULT_WIDTH`].
    pub fn text(&self) -> String {
        let width = std::env::var("COLUMNS")
            .ok()
            .and_then(|columns| columns.parse().ok())
            .unwrap_or(DEFAULT_WIDTH);
        self.text_width(width)
    }

    /// The same rows as an HTML `<table>` (cells escaped; figures in
    /// columns of figures right-aligned by the page's style, words left
    /// through `class="t"`).
    pub fn html(&self) -> String {
        let right: Vec<bool> = (0..self.header.len()).map(|index| self.right_aligned(index)).collect();
        let mut out = String::from("<table><tr>");
        for (name, right) in self.header.iter().zip(&right) {
            let _ = write!(
                out,
                "<th{}>{}</th>",
                if *right { "" } else { " class=\"t\"" },
                escape(name)
            );
        }
        out.push_str("</tr>\n");
        for row in &self.rows {
            out.push_str("<tr>");
            for (cell, right) in row.iter().zip(&right) {
                let _ = write!(
                    out,
                    "<td{}>{}</td>",
                    if *right { "" } else { " class=\"t\"" },
                    escape(cell)
                );
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut table = Table::new(["op", "p99", "what"]);
        table.row([
            "add",
            "1.25",
            "a finding with a message long enough to need wrapping on a narrow terminal",
        ]);
        table.row(["checkout", "12.50", "short"]);
        table
    }

    #[test]
    fn figures_align_right_and_words_left() {
        let text = sample().text_width(200);
        let lines: Vec<&str> = text.lines().collect();
        // Header, rule, two rows; every line the same width.
        assert_eq!(lines.len(), 4, "{text}");
        assert!(
            lines
                .iter()
                .all(|line| line.chars().count() == lines[0].chars().count()),
            "{text}"
        );
        // The p99 column: "1.25" ends where "12.50" ends.
        let end = |line: &str, figure: &str| line.find(figure).map(|at| at + figure.len());
        assert_eq!(end(lines[2], "1.25"), end(lines[3], "12.50"), "{text}");
        // The op column starts at the left.
        assert_eq!(lines[2].find("add"), lines[3].find("checkout"), "{text}");
    }

    #[test]
    fn a_wide_table_wraps_to_the_width_keeping_words() {
        let text = sample().text_width(60);
        assert!(text.lines().all(|line| line.chars().count() <= 60), "{text}");
        assert!(text.lines().count() > 4, "nothing wrapped:\n{text}");
        for word in ["finding", "message", "wrapping", "terminal"] {
            assert!(text.contains(word), "{word} was cut:\n{text}");
        }
    }

    #[test]
    fn the_html_export_has_the_same_cells_escaped() {
        let mut table = sample();
        table.row(["<script>", "3", "a & b"]);
        let html = table.html();
        assert_eq!(html.matches("<tr>").count(), 4);
        assert!(html.contains("&lt;script&gt;") && html.contains("a &amp; b"));
        assert!(html.contains("<td>12.50</td>") && html.contains("<td class=\"t\">short</td>"));
    }
}
