//! Printing results: an aligned table for people, JSON (an array of objects,
//! one per row) for scripts. Every command returns a [`Rows`]; the format
//! is the caller's `--json`.

use chrono::{DateTime, Utc};
use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{ContentArrangement, Table};
use serde_json::{Map, Value};
use tokio_postgres::types::Type;
use tokio_postgres::Row;

/// A result: column names and, per row, one value per column.
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl Rows {
    /// Database rows as they are: each column by its type.
    pub fn from_db(rows: &[Row]) -> Rows {
        let columns = rows.first().map_or_else(Vec::new, |r| {
            r.columns().iter().map(|c| c.name().to_owned()).collect()
        });
        let rows = rows
            .iter()
            .map(|r| (0..r.len()).map(|i| cell(r, i)).collect())
            .collect();
        Rows { columns, rows }
    }

    /// Print as a table (nothing but a line saying so when empty) or JSON.
    pub fn print(&self, json: bool, empty: &str) {
        if json {
            let objects: Vec<Value> = self
                .rows
                .iter()
                .map(|row| {
                    let pairs = self.columns.iter().cloned().zip(row.iter().cloned());
                    Value::Object(pairs.collect::<Map<_, _>>())
                })
                .collect();
            println!("{}", Value::Array(objects));
        } else if self.rows.is_empty() {
            println!("{empty}");
        } else {
            let mut table = Table::new();
            table
                .load_preset(UTF8_BORDERS_ONLY)
                .set_content_arrangement(ContentArrangement::Disabled)
                .set_header(&self.columns);
            for row in &self.rows {
                table.add_row(row.iter().map(text));
            }
            println!("{table}");
        }
    }
}

/// A value as a table cell: strings without quotes, NULL as empty.
fn text(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Column `i` as JSON, by its type; a type the CLI does not know is shown
/// as a note rather than failing the whole listing.
fn cell(row: &Row, i: usize) -> Value {
    let ty = row.columns()[i].type_();
    let value = if *ty == Type::INT8 {
        row.try_get::<_, Option<i64>>(i).map(|v| v.map(Value::from))
    } else if *ty == Type::INT4 {
        row.try_get::<_, Option<i32>>(i).map(|v| v.map(Value::from))
    } else if *ty == Type::INT2 {
        row.try_get::<_, Option<i16>>(i).map(|v| v.map(Value::from))
    } else if *ty == Type::FLOAT8 {
        row.try_get::<_, Option<f64>>(i).map(|v| v.map(Value::from))
    } else if *ty == Type::BOOL {
        row.try_get::<_, Option<bool>>(i)
            .map(|v| v.map(Value::from))
    } else if *ty == Type::TIMESTAMPTZ {
        row.try_get::<_, Option<DateTime<Utc>>>(i)
            .map(|v| v.map(|t| Value::from(t.to_rfc3339())))
    } else if *ty == Type::JSONB || *ty == Type::JSON {
        row.try_get::<_, Option<Value>>(i)
    } else {
        row.try_get::<_, Option<String>>(i)
            .map(|v| v.map(Value::from))
    };
    match value {
        Ok(v) => v.unwrap_or(Value::Null),
        Err(e) => Value::from(format!("({ty}: {e})")),
    }
}
