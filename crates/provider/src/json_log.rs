//! `--log-format json` lines, written straight into the line buffer.
//!
//! Every mount logs a line (and the chart logs JSON), and tracing-subscriber's JSON formatter
//! takes some 21,000 instructions for the mount line: the timestamp into a `String` of its own,
//! then every piece through serde's map serializer and an `io::Write` adaptor that checks each
//! write for UTF-8 again. [`JsonLines`] writes the same line (the same keys in the same order,
//! the same escapes; `json_lines_are_tracing_subscribers_lines` compares the two) for the lines
//! this project writes: events outside any span that did not come through the `log` crate. The
//! others (a span's fields, `log` records' metadata) go to tracing-subscriber's formatter.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{Format, Json, JsonFields, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::{FmtContext, FormatEvent};
use tracing_subscriber::registry::LookupSpan;

/// The JSON event format: ours for plain events, tracing-subscriber's (`json()`, events
/// flattened) for the rest. The timer's text is written as it is: a timer whose text needs JSON
/// escapes (quotes, backslashes, control characters) is not for this format.
pub(crate) struct JsonLines<T> {
    timer: T,
    stock: Format<Json, T>,
}

impl<T: FormatTime + Clone> JsonLines<T> {
    pub(crate) fn new(timer: T) -> Self {
        let stock = tracing_subscriber::fmt::format().json().flatten_event(true).with_timer(timer.clone());
        Self { timer, stock }
    }
}

impl<S, T> FormatEvent<S, JsonFields> for JsonLines<T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // As tracing-subscriber decides whether to write a span: the event's parent, else the
        // current span (even for an event made explicitly without a parent).
        let in_a_span = event.parent().is_some() || ctx.lookup_current().is_some();
        let from_log = event.metadata().fields().field("log.target").is_some();
        if in_a_span || from_log {
            return self.stock.format_event(ctx, writer, event);
        }
        let metadata = event.metadata();
        writer.write_str("{\"timestamp\":\"")?;
        // The timer writes digits, '-', ':', '.', 'T' and 'Z': nothing to escape.
        self.timer.format_time(&mut writer)?;
        write!(writer, "\",\"level\":\"{}\"", metadata.level())?;
        let mut fields = FieldWriter { writer: &mut writer, result: Ok(()) };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        write_json_str(&mut writer, metadata.target())?;
        writer.write_str("}\n")
    }
}

/// Writes each field as `,"name":value`, as tracing-serde's map visitor serializes it.
struct FieldWriter<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl FieldWriter<'_, '_> {
    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self
                .writer
                .write_char(',')
                .and_then(|()| write_json_str(self.writer, field.name()))
                .and_then(|()| self.writer.write_char(':'))
                .and_then(|()| value(self.writer));
        }
    }
}

impl Visit for FieldWriter<'_, '_> {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |w| write!(w, "{value}"));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |w| write!(w, "{value}"));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |w| write!(w, "{value}"));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json's number text (and `null` for what JSON cannot hold).
        self.entry(field, |w| match serde_json::to_string(&value) {
            Ok(text) => w.write_str(&text),
            Err(_) => Err(fmt::Error),
        });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |w| write_json_str(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, |w| {
            w.write_char('"')?;
            write!(JsonEscaped(w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// `text` as a JSON string.
fn write_json_str(writer: &mut Writer<'_>, text: &str) -> fmt::Result {
    writer.write_char('"')?;
    JsonEscaped(writer).write_str(text)?;
    writer.write_char('"')
}

/// Text written through it is escaped as serde_json escapes a string's contents: `"`, `\` and
/// the control characters below U+0020 (`\b`, `\t`, `\n`, `\f`, `\r`, else `\u00XX`).
struct JsonEscaped<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for JsonEscaped<'_, '_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let mut plain_from = 0;
        for (at, byte) in text.bytes().enumerate() {
            let escape = match byte {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.write_str(&text[plain_from..at])?;
            if escape.is_empty() {
                write!(self.0, "\\u{byte:04x}")?;
            } else {
                self.0.write_str(escape)?;
            }
            plain_from = at + 1;
        }
        self.0.write_str(&text[plain_from..])
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex, PoisonError};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// A fixed time, so that two formatters' lines can be compared whole.
    #[derive(Clone)]
    struct FixedTime;

    impl FormatTime for FixedTime {
        fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
            w.write_str("2026-12-05T10:00:00.000001Z")
        }
    }

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Lines;

        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Lines {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
        }
    }

    #[derive(Debug)]
    struct Kind {
        _name: &'static str,
    }

    /// The events this project logs (every kind of field value), written by both formatters.
    fn log_events() {
        let awkward = "quote \" backslash \\ newline \n tab \t cr \r bell \u{7} nul \0 esc \u{1b} \
                       del \u{7f} unicode é ✓ \u{2028} end";
        tracing::info!(
            backend = "aws",
            pod.namespace = "shop",
            remount = true,
            objects = 5u64,
            files = 3usize,
            delta = -4i64,
            ratio = 0.25f64,
            nan = f64::NAN,
            outcome = "ok",
            "mount"
        );
        tracing::warn!(backend = "azure", error.kind = ?Kind { _name: "x\"y" }, error = %awkward, "mount");
        tracing::error!(text = awkward, "a message with {} and \"quotes\"", 42);
        tracing::info!("no fields at all");
        let span = tracing::info_span!("work", id = 7);
        let _entered = span.enter();
        tracing::info!(inside = "a span", "goes to the stock formatter");
    }

    #[test]
    fn json_lines_are_tracing_subscribers_lines() {
        let (ours, stock) = (Lines::default(), Lines::default());
        let with_ours = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_writer(ours.clone())
            .event_format(JsonLines::new(FixedTime))
            .finish();
        tracing::subscriber::with_default(with_ours, log_events);
        let with_stock = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_timer(FixedTime)
            .with_writer(stock.clone())
            .finish();
        tracing::subscriber::with_default(with_stock, log_events);
        let (ours, stock) = (ours.text(), stock.text());
        assert_eq!(ours.lines().count(), 5, "{ours}");
        for (mine, theirs) in ours.lines().zip(stock.lines()) {
            assert_eq!(mine, theirs);
            assert!(serde_json::from_str::<serde_json::Value>(mine).is_ok(), "{mine}");
        }
        assert_eq!(ours, stock);
    }
}
