//! Standard output: plain-text tables, and writes that end the process quietly when the reader
//! of a pipe has gone (`rackside health --all | head`), as Unix tools do.

use std::io::Write;

/// Prints to standard output like `println!`, exiting quietly on a closed pipe.
macro_rules! outln {
    () => { $crate::output::write_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}
pub(crate) use outln;

/// Writes to standard output. A closed pipe ends the process with exit 0; any other write
/// failure ends it with exit 1 and a message on standard error.
pub fn write_out(text: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(error) = out.write_fmt(text).and_then(|()| out.flush()) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("rackside: failed to write to standard output: {error}");
        std::process::exit(1);
    }
}

/// A table whose columns are as wide as their widest cell.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Starts a table with a header row.
    pub fn new<const N: usize>(header: [&str; N]) -> Self {
        Self {
            rows: vec![header.iter().map(|cell| (*cell).to_owned()).collect()],
        }
    }

    /// Appends a row.
    pub fn row<const N: usize>(&mut self, cells: [String; N]) {
        self.rows
            .push(cells.into_iter().map(|cell| one_line(&cell)).collect());
    }

    /// Returns true when the table has no rows besides its header.
    pub fn is_empty(&self) -> bool {
        self.rows.len() <= 1
    }

    /// Renders the table; the last column is not padded.
    pub fn render(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let mut widths = vec![0; columns];
        for row in &self.rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (index, (cell, width)) in row.iter().zip(&widths).enumerate() {
                if index + 1 == row.len() {
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', width - cell.chars().count() + 2));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// Prints the table to standard output.
    pub fn print(&self) {
        write_out(format_args!("{}", self.render()));
    }
}

/// Replaces control characters from BMC data so a row stays one line.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_widest_cell() {
        let mut table = Table::new(["A", "B"]);
        table.row(["long value".to_owned(), "x".to_owned()]);
        assert_eq!(table.render(), "A           B\nlong value  x\n");
    }

    #[test]
    fn control_characters_become_spaces() {
        let mut table = Table::new(["A"]);
        table.row(["one\ntwo\x1b[31m".to_owned()]);
        assert_eq!(table.render(), "A\none two [31m\n");
    }
}
